"""Listener (S1) decoding through the fake backend's multi-sequence decoder, the S1 step on toy
distributions, and the cache key of Request.decoding."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from personae.backends.base import ListenerDecoding, Message, Request, Sampling
from personae.backends.fake import FAKE_END, FakeBackend, FakeMultiSeq
from personae.backends._s1 import decode_s1, listener_worlds, s1_step
from personae.errors import BackendError
from personae.store import Store

from .helpers import run_requests
from .test_cache_key_v2 import GOLDEN, REQ

SYSTEM = Message(role="system", content="You are Ada, a pirate captain.")
USER = Message(role="user", content="What do you do on weekends?")
DISTRACTORS = ("You are Bo, a librarian.", "You are Cy, a farmer.")


def listener_request(**decoding: object) -> Request:
    return Request(model="fake/test", messages=(SYSTEM, USER), sampling=Sampling(max_tokens=12),
                   decoding=ListenerDecoding(distractors=DISTRACTORS, **decoding))  # type: ignore[arg-type]


def generate(backend: FakeBackend, req: Request):
    return asyncio.run(backend.generate(req))


def greedy_s0(req: Request) -> str:
    """Plain greedy decoding of the true world with the same fake decoder, written out by hand."""
    dec = FakeMultiSeq([list(req.messages)])
    logp, toks = dec.start(), []
    for _ in range(req.sampling.max_tokens):
        tok = int(np.argmax(logp[0]))
        if tok == FAKE_END:
            break
        toks.append(tok)
        if len(toks) == req.sampling.max_tokens:
            break
        logp = dec.step([tok])
    return dec.detokenize(toks)


# ------------------------------------------------------------------ the S1 step on toy distributions
def test_s1_step_alpha_zero_is_s0_and_posteriors_sum_to_one() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 7))
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    prior = np.log(np.array([0.5, 0.3, 0.2]))
    log_s1, log_l0 = s1_step(logp, prior, alpha=0.0, beta=0.5)
    np.testing.assert_allclose(log_s1, logp[0], atol=1e-12)
    np.testing.assert_allclose(np.exp(log_l0).sum(axis=0), 1.0, atol=1e-12)
    # by hand for one token: L0(i|u) proportional to S0(u|i)^beta p(i)
    u = 3
    w = np.exp(0.5 * logp[:, u]) * np.exp(prior)
    np.testing.assert_allclose(np.exp(log_l0[:, u]), w / w.sum(), atol=1e-12)
    log_s1, _ = s1_step(logp, prior, alpha=2.0, beta=0.5)
    np.testing.assert_allclose(np.exp(log_s1).sum(), 1.0, atol=1e-12)


def test_s1_step_favours_a_token_only_the_true_persona_likes() -> None:
    p = np.array([[0.4, 0.4, 0.2], [0.6, 0.2, 0.2], [0.6, 0.2, 0.2]])  # token 1: liked by world 0 alone
    log_s1, _ = s1_step(np.log(p), np.log(np.full(3, 1 / 3)), alpha=2.0, beta=1.0)
    assert np.argmax(np.log(p[0])) == 0 and np.argmax(log_s1) == 1
    # identical personas under a uniform prior leave S0 unchanged
    same = np.log(np.tile(p[:1], (3, 1)))
    log_s1, _ = s1_step(same, np.log(np.full(3, 1 / 3)), alpha=2.0, beta=0.5)
    np.testing.assert_allclose(log_s1, same[0], atol=1e-12)


# ------------------------------------------------------------------ the fake multi-sequence decoder
def test_fake_multiseq_is_deterministic_and_depends_on_the_prompt() -> None:
    worlds = listener_worlds(listener_request())
    a, b = FakeMultiSeq(worlds), FakeMultiSeq(worlds)
    la, lb = a.start(), b.start()
    assert la.shape == (3, FakeMultiSeq.n_vocab)
    np.testing.assert_array_equal(la, lb)
    np.testing.assert_allclose(np.exp(la).sum(axis=1), 1.0, atol=1e-12)
    assert not np.allclose(la[0], la[1])  # another persona, another distribution
    np.testing.assert_array_equal(a.step([0, 0, 0]), b.step([0, 0, 0]))
    assert a.forward_passes == 2
    with pytest.raises(BackendError, match="one token per sequence"):
        a.step([0])


def test_listener_worlds_swap_the_system_prompt() -> None:
    worlds = listener_worlds(listener_request())
    assert [w[0].content for w in worlds] == [SYSTEM.content, *DISTRACTORS]
    assert all(w[1:] == [USER] for w in worlds)
    no_system = listener_request().model_copy(update={"messages": (USER,)})
    assert [len(w) for w in listener_worlds(no_system)] == [1, 2, 2]


def test_alpha_zero_gives_greedy_s0_and_alpha_changes_the_reply() -> None:
    backend = FakeBackend()
    g0 = generate(backend, listener_request(alpha=0.0))
    assert g0.text == greedy_s0(listener_request()) and g0.text
    changed = 0
    for q in ("Hi?", "Where do you live?", "What is your job?", "Tea or coffee?", "Any pets?"):
        base = listener_request(alpha=0.0, beta=1.0).model_copy(update={"messages": (SYSTEM, Message(role="user", content=q))})
        assert base.decoding is not None
        strong = base.model_copy(update={"decoding": base.decoding.model_copy(update={"alpha": 16.0})})
        changed += generate(backend, base).text != generate(backend, strong).text
    assert changed >= 2  # the listener changes what is said
    assert g0.forward_passes == g0.completion_tokens + (0 if g0.finish_reason == "length" else 1)


def test_decoding_matches_decode_s1_by_hand_and_stops() -> None:
    req = listener_request(alpha=3.0, prior_update="uniform")
    g = generate(FakeBackend(), req)
    assert req.decoding is not None
    ref = decode_s1(FakeMultiSeq(listener_worlds(req)), req.decoding, max_tokens=12)
    assert (g.text, g.finish_reason) == (ref.text, ref.finish_reason)
    word = g.text.split()[1]
    cut = req.model_copy(update={"sampling": Sampling(max_tokens=12, stop=(word,))})
    gc = generate(FakeBackend(), cut)
    assert gc.finish_reason == "stop" and word not in gc.text and g.text.startswith(gc.text)
    short = generate(FakeBackend(), req.model_copy(update={"sampling": Sampling(max_tokens=1)}))
    assert short.completion_tokens == 1 and short.finish_reason == "length"


def test_listener_decoding_refuses_sampling_and_raw_prompts() -> None:
    backend = FakeBackend()
    with pytest.raises(BackendError, match="greedy"):
        generate(backend, listener_request().model_copy(update={"sampling": Sampling(temperature=0.7)}))
    raw = Request(model="fake/test", prompt="Hi", decoding=ListenerDecoding(distractors=DISTRACTORS))
    with pytest.raises(BackendError, match="chat messages"):
        generate(backend, raw)
    with pytest.raises(ValidationError):
        ListenerDecoding(distractors=())
    with pytest.raises(ValidationError):
        ListenerDecoding(distractors=DISTRACTORS, alpha=-1)
    with pytest.raises(ValidationError):
        ListenerDecoding(distractors=DISTRACTORS, prior_update="l1")  # type: ignore[arg-type]


def test_runner_refuses_decoding_on_a_backend_without_multiseq(tmp_path: Path) -> None:
    class Plain(FakeBackend):
        supports_multiseq = False

    with Store(tmp_path / "s.sqlite") as store:
        (res,), _ = run_requests(Plain(), store, [listener_request()])
        assert not res.ok and "cannot run listener decoding" in (res.error or "")
        (ok,), _ = run_requests(FakeBackend(), store, [listener_request()])
        assert ok.ok and ok.generation is not None and ok.generation.forward_passes


# ------------------------------------------------------------------ cache key
def test_decoding_settings_are_part_of_the_cache_key(tmp_path: Path) -> None:
    assert REQ.decoding is None and REQ.cache_key("") == GOLDEN[""]  # without decoding: today's key
    keys = {listener_request(**kw).cache_key("") for kw in
            ({}, {"alpha": 0.0}, {"beta": 1.0}, {"prior_update": "uniform"})}
    plain = listener_request().model_copy(update={"decoding": None})
    assert len(keys | {plain.cache_key("")}) == 5
    other = listener_request().model_copy(update={"decoding": ListenerDecoding(distractors=DISTRACTORS[:1])})
    assert other.cache_key("") not in keys
    with Store(tmp_path / "s.sqlite") as store:
        backend = FakeBackend()
        run_requests(backend, store, [listener_request()])
        (again,), _ = run_requests(backend, store, [listener_request()])
        assert again.cached and len(backend.history) == 1
        (new,), _ = run_requests(backend, store, [listener_request(alpha=0.0)])
        assert not new.cached and len(backend.history) == 2
