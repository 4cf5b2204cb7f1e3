"""Argument checks and seeding shared by the statistics modules (private)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Union

import numpy as np
from numpy.typing import ArrayLike

Seed = Union[int, np.random.Generator]
"""An explicit seed: an int or a numpy Generator (never None)."""


def rng_from(seed: Seed) -> np.random.Generator:
    """A numpy Generator from an explicit seed; ``None`` is refused (results must be reproducible)."""
    if seed is None:
        raise ValueError("seed is required (an int or numpy.random.Generator); None would make the "
                         "result irreproducible")
    if isinstance(seed, np.random.Generator):
        return seed
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int or numpy.random.Generator, got {type(seed).__name__}")
    return np.random.default_rng(int(seed))


def as_1d(values: ArrayLike, name: str, *, min_size: int = 1, finite: bool = True) -> np.ndarray:
    """A 1-D float array, refusing NaN/inf (when ``finite``) and too-short inputs by name."""
    try:
        x = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from exc
    if x.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {x.shape}")
    if x.size < min_size:
        raise ValueError(f"{name} needs at least {min_size} value(s), got {x.size}")
    if finite and not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values; drop missing values first")
    return x


def as_paired(a: ArrayLike, b: ArrayLike, *, min_size: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Two 1-D float arrays of equal length (paired units)."""
    x, y = as_1d(a, "a", min_size=min_size), as_1d(b, "b", min_size=min_size)
    if x.size != y.size:
        raise ValueError(f"paired samples must have equal length, got {x.size} and {y.size}")
    return x, y


def as_labels(values: ArrayLike, name: str, size: int) -> np.ndarray:
    """A 1-D array of labels of a given length."""
    x = np.asarray(values)
    if x.ndim != 1 or x.size != size:
        raise ValueError(f"{name} must be one-dimensional with {size} entries, got shape {x.shape}")
    return x


def check_level(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return float(level)


def check_alternative(alternative: str) -> str:
    if alternative not in ("two-sided", "less", "greater"):
        raise ValueError(f"alternative must be 'two-sided', 'less' or 'greater', got {alternative!r}")
    return alternative


def check_resamples(n_resamples: int) -> int:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive int, got {n_resamples!r}")
    return int(n_resamples)


def vectorized(stat: Callable[..., Any]) -> Callable[..., Any]:
    """``stat`` as a function taking ``axis`` (numpy style); wraps it row by row if it does not."""
    if not callable(stat):
        raise ValueError("stat must be callable")
    try:
        takes_axis = "axis" in inspect.signature(stat).parameters
    except (TypeError, ValueError):  # some numpy ufuncs/builtins have no signature
        takes_axis = False
    if takes_axis:
        return stat

    def along_axis(*arrays: np.ndarray, axis: int = -1) -> np.ndarray:
        moved = [np.moveaxis(np.asarray(x), axis, -1) for x in arrays]
        lead = moved[0].shape[:-1]
        out = np.empty(lead, dtype=float)
        for idx in np.ndindex(lead):
            out[idx] = stat(*(m[idx] for m in moved))
        return out

    return along_axis
