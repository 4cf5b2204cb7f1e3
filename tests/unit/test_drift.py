"""Drift onset and slope of a per-turn metric; tau-bench's pass^k.

References: scipy.stats.ttest_1samp (one-sided) and statsmodels' multipletests(method='holm')
recompute the per-turn p-values; scipy.stats.linregress the slope; pass^k against the worked
example of its definition (C(c, k) / C(n, k), Yao et al. 2024, arXiv 2406.12045).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.multitest import multipletests

from personae.stats.drift import drift, pass_hat_k


def _curves(rng: np.random.Generator, n: int, turns: int, p_before: float, p_after: float | None = None,
            at: int | None = None) -> list[list[float]]:
    out = []
    for _ in range(n):
        p = np.full(turns, p_before)
        if at is not None and p_after is not None:
            p[at:] = p_after
        out.append(list((rng.random(turns) < p).astype(float)))
    return out


def test_planted_drop_is_found_at_its_turn() -> None:
    curves = _curves(np.random.default_rng(1), 30, 20, 0.95, 0.4, at=10)
    result = drift(curves, window=3)
    assert result.onset == 10
    assert result.slope < 0 and result.slope_ci_high < 0
    assert result.curve[15] < result.opening


@pytest.mark.slow  # a simulation of hundreds of studies: runs in make test, not in test-fast
def test_flat_curves_raise_at_most_alpha_false_alarms() -> None:
    rng = np.random.default_rng(7)
    alarms = sum(drift(_curves(rng, 10, 20, 0.85), window=3).onset is not None for _ in range(200))
    assert alarms / 200 <= 0.05, alarms


def test_numbers_match_scipy_and_statsmodels() -> None:
    x = np.random.default_rng(3).normal(0.8, 0.1, size=(6, 8))
    x[:, 5:] -= 0.3
    result = drift(x.tolist(), window=2)
    opening = x[:, :2].mean(axis=1)
    raw = [sps.ttest_1samp(x[:, t] - opening, 0.0, alternative="less").pvalue for t in range(2, 8)]
    assert np.allclose(result.p_holm, multipletests(raw, method="holm")[1])
    assert np.allclose(result.drop, [(x[:, t] - opening).mean() for t in range(2, 8)])
    fit = sps.linregress(np.tile(np.arange(8), 6).astype(float), x.ravel())
    assert result.slope == pytest.approx(fit.slope)
    half = sps.t.ppf(0.975, x.size - 2) * fit.stderr
    assert (result.slope_ci_low, result.slope_ci_high) == pytest.approx((fit.slope - half, fit.slope + half))
    assert result.onset == 5


def test_uneven_lengths_and_a_single_dialogue() -> None:
    result = drift([[1, 1, 1, 0, 0], [1, 1, 1]], window=2)
    assert len(result.curve) == 5 and result.curve[4] == 0.0
    lone = drift([[1.0, 1.0, 0.0, 0.0]], window=2)
    assert lone.onset is None and "one dialogue" in lone.note
    with pytest.raises(ValueError, match="longer than the opening window"):
        drift([[1.0, 1.0]], window=2)


def test_pass_hat_k_worked_example() -> None:
    # unit A: 3 of 4 repeats in character, unit B: 4 of 4.
    # pass^1 = (3/4 + 4/4) / 2 = 0.875; pass^2 = (C(3,2)/C(4,2) + 1) / 2 = (3/6 + 1) / 2 = 0.75
    units = [[True, True, False, True], [True] * 4]
    assert pass_hat_k(units, 1) == pytest.approx(0.875)
    assert pass_hat_k(units, 2) == pytest.approx(0.75)
    assert pass_hat_k(units, 4) == pytest.approx(0.5)
    assert pass_hat_k(units, 2) == pytest.approx(np.mean([math.comb(3, 2) / math.comb(4, 2), 1.0]))
    with pytest.raises(ValueError, match="needs at least 5"):
        pass_hat_k(units, 5)
