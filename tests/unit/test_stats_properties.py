"""personae.stats, part 3: property tests (hypothesis, derandomised so every run is the same)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from personae.stats import (
    bootstrap_ci,
    cohens_d,
    fleiss_kappa,
    holm,
    icc1,
    jensen_shannon,
    odds_ratio_ci,
    paired_bootstrap,
    paired_power,
    permutation_test,
    risk_ratio,
)

FAST = settings(max_examples=40, deadline=None, derandomize=True)
finite = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)
probabilities = arrays(float, st.integers(1, 30), elements=st.floats(0, 1, allow_nan=False))


@FAST
@given(probabilities)
def test_holm_adjusted_at_least_raw_and_order_preserving(p: np.ndarray) -> None:
    adj = holm(p)
    assert np.all(adj >= p - 1e-15) and np.all(adj <= 1.0)
    order = np.argsort(p, kind="stable")
    assert np.all(np.diff(adj[order]) >= -1e-15)


distributions = st.integers(2, 8).flatmap(
    lambda k: st.tuples(*(arrays(float, k, elements=st.floats(0, 10, allow_nan=False)) for _ in range(2)))
).filter(lambda pq: pq[0].sum() > 0 and pq[1].sum() > 0)


@FAST
@given(distributions)
def test_jensen_shannon_symmetric_bounded(pq: tuple[np.ndarray, np.ndarray]) -> None:
    p, q = pq
    jsd = jensen_shannon(p, q)
    assert 0.0 <= jsd <= 1.0
    assert jsd == jensen_shannon(q, p) or abs(jsd - jensen_shannon(q, p)) < 1e-12
    assert jensen_shannon(p, p) < 1e-12


samples = arrays(float, st.integers(3, 25), elements=finite)


@FAST
@given(samples, st.integers(0, 2**16))
def test_bootstrap_percentile_ci_contains_mean(x: np.ndarray, seed: int) -> None:
    res = bootstrap_ci(x, seed=seed, n_resamples=300)
    tol = 1e-9 * (1 + np.abs(x).max())
    assert res.ci_low - tol <= res.estimate <= res.ci_high + tol


@FAST
@given(st.integers(3, 25).flatmap(lambda n: st.tuples(arrays(float, n, elements=finite),
                                                      arrays(float, n, elements=finite))),
       st.integers(0, 2**16))
def test_paired_bootstrap_antisymmetric(ab: tuple[np.ndarray, np.ndarray], seed: int) -> None:
    a, b = ab
    fwd, back = paired_bootstrap(a, b, seed=seed, n_resamples=200), paired_bootstrap(b, a, seed=seed, n_resamples=200)
    scale = 1e-9 * (1 + np.abs(np.concatenate(ab)).max())
    assert abs(fwd.estimate + back.estimate) <= scale
    assert abs(fwd.ci_low + back.ci_high) <= scale and abs(fwd.ci_high + back.ci_low) <= scale


@FAST
@given(samples, samples)
def test_cohens_d_antisymmetric(a: np.ndarray, b: np.ndarray) -> None:
    d1, d2 = cohens_d(a, b), cohens_d(b, a)
    if np.isnan(d1.estimate):
        assert np.isnan(d2.estimate)
    else:
        assert abs(d1.estimate + d2.estimate) < 1e-9 * (1 + abs(d1.estimate))


@FAST
@given(arrays(float, st.tuples(st.integers(2, 6), st.integers(2, 5)), elements=st.integers(0, 9).map(float)))
def test_icc1_bounded(table: np.ndarray) -> None:
    k = table.shape[1]
    res = icc1(table.ravel(), np.repeat(np.arange(table.shape[0]), k))
    if not np.isnan(res.estimate):
        assert -1 / (k - 1) - 1e-12 <= res.estimate <= 1.0
        if np.isfinite(res.ci_low):
            assert res.ci_low <= res.estimate <= res.ci_high


@FAST
@given(samples, samples, st.integers(0, 2**16))
def test_permutation_p_in_unit_interval(a: np.ndarray, b: np.ndarray, seed: int) -> None:
    res = permutation_test(a, b, seed=seed, n_resamples=300)
    assert 0.0 < res.p_value <= 1.0


tables = arrays(int, (2, 2), elements=st.integers(0, 60)).filter(lambda t: np.all(t.sum(axis=1) > 0))


@FAST
@given(tables)
def test_ratio_cis_contain_estimate_and_invert_with_rows(table: np.ndarray) -> None:
    o, flipped = odds_ratio_ci(table), odds_ratio_ci(table[::-1])
    assert o.ci_low <= o.estimate <= o.ci_high
    assert np.isclose(o.estimate * flipped.estimate, 1.0)
    r = risk_ratio(table)
    if not np.isnan(r.estimate):
        assert r.ci_low <= r.estimate * (1 + 1e-12) and r.estimate <= r.ci_high * (1 + 1e-12)


@FAST
@given(arrays(int, st.tuples(st.integers(2, 12), st.integers(2, 4)), elements=st.integers(0, 5)))
def test_fleiss_kappa_at_most_one(raw: np.ndarray) -> None:
    counts = raw.copy()
    counts[:, 0] += 6 - counts.sum(axis=1).clip(max=6)  # every item gets the same number of ratings
    counts = counts[counts.sum(axis=1) == 6]
    if counts.shape[0] == 0:
        return
    kappa = fleiss_kappa(counts).estimate
    assert np.isnan(kappa) or kappa <= 1.0 + 1e-12


@FAST
@given(st.floats(0.1, 0.85), st.floats(0.01, 0.1), st.integers(1, 10), st.floats(0, 0.9))
def test_power_increases_with_items(p0: float, delta: float, k: int, icc: float) -> None:
    small = paired_power(50, p0, delta, k=k, icc=icc).power
    large = paired_power(200, p0, delta, k=k, icc=icc).power
    assert 0 < small <= large <= 1
