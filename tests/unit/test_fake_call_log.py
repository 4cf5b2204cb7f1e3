"""The fake backend's `call_log`: one line per call, with the process id and the key the runner
stores the result under (what the SIGKILL suite counts repeated requests with)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from personae.backends.base import Message, Request
from personae.backends.fake import FakeBackend, FakeOptions
from personae.runner import Runner
from personae.store import Store


def test_call_log_names_each_call_by_process_and_stored_key(tmp_path: Path) -> None:
    log = tmp_path / "calls.log"
    backend = FakeBackend("fake/test", FakeOptions(call_log=str(log)))
    requests = [Request(model="fake/test", messages=(Message(role="user", content=f"Q{i}"),), replicate=r)
                for i in range(3) for r in range(2)]
    with Store(tmp_path / "s.sqlite") as store:
        runner = Runner({"fake/test": backend}, store)
        first = asyncio.run(runner.run(requests))
        again = asyncio.run(Runner({"fake/test": backend}, store).run(requests))  # all cached: no new call
    lines = [line.split("\t") for line in log.read_text().splitlines()]
    assert [int(pid) for pid, _ in lines] == [os.getpid()] * len(requests)
    assert sorted(key for _, key in lines) == sorted(r.key for r in first)
    assert all(r.cached for r in again)


def test_call_log_is_not_part_of_the_fingerprint(tmp_path: Path) -> None:
    plain = FakeBackend("fake/test")
    logged = FakeBackend("fake/test", FakeOptions(call_log=str(tmp_path / "calls.log")))
    assert plain.fingerprint() == logged.fingerprint()
