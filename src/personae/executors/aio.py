"""The default executor: asyncio in this process.

- at most `concurrency` requests in flight per backend (never more than the backend says it can use),
- transient failures (timeouts, 429 with Retry-After, 5xx, connection resets) retried with
  exponential backoff and jitter, under a per-request timeout,
- a budget checked before each call is sent,
- for backends with `adaptive_concurrency` (the openai backend), the requests in flight follow
  AIMD between 1 and `concurrency` (`adaptive.py`): halved on 429/503, grown while latency holds,
- a run whose first requests all fail stops early with the cause (RunAborted).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence

from ..errors import BackendError, BackendUnavailableError, TransientBackendError
from .adaptive import AIMD, OVERLOAD_STATUSES, AdaptiveGate
from .base import Budget, Job, Outcome, Output, RetryPolicy, RunStats, Sink


class RunAborted(BackendError):
    """Every request is failing the same way (e.g. the server is down): stop early."""


class AsyncioExecutor:
    """Bounded concurrency per backend, retries, timeouts and a budget, in one event loop."""

    def __init__(self, *, concurrency: int = 4, retry: RetryPolicy | None = None, budget: Budget | None = None,
                 abort_after: int = 8, seed: int = 0, stats: RunStats | None = None) -> None:
        self.concurrency = concurrency
        self.retry = retry or RetryPolicy()
        self.budget = budget or Budget()
        self.abort_after = abort_after
        self.stats = stats or RunStats()
        self._rng = random.Random(seed)
        # per backend: a judge on a server that is down must stop the run even when the model
        # under study answers (counting all backends together, its successes hid the judge's failures)
        self._successes: dict[int, int] = {}
        self._failures_without_success: dict[int, int] = {}
        self.gates: dict[int, AdaptiveGate] = {}
        """Per adaptive backend (by id): its AIMD gate, kept across waves."""
        self._names: dict[int, str] = {}

    async def execute(self, jobs: Sequence[Job], sink: Sink) -> None:
        by_backend: dict[int, list[Job]] = {}
        for job in jobs:
            by_backend.setdefault(id(job.backend), []).append(job)
        abort: list[BaseException] = []

        async def worker(queue: list[Job]) -> None:
            while queue and not abort:
                job = queue.pop()
                if not self.budget.take(len(job.requests)):
                    queue.clear()  # nothing more is sent to this backend; finished jobs are kept
                    return
                outcome = await self._one(job)
                committed = sink(job, outcome)
                if committed is not None:
                    await committed
                try:
                    self._check_abort(job, outcome)
                except RunAborted as exc:
                    abort.append(exc)

        workers = []
        for queue in by_backend.values():
            backend = queue[0].backend
            queue.reverse()  # pop() from the end keeps plan order
            most = min(self.concurrency, backend.max_concurrency or self.concurrency)
            if backend.adaptive_concurrency and id(backend) not in self.gates:
                self.gates[id(backend)] = AdaptiveGate(AIMD(max_width=most))
            workers.extend(worker(queue) for _ in range(min(most, len(queue))))
        tasks = [asyncio.ensure_future(w) for w in workers]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            # gather does not stop the other workers: cancel them, or they keep calling the
            # backend (and reporting results) after the run was aborted
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            if self.gates:
                self.stats.concurrency = self.widths()
        if abort:
            raise abort[0]

    def _check_abort(self, job: Job, outcome: Outcome) -> None:
        b = id(job.backend)
        if outcome.error is None:
            self._successes[b] = self._successes.get(b, 0) + 1
            self._failures_without_success[b] = 0
            return
        failed = self._failures_without_success[b] = self._failures_without_success.get(b, 0) + 1
        if self._successes.get(b, 0) == 0 and failed >= self.abort_after:
            error = outcome.error.one_line()
            role = job.requests[0].tags.role
            who = f"{job.backend.model_id} (the {role})" if role else job.backend.model_id
            # one line: the last error carries its own fix, so it goes last
            raise RunAborted(
                f"stopped: the first {failed} requests to {who} all failed (finished requests are kept in the "
                f"store; run the same command again once fixed). Last error: {error}",
                fix=None if "Fix:" in error else "fix the cause above and run again.")

    async def _call(self, job: Job) -> tuple[Output, ...]:
        backend, kind = job.backend, job.kind
        if kind == "embed":
            out = await backend.embed(list(job.requests))
            if len(out) != len(job.requests):
                raise BackendError(f"{backend.model_id} returned {len(out)} embeddings for {len(job.requests)} texts.",
                                   backend=backend.model_id)
            return tuple(out)
        (request,) = job.requests
        if kind == "score":
            return (await backend.score(request),)
        if request.decoding is not None and not backend.supports_multiseq:
            # a backend without the capability would ignore the option and cache plain replies under its key
            raise BackendError(f"{backend.model_id} cannot run listener decoding (no multi-sequence decoder).",
                               backend=backend.model_id,
                               fix="use a local/... model for listener decoding, or drop 'decoding'.")
        return (await backend.generate(request),)

    def width_label(self) -> str:
        """The adaptive backends' current widths, for the progress bar ('' when there are none)."""
        return " ".join(f"width {g.rule.width}/{g.rule.max_width}" for g in self.gates.values())

    def widths(self) -> dict[str, dict[str, int]]:
        """run.json's record of each adaptive backend's width: final, lowest, max, decreases."""
        return {name: {"final": g.rule.width, "lowest": g.rule.lowest_width, "max": g.rule.max_width,
                       "decreases": g.rule.decreases} for name, g in self._gate_names().items()}

    def _gate_names(self) -> dict[str, AdaptiveGate]:
        return {self._names.get(b, str(b)): g for b, g in self.gates.items()}

    async def _attempt(self, job: Job) -> tuple[Output, ...]:
        """One call, through the backend's adaptive gate when it has one (a retry's backoff sleep
        holds no slot)."""
        gate = self.gates.get(id(job.backend))
        if gate is None:
            return await asyncio.wait_for(self._call(job), timeout=self.retry.timeout_s)
        token = await gate.acquire()
        start, overload, latency = time.perf_counter(), False, None
        try:
            out = await asyncio.wait_for(self._call(job), timeout=self.retry.timeout_s)
            latency = time.perf_counter() - start
            return out
        except TransientBackendError as exc:
            overload = exc.status in OVERLOAD_STATUSES
            raise
        finally:
            gate.release(token, overload=overload, latency_s=latency)

    async def _one(self, job: Job) -> Outcome:
        backend = job.backend
        self._names.setdefault(id(backend), backend.model_id)
        attempt = 0
        while True:
            attempt += 1
            self.stats.backend_calls += 1
            try:
                outputs = await self._attempt(job)
            except (TransientBackendError, asyncio.TimeoutError, TimeoutError, ConnectionError) as exc:
                err = exc if isinstance(exc, BackendError) else TransientBackendError(
                    f"timed out after {self.retry.timeout_s:g} s" if isinstance(exc, (asyncio.TimeoutError, TimeoutError))
                    else f"connection error: {exc}", backend=backend.model_id)
                if attempt < self.retry.max_attempts:
                    self.stats.retries += 1
                    await asyncio.sleep(self.retry.delay(attempt, err.retry_after, self._rng))
                    continue
                return Outcome(error=err, attempts=attempt)
            except BackendUnavailableError as exc:
                raise RunAborted(exc.message, backend=backend.model_id, fix=exc.fix) from None
            except BackendError as exc:
                return Outcome(error=exc, attempts=attempt)
            except Exception as exc:  # a backend bug or a malformed answer: an error row, not a crash
                return Outcome(error=BackendError(
                    f"unexpected {type(exc).__name__} from {backend.model_id}: {exc}", backend=backend.model_id,
                    fix="rerun with --debug and report it if it persists."), attempts=attempt)
            tokens = sum(getattr(o, "prompt_tokens", 0) + getattr(o, "completion_tokens", 0) for o in outputs)
            self.budget.spend_tokens(tokens)
            return Outcome(outputs=outputs, attempts=attempt)
