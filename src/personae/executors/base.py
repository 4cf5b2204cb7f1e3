"""The executor protocol: how the runner's pending requests reach their backends.

The runner owns the cache (look-up before, commit after); an executor owns execution: concurrency,
retries with backoff, timeouts, budgets, progress. The default is the asyncio executor in this
process; a Ray executor can shard the same jobs over a cluster without any study changing.
"""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from ..backends.base import Backend, Embedding, Generation, Request, Score
from ..errors import BackendError


class RetryPolicy(BaseModel):
    """How transient failures are retried."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_attempts: int = Field(default=4, ge=1, le=20)
    """Attempts per request, the first included."""
    base_delay_s: float = Field(default=0.5, ge=0.0)
    """Delay before the second attempt; doubles each time."""
    max_delay_s: float = Field(default=30.0, ge=0.0)
    """Cap on one delay (a server's Retry-After is honoured up to 10x this)."""
    jitter: float = Field(default=0.5, ge=0.0, le=1.0)
    """Each delay is multiplied by 1 + U(0, jitter)."""
    timeout_s: float = Field(default=120.0, gt=0)
    """Per-request timeout; a timeout counts as a transient failure."""

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Delay after failed attempt number `attempt` (1-based)."""
        base = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        delay = base * (1.0 + rng.uniform(0.0, self.jitter))
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_delay_s * 10))
        return delay


Output = Generation | Score | Embedding


_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_HEX = re.compile(r"\b[0-9a-f]{12,64}\b")


def error_kind(message: str) -> str:
    """An error message with its numbers and ids masked, cut to 160 characters: one kind per cause."""
    return _NUMBER.sub("N", _HEX.sub("ID", message))[:160]


@dataclass
class RunStats:
    """Counts that run.json reports (for one invocation)."""

    requests: int = 0
    backend_calls: int = 0
    cache_hits: int = 0
    errors: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    embedded_texts: int = 0
    not_sent: int = 0
    concurrency: dict[str, dict[str, int]] = field(default_factory=dict)
    """Per backend with adaptive concurrency: its width at the end, its lowest, its maximum and
    how many times it was halved (429/503)."""
    error_messages: dict[str, dict[str, object]] = field(default_factory=dict)
    """Failures grouped by kind (the message with its numbers masked): {kind: {count, example}}, so
    529 'prompt of 4,6NN tokens' errors are one entry, not 529."""

    def count_error(self, message: str) -> None:
        kind = error_kind(message)
        entry = self.error_messages.setdefault(kind, {"count": 0, "example": message[:300]})
        entry["count"] = int(entry["count"]) + 1  # type: ignore[call-overload]

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Job:
    """Requests that go to one backend in one call: one request, or a batch of texts to embed."""

    backend: Backend
    keys: tuple[str, ...]
    requests: tuple[Request, ...]

    @property
    def kind(self) -> str:
        return self.requests[0].kind


@dataclass(frozen=True)
class Outcome:
    """What one job gave: one output per request, or one error for all of them."""

    outputs: tuple[Output, ...] = ()
    error: BackendError | None = None
    attempts: int = 0


@dataclass
class Budget:
    """Stops a run cleanly once it has sent `max_requests` requests or used `max_tokens` tokens
    (prompt + completion). Counted per invocation: the same command with a larger budget resumes
    from the store and sends only what is missing. Requests already in flight when the token
    budget is reached still finish (and are kept), so a token budget may be overshot by at most
    `concurrency` requests."""

    max_requests: int | None = None
    max_tokens: int | None = None
    requests: int = 0
    tokens: int = 0
    reached: bool = field(default=False)

    def take(self, n: int = 1) -> bool:
        """Reserve n requests; False (and `reached`) when the budget does not allow them."""
        if (self.max_requests is not None and self.requests + n > self.max_requests) or (
                self.max_tokens is not None and self.tokens >= self.max_tokens):
            self.reached = True
            return False
        self.requests += n
        return True

    def spend_tokens(self, n: int) -> None:
        self.tokens += n

    def describe(self) -> dict[str, int | None]:
        return {"max_requests": self.max_requests, "max_tokens": self.max_tokens, "requests_sent": self.requests,
                "tokens_used": self.tokens}


Sink = Callable[[Job, Outcome], "Awaitable[None] | None"]
"""Takes an outcome; may return an awaitable (the runner's commit of it), which the executor awaits
before the worker that delivered the outcome sends its next job."""


class Executor(Protocol):
    """Runs jobs and reports each outcome to `sink` as it arrives (in any order), awaiting what
    `sink` returns, if anything, before that worker's next job."""

    async def execute(self, jobs: Sequence[Job], sink: Sink) -> None:
        """Run every job the budget allows; return when all of them have reported."""
        ...
