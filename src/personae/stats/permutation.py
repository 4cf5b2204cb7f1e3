"""Permutation tests that shuffle group labels (seeded; exact enumeration when it is small)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ._common import Seed, as_1d, check_alternative, check_resamples, rng_from, vectorized
from .results import StatResult

_MAX_ELEMENTS = 1 << 24


def _count_extreme(null: np.ndarray, observed: float, alternative: str) -> int:
    gamma = abs(observed) * np.finfo(float).eps * 100  # float ties count as "as extreme" (as scipy)
    if alternative == "greater":
        return int(np.count_nonzero(null >= observed - gamma))
    if alternative == "less":
        return int(np.count_nonzero(null <= observed + gamma))
    return int(np.count_nonzero(np.abs(null) >= abs(observed) - gamma))


def _exact_null(fn: Callable[..., Any], z: np.ndarray, n_a: int) -> np.ndarray:
    combos = np.array(list(itertools.combinations(range(z.size), n_a)))
    mask = np.zeros((combos.shape[0], z.size), dtype=bool)
    np.put_along_axis(mask, combos, True, axis=1)
    tiled = np.broadcast_to(z, mask.shape)
    group_a = tiled[mask].reshape(mask.shape[0], n_a)
    group_b = tiled[~mask].reshape(mask.shape[0], z.size - n_a)
    return np.asarray(fn(group_a, axis=-1)) - np.asarray(fn(group_b, axis=-1))


def _random_null(fn: Callable[..., Any], z: np.ndarray, n_a: int, n_resamples: int,
                 rng: np.random.Generator) -> np.ndarray:
    rows = max(1, _MAX_ELEMENTS // z.size)
    out = []
    for start in range(0, n_resamples, rows):
        shuffled = rng.permuted(np.tile(z, (min(rows, n_resamples - start), 1)), axis=1)
        out.append(np.asarray(fn(shuffled[:, :n_a], axis=-1)) - np.asarray(fn(shuffled[:, n_a:], axis=-1)))
    return np.concatenate(out)


def permutation_test(a: ArrayLike, b: ArrayLike, stat: Callable[..., Any] = np.mean, *, seed: Seed,
                     n_resamples: int = 10_000, alternative: str = "two-sided") -> StatResult:
    """Two-sample permutation test of T = stat(a) - stat(b), shuffling the group labels.

    When the number of distinct splits C(n_a + n_b, n_a) is at most ``n_resamples`` every split is
    enumerated and p = #(T* as extreme) / C (exact). Otherwise p = (#(T* as extreme) + 1) /
    (n_resamples + 1) over random shuffles (never 0). Two-sided means |T*| >= |T|.
    """
    x, y = as_1d(a, "a"), as_1d(b, "b")
    check_alternative(alternative)
    n_resamples = check_resamples(n_resamples)
    rng = rng_from(seed)
    fn = vectorized(stat)
    observed = float(np.asarray(fn(x, axis=-1)) - np.asarray(fn(y, axis=-1)))
    z = np.concatenate([x, y])
    splits = math.comb(z.size, x.size)
    if splits <= n_resamples:
        null = _exact_null(fn, z, x.size)
        p = _count_extreme(null, observed, alternative) / null.size
        how = f"exact, all {splits} splits"
    else:
        null = _random_null(fn, z, x.size, n_resamples, rng)
        p = (_count_extreme(null, observed, alternative) + 1) / (n_resamples + 1)
        how = f"{n_resamples} random shuffles"
    name = getattr(stat, "__name__", "stat")
    return StatResult(observed, statistic=observed, p_value=float(p), n=int(z.size),
                      method=f"permutation test of {name}(a) - {name}(b), {alternative} ({how})")


def _shuffle_within(labels: np.ndarray, strata: np.ndarray, base: np.ndarray,
                    rng: np.random.Generator) -> np.ndarray:
    order = np.lexsort((rng.random(labels.size), strata))
    out = np.empty_like(labels)
    out[base] = labels[order]
    return out


def label_permutation_test(statistic: Callable[[np.ndarray, np.ndarray], float], values: ArrayLike,
                           labels: ArrayLike, *, seed: Seed, strata: ArrayLike | None = None,
                           n_resamples: int = 2_000, alternative: str = "greater") -> StatResult:
    """Permutation test of any ``statistic(values, labels) -> float`` by shuffling ``labels``.

    Labels are shuffled within ``strata`` when given (e.g. persona labels within an item, for the
    D_between / D_within ratio). p = (#(T* as extreme) + 1) / (n_resamples + 1). The statistic is
    called once per shuffle, so keep it cheap. ``note`` reports the mean of the null distribution.
    """
    vals = np.asarray(values)
    lab = np.asarray(labels)
    if lab.ndim != 1 or vals.shape[:1] != lab.shape:
        raise ValueError(f"labels must be one-dimensional with one label per row of values "
                         f"({vals.shape[:1]} rows), got shape {lab.shape}")
    check_alternative(alternative)
    n_resamples = check_resamples(n_resamples)
    rng = rng_from(seed)
    strat = np.zeros(lab.size, dtype=int) if strata is None else np.asarray(strata)
    if strat.shape != lab.shape:
        raise ValueError(f"strata must have one entry per label ({lab.size}), got shape {strat.shape}")
    base = np.argsort(strat, kind="stable")
    observed = float(statistic(vals, lab))
    if not np.isfinite(observed):
        raise ValueError(f"statistic is not finite on the observed labels ({observed})")
    null = np.array([statistic(vals, _shuffle_within(lab, strat, base, rng)) for _ in range(n_resamples)],
                    dtype=float)
    p = (_count_extreme(null, observed, alternative) + 1) / (n_resamples + 1)
    scope = "within strata" if strata is not None else "overall"
    return StatResult(observed, statistic=observed, p_value=float(p), n=int(lab.size),
                      method=f"label permutation test ({scope}), {alternative}, {n_resamples} shuffles",
                      note=f"null mean {np.nanmean(null):.6g}")
