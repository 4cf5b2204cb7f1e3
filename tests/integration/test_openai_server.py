"""The openai backend against a real llama.cpp server (llama-cpp-python's, started on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from personae.api import run_study
from personae.backends import create_backend
from personae.backends.base import Backend, Generation, Message, Request, Sampling
from personae.backends.openai import OpenAIBackend, OpenAIOptions
from personae.runner import Result, RetryPolicy, Runner
from personae.spec import resolve_spec
from personae.store import Store

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "openai/smollm2"
RAINY = Message(role="user", content="What do you like to do on a rainy day?")
ASK_JSON = "Invent a person. Reply with their name and age as JSON."


def run_generate_full(backend: Backend, request: Request) -> Generation:
    async def go() -> Generation:
        try:
            return await backend.generate(request)
        finally:
            await backend.aclose()

    return asyncio.run(go())


def run_generate(backend: Backend, request: Request) -> str:
    return run_generate_full(backend, request).text


@pytest.mark.parametrize("client", ["aiohttp", "sdk"])
def test_generate_via_chat(llama_server: str, client: str) -> None:
    backend = create_backend(MODEL, {"base_url": llama_server, "client": client})
    gen = run_generate_full(backend, Request(model=MODEL, messages=(RAINY,), sampling=Sampling(max_tokens=16)))
    assert gen.text.strip()
    assert gen.prompt_tokens > 0 and 0 < gen.completion_tokens <= 16
    assert gen.finish_reason in {"stop", "length"}


def test_generate_via_completions_mode(llama_server: str) -> None:
    backend = OpenAIBackend(MODEL, OpenAIOptions(base_url=llama_server, mode="completions"))
    raw = run_generate(backend, Request(model=MODEL, prompt="The capital of France is",
                                        sampling=Sampling(max_tokens=8)))
    assert raw.strip()
    # in completions mode chat messages are rendered with ChatML, which SmolLM2 was trained on
    backend = OpenAIBackend(MODEL, OpenAIOptions(base_url=llama_server, mode="completions"))
    chat = run_generate(backend, Request(model=MODEL, messages=(RAINY,), sampling=Sampling(max_tokens=16)))
    assert chat.strip()
    assert "<|im_start|>" not in chat


def test_seed_determinism_at_positive_temperature(llama_server: str) -> None:
    def sample(seed: int) -> str:
        backend = create_backend(MODEL, {"base_url": llama_server})
        return run_generate(backend, Request(model=MODEL, messages=(RAINY,),
                                             sampling=Sampling(temperature=1.0, max_tokens=12, seed=seed)))

    first = sample(21)
    assert first.strip()
    assert sample(21) == first
    others = {sample(s) for s in (22, 23)}
    assert len(others | {first}) >= 2


def test_json_schema_output(llama_server: str) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    # llama-cpp-python's server accepts {type: json_object, schema}, not OpenAI's {type: json_schema}
    backend = create_backend(MODEL, {"base_url": llama_server, "json_format": "json_object"})
    text = run_generate(backend, Request(
        model=MODEL, messages=(Message(role="user", content=ASK_JSON),),
        json_schema=schema, sampling=Sampling(temperature=0.0, max_tokens=64)))
    data = json.loads(text)
    assert isinstance(data["name"], str)
    assert isinstance(data["age"], int) and not isinstance(data["age"], bool)


def test_grid_study_runs_and_second_run_is_all_cache(llama_server: str, tmp_path: Path) -> None:
    spec = resolve_spec({
        "study": "grid",
        "model": MODEL,
        "backend": {"base_url": llama_server},
        "personas": ["builtin:pirate-captain"],
        "replicates": 2,
        "seed": 3,
        "sampling": {"temperature": 0.8, "max_tokens": 12},
        "concurrency": {"requests": 2},
        "options": {"questions": ["What do you like to do on a rainy day?", "What is your favourite food?"]},
    })
    total = 2 * 2 * 2  # (baseline + 1 persona) x 2 questions x 2 replicates
    store = Store(tmp_path / "store.sqlite")
    try:
        first = run_study(spec, tmp_path / "run1", store=store)
        assert first.stats.requests == total
        assert first.stats.errors == 0
        assert first.stats.backend_calls == total and first.stats.cache_hits == 0
        assert store.count("results") == total
        rows = [json.loads(line) for line in (tmp_path / "run1" / "results.jsonl").read_text().splitlines()]
        assert len(rows) == total
        assert all(r["error"] is None and r["response"] and r["response"].strip() for r in rows)
        assert {r["condition"] for r in rows} == {"baseline", "pirate-captain"}
        run_json = json.loads((tmp_path / "run1" / "run.json").read_text())
        assert run_json["status"] == "complete"
        assert run_json["counts"]["backend_calls"] == total
        assert (tmp_path / "run1" / "summary.json").exists() and (tmp_path / "run1" / "report.html").exists()

        second = run_study(spec, tmp_path / "run2", store=store)
        assert second.stats.backend_calls == 0
        assert second.stats.cache_hits == total
        assert [r.text for r in second.results] == [r.text for r in first.results]
        assert json.loads((tmp_path / "run2" / "run.json").read_text())["counts"]["backend_calls"] == 0
    finally:
        store.close()


def test_context_overflow_is_a_permanent_error_row(llama_server: str, tmp_path: Path) -> None:
    """The server answers 400 for a prompt longer than n_ctx: one attempt, an error row, nothing cached."""
    backend = create_backend(MODEL, {"base_url": llama_server})
    too_long = Request(model=MODEL, messages=(Message(role="user", content="word " * 3000),),
                       sampling=Sampling(max_tokens=4))
    fine = Request(model=MODEL, messages=(RAINY,), sampling=Sampling(max_tokens=4))
    store = Store(tmp_path / "store.sqlite")

    async def go() -> tuple[Runner, list[Result]]:
        runner = Runner({MODEL: backend}, store, concurrency=1, run_id="r1",
                        retry=RetryPolicy(max_attempts=3, base_delay_s=0.01, timeout_s=60))
        try:
            return runner, await runner.run([too_long, fine])
        finally:
            await backend.aclose()

    try:
        runner, (bad, good) = asyncio.run(go())
        assert not bad.ok and bad.attempts == 1
        assert "400" in (bad.error or "")
        assert good.ok and good.text
        assert runner.stats.retries == 0 and runner.stats.errors == 1
        errors = store.errors_for("r1")
        assert len(errors) == 1 and errors[0]["status"] == 400 and errors[0]["attempts"] == 1
        assert store.get_many([bad.key]) == {}
        assert store.count("results") == 1
    finally:
        store.close()
