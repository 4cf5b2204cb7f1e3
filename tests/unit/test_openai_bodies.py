"""HTTP 200 answers that are not OpenAI responses are transient: retried, then one clear error row
(issue 8, defect 4). On both HTTP clients: the SDK's (an httpx MockTransport, no socket) and
aiohttp (a server on 127.0.0.1)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import pytest

from personae.backends.base import Message, Request
from personae.backends.openai import OpenAIBackend
from personae.runner import RetryPolicy, Runner
from personae.store import Store

from .mock_http import CLIENTS, backend_with

GOOD = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
BODIES: dict[str, tuple[str, str]] = {
    "html": ("text/html", "<html><body>502 Bad Gateway from the proxy</body></html>"),
    "truncated": ("application/json", '{"id": "x", "choices": [{"index": 0, "mess'),
    "empty object": ("application/json", "{}"),
    "no choices": ("application/json", '{"id": "x", "object": "chat.completion", "created": 0, "model": "m", '
                   '"choices": []}'),
}


def handler_answering(bad: tuple[str, str], good_after: int | None) -> tuple[Any, list[int]]:
    calls: list[int] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(1)
        if good_after is not None and len(calls) > good_after:
            return httpx2.Response(200, json=GOOD)
        return httpx2.Response(200, content=bad[1].encode(), headers={"content-type": bad[0]})

    return handler, calls


OPTS = {"api_key": "sk-test-0000"}


def run_one(backend: OpenAIBackend, tmp_path: Any) -> Any:
    req = Request(model="openai/m", messages=(Message(role="user", content="Hi"),))
    retry = RetryPolicy(max_attempts=3, base_delay_s=0.0, jitter=0.0)
    with Store(tmp_path / "s.sqlite") as st:
        runner = Runner({"openai/m": backend}, st, retry=retry)
        (res,) = asyncio.run(runner.run([req]))
        return res, runner, st.count("errors")


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("name", sorted(BODIES))
def test_a_bad_200_body_is_retried_then_recorded_clearly(name: str, client: str, tmp_path: Any) -> None:
    handler, calls = handler_answering(BODIES[name], good_after=None)
    with backend_with(handler, OPTS, client) as backend:
        res, runner, errors = run_one(backend, tmp_path)
    assert not res.ok and len(calls) == 3 and runner.stats.retries == 2 and errors == 1
    assert "answered 200 with a body that is not an OpenAI response" in res.error
    assert backend.options.base_url.removeprefix("http://") in res.error


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize("name", sorted(BODIES))
def test_a_bad_200_body_once_then_a_good_one_succeeds(name: str, client: str, tmp_path: Any) -> None:
    handler, calls = handler_answering(BODIES[name], good_after=1)
    with backend_with(handler, OPTS, client) as backend:
        res, runner, errors = run_one(backend, tmp_path)
    assert res.ok and res.text == "Hello." and len(calls) == 2 and errors == 0


@pytest.mark.parametrize("client", CLIENTS)
def test_the_html_body_is_quoted_in_the_error(client: str, tmp_path: Any) -> None:
    handler, _ = handler_answering(BODIES["html"], good_after=None)
    with backend_with(handler, OPTS, client) as backend:
        res, _, _ = run_one(backend, tmp_path)
    assert "502 Bad Gateway" in res.error or "<html>" in res.error
