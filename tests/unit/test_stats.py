"""personae.stats, part 1: bootstrap, paired tests, Holm, Cohen's d, JSD, permutation, 2x2 tables.

Every test names its independent reference (scipy, statsmodels or a published worked example).
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon as scipy_jensenshannon
from statsmodels.stats.contingency_tables import Table2x2
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar
from statsmodels.stats.meta_analysis import effectsize_smd
from statsmodels.stats.multitest import multipletests

from personae.stats import (
    StatResult,
    bootstrap_ci,
    bootstrap_pairs,
    cohens_d,
    fisher_exact,
    holm,
    jensen_shannon,
    label_distribution,
    label_permutation_test,
    mcnemar,
    mcnemar_counts,
    mean_ci,
    odds_ratio_ci,
    paired_bootstrap,
    permutation_test,
    risk_ratio,
    two_by_two,
    wilcoxon_signed_rank,
)


@pytest.fixture
def items() -> tuple[np.ndarray, np.ndarray]:
    """Per-item accuracies (K = 5) of a condition and a baseline over 100 items."""
    rng = np.random.default_rng(20240601)
    difficulty = rng.uniform(0.2, 0.95, 100)
    return rng.binomial(5, np.clip(difficulty + 0.05, 0, 1)) / 5, rng.binomial(5, difficulty) / 5


# ---------------------------------------------------------------- bootstrap
@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_bootstrap_ci_equals_scipy(method: str) -> None:
    # Reference: scipy.stats.bootstrap draws the same (n_resamples, n) index matrix from the same
    # Generator, so the percentile and BCa intervals and the bootstrap SE must agree exactly.
    x = np.random.default_rng(1).lognormal(size=40)
    ours = bootstrap_ci(x, np.mean, seed=7, n_resamples=3000, method=method)
    ref = sps.bootstrap((x,), np.mean, n_resamples=3000, rng=np.random.default_rng(7), method=method)
    assert ours.ci_low == pytest.approx(ref.confidence_interval.low, rel=1e-12)
    assert ours.ci_high == pytest.approx(ref.confidence_interval.high, rel=1e-12)
    assert ours.se == pytest.approx(ref.standard_error, rel=1e-12)
    assert ours.estimate == pytest.approx(x.mean())


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_paired_bootstrap_equals_scipy_paired(items: tuple[np.ndarray, np.ndarray], method: str) -> None:
    # Reference: scipy.stats.bootstrap(paired=True) on mean(a) - mean(b), same Generator seed.
    a, b = items
    ours = paired_bootstrap(a, b, seed=11, n_resamples=4000, method=method)
    ref = sps.bootstrap((a, b), lambda u, v, axis: u.mean(axis) - v.mean(axis), paired=True,
                        n_resamples=4000, rng=np.random.default_rng(11), method=method)
    assert ours.estimate == pytest.approx(a.mean() - b.mean())
    assert (ours.ci_low, ours.ci_high) == pytest.approx(tuple(ref.confidence_interval), rel=1e-10)
    assert ours.n == 100


def test_paired_bootstrap_is_seeded(items: tuple[np.ndarray, np.ndarray]) -> None:
    # (Speed is measured, not asserted: docs/statistics.md has the before/after timing.)
    a, b = items
    first = paired_bootstrap(a, b, seed=3)  # 10k resamples x 100 items
    assert first == paired_bootstrap(a, b, seed=3)
    assert first != paired_bootstrap(a, b, seed=4)
    assert first.ci_low <= first.estimate <= first.ci_high


def _hand_indices(seed: int, n: int, n_resamples: int) -> np.ndarray:
    """The resampled unit indices drawn by hand: one (n_resamples, n) matrix from the seed's Generator."""
    return np.random.default_rng(seed).integers(0, n, (n_resamples, n))


def test_bootstrap_percentile_equals_hand_resampling(items: tuple[np.ndarray, np.ndarray]) -> None:
    # Reference: the percentile bootstrap written out with numpy (Efron & Tibshirani 1993, 13.3):
    # the statistic on each row of resampled indices, its 2.5% and 97.5% quantiles, its SD.
    a, b = items
    idx = _hand_indices(5, 100, 3000)
    one = bootstrap_ci(a, seed=5, n_resamples=3000)
    boot = a[idx].mean(axis=1)
    assert (one.ci_low, one.ci_high) == pytest.approx(tuple(np.quantile(boot, [0.025, 0.975])), rel=1e-12)
    assert one.se == pytest.approx(boot.std(ddof=1), rel=1e-12)
    paired = paired_bootstrap(a, b, seed=5, n_resamples=3000, level=0.9)
    diff = a[idx].mean(axis=1) - b[idx].mean(axis=1)  # row i of a and b move together
    assert (paired.ci_low, paired.ci_high) == pytest.approx(tuple(np.quantile(diff, [0.05, 0.95])), rel=1e-12)


def test_bootstrap_bca_equals_hand_formula() -> None:
    # Reference: BCa written out from Efron & Tibshirani (1993), eq. 14.14-14.15: z0 from the share
    # of resamples below the estimate (ties counted half), the acceleration from the jackknife.
    from scipy.special import ndtr, ndtri

    x = np.random.default_rng(1).lognormal(size=30)
    res = bootstrap_ci(x, seed=4, n_resamples=4000, method="bca")
    boot = x[_hand_indices(4, 30, 4000)].mean(axis=1)
    z0 = ndtri((np.sum(boot < x.mean()) + np.sum(boot <= x.mean())) / (2 * boot.size))
    jack = np.array([np.delete(x, i).mean() for i in range(30)])
    dev = jack.mean() - jack
    accel = np.sum(dev**3) / (6 * np.sum(dev**2) ** 1.5)
    z = ndtri(np.array([0.025, 0.975]))
    levels = ndtr(z0 + (z0 + z) / (1 - accel * (z0 + z)))
    assert (res.ci_low, res.ci_high) == pytest.approx(tuple(np.quantile(boot, levels)), rel=1e-10)


def test_bootstrap_drops_undefined_resamples_as_before() -> None:
    # scipy.stats.bootstrap gives NaN bounds when one resample's statistic is undefined; personae
    # drops those resamples. Reference: the same hand resampling, constant resamples left out.
    x = np.array([0.0, 0.0, 0.0, 0.0, 1.0, 1.0])
    y = np.array([0.1, 0.3, 0.2, 0.4, 0.9, 0.7])

    def r(u: np.ndarray, v: np.ndarray, axis: int = -1) -> np.ndarray:
        uc, vc = u - u.mean(axis, keepdims=True), v - v.mean(axis, keepdims=True)
        return (uc * vc).sum(axis) / np.sqrt((uc**2).sum(axis) * (vc**2).sum(axis))

    res = bootstrap_pairs(r, x, y, seed=8, n_resamples=1000)
    idx = _hand_indices(8, 6, 1000)
    with np.errstate(all="ignore"):
        boot = r(x[idx], y[idx])
    defined = boot[np.isfinite(boot)]
    assert 0 < defined.size < 1000
    assert f"{1000 - defined.size} of 1000 resamples gave an undefined statistic" in res.note
    assert (res.ci_low, res.ci_high) == pytest.approx(tuple(np.quantile(defined, [0.025, 0.975])), rel=1e-12)
    assert res.se == pytest.approx(defined.std(ddof=1), rel=1e-12)
    bca = bootstrap_pairs(r, x, y, seed=8, n_resamples=1000, method="bca")  # BCa needs them all
    assert (bca.ci_low, bca.ci_high) == (res.ci_low, res.ci_high) and "percentile interval used" in bca.note


def test_one_unit_gives_a_point_interval() -> None:
    # scipy.stats.bootstrap refuses a one-unit sample; every resample of one value is that value.
    res = bootstrap_ci([3.5], seed=0, n_resamples=100)
    assert (res.ci_low, res.estimate, res.ci_high, res.se) == (3.5, 3.5, 3.5, 0.0) and "one unit" in res.note


def test_bootstrap_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="seed"):
        bootstrap_ci([1.0, 2.0], seed=None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="equal length"):
        paired_bootstrap([1.0, 2.0], [1.0], seed=0)
    with pytest.raises(ValueError, match="NaN"):
        bootstrap_ci([1.0, float("nan")], seed=0)
    with pytest.raises(ValueError, match="method"):
        bootstrap_ci([1.0, 2.0], seed=0, method="studentized")
    with pytest.raises(ValueError, match="level"):
        bootstrap_ci([1.0, 2.0], seed=0, level=95)


def test_bootstrap_degenerate_and_non_vectorised_stat() -> None:
    const = bootstrap_ci([2.0] * 10, seed=0, n_resamples=200, method="bca")
    assert (const.ci_low, const.estimate, const.ci_high) == (2.0, 2.0, 2.0)
    assert "percentile interval used" in const.note
    # A statistic without `axis` is wrapped; median via lambda equals np.median with axis.
    x = np.arange(15.0) ** 1.5
    wrapped = bootstrap_ci(x, lambda v: float(np.median(v)), seed=5, n_resamples=300)
    native = bootstrap_ci(x, np.median, seed=5, n_resamples=300)
    assert (wrapped.ci_low, wrapped.ci_high) == (native.ci_low, native.ci_high)


def test_bootstrap_pairs_matches_scipy_paired() -> None:
    # Reference: scipy.stats.bootstrap(paired=True) on a two-argument statistic (Pearson r).
    rng = np.random.default_rng(9)
    x = rng.normal(size=30)
    y = x + rng.normal(size=30)

    def r(u: np.ndarray, v: np.ndarray, axis: int = -1) -> np.ndarray:
        uc, vc = u - u.mean(axis, keepdims=True), v - v.mean(axis, keepdims=True)
        return (uc * vc).sum(axis) / np.sqrt((uc**2).sum(axis) * (vc**2).sum(axis))

    ours = bootstrap_pairs(r, x, y, seed=2, n_resamples=2000)
    ref = sps.bootstrap((x, y), r, paired=True, n_resamples=2000, rng=np.random.default_rng(2),
                        method="percentile")
    assert (ours.ci_low, ours.ci_high) == pytest.approx(tuple(ref.confidence_interval), rel=1e-10)


def test_stat_result_as_dict_is_strict_json() -> None:
    res = StatResult(1.0, float("-inf"), 2.0, n=3)
    d = res.as_dict()
    assert d["ci_low"] is None and d["p_value"] is None and d["ci_high"] == 2.0
    json.dumps(d, allow_nan=False)


# ---------------------------------------------------------------- Wilcoxon, McNemar
def test_wilcoxon_matches_scipy(items: tuple[np.ndarray, np.ndarray]) -> None:
    # Reference: scipy.stats.wilcoxon (zero_method='wilcox').
    a, b = items
    ours = wilcoxon_signed_rank(a, b)
    ref = sps.wilcoxon(a, b)
    assert ours.statistic == ref.statistic and ours.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    assert ours.estimate == np.median(a - b) and ours.n == 100
    assert "zero difference" in ours.note
    less = wilcoxon_signed_rank(a, b, alternative="less", zero_method="pratt")
    assert less.p_value == pytest.approx(sps.wilcoxon(a, b, alternative="less", zero_method="pratt").pvalue)


def test_wilcoxon_all_zero_differences_gives_p_one() -> None:
    res = wilcoxon_signed_rank([0.2, 0.4, 1.0], [0.2, 0.4, 1.0])
    assert res.p_value == 1.0 and res.statistic == 0.0
    assert "all paired differences are zero" in res.note


@pytest.mark.parametrize(("exact", "correction"), [(True, True), (False, True), (False, False)])
def test_mcnemar_matches_statsmodels(exact: bool, correction: bool) -> None:
    # Reference: statsmodels.stats.contingency_tables.mcnemar on [[n11, n10], [n01, n00]].
    rng = np.random.default_rng(4)
    a = rng.random(80) < 0.6
    b = np.where(rng.random(80) < 0.7, a, ~a)
    ours = mcnemar(a, b, exact=exact, correction=correction)
    table = [[np.sum(a & b), np.sum(a & ~b)], [np.sum(~a & b), np.sum(~a & ~b)]]
    ref = sm_mcnemar(table, exact=exact, correction=correction)
    assert ours.statistic == pytest.approx(ref.statistic)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    assert ours.estimate == pytest.approx(a.mean() - b.mean())


def test_mcnemar_agresti_presidential_approval() -> None:
    # Reference: Agresti, Categorical Data Analysis (2nd ed., 2002), sec. 10.1: approval of the
    # President in two surveys of the same 1600 people, [[794, 150], [86, 570]]; difference of
    # proportions 0.59 - 0.55 = 0.04, SE 0.0095, 95% CI (0.02, 0.06); McNemar z = 4.17.
    res = mcnemar_counts(150, 86, n=1600, exact=False, correction=False)
    assert res.estimate == pytest.approx(0.04)
    assert res.se == pytest.approx(0.0095, abs=5e-5)
    assert (res.ci_low, res.ci_high) == pytest.approx((0.021, 0.059), abs=1e-3)
    assert np.sqrt(res.statistic) == pytest.approx(4.17, abs=5e-3)


def test_mcnemar_edge_cases() -> None:
    none = mcnemar([True, False, True], [True, False, True])
    assert none.p_value == 1.0 and "no discordant pairs" in none.note
    with pytest.raises(ValueError, match="boolean"):
        mcnemar([0, 2], [1, 0])
    with pytest.raises(ValueError, match="non-negative integer"):
        mcnemar_counts(-1, 3)


# ---------------------------------------------------------------- Holm
@pytest.mark.slow  # make test runs it; the pre-stop check's 60 s does not
def test_holm_matches_statsmodels() -> None:
    # Reference: statsmodels.stats.multitest.multipletests(method='holm').
    rng = np.random.default_rng(0)
    for p in (rng.uniform(0, 0.2, 12), np.array([0.01, 0.04, 0.04, 0.03, 0.5]), np.array([0.3])):
        assert holm(p) == pytest.approx(multipletests(p, method="holm")[1], abs=1e-15)


def test_holm_wikipedia_worked_example() -> None:
    # Reference: Wikipedia, "Holm-Bonferroni method", example: p = 0.01, 0.04, 0.03, 0.005 for H1-H4
    # at alpha 0.05: sorted 0.005, 0.01, 0.03, 0.04 are compared with alpha/4, /3, /2, /1, so H4 and
    # H1 are rejected and H3, H2 are not. Adjusted: 4(0.005) = 0.02, 3(0.01) = 0.03, then 2(0.03) =
    # 0.06 and max(0.06, 0.04) = 0.06.
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02], abs=1e-15)


def test_holm_validation() -> None:
    assert holm([]).size == 0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        holm([0.1, 1.2])
    with pytest.raises(ValueError, match="NaN"):
        holm([0.1, float("nan")])


# ---------------------------------------------------------------- Cohen's d
def test_cohens_d_pooled_matches_statsmodels_and_t() -> None:
    # Reference: statsmodels.stats.meta_analysis.effectsize_smd returns the Hedges-corrected
    # pooled SMD J * d, J = 1 - 3 / (4 N - 9); and scipy.stats.ttest_ind: t = d sqrt(n1 n2 / N).
    rng = np.random.default_rng(12)
    a, b = rng.normal(0.5, 1.0, 25), rng.normal(0.0, 1.3, 31)
    d = cohens_d(a, b, denominator="pooled")
    smd, _ = effectsize_smd(a.mean(), a.std(ddof=1), 25, b.mean(), b.std(ddof=1), 31)
    assert d.estimate * (1 - 3 / (4 * 56 - 9)) == pytest.approx(smd, rel=1e-12)
    assert d.estimate * np.sqrt(25 * 31 / 56) == pytest.approx(sps.ttest_ind(a, b).statistic, rel=1e-12)
    # Borenstein et al. (2009) eq. 4.20: V_d = (n1 + n2) / (n1 n2) + d^2 / (2 (n1 + n2)).
    assert d.se == pytest.approx(np.sqrt(56 / (25 * 31) + d.estimate**2 / 112))
    assert d.ci_low == pytest.approx(d.estimate - 1.959963985 * d.se)


def test_cohens_d_methods_form_and_paired_dz() -> None:
    # Reference: METHODS.md section 2, d = (mean_wo - mean_w) / sqrt((sd_w^2 + sd_wo^2) / 2);
    # d_z against scipy.stats.ttest_rel: t = d_z sqrt(n).
    rng = np.random.default_rng(3)
    wo = rng.normal(2.2, 0.5, 40)
    w = wo - 0.1 + rng.normal(0, 0.3, 40)
    d_av = cohens_d(wo, w, paired=True)
    expected = (wo.mean() - w.mean()) / np.sqrt((wo.var(ddof=1) + w.var(ddof=1)) / 2)
    assert d_av.estimate == pytest.approx(expected, rel=1e-12)
    assert cohens_d(wo, w).estimate == pytest.approx(expected, rel=1e-12)  # same formula unpaired
    d_z = cohens_d(wo, w, paired=True, denominator="difference")
    assert d_z.estimate * np.sqrt(40) == pytest.approx(sps.ttest_rel(wo, w).statistic, rel=1e-12)
    assert cohens_d(w, wo, paired=True).estimate == pytest.approx(-d_av.estimate)


def test_cohens_d_paired_normal_ci_coverage() -> None:
    # Reference: the nominal level itself; a seeded simulation of the d_av delta-method CI.
    rng = np.random.default_rng(2024)
    true_sd = np.sqrt((1.0 + 1.5**2) / 2)
    delta = 0.5 / true_sd
    cover = 0
    for _ in range(400):
        a = rng.normal(0, 1, 60)
        b = 0.6 * a + rng.normal(-0.5, np.sqrt(1.5**2 - 0.36), 60)
        res = cohens_d(a, b, paired=True)
        cover += res.ci_low <= delta <= res.ci_high
    assert 0.92 <= cover / 400 <= 0.98


@pytest.mark.parametrize("paired", [True, False])
def test_cohens_d_bootstrap_agrees_with_normal(paired: bool) -> None:
    rng = np.random.default_rng(8)
    a, b = rng.normal(0.4, 1, 80), rng.normal(0, 1, 80)
    normal = cohens_d(a, b, paired=paired)
    boot = cohens_d(a, b, paired=paired, ci="bootstrap", seed=1, n_resamples=4000)
    assert boot.estimate == normal.estimate
    assert boot.ci_low == pytest.approx(normal.ci_low, abs=0.05)
    assert boot.ci_high == pytest.approx(normal.ci_high, abs=0.05)


def test_cohens_d_independent_bootstrap_resamples_each_group() -> None:
    # Reference: the within-group percentile bootstrap written out: from the seed's Generator one
    # (2000, 30) index matrix for a, then one (2000, 25) for b; d on each pair of rows.
    rng = np.random.default_rng(21)
    a, b = rng.normal(0.5, 1, 30), rng.normal(0, 1.2, 25)
    res = cohens_d(a, b, ci="bootstrap", seed=6, n_resamples=2000)
    g = np.random.default_rng(6)
    ra, rb = a[g.integers(0, 30, (2000, 30))], b[g.integers(0, 25, (2000, 25))]
    boot = (ra.mean(1) - rb.mean(1)) / np.sqrt((ra.var(1, ddof=1) + rb.var(1, ddof=1)) / 2)
    assert (res.ci_low, res.ci_high) == pytest.approx(tuple(np.quantile(boot, [0.025, 0.975])), rel=1e-12)
    assert "within groups" in res.method and res.n == 55


def test_cohens_d_validation() -> None:
    with pytest.raises(ValueError, match="paired=True"):
        cohens_d([1.0, 2.0, 3.0], [1.0, 2.0, 4.0], denominator="difference")
    with pytest.raises(ValueError, match="seed"):
        cohens_d([1.0, 2.0, 3.0], [1.0, 2.0, 4.0], ci="bootstrap")
    flat = cohens_d([1.0, 1.0], [1.0, 1.0])
    assert np.isnan(flat.estimate) and "zero spread" in flat.note


# ---------------------------------------------------------------- Jensen-Shannon
def test_jensen_shannon_matches_scipy_squared() -> None:
    # Reference: scipy.spatial.distance.jensenshannon returns sqrt(JSD).
    rng = np.random.default_rng(5)
    for _ in range(20):
        p, q = rng.dirichlet(np.ones(4)), rng.dirichlet(np.ones(4) * 0.3)
        assert jensen_shannon(p, q) == pytest.approx(scipy_jensenshannon(p, q, base=2) ** 2, abs=1e-12)
        assert jensen_shannon(p, q, base=np.e) == pytest.approx(scipy_jensenshannon(p, q) ** 2, abs=1e-12)
    assert jensen_shannon([1, 0], [0, 1]) == 1.0
    assert jensen_shannon([3, 1], [6, 2]) == 0.0  # counts are normalised


def test_jensen_shannon_defined_where_scipy_gives_nan() -> None:
    # Reference: JSD >= 0 with equality only for equal distributions (Lin 1991); scipy's distance
    # is NaN here (the square root of a sum rounded below 0), personae's divergence is ~0.
    p, q = np.array([0.2, 0.3, 0.5]), np.array([0.2 + 1e-13, 0.3, 0.5 - 1e-13])
    with np.errstate(invalid="ignore"):
        assert np.isnan(scipy_jensenshannon(p, q, base=2))
    assert 0.0 <= jensen_shannon(p, q) < 1e-20


def test_mean_ci_matches_scipy_and_students_sleep_data() -> None:
    # Reference: scipy.stats.ttest_1samp(x).confidence_interval; and R's one-sample t.test on the
    # paired differences of Student's (1908) sleep data: mean -1.58, 95% CI -2.4598858, -0.7001142.
    d = np.array([0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]) - \
        np.array([1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4])
    est = mean_ci(d)
    assert (est.estimate, est.ci_low, est.ci_high) == pytest.approx((-1.58, -2.4598858, -0.7001142), abs=1e-7)
    ref = sps.ttest_1samp(d, 0.0).confidence_interval(confidence_level=0.9)
    assert (mean_ci(d, 0.9).ci_low, mean_ci(d, 0.9).ci_high) == pytest.approx((ref.low, ref.high), rel=1e-12)
    assert (mean_ci([2.0, 2.0]).ci_low, mean_ci([2.0, 2.0]).ci_high) == (2.0, 2.0)  # no spread: a point
    assert np.isnan(mean_ci([2.0]).ci_low) and mean_ci([]).n == 0


def test_label_distribution_and_validation() -> None:
    dist = label_distribution(["A", "B", "A", "A"], ["A", "B", "C"])
    assert dist.tolist() == [0.75, 0.25, 0.0]
    with pytest.raises(ValueError, match="not one of the categories"):
        label_distribution(["A", "D"], ["A", "B"])
    with pytest.raises(ValueError, match="same categories"):
        jensen_shannon([0.5, 0.5], [0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="non-negative"):
        jensen_shannon([-0.5, 1.5], [0.5, 0.5])


# ---------------------------------------------------------------- permutation tests
@pytest.mark.parametrize("alternative", ["greater", "less"])
def test_permutation_exact_matches_scipy(alternative: str) -> None:
    # Reference: scipy.stats.permutation_test enumerates all C(9, 4) = 126 splits exactly.
    a, b = np.array([3.1, 4.2, 5.0, 6.3]), np.array([1.0, 2.2, 2.9, 4.0, 3.3])
    ours = permutation_test(a, b, seed=0, n_resamples=1000, alternative=alternative)
    ref = sps.permutation_test((a, b), lambda x, y, axis: x.mean(axis) - y.mean(axis),
                               permutation_type="independent", alternative=alternative, n_resamples=1000)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-12)
    assert ours.statistic == pytest.approx(a.mean() - b.mean())
    assert "exact" in ours.method


def test_permutation_exact_two_sided_by_enumeration() -> None:
    # Reference: hand enumeration with itertools of all splits, counting |T*| >= |T|.
    a, b = np.array([1.0, 5.0, 7.0]), np.array([2.0, 3.0, 3.5, 4.0])
    z = np.concatenate([a, b])
    obs = abs(a.mean() - b.mean())
    null = [abs(z[list(c)].mean() - np.delete(z, list(c)).mean()) for c in itertools.combinations(range(7), 3)]
    expected = np.mean(np.array(null) >= obs - 1e-12)
    assert permutation_test(a, b, seed=0).p_value == pytest.approx(expected)


def test_permutation_random_within_monte_carlo_error_of_scipy() -> None:
    # Reference: scipy.stats.permutation_test (randomised, another seed), p within 4 Monte Carlo SEs.
    rng = np.random.default_rng(6)
    a, b = rng.normal(0.35, 1, 40), rng.normal(0, 1, 45)
    ours = permutation_test(a, b, seed=1, n_resamples=5000, alternative="greater")
    ref = sps.permutation_test((a, b), lambda x, y, axis: x.mean(axis) - y.mean(axis), alternative="greater",
                               n_resamples=5000, rng=np.random.default_rng(2))
    assert abs(ours.p_value - ref.pvalue) < 4 * np.sqrt(2 * ref.pvalue * (1 - ref.pvalue) / 5000)
    assert ours.p_value > 0


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_permutation_random_equals_hand_shuffles_and_scipy_independent(alternative: str) -> None:
    # Reference: the Monte Carlo permutation test written out: 3000 shuffles of the pooled values by
    # Generator.permutation from the same seed, p = (#(T* as extreme) + 1) / 3001 with |T*| >= |T|
    # for two-sided (Phipson & Smyth 2010). The one-sided p also equals scipy's 'independent' test
    # with the same Generator (its two-sided p is 2 min(one-sided), a different test).
    rng = np.random.default_rng(16)
    a, b = rng.normal(0.3, 1, 30), rng.normal(0, 1, 25)
    ours = permutation_test(a, b, seed=9, n_resamples=3000, alternative=alternative)
    z, g, obs = np.concatenate([a, b]), np.random.default_rng(9), a.mean() - b.mean()
    null = np.array([(lambda w: w[:30].mean() - w[30:].mean())(z[g.permutation(55)]) for _ in range(3000)])
    tol = abs(obs) * 1e-13
    count = {"greater": np.sum(null >= obs - tol), "less": np.sum(null <= obs + tol),
             "two-sided": np.sum(np.abs(null) >= abs(obs) - tol)}[alternative]
    assert ours.p_value == pytest.approx((count + 1) / 3001, rel=1e-12)
    if alternative != "two-sided":
        ref = sps.permutation_test((a, b), lambda x, y, axis: x.mean(axis) - y.mean(axis), n_resamples=3000,
                                   alternative=alternative, rng=np.random.default_rng(9))
        assert ours.p_value == ref.pvalue


def test_label_permutation_exact_for_few_labels() -> None:
    # Reference: hand enumeration of all 5! = 120 label orders (itertools.permutations): with
    # n! <= n_resamples scipy's 'pairings' test is exact, p = #(T* >= T) / 120.
    values = np.array([2.0, 3.5, 1.0, 4.0, 0.5])
    labels = np.array(["x", "x", "y", "y", "y"])

    def diff(v: np.ndarray, lab: np.ndarray) -> float:
        return float(v[lab == "x"].mean() - v[lab == "y"].mean())

    res = label_permutation_test(diff, values, labels, seed=0, n_resamples=2000)
    null = [diff(values, labels[list(order)]) for order in itertools.permutations(range(5))]
    assert res.p_value == pytest.approx(np.mean(np.array(null) >= res.statistic - 1e-12))
    assert "exact, all 120 orders" in res.method


def test_label_permutation_matches_two_sample_and_respects_strata() -> None:
    # Reference: scipy.stats.permutation_test on the same difference of means (within MC error).
    rng = np.random.default_rng(10)
    values = rng.normal(size=50) + np.repeat([0.5, 0.0], 25)
    labels = np.repeat(["p1", "p2"], 25)

    def diff(v: np.ndarray, lab: np.ndarray) -> float:
        return float(v[lab == "p1"].mean() - v[lab == "p2"].mean())

    ours = label_permutation_test(diff, values, labels, seed=3, n_resamples=3000)
    ref = sps.permutation_test((values[:25], values[25:]), lambda x, y, axis: x.mean(axis) - y.mean(axis),
                               alternative="greater", n_resamples=3000, rng=np.random.default_rng(4))
    assert abs(ours.p_value - ref.pvalue) < 4 * np.sqrt(2 * ref.pvalue * (1 - ref.pvalue) / 3000) + 1e-3
    # Shuffling within strata keeps each stratum's label counts: this statistic never changes.
    strata = np.tile([0, 1], 25)
    stuck = label_permutation_test(lambda v, lab: float(np.sum(lab[strata == 0] == "p1")), values, labels,
                                   strata=strata, seed=0, n_resamples=200)
    assert stuck.p_value == 1.0


# ---------------------------------------------------------------- 2x2 tables
TEA = [[3, 1], [1, 3]]


def test_fisher_exact_matches_scipy_and_r_tea_tasting() -> None:
    # Reference: scipy.stats.fisher_exact (p, sample OR); R's ?fisher.test TeaTasting example prints
    # p = 0.4857, odds ratio 6.408309, 95% CI 0.2117329 621.9337505 ('greater': p = 0.2429, CI from
    # 0.3135693). R finds the CI with uniroot at a loose tolerance, so the CI is checked exactly
    # against its definition instead: under Fisher's noncentral hypergeometric distribution
    # (scipy.stats.nchypergeom_fisher) P(X >= 3; low) = P(X <= 3; high) = 0.025.
    res = fisher_exact(TEA)
    ref = sps.fisher_exact(TEA)
    assert res.p_value == pytest.approx(ref.pvalue) and res.statistic == pytest.approx(ref.statistic)
    assert res.p_value == pytest.approx(0.4857, abs=5e-5)
    assert res.estimate == pytest.approx(6.408309, rel=1e-5)
    assert (res.ci_low, res.ci_high) == pytest.approx((0.2117329, 621.9337505), rel=1e-2)
    assert sps.nchypergeom_fisher.sf(2, 8, 4, 4, res.ci_low) == pytest.approx(0.025, rel=1e-6)
    assert sps.nchypergeom_fisher.cdf(3, 8, 4, 4, res.ci_high) == pytest.approx(0.025, rel=1e-6)
    greater = fisher_exact(TEA, alternative="greater")
    assert greater.p_value == pytest.approx(0.2429, abs=5e-5)
    assert greater.ci_low == pytest.approx(0.3135693, rel=1e-4) and greater.ci_high == np.inf


@pytest.mark.parametrize("table", [[[30, 12], [17, 25]], [[12, 40], [3, 60]]])
def test_odds_ratio_and_risk_ratio_match_statsmodels(table: list[list[int]]) -> None:
    # Reference: statsmodels Table2x2: oddsratio(_confint, _pvalue) with Woolf's log SE, and
    # riskratio(_confint, _pvalue) with the log-method SE.
    ref = Table2x2(np.asarray(table, dtype=float))
    o = odds_ratio_ci(table)
    assert o.estimate == pytest.approx(ref.oddsratio)
    assert (o.ci_low, o.ci_high) == pytest.approx(ref.oddsratio_confint(alpha=0.05))
    assert o.p_value == pytest.approx(ref.oddsratio_pvalue())
    r = risk_ratio(table, level=0.9)
    assert r.estimate == pytest.approx(ref.riskratio)
    assert (r.ci_low, r.ci_high) == pytest.approx(ref.riskratio_confint(alpha=0.1))
    assert r.p_value == pytest.approx(ref.riskratio_pvalue())
    assert o.note == "" and r.note == ""


def test_odds_ratio_and_risk_ratio_by_hand() -> None:
    # Reference: the formulas written out. Woolf (1955): log OR +- z sqrt(1/a + 1/b + 1/c + 1/d);
    # Katz et al. (1978): log RR +- z sqrt(1/a - 1/(a+b) + 1/c - 1/(c+d)); Wald z = log / SE.
    (a, b), (c, d) = table = [[30, 12], [17, 25]]
    z = 1.959963984540054
    se_or = np.sqrt(1 / a + 1 / b + 1 / c + 1 / d)
    o = odds_ratio_ci(table)
    assert o.estimate == pytest.approx(a * d / (b * c))
    assert (o.ci_low, o.ci_high) == pytest.approx((np.exp(np.log(a * d / (b * c)) - z * se_or),
                                                   np.exp(np.log(a * d / (b * c)) + z * se_or)))
    assert o.p_value == pytest.approx(2 * sps.norm.sf(np.log(a * d / (b * c)) / se_or))
    rr, se_rr = (a / (a + b)) / (c / (c + d)), np.sqrt(1 / a - 1 / (a + b) + 1 / c - 1 / (c + d))
    r = risk_ratio(table)
    assert (r.estimate, r.se) == pytest.approx((rr, se_rr))
    assert (r.ci_low, r.ci_high) == pytest.approx((rr * np.exp(-z * se_rr), rr * np.exp(z * se_rr)))
    everyone = risk_ratio([[5, 0], [7, 0]], correction="never")  # both rows all events: SE 0
    assert (everyone.estimate, everyone.ci_low, everyone.ci_high) == (1.0, 1.0, 1.0)
    assert np.isnan(everyone.p_value)


def test_zero_cell_adds_half_to_every_cell() -> None:
    # Reference: statsmodels Table2x2 on the table with 0.5 added to every cell (Haldane-Anscombe).
    # (Table2x2's own shift_zeros replaces only the zero cells by 0.5, despite its docstring.)
    table = np.array([[5, 0], [3, 7]])
    ref = Table2x2(table + 0.5, shift_zeros=False)
    o, r = odds_ratio_ci(table), risk_ratio(table)
    assert o.estimate == pytest.approx(ref.oddsratio) and "Haldane" in o.note
    assert (o.ci_low, o.ci_high) == pytest.approx(ref.oddsratio_confint())
    assert (r.ci_low, r.ci_high) == pytest.approx(ref.riskratio_confint())


def test_two_by_two_and_table_validation() -> None:
    group = np.array([1, 1, 1, 0, 0, 0, 0], dtype=bool)
    outcome = np.array([1, 1, 0, 1, 0, 0, 0], dtype=bool)
    assert two_by_two(group, outcome).tolist() == [[2, 1], [1, 3]]
    with pytest.raises(ValueError, match="2x2"):
        odds_ratio_ci([[1, 2, 3], [4, 5, 6]])
    with pytest.raises(ValueError, match="integer counts"):
        risk_ratio([[1.5, 2], [3, 4]])
    assert np.isnan(odds_ratio_ci([[5, 0], [3, 7]], correction="never").estimate)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 400), min_size=2, max_size=60), st.sampled_from([0.5, 0.8, 0.9, 0.95, 0.99]))
def test_mean_ci_written_out_equals_scipys_ttest_interval(values: list[int], level: float) -> None:
    # mean_ci computes scipy's t interval by formula for speed; scipy.stats.ttest_1samp is the reference
    x = np.asarray(values, dtype=float)
    if np.ptp(x) == 0:
        return  # no spread: a point interval, tested above
    ref = sps.ttest_1samp(x, 0.0).confidence_interval(confidence_level=level)
    got = mean_ci(x, level)
    assert (got.ci_low, got.ci_high) == pytest.approx((ref.low, ref.high), rel=1e-10, abs=1e-10)
