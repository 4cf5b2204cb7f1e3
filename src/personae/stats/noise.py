"""The noise floor: the run-to-run spread of a statistic of the same persona, by split-half.

A persona's simulated participants (replicates) are seeded draws; two runs of the same persona
differ only by which participants they drew. Split each group's participants at random into two
halves, compute the statistic on each half, and take the difference: over many seeded splits
(every split when there are few), the SD of that difference is the spread two runs of the same
persona show (each run with half the participants, so the floor errs on the wide side). An effect
no larger than it is not distinguishable from noise.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from ._common import Seed, rng_from
from .results import StatResult

T = TypeVar("T")


def split_half_floor(groups: Sequence[Sequence[T]], statistic: Callable[[list[list[T]]], float | None], *,
                     seed: Seed, n_splits: int = 200) -> StatResult:
    """SD over splits of statistic(first halves) - statistic(second halves).

    `groups`: the participants of each group the statistic reads (one group for a persona's own
    statistic, two for a difference between personas); each group is split on its own, the first
    half gets n // 2 participants and the second the rest. `statistic` takes one subset per group
    and returns a number (None or non-finite: that split is skipped). When the number of distinct
    splits is at most `n_splits`, every split is used once (exact); else `n_splits` seeded random
    splits. Estimate NaN when fewer than 2 splits give a number (a group with fewer than 2 participants).
    """
    if n_splits < 2:
        raise ValueError(f"n_splits must be >= 2, got {n_splits}")
    sizes = [len(g) for g in groups]
    method = "split-half: SD of statistic(half 1) - statistic(half 2) over "
    if not sizes or min(sizes) < 2:
        return StatResult(float("nan"), n=0, method=method + "no split", note="a group has fewer than 2 participants")
    total = math.prod(math.comb(n, n // 2) for n in sizes)
    if total <= n_splits:
        firsts: Any = itertools.product(*(itertools.combinations(range(n), n // 2) for n in sizes))
        method += f"all {total} splits"
    else:
        rng = rng_from(seed)
        firsts = ([rng.permutation(n)[: n // 2] for n in sizes] for _ in range(n_splits))
        method += f"{n_splits} seeded random splits"
    diffs = []
    for first in firsts:
        halves: tuple[list[list[T]], list[list[T]]] = ([], [])
        for g, idx in zip(groups, first):
            chosen = {int(i) for i in idx}
            halves[0].append([u for i, u in enumerate(g) if i in chosen])
            halves[1].append([u for i, u in enumerate(g) if i not in chosen])
        a, b = statistic(halves[0]), statistic(halves[1])
        if a is not None and b is not None and math.isfinite(a) and math.isfinite(b):
            diffs.append(a - b)
    if len(diffs) < 2:
        return StatResult(float("nan"), n=len(diffs), method=method, note="fewer than 2 splits gave a number")
    skipped = min(total, n_splits) - len(diffs)
    return StatResult(float(np.std(diffs)), n=len(diffs), method=method,
                      note=f"{skipped} splits gave no number and were skipped" if skipped else "")


def beyond_floor(estimate: float | None, ci: Sequence[float | None] | None, floor: float | None, *,
                 null: float = 0.0) -> bool:
    """An effect distinguishable from noise: its 95% CI excludes `null` and |estimate - null| is
    larger than the noise floor (an unknown floor, None or NaN, distinguishes nothing)."""
    if estimate is None or ci is None or ci[0] is None or ci[1] is None or floor is None or math.isnan(floor):
        return False
    return bool((ci[0] > null or ci[1] < null) and abs(estimate - null) > floor)
