"""listener_vs_s0: listener (S1) decoding seconds per token vs greedy S0 on the same chats, k = 2.

Target: S1 costs at most (k + 1) x S0 per generated token; the ratio printed is
(k + 1) x S0 / S1 (median over blocks), so >= 1 meets it. See benchmarks/_listener.py.

Expect it near 1: on this 2-core CPU llama.cpp is compute-bound, so one batched step of 3
sequences costs about 3 one-sequence steps, and the worlds' prompts differ from their first
system-prompt token on, so only the template's opening tokens are shared.
"""

from __future__ import annotations

from ._common import BenchResult
from ._listener import K, measure


def run() -> BenchResult:
    m = measure()
    ratio = (K + 1) / m["s1_over_s0_median"]
    return BenchResult("listener_vs_s0", ratio, 1.0, "(k+1) x S0 s/token / S1 s/token (median of blocks)",
                       {"s1_over_s0 (median of blocks)": m["s1_over_s0_median"], **m["raw"]})
