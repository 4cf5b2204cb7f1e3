"""Group commits: results are written in one transaction per turn of the event loop, and reported
(on_result, run items, progress) only once they are in the store."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from personae.backends.fake import FakeBackend, FakeOptions
from personae.runner import Result, RetryPolicy, Runner
from personae.store import Store

from .helpers import FAST_RETRY, request


def test_a_result_is_reported_only_once_it_is_committed(tmp_path: Path) -> None:
    backend = FakeBackend("fake/test", FakeOptions(fail_when="boom"))
    reqs = [request(f"q{i}" + (" boom" if i % 7 == 0 else "")) for i in range(300)]
    seen: list[Result] = []
    with Store(tmp_path / "s.sqlite") as store, Store(tmp_path / "s.sqlite") as other:
        def on_result(r: Result) -> None:
            seen.append(r)
            if r.ok:  # another connection sees it: committed, not just written in an open transaction
                assert r.key in other.get_many([r.key])
            else:
                assert r.error_id and other.errors_by_id([r.error_id])[r.error_id]["key"] == r.key

        runner = Runner({"fake/test": backend}, store, concurrency=16, on_result=on_result,
                        retry=RetryPolicy(**{**FAST_RETRY, "max_attempts": 1}))
        asyncio.run(runner.run(reqs))
    assert len(seen) == 300 and sum(not r.ok for r in seen) == 43


def test_answers_that_arrive_together_share_one_transaction(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    commits: list[int] = []
    with Store(tmp_path / "s.sqlite") as store:
        real = store.commit_batch

        def counting(puts, errors, **kw):  # type: ignore[no-untyped-def]
            commits.append(len(puts) + len(errors))
            return real(puts, errors, **kw)

        monkeypatch.setattr(store, "commit_batch", counting)
        runner = Runner({"fake/test": FakeBackend("fake/test")}, store, concurrency=32)
        results = asyncio.run(runner.run([request(f"q{i}") for i in range(640)]))
        assert all(r.ok for r in results) and store.count("results") == 640
    assert sum(commits) == 640 and len(commits) <= 640 // 16  # an instant backend: ~32 answers per commit


def test_a_store_that_fails_to_commit_reports_nothing_of_that_group(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    seen: list[Result] = []
    with Store(tmp_path / "s.sqlite") as store:
        calls = [0]
        real = store.commit_batch

        def failing(puts, errors, **kw):  # type: ignore[no-untyped-def]
            calls[0] += 1
            if calls[0] == 3:
                raise sqlite3.OperationalError("disk I/O error")
            return real(puts, errors, **kw)

        monkeypatch.setattr(store, "commit_batch", failing)
        runner = Runner({"fake/test": FakeBackend("fake/test", FakeOptions(delay_s=0.001))}, store, concurrency=1,
                        on_result=seen.append)
        with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
            asyncio.run(runner.run([request(f"q{i}") for i in range(10)]))
        reported = {r.key for r in seen}
        assert len(seen) == 2 and reported <= set(store.get_many(list(reported)))
