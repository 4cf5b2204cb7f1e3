"""Adaptive concurrency against a local server that refuses (429) what it cannot serve: a mock
OpenAI-compatible server on 127.0.0.1 serves at most CAPACITY requests at once (each takes a few
milliseconds) and answers 429 with Retry-After: 0 to any request beyond that. The openai backend's
width settles below the capacity, every request is answered once, nothing is lost."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import pytest

from personae.backends import create_backend
from personae.backends.base import Message, Request, Sampling
from personae.runner import Result, RetryPolicy, Runner
from personae.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from mock_http import ThreadServer  # noqa: E402

pytestmark = [pytest.mark.integration]

CAPACITY, MAX_WIDTH, N = 6, 32, 400


class LimitedServer:
    def __init__(self) -> None:
        self.in_flight = self.most = self.refused = 0
        self.served: list[str] = []

    async def handle(self, request: Any) -> Any:
        from aiohttp import web

        body = json.loads(await request.read())
        if self.in_flight >= CAPACITY:
            self.refused += 1
            return web.json_response({"error": {"message": "too many requests"}}, status=429,
                                     headers={"Retry-After": "0"})
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(0.004)
        finally:
            self.in_flight -= 1
        self.served.append(body["messages"][0]["content"])
        return web.json_response({"choices": [{"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": "ok " + body["messages"][0]["content"]}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1}})


@pytest.mark.parametrize("adaptive", [True, False])
def test_the_width_settles_below_what_the_server_serves(adaptive: bool, tmp_path: Path) -> None:
    server = LimitedServer()
    widths: list[int] = []
    with ThreadServer(server.handle) as http:
        backend = create_backend("openai/m", {"base_url": http.url, "adaptive": adaptive})
        requests = [Request(model="openai/m", messages=(Message(role="user", content=f"q{i}"),),
                            sampling=Sampling(max_tokens=4)) for i in range(N)]
        retry = RetryPolicy(max_attempts=20, base_delay_s=0.001, max_delay_s=0.01, jitter=0.0)
        with Store(tmp_path / "s.sqlite") as store:
            runner = Runner({"openai/m": backend}, store, concurrency=MAX_WIDTH, retry=retry)

            def on_result(r: Result) -> None:
                gates = getattr(runner.executor, "gates", {})
                widths.extend(g.rule.width for g in gates.values())

            runner.on_result = on_result

            async def go() -> list[Result]:
                try:
                    return await runner.run(requests)
                finally:
                    await backend.aclose()

            results = asyncio.run(go())
            stored, errors = store.count("results"), store.count("errors")
    # nothing lost, nothing twice: every request answered once, all of them stored
    assert len(results) == N and all(r.ok for r in results) and stored == N and errors == 0
    assert sorted(server.served) == sorted(f"q{i}" for i in range(N))
    assert server.most <= CAPACITY
    if not adaptive:  # the control: a fixed width of 32 keeps meeting 429s
        assert widths == [] and server.refused >= N // 4
        return
    width = runner.stats.concurrency["openai/m"]
    assert width["max"] == MAX_WIDTH and width["decreases"] >= 2
    late = widths[len(widths) // 2:]
    # settled below the capacity: AIMD's sawtooth (halve at a 429, +1 per window) around it; it may probe a
    # little above it while the server, on a busy machine, happens to hold fewer than the client sends
    assert statistics.median(late) <= CAPACITY and max(late) <= 2 * CAPACITY < MAX_WIDTH
    assert server.refused < N // 4  # a few probes above it (the control, fixed at 32, meets many more)
