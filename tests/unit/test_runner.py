"""Runner + Store: cache hits, failures never cached, de-duplication, order, nothing dropped."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from personae.backends.base import Generation, Request, Tags
from personae.backends.fake import FakeBackend, FakeOptions, echo_reply
from personae.errors import BackendError, BackendUnavailableError
from personae.runner import Runner, RunAborted
from personae.store import Store

from .helpers import MODEL, key, request, run_requests


def plan() -> list[Request]:
    return [request(f"question {q}", replicate=r) for q in range(4) for r in range(3)]


def test_second_run_is_all_cache_hits(isolated_store: Path) -> None:
    reqs = plan()
    first_backend = FakeBackend()
    with Store() as store:
        first, runner = run_requests(first_backend, store, reqs)
    assert runner.stats.backend_calls == len(reqs)
    assert runner.stats.cache_hits == 0
    assert len(first_backend.history) == len(reqs)
    assert not any(r.cached for r in first)

    # A backend that refuses every call (fail_when matches any text): only the store can answer.
    second_backend = FakeBackend(options=FakeOptions(fail_when=""))
    with Store(isolated_store) as store:  # reopened from disk
        second, runner = run_requests(second_backend, store, reqs)
    assert second_backend.history == []
    assert runner.stats.backend_calls == 0
    assert runner.stats.cache_hits == len(reqs)
    assert all(r.cached and r.ok for r in second)
    assert [r.text for r in second] == [r.text for r in first]
    assert [r.request for r in second] == reqs


def test_replicates_are_computed_and_stored_separately() -> None:
    reqs = [request("same question", replicate=r) for r in range(5)]
    backend = FakeBackend()
    with Store() as store:
        results, runner = run_requests(backend, store, reqs)
        assert store.count("results") == 5
    assert runner.stats.backend_calls == 5
    assert sorted(r.replicate for r in backend.history) == [0, 1, 2, 3, 4]
    assert len({r.key for r in results}) == 5


def test_cached_response_round_trips_every_field() -> None:
    reqs = [request("one")]
    with Store() as store:
        (first,), _ = run_requests(FakeBackend(), store, reqs)
        (second,), _ = run_requests(FakeBackend(options=FakeOptions(fail_when="")), store, reqs)
    assert second.cached
    assert isinstance(second.generation, Generation)
    assert second.generation == first.generation


def test_failures_are_never_cached_as_successes() -> None:
    reqs = [request("good question"), request("bad question")]
    failing = FakeOptions(fail_when="bad")
    with Store() as store:
        results, runner = run_requests(FakeBackend(options=failing), store, reqs)
        assert [r.ok for r in results] == [True, False]
        assert results[1].generation is None and "bad" in (results[1].error or "")
        assert runner.stats.errors == 1
        assert store.count("results") == 1
        assert store.count("errors") == 1

        # Next run: the failed request is asked again (and fails again, counted again).
        again = FakeBackend(options=failing)
        results, runner = run_requests(again, store, reqs)
        assert [r.last_user() for r in again.history] == ["bad question"]
        assert runner.stats.cache_hits == 1
        assert runner.stats.errors == 1
        assert not results[1].ok
        assert store.count("results") == 1
        assert store.count("errors") == 2

        # A healthy backend finally answers it.
        healthy = FakeBackend()
        results, runner = run_requests(healthy, store, reqs)
        assert [r.last_user() for r in healthy.history] == ["bad question"]
        assert all(r.ok for r in results)
        assert store.count("results") == 2


def test_transient_failure_that_ran_out_of_retries_is_not_cached() -> None:
    reqs = [request("flaky")]
    with Store() as store:
        (res,), _ = run_requests(FakeBackend(options=FakeOptions(transient_failures=5)), store, reqs)
        assert not res.ok
        assert store.count("results") == 0
        healthy = FakeBackend()
        (res,), runner = run_requests(healthy, store, reqs)
    assert res.ok and not res.cached
    assert runner.stats.backend_calls == 1 and len(healthy.history) == 1


def test_duplicate_keys_in_one_wave_are_computed_once() -> None:
    a, b = request("A"), request("B")
    a_tagged = a.model_copy(update={"tags": Tags(persona="someone", item="x", wave=0)})
    reqs = [a, b, a_tagged, a, b]
    backend = FakeBackend()
    with Store() as store:
        results, runner = run_requests(backend, store, reqs)
        assert store.count("results") == 2
    assert len(backend.history) == 2
    assert runner.stats.backend_calls == 2
    assert len(results) == len(reqs)
    assert [r.request for r in results] == reqs  # each result carries its own request (and tags)
    assert results[2].request.tags.persona == "someone"
    assert results[0].text == results[2].text == results[3].text
    assert results[1].text == results[4].text
    assert results[0].text != results[1].text


def test_duplicate_of_a_failing_request_gives_an_error_row_each() -> None:
    reqs = [request("bad"), request("ok"), request("bad")]
    backend = FakeBackend(options=FakeOptions(fail_when="bad"))
    with Store() as store:
        results, runner = run_requests(backend, store, reqs)
    assert len(backend.history) == 2
    assert [r.ok for r in results] == [False, True, False]
    assert len(results) == 3


class SlowFirst(FakeBackend):
    """Answers later requests sooner, so completions arrive out of order."""

    def __init__(self, n: int, **kw: object) -> None:
        super().__init__(responder=echo_reply, **kw)  # type: ignore[arg-type]
        self.n = n

    async def generate(self, request: Request) -> Generation:
        i = int(request.last_user().split()[-1])
        await asyncio.sleep(0.005 * (self.n - i))
        return await super().generate(request)


def test_results_come_back_in_request_order_and_none_is_dropped() -> None:
    n = 24
    reqs = [request(f"item {i}" + (" bad" if i % 5 == 0 else "") + f" {i}") for i in range(n)]
    with Store() as store:
        # Pre-fill the cache with every third request so hits, misses and errors interleave.
        run_requests(FakeBackend(responder=echo_reply), store, reqs[::3])
        backend = SlowFirst(n, options=FakeOptions(fail_when="bad"))
        results, runner = run_requests(backend, store, reqs, concurrency=n)
    completion_order = [r.last_user() for r in backend.history]
    assert completion_order != sorted(completion_order, key=lambda t: int(t.split()[-1]))  # really out of order
    assert len(results) == n
    assert [r.request for r in results] == reqs
    assert [r.key for r in results] == [key(q) for q in reqs]
    for i, (req, res) in enumerate(zip(reqs, results)):
        assert res.cached == (i % 3 == 0)
        if i % 5 == 0 and i % 3 != 0:  # 'bad' and not answered by the store
            assert not res.ok and res.text is None
        else:
            assert res.ok and res.text == req.last_user()
    assert runner.stats.requests == n
    assert runner.stats.cache_hits + runner.stats.backend_calls == n
    assert runner.stats.errors == sum(1 for i in range(n) if i % 5 == 0 and i % 3 != 0)


def test_result_rows_are_json_and_carry_tags() -> None:
    req = request("hi", replicate=2).model_copy(
        update={"tags": Tags(persona="p1", item="q1", condition="c1", wave=1, extra={"k": "v"})})
    with Store() as store:
        (res,), _ = run_requests(FakeBackend(responder=echo_reply), store, [req])
    row = json.loads(json.dumps(res.to_row()))
    assert row["persona"] == "p1" and row["item"] == "q1" and row["condition"] == "c1"
    assert row["wave"] == 1 and row["replicate"] == 2 and row["extra"] == {"k": "v"}
    assert row["response"] == "hi" and row["error"] is None and row["model"] == MODEL
    assert row["key"] == key(req)


def test_script_running_out_is_an_error_row_not_a_crash() -> None:
    backend = FakeBackend(options=FakeOptions(script=("only one",)))
    with Store() as store:
        results, _ = run_requests(backend, store, [request("a"), request("b")], concurrency=1)
    assert [r.text for r in results] == ["only one", None]
    assert "ran out" in (results[1].error or "")


def test_unknown_model_is_a_clear_error() -> None:
    runner = Runner({MODEL: FakeBackend()}, Store())
    with pytest.raises(BackendError, match="no backend was created for model 'fake/other'"):
        asyncio.run(runner.run([request("x", model="fake/other")]))
    runner.store.close()


class DownAtOnce(FakeBackend):
    """The first request finds the server gone; the others are slow and still in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.started: list[str] = []

    async def generate(self, request: Request) -> Generation:
        self.started.append(request.last_user())
        if request.last_user() == "q0":
            raise BackendUnavailableError("connection refused", backend=self.model_id)
        await asyncio.sleep(0.05)
        return await super().generate(request)


def test_abort_stops_requests_in_flight() -> None:
    """Regression: after RunAborted, sibling workers kept calling the backend and reporting results."""
    reqs = [request(f"q{i}") for i in range(8)]
    backend = DownAtOnce()
    seen: list[object] = []

    async def scenario() -> None:
        with Store() as store:
            runner = Runner({MODEL: backend}, store, concurrency=4, on_result=seen.append)
            with pytest.raises(RunAborted, match="connection refused"):
                await runner.run(reqs)
            calls, results = len(backend.history), len(seen)
            await asyncio.sleep(0.2)  # anything still running would finish now
            assert (len(backend.history), len(seen)) == (calls, results)
            assert store.count() == results
        # Only the first wave of workers ever started; nothing new was sent after the outage.
        assert sorted(backend.started) == ["q0", "q1", "q2", "q3"]

    asyncio.run(scenario())


def test_score_requests_are_cached_too() -> None:
    req = Request(kind="score", model=MODEL, prompt="The sky is", continuation="blue today", per_token=True)
    with Store() as store:
        (first,), _ = run_requests(FakeBackend(), store, [req])
        (second,), runner = run_requests(FakeBackend(options=FakeOptions(fail_when="")), store, [req])
    assert first.score is not None and first.score.n_tokens == 2
    assert second.cached and runner.stats.backend_calls == 0
    assert second.score == first.score
    assert second.generation is None


def test_an_unexpected_backend_exception_is_an_error_row_not_a_crash() -> None:
    """A backend that raises something that is not a BackendError (a bug, a malformed answer)."""

    def responder(request):  # noqa: ANN001, ANN202
        if "boom" in request.last_user():
            raise KeyError("choices")
        return "fine"

    backend = FakeBackend(responder=responder)
    reqs = [request("boom"), request("ok")]
    with Store() as store:
        runner = Runner({backend.model_id: backend}, store)
        bad, good = asyncio.run(runner.run(reqs))
        assert not bad.ok and "unexpected KeyError" in (bad.error or "") and bad.attempts == 1
        assert good.ok and good.text == "fine"
        assert runner.stats.errors == 1 and store.count("results") == 1


def test_row_json_is_the_strict_json_of_to_row_for_every_kind_of_result() -> None:
    # row_json splices the messages' JSON (built once per messages tuple) between the row's head
    # and tail; the line must be the one dumps_strict(to_row()) writes, NaN and odd text included.
    from personae._json import dumps_strict
    from personae.backends.base import Embedding, Message, Score
    from personae.runner import Result

    msgs = (Message(role="system", content='Say "ahoy" \u00e9\n\x00'), Message(role="user", content="Q?"))
    req = Request(model=MODEL, messages=msgs, replicate=2, tags=Tags(persona="p", item="q", extra={"x": float("nan")}))
    results = [
        Result(req, "k1", generation=Generation(text="a\u2028b", latency_s=0.5), cached=True),
        Result(req, "k2", error="boom", error_id=3),
        Result(req, "k3", score=Score(logprob=float("-inf"), n_tokens=2)),
        Result(Request(model=MODEL, kind="embed", input="t"), "k4", embedding=Embedding(vector=(0.1, 0.2))),
        Result(Request(model=MODEL, prompt="raw"), "k5", generation=Generation(text="")),
    ]
    for r in results:
        line = r.row_json()
        assert line == dumps_strict(r.to_row())
        assert json.loads(line)["key"] == r.key
    assert results[0].row_json() == results[0].row_json()  # the memo gives the same text twice
