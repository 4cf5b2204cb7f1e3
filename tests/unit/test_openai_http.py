"""The openai backend's error mapping and request bodies, on both HTTP clients (aiohttp against a
server on 127.0.0.1, the SDK against an httpx2 MockTransport)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx2
import pytest

from personae.backends.base import Message, Request, Sampling
from personae.backends.openai import OpenAIBackend, OpenAIOptions
from personae.errors import BackendError, BackendUnavailableError, TransientBackendError

from .mock_http import CLIENTS, backend_with

GOOD = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}
KEY = "sk-test-secret-0000"
CHAT = Request(model="openai/m", messages=(Message(role="user", content="Hi"),))


def generate(backend: OpenAIBackend, request: Request = CHAT) -> Any:
    async def go() -> Any:
        try:
            return await backend.generate(request)
        finally:
            await backend.aclose()

    return asyncio.run(go())


def answering(status: int, body: Any, headers: dict[str, str] | None = None) -> Any:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, json=body, headers=headers or {})

    return handler


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(("status", "retry_after", "seconds"), [(429, "3", 3.0), (503, "0.5", 0.5), (500, None, None),
                                                               (429, "Wed, 21 Oct 2015 07:28:00 GMT", 0.0)])
def test_429_and_5xx_are_transient_with_retry_after(client: str, status: int, retry_after: str | None,
                                                   seconds: float | None) -> None:
    headers = {"Retry-After": retry_after} if retry_after else {}
    handler = answering(status, {"error": {"message": "slow down", "type": "rate"}}, headers)
    with backend_with(handler, {"api_key": KEY}, client) as backend, pytest.raises(TransientBackendError) as info:
        generate(backend)
    err = info.value
    assert err.status == status and err.retry_after == seconds
    assert f"answered {status}: slow down" in err.one_line()


@pytest.mark.parametrize("client", CLIENTS)
@pytest.mark.parametrize(("status", "fix"), [(401, "check the API key (in backend.api_key)"),
                                             (403, "check the API key (in backend.api_key)"),
                                             (404, "check the model name"), (400, "check the request options")])
def test_4xx_are_permanent_with_a_fix(client: str, status: int, fix: str) -> None:
    handler = answering(status, {"error": {"message": f"no; you sent Bearer {KEY}"}})
    with backend_with(handler, {"api_key": KEY}, client) as backend, pytest.raises(BackendError) as info:
        generate(backend)
    err = info.value
    assert not err.transient and err.status == status and fix in err.one_line()
    assert KEY not in err.one_line() and "Bearer ***" in err.one_line()


@pytest.mark.parametrize("client", CLIENTS)
def test_a_closed_port_is_backend_unavailable(client: str) -> None:
    opts = OpenAIOptions(base_url="http://127.0.0.1:9/v1", client=client)  # type: ignore[arg-type]
    with pytest.raises(BackendUnavailableError, match="cannot reach the server at http://127.0.0.1:9/v1") as info:
        generate(OpenAIBackend("openai/m", opts))
    assert "start the server or correct backend.base_url" in info.value.one_line()
    assert info.value.transient  # retried (a restarting server); the executor stops a run that never connects


@pytest.mark.slow  # make test runs it; the pre-stop check's 60 s does not
def test_a_slow_server_times_out_as_transient() -> None:
    from .mock_http import ThreadServer

    async def slow(request: Any) -> Any:
        await asyncio.sleep(2)

    with ThreadServer(slow) as server:
        backend = OpenAIBackend("openai/m", OpenAIOptions(base_url=server.url, timeout_s=0.2))
        with pytest.raises(TransientBackendError, match="timed out after 0.2 s"):
            generate(backend)


@pytest.mark.parametrize("client", CLIENTS)
def test_bodies_and_headers_reach_the_server(client: str) -> None:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        if request.url.path.endswith("/completions") and not request.url.path.endswith("chat/completions"):
            return httpx2.Response(200, json={"choices": [{"index": 0, "text": " Paris", "finish_reason": "length"}],
                                              "usage": {"prompt_tokens": 4, "completion_tokens": 1}})
        return httpx2.Response(200, json=GOOD)

    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    req = Request(model="openai/m", messages=(Message(role="user", content="Hi"),), json_schema=schema,
                  grammar="root ::= \"x\"", sampling=Sampling(max_tokens=7, seed=5, stop=("\n",)))
    with backend_with(handler, {"api_key": KEY, "headers": {"X-Team": "lab-42"}}, client) as backend:
        async def both() -> tuple[Any, Any]:
            try:
                return (await backend.generate(req),
                        await backend.generate(Request(model="openai/m", prompt="The capital of France is")))
            finally:
                await backend.aclose()

        gen, raw = asyncio.run(both())
    assert gen.text == "Hello." and gen.prompt_tokens == 3 and gen.completion_tokens == 2
    assert gen.finish_reason == "stop" and raw.text == " Paris" and raw.completion_tokens == 1
    chat, comp = (json.loads(r.content) for r in seen)
    assert seen[0].url.path == "/v1/chat/completions" and seen[1].url.path == "/v1/completions"
    assert all(r.headers["authorization"] == f"Bearer {KEY}" and r.headers["x-team"] == "lab-42" for r in seen)
    assert chat["messages"] == [{"role": "user", "content": "Hi"}] and chat["max_tokens"] == 7
    assert chat["seed"] == 5 and chat["stop"] == ["\n"] and chat["grammar"] == "root ::= \"x\""
    assert chat["response_format"] == {"type": "json_schema",
                                       "json_schema": {"name": "answer", "schema": schema, "strict": True}}
    assert comp["prompt"] == "The capital of France is" and "messages" not in comp


def test_a_header_value_with_a_newline_is_refused_without_being_quoted() -> None:
    opts = OpenAIOptions(base_url="http://127.0.0.1:9/v1", headers={"X-Gateway-Key": "gw-secret-1234\n"})
    with pytest.raises(BackendUnavailableError, match="backend.headers.X-Gateway-Key") as info:
        OpenAIBackend("openai/m", opts).client  # noqa: B018
    assert "gw-secret-1234" not in info.value.one_line()


def test_one_session_per_event_loop() -> None:
    """A backend used from two event loops (two asyncio.run calls) makes a session in each."""
    with backend_with(answering(200, GOOD), {}, "aiohttp") as backend:
        async def twice() -> Any:
            await backend.generate(CHAT)
            first = backend.client._session  # noqa: SLF001
            await backend.generate(CHAT)
            return first, backend.client._session  # noqa: SLF001

        a, b = asyncio.run(twice())
        c, _ = asyncio.run(twice())
        assert a is b and c is not a and a.closed
        asyncio.run(backend.aclose())
