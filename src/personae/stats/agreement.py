"""Agreement among raters or repeated verdicts: Fleiss' kappa, Krippendorff's alpha, unanimous share."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any, Literal, get_args

import numpy as np
from numpy.typing import ArrayLike

from ._common import Seed, check_level, check_resamples
from .bootstrap import bootstrap_statistic
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
    """Fleiss' kappa for tables of shape (..., items, categories), for the bootstrap.

    Own code because statsmodels' ``fleiss_kappa`` takes one table; this evaluates a whole batch
    of resampled tables at once (the point estimate is statsmodels', and the two agree to 1e-12).
    """
    k = t.sum(axis=-1)[..., :1]
    p_item = ((t * (t - 1)).sum(axis=-1) / (k * (k - 1))).mean(axis=-1)
    p_cat = t.sum(axis=-2) / t.sum(axis=(-2, -1))[..., None]
    p_exp = (p_cat**2).sum(axis=-1)
    with np.errstate(all="ignore"):
        return (p_item - p_exp) / (1 - p_exp)


def _units_bootstrap(fn: Callable[[np.ndarray], np.ndarray], n_units: int, *, n_resamples: int, seed: Seed | None, level: float,
                     batch: int, label: str) -> StatResult:
    """Percentile bootstrap over the rows (units) of a table: ``scipy.stats.bootstrap`` on the row
    indices, with ``fn(indices)`` evaluating the statistic on the resampled rows."""
    n_resamples = check_resamples(n_resamples)
    if seed is None:
        raise ValueError("a bootstrap CI (n_resamples > 0) needs an explicit seed")
    return bootstrap_statistic(lambda idx, axis=-1: fn(idx), [np.arange(n_units)], n_resamples=n_resamples,
                               seed=seed, level=level, method="percentile", label=label, batch=batch)


def fleiss_kappa(counts: ArrayLike, *, n_resamples: int = 0, seed: Seed | None = None,
                 level: float = 0.95) -> StatResult:
    """Fleiss' (1971) kappa from an items x categories count table (each row sums to k raters).

    kappa = (P_bar - P_e) / (1 - P_e), by ``statsmodels.stats.inter_rater.fleiss_kappa``. With
    ``n_resamples`` > 0 a percentile bootstrap CI over items is added (``scipy.stats.bootstrap``
    over item indices; needs ``seed``). If every rating falls in one category kappa is undefined
    (NaN, said in ``note``) although agreement is perfect (statsmodels would divide 0 by 0).
    """
    from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa  # noqa: PLC0415

    t = _as_counts(counts)
    check_level(level)
    label = "Fleiss' kappa"
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        kappa = float(sm_fleiss_kappa(t, method="fleiss"))
    if not np.isfinite(kappa):
        return StatResult(float("nan"), n=t.shape[0], level=level, method=label,
                          note="all ratings fall in one category: chance agreement is 1 and kappa is undefined")
    if n_resamples == 0:
        return StatResult(kappa, n=t.shape[0], level=level, method=label)
    boot = _units_bootstrap(lambda idx: _kappa(t[idx]), t.shape[0], n_resamples=n_resamples, seed=seed,
                            level=level, batch=max(1, (1 << 22) // t.size), label=label)
    return StatResult(kappa, boot.ci_low, boot.ci_high, n=t.shape[0], level=level, se=boot.se,
                      method=f"{label}; percentile bootstrap over items, {n_resamples} resamples", note=boot.note)


def unanimous_share(counts: ArrayLike) -> float:
    """Share of items on which all raters (e.g. all k repeats of a judge) gave the same label."""
    t = _as_counts(counts)
    return float(np.mean(t.max(axis=1) == t.sum(axis=1)))


Level = Literal["nominal", "ordinal", "interval", "ratio"]
"""Level of measurement of Krippendorff's alpha: which difference between two values counts."""
_LEVELS: tuple[str, ...] = get_args(Level)


def krippendorff_alpha(data: ArrayLike | Sequence[Sequence[Any]], level: Level = "nominal", *,
                       n_resamples: int = 0, seed: Seed | None = None, confidence: float = 0.95) -> StatResult:
    """Krippendorff's alpha from a **units x raters** table (one row per unit), None/NaN for missing.

    Computed from the coincidence matrix (Krippendorff 2011, "Computing Krippendorff's
    Alpha-Reliability"): alpha = 1 - D_o / D_e, with the observed and expected disagreement summed
    over the pairable values (units with at least two values; others are left out and counted in
    ``note``). ``level`` picks the difference metric: 'nominal' (any labels), 'ordinal' (ranks of
    the numbers), 'interval' (squared difference), 'ratio' (non-negative numbers). The
    ``krippendorff`` package takes the transpose (raters x units). With ``n_resamples`` > 0 a
    percentile bootstrap CI over units is added (``scipy.stats.bootstrap`` over unit indices; needs
    ``seed``). If every pairable value is the same, alpha is undefined (NaN, said in ``note``)
    although the raters agree.

    Own code: neither scipy nor statsmodels computes Krippendorff's alpha; the ``krippendorff``
    package (the tests' reference) is no runtime dependency and takes one table per call, where
    the bootstrap evaluates a whole batch of resampled tables at once.
    """
    if level not in _LEVELS:
        raise ValueError(f"level is the level of measurement, one of {', '.join(map(repr, _LEVELS))}; got "
                         f"{level!r} (the confidence level of the CI is `confidence`)")
    check_level(confidence)
    values, counts, dropped = _pairable_counts(data, level)
    label = f"Krippendorff's alpha ({level})"
    left_out = (f"{dropped} unit(s) with fewer than two values left out (not pairable)" if dropped else "")
    alpha = float(_alpha(counts, values, level))
    if not np.isfinite(alpha):
        only = values[0].item() if isinstance(values[0], np.generic) else values[0]
        shown = f"{only:g}" if isinstance(only, float) else repr(only)
        note = f"every pairable value is {shown}: expected disagreement is 0 and alpha is undefined"
        return StatResult(float("nan"), n=counts.shape[0], level=confidence, method=label,
                          note="; ".join(x for x in (note, left_out) if x))
    if n_resamples == 0:
        return StatResult(alpha, n=counts.shape[0], level=confidence, method=label, note=left_out)
    units = counts.shape[0]
    boot = _units_bootstrap(lambda idx: _alpha(counts[idx], values, level), units, n_resamples=n_resamples,
                            seed=seed, level=confidence, batch=max(1, (1 << 22) // (counts.size + values.size**2)),
                            label=label)
    return StatResult(alpha, boot.ci_low, boot.ci_high, n=units, level=confidence, se=boot.se,
                      method=f"{label}; percentile bootstrap over units, {n_resamples} resamples",
                      note="; ".join(x for x in (left_out, boot.note) if x))


def _pairable_counts(data: Any, level: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(values, units x values counts of the pairable units, number of units left out)."""
    try:
        table = np.asarray(data, dtype=float)  # None becomes NaN
    except (TypeError, ValueError):
        table = np.asarray(data, dtype=object)
    if table.ndim != 2 or table.shape[0] < 1:
        raise ValueError(f"data must be a units x raters table (one row per unit), got shape {table.shape}")
    if table.dtype == object:
        if level != "nominal":
            raise ValueError(f"level {level!r} needs numbers, got labels such as {_first_label(table)!r}; map "
                             "ordered labels to numbers in their order (e.g. low=1, mid=2, high=3), or use "
                             "level='nominal'")
        present = np.array([[not _missing(x) for x in row] for row in table], dtype=bool).reshape(table.shape)
        labels = list(dict.fromkeys(table[present].tolist()))
        values = np.array(labels, dtype=object)
        index = {x: i for i, x in enumerate(labels)}
        codes = np.array([index[x] for x in table[present].tolist()], dtype=int)
    else:
        if np.isinf(table).any():
            raise ValueError("data contains infinite values; use NaN or None for a missing value")
        present = ~np.isnan(table)
        values, codes = np.unique(table[present], return_inverse=True)
        if level == "ratio" and values.size and values[0] < 0:
            raise ValueError(f"level 'ratio' needs non-negative values with a true zero, got {values[0]:g}; "
                             "use level='interval' for values that can be negative")
    counts = np.zeros((table.shape[0], values.size), dtype=float)
    np.add.at(counts, (np.nonzero(present)[0], codes.ravel()), 1.0)
    pairable = counts.sum(axis=1) >= 2
    if not pairable.any():
        raise ValueError(f"Krippendorff's alpha needs at least one unit with two or more values, but none of the "
                         f"{table.shape[0]} unit(s) has more than one ({int(present.sum())} value(s) in all). data "
                         "is units x raters: one row per unit, one column per rater; if you passed raters x units "
                         "(the krippendorff package's layout), transpose it")
    counts = counts[pairable]
    used = counts.sum(axis=0) > 0
    return values[used], counts[:, used], int((~pairable).sum())


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, (float, np.floating)) and bool(np.isnan(x)))


def _first_label(table: np.ndarray) -> Any:
    return next((x for x in table.ravel() if not _missing(x)), None)


def _alpha(counts: np.ndarray, values: np.ndarray, level: str) -> np.ndarray:
    """Alpha for tables of shape (..., units, values) of pairable units, via the coincidence matrix."""
    per_unit = counts / (counts.sum(axis=-1, keepdims=True) - 1)
    coincidences = np.einsum("...uc,...uk->...ck", per_unit, counts)
    diagonal = np.arange(values.size)
    coincidences[..., diagonal, diagonal] -= per_unit.sum(axis=-2)
    n_c = coincidences.sum(axis=-1)
    delta = _squared_differences(values, n_c, level)
    observed = (coincidences * delta).sum(axis=(-2, -1))
    expected = (n_c[..., :, None] * n_c[..., None, :] * delta).sum(axis=(-2, -1))
    with np.errstate(all="ignore"):
        return 1.0 - (n_c.sum(axis=-1) - 1) * observed / np.where(expected > 0, expected, np.nan)


def _squared_differences(values: np.ndarray, n_c: np.ndarray, level: str) -> np.ndarray:
    """The metric delta^2 between every two values (Krippendorff 2011, section C)."""
    if level == "nominal":
        return 1.0 - np.eye(values.size)
    if level == "ordinal":  # ranks: sum of n_g from c to k, less half of n_c and of n_k
        mid = np.cumsum(n_c, axis=-1) - n_c / 2
        return (mid[..., :, None] - mid[..., None, :]) ** 2
    v = values.astype(float)
    diff = v[:, None] - v[None, :]
    if level == "interval":
        return diff**2
    total = v[:, None] + v[None, :]
    with np.errstate(all="ignore"):
        return np.where(total > 0, (diff / np.where(total > 0, total, 1.0)) ** 2, 0.0)
