"""2x2 tables: Fisher's exact test, odds ratio (Woolf) and risk ratio (log method) CIs.

Table layout everywhere: rows are the two groups (row 0 = the group of interest, e.g. congruent;
row 1 = the reference, e.g. incongruent), columns are [event, no event] (e.g. [correct, wrong]).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats as sps
from scipy.stats.contingency import odds_ratio as _scipy_odds_ratio

from ._common import check_alternative, check_level
from .results import StatResult


def as_table(table: ArrayLike) -> np.ndarray:
    """A validated 2x2 table of non-negative integer counts (as float)."""
    t = np.asarray(table, dtype=float)
    if t.shape != (2, 2):
        raise ValueError(f"table must be 2x2 ([[a, b], [c, d]]), got shape {t.shape}")
    if not np.all(np.isfinite(t)) or np.any(t < 0) or np.any(t != np.round(t)):
        raise ValueError("table must hold non-negative integer counts")
    if np.any(t.sum(axis=1) == 0):
        raise ValueError("each row of the table needs at least one observation")
    return t


def two_by_two(group: ArrayLike, outcome: ArrayLike) -> np.ndarray:
    """The 2x2 table [[g & o, g & ~o], [~g & o, ~g & ~o]] from two boolean arrays."""
    g, o = np.asarray(group), np.asarray(outcome)
    if g.ndim != 1 or g.shape != o.shape:
        raise ValueError("group and outcome must be one-dimensional and of equal length")
    for name, x in (("group", g), ("outcome", o)):
        if x.dtype != bool and not np.all(np.isin(x, (0, 1))):
            raise ValueError(f"{name} must be boolean or 0/1")
    g, o = g.astype(bool), o.astype(bool)
    return np.array([[np.sum(g & o), np.sum(g & ~o)], [np.sum(~g & o), np.sum(~g & ~o)]], dtype=int)


def fisher_exact(table: ArrayLike, *, alternative: str = "two-sided", level: float = 0.95) -> StatResult:
    """Fisher's exact test on a 2x2 table with the conditional odds ratio and its exact CI.

    ``estimate`` is the conditional maximum-likelihood odds ratio and the CI the exact conditional
    interval (both as R's fisher.test, via scipy.stats.contingency.odds_ratio); ``statistic`` is
    the sample odds ratio ad / bc that scipy.stats.fisher_exact reports; ``p_value`` is Fisher's.
    """
    t = as_table(table)
    check_alternative(alternative)
    check_level(level)
    ints = t.astype(int)
    with np.errstate(divide="ignore", invalid="ignore"):
        sample_or, p = sps.fisher_exact(ints, alternative=alternative)
    cond = _scipy_odds_ratio(ints, kind="conditional")
    ci = cond.confidence_interval(confidence_level=level, alternative=alternative)
    return StatResult(float(cond.statistic), float(ci.low), float(ci.high), statistic=float(sample_or),
                      p_value=float(p), n=int(t.sum()), level=level,
                      method=f"Fisher exact test, {alternative}; conditional MLE odds ratio, exact CI")


def _shift(t: np.ndarray, correction: str) -> tuple[np.ndarray, str]:
    if correction not in ("auto", "always", "never"):
        raise ValueError(f"correction must be 'auto', 'always' or 'never', got {correction!r}")
    if correction == "always" or (correction == "auto" and np.any(t == 0)):
        return t + 0.5, "0.5 added to every cell (Haldane-Anscombe)"
    return t, ""


def _table2x2(t: np.ndarray) -> Any:
    from statsmodels.stats.contingency_tables import Table2x2  # noqa: PLC0415

    return Table2x2(t, shift_zeros=False)


def odds_ratio_ci(table: ArrayLike, *, level: float = 0.95, correction: str = "auto") -> StatResult:
    """Sample odds ratio (a d) / (b c) with Woolf's log-method CI and Wald z test of OR = 1.

    SE(log OR) = sqrt(1/a + 1/b + 1/c + 1/d), all from statsmodels' ``Table2x2`` (oddsratio,
    oddsratio_confint, oddsratio_pvalue). ``correction="auto"`` adds 0.5 to every cell when any
    cell is zero (Haldane-Anscombe; statsmodels' own ``shift_zeros`` instead replaces only the zero
    cells by 0.5, so personae shifts the table itself); "always" adds it regardless, "never"
    leaves zeros (estimate NaN then, with a note).
    """
    t, note = _shift(as_table(table), correction)
    check_level(level)
    if np.min(t) == 0:
        return StatResult(float("nan"), n=int(t.sum()), level=level, method="odds ratio, Woolf CI",
                          note="a zero cell makes the odds ratio undefined; use correction='auto'")
    ref = _table2x2(t)
    low, high = ref.oddsratio_confint(alpha=1 - level)
    se = float(ref.log_oddsratio_se)
    return StatResult(float(ref.oddsratio), float(low), float(high), statistic=float(ref.log_oddsratio / se),
                      p_value=float(ref.oddsratio_pvalue()), n=int(round(t.sum())), level=level, se=se,
                      method="odds ratio; Woolf log CI; Wald z on log OR (se is of log OR)", note=note)


def risk_ratio(table: ArrayLike, *, level: float = 0.95, correction: str = "auto") -> StatResult:
    """Risk ratio RR = [a / (a + b)] / [c / (c + d)] with the log-method CI and Wald z test.

    SE(log RR) = sqrt(1/a - 1/(a + b) + 1/c - 1/(c + d)) (Katz et al. 1978), all from statsmodels'
    ``Table2x2`` (riskratio, riskratio_confint, riskratio_pvalue). Example: rows [congruent,
    incongruent], columns [correct, wrong] gives Acc(congruent) / Acc(incongruent). When both rows
    have only events the SE is 0: the CI is the point and there is no test (statsmodels would
    divide by 0).
    """
    t, note = _shift(as_table(table), correction)
    check_level(level)
    (a, b), (c, d) = t
    if a == 0 or c == 0:
        return StatResult(float("nan"), n=int(t.sum()), level=level, method="risk ratio, log CI",
                          note="no events in a row makes the log risk ratio undefined")
    ref = _table2x2(t)
    se = float(ref.log_riskratio_se)
    rr = float(ref.riskratio)
    low, high, stat, p = rr, rr, float("nan"), float("nan")
    if se > 0:
        low, high = (float(v) for v in ref.riskratio_confint(alpha=1 - level))
        stat, p = float(ref.log_riskratio / se), float(ref.riskratio_pvalue())
    return StatResult(rr, low, high, statistic=stat, p_value=p, n=int(round(t.sum())), level=level, se=se,
                      method="risk ratio; log-method CI; Wald z on log RR (se is of log RR)", note=note)
