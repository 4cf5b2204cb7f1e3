"""HTTP 200 answers that are not OpenAI responses are transient: retried, then one clear error row
(issue 8, defect 4). The server is an httpx MockTransport: no socket is opened."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx2
import pytest

from personae.backends.base import Message, Request
from personae.backends.openai import OpenAIBackend, OpenAIOptions
from personae.runner import RetryPolicy, Runner
from personae.store import Store

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


def backend_answering(bad: tuple[str, str], good_after: int | None) -> tuple[OpenAIBackend, list[int]]:
    calls: list[int] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        calls.append(1)
        if good_after is not None and len(calls) > good_after:
            return httpx2.Response(200, json=GOOD)
        return httpx2.Response(200, content=bad[1].encode(), headers={"content-type": bad[0]})

    opts = OpenAIOptions(base_url="http://127.0.0.1:9/v1", api_key="sk-test-0000")
    return OpenAIBackend("openai/m", opts, http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler))), calls


def run_one(backend: OpenAIBackend, tmp_path: Any) -> Any:
    req = Request(model="openai/m", messages=(Message(role="user", content="Hi"),))
    retry = RetryPolicy(max_attempts=3, base_delay_s=0.0, jitter=0.0)
    with Store(tmp_path / "s.sqlite") as st:
        runner = Runner({"openai/m": backend}, st, retry=retry)
        (res,) = asyncio.run(runner.run([req]))
        return res, runner, st.count("errors")


@pytest.mark.parametrize("name", sorted(BODIES))
def test_a_bad_200_body_is_retried_then_recorded_clearly(name: str, tmp_path: Any) -> None:
    backend, calls = backend_answering(BODIES[name], good_after=None)
    res, runner, errors = run_one(backend, tmp_path)
    assert not res.ok and len(calls) == 3 and runner.stats.retries == 2 and errors == 1
    assert "answered 200 with a body that is not an OpenAI response" in res.error
    assert "127.0.0.1:9/v1" in res.error


@pytest.mark.parametrize("name", sorted(BODIES))
def test_a_bad_200_body_once_then_a_good_one_succeeds(name: str, tmp_path: Any) -> None:
    backend, calls = backend_answering(BODIES[name], good_after=1)
    res, runner, errors = run_one(backend, tmp_path)
    assert res.ok and res.text == "Hello." and len(calls) == 2 and errors == 0


def test_the_html_body_is_quoted_in_the_error(tmp_path: Any) -> None:
    backend, _ = backend_answering(BODIES["html"], good_after=None)
    res, _, _ = run_one(backend, tmp_path)
    assert "502 Bad Gateway" in res.error or "<html>" in res.error
