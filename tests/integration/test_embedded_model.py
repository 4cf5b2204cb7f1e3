"""The embedded model (local/smollm2-135m) through personae's backend: structure and direction, not exact text."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest
from llama_cpp import Llama

from personae.backends.base import Message, Request, Sampling
from personae.backends.local import LocalBackend

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "local/smollm2-135m"
PIRATE = Message(role="system", content="You are a pirate captain. Always talk like a pirate: say 'Arr', "
                                         "'matey' and 'ahoy', and mention your ship and the sea.")
RAINY = Message(role="user", content="What do you like to do on a rainy day?")
ASK_JSON = "Invent a person. Reply with their name and age as JSON."


def generate(backend: LocalBackend, request: Request) -> str:
    return asyncio.run(backend.generate(request)).text


def score(backend: LocalBackend, request: Request) -> float:
    return asyncio.run(backend.score(request)).logprob


# ---------------------------------------------------------------------------- generation


def test_persona_changes_the_reply(local_backend: LocalBackend) -> None:
    sampling = Sampling(temperature=0.0, max_tokens=32)
    with_persona = generate(local_backend, Request(model=MODEL, messages=(PIRATE, RAINY), sampling=sampling))
    without = generate(local_backend, Request(model=MODEL, messages=(RAINY,), sampling=sampling))
    assert with_persona.strip() and without.strip()
    assert with_persona != without
    # direction: the pirate reply should not read less like a pirate than the plain one
    pirate_words = ("arr", "aye", "ahoy", "matey", "ship", "sea", "sail", "captain", "treasure", "crew")

    def pirate_score(text: str) -> int:
        low = text.lower()
        return sum(low.count(w) for w in pirate_words)

    assert pirate_score(with_persona) >= pirate_score(without)


def test_greedy_is_reproducible(local_backend: LocalBackend) -> None:
    req = Request(model=MODEL, messages=(RAINY,), sampling=Sampling(temperature=0.0, max_tokens=16))
    assert generate(local_backend, req) == generate(local_backend, req)


def test_same_seed_same_text_different_seeds_differ(local_backend: LocalBackend) -> None:
    def sample(seed: int) -> str:
        return generate(local_backend, Request(
            model=MODEL, messages=(RAINY,), sampling=Sampling(temperature=1.0, max_tokens=16, seed=seed)))

    first = sample(11)
    assert first.strip()
    assert sample(11) == first
    others = {sample(s) for s in (12, 13, 14)}
    # four seeds at temperature 1: identical texts for all of them would mean the seed is ignored
    assert len(others | {first}) >= 2


def test_json_schema_output_parses_and_matches(local_backend: LocalBackend) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    text = generate(local_backend, Request(
        model=MODEL, messages=(Message(role="user", content=ASK_JSON),), json_schema=schema,
        sampling=Sampling(temperature=0.0, max_tokens=64)))
    data = json.loads(text)
    assert isinstance(data, dict)
    assert set(schema["required"]) <= set(data)
    assert isinstance(data["name"], str)
    assert isinstance(data["age"], int) and not isinstance(data["age"], bool)


def test_grammar_constrains_to_a_letter(local_backend: LocalBackend) -> None:
    grammar = 'root ::= "A" | "B" | "C" | "D"'
    question = ("Which one is a fruit?\nA) car\nB) apple\nC) rock\nD) chair\nAnswer with one letter.")
    for seed in (0, 1):
        text = generate(local_backend, Request(
            model=MODEL, messages=(Message(role="user", content=question),), grammar=grammar,
            sampling=Sampling(temperature=0.8, max_tokens=4, seed=seed)))
        assert text in {"A", "B", "C", "D"}


# ---------------------------------------------------------------------------- scoring


@pytest.fixture(scope="module")
def reference_llm(gguf_path: Path) -> Llama:
    """Our own llama.cpp context with logits for every position, independent of the backend's (its KV
    cache in f32 like the backend's default, LocalOptions.kv_type)."""
    return Llama(model_path=str(gguf_path), n_ctx=512, n_threads=2, logits_all=True, type_k=0, type_v=0,
                 verbose=False)


def hand_logprob(llm: Llama, prompt: str, continuation: str) -> tuple[float, int]:
    """Sum of log P(continuation token | everything before it), computed from raw logits with numpy."""
    prompt_ids = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
    cont_ids = llm.tokenize(continuation.encode("utf-8"), add_bos=False, special=False)
    ids = prompt_ids + cont_ids
    llm.reset()
    llm.eval(ids)
    total = 0.0
    for j, tok in enumerate(cont_ids):
        row = np.asarray(llm.scores[len(prompt_ids) - 1 + j], dtype=np.float64)  # logits predicting ids[n+j]
        log_z = row.max() + np.log(np.exp(row - row.max()).sum())
        total += row[tok] - log_z
    return float(total), len(cont_ids)


def test_score_raw_prompt_matches_hand_computation(local_backend: LocalBackend, reference_llm: Llama) -> None:
    prompt, cont = "The capital of France is", " Paris, a city on the Seine."
    got = asyncio.run(local_backend.score(Request(kind="score", model=MODEL, prompt=prompt, continuation=cont,
                                                  per_token=True)))
    expected, n = hand_logprob(reference_llm, prompt, cont)
    assert got.n_tokens == n
    assert got.logprob == pytest.approx(expected, abs=1e-4)
    assert got.token_logprobs is not None and len(got.token_logprobs) == n
    assert sum(got.token_logprobs) == pytest.approx(got.logprob, abs=1e-9)
    assert "".join(got.tokens or ()) == cont


def test_score_chat_messages_matches_hand_computation(local_backend: LocalBackend,
                                                      reference_llm: Llama) -> None:
    messages = (PIRATE, Message(role="user", content="What is your favourite drink?"))
    cont = "Rum, matey!"
    got = asyncio.run(local_backend.score(Request(kind="score", model=MODEL, messages=messages, continuation=cont)))
    prompt = local_backend.chat_prompt([m.model_dump() for m in messages])
    assert prompt.endswith("assistant\n") and PIRATE.content in prompt
    expected, n = hand_logprob(reference_llm, prompt, cont)
    assert got.n_tokens == n
    assert got.logprob == pytest.approx(expected, abs=1e-4)


def test_score_is_not_the_misaligned_echo_value(local_backend: LocalBackend) -> None:
    # NOTES.md: echo=True log-probs from llama-cpp-python give -13.35 here; the logits give about -0.006
    lp = score(local_backend, Request(kind="score", model=MODEL, prompt="I love my dogs very", continuation=" much"))
    assert -0.1 < lp <= 0.0


def test_plausible_continuation_scores_higher(local_backend: LocalBackend) -> None:
    prompt = "The capital of France is"
    plausible = score(local_backend, Request(kind="score", model=MODEL, prompt=prompt, continuation=" Paris"))
    implausible = score(local_backend, Request(kind="score", model=MODEL, prompt=prompt, continuation=" banana"))
    assert plausible < 0.0 and implausible < 0.0
    assert plausible > implausible + 2.0


def test_scoring_and_generating_load_the_model_once() -> None:
    """The scoring context runs on the generation context's model: the weights are loaded once per
    backend (they used to be loaded twice, with a logits buffer for every position of the context)."""
    backend = LocalBackend(MODEL)
    messages = (PIRATE, Message(role="user", content="What is your favourite drink?"))
    first = score(backend, Request(kind="score", model=MODEL, messages=messages, continuation="Rum!"))
    again = score(backend, Request(kind="score", model=MODEL, messages=messages, continuation="Rum!"))
    assert first == pytest.approx(again, abs=1e-6)
    llm = backend._gen
    assert llm is not None and backend._scorer is not None and backend._scorer._llama is llm
    asyncio.run(backend.generate(Request(model=MODEL, messages=messages, sampling=Sampling(max_tokens=4))))
    assert backend._gen is llm  # generation used the same Llama, not a second copy of the weights
    assert score(backend, Request(kind="score", model=MODEL, messages=messages, continuation="Rum!")) == \
        pytest.approx(first, abs=1e-6)  # generating in between leaves the scores as they were

