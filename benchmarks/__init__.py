"""personae's benchmarks: each measures a ratio side by side in one run, against a target.

    python -m benchmarks                  # all of them, then a summary table
    python -m benchmarks cached_rerun     # one (or several) by name

Benchmarks report; they never assert on time. They touch only 127.0.0.1, run a bounded number
of requests, and stop any server they start. See benchmarks/README.md.
"""

from __future__ import annotations

import importlib
import os
import time
import traceback
from collections.abc import Sequence

from ._common import BenchResult, say

__all__ = ["BENCHMARKS", "BenchResult", "run_benchmarks", "summary_table"]

# name -> (module, one-line description); run in this order
BENCHMARKS: dict[str, tuple[str, str]] = {
    "cached_rerun": ("benchmarks.cached_rerun", "10,000-request grid rerun from the store (fake backend)"),
    "embedded_generation": ("benchmarks.embedded_generation",
                            "30 chats: Runner + LocalBackend vs llama_cpp.Llama directly"),
    "runner_overhead": ("benchmarks.runner_overhead",
                        "300 chats at concurrency 4: Runner + OpenAIBackend vs plain AsyncOpenAI, llama.cpp server"),
    "client_throughput": ("benchmarks.client_throughput",
                          "20,000 chats at concurrency 64: personae (Runner + store) vs plain AsyncOpenAI vs plain "
                          "aiohttp, instant mock server"),
    "listener_vs_s0": ("benchmarks.listener_vs_s0", "listener (S1, k=2) vs greedy S0 seconds per token, embedded model"),
    "listener_vs_naive": ("benchmarks.listener_vs_naive",
                          "listener (S1, k=2) vs re-evaluating every world's prompt each step"),
    "sequential_designs": ("benchmarks.sequential_designs",
                           "sequential (always-valid CS) vs fixed design: calls at 2x MDE, false positives under the null"),
    "ray_scaling": ("benchmarks.ray_scaling",
                    "Ray executor, 2 workers vs 1, 4 in flight each, fake backend with 50 ms latency"),
    "grid_memory": ("benchmarks.grid_memory",
                    "peak RSS and time of 20,000 and 100,000-request grids and their cached re-runs (fake backend)"),
}


def _fmt(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _load() -> str:
    """1/5/15-minute load averages: other processes on the machine make timings noisy."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} CPUs"
    except OSError:
        return "unknown"


def run_one(name: str) -> BenchResult | BaseException:
    module, what = BENCHMARKS[name]
    say(f"== {name}: {what}")
    say(f"   load average before: {_load()}")
    t0 = time.perf_counter()
    try:
        result = importlib.import_module(module).run()
    except Exception as exc:  # report and carry on with the others
        traceback.print_exc()
        say(f"== {name}: ERROR {type(exc).__name__}: {exc}")
        return exc
    say(f"   ratio ({result.ratio_label}) = {result.ratio:.3f}   target >= {result.target:g}   "
        f"{'PASS' if result.passed else 'MISS'}   ({time.perf_counter() - t0:.0f} s)")
    result.raw.setdefault("load_average_after", _load())
    for key, value in result.raw.items():
        say(f"   {key}: {_fmt(value)}")
    for note in result.notes:
        say(f"   note: {note}")
    say()
    return result


def summary_table(outcomes: dict[str, BenchResult | BaseException]) -> str:
    rows = [("benchmark", "ratio", "target", "result", "ratio is")]
    for name, res in outcomes.items():
        if isinstance(res, BenchResult):
            rows.append((name, f"{res.ratio:.3f}", f">= {res.target:g}", "PASS" if res.passed else "MISS",
                         res.ratio_label))
        else:
            rows.append((name, "-", "-", "ERROR", f"{type(res).__name__}: {res}"[:60]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run_benchmarks(names: Sequence[str] | None = None) -> dict[str, BenchResult | BaseException]:
    """Run the named benchmarks (all by default), print each, then the summary table."""
    outcomes = {name: run_one(name) for name in (names or list(BENCHMARKS))}
    say("== summary")
    say(summary_table(outcomes))
    return outcomes
