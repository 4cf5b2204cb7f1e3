"""Distractor personas for the listener's world (METHODS.md section 5).

From a pool of persona sheets, excluding the true one: uniform random (seeded; the released
code's default), or the k nearest / farthest by cosine similarity of their embeddings (arrays in:
the study obtains them through kind="embed" requests). Ties in similarity go to the lower index.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from ..embed import cosine_distances

DistractorMode = Literal["random", "nearest", "farthest"]
MODES: tuple[str, ...] = ("random", "nearest", "farthest")


def sample_others(own_id: str, candidates: Sequence[Any], k: int, seed: int) -> list[Any]:
    """k of `candidates` (anything with an `id`, e.g. personas) other than `own_id`, drawn uniformly
    with `random.Random(seed)`; all of them when there are fewer than k others."""
    others = [c for c in candidates if c.id != own_id]
    return random.Random(seed).sample(others, min(k, len(others)))


def choose_distractors(true: int, pool_size: int, k: int, *, mode: DistractorMode = "random", seed: int = 0,
                       vectors: ArrayLike | None = None) -> tuple[int, ...]:
    """Indices of k distractors from a pool of `pool_size` personas, never `true`.

    `vectors` ([pool_size, dim]) is required for 'nearest' and 'farthest'. Fewer than k are
    returned only when the pool holds fewer than k others.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not 0 <= true < pool_size:
        raise ValueError(f"true must index the pool (0..{pool_size - 1}), got {true}")
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    others = [i for i in range(pool_size) if i != true]
    if mode == "random":
        return tuple(random.Random(seed).sample(others, min(k, len(others))))
    if vectors is None:
        raise ValueError(f"mode '{mode}' needs the pool's embedding vectors")
    v = np.asarray(vectors, dtype=float)
    if v.ndim != 2 or v.shape[0] != pool_size:
        raise ValueError(f"vectors must be [{pool_size}, dim], got shape {v.shape}")
    if np.any(np.linalg.norm(v, axis=1) == 0):
        raise ValueError("a persona's embedding vector is all zeros; cosine similarity is undefined")
    unit = v / np.linalg.norm(v, axis=1, keepdims=True)
    sims = 1.0 - cosine_distances(unit[true:true + 1], unit)[0]
    order = sorted(others, key=lambda i: (-sims[i] if mode == "nearest" else sims[i], i))
    return tuple(order[:k])


def world(true_sheet: str, pool: Sequence[str], k: int, *, mode: DistractorMode = "random", seed: int = 0,
          vectors: ArrayLike | None = None) -> tuple[str, ...]:
    """The world's sheets: the true one first, then its distractors (`pool` must hold `true_sheet`)."""
    picked = choose_distractors(list(pool).index(true_sheet), len(pool), k, mode=mode, seed=seed, vectors=vectors)
    return (true_sheet, *(pool[i] for i in picked))


__all__ = ["DistractorMode", "MODES", "choose_distractors", "world"]
