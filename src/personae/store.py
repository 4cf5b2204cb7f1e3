"""SQLite store: the cache of successful results, error rows, and run records.

- WAL mode and a busy timeout make two processes writing at once safe.
- Only successes are cached; failures go to `errors` and are retried by the next run.
- Results are committed in group commits (`commit_batch`: every result that arrived in one turn
  of the event loop, in one transaction) and reported finished only once committed, so a killed
  run loses nothing it reported finished (docs/reliability.md).
- Schema changes are numbered migrations (see MIGRATIONS); never edit an applied one.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError

MIGRATIONS: tuple[str, ...] = (
    # 1: results cache, errors, runs
    """
    CREATE TABLE results (
        key TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        model TEXT NOT NULL,
        request TEXT NOT NULL,
        response TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE errors (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL,
        run_id TEXT,
        model TEXT NOT NULL,
        error TEXT NOT NULL,
        status INTEGER,
        attempts INTEGER NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX errors_key ON errors(key);
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        study TEXT NOT NULL,
        out_dir TEXT,
        started_at REAL NOT NULL,
        finished_at REAL,
        meta TEXT NOT NULL
    );
    """,
    # 2: cache key v2 (old rows stay, never looked up), which run computed a result, the request of
    # a failed call, the results that make up each run, artifacts, run status
    """
    ALTER TABLE results ADD COLUMN key_version INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE results ADD COLUMN run_id TEXT;
    ALTER TABLE errors ADD COLUMN request TEXT;
    ALTER TABLE runs ADD COLUMN status TEXT;
    ALTER TABLE runs ADD COLUMN pid INTEGER;
    ALTER TABLE runs ADD COLUMN host TEXT;
    CREATE TABLE run_items (
        run_id TEXT NOT NULL,
        position INTEGER NOT NULL,
        key TEXT NOT NULL,
        error_id INTEGER,
        wave INTEGER NOT NULL,
        tags TEXT NOT NULL,
        PRIMARY KEY (run_id, position)
    );
    CREATE TABLE artifacts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        content TEXT,
        path TEXT,
        sha256 TEXT NOT NULL,
        created_at REAL NOT NULL,
        UNIQUE (run_id, name)
    );
    CREATE INDEX artifacts_run ON artifacts(run_id);
    """,
)

KEY_VERSION = 2
"""The cache-key version this code writes and reads (see personae.backends.base.KEY_VERSION)."""


def default_store_path() -> Path:
    """$PERSONAE_STORE, else $XDG_CACHE_HOME/personae/store.sqlite, else ~/.cache/personae/store.sqlite."""
    env = os.environ.get("PERSONAE_STORE")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "personae" / "store.sqlite"


_STORE_FIX = ("set PERSONAE_STORE (or --store) to a file in a folder you may write to, e.g. "
              "PERSONAE_STORE=./personae-store.sqlite (a new store is created if missing).")


def _open_error(path: Path, exc: OSError | sqlite3.Error) -> ConfigError:
    """The teaching error for a store SQLite cannot open, by what SQLite said."""
    text = str(exc)
    if "unable to open database file" in text:
        return ConfigError(f"cannot create or open the store: the folder {path.parent} is not writable (SQLite: "
                           f"{text}).", file=str(path), fix=_STORE_FIX)
    if "readonly database" in text:
        return ConfigError(f"the store is read-only (SQLite: {text}).", file=str(path),
                           fix="make the file and its folder writable, or " + _STORE_FIX)
    if "file is not a database" in text:
        return ConfigError("is not a personae store (not a SQLite database at all).", file=str(path),
                           fix="point PERSONAE_STORE (or --store) at another file; personae has left this one "
                           "untouched.")
    return ConfigError(f"cannot open the store: {text}.", file=str(path), fix=_STORE_FIX)


def _alive(pid: int | None, host: str | None) -> bool:
    """Is the process that started a run still there? (Another machine's: assume it is.)"""
    if pid is None:
        return False
    if host and host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Store:
    """The cache and run history. Safe to open from several processes."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        self.notices: list[str] = []
        """One-line notices for the user (e.g. old cache rows that are no longer used)."""
        where = str(self.path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the store's folder {self.path.parent} ({exc.strerror or exc}).",
                              file=where, fix=_STORE_FIX) from None
        if self.path.is_dir():
            raise ConfigError("is a folder, not a store file.", file=where, fix=_STORE_FIX)
        conn = None
        try:
            self._conn = conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None,
                                                check_same_thread=False)
            self._conn.execute("PRAGMA busy_timeout=60000")
            self._check_is_store()  # before WAL: another program's file is left exactly as it was
            self._enable_wal()
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except ConfigError:
            if conn is not None:
                conn.close()
            raise
        except (OSError, sqlite3.Error) as exc:
            if conn is not None:
                conn.close()
            raise _open_error(self.path, exc) from None

    def _check_is_store(self) -> None:
        """Refuse a SQLite file that another program made (tables, but not personae's migrations)."""
        tables = sorted(r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                        if not r[0].startswith("sqlite_"))
        if not tables:
            return  # a new, empty file
        columns = [r[1] for r in self._conn.execute("PRAGMA table_info(migrations)")]
        if columns != ["version", "applied_at"]:
            shown = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
            raise ConfigError(f"is a SQLite database of another program, not a personae store (its tables: {shown}; "
                              "no personae migrations table).", file=str(self.path),
                              fix="point PERSONAE_STORE (or --store) at another file; personae has left this one "
                              "untouched.")

    def _enable_wal(self, wait_s: float = 60.0) -> None:
        """Switch to WAL mode. When two processes open a new file at once, SQLite answers
        'database is locked' at once (the busy timeout does not apply to this pragma), so retry."""
        deadline = time.monotonic() + wait_s
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    # ---------------------------------------------------------------- schema
    def _migrate(self) -> None:
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.execute("CREATE TABLE IF NOT EXISTS migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
            done = {row[0] for row in c.execute("SELECT version FROM migrations")}
            if max(done, default=0) > len(MIGRATIONS):
                from . import __version__  # noqa: PLC0415 (the package imports this module)

                raise ConfigError(f"was written by a newer personae: its schema is version {max(done)}, and this "
                                  f"personae ({__version__}) reads up to version {len(MIGRATIONS)}.",
                                  file=str(self.path), fix="upgrade personae (pip install -U personae), or point "
                                  "PERSONAE_STORE (or --store) at another file; this one is left untouched.")
            for version, script in enumerate(MIGRATIONS, start=1):
                if version in done:
                    continue
                for statement in filter(str.strip, script.split(";")):
                    c.execute(statement)
                c.execute("INSERT INTO migrations VALUES (?, ?)", (version, time.time()))
                if version == 2 and done:
                    old = c.execute("SELECT COUNT(*) FROM results WHERE key_version = 1").fetchone()[0]
                    if old:
                        self.notices.append(
                            f"note: {self.path} holds {old} cached results from personae 0.1 (cache key v1); they "
                            "are kept but not reused, so those requests run again once.")
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    @property
    def schema_version(self) -> int:
        return self._conn.execute("SELECT MAX(version) FROM migrations").fetchone()[0]

    # ---------------------------------------------------------------- cache
    def get_many(self, keys: Sequence[str]) -> dict[str, tuple[str, str]]:
        """key -> (kind, response JSON) for the keys present."""
        found: dict[str, tuple[str, str]] = {}
        for key, kind, response in self._select_in("SELECT key, kind, response FROM results WHERE key_version = "
                                                   f"{KEY_VERSION} AND key IN ({{marks}})", keys):
            found[key] = (kind, response)
        return found

    def get_full(self, keys: Sequence[str]) -> dict[str, tuple[str, str, str, str | None]]:
        """key -> (kind, request JSON, response JSON, the run that computed it) for the keys present."""
        return {key: (kind, req, resp, origin) for key, kind, req, resp, origin in self._select_in(
            f"SELECT key, kind, request, response, run_id FROM results WHERE key_version = {KEY_VERSION} "
            "AND key IN ({marks})", keys)}

    def _select_in(self, sql: str, values: Sequence[Any]) -> Iterator[tuple[Any, ...]]:
        unique = list(dict.fromkeys(values))
        for start in range(0, len(unique), 900):
            chunk = unique[start : start + 900]
            yield from self._conn.execute(sql.format(marks=",".join("?" * len(chunk))), chunk)

    # the first writer of a key wins; a row of an older key version under the same key is replaced
    _PUT = ("INSERT INTO results (key, kind, model, request, response, created_at, key_version, run_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET kind = excluded.kind, "
            "model = excluded.model, request = excluded.request, response = excluded.response, "
            "created_at = excluded.created_at, key_version = excluded.key_version, run_id = excluded.run_id "
            "WHERE results.key_version < excluded.key_version")

    def put(self, key: str, kind: str, model: str, request_json: str, response_json: str, *,
            run_id: str | None = None) -> None:
        """Cache one success. The first writer of a key wins (replays are identical anyway)."""
        self._conn.execute(self._PUT, (key, kind, model, request_json, response_json, time.time(), KEY_VERSION, run_id))

    def put_many(self, rows: Iterable[tuple[str, str, str, str, str]], *, run_id: str | None = None) -> None:
        self.commit_batch(list(rows), [], run_id=run_id)

    def _transaction(self, work: Any) -> None:
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            work(c)
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    _ERROR = ("INSERT INTO errors (key, run_id, model, error, status, attempts, created_at, request) "
              "VALUES (?,?,?,?,?,?,?,?)")

    def commit_batch(self, puts: Sequence[tuple[str, str, str, str, str]],
                     errors: Sequence[tuple[str, str, str, int | None, int, str | None]], *,
                     run_id: str | None = None) -> list[int]:
        """Cache successes (key, kind, model, request JSON, response JSON) and record failures (key,
        model, error, status, attempts, request JSON) in one transaction; returns the error rows' ids."""
        now = time.time()
        ids: list[int] = []

        def work(c: sqlite3.Connection) -> None:
            if puts:
                c.executemany(self._PUT, [(*row, now, KEY_VERSION, run_id) for row in puts])
            for key, model, error, status, attempts, request_json in errors:
                cur = c.execute(self._ERROR, (key, run_id, model, error, status, attempts, now, request_json))
                ids.append(int(cur.lastrowid or 0))

        self._transaction(work)
        return ids

    def record_error(self, key: str, model: str, error: str, *, run_id: str | None, status: int | None,
                     attempts: int, request_json: str | None = None) -> int:
        """Record a failed request; returns the error row's id."""
        cur = self._conn.execute(self._ERROR, (key, run_id, model, error, status, attempts, time.time(), request_json))
        return int(cur.lastrowid or 0)

    def errors_by_id(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        cols = ("id", "key", "model", "error", "status", "attempts", "request")
        return {row[0]: dict(zip(cols, row)) for row in self._select_in(
            f"SELECT {', '.join(cols)} FROM errors WHERE id IN ({{marks}})", ids)}

    def count(self, table: str = "results") -> int:
        if table not in ("results", "errors", "runs", "run_items", "artifacts"):
            raise ValueError(f"unknown table {table!r}")
        return self._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]

    def errors_for(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._conn.execute(
            "SELECT key, model, error, status, attempts FROM errors WHERE run_id = ? ORDER BY id", (run_id,))
        return [dict(zip(("key", "model", "error", "status", "attempts"), r)) for r in rows]

    # ---------------------------------------------------------------- runs
    def start_run(self, run_id: str, study: str, out_dir: str | None, meta: dict[str, Any]) -> None:
        self._conn.execute(
            "INSERT OR REPLACE INTO runs (id, study, out_dir, started_at, finished_at, meta, status, pid, host) "
            "VALUES (?, ?, ?, ?, NULL, ?, 'running', ?, ?)",
            (run_id, study, out_dir, time.time(), json.dumps(meta, default=str), os.getpid(), socket.gethostname()))

    def finish_run(self, run_id: str, meta: dict[str, Any]) -> None:
        """Mark a run finished and MERGE `meta` into what start_run recorded (nothing is overwritten
        but the keys given); `meta['status']` becomes the run's status."""
        row = self._conn.execute("SELECT meta FROM runs WHERE id = ?", (run_id,)).fetchone()
        merged = {**(json.loads(row[0]) if row else {}), **meta}
        self._conn.execute("UPDATE runs SET finished_at = ?, meta = ?, status = ? WHERE id = ?",
                           (time.time(), json.dumps(merged, default=str), meta.get("status", "complete"), run_id))

    def add_run_items(self, run_id: str, items: Sequence[tuple[int, str, int | None, int, str]]) -> None:
        """Record results of a run: (position, key, error id, wave, tags JSON)."""
        rows = [(run_id, *item) for item in items]
        self._transaction(lambda c: c.executemany("INSERT OR REPLACE INTO run_items VALUES (?, ?, ?, ?, ?, ?)", rows))

    def compact_run_items(self, run_id: str) -> None:
        """Renumber a run's positions 0..n-1 in order (closing gaps that unsent requests left)."""
        rows = self._conn.execute("SELECT position FROM run_items WHERE run_id = ? ORDER BY position",
                                  (run_id,)).fetchall()
        if not rows or rows[-1][0] == len(rows) - 1:
            return
        def work(c: sqlite3.Connection) -> None:
            c.execute("UPDATE run_items SET position = -1 - position WHERE run_id = ?", (run_id,))
            c.executemany("UPDATE run_items SET position = ? WHERE run_id = ? AND position = ?",
                          [(n, run_id, -1 - old) for n, (old,) in enumerate(rows)])
        self._transaction(work)

    def run_items(self, run_id: str, start: int = 0, stop: int | None = None) -> list[tuple[int, str, int | None, int, str]]:
        """(position, key, error id, wave, tags JSON) of a run, in plan order (positions start to stop)."""
        return list(self._conn.execute(
            "SELECT position, key, error_id, wave, tags FROM run_items WHERE run_id = ? AND position >= ? "
            "AND position < ? ORDER BY position", (run_id, start, 2**62 if stop is None else stop)))

    def run_item_count(self, run_id: str) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM run_items WHERE run_id = ?", (run_id,)).fetchone()[0])

    def run_origin_counts(self, run_id: str) -> dict[str | None, int]:
        """How many of a run's distinct successful results each run computed (None: before run ids
        were kept), in one query (`result_origins` over the run's keys, without listing them)."""
        return {origin: n for origin, n in self._conn.execute(
            "SELECT r.run_id, COUNT(*) FROM (SELECT DISTINCT key FROM run_items WHERE run_id = ? AND error_id IS NULL) "
            f"AS i JOIN results AS r ON r.key = i.key AND r.key_version = {KEY_VERSION} GROUP BY r.run_id", (run_id,))}

    def runs(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Every run, newest first; a run still 'running' whose process is gone is reported 'aborted'."""
        sql = ("SELECT id, study, out_dir, started_at, finished_at, meta, status, pid, host FROM runs "
               "ORDER BY started_at DESC")
        rows = self._conn.execute(sql + (f" LIMIT {int(limit)}" if limit else "")).fetchall()
        return [self._run_record(row) for row in rows]

    def runs_matching(self, prefix: str) -> list[str]:
        """Ids of the runs whose id is `prefix` or starts with it (the exact id first)."""
        ids = [r[0] for r in self._conn.execute("SELECT id FROM runs WHERE substr(id, 1, ?) = ? ORDER BY id",
                                                (len(prefix), prefix))]
        return [prefix] if prefix in ids else ids

    def run(self, run_id: str) -> dict[str, Any] | None:
        """One run by id, or by a unique prefix of its id (None if none or several match)."""
        ids = self.runs_matching(run_id) if run_id else []
        if len(ids) != 1:
            return None
        row = self._conn.execute(
            "SELECT id, study, out_dir, started_at, finished_at, meta, status, pid, host FROM runs WHERE id = ?",
            (ids[0],)).fetchone()
        return self._run_record(row)

    def _run_record(self, row: tuple[Any, ...]) -> dict[str, Any]:
        run_id, study, out_dir, started, finished, meta, status, pid, host = row
        meta = json.loads(meta) if meta else {}
        status = status or meta.get("status") or ("complete" if finished else "running")
        if status == "running" and not _alive(pid, host):
            status = "aborted"  # its process is gone: say so in the store too, once
            meta = {**meta, "status": status, "note": "the process that ran it ended without finishing (killed?)"}
            self._conn.execute("UPDATE runs SET status = 'aborted', meta = ? WHERE id = ? AND status = 'running'",
                               (json.dumps(meta, default=str), run_id))
        return {"run_id": run_id, "study": study, "out_dir": out_dir, "started_at": started, "finished_at": finished,
                "status": status, "meta": meta}

    # ---------------------------------------------------------------- artifacts
    def put_artifact(self, run_id: str, name: str, kind: str, *, content: str | None = None,
                     path: str | None = None) -> str:
        """Record something a run produced (a panel, a persona version, an adapter's manifest): its
        content (text or JSON) or the path of a file; returns its sha256."""
        if (content is None) == (path is None):
            raise ValueError("give an artifact's content or its path, not both")
        if content is not None:
            digest = hashlib.sha256(content.encode("utf-8")).hexdigest()
        else:
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()  # type: ignore[arg-type]
        self._conn.execute("INSERT OR REPLACE INTO artifacts (run_id, name, kind, content, path, sha256, created_at) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)", (run_id, name, kind, content, path, digest, time.time()))
        return digest

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        cols = ("name", "kind", "content", "path", "sha256", "created_at")
        return [dict(zip(cols, r)) for r in self._conn.execute(
            f"SELECT {', '.join(cols)} FROM artifacts WHERE run_id = ? ORDER BY id", (run_id,))]

    def result_origins(self, keys: Sequence[str]) -> dict[str, str | None]:
        """key -> the run that computed it (None for results cached before run ids were kept)."""
        return {k: r for k, r in self._select_in(
            f"SELECT key, run_id FROM results WHERE key_version = {KEY_VERSION} AND key IN ({{marks}})", keys)}

    def iter_results(self) -> Iterator[tuple[str, str, str, str]]:
        yield from self._conn.execute("SELECT key, kind, request, response FROM results")

    def close(self) -> None:
        self._conn.close()
        self.closed = True

    closed: bool = False

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
