"""The Ray executor on a local Ray cluster started here on 127.0.0.1 (2 CPUs, a small object store).

(1) two workers over the fake backend give the same answers, rows and store as the asyncio executor;
(2) a worker killed (SIGKILL) mid-run: the run completes, every request is committed exactly once;
(3) an unreachable --address is one line and exit 2 before any model call (bad options: unit tests).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

ray = pytest.importorskip("ray")

from personae.api import run_study  # noqa: E402
from personae.cli.main import app  # noqa: E402
from personae.executors.ray import RayExecutor  # noqa: E402
from personae.spec import load_spec  # noqa: E402
from personae.store import Store  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]
TEST_TIMEOUT_S = 240

SRC = str(Path(__file__).resolve().parents[2] / "src")
cli = CliRunner()


@pytest.fixture(autouse=True)
def _time_limit() -> Iterator[None]:
    """Each test fails after TEST_TIMEOUT_S instead of hanging (SIGALRM in the main thread)."""
    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"test ran longer than {TEST_TIMEOUT_S} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(TEST_TIMEOUT_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """One local Ray cluster for this module: 2 CPUs, 100 MB object store, 127.0.0.1 only."""
    if ray.is_initialized():
        ray.shutdown()
    path = os.pathsep.join(p for p in (SRC, os.environ.get("PYTHONPATH")) if p)
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=100 * 1024 * 1024,
             _node_ip_address="127.0.0.1", log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": path}})
    try:
        yield
    finally:
        ray.shutdown()


def _spec(tmp_path: Path, *, delay_s: float, questions: int, replicates: int, workers: int = 2,
          call_log: Path | None = None) -> Path:
    backend: dict[str, Any] = {"delay_s": delay_s}
    if call_log is not None:
        backend["call_log"] = str(call_log)
    data = {"study": "grid", "model": "fake/test", "backend": backend, "seed": 5, "replicates": replicates,
            "personas": ["builtin:layperson", "builtin:young-child"],
            "concurrency": {"requests": 4}, "executor": {"workers": workers},
            "options": {"questions": [f"Question number {i}?" for i in range(questions)]}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _rows(out: Path) -> list[tuple[str, str | None, str | None]]:
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    return sorted((r["key"], r["response"], r["error"]) for r in rows)


def _store_rows(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as conn:
        return sorted(conn.execute("SELECT key, response FROM results").fetchall())


def test_two_workers_give_the_asyncio_executors_results(cluster: None, tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    spec = _spec(tmp_path, delay_s=0.01, questions=3, replicates=2, call_log=log)
    runs = {}
    for kind in ("asyncio", "ray"):
        store, out = tmp_path / f"{kind}.sqlite", tmp_path / kind
        args = ["run", str(spec), "--out", str(out), "--store", str(store), "-q", "--executor", kind]
        if kind == "asyncio":  # workers are the Ray executor's: the asyncio run takes a spec without them
            spec_data = yaml.safe_load(spec.read_text(encoding="utf-8"))
            del spec_data["executor"]
            plain = tmp_path / "plain.yaml"
            plain.write_text(yaml.safe_dump(spec_data), encoding="utf-8")
            args[1] = str(plain)
        result = cli.invoke(app, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        runs[kind] = (_rows(out), _store_rows(store), json.loads((out / "summary.json").read_text())["verdict"])
    n = 3 * 3 * 2  # 3 questions x (2 personas + baseline) x 2 replicates
    assert len(runs["ray"][0]) == n and len({k for k, _, _ in runs["ray"][0]}) == n
    assert runs["ray"] == runs["asyncio"]  # same keys, answers, store rows and verdict
    calls = [line.split("\t") for line in log.read_text().splitlines()]
    ray_pids = Counter(pid for pid, _ in calls[n:])
    assert len(calls) == 2 * n and len(ray_pids) == 2, ray_pids  # both workers answered, each request once
    assert str(os.getpid()) not in ray_pids


def test_a_killed_worker_loses_nothing_and_commits_nothing_twice(cluster: None, tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    spec = _spec(tmp_path, delay_s=0.1, questions=20, replicates=3, call_log=log)
    n = 20 * 3 * 3
    resolved = load_spec(spec)
    store = Store(tmp_path / "store.sqlite")
    puts: Counter[str] = Counter()
    commit_batch = store.commit_batch  # every result reaches the store through it (group commits)

    def counting_commit(rows: Any, errors: Any, **kwargs: Any) -> list[int]:
        for row in rows:
            puts[row[0]] += 1
        return commit_batch(rows, errors, **kwargs)

    store.commit_batch = counting_commit  # type: ignore[method-assign]
    killed: list[int] = []
    with RayExecutor.from_spec(resolved) as ex:
        pids = ex.worker_pids()
        assert len(set(pids)) == 2

        def kill_midway() -> None:
            deadline = time.monotonic() + 120
            while ex.sunk < 30 and time.monotonic() < deadline:
                time.sleep(0.01)
            os.kill(pids[0], signal.SIGKILL)  # the process dies mid-shard, its requests in flight
            killed.append(pids[0])

        killer = threading.Thread(target=kill_midway, daemon=True)
        killer.start()
        outcome = run_study(resolved, tmp_path / "out", store=store, executor=ex)
        killer.join(timeout=60)
        assert killed and ex.alive == [False, True]
        assert 0 < ex.rerun_jobs < n
    assert outcome.status == "complete"
    assert outcome.stats.errors == 0 and len(outcome.results) == n
    assert len(puts) == n and max(puts.values()) == 1  # each request committed exactly once
    assert store.count("results") == n and store.count("errors") == 0
    assert len(store.run_items(_run_id(tmp_path / "out"))) == n
    recorded = json.loads((tmp_path / "out" / "run.json").read_text(encoding="utf-8"))["executor"]
    assert recorded["kind"] == "ray" and recorded["workers"] == 2 and recorded["workers_alive"] == 1
    assert recorded["rerun_jobs"] == ex.rerun_jobs > 0
    store.close()
    rows = _rows(tmp_path / "out")
    assert len(rows) == n and len({k for k, _, _ in rows}) == n
    by_pid = Counter(line.split("\t")[0] for line in log.read_text().splitlines())
    assert set(by_pid) == {str(p) for p in pids} and by_pid[str(pids[1])] > by_pid[str(pids[0])]


def _run_id(out: Path) -> str:
    return json.loads((out / "run.json").read_text(encoding="utf-8"))["run_id"]


def test_an_unreachable_address_is_one_line_before_any_call(tmp_path: Path) -> None:
    from conftest import free_port  # noqa: PLC0415

    log = tmp_path / "calls.log"
    spec = _spec(tmp_path, delay_s=0.0, questions=1, replicates=1, call_log=log)
    t0 = time.monotonic()
    result = cli.invoke(app, ["run", str(spec), "--out", str(tmp_path / "out"), "-q", "--executor", "ray",
                              "--address", f"127.0.0.1:{free_port()}"])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "cannot reach the Ray cluster at 127.0.0.1:" in lines[0] and "Fix:" in lines[0]
    assert not log.exists() and not (tmp_path / "out").exists()
    assert time.monotonic() - t0 < 30


def test_a_backend_given_in_python_is_refused_before_any_call(cluster: None, tmp_path: Path) -> None:
    from personae.backends.fake import FakeBackend  # noqa: PLC0415
    from personae.errors import ConfigError  # noqa: PLC0415

    resolved = load_spec(_spec(tmp_path, delay_s=0.0, questions=1, replicates=1))
    given = FakeBackend("fake/test", responder=lambda request: "from Python")
    with RayExecutor.from_spec(resolved) as ex, pytest.raises(ConfigError, match="cannot use the backend object given"):
        run_study(resolved, tmp_path / "out", backends={"fake/test": given}, executor=ex)
    assert given.history == [] and ex.sunk == 0


def test_budgets_stop_like_the_asyncio_executor(cluster: None, tmp_path: Path) -> None:
    spec = _spec(tmp_path, delay_s=0.01, questions=4, replicates=2)
    plain = tmp_path / "plain.yaml"
    data = yaml.safe_load(spec.read_text(encoding="utf-8"))
    del data["executor"]
    plain.write_text(yaml.safe_dump(data), encoding="utf-8")
    stored = {}
    for kind, path in (("asyncio", plain), ("ray", spec)):
        store = tmp_path / f"{kind}.sqlite"
        result = cli.invoke(app, ["run", str(path), "--out", str(tmp_path / kind), "--store", str(store), "-q",
                                  "--executor", kind, "--max-requests", "7"], catch_exceptions=False)
        assert result.exit_code == 3, result.output  # stopped by the budget
        stored[kind] = _store_rows(store)
    assert len(stored["ray"]) == 7 and stored["ray"] == stored["asyncio"]  # the same 7 requests, in plan order
    # a token budget stops the Ray run too (overshooting by what was in flight), and it resumes. 0.5 s per
    # call: 24 requests are 3 rounds of 8 in flight, and the stop must reach the workers before the third
    data["backend"]["delay_s"] = 0.5
    spec.write_text(yaml.safe_dump(data | {"executor": {"workers": 2}}), encoding="utf-8")
    store = tmp_path / "tokens.sqlite"
    result = cli.invoke(app, ["run", str(spec), "--out", str(tmp_path / "tokens"), "--store", str(store), "-q",
                              "--executor", "ray", "--max-tokens", "60"], catch_exceptions=False)
    assert result.exit_code == 3, result.output
    first = len(_store_rows(store))
    assert 0 < first < 4 * 3 * 2
    result = cli.invoke(app, ["run", str(spec), "--out", str(tmp_path / "tokens"), "--store", str(store), "-q",
                              "--executor", "ray"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert len(_store_rows(store)) == 4 * 3 * 2 and f"{first} cache hits" in result.output


def test_each_worker_gets_its_own_options_over_several_waves(cluster: None, tmp_path: Path) -> None:
    """One entry per worker (a call log each, standing in for one base_url each), on a study of 4 waves
    (a dialogue's turns): each worker calls with its own options, the keys are the spec's backend's."""
    logs = [tmp_path / "worker0.log", tmp_path / "worker1.log"]
    data = {"study": "dialogue", "model": "fake/test", "personas": ["builtin:pirate-captain", "builtin:grumpy-farmer"],
            "seed": 3, "replicates": 3, "options": {"user_turns": ["Hello!", "Your morning?", "Afraid of?", "Name?"]}}
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump(data), encoding="utf-8")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({**data, "executor": {"kind": "ray", "workers": [{"call_log": str(p)} for p in logs]}}),
                    encoding="utf-8")
    rows = {}
    for name, path in (("asyncio", plain), ("ray", spec)):
        result = cli.invoke(app, ["run", str(path), "--out", str(tmp_path / name), "--store",
                                  str(tmp_path / f"{name}.sqlite"), "-q"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        rows[name] = _rows(tmp_path / name)
    assert rows["ray"] == rows["asyncio"] and len(rows["ray"]) == 2 * 3 * 4
    keys = [set(line.split("\t")[1] for line in p.read_text().splitlines()) for p in logs]
    pids = [set(line.split("\t")[0] for line in p.read_text().splitlines()) for p in logs]
    assert keys[0] and keys[1] and not keys[0] & keys[1] and keys[0] | keys[1] == {k for k, _, _ in rows["ray"]}
    assert len(pids[0]) == len(pids[1]) == 1 and pids[0] != pids[1]  # one worker process per entry


def test_workers_retry_like_the_asyncio_executor_and_an_abort_reaches_the_driver(cluster: None,
                                                                                  tmp_path: Path) -> None:
    spec = _spec(tmp_path, delay_s=0.0, questions=3, replicates=2)
    data = yaml.safe_load(spec.read_text(encoding="utf-8"))
    data["backend"]["transient_failures"] = 1  # the first call of each request: a 503
    data["concurrency"]["retry"] = {"base_delay_s": 0.01}
    spec.write_text(yaml.safe_dump(data), encoding="utf-8")
    n = 3 * 3 * 2
    resolved = load_spec(spec)
    with RayExecutor.from_spec(resolved) as ex:
        outcome = run_study(resolved, tmp_path / "retried", store=Store(tmp_path / "retried.sqlite"), executor=ex)
        assert outcome.status == "complete" and outcome.stats.errors == 0
        assert outcome.stats.retries == n and outcome.stats.backend_calls == 2 * n
    data["backend"] = {"fail_when": "Question"}  # every request refused: the run stops early with the cause
    spec.write_text(yaml.safe_dump(data), encoding="utf-8")
    result = cli.invoke(app, ["run", str(spec), "--out", str(tmp_path / "refused"), "--store",
                              str(tmp_path / "refused.sqlite"), "-q", "--executor", "ray"])
    assert result.exit_code == 2, result.output
    assert "stopped: the first 8 requests to fake/test all failed" in result.output
    assert len([line for line in result.output.splitlines() if line.strip()]) == 1
