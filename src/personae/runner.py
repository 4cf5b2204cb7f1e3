"""Async execution of requests: cache look-up, bounded concurrency, retries, progress, streaming.

One path for every model call. The runner
- answers what the store already holds (one batched look-up per wave),
- runs the rest with at most `concurrency` requests in flight per backend,
- retries transient failures (timeouts, 429 with Retry-After, 5xx, connection resets) with
  exponential backoff and jitter, under a per-request timeout,
- commits each success to the store as it arrives, records every failure as an error row,
- and returns one Result per request, in order: nothing is dropped.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .backends.base import Backend, Generation, Request, Score
from .errors import BackendError, BackendUnavailableError, TransientBackendError
from .progress import Progress
from .store import Store


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


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one request: a generation, a score, or an error. Never dropped."""

    request: Request
    key: str
    generation: Generation | None = None
    score: Score | None = None
    error: str | None = None
    cached: bool = False
    attempts: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def text(self) -> str | None:
        return self.generation.text if self.generation is not None else None

    def to_row(self) -> dict[str, Any]:
        """One line of results.jsonl."""
        t = self.request.tags
        return {
            "key": self.key,
            "model": self.request.model,
            "kind": self.request.kind,
            "persona": t.persona,
            "item": t.item,
            "condition": t.condition,
            "replicate": self.request.replicate,
            "wave": t.wave,
            "extra": t.extra,
            "messages": [m.model_dump() for m in self.request.messages],
            "prompt": self.request.prompt,
            "continuation": self.request.continuation,
            "response": self.text,
            "score": self.score.model_dump() if self.score else None,
            "error": self.error,
            "cached": self.cached,
            "attempts": self.attempts,
            "latency_s": (self.generation or self.score).latency_s if (self.generation or self.score) else None,
        }


@dataclass
class RunStats:
    """Counts that run.json reports."""

    requests: int = 0
    backend_calls: int = 0
    cache_hits: int = 0
    errors: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error_messages: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class RunAborted(BackendError):
    """Every request is failing the same way (e.g. the server is down): stop early."""


def _from_cache(request: Request, key: str, kind: str, response: str) -> Result:
    if kind == "score":
        return Result(request, key, score=Score.model_validate_json(response), cached=True)
    return Result(request, key, generation=Generation.model_validate_json(response), cached=True)


class Runner:
    """Runs requests against backends through the store."""

    def __init__(
        self,
        backends: Mapping[str, Backend],
        store: Store,
        *,
        concurrency: int = 4,
        retry: RetryPolicy | None = None,
        run_id: str | None = None,
        progress: Progress | None = None,
        abort_after: int = 8,
        seed: int = 0,
        on_result: Callable[[Result], None] | None = None,
    ) -> None:
        self.backends = dict(backends)
        self.store = store
        self.concurrency = max(1, concurrency)
        self.retry = retry or RetryPolicy()
        self.run_id = run_id
        self.progress = progress or Progress(enabled=False)
        self.abort_after = abort_after
        self.stats = RunStats()
        self.on_result = on_result
        self._rng = random.Random(seed)
        self._successes = 0
        self._failures_without_success = 0

    def backend_for(self, request: Request) -> Backend:
        try:
            return self.backends[request.model]
        except KeyError:
            raise BackendError(f"no backend was created for model '{request.model}'.",
                               fix="list the model under 'model:' in the spec.") from None

    async def run(self, requests: Sequence[Request], label: str = "requests") -> list[Result]:
        """Run a wave of requests; returns one Result per request, in order."""
        keys = [r.cache_key() for r in requests]
        cached = self.store.get_many(keys)
        results: list[Result | None] = [None] * len(requests)
        pending: dict[str, list[int]] = {}
        for i, (req, key) in enumerate(zip(requests, keys)):
            hit = cached.get(key)
            if hit is not None:
                results[i] = _from_cache(req, key, hit[0], hit[1])
                self.stats.cache_hits += 1
            else:
                pending.setdefault(key, []).append(i)
        self.stats.requests += len(requests)
        task = self.progress.add(label, total=len(requests), completed=len(requests) - sum(map(len, pending.values())))
        for r in results:
            if r is not None and self.on_result:
                self.on_result(r)
        if pending:
            await self._execute(requests, pending, results, task)
        self.progress.done(task)
        return [r for r in results if r is not None]

    async def _execute(self, requests: Sequence[Request], pending: dict[str, list[int]],
                       results: list[Result | None], task: Any) -> None:
        by_backend: dict[str, list[str]] = {}
        for key, idx in pending.items():
            by_backend.setdefault(requests[idx[0]].model, []).append(key)
        abort: list[BaseException] = []

        async def worker(queue: list[str]) -> None:
            while queue and not abort:
                key = queue.pop()
                idx = pending[key]
                result = await self._one(requests[idx[0]], key)
                for j, i in enumerate(idx):
                    r = result if j == 0 else Result(requests[i], key, result.generation, result.score,
                                                     result.error, result.cached, result.attempts)
                    results[i] = r
                    if self.on_result:
                        self.on_result(r)
                self.progress.advance(task, len(idx))
                try:
                    self._check_abort(result)
                except RunAborted as exc:
                    abort.append(exc)

        jobs = []
        for keys in by_backend.values():
            backend = self.backend_for(requests[pending[keys[0]][0]])
            keys.reverse()  # pop() from the end keeps plan order
            width = min(self.concurrency, backend.max_concurrency or self.concurrency, len(keys))
            jobs.extend(worker(keys) for _ in range(width))
        tasks = [asyncio.ensure_future(job) for job in jobs]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            # gather does not stop the other workers: cancel them, or they keep calling the
            # backend (and reporting results) after the run was aborted
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        if abort:
            raise abort[0]

    def _check_abort(self, result: Result) -> None:
        if result.ok:
            self._successes += 1
            self._failures_without_success = 0
            return
        self._failures_without_success += 1
        if self._successes == 0 and self._failures_without_success >= self.abort_after:
            # one line: the last error carries its own fix, so it goes last
            raise RunAborted(
                f"stopped: the first {self._failures_without_success} requests all failed (finished requests "
                f"are kept in the store; run the same command again once fixed). Last error: {result.error}",
                fix=None if "Fix:" in (result.error or "") else "fix the cause above and run again.")

    async def _one(self, request: Request, key: str) -> Result:
        backend = self.backend_for(request)
        attempt = 0
        while True:
            attempt += 1
            self.stats.backend_calls += 1
            try:
                call = backend.score(request) if request.kind == "score" else backend.generate(request)
                out = await asyncio.wait_for(call, timeout=self.retry.timeout_s)
            except (TransientBackendError, asyncio.TimeoutError, TimeoutError, ConnectionError) as exc:
                err = exc if isinstance(exc, BackendError) else TransientBackendError(
                    f"timed out after {self.retry.timeout_s:g} s" if isinstance(exc, (asyncio.TimeoutError, TimeoutError))
                    else f"connection error: {exc}", backend=backend.model_id)
                if attempt < self.retry.max_attempts:
                    self.stats.retries += 1
                    await asyncio.sleep(self.retry.delay(attempt, err.retry_after, self._rng))
                    continue
                return self._fail(request, key, err, attempt)
            except BackendUnavailableError as exc:
                raise RunAborted(exc.message, backend=backend.model_id, fix=exc.fix) from None
            except BackendError as exc:
                return self._fail(request, key, exc, attempt)
            except Exception as exc:  # a backend bug or a malformed answer: an error row, not a crash
                return self._fail(request, key, BackendError(
                    f"unexpected {type(exc).__name__} from {backend.model_id}: {exc}", backend=backend.model_id,
                    fix="rerun with --debug and report it if it persists."), attempt)
            break
        if isinstance(out, Generation):
            self.stats.prompt_tokens += out.prompt_tokens
            self.stats.completion_tokens += out.completion_tokens
            result = Result(request, key, generation=out, attempts=attempt)
        else:
            result = Result(request, key, score=out, attempts=attempt)
        req_json = json.dumps(request.model_dump(mode="json", exclude={"tags"}), sort_keys=True)
        self.store.put(key, request.kind, request.model, req_json, out.model_dump_json())
        return result

    def _fail(self, request: Request, key: str, exc: BackendError, attempts: int) -> Result:
        self.stats.errors += 1
        msg = exc.one_line()
        short = msg[:120]
        self.stats.error_messages[short] = self.stats.error_messages.get(short, 0) + 1
        self.store.record_error(key, request.model, msg, run_id=self.run_id, status=exc.status, attempts=attempts)
        return Result(request, key, error=msg, attempts=attempts)
