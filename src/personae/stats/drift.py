"""Drift of a per-turn metric over dialogues, and pass^k over repeated dialogues.

`drift` answers "where does the character start to slip?": the first turn whose level falls
below the opening window's by more than chance, and the slope of the whole curve. A curve of 20
or 60 turns tests 20 or 60 turns, so the per-turn tests are Holm-corrected (family-wise error
<= alpha over the whole curve; a flat curve raises a false alarm at most alpha of the time,
checked by simulation in tests/unit/test_drift.py).

`pass_hat_k` is tau-bench's reliability measure (Yao et al. 2024, arXiv 2406.12045): per unit with
c successes in n trials, C(c, k) / C(n, k) estimates the chance that k fresh trials all succeed;
averaged over units. scipy has no such function; `math.comb` does the counting.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from .multiple import holm
from .results import NAN, record_dict


@dataclass(frozen=True)
class Drift:
    """Where a per-turn metric first falls below its opening level, and its slope per turn."""

    onset: int | None
    """First turn (index into the curve) significantly below the opening window; None if none is."""
    opening: float
    """Mean over dialogues of the metric in the opening window."""
    curve: tuple[float, ...]
    """Mean of the metric per turn over the dialogues that reached it."""
    drop: tuple[float, ...]
    """Per turn after the window: mean paired difference (turn minus the dialogue's own opening)."""
    p_holm: tuple[float, ...]
    """Holm-adjusted one-sided p-values of those drops (t-test of the paired differences)."""
    slope: float
    """OLS slope of the metric on the turn index, over every (dialogue, turn) value."""
    slope_ci_low: float
    slope_ci_high: float
    window: int
    """Turns in the opening window."""
    n_dialogues: int
    alpha: float
    method: str = ("opening = each dialogue's mean over the first `window` turns; per later turn a one-sided "
                   "paired t-test of (turn - opening) < 0, Holm-corrected over the turns; slope by OLS with a "
                   "t-based CI")
    note: str = ""

    def as_dict(self) -> dict[str, object]:
        return record_dict(self)


def _less_p(d: np.ndarray) -> float:
    """One-sided p of mean(d) < 0 (scipy's t-test; a constant difference is decided by its sign)."""
    if d.size < 2:
        return NAN
    if np.ptp(d) == 0:
        return 0.0 if d[0] < 0 else 1.0
    return float(sps.ttest_1samp(d, 0.0, alternative="less").pvalue)


def drift(values: Sequence[Sequence[float]], *, window: int = 3, alpha: float = 0.05,
          level: float = 0.95) -> Drift:
    """Drift of a metric given per dialogue its value at each turn (NaN where not measured).

    `values[d][t]` is dialogue d's metric at turn t; dialogues may differ in length. A dialogue
    enters the test of turn t only if it has a value at t and in its opening window.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    if not 0 < alpha < 1 or not 0 < level < 1:
        raise ValueError("alpha and level must be in (0, 1)")
    width = max((len(v) for v in values), default=0)
    x = np.full((len(values), width), np.nan)
    for d, row in enumerate(values):
        x[d, : len(row)] = np.asarray(row, dtype=float)
    if x.size == 0 or width <= window:
        raise ValueError(f"drift needs curves longer than the opening window ({window} turns), got {width}")
    with warnings.catch_warnings():  # a dialogue with no value in its window has no opening: NaN, on purpose
        warnings.simplefilter("ignore", RuntimeWarning)
        opening_each = np.nanmean(x[:, :window], axis=1)
    curve = tuple(float(np.nanmean(col)) if np.isfinite(col).any() else NAN for col in x.T)
    drops, raw = [], []
    for t in range(window, width):
        d = x[:, t] - opening_each
        d = d[np.isfinite(d)]
        drops.append(float(d.mean()) if d.size else NAN)
        raw.append(_less_p(d))
    tested = [i for i, p in enumerate(raw) if np.isfinite(p)]
    adjusted = np.full(len(raw), NAN)
    if tested:
        adjusted[tested] = holm([raw[i] for i in tested])
    onset = next((window + i for i in range(len(raw)) if np.isfinite(adjusted[i]) and adjusted[i] <= alpha), None)
    turns, ys = np.nonzero(np.isfinite(x))[1], x[np.isfinite(x)]
    note = ""
    if len(values) < 2:
        note = "one dialogue: no turn can be tested (the paired test needs at least 2 dialogues)."
    if np.unique(turns).size >= 2 and ys.size >= 3:
        fit = sps.linregress(turns.astype(float), ys)
        half = float(sps.t.ppf(0.5 + level / 2, ys.size - 2) * fit.stderr) if np.isfinite(fit.stderr) else NAN
        slope, lo, hi = float(fit.slope), float(fit.slope) - half, float(fit.slope) + half
    else:
        slope = lo = hi = NAN
    opening = float(np.nanmean(opening_each)) if np.isfinite(opening_each).any() else NAN
    return Drift(onset=onset, opening=opening, curve=curve, drop=tuple(drops),
                 p_holm=tuple(float(p) for p in adjusted), slope=slope, slope_ci_low=lo, slope_ci_high=hi,
                 window=window, n_dialogues=len(values), alpha=alpha, note=note)


def pass_hat_k(successes: Sequence[Sequence[bool]], k: int) -> float:
    """tau-bench's pass^k: mean over units of C(c, k) / C(n, k) (c successes of n trials each).

    Every unit needs at least k trials. pass^1 is the mean success rate; pass^k falls as k grows
    unless every unit succeeds every time.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not successes:
        raise ValueError("pass^k needs at least one unit")
    shares = []
    for i, trials in enumerate(successes):
        n, c = len(trials), int(sum(bool(s) for s in trials))
        if n < k:
            raise ValueError(f"unit {i} has {n} trial(s); pass^{k} needs at least {k} per unit")
        shares.append(math.comb(c, k) / math.comb(n, k))
    return float(np.mean(shares))
