"""cached_rerun: a 10,000-request grid answered entirely from the store.

Fills a temporary store with a 10,000-request grid (100 inline personas x 20 questions x 5
replicates, no baseline) through the fake backend, then runs the same spec again, as a new
`personae run` would: a fresh Store on the same file, the spec validated again, and the run
folder written (results.jsonl, summary.json, report.html, run.json). Every answer must come from
the cache (backend_calls 0). The ratio is target_seconds / measured_seconds (>= 1.0: met), taken
on the median of three reruns; a rerun without a run folder is timed too.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from ._common import BenchResult, median, say

N_PERSONAS, N_QUESTIONS, N_REPLICATES = 100, 20, 5
TARGET_SECONDS = 3.0
RERUNS = 3


def grid_spec() -> dict[str, Any]:
    personas = [{"id": f"p{i:03d}", "name": f"Person {i}", "description": f"person number {i}, who keeps bees",
                 "facts": [f"I was born in year {1950 + i % 50}."]} for i in range(N_PERSONAS)]
    questions = [f"Question {j}: what do you think about topic {j}?" for j in range(N_QUESTIONS)]
    # the fake backend's record of every call is the test double's memory, not personae's
    return {"study": "grid", "model": "fake/bench", "backend": {"keep_history": False}, "personas": personas,
            "replicates": N_REPLICATES,
            "sampling": {"temperature": 0.7, "max_tokens": 32},
            "options": {"questions": questions, "include_baseline": False}}


def run() -> BenchResult:
    from personae.api import run_study
    from personae.spec import resolve_spec
    from personae.store import Store

    n = N_PERSONAS * N_QUESTIONS * N_REPLICATES
    with tempfile.TemporaryDirectory(prefix="personae-bench-") as tmp_name:
        tmp = Path(tmp_name)
        db = tmp / "store.sqlite"

        t0 = time.perf_counter()
        with Store(db) as store:
            filled = run_study(resolve_spec(grid_spec()), store=store)
        fill_s = time.perf_counter() - t0
        say(f"  fill: {n} requests, {filled.stats.backend_calls} backend calls, {fill_s:.2f} s")

        def rerun(out_dir: Path | None) -> tuple[float, dict[str, Any]]:
            t = time.perf_counter()
            with Store(db) as store:
                outcome = run_study(resolve_spec(grid_spec()), out_dir=out_dir, store=store)
            return time.perf_counter() - t, outcome.stats.as_dict()

        with_folder: list[float] = []
        calls: list[int] = []
        hits: list[int] = []
        for i in range(RERUNS):
            s, stats = rerun(tmp / f"run{i}")
            with_folder.append(s)
            calls.append(stats["backend_calls"])
            hits.append(stats["cache_hits"])
            say(f"  rerun {i + 1} (with run folder): {s:.2f} s, backend_calls {stats['backend_calls']}, "
                f"cache_hits {stats['cache_hits']}")
        bare_s, bare_stats = rerun(None)
        calls.append(bare_stats["backend_calls"])
        say(f"  rerun (no run folder): {bare_s:.2f} s, backend_calls {bare_stats['backend_calls']}")
        rows = sum(1 for _ in (tmp / "run0" / "results.jsonl").open(encoding="utf-8"))

    measured = median(with_folder)
    raw = {
        "requests": n, "fill_seconds": round(fill_s, 2), "fill_backend_calls": filled.stats.backend_calls,
        "rerun_seconds": [round(x, 3) for x in with_folder], "rerun_seconds_median": round(measured, 3),
        "rerun_no_folder_seconds": round(bare_s, 3), "backend_calls": max(calls), "cache_hits": hits,
        "results_jsonl_rows": rows, "target_seconds": TARGET_SECONDS,
    }
    notes = ["rerun = resolve_spec + run_study with a run folder, fresh Store on the same file; median of 3"]
    if max(calls) != 0:
        notes.append(f"CACHE BROKEN: {max(calls)} backend calls on a rerun (must be 0)")
    ratio = TARGET_SECONDS / measured if max(calls) == 0 else 0.0
    return BenchResult("cached_rerun", ratio, 1.0, f"{TARGET_SECONDS:g} s / rerun seconds", raw, notes)
