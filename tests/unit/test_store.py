"""The SQLite store: migrations, JSON payloads, and two processes writing at once."""

from __future__ import annotations

import pytest

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


@pytest.mark.slow  # make test runs it; the pre-stop check's 60 s does not
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


# ---------------------------------------------------------------- stores personae must not open (issue 8, item 7)


def _digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_another_programs_sqlite_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    """Used to fail with 'table results already exists' (and switch the file to WAL on the way)."""
    import pytest

    from personae.errors import ConfigError

    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE results (id INTEGER PRIMARY KEY, score REAL)")
        conn.execute("CREATE TABLE players (name TEXT)")
        conn.execute("INSERT INTO results VALUES (1, 0.5)")
    conn.close()
    before = _digest(path)
    with pytest.raises(ConfigError) as info:
        Store(path)
    line = info.value.one_line()
    assert "is a SQLite database of another program, not a personae store (its tables: players, results" in line
    assert info.value.file == str(path) and "Fix: point PERSONAE_STORE (or --store) at another file" in line
    assert _digest(path) == before  # not migrated, not switched to WAL
    assert not Path(str(path) + "-wal").exists()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert conn.execute("SELECT * FROM results").fetchall() == [(1, 0.5)]
    conn.close()


def test_a_file_that_is_not_sqlite_is_refused_and_left_untouched(tmp_path: Path) -> None:
    import pytest

    from personae.errors import ConfigError

    path = tmp_path / "notes.sqlite"
    path.write_text("these are my notes, not a database\n" * 200, encoding="utf-8")
    before = _digest(path)
    with pytest.raises(ConfigError, match="is not a personae store \\(not a SQLite database at all\\)"):
        Store(path)
    assert _digest(path) == before


def test_a_store_from_a_newer_personae_is_refused_with_both_versions(tmp_path: Path) -> None:
    """Accepted before (and written to by the older code); now refused, and left as it was."""
    import pytest

    from personae import __version__
    from personae.errors import ConfigError

    path = tmp_path / "store.sqlite"
    with Store(path) as st:
        st.put("kept", "generate", "fake/test", "{}", json.dumps({"text": "kept"}))
    with sqlite3.connect(path) as conn:  # what a future personae would leave behind
        conn.execute("INSERT INTO migrations VALUES (?, ?)", (len(MIGRATIONS) + 5, time.time()))
    conn.close()
    before = _digest(path)
    with pytest.raises(ConfigError) as info:
        Store(path)
    line = info.value.one_line()
    assert f"was written by a newer personae: its schema is version {len(MIGRATIONS) + 5}" in line
    assert f"this personae ({__version__}) reads up to version {len(MIGRATIONS)}" in line
    assert "Fix: upgrade personae" in line
    assert _digest(path) == before
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 1
    conn.close()


def test_a_store_in_a_folder_sqlite_cannot_write_says_so(tmp_path: Path, monkeypatch: Any) -> None:
    """A read-only folder cannot be made here honestly: the tests run as root, who may write to a
    chmod 0555 folder. So sqlite3.connect is replaced by one that raises exactly what SQLite raises
    there (sqlite3.OperationalError 'unable to open database file'), and the message is checked."""
    import pytest

    from personae import store as store_module
    from personae.errors import ConfigError

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(store_module.sqlite3, "connect", refuse)
    path = tmp_path / "ro" / "store.sqlite"
    with pytest.raises(ConfigError) as info:
        Store(path)
    line = info.value.one_line()
    assert f"the folder {path.parent} is not writable (SQLite: unable to open database file)" in line
    assert "Fix: set PERSONAE_STORE (or --store) to a file in a folder you may write to" in line


def test_a_store_whose_folder_is_a_file_or_that_is_a_folder_says_so(tmp_path: Path) -> None:
    """Two real failures (no simulation): the parent 'folder' is a regular file, and the store path
    is a folder (SQLite's own message for both is 'unable to open database file')."""
    import pytest

    from personae.errors import ConfigError

    blocker = tmp_path / "cache"
    blocker.write_text("a file where the folder should be", encoding="utf-8")
    with pytest.raises(ConfigError, match=f"cannot create the store's folder {blocker}") as info:
        Store(blocker / "store.sqlite")
    assert "Fix: set PERSONAE_STORE" in info.value.one_line()
    assert blocker.read_text(encoding="utf-8") == "a file where the folder should be"
    with pytest.raises(ConfigError, match="is a folder, not a store file. Fix: set PERSONAE_STORE"):
        Store(tmp_path)
