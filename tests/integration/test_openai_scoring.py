"""The openai backend's scoring paths, fed recorded-style server responses, on both HTTP clients.

No model: an httpx2 MockTransport (the SDK client; the openai package here is built on httpx2), or
an aiohttp server on 127.0.0.1 (the aiohttp client) answers /completions with a vLLM
`prompt_logprobs` response or an OpenAI legacy `echo` response.
The score must be the sum of the continuation tokens' log-probabilities only.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2
import pytest

from personae.backends.base import Message, Request, Score
from personae.backends.openai import OpenAIBackend, OpenAIOptions, chatml, score_from_token_pairs
from personae.errors import BackendError

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))
from mock_http import CLIENTS, backend_with  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]


CLIENT = ["aiohttp"]  # the HTTP client score_with uses: set per test by the fixture below


@pytest.fixture(params=CLIENTS, autouse=True)
def client(request: pytest.FixtureRequest) -> str:
    """Every test here runs on both HTTP clients."""
    CLIENT[0] = str(request.param)
    return CLIENT[0]

MODEL = "openai/recorded"
BASE_URL = "http://127.0.0.1:9/v1"  # never contacted: the mock transport answers


def toy_tokenize(text: str) -> list[str]:
    """A stand-in tokenizer: an optional leading space + a run of non-space characters, or one whitespace char."""
    tokens = re.findall(r" ?\S+|\s", text)
    assert "".join(tokens) == text
    return tokens


def toy_logprob(i: int) -> float:
    return -0.1 * (i + 1) - 0.013 * (i % 3)


def vllm_response(prompt: str, *, bos: bool) -> dict[str, Any]:
    """vLLM /v1/completions with prompt_logprobs: per prompt token {token_id: {logprob, rank, decoded_token}},
    None for the first token, the prompt token first and any top-k alternatives after it."""
    tokens = (["<s>"] if bos else []) + toy_tokenize(prompt)
    entries: list[Any] = [None]
    for i, tok in enumerate(tokens[1:], start=1):
        entry = {str(1000 + i): {"logprob": toy_logprob(i), "rank": 2, "decoded_token": tok},
                 "7": {"logprob": -0.01, "rank": 1, "decoded_token": " distractor"}}
        entries.append(entry)
    return {
        "id": "cmpl-1", "object": "text_completion", "created": 1, "model": "recorded",
        "choices": [{"index": 0, "text": " ok", "logprobs": None, "finish_reason": "length", "stop_reason": None,
                     "prompt_logprobs": entries}],
        "usage": {"prompt_tokens": len(tokens), "completion_tokens": 1, "total_tokens": len(tokens) + 1},
    }


def echo_response(prompt: str, *, generated: tuple[str, ...] = ()) -> dict[str, Any]:
    """OpenAI legacy /v1/completions with echo=True and logprobs: tokens, token_logprobs, text_offset."""
    tokens = toy_tokenize(prompt) + list(generated)
    offsets, pos = [], 0
    for tok in tokens:
        offsets.append(pos)
        pos += len(tok)
    logprobs = [None] + [toy_logprob(i) for i in range(1, len(tokens))]
    return {
        "id": "cmpl-2", "object": "text_completion", "created": 1, "model": "recorded",
        "choices": [{"index": 0, "text": "".join(tokens), "finish_reason": "length",
                     "logprobs": {"tokens": tokens, "token_logprobs": logprobs, "text_offset": offsets,
                                  "top_logprobs": [None] + [{t: lp} for t, lp in zip(tokens[1:], logprobs[1:])]}}],
        "usage": {"prompt_tokens": len(tokens), "completion_tokens": 0, "total_tokens": len(tokens)},
    }


def expected_score(prompt: str, continuation: str, *, bos: bool = False) -> tuple[float, list[str]]:
    """Hand computation: the toy tokens that make up the continuation, and their log-prob sum."""
    tokens = (["<s>"] if bos else []) + toy_tokenize(prompt + continuation)
    chosen, pos = [], 0
    for i, tok in enumerate(tokens):
        if bos and i == 0:  # the BOS token has no text
            continue
        if pos >= len(prompt):
            chosen.append((tok, toy_logprob(i)))
        pos += len(tok)
    return sum(lp for _, lp in chosen), [t for t, _ in chosen]


def score_with(options: OpenAIOptions, request: Request,
               responder: Callable[[str], dict[str, Any]]) -> tuple[Score, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []

    def handler(http_request: httpx2.Request) -> httpx2.Response:
        assert http_request.url.host in ("127.0.0.1", "localhost")
        assert http_request.url.path.endswith("/completions")
        body = json.loads(http_request.content)
        seen.append(body)
        return httpx2.Response(200, json=responder(body["prompt"]))

    async def go(backend: OpenAIBackend) -> Score:
        try:
            return await backend.score(request)
        finally:
            await backend.aclose()

    with backend_with(handler, options.model_dump(exclude={"base_url", "client"}, exclude_defaults=True),
                      CLIENT[0], model=MODEL) as backend:
        return asyncio.run(go(backend)), seen


PROMPT = "Q: Do you like the sea?\nA:"
CONT = " Yes sir, I do."


@pytest.mark.parametrize("bos", [False, True], ids=["no-bos", "bos"])
def test_vllm_prompt_logprobs_sum_only_the_continuation(bos: bool) -> None:
    opts = OpenAIOptions(base_url=BASE_URL, scoring="prompt_logprobs")
    req = Request(kind="score", model=MODEL, prompt=PROMPT, continuation=CONT, per_token=True)
    got, seen = score_with(opts, req, lambda p: vllm_response(p, bos=bos))
    expected, tokens = expected_score(PROMPT, CONT, bos=bos)
    assert seen[0]["prompt"] == PROMPT + CONT
    assert seen[0]["prompt_logprobs"] == 0 and seen[0]["max_tokens"] == 1
    assert got.logprob == pytest.approx(expected, abs=1e-12)
    assert got.n_tokens == len(tokens) == 4
    assert list(got.tokens or ()) == tokens
    assert "".join(got.tokens or ()) == CONT
    # the higher-ranked alternative (" distractor", -0.01) must never be picked over the prompt token
    assert all(lp <= -0.1 for lp in got.token_logprobs or ())


def test_vllm_prompt_logprobs_for_chat_messages_use_chatml() -> None:
    messages = (Message(role="system", content="You are a pirate."), Message(role="user", content="Drink?"))
    cont = "Rum, matey!"
    opts = OpenAIOptions(base_url=BASE_URL, scoring="prompt_logprobs")
    req = Request(kind="score", model=MODEL, messages=messages, continuation=cont)
    got, seen = score_with(opts, req, lambda p: vllm_response(p, bos=False))
    prompt = chatml([m.model_dump() for m in messages])
    assert seen[0]["prompt"] == prompt + cont
    expected, tokens = expected_score(prompt, cont)
    assert got.logprob == pytest.approx(expected, abs=1e-12)
    assert got.n_tokens == len(tokens) == 2


def test_echo_logprobs_sum_only_the_continuation() -> None:
    opts = OpenAIOptions(base_url=BASE_URL, scoring="echo")
    req = Request(kind="score", model=MODEL, prompt=PROMPT, continuation=CONT, per_token=True)
    got, seen = score_with(opts, req, lambda p: echo_response(p))
    expected, tokens = expected_score(PROMPT, CONT)
    assert seen[0]["echo"] is True and seen[0]["prompt"] == PROMPT + CONT
    assert got.logprob == pytest.approx(expected, abs=1e-12)
    assert list(got.tokens or ()) == tokens


def test_echo_ignores_tokens_the_server_generated() -> None:
    opts = OpenAIOptions(base_url=BASE_URL, scoring="echo")
    req = Request(kind="score", model=MODEL, prompt=PROMPT, continuation=CONT)
    got, _ = score_with(opts, req, lambda p: echo_response(p, generated=(" Bye", ".")))
    expected, tokens = expected_score(PROMPT, CONT)
    assert got.logprob == pytest.approx(expected, abs=1e-12)
    assert got.n_tokens == len(tokens)


def test_a_token_across_the_boundary_is_an_error_not_a_silent_drop() -> None:
    opts = OpenAIOptions(base_url=BASE_URL, scoring="prompt_logprobs")
    # "The sea" + "side is calm": the toy tokenizer makes " seaside" one token, across the boundary
    req = Request(kind="score", model=MODEL, prompt="The sea", continuation="side is calm")
    with pytest.raises(BackendError, match="spans the end of the prompt"):
        score_with(opts, req, lambda p: vllm_response(p, bos=False))


def test_missing_prompt_logprobs_is_an_error() -> None:
    opts = OpenAIOptions(base_url=BASE_URL, scoring="prompt_logprobs")
    req = Request(kind="score", model=MODEL, prompt=PROMPT, continuation=CONT)

    def plain(prompt: str) -> dict[str, Any]:
        body = vllm_response(prompt, bos=False)
        del body["choices"][0]["prompt_logprobs"]
        return body

    with pytest.raises(BackendError, match="no prompt_logprobs"):
        score_with(opts, req, plain)


def test_score_from_token_pairs_counts_from_the_start_by_default() -> None:
    pairs: list[tuple[str, float | None]] = [("Hi", None), (" there", -1.0), (" you", -2.0)]
    s = score_from_token_pairs(pairs, len("Hi there"), True, 0.0)
    assert s.logprob == -2.0 and s.tokens == (" you",)
