"""grid_memory: peak RSS and time of 20,000- and 100,000-request grids (fake backend) and their
cached re-runs, each in a fresh process so that each peak is its own.

The grid is cached_rerun's (inline personas x 20 questions x 5 replicates, no baseline) with 200
and 1,000 personas. A fill runs it into a new store; a re-run is a new `personae run` of the same
spec on the filled store with a run folder (every answer from the store, 0 backend calls).

Targets (issue 12): peak RSS at 100,000 under 400 MB, the 100,000 peak under 1.5x the 20,000
peak (memory flat in the grid's size), and the cached re-run of 100,000 under 5 s. The ratio
printed is the worst of the three as met/target (>= 1 only when all three are met).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from ._common import BenchResult, say

SIZES = (200, 1000)  # personas: x 20 questions x 5 replicates = 20,000 and 100,000 requests
RSS_TARGET_MB = 400.0
FLAT_TARGET = 1.5
RERUN_TARGET_S = 5.0

_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, {root!r})
import benchmarks.cached_rerun as cr
cr.N_PERSONAS = {personas}
from personae.api import run_study
from personae.spec import resolve_spec
from personae.store import Store
t = time.perf_counter()
with Store(Path({db!r})) as st:
    out = run_study(resolve_spec(cr.grid_spec()), out_dir={out!r}, store=st)
print(json.dumps({{"seconds": time.perf_counter() - t, "backend_calls": out.stats.backend_calls,
                  "results": len(out.results),
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def _one(personas: int, db: Path, out: Path | None) -> dict[str, Any]:
    root = str(Path(__file__).resolve().parent.parent)
    code = _CHILD.format(root=root, personas=personas, db=str(db), out=str(out) if out else None)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=900)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run() -> BenchResult:
    raw: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="personae-bench-") as tmp_name:
        tmp = Path(tmp_name)
        for personas in SIZES:
            n = personas * 20 * 5
            db = tmp / f"grid{n}.sqlite"
            fill = _one(personas, db, None)
            rerun = _one(personas, db, tmp / f"run{n}")
            say(f"  {n:,} requests: fill {fill['seconds']:.1f} s, peak {fill['peak_mb']:.0f} MB; cached re-run "
                f"{rerun['seconds']:.1f} s, peak {rerun['peak_mb']:.0f} MB, backend_calls {rerun['backend_calls']}")
            raw[f"{n}"] = {"fill_seconds": round(fill["seconds"], 2), "fill_peak_mb": round(fill["peak_mb"]),
                           "rerun_seconds": round(rerun["seconds"], 2), "rerun_peak_mb": round(rerun["peak_mb"]),
                           "rerun_backend_calls": rerun["backend_calls"]}
    small, big = raw[str(SIZES[0] * 100)], raw[str(SIZES[1] * 100)]
    peak_small = max(small["fill_peak_mb"], small["rerun_peak_mb"])
    peak_big = max(big["fill_peak_mb"], big["rerun_peak_mb"])
    met = {
        "peak RSS at 100,000 (target < 400 MB)": RSS_TARGET_MB / peak_big,
        "100,000 peak / 20,000 peak (target < 1.5)": FLAT_TARGET / (peak_big / peak_small),
        "cached re-run of 100,000 (target < 5 s)": RERUN_TARGET_S / big["rerun_seconds"],
    }
    raw["met_over_target"] = {k: round(v, 3) for k, v in met.items()}
    notes = ["each fill and re-run in its own process (peak RSS = ru_maxrss); ratio = the worst met/target"]
    if big["rerun_backend_calls"] or small["rerun_backend_calls"]:
        notes.append("CACHE BROKEN: a re-run made backend calls")
    return BenchResult("grid_memory", min(met.values()), 1.0, "worst of the three targets, met/target", raw, notes)
