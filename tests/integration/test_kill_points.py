"""Issue 8's SIGKILL suite: one run on the fake backend (with latency), killed with SIGKILL at 10
seeded random points and resumed after each; then run to the end.

After every kill and at the end the store passes `PRAGMA integrity_check`, every result stored
before a kill is still there unchanged, no process asks the backend for a result that was already
stored when it started, and the final summary equals that of a run that was never killed. The fake
backend's `call_log` records which requests each process sent (process id and cache key).
"""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from test_cli_subprocess import PERSONAE, RUN_TIMEOUT_S, env_with_store, kill_midway, write_spec

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KILLS, SEED = 10, 8
CONCURRENCY = 2
DELAY_S = 0.03
PERSONAS = ["builtin:pirate-captain", "builtin:victorian-detective", "builtin:grumpy-farmer"]
QUESTIONS = [{"id": f"t{i}", "text": f"What do you think about topic {i}?"} for i in range(15)]
TOTAL = (1 + len(PERSONAS)) * len(QUESTIONS) * 2


def spec_data(call_log: Path) -> dict:
    return {"study": "grid", "model": "fake/test", "backend": {"delay_s": DELAY_S, "call_log": str(call_log)},
            "personas": PERSONAS, "replicates": 2, "concurrency": {"requests": CONCURRENCY},
            "options": {"questions": QUESTIONS}}


def stored(store: Path) -> dict[str, str]:
    """key -> response of every cached result (the process that wrote them is dead or done)."""
    if not store.exists():
        return {}
    conn = sqlite3.connect(store, timeout=10.0)
    try:
        return dict(conn.execute("SELECT key, response FROM results"))
    except sqlite3.OperationalError:  # killed before the tables were created
        return {}
    finally:
        conn.close()


def integrity(store: Path) -> str:
    conn = sqlite3.connect(store, timeout=10.0)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def calls_by_pid(call_log: Path) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    if call_log.exists():
        for line in call_log.read_text().splitlines():
            pid, key = line.split("\t")
            out.setdefault(int(pid), []).append(key)
    return out


def test_ten_sigkills_lose_nothing_and_repeat_nothing(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    # rows in the store at each kill; the last one leaves 50 rows (0.75 s of calls): room for a slow poll
    points = sorted(rng.sample(range(2, TOTAL - 50), KILLS))
    store, out_dir, call_log = tmp_path / "store.sqlite", tmp_path / "run", tmp_path / "calls.log"
    spec = write_spec(tmp_path / "spec.yaml", spec_data(call_log))

    before: dict[str, str] = {}
    pids: list[int] = []
    for point in points:  # kill_midway: SIGKILL once the store holds that many results, asserting < TOTAL
        kill_midway(spec, out_dir, store, min_rows=max(point, len(before) + 1), total=TOTAL, tmp_path=tmp_path)
        assert integrity(store) == "ok"
        after = stored(store)
        # no completed result is lost or changed
        assert {k: after[k] for k in before} == before
        # none is requested twice: the killed process sent nothing that was stored when it started
        calls = calls_by_pid(call_log)
        (pid,) = set(calls) - set(pids)
        pids.append(pid)
        assert not set(calls[pid]) & set(before)
        assert len(calls[pid]) == len(set(calls[pid]))
        before = after

    final = subprocess.run([*PERSONAE, "run", str(spec), "--out", str(out_dir), "--quiet"],
                           env=env_with_store(store), capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                           stdin=subprocess.DEVNULL)
    assert final.returncode == 0, final.stderr[-3000:]
    assert integrity(store) == "ok"
    after = stored(store)
    assert len(after) == TOTAL and {k: after[k] for k in before} == before
    calls = calls_by_pid(call_log)
    (last,) = set(calls) - set(pids)
    assert not set(calls[last]) & set(before)
    # across all 11 processes: every request was sent, and a request was sent again only when a kill
    # caught it in flight (at most CONCURRENCY per kill)
    per_key = Counter(k for keys in calls.values() for k in keys)
    assert set(per_key) == set(after)
    assert sum(per_key.values()) - TOTAL <= KILLS * CONCURRENCY

    run = json.loads((out_dir / "run.json").read_text())
    assert run["status"] == "complete" and run["counts"]["errors"] == 0
    assert run["counts"]["cache_hits"] == len(before) and run["counts"]["requests"] == TOTAL
    assert len(run["previous_runs"]) == KILLS  # the folder remembers the ten killed runs

    # the final summary equals the summary of a run that was never killed (its own store and folder)
    ref_store, ref_out = tmp_path / "ref.sqlite", tmp_path / "ref"
    ref_spec = write_spec(tmp_path / "ref.yaml", spec_data(tmp_path / "ref_calls.log"))
    ref = subprocess.run([*PERSONAE, "run", str(ref_spec), "--out", str(ref_out), "--quiet"],
                         env=env_with_store(ref_store), capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                         stdin=subprocess.DEVNULL)
    assert ref.returncode == 0, ref.stderr[-3000:]
    assert stored(ref_store) == after
    summary, ref_summary = (json.loads((d / "summary.json").read_text()) for d in (out_dir, ref_out))
    # the one number that differs says how many of this invocation's results came from the store
    assert summary["counts"].pop("cached") == len(before) and ref_summary["counts"].pop("cached") == 0
    assert summary == ref_summary



def test_a_rerun_killed_midway_leaves_no_file_of_the_previous_run(tmp_path: Path) -> None:
    """Issue 8, defect 5: a re-run killed mid-way into an existing --out left its new run.json and
    results.jsonl beside the old run's summary.json and report.html. Now the folder's files belong
    to the run that wrote run.json, at every moment."""
    store, out_dir, call_log = tmp_path / "store.sqlite", tmp_path / "run", tmp_path / "calls.log"
    small = {**spec_data(call_log), "personas": PERSONAS[:1], "replicates": 1, "concurrency": {"requests": 1},
             "backend": {"delay_s": 0.05, "call_log": str(call_log)}}  # 22 calls (1.1 s) left after the kill point
    spec = write_spec(tmp_path / "spec.yaml", {**small, "options": {"questions": QUESTIONS[:2]}})
    first = subprocess.run([*PERSONAE, "run", str(spec), "--out", str(out_dir), "--quiet"], env=env_with_store(store),
                           capture_output=True, text=True, timeout=RUN_TIMEOUT_S, stdin=subprocess.DEVNULL)
    assert first.returncode == 0, first.stderr[-3000:]
    assert (out_dir / "summary.json").is_file() and (out_dir / "report.html").is_file()
    first_id = json.loads((out_dir / "run.json").read_text())["run_id"]

    write_spec(spec, {**small, "options": {"questions": QUESTIONS}})  # the same spec, grown: a re-run
    total = 2 * len(QUESTIONS)
    # results.jsonl is flushed every ROWS_FLUSH_S (0.5 s): kill once it shows new rows beside the 4 cached
    kill_midway(spec, out_dir, store, min_rows=8, total=total, tmp_path=tmp_path, min_file_rows=6)
    run = json.loads((out_dir / "run.json").read_text())
    assert run["run_id"] != first_id and run["status"] == "running"  # SIGKILL: no chance to write more
    assert [r["run_id"] for r in run["previous_runs"]] == [first_id]
    assert not (out_dir / "summary.json").exists() and not (out_dir / "report.html").exists()
    rows = [json.loads(line) for line in (out_dir / "results.jsonl").read_text().splitlines()]
    assert len(rows) < total and sum(r["cached"] for r in rows) == 4  # the new run's rows: 4 from the first
    assert {r["item"] for r in rows} - {"t0", "t1"}  # and some of the questions the first run never asked
    assert not list(out_dir.glob("*.tmp"))  # run.json is replaced whole, never left half-written
