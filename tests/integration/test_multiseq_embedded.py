"""The local backend's multi-sequence decoder and listener decoding on the embedded model."""

from __future__ import annotations

import numpy as np
import pytest

from personae.backends.base import ListenerDecoding, Message, Request, Sampling
from personae.backends._multiseq import common_prefix
from personae.backends.local import LocalBackend, _log_softmax

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
    assert ours.shape == (3, STEPS + 1, backend._loaded().n_vocab())

    # The reference: the scoring context (logits for every position), one sequence at a time, with
    # the prompt in one evaluation and then one token per evaluation. Fed that way, not the whole
    # text at once: llama.cpp's one-token decode and its batched evaluation differ here by up to
    # ~0.3 nats on likely tokens, for one sequence alone, so only the same shapes can agree to 1e-4.
    llm = backend.scorer_llm
    for s, prompt in enumerate(prompts):
        llm.reset()
        llm.eval(prompt)
        for t in chosen[s]:
            llm.eval([t])
        n = len(prompt)
        ref = _log_softmax(np.asarray(llm.scores[n - 1 : n + STEPS], dtype=np.float64))
        np.testing.assert_allclose(ours[s], ref, atol=1e-4, rtol=0, err_msg=f"sequence {s}")
        # the first row is also exactly what LocalBackend.score computes for a first continuation token
        text = llm.detokenize([chosen[s][0]]).decode("utf-8")
        if llm.tokenize(text.encode(), add_bos=False, special=False) == [chosen[s][0]]:
            sc = backend.score_sync(Request(model=backend.model_id, kind="score", messages=tuple(chat(PERSONAS[s])),
                                            continuation=text, per_token=True))
            assert sc.token_logprobs is not None
            assert abs(sc.token_logprobs[0] - ours[s, 0, chosen[s][0]]) < 1e-4


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
