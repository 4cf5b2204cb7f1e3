"""The AIMD rule on a simulated server (pure logic: no clock, no sockets), and its gate."""

from __future__ import annotations

import asyncio
from collections import deque

import pytest

from personae.executors.adaptive import AIMD, AdaptiveGate


def simulate(rule: AIMD, n_requests: int, capacity: int, *, base_latency: float = 1.0,
             queue_after: int | None = None) -> tuple[list[int], int, int]:
    """A server that answers 429 to a request that arrives while `capacity` are already being served.
    Each round the client sends up to the rule's width, then every request in flight is answered
    (latency grows once more than `queue_after` are in flight: the server queues). Refused requests
    go back to the queue. Returns the width at each round, the successes and the 429s."""
    todo = deque(range(n_requests))
    widths, done, refused = [], 0, 0
    while todo:
        widths.append(rule.width)
        batch = [(todo.popleft(), rule.sent()) for _ in range(min(rule.width, len(todo)))]
        in_flight = len(batch)
        for position, (req, token) in enumerate(batch):
            if position >= capacity:
                refused += 1
                todo.append(req)  # retried: nothing is lost
                rule.answered(token, overload=True)
            else:
                slow = queue_after is not None and in_flight > queue_after
                rule.answered(token, overload=False, latency_s=base_latency * (3.0 if slow else 1.0))
                done += 1
    return widths, done, refused


def test_the_width_settles_below_the_capacity_and_nothing_is_lost() -> None:
    rule = AIMD(max_width=64)
    widths, done, refused = simulate(rule, 5000, capacity=10)
    assert done == 5000 and refused > 0
    assert rule.decreases >= 3  # 64 -> 32 -> 16 -> 8, then the sawtooth
    late = widths[len(widths) // 2:]
    assert max(late) <= 11  # it probes one above the capacity at most
    assert sum(late) / len(late) < 10 and min(late) >= 5  # AIMD's sawtooth between capacity/2 and capacity+1


def test_a_burst_of_429s_from_one_width_halves_it_once() -> None:
    rule = AIMD(max_width=32)
    tokens = [rule.sent() for _ in range(32)]
    for t in tokens[16:]:
        rule.answered(t, overload=True)
    assert rule.width == 16 and rule.decreases == 1
    rule.answered(rule.sent(), overload=True)  # sent at the new width: too wide still
    assert rule.width == 8 and rule.decreases == 2


def test_the_width_grows_by_one_per_window_while_latency_holds() -> None:
    rule = AIMD(max_width=8, width=2)
    for _ in range(2):
        rule.answered(rule.sent(), overload=False, latency_s=1.0)
    assert rule.width == 3
    for _ in range(3 + 4 + 5 + 6 + 7 + 8):
        rule.answered(rule.sent(), overload=False, latency_s=1.0)
    assert rule.width == 8  # never above the maximum


def test_the_width_stops_growing_when_latency_grows() -> None:
    rule = AIMD(max_width=64, width=4)
    widths, done, refused = simulate(rule, 3000, capacity=1000, queue_after=6)
    assert refused == 0 and done == 3000
    assert max(widths) == 7  # grew while 6 or fewer were in flight; the queueing window stopped it


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="min_width"):
        AIMD(max_width=0)
    with pytest.raises(ValueError, match="decrease"):
        AIMD(max_width=4, decrease=1.0)


def test_the_gate_holds_requests_beyond_the_width() -> None:
    gate = AdaptiveGate(AIMD(max_width=4, width=2))
    log: list[str] = []

    async def one(i: int) -> None:
        token = await gate.acquire()
        log.append(f"in {i} ({gate.in_flight})")
        await asyncio.sleep(0)
        gate.release(token, overload=False, latency_s=None)

    async def main() -> None:
        await asyncio.gather(*(one(i) for i in range(6)))

    asyncio.run(main())
    assert max(int(line.split("(")[1][0]) for line in log) == 2 and len(log) == 6 and gate.in_flight == 0


def test_the_progress_bar_shows_the_width_and_run_stats_record_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import io

    from rich.console import Console

    from personae.backends.fake import FakeBackend, FakeOptions
    from personae.progress import Progress
    from personae.runner import RetryPolicy, Runner
    from personae.store import Store

    from .helpers import request

    backend = FakeBackend("fake/test", FakeOptions(transient_failures=1))  # every request: one 503 first
    backend.adaptive_concurrency = True
    out = io.StringIO()
    with Store(tmp_path / "s.sqlite") as store, Progress(console=Console(file=out, width=160)) as progress:
        runner = Runner({"fake/test": backend}, store, concurrency=8, progress=progress,
                        retry=RetryPolicy(max_attempts=3, base_delay_s=0.0, jitter=0.0))
        results = asyncio.run(runner.run([request(f"q{i}") for i in range(40)]))
    assert all(r.ok for r in results)
    width = runner.stats.concurrency["fake/test"]
    assert width["max"] == 8 and width["decreases"] >= 1 and width["lowest"] < 8
    assert f"width {width['final']}/8" in out.getvalue()
