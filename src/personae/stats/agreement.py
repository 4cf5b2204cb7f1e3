"""Agreement among repeated verdicts: Fleiss' kappa and the share of unanimous items."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._common import Seed, check_level, check_resamples, rng_from
from .bootstrap import interval_from_distribution
from .results import StatResult


def category_counts(labels: Sequence[Sequence[Any]] | np.ndarray,
                    categories: Sequence[Any] | None = None) -> np.ndarray:
    """Items x categories count table from an items x raters table of labels.

    ``categories`` fixes the column order (default: sorted distinct labels); a label outside it is
    an error. Every item must have the same number of ratings.
    """
    rows = [list(r) for r in labels]
    if not rows:
        raise ValueError("labels is empty")
    if len({len(r) for r in rows}) != 1:
        raise ValueError("every item needs the same number of ratings")
    cats = sorted({x for r in rows for x in r}) if categories is None else list(categories)
    index = {c: i for i, c in enumerate(cats)}
    counts = np.zeros((len(rows), len(cats)), dtype=int)
    for i, row in enumerate(rows):
        for label in row:
            if label not in index:
                raise ValueError(f"label {label!r} (item {i}) is not one of the categories {cats}")
            counts[i, index[label]] += 1
    return counts


def _as_counts(counts: ArrayLike) -> np.ndarray:
    t = np.asarray(counts, dtype=float)
    if t.ndim != 2 or t.shape[0] < 1 or t.shape[1] < 1:
        raise ValueError(f"counts must be an items x categories table, got shape {t.shape}")
    if np.any(t < 0) or np.any(t != np.round(t)):
        raise ValueError("counts must be non-negative integers")
    per_item = t.sum(axis=1)
    if np.any(per_item != per_item[0]) or per_item[0] < 2:
        raise ValueError("every item needs the same number (>= 2) of ratings")
    return t


def _kappa(t: np.ndarray) -> np.ndarray:
    """Fleiss' kappa for tables of shape (..., items, categories)."""
    k = t.sum(axis=-1)[..., :1]
    p_item = ((t * (t - 1)).sum(axis=-1) / (k * (k - 1))).mean(axis=-1)
    p_cat = t.sum(axis=-2) / t.sum(axis=(-2, -1))[..., None]
    p_exp = (p_cat**2).sum(axis=-1)
    with np.errstate(all="ignore"):
        return (p_item - p_exp) / (1 - p_exp)


def fleiss_kappa(counts: ArrayLike, *, n_resamples: int = 0, seed: Seed | None = None,
                 level: float = 0.95) -> StatResult:
    """Fleiss' (1971) kappa from an items x categories count table (each row sums to k raters).

    kappa = (P_bar - P_e) / (1 - P_e). With ``n_resamples`` > 0 a percentile bootstrap CI over
    items is added (needs ``seed``). If every rating falls in one category kappa is undefined (NaN,
    said in ``note``) although agreement is perfect.
    """
    t = _as_counts(counts)
    check_level(level)
    label = "Fleiss' kappa"
    kappa = float(_kappa(t))
    if not np.isfinite(kappa):
        return StatResult(float("nan"), n=t.shape[0], level=level, method=label,
                          note="all ratings fall in one category: chance agreement is 1 and kappa is undefined")
    if n_resamples == 0:
        return StatResult(kappa, n=t.shape[0], level=level, method=label)
    n_resamples = check_resamples(n_resamples)
    if seed is None:
        raise ValueError("a bootstrap CI (n_resamples > 0) needs an explicit seed")
    rng = rng_from(seed)
    rows = max(1, (1 << 22) // t.size)
    boot = np.concatenate([_kappa(t[rng.integers(0, t.shape[0], (min(rows, n_resamples - s), t.shape[0]))])
                           for s in range(0, n_resamples, rows)])
    low, high, note = interval_from_distribution(boot, kappa, level, "percentile")
    return StatResult(kappa, low, high, n=t.shape[0], level=level, se=float(np.nanstd(boot, ddof=1)),
                      method=f"{label}; percentile bootstrap over items, {n_resamples} resamples", note=note)


def unanimous_share(counts: ArrayLike) -> float:
    """Share of items on which all raters (e.g. all k repeats of a judge) gave the same label."""
    t = _as_counts(counts)
    return float(np.mean(t.max(axis=1) == t.sum(axis=1)))
