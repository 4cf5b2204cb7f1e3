"""Always-valid confidence sequences for the mean of bounded observations, and the stopping rule.

Method: the hedged betting confidence sequence of Waudby-Smith & Ramdas (2024), "Estimating
means of bounded random variables by betting", Journal of the Royal Statistical Society Series B
86(1):1-27 (arXiv 2010.09686), Theorem 3 with the predictable plug-in bets of their eq. (26).
Observations x_1, x_2, ... lie in known bounds [lo, hi] (a paired difference of per-item
accuracies lies in [-1, 1]) and share the conditional mean mu. They are rescaled to [0, 1]; for
each candidate mean m a gambler bets on "x is above m" and another on "below m":

    K+_t(m) = prod_{i<=t} (1 + l+_i(m) (y_i - m)),   K-_t(m) = prod_{i<=t} (1 - l-_i(m) (y_i - m)),
    K_t(m)  = theta K+_t(m) + (1 - theta) K-_t(m)      (theta = 1/2: both directions)

with the bets l_i = sqrt(2 log(2/alpha) / (s2_{i-1} i log(1 + i))), s2 the running variance
estimate (1/4 + sum (y_j - mu_j)^2) / (i + 1) and mu_i = (1/2 + sum y_j) / (i + 1), truncated to
l+_i(m) <= c/m and l-_i(m) <= c/(1 - m) (c = 1/2) so that capital stays positive. At the true
mean K_t is a nonnegative martingale starting at 1, so by Ville's inequality P(some t has
K_t(mu) >= 1/alpha) <= alpha: the set {m : K_s(m) < 1/alpha for every s <= t} covers mu at
every t at once with probability >= 1 - alpha. That is what makes it safe to look after every
batch and stop when the data say so (optional stopping), which a fixed-sample CI is not.

The set is computed on a grid of candidate means and reported as the interval from the lowest
to the highest candidate not yet rejected, widened by one grid step on each side, so it never
claims more than the exact set does. A group-sequential design (O'Brien-Fleming / Pocock alpha
spending) was the alternative; the betting CS needs no planned number of looks, no normal
approximation, and no variance assumption beyond the known bounds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from .results import record_dict

METHOD = ("hedged betting confidence sequence (Waudby-Smith & Ramdas 2024, JRSS-B, Theorem 3, predictable "
          "plug-in bets); time-uniform: valid at every look")
CITATION = ("Waudby-Smith, I. & Ramdas, A. (2024). Estimating means of bounded random variables by betting. "
            "Journal of the Royal Statistical Society Series B 86(1), 1-27. arXiv:2010.09686")
StopRule = Literal["decision", "ci_width"]
Reason = Literal["decision", "ci_width", "max_items", "continue"]


@dataclass(frozen=True)
class ConfidenceSequence:
    """The confidence sequence of a mean after `n` observations (the running intersection over all
    earlier times, so it only ever narrows)."""

    estimate: float
    """Mean of the n observations (NaN when n = 0)."""
    cs_low: float
    """Lower end of the always-valid interval."""
    cs_high: float
    """Upper end of the always-valid interval."""
    n: int
    """Observations it rests on."""
    alpha: float
    """Miscoverage: the interval covers the mean at every n at once with probability >= 1 - alpha."""
    lo: float
    """Known lower bound of an observation."""
    hi: float
    """Known upper bound of an observation."""
    method: str = METHOD

    @property
    def width(self) -> float:
        return self.cs_high - self.cs_low

    def excludes(self, value: float) -> bool:
        """True when `value` lies outside the interval."""
        return value < self.cs_low or value > self.cs_high

    def as_dict(self) -> dict[str, Any]:
        return record_dict(self)


@dataclass(frozen=True)
class StopDecision:
    """What the stopping rule says after one look."""

    stop: bool
    """True: sample no more."""
    reason: Reason
    """'decision' (every comparison's CS excludes its null value, or is narrower than the width
    target when one is set), 'ci_width' (every CS is narrower than the target), 'max_items'
    (nothing left to sample), or 'continue'."""

    def as_dict(self) -> dict[str, Any]:
        return record_dict(self)


def _check(x: ArrayLike, lo: float, hi: float, alpha: float) -> np.ndarray:
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"bounds must be finite with lo < hi, got ({lo}, {hi})")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    arr = np.asarray(x, dtype=float).ravel()
    if arr.size and (not np.all(np.isfinite(arr)) or arr.min() < lo - 1e-12 or arr.max() > hi + 1e-12):
        raise ValueError(f"observations must be finite and within [{lo}, {hi}]; got min {arr.min()}, max {arr.max()}")
    return np.clip(arr, lo, hi)


def betting_cs_at(x: ArrayLike, looks: Sequence[int], *, alpha: float = 0.05, bounds: tuple[float, float] = (-1.0, 1.0),
                  grid: int = 1001, theta: float = 0.5, truncation: float = 0.5) -> tuple[ConfidenceSequence, ...]:
    """The confidence sequence after each of `looks` observations (each look <= len(x)), from one pass.

    `x` are the observations in the order they arrived; `bounds` are the known bounds of one
    observation; `grid` candidate means are tested. The CS at look n intersects the CSs at every
    time 1..n (not only at the looks): valid whatever the looks are, including looks chosen from
    the data. See the module docstring for the method (Waudby-Smith & Ramdas 2024).
    """
    lo, hi = float(bounds[0]), float(bounds[1])
    arr = _check(x, lo, hi, alpha)
    if grid < 3:
        raise ValueError(f"grid must be at least 3, got {grid}")
    if not 0 < theta < 1 or not 0 < truncation < 1:
        raise ValueError(f"theta and truncation must be in (0, 1), got {theta}, {truncation}")
    bad = [n for n in looks if n < 0 or n > arr.size]
    if bad:
        raise ValueError(f"looks must be between 0 and {arr.size} observations, got {bad}")
    y = (arr - lo) / (hi - lo)
    m = np.linspace(0.0, 1.0, grid)
    step = (hi - lo) / (grid - 1)
    out: list[ConfidenceSequence] = []
    if y.size:
        t = np.arange(1, y.size + 1)
        mu = (0.5 + np.cumsum(y)) / (t + 1)
        mu_prev = np.concatenate([[0.5], mu[:-1]])
        s2 = (0.25 + np.cumsum((y - mu_prev) ** 2)) / (t + 1)
        s2_prev = np.concatenate([[0.25], s2[:-1]])
        lam = np.sqrt(2 * np.log(2 / alpha) / (s2_prev * t * np.log1p(t)))[:, None]
        with np.errstate(divide="ignore"):
            lam_up = np.minimum(lam, truncation / m[None, :])
            lam_down = np.minimum(lam, truncation / (1 - m[None, :]))
        dev = y[:, None] - m[None, :]
        log_up = np.cumsum(np.log1p(lam_up * dev), axis=0) + math.log(theta)
        log_down = np.cumsum(np.log1p(-lam_down * dev), axis=0) + math.log(1 - theta)
        rejected = np.maximum.accumulate(np.logaddexp(log_up, log_down) >= math.log(1 / alpha), axis=0)
    for n in looks:
        if n == 0:
            out.append(ConfidenceSequence(float("nan"), lo, hi, 0, alpha, lo, hi))
            continue
        kept = np.flatnonzero(~rejected[n - 1])
        if kept.size == 0:  # every candidate rejected (possible only with a too-coarse grid): the nearest one
            kept = np.array([int(np.clip(np.round(np.mean(y[:n]) * (grid - 1)), 0, grid - 1))])
        low = max(lo, lo + (hi - lo) * m[kept[0]] - step)
        high = min(hi, lo + (hi - lo) * m[kept[-1]] + step)
        out.append(ConfidenceSequence(float(np.mean(arr[:n])), float(low), float(high), int(n), alpha, lo, hi))
    return tuple(out)


def betting_cs(x: ArrayLike, *, alpha: float = 0.05, bounds: tuple[float, float] = (-1.0, 1.0),
               grid: int = 1001) -> ConfidenceSequence:
    """The always-valid confidence sequence of the mean of `x` after all its observations."""
    arr = np.asarray(x, dtype=float).ravel()
    return betting_cs_at(arr, [arr.size], alpha=alpha, bounds=bounds, grid=grid)[0]


def stop_decision(sequences: Sequence[ConfidenceSequence], nulls: Sequence[float], *, rule: StopRule,
                  ci_width: float | None = None, exhausted: bool = False) -> StopDecision:
    """Stop or continue after a look, from every comparison's CS at that look.

    rule 'decision': stop once every CS excludes its null value (an effect and its direction are
    known) or, with `ci_width` set, is at most that wide (the effect is known to be small).
    rule 'ci_width': stop once every CS is at most `ci_width` wide. `exhausted`: no more units to
    sample (stop with reason 'max_items' unless the rule is met at the same look).
    """
    if len(sequences) != len(nulls):
        raise ValueError(f"one null value per sequence: {len(sequences)} sequences, {len(nulls)} nulls")
    if rule not in ("decision", "ci_width"):
        raise ValueError(f"rule must be 'decision' or 'ci_width', got {rule!r}")
    if rule == "ci_width" and ci_width is None:
        raise ValueError("rule 'ci_width' needs ci_width")
    if ci_width is not None and not ci_width > 0:
        raise ValueError(f"ci_width must be positive, got {ci_width}")
    narrow = [ci_width is not None and cs.n > 0 and cs.width <= ci_width for cs in sequences]
    if sequences and rule == "ci_width" and all(narrow):
        return StopDecision(True, "ci_width")
    if sequences and rule == "decision" and all(cs.n > 0 and (cs.excludes(v) or w)
                                                for cs, v, w in zip(sequences, nulls, narrow)):
        return StopDecision(True, "decision")
    return StopDecision(True, "max_items") if exhausted else StopDecision(False, "continue")


__all__ = ["CITATION", "METHOD", "ConfidenceSequence", "StopDecision", "StopRule", "betting_cs", "betting_cs_at",
           "stop_decision"]
