"""The SQLite store: migrations, JSON payloads, and two processes writing at once."""

from __future__ import annotations

import json
import multiprocessing as mp
import sqlite3
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from personae.backends.fake import FakeBackend
from personae.store import MIGRATIONS, Store

from .helpers import key, request, run_requests

DISTINCT = 200
SHARED = 50


def _writer(path: str, name: str, barrier: Any, queue: Any) -> None:
    try:
        barrier.wait(timeout=60)  # both processes open the (new) file at the same moment
        store = Store(path)
        for i in range(DISTINCT):
            store.put(f"{name}-{i}", "generate", "fake/test", json.dumps({"i": i}), json.dumps({"text": f"{name} {i}"}))
            if i < SHARED:  # the same keys from both processes
                store.put(f"shared-{i}", "generate", "fake/test", "{}", json.dumps({"text": f"shared {i}"}))
        store.put_many([(f"{name}-batch-{i}", "generate", "fake/test", "{}", "{}") for i in range(20)])
        store.record_error(f"{name}-err", "fake/test", "boom", run_id=name, status=500, attempts=1)
        store.close()
        queue.put((name, None))
    except BaseException:  # report to the parent instead of dying silently
        queue.put((name, traceback.format_exc()))


def test_two_processes_write_one_store(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    queue = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(path), name, barrier, queue)) for name in ("a", "b")]
    for p in procs:
        p.start()
    outcomes = dict(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=60)
    assert outcomes == {"a": None, "b": None}
    assert [p.exitcode for p in procs] == [0, 0]

    with Store(path) as store:
        keys = [k for k, *_ in store.iter_results()]
        assert len(keys) == len(set(keys))  # no duplicates
        expected = ({f"{n}-{i}" for n in "ab" for i in range(DISTINCT)}
                    | {f"shared-{i}" for i in range(SHARED)}
                    | {f"{n}-batch-{i}" for n in "ab" for i in range(20)})
        assert set(keys) == expected
        assert store.count("errors") == 2
        assert store.schema_version == len(MIGRATIONS)
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("SELECT COUNT(*) FROM migrations").fetchone()[0] == len(MIGRATIONS)
    conn.close()


def test_opening_waits_for_a_writer_on_a_new_file(tmp_path: Path) -> None:
    """Regression: two processes creating the store at once failed with 'database is locked'.

    While one connection holds a write lock on a new (rollback-journal) file, SQLite answers
    'PRAGMA journal_mode=WAL' with 'database is locked' at once, ignoring the busy timeout.
    Opening the store must wait for the writer instead.
    """
    path = tmp_path / "new.sqlite"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("CREATE TABLE unrelated (x)")
    released: list[float] = []

    def release() -> None:
        released.append(time.monotonic())  # before the commit: the store cannot open earlier
        other.execute("COMMIT")

    timer = threading.Timer(0.2, release)
    timer.start()
    try:
        with Store(path) as store:
            opened_at = time.monotonic()
            store.put("k", "generate", "fake/test", "{}", "{}")
            assert store.count() == 1
    finally:
        timer.join()
        other.close()
    assert released and opened_at >= released[0]  # it waited for the writer instead of failing


def test_first_writer_of_a_key_wins(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        store.put("k", "generate", "fake/test", "{}", json.dumps({"text": "first"}))
        store.put("k", "generate", "fake/test", "{}", json.dumps({"text": "second"}))
        assert store.count() == 1
        assert json.loads(store.get_many(["k"])["k"][1]) == {"text": "first"}


def test_get_many_handles_more_keys_than_sqlite_variables(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        store.put_many([(f"k{i}", "generate", "fake/test", "{}", "{}") for i in range(2500)])
        found = store.get_many([f"k{i}" for i in range(3000)] + ["k1", "k1"])
    assert set(found) == {f"k{i}" for i in range(2500)}


def test_reopening_does_not_reapply_migrations(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        store.put("k", "generate", "fake/test", "{}", "{}")
    with Store(path) as store:
        assert store.count() == 1
        assert store.schema_version == len(MIGRATIONS)


def test_store_holds_json_not_pickle(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as store:
        run_requests(FakeBackend(), store, [request("hi")])
        ((stored_key, kind, req, resp),) = list(store.iter_results())
    assert kind == "generate"
    assert json.loads(req)["messages"] == [{"role": "user", "content": "hi"}]
    assert "tags" not in json.loads(req)
    assert isinstance(json.loads(resp)["text"], str)
    assert stored_key == key(request("hi"))


def test_default_path_comes_from_the_environment(isolated_store: Path) -> None:
    with Store() as store:
        assert store.path == isolated_store
    assert isolated_store.exists()
