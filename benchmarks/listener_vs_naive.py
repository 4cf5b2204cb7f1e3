"""listener_vs_naive: listener (S1) decoding vs the naive way that re-evaluates each world's whole
prompt at every step, same chats, same S1 step, k = 2. Target: S1 at least 5x faster per token.
Shares its measurement with listener_vs_s0 when both run (benchmarks/_listener.py).
"""

from __future__ import annotations

from ._common import BenchResult
from ._listener import measure


def run() -> BenchResult:
    m = measure()
    return BenchResult("listener_vs_naive", m["naive_over_s1_median"], 5.0,
                       "naive s/token / S1 s/token (median of blocks)", dict(m["raw"]))
