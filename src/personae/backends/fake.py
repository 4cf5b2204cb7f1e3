"""A deterministic fake backend for tests and dry runs.

Replies come from, in order: a script (a list of replies, consumed in order; running out is an
error), a responder callable (registered by name so specs can use it), or a hash of the request.
Scripted failures exercise the runner: `transient_failures` makes the first N calls of each
request fail with a 503, `fail_when` makes any request whose last user message contains the
string fail permanently. Every call is recorded in `history`, and with `call_log` also appended
to a file (one line per call: process id, tab, the runner's cache key), so that tests which run
`personae` as a subprocess can see which requests each process sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
from collections import Counter
from collections.abc import Callable, Sequence
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .._loading import suggest
from ..errors import BackendError, ConfigError, TransientBackendError
from ._s1 import check_listener_request, decode_s1, listener_worlds
from .base import Backend, Generation, Message, Request, Score

Responder = Callable[[Request], str]
Scorer = Callable[[Request], float]

_RESPONDERS: dict[str, Responder] = {}
_SCORERS: dict[str, Scorer] = {}

_WORDS = ("yes", "no", "maybe", "the", "sea", "stars", "tea", "dog", "farm", "city", "rain", "light",
          "A", "B", "C", "D", "because", "often", "never", "always")


def register_responder(name: str, fn: Responder) -> None:
    """Make `fn(request) -> text` usable from a spec as `backend: {responder: name}`."""
    _RESPONDERS[name] = fn


def register_scorer(name: str, fn: Scorer) -> None:
    """Make `fn(request) -> logprob` usable from a spec as `backend: {scorer: name}`."""
    _SCORERS[name] = fn


def _digest(request: Request) -> bytes:
    return hashlib.sha256(request.cache_key().encode()).digest()


def hash_reply(request: Request) -> str:
    """A deterministic reply that differs between requests (and so between replicates)."""
    d = _digest(request)
    n = 3 + d[0] % 6
    words = [_WORDS[d[i + 1] % len(_WORDS)] for i in range(n)]
    return " ".join(words).capitalize() + "."


def echo_reply(request: Request) -> str:
    return request.last_user()


def persona_reply(request: Request) -> str:
    """Names the persona from the system prompt: proves the prompt reached the model."""
    system = next((m.content for m in request.messages if m.role == "system"), "")
    who = system.split(",")[0].removeprefix("You are ").strip() if system else "nobody"
    return f"As {who}: {hash_reply(request)}"


register_responder("hash", hash_reply)
register_responder("echo", echo_reply)
register_responder("persona", persona_reply)


FAKE_END = len(_WORDS)
"""The fake multi-sequence decoder's end token (its vocabulary is the fake words, then this)."""


class FakeMultiSeq:
    """A deterministic lockstep decoder over a tiny vocabulary (`_WORDS` + an end token): each
    sequence's next-token log-probabilities are a hash of its prompt text and its tokens so far, so
    different personas give different distributions. Implements `_s1.SequenceDecoder`."""

    n_vocab = len(_WORDS) + 1

    def __init__(self, prompts: Sequence[Sequence[Message]]) -> None:
        if not prompts:
            raise BackendError("multi-sequence decoding needs at least one prompt.", fix="give one prompt per sequence.")
        self.n_seq = len(prompts)
        self._texts = ["\x00".join(f"{m.role}:{m.content}" for m in p) for p in prompts]
        self._tokens: list[list[int]] = [[] for _ in prompts]
        self.forward_passes = 0
        self.tokens_evaluated = 0
        self.closed = False

    def _logp(self, s: int) -> np.ndarray:
        seed = hashlib.sha256(f"{self._texts[s]}\x01{self._tokens[s]}".encode()).digest()
        logits = np.frombuffer(seed, dtype=np.uint8)[: self.n_vocab].astype(np.float64) / 32.0
        logits[FAKE_END] += 0.5 * len(self._tokens[s]) - 4.0  # replies end after a few words
        return logits - np.log(np.exp(logits - logits.max()).sum()) - logits.max()

    def start(self) -> np.ndarray:
        self.forward_passes += 1
        self.tokens_evaluated += sum(len(t.split("\x00")) for t in self._texts)
        return np.stack([self._logp(s) for s in range(self.n_seq)])

    def step(self, tokens: Sequence[int]) -> np.ndarray:
        if self.closed:
            raise BackendError("this fake multi-sequence decoder is closed.", fix="open a new one.")
        if len(tokens) != self.n_seq:
            raise BackendError(f"step got {len(tokens)} tokens for {self.n_seq} sequences.",
                               fix="give one token per sequence.")
        for s, t in enumerate(tokens):
            self._tokens[s].append(int(t))
        self.forward_passes += 1
        self.tokens_evaluated += self.n_seq
        return np.stack([self._logp(s) for s in range(self.n_seq)])

    def is_end(self, token: int) -> bool:
        return token == FAKE_END

    def detokenize(self, tokens: Sequence[int]) -> str:
        return " ".join(_WORDS[t] for t in tokens)

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> FakeMultiSeq:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class FakeOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    responder: str = "hash"
    """Registered responder name: 'hash', 'echo', 'persona', or one you registered."""
    scorer: str | None = None
    """Registered scorer name; default: a deterministic function of the request."""
    script: tuple[str, ...] | None = None
    """Replies returned in order; running out is an error."""
    transient_failures: int = Field(default=0, ge=0)
    """The first N calls of each distinct request fail with HTTP 503."""
    retry_after: float | None = None
    """With transient_failures: fail with 429 and this Retry-After instead of 503."""
    fail_when: str | None = None
    """Requests whose last user message contains this string fail permanently (HTTP 400)."""
    delay_s: float = Field(default=0.0, ge=0.0)
    """Simulated latency per call."""
    keep_history: bool = True
    """Record every request in `history` (what tests inspect). False keeps only `calls`, for runs
    whose own memory is measured: the record of a 100,000-request run is 35 MB of requests that
    a real server would hold, not personae (benchmarks/grid_memory.py)."""
    call_log: str | None = None
    """Append a line per call (`PID<TAB>cache key`, the key the runner stores the result under) to
    this file, when the call starts; for tests that run personae in a subprocess. It does not change
    any answer, so it is not part of the fingerprint."""


def check_options(options: FakeOptions) -> None:
    """Raise ConfigError if the responder or scorer named in the options is not registered."""
    if options.responder not in _RESPONDERS:
        raise ConfigError(f"no fake responder '{options.responder}'.{suggest(options.responder, _RESPONDERS)}",
                          field="backend.responder",
                          fix=f"use one of {', '.join(sorted(_RESPONDERS))} or register_responder().")
    if options.scorer is not None and options.scorer not in _SCORERS:
        known = f"registered: {', '.join(sorted(_SCORERS))}" if _SCORERS else "none is registered"
        raise ConfigError(f"no fake scorer '{options.scorer}'.{suggest(options.scorer, _SCORERS)}",
                          field="backend.scorer", fix=f"register it with register_scorer() ({known}).")


class FakeBackend(Backend):
    """Deterministic, scriptable, records every call."""

    provider: ClassVar[str] = "fake"
    supports_scoring = True
    supports_json = True
    supports_seed = True
    supports_multiseq = True

    def __init__(
        self,
        model_id: str = "fake/test",
        options: FakeOptions | None = None,
        *,
        responder: Responder | None = None,
        scorer: Scorer | None = None,
    ) -> None:
        super().__init__(model_id)
        self.options = options or FakeOptions()
        if responder is None:
            if self.options.responder not in _RESPONDERS:
                check_options(self.options)
            responder = _RESPONDERS[self.options.responder]
        if scorer is None and self.options.scorer is not None:
            if self.options.scorer not in _SCORERS:
                check_options(self.options.model_copy(update={"responder": "hash"}))
            scorer = _SCORERS[self.options.scorer]
        self.responder = responder
        self.scorer = scorer
        self._script = list(self.options.script) if self.options.script is not None else None
        self.history: list[Request] = []
        self.calls = 0
        """Calls answered or refused (all of them, with or without keep_history)."""
        self.calls_per_key: Counter[str] = Counter()
        """Per cache key, how many calls (kept with keep_history, or to script transient failures)."""

    def _log_call(self, request: Request) -> None:
        if self.options.call_log is None:
            return
        line = f"{os.getpid()}\t{request.cache_key(self.fingerprint())}\n".encode()
        fd = os.open(self.options.call_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write of one short line: whole even when the process is killed
        finally:
            os.close(fd)

    def _maybe_fail(self, request: Request) -> None:
        o = self.options
        self.calls += 1
        calls = 0
        if o.keep_history:
            self.history.append(request)
        if o.keep_history or o.transient_failures:
            key = request.cache_key()
            self.calls_per_key[key] += 1
            calls = self.calls_per_key[key]
        if o.fail_when is not None and o.fail_when in request.last_user():
            raise BackendError(f"fake backend refused the request (contains {o.fail_when!r}).",
                               backend=self.model_id, status=400)
        if calls and calls <= o.transient_failures:
            if o.retry_after is not None:
                raise TransientBackendError("rate limited (429)", backend=self.model_id, status=429,
                                            retry_after=o.retry_after)
            raise TransientBackendError("service unavailable (503)", backend=self.model_id, status=503)

    def fingerprint(self) -> str:
        """Its name, the responder and scorer named in its options, and its script: what decides its
        answers in a spec (not its scripted failures). A Python callable passed to the constructor is
        the caller's to keep stable, as a resumed run reuses the answers of the first."""
        parts = [self.options.responder, self.options.scorer or "-"]
        if self.options.script is not None:
            parts.append(hashlib.sha256("\x00".join(self.options.script).encode()).hexdigest()[:16])
        return f"fake:{self.model_id}:" + ":".join(parts)

    async def generate(self, request: Request) -> Generation:
        self._log_call(request)
        if self.options.delay_s:
            await asyncio.sleep(self.options.delay_s)
        self._maybe_fail(request)
        if request.decoding is not None:
            return self._listener_generate(request)
        if self._script is not None:
            if not self._script:
                raise BackendError("the fake backend's script ran out of replies.", backend=self.model_id,
                                   fix="add more replies to the script.")
            text = self._script.pop(0)
        else:
            text = self.responder(request)
        n = max(1, len(text.split()))
        return Generation(text=text, finish_reason="stop", prompt_tokens=sum(len(m.content.split()) for m in request.messages),
                          completion_tokens=n)

    def multiseq(self, prompts: Sequence[Sequence[Message]], max_new_tokens: int = 128) -> FakeMultiSeq:
        """The deterministic lockstep decoder (see FakeMultiSeq)."""
        return FakeMultiSeq(prompts)

    def _listener_generate(self, request: Request) -> Generation:
        settings = check_listener_request(request, self.model_id)
        s = request.sampling
        with self.multiseq(listener_worlds(request), s.max_tokens) as decoder:
            reply = decode_s1(decoder, settings, max_tokens=s.max_tokens, stop=s.stop)
        return Generation(text=reply.text, finish_reason=reply.finish_reason, completion_tokens=len(reply.tokens),
                          prompt_tokens=sum(len(m.content.split()) for m in request.messages),
                          forward_passes=reply.forward_passes, tokens_evaluated=reply.tokens_evaluated)

    async def score(self, request: Request) -> Score:
        self._log_call(request)
        if self.options.delay_s:
            await asyncio.sleep(self.options.delay_s)
        self._maybe_fail(request)
        cont = request.continuation or ""
        n = max(1, len(cont.split()))
        if self.scorer is not None:
            lp = float(self.scorer(request))
        else:
            lp = -n * (1.0 + _digest(request)[0] / 255.0)
        per = tuple([lp / n] * n) if request.per_token else None
        if not math.isfinite(lp):
            raise BackendError("fake scorer returned a non-finite log-probability.", backend=self.model_id)
        return Score(logprob=lp, n_tokens=n, token_logprobs=per,
                     tokens=tuple(cont.split()) if request.per_token else None)
