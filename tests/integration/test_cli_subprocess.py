"""The CLI as a real subprocess: kill -9 in the middle of a run, resume, and prove nothing finished was redone.

The store is the proof: every success is committed as it arrives, so the rows in its `results`
table when the process dies are exactly the requests the rerun must answer from the cache.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PERSONAE = [str(Path(sys.executable).with_name("personae"))]
if not Path(PERSONAE[0]).exists():  # pragma: no cover - fall back to the module
    PERSONAE = [sys.executable, "-m", "personae"]

POLL_S = 0.02
KILL_WAIT_LIMIT_S = 90.0
RUN_TIMEOUT_S = 180.0


def store_rows(path: Path) -> int:
    """Rows in the store's results table (0 while the file or table does not exist yet)."""
    if not path.exists():
        return 0
    conn = sqlite3.connect(path, timeout=10.0)
    try:
        return conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:  # table not created yet
        return 0
    finally:
        conn.close()


def env_with_store(store: Path) -> dict[str, str]:
    env = {**os.environ, "PERSONAE_STORE": str(store), "PERSONAE_QUIET": "1", "NO_COLOR": "1"}
    env.pop("PERSONAE_DEBUG", None)
    return env


def _file_rows(out_dir: Path) -> int:
    try:
        return (out_dir / "results.jsonl").read_text(encoding="utf-8").count("\n")
    except OSError:
        return 0


def kill_midway(spec: Path, out_dir: Path, store: Path, *, min_rows: int, total: int, tmp_path: Path,
                min_file_rows: int = 0) -> int:
    """Start `personae run`, kill -9 it once the store holds >= min_rows results (and the run
    folder's results.jsonl >= min_file_rows lines); return the rows it left."""
    log = (tmp_path / "killed.log").open("wb")
    proc = subprocess.Popen([*PERSONAE, "run", str(spec), "--out", str(out_dir), "--quiet"],
                            env=env_with_store(store), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + KILL_WAIT_LIMIT_S
        for _ in range(int(KILL_WAIT_LIMIT_S / POLL_S) + 1):
            if proc.poll() is not None:
                pytest.fail(f"the run ended (rc {proc.returncode}) before it could be killed; "
                            f"rows: {store_rows(store)}/{total}\n{(tmp_path / 'killed.log').read_text()[-2000:]}")
            if store_rows(store) >= min_rows and _file_rows(out_dir) >= min_file_rows:
                break
            if time.monotonic() > deadline:
                pytest.fail(f"no {min_rows} results within {KILL_WAIT_LIMIT_S:g} s")
            time.sleep(POLL_S)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        log.close()
    assert proc.returncode == -signal.SIGKILL
    done = store_rows(store)
    assert 0 < done < total, f"killed too late or too early: {done}/{total} rows"
    return done


def resume_and_check(spec: Path, out_dir: Path, store: Path, *, done: int, total: int,
                     before: str = "running") -> dict:
    killed_run = json.loads((out_dir / "run.json").read_text())
    assert killed_run["status"] == before  # kill -9: it never got to write its final record

    proc = subprocess.run([*PERSONAE, "run", str(spec), "--out", str(out_dir), "--quiet"],
                          env=env_with_store(store), capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = json.loads((out_dir / "run.json").read_text())
    counts = run["counts"]
    assert run["status"] == "complete"
    assert counts["requests"] == total
    assert counts["errors"] == 0 and counts["retries"] == 0
    # every request finished before the kill is answered from the store, none is sent again
    assert counts["cache_hits"] >= done
    assert counts["cache_hits"] == done  # the killed process is dead: nothing else wrote to the store
    assert counts["backend_calls"] == total - counts["cache_hits"]
    assert store_rows(store) == total
    rows = [json.loads(line) for line in (out_dir / "results.jsonl").read_text().splitlines()]
    assert len(rows) == total
    assert sum(r["cached"] for r in rows) == done
    assert all(r["error"] is None for r in rows)
    assert len({r["key"] for r in rows}) == total  # replicates never collapse
    return run


def write_spec(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_kill_and_resume_fake_backend(tmp_path: Path) -> None:
    questions = [f"Question number {i}: what do you think about topic {i}?" for i in range(10)]
    personas = ["builtin:pirate-captain", "builtin:victorian-detective", "builtin:cheerful-barista",
                "builtin:grumpy-farmer"]
    total = (1 + len(personas)) * len(questions) * 4
    assert total == 200
    spec = write_spec(tmp_path / "fake.yaml", {
        "study": "grid", "model": "fake/test", "backend": {"delay_s": 0.05},
        "personas": personas, "replicates": 4, "concurrency": {"requests": 1},
        "options": {"questions": questions},
    })
    store, out_dir = tmp_path / "store.sqlite", tmp_path / "run"
    done = kill_midway(spec, out_dir, store, min_rows=20, total=total, tmp_path=tmp_path)
    killed = json.loads((out_dir / "run.json").read_text())["run_id"]
    listed = subprocess.run([*PERSONAE, "runs"], env=env_with_store(store), capture_output=True, text=True,
                            timeout=RUN_TIMEOUT_S, stdin=subprocess.DEVNULL)
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "aborted" in next(line for line in listed.stdout.splitlines() if killed in line)
    from personae.runs import load_run

    partial = load_run(killed, store=store)  # its results up to the last batch of run items
    assert partial.status == "aborted" and done - 256 <= len(partial.results) <= done
    resume_and_check(spec, out_dir, store, done=done, total=total)


def test_kill_and_resume_embedded_model(tmp_path: Path) -> None:
    total = 2 * 3 * 2  # (baseline + 1 persona) x 3 questions x 2 replicates
    spec = write_spec(tmp_path / "local.yaml", {
        "study": "grid", "model": "local/smollm2-135m", "backend": {"n_threads": 2},
        "personas": ["builtin:pirate-captain"], "replicates": 2, "seed": 5,
        "sampling": {"temperature": 0.8, "max_tokens": 16},
        "options": {"questions": ["What do you like to do on a rainy day?", "What is your favourite food?",
                                  "Where would you like to travel?"]},
    })
    store, out_dir = tmp_path / "store.sqlite", tmp_path / "run"
    done = kill_midway(spec, out_dir, store, min_rows=1, total=total, tmp_path=tmp_path)
    run = resume_and_check(spec, out_dir, store, done=done, total=total)
    assert run["counts"]["completion_tokens"] > 0


def test_chat_subprocess(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*PERSONAE, "chat", "builtin:pirate-captain", "--model", "local/smollm2-135m", "--max-tokens", "48"],
        input="Hello\nWhat is your name?\n/quit\n", env=env_with_store(tmp_path / "store.sqlite"),
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from personae.persona import builtin_persona

    name = builtin_persona("pirate-captain").name
    # input() echoes its "you> " prompt to stdout when stdin is a pipe, so a reply may follow it on the line
    assert proc.stdout.count(f"{name}> ") == 2, proc.stdout
    replies = [part.split("you> ")[0].strip() for part in proc.stdout.split(f"{name}> ")[1:]]
    assert len(replies) == 2 and all(replies), proc.stdout
    assert store_rows(tmp_path / "store.sqlite") == 2  # both turns went through the store


def test_sigterm_is_handled_like_ctrl_c(tmp_path: Path) -> None:
    """Issue 8, defect 5: after SIGTERM run.json said 'running' with no message. Now: status aborted,
    one line, exit 143, and the same command resumes without repeating a finished request."""
    questions = [f"Question {i}?" for i in range(10)]
    spec = write_spec(tmp_path / "fake.yaml", {
        "study": "grid", "model": "fake/test", "backend": {"delay_s": 0.05}, "personas": ["builtin:pirate-captain"],
        "replicates": 4, "concurrency": {"requests": 1}, "options": {"questions": questions}})
    store, out_dir, total = tmp_path / "store.sqlite", tmp_path / "run", 2 * 10 * 4
    proc = subprocess.Popen([*PERSONAE, "run", str(spec), "--out", str(out_dir), "--quiet"], env=env_with_store(store),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + KILL_WAIT_LIMIT_S
        while store_rows(store) < 10:
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert time.monotonic() < deadline, "no 10 results in time"
            time.sleep(POLL_S)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == 143, stderr[-2000:]
    assert "terminated (SIGTERM)" in stderr and len(stderr.strip().splitlines()) == 1
    run = json.loads((out_dir / "run.json").read_text())
    assert run["status"] == "aborted" and "interrupted" in run["error"]
    done = store_rows(store)
    assert 10 <= done < total
    resume_and_check(spec, out_dir, store, done=done, total=total, before="aborted")
