"""One path for every model call: cache look-up, execution, commit.

The runner
- finds each request's backend in the run's pool and computes its cache key (request fields that
  differ from their defaults, the key version, the backend's fingerprint),
- answers what the store already holds (one batched look-up per wave),
- hands the rest to an executor (asyncio by default: bounded concurrency, retries, timeouts, a
  budget), texts to embed in batches, each text cached on its own,
- commits each success to the store and records every failure as an error row, in group commits
  (one transaction per turn of the event loop), reporting a result only once it is committed,
- and returns one Result per request, in order: nothing is dropped. When a budget stops the
  executor, the requests not sent are counted (`stats.not_sent`) and `stopped` says why.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ._json import dumps_strict
from .backends.base import Backend, Embedding, Generation, Message, Request, Score
from .backends.pool import BackendPool
from .executors import AsyncioExecutor, Budget, Executor, Job, Outcome, RetryPolicy, RunAborted
from .executors.base import RunStats
from .progress import Progress
from .store import Store

__all__ = ["Result", "RetryPolicy", "RunAborted", "RunStats", "Runner"]


@dataclass(frozen=True, slots=True)
class Result:
    """The outcome of one request: a generation, a score, an embedding, or an error. Never dropped."""

    request: Request
    key: str
    generation: Generation | None = None
    score: Score | None = None
    error: str | None = None
    cached: bool = False
    attempts: int = 0
    embedding: Embedding | None = None
    error_id: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def text(self) -> str | None:
        return self.generation.text if self.generation is not None else None

    @property
    def output(self) -> Generation | Score | Embedding | None:
        return self.generation or self.score or self.embedding

    def to_row(self) -> dict[str, Any]:
        """One line of results.jsonl."""
        return {**self._row_head(), "messages": [_message_row(m) for m in self.request.messages],
                **self._row_tail()}

    def row_json(self) -> str:
        """`to_row()` as its line of strict JSON, the same text as ``dumps_strict(self.to_row())``,
        with the messages' JSON built once per messages tuple: a grid's replicates share one, and
        its system prompt is most of a row (the cached re-run of a large grid writes every row)."""
        head, tail = dumps_strict(self._row_head()), dumps_strict(self._row_tail())
        return f'{head[:-1]}, "messages": {_messages_json(self.request.messages)}, {tail[1:]}'

    def _row_head(self) -> dict[str, Any]:
        t = self.request.tags
        return {"key": self.key, "model": self.request.model, "kind": self.request.kind, "role": t.role,
                "persona": t.persona, "item": t.item, "condition": t.condition, "replicate": self.request.replicate,
                "wave": t.wave, "extra": t.extra}

    def _row_tail(self) -> dict[str, Any]:
        out = self.output
        return {
            "prompt": self.request.prompt,
            "continuation": self.request.continuation,
            "input": self.request.input,
            "response": self.text,
            "score": self.score.model_dump() if self.score else None,
            "embedding_dim": len(self.embedding.vector) if self.embedding else None,
            "error": self.error,
            "cached": self.cached,
            "attempts": self.attempts,
            "latency_s": out.latency_s if out is not None else None,
        }


@functools.lru_cache(maxsize=4096)
def _message_row(message: Message) -> dict[str, Any]:
    """A message as results.jsonl writes it, dumped once per distinct message (a grid's rows
    share a system prompt per persona and a question per item). Callers never change it."""
    return message.model_dump()


_MESSAGES_JSON: dict[int, tuple[tuple[Message, ...], str]] = {}


def _messages_json(messages: tuple[Message, ...]) -> str:
    """The JSON of a request's messages in a row, once per messages tuple (the entry holds the
    tuple, so its id is not reused while it is there)."""
    hit = _MESSAGES_JSON.get(id(messages))
    if hit is not None and hit[0] is messages:
        return hit[1]
    if len(_MESSAGES_JSON) >= 4096:
        _MESSAGES_JSON.clear()
    text = dumps_strict([_message_row(m) for m in messages])
    _MESSAGES_JSON[id(messages)] = (messages, text)
    return text


def result_from_output(request: Request, key: str, kind: str, response: str, *, cached: bool,
                       attempts: int = 0) -> Result:
    """A Result from a stored response (JSON) of the given kind."""
    if kind == "score":
        return Result(request, key, score=Score.model_validate_json(response), cached=cached, attempts=attempts)
    if kind == "embed":
        return Result(request, key, embedding=Embedding.model_validate_json(response), cached=cached,
                      attempts=attempts)
    return Result(request, key, generation=Generation.model_validate_json(response), cached=cached,
                  attempts=attempts)


def _attach(request: Request, key: str, output: Any, attempts: int) -> Result:
    if isinstance(output, Score):
        return Result(request, key, score=output, attempts=attempts)
    if isinstance(output, Embedding):
        return Result(request, key, embedding=output, attempts=attempts)
    return Result(request, key, generation=output, attempts=attempts)


class Runner:
    """Runs requests against the pool's backends through the store."""

    def __init__(
        self,
        backends: BackendPool | Mapping[str, Backend],
        store: Store,
        *,
        concurrency: int = 4,
        retry: RetryPolicy | None = None,
        run_id: str | None = None,
        progress: Progress | None = None,
        abort_after: int = 8,
        seed: int = 0,
        on_result: Callable[[Result], None] | None = None,
        on_item: Callable[[int, Result], None] | None = None,
        budget: Budget | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.pool = backends if isinstance(backends, BackendPool) else BackendPool.of(backends)
        self.store = store
        self.run_id = run_id
        self.progress = progress or Progress(enabled=False)
        self.stats = RunStats()
        self.budget = budget or Budget()
        self.executor: Executor = executor or AsyncioExecutor(
            concurrency=concurrency, retry=retry, budget=self.budget, abort_after=abort_after, seed=seed,
            stats=self.stats)
        self.on_result = on_result
        self.on_item = on_item
        """Called with (index in the wave, result) for every result as it is known (cache hits first)."""
        self.stopped: str | None = None
        self._fingerprints: dict[int, str] = {}

    def backend_for(self, request: Request) -> Backend:
        return self.pool.for_request(request)

    def key_for(self, request: Request, backend: Backend | None = None) -> str:
        backend = backend or self.backend_for(request)
        fp = self._fingerprints.get(id(backend))
        if fp is None:
            fp = self._fingerprints[id(backend)] = backend.fingerprint()
        return request.cache_key(fp)

    async def run(self, requests: Sequence[Request], label: str = "requests", *, task: Any = None) -> list[Result]:
        """Run a wave of requests; returns one Result per request, in order (requests a budget kept
        from being sent are left out, counted in `stats.not_sent`, and `stopped` is set). `task`: a
        progress task this call advances (a wave run a chunk at a time has one bar), else its own."""
        backends = [self.backend_for(r) for r in requests]
        keys = [self.key_for(r, b) for r, b in zip(requests, backends)]
        cached = self.store.get_many(keys)
        results: list[Result | None] = [None] * len(requests)
        pending: dict[str, list[int]] = {}
        for i, (req, key) in enumerate(zip(requests, keys)):
            hit = cached.get(key)
            if hit is not None:
                results[i] = result_from_output(req, key, hit[0], hit[1], cached=True)
                self.stats.cache_hits += 1
            else:
                pending.setdefault(key, []).append(i)
        self.stats.requests += len(requests)
        own_task, n_pending = task is None, sum(map(len, pending.values()))
        if own_task:
            task = self.progress.add(label, total=len(requests), completed=len(requests) - n_pending)
        else:
            self.progress.advance(task, len(requests) - n_pending)
        if self.on_result or self.on_item:
            for i, r in enumerate(results):
                if r is not None:
                    self._report(i, r)
        if pending:
            jobs = self._jobs(requests, backends, pending)
            # an executor that adapts its concurrency says how wide it is now (the progress bar shows it)
            width_label: Callable[[], str] = getattr(self.executor, "width_label", lambda: "")
            for job_backend, reqs in self._by_backend(jobs):
                await job_backend.prepare(reqs)

            def report(job: Job, firsts: list[Result]) -> None:
                for key, first in zip(job.keys, firsts):
                    for j, i in enumerate(pending[key]):
                        r = first if j == 0 else Result(requests[i], key, first.generation, first.score, first.error,
                                                        first.cached, first.attempts, first.embedding,
                                                        first.error_id)
                        results[i] = r
                        self._report(i, r)
                    self.progress.advance(task, len(pending[key]), width=width_label())

            commits = _GroupCommit(self, report)
            try:
                await self.executor.execute(jobs, commits.add)
            finally:
                commits.flush()  # outcomes that arrived before a stop or an error are kept (and reported)
        if own_task:
            self.progress.done(task)
        missing = sum(r is None for r in results)
        if missing:
            self.stats.not_sent += missing
            self.stopped = "budget"
        return [r for r in results if r is not None]

    @staticmethod
    def _by_backend(jobs: Sequence[Job]) -> list[tuple[Backend, list[Request]]]:
        groups: dict[int, tuple[Backend, list[Request]]] = {}
        for job in jobs:
            groups.setdefault(id(job.backend), (job.backend, []))[1].extend(job.requests)
        return list(groups.values())

    def _report(self, index: int, result: Result) -> None:
        if self.on_result:
            self.on_result(result)
        if self.on_item:
            self.on_item(index, result)

    def _jobs(self, requests: Sequence[Request], backends: Sequence[Backend],
              pending: dict[str, list[int]]) -> list[Job]:
        """One job per request to generate or score; texts to embed in batches per backend."""
        jobs: list[Job] = []
        batches: dict[int, list[tuple[str, Request]]] = {}
        for key, idx in pending.items():
            req, backend = requests[idx[0]], backends[idx[0]]
            if req.kind == "embed":
                batch = batches.setdefault(id(backend), [])
                batch.append((key, req))
                if len(batch) >= backend.embed_batch_size:
                    jobs.append(Job(backend, *map(tuple, zip(*batch))))  # type: ignore[arg-type]
                    batch.clear()
            else:
                jobs.append(Job(backend, (key,), (req,)))
        for id_, batch in batches.items():
            if batch:
                backend = backends[pending[batch[0][0]][0]]
                jobs.append(Job(backend, *map(tuple, zip(*batch))))  # type: ignore[arg-type]
        return jobs

    def _prepare(self, request: Request, key: str, outcome: Outcome, n: int) -> tuple[Result, tuple[Any, ...], bool]:
        """The Result of one request of a job and its row for the store: (key, kind, model, request
        JSON, response JSON) for a success, (key, model, error, status, attempts, request JSON) for a
        failure (True), whose error id `_GroupCommit` fills in once it is written."""
        req_json = json.dumps(request.model_dump(mode="json", exclude={"tags"}), sort_keys=True)
        if outcome.error is not None:
            exc = outcome.error
            self.stats.errors += 1
            msg = exc.one_line()
            self.stats.count_error(msg)
            return (Result(request, key, error=msg, attempts=outcome.attempts),
                    (key, request.model, msg, exc.status, outcome.attempts, req_json), True)
        output = outcome.outputs[n]
        if isinstance(output, Generation):
            self.stats.prompt_tokens += output.prompt_tokens
            self.stats.completion_tokens += output.completion_tokens
        elif isinstance(output, Embedding):
            self.stats.embedded_texts += 1
        return (_attach(request, key, output, outcome.attempts),
                (key, request.kind, request.model, req_json, output.model_dump_json()), False)


class _GroupCommit:
    """Commits outcomes in groups and reports them only once committed.

    Every outcome that arrives in one turn of the event loop goes into one transaction, written at
    the end of that turn (`loop.call_soon`); the worker that delivered it waits for that commit
    before it takes its next job. So a result is reported finished (results.jsonl, run items,
    progress) only after it is in the store, and a kill loses at most the requests in flight or
    waiting for their commit: at most the run's concurrency, as with one commit per result. At a
    slow rate each group is one result; against a fast server a group holds every answer that
    one wake-up of the event loop read (the commit's cost is shared)."""

    def __init__(self, runner: Runner, report: Callable[[Job, list[Result]], None]) -> None:
        self.runner = runner
        self.report = report
        self._group: list[tuple[Job, list[tuple[Result, tuple[Any, ...], bool]]]] = []
        self._done: asyncio.Future[None] | None = None

    def add(self, job: Job, outcome: Outcome) -> asyncio.Future[None]:
        rows = [self.runner._prepare(req, key, outcome, n) for n, (key, req) in enumerate(zip(job.keys, job.requests))]
        self._group.append((job, rows))
        if self._done is None:
            loop = asyncio.get_running_loop()
            self._done = loop.create_future()
            loop.call_soon(self._flush_scheduled, self._done)
        return self._done

    def _flush_scheduled(self, done: asyncio.Future[None]) -> None:
        try:
            self.flush()
        except BaseException as exc:  # the store failed: the workers waiting on this commit raise it
            if not done.done():
                done.set_exception(exc)
            return
        if not done.done():
            done.set_result(None)

    def flush(self) -> None:
        group, self._group, self._done = self._group, [], None
        if not group:
            return
        runner = self.runner
        rows = [row for _, job_rows in group for row in job_rows]
        ids = iter(runner.store.commit_batch([r for _, r, failed in rows if not failed],
                                             [r for _, r, failed in rows if failed], run_id=runner.run_id))
        for job, job_rows in group:
            self.report(job, [dataclasses.replace(res, error_id=next(ids)) if failed else res
                              for res, _, failed in job_rows])
