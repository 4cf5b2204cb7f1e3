"""Standardised mean differences (Cohen's d) with confidence intervals."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

from ._common import Seed, as_1d, as_paired, check_level, check_resamples
from .bootstrap import bootstrap_statistic
from .results import StatResult

_DENOMINATORS = ("average", "pooled", "difference")


def _d(a: np.ndarray, b: np.ndarray, axis: int, paired: bool, denominator: str) -> np.ndarray:
    va, vb = np.var(a, axis=axis, ddof=1), np.var(b, axis=axis, ddof=1)
    if denominator == "difference":
        scale = np.std(a - b, axis=axis, ddof=1)
    elif denominator == "pooled" and not paired:
        na, nb = a.shape[axis], b.shape[axis]
        scale = np.sqrt(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2))
    else:
        scale = np.sqrt((va + vb) / 2)
    with np.errstate(all="ignore"):
        return (np.mean(a, axis=axis) - np.mean(b, axis=axis)) / scale


def _normal_se(d: float, a: np.ndarray, b: np.ndarray, paired: bool, denominator: str) -> float:
    """Large-sample (delta-method, normal data) standard error of d."""
    na, nb = a.size, b.size
    va, vb = a.var(ddof=1), b.var(ddof=1)
    if denominator == "difference":  # d_z: var(mean D)/s_D^2 + d^2 var(s_D)/s_D^2
        return float(np.sqrt(1 / na + d**2 / (2 * (na - 1))))
    if not paired and denominator == "pooled":  # Hedges & Olkin (1985); Borenstein et al. (2009) eq. 4.20
        return float(np.sqrt((na + nb) / (na * nb) + d**2 / (2 * (na + nb))))
    s2 = (va + vb) / 2
    if paired:  # d_av, delta method; bivariate normal: cov(s_a^2, s_b^2) = 2 r^2 s_a^2 s_b^2 / (n - 1)
        r = float(np.corrcoef(a, b)[0, 1]) if va > 0 and vb > 0 else 0.0
        var = (np.var(a - b, ddof=1) / (na * s2)
               + d**2 * (va**2 + vb**2 + 2 * r**2 * va * vb) / (8 * s2**2 * (na - 1)))
    else:  # average-variance standardiser, unequal variances allowed (delta method; cf. Bonett 2008)
        var = (va / na + vb / nb) / s2 + d**2 * (va**2 / (na - 1) + vb**2 / (nb - 1)) / (8 * s2**2)
    return float(np.sqrt(var))


def _check_d_args(paired: bool, denominator: str, ci: str, seed: Seed | None) -> None:
    if denominator not in _DENOMINATORS:
        raise ValueError(f"denominator must be one of {_DENOMINATORS}, got {denominator!r}")
    if denominator == "difference" and not paired:
        raise ValueError("denominator='difference' (d_z) needs paired=True")
    if ci not in ("normal", "bootstrap"):
        raise ValueError(f"ci must be 'normal' or 'bootstrap', got {ci!r}")
    if ci == "bootstrap" and seed is None:
        raise ValueError("ci='bootstrap' needs an explicit seed")


def cohens_d(a: ArrayLike, b: ArrayLike, *, paired: bool = False, denominator: str = "average",
             level: float = 0.95, ci: str = "normal", n_resamples: int = 10_000,
             seed: Seed | None = None) -> StatResult:
    """Cohen's d = (mean(a) - mean(b)) / s, with a confidence interval.

    ``denominator``: ``"average"`` s = sqrt((sd_a^2 + sd_b^2) / 2) (METHODS.md section 2; d_av when
    paired); ``"pooled"`` s = the df-weighted pooled SD (classic Cohen's d, same as average for
    equal n); ``"difference"`` s = sd(a - b) (d_z, paired only). No small-sample (Hedges) correction.
    ``ci="normal"``: d +- z * SE with the large-sample SE for that design (see ``_normal_se``);
    ``ci="bootstrap"``: percentile bootstrap (pairs when paired, each group when not; needs ``seed``),
    by ``scipy.stats.bootstrap`` (``paired=True`` / ``False``).

    Own code for d and its normal SE: statsmodels' ``effectsize_smd`` gives only the
    Hedges-corrected pooled SMD, and neither library has the average-SD d (d_av) or d_z with
    their large-sample SEs.
    """
    check_level(level)
    _check_d_args(paired, denominator, ci, seed)
    x, y = as_paired(a, b, min_size=2) if paired else (as_1d(a, "a", min_size=2), as_1d(b, "b", min_size=2))
    d = float(_d(x, y, -1, paired, denominator))
    label = f"Cohen's d ({'paired' if paired else 'independent'}, {denominator} SD)"
    if not np.isfinite(d):
        return StatResult(float("nan"), n=int(x.size + (0 if paired else y.size)), level=level,
                          method=label, note="zero spread in the standardiser: d undefined")
    n = int(x.size if paired else x.size + y.size)
    if ci == "normal":
        se = _normal_se(d, x, y, paired, denominator)
        half = float(sps.norm.ppf(0.5 + level / 2)) * se
        return StatResult(d, d - half, d + half, n=n, level=level, se=se, method=f"{label}; normal CI")
    n_resamples = check_resamples(n_resamples)
    res = bootstrap_statistic(lambda u, v, axis=-1: _d(u, v, axis, paired, denominator), [x, y],
                              n_resamples=n_resamples, seed=seed, level=level, method="percentile",
                              label=label, paired=paired)
    how = res.method if paired else f"{label}; percentile bootstrap within groups, {n_resamples} resamples"
    return StatResult(d, res.ci_low, res.ci_high, n=n, level=level, se=res.se, method=how, note=res.note)
