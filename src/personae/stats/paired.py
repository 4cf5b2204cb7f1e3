"""Paired tests: Wilcoxon signed-rank on paired values, McNemar on paired binary outcomes."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps

from ._common import as_paired, check_alternative, check_level
from .results import StatResult


def wilcoxon_signed_rank(a: ArrayLike, b: ArrayLike, *, alternative: str = "two-sided",
                         zero_method: str = "wilcox", method: str = "auto") -> StatResult:
    """Wilcoxon signed-rank test of the paired differences ``a - b`` (wraps scipy.stats.wilcoxon).

    ``estimate`` is the median of ``a - b``. When every difference is zero there is nothing to
    rank: the result is statistic 0 and p = 1.0, and ``note`` says so (scipy would fail or give NaN).
    ``zero_method`` and ``method`` are scipy's ('wilcox' drops zero differences).
    """
    x, y = as_paired(a, b)
    check_alternative(alternative)
    d = x - y
    n_nonzero = int(np.count_nonzero(d))
    label = f"Wilcoxon signed-rank ({zero_method}, {method}), {alternative}"
    median = float(np.median(d))
    if n_nonzero == 0:
        return StatResult(median, statistic=0.0, p_value=1.0, n=int(d.size), method=label,
                          note="all paired differences are zero: no evidence of a difference (p set to 1)")
    res = sps.wilcoxon(x, y, zero_method=zero_method, alternative=alternative, method=method)
    note = f"{d.size - n_nonzero} zero difference(s) dropped" if zero_method == "wilcox" and n_nonzero < d.size else ""
    return StatResult(median, statistic=float(res.statistic), p_value=float(res.pvalue), n=int(d.size),
                      method=label, note=note)


def mcnemar_counts(n10: int, n01: int, *, n: int | None = None, exact: bool = True,
                   correction: bool = True, level: float = 0.95) -> StatResult:
    """McNemar's test from the discordant counts of a paired binary design.

    ``n10`` = units with a = 1 and b = 0; ``n01`` = units with a = 0 and b = 1. The test is
    ``statsmodels.stats.contingency_tables.mcnemar``: ``exact`` uses the binomial test on the
    discordant pairs (p = min(1, 2 * P(X <= min(n10, n01)))); otherwise the chi-square statistic
    (|n10 - n01| - c)^2 / (n10 + n01) with continuity c = 1 if ``correction``. Without discordant
    pairs p = 1 and ``note`` says so (statsmodels' chi-square would divide 0 by 0).
    With the total ``n`` given, ``estimate`` is P(a) - P(b) = (n10 - n01) / n with a Wald CI for
    paired proportions (Agresti 2013, 10.1.1); otherwise the estimate is NaN. The CI is own code:
    neither scipy nor statsmodels has an interval for a difference of paired proportions.
    """
    from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar  # noqa: PLC0415

    for name, v in (("n10", n10), ("n01", n01)):
        if isinstance(v, bool) or int(v) != v or v < 0:
            raise ValueError(f"{name} must be a non-negative integer count, got {v!r}")
    n10, n01 = int(n10), int(n01)
    check_level(level)
    m = n10 + n01
    kind = "exact binomial" if exact else ("chi-square, continuity-corrected" if correction else "chi-square")
    if m == 0:
        stat, p, note = 0.0, 1.0, "no discordant pairs: no evidence of a difference (p set to 1)"
    else:
        res = sm_mcnemar([[0, n10], [n01, 0]], exact=exact, correction=correction)
        stat, p, note = float(res.statistic), float(res.pvalue), ""
    est = lo = hi = se = float("nan")
    if n is not None:
        if int(n) != n or n < m or n < 1:
            raise ValueError(f"n must be a positive integer >= n10 + n01 = {m}, got {n!r}")
        est = (n10 - n01) / n
        se = float(np.sqrt(max(m - (n10 - n01) ** 2 / n, 0.0)) / n)
        half = float(sps.norm.ppf(0.5 + level / 2)) * se
        lo, hi = est - half, est + half
    return StatResult(est, lo, hi, statistic=float(stat), p_value=p, n=int(n) if n is not None else m,
                      level=level, se=se, method=f"McNemar ({kind}); estimate P(a) - P(b), Wald CI",
                      note=note)


def _as_binary(values: ArrayLike, name: str, size: int | None = None) -> np.ndarray:
    x = np.asarray(values)
    if x.size == 0:
        raise ValueError(f"{name} is empty")
    if x.ndim != 1 or (size is not None and x.size != size):
        raise ValueError(f"{name} must be one-dimensional" + (f" with {size} entries" if size else ""))
    if x.dtype != bool:
        if not np.all(np.isin(x, (0, 1))):
            raise ValueError(f"{name} must be boolean or 0/1")
        x = x.astype(bool)
    return x


def mcnemar(a: ArrayLike, b: ArrayLike, *, exact: bool = True, correction: bool = True,
            level: float = 0.95) -> StatResult:
    """McNemar's test on two paired boolean arrays (e.g. majority answer correct under a and b).

    ``estimate`` is P(a) - P(b) with a Wald CI; see :func:`mcnemar_counts`.
    """
    x = _as_binary(a, "a")
    y = _as_binary(b, "b", x.size)
    return mcnemar_counts(int(np.sum(x & ~y)), int(np.sum(~x & y)), n=int(x.size), exact=exact,
                          correction=correction, level=level)
