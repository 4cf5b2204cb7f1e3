"""Issue 8's concurrent-writers suite: four `personae run` processes on one store at once, with
overlapping specs on the fake backend (with latency). Every process exits 0 with complete results,
the store passes `PRAGMA integrity_check`, and no table holds a duplicate row: one cached result
per key, one run item per (run, position), one run record per process."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from test_cli_subprocess import PERSONAE, RUN_TIMEOUT_S, env_with_store, write_spec

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PERSONAS = ["builtin:pirate-captain", "builtin:victorian-detective", "builtin:grumpy-farmer"]
QUESTIONS = [{"id": f"t{i}", "text": f"What do you think about topic {i}?"} for i in range(16)]
# (personas, questions) of each process: every pair of specs shares some of its requests
SPECS = [
    (PERSONAS[:2], QUESTIONS[:10]),
    (PERSONAS[1:], QUESTIONS[4:14]),
    ([PERSONAS[0], PERSONAS[2]], QUESTIONS[6:]),
    (PERSONAS, QUESTIONS[::2]),
]
REPLICATES = 2


def expected_requests(personas: list[str], questions: list[dict]) -> int:
    return (1 + len(personas)) * len(questions) * REPLICATES


def test_four_processes_on_one_store(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    procs = []
    for n, (personas, questions) in enumerate(SPECS):
        spec = write_spec(tmp_path / f"spec{n}.yaml", {
            "study": "grid", "model": "fake/test", "backend": {"delay_s": 0.01}, "personas": personas,
            "replicates": REPLICATES, "concurrency": {"requests": 4}, "options": {"questions": questions}})
        procs.append(subprocess.Popen([*PERSONAE, "run", str(spec), "--out", str(tmp_path / f"run{n}"), "--quiet"],
                                      env=env_with_store(store), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, stdin=subprocess.DEVNULL))
    deadline = time.monotonic() + RUN_TIMEOUT_S
    try:
        outputs = [p.communicate(timeout=max(1.0, deadline - time.monotonic())) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=30)

    keys: set[str] = set()
    answers: dict[str, str] = {}
    for n, ((personas, questions), p, (_, err)) in enumerate(zip(SPECS, procs, outputs)):
        assert p.returncode == 0, f"process {n}: {err[-2000:]}"
        run = json.loads((tmp_path / f"run{n}" / "run.json").read_text())
        total = expected_requests(personas, questions)
        assert run["status"] == "complete" and run["counts"]["errors"] == 0
        assert run["counts"]["requests"] == total
        rows = [json.loads(line) for line in (tmp_path / f"run{n}" / "results.jsonl").read_text().splitlines()]
        assert len(rows) == total and all(r["error"] is None and r["response"] for r in rows)
        assert len({r["key"] for r in rows}) == total
        for r in rows:  # a key shared by two processes has one answer, whoever computed it
            assert answers.setdefault(r["key"], r["response"]) == r["response"]
        keys |= {r["key"] for r in rows}
    shared = sum(expected_requests(*s) for s in SPECS) - len(keys)
    assert shared > 0, "the specs do not overlap: the test would prove nothing"

    conn = sqlite3.connect(store, timeout=10.0)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        stored = dict(conn.execute("SELECT key, response FROM results"))
        assert set(stored) == keys  # every result of every process is there, and nothing else
        # one row per key, and no request stored under two keys
        assert conn.execute("SELECT COUNT(*), COUNT(DISTINCT key), COUNT(DISTINCT request) FROM results").fetchone() \
            == (len(keys),) * 3
        assert all(json.loads(stored[k])["text"] == v for k, v in answers.items())
        assert conn.execute("SELECT COUNT(*) FROM errors").fetchone()[0] == 0
        runs = conn.execute("SELECT id, status FROM runs").fetchall()
        assert len(runs) == len(SPECS) and {s for _, s in runs} == {"complete"}
        items = conn.execute("SELECT run_id, COUNT(*), COUNT(DISTINCT position), COUNT(DISTINCT key), "
                             "MIN(position), MAX(position) FROM run_items GROUP BY run_id").fetchall()
        assert sorted(n for _, n, *_ in items) == sorted(expected_requests(*s) for s in SPECS)
        for _, n, positions, distinct_keys, low, high in items:
            assert positions == distinct_keys == n and (low, high) == (0, n - 1)
    finally:
        conn.close()
