"""Token-level S1 decoding (METHODS.md section 5) over any lockstep multi-sequence decoder.

The worlds are the request's own chat (world 0, the true persona) and one chat per distractor
system prompt. Every step the decoder returns next-token log-probabilities S0 for each world; the
listener L0 and the speaker S1 are computed from them, S1's argmax is appended to every world,
and the listener's prior moves to its posterior (or stays uniform).

The step is the same formula as personae.listener.rsa; to be unified.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict

from ..errors import BackendError
from .base import ListenerDecoding, Message, Request


class SequenceDecoder(Protocol):
    """N sequences decoded in lockstep; log-probabilities are natural logs, shape [n_seq, vocab]."""

    n_seq: int
    forward_passes: int
    """Batched evaluations so far."""
    tokens_evaluated: int
    """Token positions evaluated so far, over all sequences."""

    def start(self) -> np.ndarray:
        """Evaluate the prompts; the log-probabilities of each sequence's first new token."""
        ...

    def step(self, tokens: Sequence[int]) -> np.ndarray:
        """Append tokens[s] to sequence s (all in one evaluation); the next log-probabilities."""
        ...

    def is_end(self, token: int) -> bool:
        """Whether the token ends a reply (end of sequence / end of turn)."""
        ...

    def detokenize(self, tokens: Sequence[int]) -> str:
        """The text of generated tokens."""
        ...

    def close(self) -> None:
        """Release the sequences (idempotent)."""
        ...


def s1_step(logp_s0: np.ndarray, log_prior: np.ndarray, alpha: float, beta: float) -> tuple[np.ndarray, np.ndarray]:
    """One S1 step. logp_s0: [n_worlds, vocab] log S0(u | i); log_prior: [n_worlds] log p_t(i).

    Returns (log S1(u | i0) over the vocabulary [vocab], log L0(i | u) for every candidate token
    [n_worlds, vocab]). World 0 is the true persona. The formula is `personae.listener.rsa.token_step`
    (one implementation of METHODS.md section 5, property-tested there).
    """
    from ..listener.rsa import token_step  # noqa: PLC0415  (pure numpy; the listener package imports no backend)

    step = token_step(logp_s0, log_prior, alpha=alpha, beta=beta)
    return step.log_s1, step.log_l0


def listener_worlds(request: Request) -> list[list[Message]]:
    """The request's chat, then the same chat with each distractor as its system message."""
    if request.decoding is None:
        raise BackendError("listener_worlds needs a request with 'decoding' set.", fix="set Request.decoding.")
    if not request.messages:
        raise BackendError("listener decoding needs chat messages (the worlds differ in their system prompt), "
                           "not a raw prompt.", fix="give 'messages' with a system message instead of 'prompt'.")
    msgs = list(request.messages)
    rest = msgs[1:] if msgs[0].role == "system" else msgs
    return [msgs] + [[Message(role="system", content=d), *rest] for d in request.decoding.distractors]


def check_listener_request(request: Request, model_id: str) -> ListenerDecoding:
    """The request's decoding settings, or a BackendError saying which option cannot go with them."""
    d = request.decoding
    if d is None:
        raise BackendError("no listener decoding settings on this request.", backend=model_id,
                           fix="set Request.decoding.")
    s = request.sampling
    if s.temperature > 0 or s.top_p < 1.0:
        raise BackendError(f"listener decoding is greedy, but the request samples (temperature {s.temperature:g}, "
                           f"top_p {s.top_p:g}).", backend=model_id,
                           fix="set sampling.temperature: 0 and top_p: 1 with decoding.")
    if request.json_schema is not None or request.grammar is not None:
        raise BackendError("listener decoding cannot be combined with json_schema or grammar.", backend=model_id,
                           fix="drop json_schema/grammar or drop decoding.")
    return d


class ListenerReply(BaseModel):
    """What a listener decoding produced."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    tokens: tuple[int, ...]
    """Generated tokens (the end token excluded)."""
    finish_reason: str
    """'stop' (end token or stop string) or 'length' (max_tokens)."""
    forward_passes: int
    tokens_evaluated: int
    seconds: float


def decode_s1(decoder: SequenceDecoder, settings: ListenerDecoding, *, max_tokens: int,
              stop: Sequence[str] = ()) -> ListenerReply:
    """Greedy S1 decoding of world 0; stops at an end token, a stop string or max_tokens."""
    start = time.perf_counter()
    n = decoder.n_seq
    uniform = np.full(n, -np.log(n))
    log_prior = uniform
    tokens: list[int] = []
    text, finish, cut_at_stop = "", "length", False
    stops = [x for x in stop if x]
    passes0, evaluated0 = decoder.forward_passes, decoder.tokens_evaluated  # a decoder may be used again
    logp = decoder.start()
    for _ in range(max_tokens):
        log_s1, log_l0 = s1_step(logp, log_prior, settings.alpha, settings.beta)
        tok = int(np.argmax(log_s1))
        if decoder.is_end(tok):
            finish = "stop"
            break
        tokens.append(tok)
        if stops:
            text = decoder.detokenize(tokens)
            cut = min((i for i in (text.find(x) for x in stops) if i >= 0), default=-1)
            if cut >= 0:
                text, finish, cut_at_stop = text[:cut], "stop", True
                break
        if len(tokens) == max_tokens:
            break
        log_prior = log_l0[:, tok] if settings.prior_update == "l0" else uniform
        logp = decoder.step([tok] * n)
    if not cut_at_stop:
        text = decoder.detokenize(tokens)
    return ListenerReply(text=text, tokens=tuple(tokens), finish_reason=finish,
                         forward_passes=decoder.forward_passes - passes0,
                         tokens_evaluated=decoder.tokens_evaluated - evaluated0, seconds=time.perf_counter() - start)
