"""The local backend's multi-sequence decoder and listener decoding on the embedded model."""

from __future__ import annotations

import numpy as np
import pytest

from personae.backends.base import ListenerDecoding, Message, Request, Sampling
from personae.backends._multiseq import common_prefix
from personae.backends.local import LocalBackend

pytestmark = pytest.mark.integration

USER = Message(role="user", content="What do you do on weekends?")
PERSONAS = ("You are a pirate captain.", "You are a careful librarian who loves books.", "You are a farmer.")
STEPS = 6


def chat(system: str) -> list[Message]:
    return [Message(role="system", content=system), USER]


def test_multiseq_logprobs_equal_the_single_sequence_path_for_every_sequence(local_backend: LocalBackend) -> None:
    backend = local_backend
    prompts = [backend.chat_tokens(chat(p)) for p in PERSONAS]
    with backend.multiseq([chat(p) for p in PERSONAS], max_new_tokens=STEPS + 1) as dec:
        rows = [dec.start()]
        chosen: list[list[int]] = [[] for _ in PERSONAS]
        for _ in range(STEPS):
            # each sequence follows its own greedy path, so the sequences differ in what they append too
            toks = [int(np.argmax(rows[-1][s])) for s in range(len(PERSONAS))]
            for s, t in enumerate(toks):
                chosen[s].append(t)
            rows.append(dec.step(toks))
        assert dec.forward_passes == 2 + STEPS  # the shared prefix, the suffixes, then one per step
        shared = common_prefix(prompts)
        assert shared > 0  # the chat template's opening tokens
        # the shared prefix is evaluated once, not once per sequence
        assert dec.tokens_evaluated == sum(len(p) for p in prompts) - 2 * shared + STEPS * len(PERSONAS)
    assert dec._ctx is None and dec._batch is None  # freed on exit
    ours = np.stack(rows, axis=1)  # [n_seq, steps + 1, vocab]
    assert ours.shape == (3, STEPS + 1, backend.llm.n_vocab())

    # The reference is the scoring path itself (LocalBackend.score's context), one sequence alone:
    # each sequence's prompt plus the tokens it appended, in one evaluation. With the default f32 KV
    # cache, llama.cpp's one-token steps and its batched evaluation agree; with f16 they differ by
    # up to ~0.65 nats (test_kv_f16_is_why_the_cache_is_f32 below).
    scorer = backend.scorer
    for s, prompt in enumerate(prompts):
        full = prompt + chosen[s]
        n = len(prompt)
        ref = scorer.token_logprobs(full, n)
        got = np.array([ours[s, i, t] for i, t in enumerate(chosen[s])])
        np.testing.assert_allclose(got, ref, atol=1e-4, rtol=0, err_msg=f"sequence {s}")
    # and through LocalBackend.score's public path, where the chosen tokens round-trip through text
    checked = 0
    for s in range(len(PERSONAS)):
        text = backend.llm.detokenize(chosen[s]).decode("utf-8")
        if backend.llm.tokenize(text.encode(), add_bos=False, special=False) != chosen[s]:
            continue
        sc = backend.score_sync(Request(model=backend.model_id, kind="score", messages=tuple(chat(PERSONAS[s])),
                                        continuation=text, per_token=True))
        assert sc.token_logprobs is not None
        np.testing.assert_allclose(sc.token_logprobs, [ours[s, i, t] for i, t in enumerate(chosen[s])], atol=1e-4,
                                   rtol=0, err_msg=f"score of sequence {s}")
        checked += 1
    assert checked >= 1


def test_kv_f16_is_why_the_cache_is_f32() -> None:
    """The reason for LocalOptions.kv_type's default: with an f16 KV cache the same text scored in one
    evaluation and token by token gives log-probabilities far apart; with f32 they are equal."""
    from personae.backends.local import LocalOptions

    gaps = {}
    for kv in ("f16", "f32"):
        b = LocalBackend("local/smollm2-135m", LocalOptions(n_threads=2, n_ctx=512, kv_type=kv))
        toks = b.chat_tokens(chat(PERSONAS[0])) + b.llm.tokenize(b" I sail the seas with my crew.", add_bos=False,
                                                                 special=False)
        n = len(toks) - 8
        whole = b.scorer.token_logprobs(toks, n)
        with b.multiseq_tokens([toks[:n]], max_new_tokens=9) as dec:  # one sequence: one token per step
            rows = [dec.start()] + [dec.step([t]) for t in toks[n:-1]]
        stepped = np.array([r[0, t] for r, t in zip(rows, toks[n:])])
        gaps[kv] = float(np.abs(whole - stepped).max())
    assert gaps["f32"] < 1e-4
    import llama_cpp
    if "LLAMAFILE = 1" in llama_cpp.llama_print_system_info().decode():
        assert gaps["f16"] > 1e-2  # llamafile's sgemm rounds the batched f16 attention its own way
    else:  # make's build (-DGGML_LLAMAFILE=OFF): one kernel for both paths, f16 agrees as well
        assert gaps["f16"] < 1e-4


def test_alpha_zero_listener_decoding_is_greedy_s0(local_backend: LocalBackend) -> None:
    backend = local_backend
    base = Request(model=backend.model_id, messages=tuple(chat(PERSONAS[0])), sampling=Sampling(max_tokens=12))
    greedy = backend.generate_sync(base)
    s1 = backend.generate_sync(base.model_copy(update={"decoding": ListenerDecoding(distractors=PERSONAS[1:],
                                                                                  alpha=0.0)}))
    assert greedy.text and s1.text == greedy.text
    assert s1.completion_tokens == greedy.completion_tokens
    assert s1.forward_passes is not None and s1.forward_passes <= 2 + s1.completion_tokens
    listener = backend.generate_sync(base.model_copy(update={"decoding": ListenerDecoding(distractors=PERSONAS[1:],
                                                                                        alpha=8.0, beta=1.0)}))
    assert listener.text and listener.text != greedy.text  # a strong listener changes the greedy reply


def test_the_next_turn_reuses_each_worlds_kv_and_decodes_the_same(local_backend: LocalBackend) -> None:
    """Listener requests keep their decoder: a chat's next turn evaluates only its new tokens per world,
    and decodes exactly what a fresh decoder (a new backend) decodes."""
    dis = ListenerDecoding(distractors=PERSONAS[1:], alpha=2.0, beta=0.5)
    first = Request(model=local_backend.model_id, messages=tuple(chat(PERSONAS[0])), sampling=Sampling(max_tokens=8),
                    decoding=dis)
    a = local_backend.generate_sync(first)
    turn2 = first.model_copy(update={"messages": (*first.messages, Message(role="assistant", content=a.text),
                                                  Message(role="user", content="And on Mondays?"))})
    warm = local_backend.generate_sync(turn2)
    fresh = LocalBackend(local_backend.model_id, local_backend.options).generate_sync(turn2)
    assert warm.text == fresh.text and warm.completion_tokens == fresh.completion_tokens
    assert fresh.tokens_evaluated is not None and warm.tokens_evaluated is not None
    # fresh: the three whole prompts (less the shared opening); warm: only what the turn added
    assert warm.tokens_evaluated < fresh.tokens_evaluated - 3 * 20
    # a request with other worlds (another persona first) still decodes as from scratch
    other = first.model_copy(update={"messages": tuple(chat(PERSONAS[2]))})
    assert local_backend.generate_sync(other).text == \
        LocalBackend(local_backend.model_id, local_backend.options).generate_sync(other).text
