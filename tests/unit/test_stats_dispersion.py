"""personae.stats.dispersion against brute-force loops, exact enumeration, scipy and the ANOVA module."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from personae.stats import icc1, one_way_anova_components
from personae.stats.dispersion import between_within, dispersion_test, distance_ratio_test, variance_shares


# ---------------------------------------------------------------- brute-force references (loops, no numpy tricks)
def brute_labels(codes: list[int], groups: list[str], k: int) -> tuple[float, float]:
    """D_between = mean over persona pairs of JSD (base 2; scipy's jensenshannon squared);
    D_within = mean over personas with >= 2 answers of the share of run pairs that disagree."""
    names = sorted(set(groups))
    dist, within = {}, []
    for g in names:
        mine = [c for c, h in zip(codes, groups) if h == g]
        dist[g] = np.array([mine.count(j) for j in range(k)], float) / len(mine)
        pairs = list(itertools.combinations(mine, 2))
        if pairs:
            within.append(sum(a != b for a, b in pairs) / len(pairs))
    between = [float(np.nan_to_num(jensenshannon(dist[g], dist[h], base=2))) ** 2
               for g, h in itertools.combinations(names, 2)]
    return sum(between) / len(between), sum(within) / len(within)


def brute_numeric(x: list[float], groups: list[str]) -> tuple[float, float]:
    """D_between = mean over persona pairs of |mean_p - mean_q|; D_within = mean over personas of
    the mean |a_r - a_s| over run pairs."""
    names = sorted(set(groups))
    means, within = {}, []
    for g in names:
        mine = [v for v, h in zip(x, groups) if h == g]
        means[g] = sum(mine) / len(mine)
        pairs = list(itertools.combinations(mine, 2))
        if pairs:
            within.append(sum(abs(a - b) for a, b in pairs) / len(pairs))
    between = [abs(means[g] - means[h]) for g, h in itertools.combinations(names, 2)]
    return sum(between) / len(between), sum(within) / len(within)


def ratio_of(b: float, w: float) -> float:
    if w > 0:
        return b / w
    return math.inf if b > 0 else math.nan


def distinct_labellings(groups: list[str]) -> list[tuple[str, ...]]:
    """Every distinct arrangement of the group labels (each equally likely under a uniform shuffle)."""
    return sorted(set(itertools.permutations(groups)))


# ---------------------------------------------------------------- between_within
@pytest.mark.parametrize("seed", range(6))
def test_between_within_labels_matches_brute_force_jsd(seed: int) -> None:
    rng = np.random.default_rng(seed)
    k = 4
    sizes = rng.integers(1, 7, size=rng.integers(2, 6))  # unbalanced; a persona may have one answer
    sizes[0] = max(sizes[0], 2)
    groups = [f"p{g}" for g, n in enumerate(sizes) for _ in range(n)]
    codes = rng.integers(0, k, size=len(groups)).tolist()
    b, w = between_within(codes, groups, kind="labels", n_categories=k)
    rb, rw = brute_labels(codes, groups, k)
    assert b == pytest.approx(rb, abs=1e-12)
    assert w == pytest.approx(rw, abs=1e-12)


@pytest.mark.parametrize("seed", range(6))
def test_between_within_numeric_matches_explicit_pairwise_differences(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    sizes = rng.integers(1, 8, size=rng.integers(2, 6))
    sizes[0] = max(sizes[0], 2)
    groups = [f"p{g}" for g, n in enumerate(sizes) for _ in range(n)]
    x = rng.integers(1, 6, size=len(groups)).astype(float).tolist()  # Likert-like, with ties
    b, w = between_within(x, groups, kind="numeric")
    rb, rw = brute_numeric(x, groups)
    assert b == pytest.approx(rb, abs=1e-12)
    assert w == pytest.approx(rw, abs=1e-12)


def test_between_within_known_values() -> None:
    # two personas that always give different single answers: JSD = 1 bit, no run-to-run spread
    assert between_within([0, 0, 1, 1], ["a", "a", "b", "b"], kind="labels") == (1.0, 0.0)
    # numeric: means 1 and 4, within |1-1| = 0 and |3-5| = 2 -> mean 1
    assert between_within([1, 1, 3, 5], ["a", "a", "b", "b"], kind="numeric") == (3.0, 1.0)


# ---------------------------------------------------------------- dispersion_test vs exact enumeration
@pytest.mark.parametrize("kind", ["labels", "numeric"])
def test_dispersion_test_p_value_matches_exact_enumeration(kind: str) -> None:
    groups = ["a", "a", "a", "b", "b", "b", "c", "c"]  # 8! / (3! 3! 2!) = 560 distinct labellings
    answers = [0, 0, 1, 1, 2, 2, 2, 0] if kind == "labels" else [1, 2, 2, 4, 5, 3, 1, 2]
    brute = (lambda g: brute_labels(answers, list(g), 3)) if kind == "labels" else \
        (lambda g: brute_numeric([float(v) for v in answers], list(g)))
    observed = ratio_of(*brute(groups))
    null = [ratio_of(*brute(g)) for g in distinct_labellings(groups)]
    assert len(null) == 560
    exact_p = sum(r >= observed - 1e-12 for r in null if not math.isnan(r)) / len(null)
    assert 0.02 < exact_p < 0.6  # a case where the p-value is neither trivial nor tiny

    n_perm = 20_000
    t = dispersion_test(answers, groups, kind=kind, seed=7, n_permutations=n_perm,
                        n_categories=3 if kind == "labels" else None)
    assert t.ratio == pytest.approx(observed)
    assert (t.d_between, t.d_within) == pytest.approx(brute(groups))
    # Monte Carlo p = (1 + k) / (1 + B) estimates the exact p: 4 binomial SEs (+1/B for the +1)
    se = math.sqrt(exact_p * (1 - exact_p) / n_perm)
    assert abs(t.p_value - exact_p) < 4 * se + 1 / n_perm
    finite = [r for r in null if math.isfinite(r)]
    assert t.null_ratio_mean == pytest.approx(sum(finite) / len(finite), rel=0.03)
    assert (t.n, t.n_groups, t.n_permutations) == (8, 3, n_perm)


def test_dispersion_test_separated_personas_get_the_smallest_p_value() -> None:
    answers = [0] * 5 + [1] * 5 + [2] * 5
    groups = ["a"] * 5 + ["b"] * 5 + ["c"] * 5
    t = dispersion_test(answers, groups, kind="labels", seed=1, n_permutations=500)
    assert t.d_within == 0 and t.ratio == math.inf
    assert t.p_value == pytest.approx(1 / 501)


def test_dispersion_test_is_seeded_and_validates() -> None:
    x, g = [1, 2, 3, 2, 5, 4], ["a", "a", "a", "b", "b", "b"]
    assert dispersion_test(x, g, kind="numeric", seed=3) == dispersion_test(x, g, kind="numeric", seed=3)
    with pytest.raises(ValueError, match="two personas"):
        dispersion_test([1, 2], ["a", "a"], kind="numeric", seed=0)
    with pytest.raises(ValueError):
        dispersion_test([1, 2, 3], ["a", "b"], kind="numeric", seed=0)
    with pytest.raises(ValueError, match="seed"):
        dispersion_test(x, g, kind="numeric", seed=None)  # type: ignore[arg-type]


def test_dispersion_test_null_false_positive_rate() -> None:
    # 400 items where every persona samples from the same distribution: a valid permutation test
    # rejects at most 5% (+ 2.5 binomial SEs of Monte Carlo tolerance: 0.05 + 2.5 * 0.0109).
    rng = np.random.default_rng(2024)
    groups = np.repeat(np.arange(5), 4)
    n_items, rejections = 400, 0
    for i in range(n_items):
        probs = rng.dirichlet(np.ones(4))
        t = dispersion_test(rng.choice(4, size=groups.size, p=probs), groups, kind="labels", seed=i,
                            n_permutations=200, n_categories=4)
        rejections += t.p_value < 0.05
    assert rejections / n_items <= 0.05 + 2.5 * math.sqrt(0.05 * 0.95 / n_items)


# ---------------------------------------------------------------- variance_shares
@pytest.mark.parametrize("seed", range(4))
def test_variance_shares_numeric_matches_one_way_anova_and_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(3, 8, size=4)
    groups = np.repeat(np.arange(4), sizes)
    x = rng.normal(np.repeat(rng.normal(0, 1, 4), sizes), 1.0)
    s = variance_shares(x, groups, kind="numeric")
    comp = one_way_anova_components(x, groups)
    assert s["eta_squared"] == pytest.approx(comp.eta_squared)
    assert s["share_between"] == pytest.approx(comp.share_between)
    assert s["icc1"] == pytest.approx(icc1(x, groups).estimate)
    # scipy reference: F = (eta^2 / (k - 1)) / ((1 - eta^2) / (n - k))
    n, k = x.size, 4
    f = (s["eta_squared"] / (k - 1)) / ((1 - s["eta_squared"]) / (n - k))
    assert f == pytest.approx(sps.f_oneway(*[x[groups == g] for g in range(k)]).statistic)


@pytest.mark.parametrize("seed", range(4))
def test_variance_shares_labels_is_catanova(seed: int) -> None:
    # CATANOVA (Light & Margolin 1971): the one-way ANOVA sums of squares added over the one-hot
    # columns; the total sum of squares is n times the Gini variation 1 - sum_j p_j^2.
    rng = np.random.default_rng(50 + seed)
    sizes = rng.integers(3, 9, size=3)
    groups = np.repeat(np.arange(3), sizes)
    codes = rng.integers(0, 4, size=groups.size)
    codes[0] = 0
    codes[-1] = 3
    s = variance_shares(codes, groups, kind="labels", n_categories=4)
    cols = [one_way_anova_components((codes == j).astype(float), groups) for j in range(4) if np.any(codes == j)]
    ssb, ssw = sum(c.ss_between for c in cols), sum(c.ss_within for c in cols)
    n, k = codes.size, 3
    p = np.bincount(codes, minlength=4) / n
    assert ssb + ssw == pytest.approx(n * (1 - np.sum(p**2)))  # the Gini identity
    assert s["eta_squared"] == pytest.approx(ssb / (ssb + ssw))
    ms_b, ms_w = ssb / (k - 1), ssw / (n - k)
    n0 = (n - np.sum(sizes.astype(float) ** 2) / n) / (k - 1)
    s2b = max(0.0, (ms_b - ms_w) / n0)
    assert s["share_between"] == pytest.approx(s2b / (s2b + ms_w))
    assert s["icc1"] == pytest.approx((ms_b - ms_w) / (ms_b + (n0 - 1) * ms_w))


def test_variance_shares_two_labels_equal_the_numeric_anova_on_0_1() -> None:
    codes = np.array([0, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 1])
    groups = np.repeat([0, 1, 2], 4)
    lab = variance_shares(codes, groups, kind="labels", n_categories=2)
    num = variance_shares(codes, groups, kind="numeric")
    for key in ("eta_squared", "share_between", "icc1"):
        assert lab[key] == pytest.approx(num[key])


def test_variance_shares_without_variance_is_nan_not_an_error() -> None:
    s = variance_shares([2, 2, 2, 2, 2, 2], [0, 0, 0, 1, 1, 1], kind="labels")
    assert math.isnan(s["eta_squared"]) and math.isnan(s["share_between"])
    with pytest.raises(ValueError):
        variance_shares([1, 2], [0, 1], kind="numeric")


# ---------------------------------------------------------------- distance_ratio_test
def brute_distance_bw(d: np.ndarray, labels: list[str]) -> tuple[float, float]:
    b, w = [], []
    for i in range(len(labels)):
        for j in range(len(labels)):
            if i != j:
                (w if labels[i] == labels[j] else b).append(d[i, j])
    return sum(b) / len(b), sum(w) / len(w)


def _points(rng: np.random.Generator, shift: float) -> tuple[np.ndarray, list[str]]:
    labels = [g for g in "abc" for _ in range(4)]
    centres = {g: rng.normal(0, shift, 3) for g in "abc"}
    pts = np.array([centres[g] + rng.normal(0, 1, 3) for g in labels])
    return np.linalg.norm(pts[:, None] - pts[None], axis=-1), labels


def test_distance_ratio_test_matches_brute_force_over_strata() -> None:
    rng = np.random.default_rng(3)
    strata = [_points(rng, 1.0) for _ in range(3)]
    t = distance_ratio_test([d for d, _ in strata], [lab for _, lab in strata], seed=0, n_permutations=300)
    bw = [brute_distance_bw(d, lab) for d, lab in strata]
    assert t.between == pytest.approx(sum(b for b, _ in bw) / 3)
    assert t.within == pytest.approx(sum(w for _, w in bw) / 3)
    assert t.ratio == pytest.approx(sum(b for b, _ in bw) / sum(w for _, w in bw))
    assert t.strata == 3 and t.n_permutations == 300


def test_distance_ratio_test_null_behaviour_and_power() -> None:
    # Labels independent of the points: the ratio's null mean is about 1, the observed ratio sits
    # inside the null, and the rejection rate is at most 5% (+ 2.5 binomial SEs: 0.05 + 0.039 at
    # 200 simulations). With well-separated groups the test rejects every time.
    rng = np.random.default_rng(11)
    sims, rejections, null_means, p_values = 200, 0, [], []
    for s in range(sims):
        strata = [_points(rng, 0.0) for _ in range(2)]
        t = distance_ratio_test([d for d, _ in strata], [lab for _, lab in strata], seed=s, n_permutations=200)
        rejections += t.p_value < 0.05
        null_means.append(t.null_ratio_mean)
        p_values.append(t.p_value)
    assert rejections / sims <= 0.05 + 2.5 * math.sqrt(0.05 * 0.95 / sims)
    assert np.mean(null_means) == pytest.approx(1.0, abs=0.05)
    assert 0.4 < np.mean(p_values) < 0.6  # p-values roughly uniform under the null
    for s in range(20):
        strata = [_points(rng, 5.0) for _ in range(2)]
        t = distance_ratio_test([d for d, _ in strata], [lab for _, lab in strata], seed=s, n_permutations=200)
        assert t.p_value < 0.05 and t.ratio > t.null_ratio_mean


def test_distance_ratio_test_validates() -> None:
    with pytest.raises(ValueError):
        distance_ratio_test([], [], seed=0)
    with pytest.raises(ValueError):
        distance_ratio_test([np.zeros((3, 3))], [["a", "b"]], seed=0)
