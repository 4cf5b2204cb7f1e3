"""Retries: transient failures, 429 Retry-After, per-request timeouts, permanent errors, backoff."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

import personae.executors.aio as runner_module
from personae.backends.base import Generation, Request
from personae.backends.fake import FakeBackend, FakeOptions
from personae.runner import RetryPolicy
from personae.store import Store

from .helpers import key, request, run_requests

_real_sleep = asyncio.sleep


class _RecordingAsyncio:
    """Stands in for the `asyncio` module inside the asyncio executor: sleeps are recorded, not slept."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(asyncio, name)

    async def sleep(self, delay: float, result: Any = None) -> Any:
        self.delays.append(delay)
        await _real_sleep(0)
        return result


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    fake = _RecordingAsyncio()
    monkeypatch.setattr(runner_module, "asyncio", fake)
    return fake.delays


def test_succeeds_after_transient_failures(sleeps: list[float]) -> None:
    backend = FakeBackend(options=FakeOptions(transient_failures=2))
    req = request("flaky")
    with Store() as store:
        (res,), runner = run_requests(backend, store, [req], retry=RetryPolicy(max_attempts=3, base_delay_s=0.0))
        assert store.count("results") == 1
        assert store.count("errors") == 0
    assert res.ok and res.attempts == 3
    assert backend.calls_per_key[req.cache_key()] == 3
    assert runner.stats.retries == 2
    assert runner.stats.backend_calls == 3
    assert runner.stats.errors == 0
    assert len(sleeps) == 2


def test_gives_up_with_an_error_row_when_attempts_run_out(sleeps: list[float]) -> None:
    backend = FakeBackend(options=FakeOptions(transient_failures=2))
    req = request("flaky")
    with Store() as store:
        (res,), runner = run_requests(backend, store, [req], retry=RetryPolicy(max_attempts=2, base_delay_s=0.0),
                                      run_id="r1")
        errors = store.errors_for("r1")
        assert store.count("results") == 0
    assert not res.ok and res.generation is None
    assert "503" in (res.error or "")
    assert res.attempts == 2
    assert backend.calls_per_key[req.cache_key()] == 2
    assert runner.stats.retries == 1
    assert runner.stats.errors == 1
    assert errors == [{"key": key(req), "model": req.model, "error": res.error, "status": 503, "attempts": 2}]


def test_max_attempts_one_means_no_retry(sleeps: list[float]) -> None:
    backend = FakeBackend(options=FakeOptions(transient_failures=1))
    with Store() as store:
        (res,), runner = run_requests(backend, store, [request("x")], retry=RetryPolicy(max_attempts=1))
    assert not res.ok and res.attempts == 1
    assert runner.stats.retries == 0 and sleeps == []


def test_retry_after_is_honoured_by_the_policy() -> None:
    policy = RetryPolicy(base_delay_s=0.01, jitter=0.5, max_delay_s=30.0)
    rng = random.Random(0)
    for attempt in (1, 2, 3):
        assert policy.delay(attempt, 2.5, rng) >= 2.5
    # A silly Retry-After is capped at 10x max_delay_s.
    capped = RetryPolicy(base_delay_s=0.01, jitter=0.0, max_delay_s=0.1)
    assert capped.delay(1, 1000.0, rng) == pytest.approx(1.0)


def test_runner_waits_for_retry_after(sleeps: list[float]) -> None:
    backend = FakeBackend(options=FakeOptions(transient_failures=2, retry_after=2.5))
    with Store() as store:
        (res,), runner = run_requests(backend, store, [request("limited")],
                                      retry=RetryPolicy(max_attempts=3, base_delay_s=0.01, jitter=0.5))
    assert res.ok and res.attempts == 3
    assert runner.stats.retries == 2
    assert len(sleeps) == 2
    assert all(d >= 2.5 for d in sleeps)


def test_timeout_is_transient_and_ends_in_an_error_row(sleeps: list[float]) -> None:
    backend = FakeBackend(options=FakeOptions(delay_s=2.0))
    with Store() as store:
        (res,), runner = run_requests(backend, store, [request("slow")],
                                      retry=RetryPolicy(max_attempts=3, base_delay_s=0.0, timeout_s=0.02))
        assert store.count("results") == 0
    assert not res.ok
    assert "timed out" in (res.error or "")
    assert res.attempts == 3
    assert runner.stats.retries == 2  # a timeout is retried like any transient failure
    assert runner.stats.backend_calls == 3
    assert runner.stats.errors == 1


class SlowOnce(FakeBackend):
    """The first call hangs past the timeout; the second answers at once."""

    async def generate(self, request: Request) -> Generation:
        if not getattr(self, "_slept", False):
            self._slept = True
            await asyncio.sleep(5)
        return await super().generate(request)


def test_timeout_then_success(sleeps: list[float]) -> None:
    backend = SlowOnce()
    with Store() as store:
        (res,), runner = run_requests(backend, store, [request("x")],
                                      retry=RetryPolicy(max_attempts=2, base_delay_s=0.0, timeout_s=0.02))
    assert res.ok and res.attempts == 2
    assert runner.stats.retries == 1 and runner.stats.errors == 0


def test_permanent_errors_are_not_retried(sleeps: list[float]) -> None:
    backend = FakeBackend(options=FakeOptions(fail_when="forbidden"))
    with Store() as store:
        (res,), runner = run_requests(backend, store, [request("a forbidden question")],
                                      retry=RetryPolicy(max_attempts=5, base_delay_s=0.0), run_id="r2")
        (row,) = store.errors_for("r2")
    assert not res.ok and res.attempts == 1
    assert len(backend.history) == 1
    assert runner.stats.retries == 0 and runner.stats.backend_calls == 1
    assert sleeps == []
    assert row["status"] == 400 and row["attempts"] == 1


def test_policy_backoff_doubles_without_jitter() -> None:
    policy = RetryPolicy(base_delay_s=0.1, jitter=0.0, max_delay_s=100.0)
    rng = random.Random(0)
    delays = [policy.delay(a, None, rng) for a in range(1, 7)]
    assert delays == pytest.approx([0.1 * 2 ** k for k in range(6)])


def test_policy_backoff_is_capped_and_jitter_stays_in_bounds() -> None:
    rng = random.Random(1)
    capped = RetryPolicy(base_delay_s=1.0, jitter=0.0, max_delay_s=3.0)
    assert [capped.delay(a, None, rng) for a in range(1, 5)] == pytest.approx([1.0, 2.0, 3.0, 3.0])
    jittered = RetryPolicy(base_delay_s=1.0, jitter=0.5, max_delay_s=100.0)
    samples = [jittered.delay(2, None, rng) for _ in range(200)]
    assert all(2.0 <= d <= 3.0 for d in samples)
    assert len(set(samples)) > 1  # jitter really varies


def test_runner_backoff_doubles(sleeps: list[float]) -> None:
    backend = FakeBackend(options=FakeOptions(transient_failures=3))
    with Store() as store:
        (res,), _ = run_requests(backend, store, [request("x")],
                                 retry=RetryPolicy(max_attempts=4, base_delay_s=0.1, jitter=0.0))
    assert res.ok
    assert sleeps == pytest.approx([0.1, 0.2, 0.4])


def test_runner_retry_delays_are_seeded() -> None:
    def delays(seed: int) -> list[float]:
        rng = random.Random(seed)
        policy = RetryPolicy(base_delay_s=0.1, jitter=1.0)
        return [policy.delay(a, None, rng) for a in range(1, 5)]

    assert delays(3) == delays(3)
    assert delays(3) != delays(4)
