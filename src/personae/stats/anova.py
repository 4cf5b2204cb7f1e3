"""One-way random-effects ANOVA: sums of squares, variance components, ICC(1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

from ._common import as_1d, as_labels, check_level
from .results import StatResult, record_dict


@dataclass(frozen=True)
class AnovaComponents:
    """One-way ANOVA table with random-effects variance components (groups = personas, say).

    ``sigma2_between`` is the ANOVA (method of moments) estimator (MS_between - MS_within) / n0,
    truncated at 0 (``truncated`` says when); ``share_between`` = sigma2_between / (sigma2_between
    + sigma2_within) is the share of variance explained by the grouping factor, i.e. ICC(1)
    truncated at 0. n0 = (N - sum n_i^2 / N) / (g - 1) is the (average) group size.
    """

    ss_between: float
    ss_within: float
    ss_total: float
    df_between: int
    df_within: int
    ms_between: float
    ms_within: float
    f: float
    p_value: float
    eta_squared: float
    """SS_between / SS_total (descriptive share, biased upward in small samples)."""
    sigma2_between: float
    sigma2_within: float
    share_between: float
    n: int
    n_groups: int
    n0: float
    truncated: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON; NaN and infinities become None."""
        return record_dict(self)


def _group_sums(values: ArrayLike, groups: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = as_1d(values, "values", min_size=2)
    g = as_labels(groups, "groups", y.size)
    _, codes = np.unique(g, return_inverse=True)
    counts = np.bincount(codes).astype(float)
    if counts.size < 2:
        raise ValueError("need at least two groups")
    if y.size <= counts.size:
        raise ValueError("need more observations than groups (some group with two or more values)")
    return y, codes, counts


def one_way_anova_components(values: ArrayLike, groups: ArrayLike) -> AnovaComponents:
    """One-way ANOVA of ``values`` by ``groups`` with random-effects variance components.

    F and p are the classical one-way ANOVA (scipy.stats.f_oneway); unbalanced groups are allowed.
    Own code: f_oneway returns only F and p, while the variance components need the sums of
    squares, which come out of the same pass (the tests pin F and p to f_oneway).
    """
    y, codes, counts = _group_sums(values, groups)
    n, g = y.size, counts.size
    means = np.bincount(codes, weights=y) / counts
    grand = y.mean()
    ss_between = float(np.sum(counts * (means - grand) ** 2))
    ss_within = float(np.sum((y - means[codes]) ** 2))
    ss_total = ss_between + ss_within
    df_b, df_w = g - 1, n - g
    ms_b, ms_w = ss_between / df_b, ss_within / df_w
    with np.errstate(divide="ignore", invalid="ignore"):
        f = ms_b / ms_w if ms_w > 0 else (np.inf if ms_b > 0 else np.nan)
    p = float(sps.f.sf(f, df_b, df_w)) if np.isfinite(f) else (0.0 if f == np.inf else np.nan)
    n0 = float((n - np.sum(counts**2) / n) / df_b)
    raw = (ms_b - ms_w) / n0
    s2b = max(raw, 0.0)
    total = s2b + ms_w
    return AnovaComponents(
        ss_between=ss_between, ss_within=ss_within, ss_total=ss_total, df_between=df_b, df_within=df_w,
        ms_between=ms_b, ms_within=ms_w, f=float(f), p_value=p,
        eta_squared=ss_between / ss_total if ss_total > 0 else float("nan"),
        sigma2_between=s2b, sigma2_within=ms_w,
        share_between=s2b / total if total > 0 else float("nan"),
        n=int(n), n_groups=int(g), n0=n0, truncated=raw < 0)


def icc1(values: ArrayLike, groups: ArrayLike, *, level: float = 0.95, average: bool = False) -> StatResult:
    """One-way random-effects intraclass correlation ICC(1) (Shrout & Fleiss 1979, case 1).

    ICC(1,1) = (MSB - MSW) / (MSB + (k - 1) MSW): the correlation between two values of the same
    group (e.g. two runs of one persona). ``average=True`` gives ICC(1,k) = (MSB - MSW) / MSB, the
    reliability of a group mean of k values. k = n0 for unbalanced groups (then the F-based CI of
    Shrout & Fleiss / McGraw & Wong 1996 is approximate). The estimate may be negative.
    ``statistic`` is F = MSB / MSW with its p-value (H0: ICC = 0). Own code: neither scipy nor
    statsmodels computes an ICC (the tests pin it to Shrout & Fleiss' table and pingouin's example).
    """
    check_level(level)
    comp = one_way_anova_components(values, groups)
    k, f = comp.n0, comp.f
    label = f"ICC(1,{'k' if average else '1'}), one-way random effects; F-based CI"
    note = "" if float(k).is_integer() else f"unbalanced groups: k = n0 = {k:.3f}, CI approximate"
    if not np.isfinite(f):
        return StatResult(float("nan") if np.isnan(f) else 1.0, statistic=f, p_value=comp.p_value,
                          n=comp.n_groups, level=level, method=label,
                          note="no within-group variance" if f == np.inf else "no variance at all")
    if average:
        est = (comp.ms_between - comp.ms_within) / comp.ms_between
    else:
        est = (comp.ms_between - comp.ms_within) / (comp.ms_between + (k - 1) * comp.ms_within)
    alpha = 1 - level
    f_low = f / sps.f.isf(alpha / 2, comp.df_between, comp.df_within)
    f_high = f * sps.f.isf(alpha / 2, comp.df_within, comp.df_between)
    if average:
        lo, hi = 1 - 1 / f_low, 1 - 1 / f_high
    else:
        lo, hi = (f_low - 1) / (f_low + k - 1), (f_high - 1) / (f_high + k - 1)
    return StatResult(float(est), float(lo), float(hi), statistic=float(f), p_value=comp.p_value,
                      n=comp.n_groups, level=level, method=label, note=note)
