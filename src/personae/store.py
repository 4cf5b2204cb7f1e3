"""SQLite store: the cache of successful results, error rows, and run records.

- WAL mode and a busy timeout make two processes writing at once safe.
- Only successes are cached; failures go to `errors` and are retried by the next run.
- Every result is committed as it arrives, so a killed run loses nothing it finished.
- Schema changes are numbered migrations (see MIGRATIONS); never edit an applied one.
"""

from __future__ import annotations

import json
import os
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
)


def default_store_path() -> Path:
    """$PERSONAE_STORE, else $XDG_CACHE_HOME/personae/store.sqlite, else ~/.cache/personae/store.sqlite."""
    env = os.environ.get("PERSONAE_STORE")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "personae" / "store.sqlite"


class Store:
    """The cache and run history. Safe to open from several processes."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path is not None else default_store_path()
        conn = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None,
                                                check_same_thread=False)
            self._conn.execute("PRAGMA busy_timeout=60000")
            self._enable_wal()
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except (OSError, sqlite3.Error) as exc:
            if conn is not None:
                conn.close()
            raise ConfigError(f"cannot open the store: {exc}.", file=str(self.path),
                              fix="point --store or PERSONAE_STORE at a writable SQLite file (a new one is "
                              "created if missing).") from None

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
            for version, script in enumerate(MIGRATIONS, start=1):
                if version in done:
                    continue
                for statement in filter(str.strip, script.split(";")):
                    c.execute(statement)
                c.execute("INSERT INTO migrations VALUES (?, ?)", (version, time.time()))
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
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), 900):
            chunk = unique[start : start + 900]
            marks = ",".join("?" * len(chunk))
            for key, kind, response in self._conn.execute(
                f"SELECT key, kind, response FROM results WHERE key IN ({marks})", chunk
            ):
                found[key] = (kind, response)
        return found

    def put(self, key: str, kind: str, model: str, request_json: str, response_json: str) -> None:
        """Cache one success. The first writer of a key wins (replays are identical anyway)."""
        self._conn.execute(
            "INSERT OR IGNORE INTO results VALUES (?, ?, ?, ?, ?, ?)",
            (key, kind, model, request_json, response_json, time.time()),
        )

    def put_many(self, rows: Iterable[tuple[str, str, str, str, str]]) -> None:
        now = time.time()
        c = self._conn
        c.execute("BEGIN IMMEDIATE")
        try:
            c.executemany("INSERT OR IGNORE INTO results VALUES (?, ?, ?, ?, ?, ?)",
                          [(*row, now) for row in rows])
            c.execute("COMMIT")
        except BaseException:
            c.execute("ROLLBACK")
            raise

    def record_error(self, key: str, model: str, error: str, *, run_id: str | None, status: int | None,
                     attempts: int) -> None:
        self._conn.execute(
            "INSERT INTO errors (key, run_id, model, error, status, attempts, created_at) VALUES (?,?,?,?,?,?,?)",
            (key, run_id, model, error, status, attempts, time.time()),
        )

    def count(self, table: str = "results") -> int:
        if table not in ("results", "errors", "runs"):
            raise ValueError(f"unknown table {table!r}")
        return self._conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]

    def errors_for(self, run_id: str) -> list[dict[str, Any]]:
        rows = self._conn.execute(
            "SELECT key, model, error, status, attempts FROM errors WHERE run_id = ? ORDER BY id", (run_id,))
        return [dict(zip(("key", "model", "error", "status", "attempts"), r)) for r in rows]

    # ---------------------------------------------------------------- runs
    def start_run(self, run_id: str, study: str, out_dir: str | None, meta: dict[str, Any]) -> None:
        self._conn.execute("INSERT OR REPLACE INTO runs VALUES (?, ?, ?, ?, NULL, ?)",
                           (run_id, study, out_dir, time.time(), json.dumps(meta)))

    def finish_run(self, run_id: str, meta: dict[str, Any]) -> None:
        self._conn.execute("UPDATE runs SET finished_at = ?, meta = ? WHERE id = ?",
                           (time.time(), json.dumps(meta), run_id))

    def iter_results(self) -> Iterator[tuple[str, str, str, str]]:
        yield from self._conn.execute("SELECT key, kind, request, response FROM results")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
