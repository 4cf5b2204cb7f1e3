"""The Ray executor: each wave's jobs sharded over Ray workers (actors), each with its own backend.

    personae run SPEC --out DIR --executor ray [--address HOST:PORT]

- Every worker rebuilds the backends it needs from model id + options (never the driver's objects),
  with its entry of `executor.workers` laid over the spec's `backend:` for the models under study:
  one `{base_url: ...}` per server gives one worker per server. Workers are replicas: the cache key
  is the spec's backend's, whichever worker answered, so list servers of one model only.
- A worker runs its shard with the asyncio executor (bounded concurrency per backend, retries with
  backoff, timeouts, early abort), and streams each outcome back as it arrives. Workers never touch
  the store: the driver hands each outcome to the runner's sink, which commits it.
- A worker that dies mid-shard: the jobs it had not reported go to the live workers. The driver
  keeps the set of jobs it has sunk and drops a late duplicate, so each request is committed once.
- Budgets: requests are reserved in plan order before a shard is sent (so --max-requests stops at
  the same requests as the asyncio executor); a token budget tells every worker to stop sending,
  so it may overshoot by what was in flight when the message arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import os
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import BackendError, ConfigError, MissingDependencyError
from .aio import AsyncioExecutor, RunAborted
from .base import Budget, Job, Outcome, RetryPolicy, RunStats, Sink, output_tokens

if TYPE_CHECKING:
    from ..runner import Runner
    from ..spec_types import ResolvedSpec

__all__ = ["RayExecutor"]

_ERROR_TYPES = ("BackendError", "TransientBackendError", "BackendUnavailableError", "RunAborted")
LOCAL_OBJECT_STORE_BYTES = 128 * 1024 * 1024
"""Object store of a local cluster started for one run (results are small and stream through)."""


def _ray() -> Any:
    try:
        import ray  # noqa: PLC0415
    except ImportError:
        raise MissingDependencyError("ray", "ray", "the Ray executor (--executor ray)") from None
    return ray


def _encode_error(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, BackendError):
        return {"type": type(exc).__name__, "message": exc.message, "fix": exc.fix, "backend": exc.backend,
                "status": exc.status, "retry_after": exc.retry_after}
    return {"type": "BackendError", "message": f"unexpected {type(exc).__name__} in a Ray worker: {exc}",
            "fix": "rerun with --debug and report it if it persists.", "backend": None, "status": None,
            "retry_after": None}


def _decode_error(data: Mapping[str, Any]) -> BackendError:
    from .. import errors  # noqa: PLC0415

    name = data["type"] if data["type"] in _ERROR_TYPES else "BackendError"
    cls = RunAborted if name == "RunAborted" else getattr(errors, name)
    return cls(data["message"], fix=data["fix"], backend=data["backend"], status=data["status"],
               retry_after=data["retry_after"])


def _options_of(backend: Any) -> Any:
    options = getattr(backend, "options", None)
    if options is None:
        raise ConfigError(
            f"the Ray executor cannot rebuild the backend of '{backend.model_id}' in its workers (it has no options: "
            "a backend object given in Python).", field="executor.kind",
            fix="run it with the asyncio executor, or give the model by id and backend options.")
    return options


def _override(options: Any, entry: Mapping[str, Any]) -> Any:
    if not entry:
        return options
    fields = {name: getattr(options, name) for name in type(options).model_fields}
    return type(options).model_validate({**fields, **entry})


class _StopBudget(Budget):
    """A worker's budget: unlimited until the driver says stop (a token budget reached, Ctrl-C)."""

    def __init__(self) -> None:
        super().__init__()
        self.stopped = False

    def take(self, n: int = 1) -> bool:
        return not self.stopped


class _Worker:
    """One Ray actor: its own backends, one asyncio executor, one shard at a time."""

    def __init__(self, concurrency: int, retry: RetryPolicy, abort_after: int, seed: int) -> None:
        self._backends: dict[str, Any] = {}
        self._budget = _StopBudget()
        self._executor = AsyncioExecutor(concurrency=concurrency, retry=retry, budget=self._budget,
                                         abort_after=abort_after, seed=seed)
        self._lock = asyncio.Lock()  # one shard at a time: the concurrency bound holds per worker

    def pid(self) -> int:
        return os.getpid()

    def stop(self) -> None:
        self._budget.stopped = True

    async def close(self) -> None:
        backends, self._backends = list(self._backends.values()), {}
        for backend in backends:
            with contextlib.suppress(Exception):
                await backend.aclose()

    async def run_shard(self, specs: Mapping[str, tuple[str, Any]],
                        shard: Sequence[tuple[int, str, tuple[str, ...], tuple[Any, ...]]]) -> Any:
        """Yield lists of (job index, encoded outcome) as they finish; ('abort', error) ends the shard."""
        from ..backends import create_backend  # noqa: PLC0415

        async with self._lock:
            self._budget.stopped = False
            jobs: list[Job] = []
            index: dict[int, int] = {}
            for i, bid, keys, requests in shard:
                backend = self._backends.get(bid)
                if backend is None:
                    backend = self._backends[bid] = create_backend(*specs[bid])
                job = Job(backend, keys, requests)
                index[id(job)] = i
                jobs.append(job)
            queue: asyncio.Queue[tuple[int, Any]] = asyncio.Queue()

            def sink(job: Job, outcome: Outcome) -> None:
                encoded = ("error", _encode_error(outcome.error)) if outcome.error is not None else (
                    "ok", outcome.outputs)
                queue.put_nowait((index[id(job)], (*encoded, outcome.attempts)))

            task = asyncio.ensure_future(self._executor.execute(jobs, sink))
            try:
                while True:
                    getter = asyncio.ensure_future(queue.get())
                    await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                    if not getter.done():
                        getter.cancel()
                        with contextlib.suppress(asyncio.CancelledError):
                            await getter
                    batch = [getter.result()] if getter.done() and not getter.cancelled() else []
                    while not queue.empty():
                        batch.append(queue.get_nowait())
                    if batch:
                        yield batch
                    if task.done() and queue.empty():
                        break
                exc = task.exception()
                if exc is not None:
                    yield [(-1, ("abort", _encode_error(exc), 0))]
            finally:
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task


def check_address(address: str) -> None:
    """A HOST:PORT (or ray://HOST:PORT) that answers a TCP connect within 3 s, or a one-line ConfigError."""
    if address in ("auto", "local"):
        return
    if address.startswith("ray://"):
        import importlib.util  # noqa: PLC0415

        if importlib.util.find_spec("grpc") is None:
            raise ConfigError(f"'{address}' is a Ray Client address, which needs the package grpcio.",
                              field="--address", fix="pip install 'ray[client]', or run personae on a node of the "
                              "cluster with --address HEAD:6379.")
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ConfigError(f"'{address}' is not a Ray address.", field="--address",
                          fix="give HOST:PORT of the head node (e.g. 127.0.0.1:6379), ray://HOST:10001, or 'auto'.")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=3.0):
            pass
    except OSError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}).", field="--address",
                          fix="start its head with 'ray start --head --node-ip-address 127.0.0.1', check the "
                          "address, or leave --address out to start a local cluster.") from None


class RayExecutor:
    """Shards each wave over Ray workers; the driver sinks every outcome once (see the module docs).

    Use it as a context manager (it starts or joins the cluster and stops what it started):

        with RayExecutor.from_spec(resolved) as ex:
            run_study(resolved, "runs/x", executor=ex)
    """

    def __init__(self, *, address: str | None = None, workers: int | Sequence[Mapping[str, Any]] | None = None,
                 studied: Mapping[str, Any] | None = None, concurrency: int = 4, retry: RetryPolicy | None = None,
                 budget: Budget | None = None, abort_after: int = 8, seed: int = 0, stats: RunStats | None = None,
                 worker_cpus: float = 1.0, init_options: Mapping[str, Any] | None = None) -> None:
        self.address = address
        self.entries: list[Mapping[str, Any]] | None = (
            [dict(e) for e in workers] if workers is not None and not isinstance(workers, int) else None)
        self.n_workers = len(self.entries) if self.entries is not None else workers
        self.studied = dict(studied or {})
        """Model id -> validated backend options of the models under study (worker entries apply to these)."""
        self.concurrency = concurrency
        self.retry = retry or RetryPolicy()
        self.budget = budget or Budget()
        self.abort_after = abort_after
        self.seed = seed
        self.stats = stats or RunStats()
        self.worker_cpus = worker_cpus
        self.init_options = dict(init_options or {})
        self.actors: list[Any] = []
        self.alive: list[bool] = []
        self.duplicates_dropped = 0
        """Outcomes that arrived for a job already sunk (a worker declared dead that still answered)."""
        self.rerun_jobs = 0
        """Jobs sent again because the worker holding them died."""
        self.sunk = 0
        self._started_ray = False
        self._connected = False
        self._given: set[int] = set()
        """Backends given as objects in Python (`backends=`): a worker cannot rebuild them."""

    # ------------------------------------------------------------- set-up
    @classmethod
    def from_spec(cls, resolved: ResolvedSpec, *, address: str | None = None, **kwargs: Any) -> RayExecutor:
        """The executor a spec's `executor:` and `concurrency:` blocks describe (`address` overrides)."""
        from ..backends import options_model, parse_model_id  # noqa: PLC0415
        from ..spec import backend_options_for  # noqa: PLC0415

        spec = resolved.spec
        studied = {m: options_model(parse_model_id(m)[0]).model_validate(backend_options_for(spec, m))
                   for m in spec.model}
        return cls(address=address or spec.executor.address, workers=spec.executor.workers, studied=studied,
                   concurrency=spec.concurrency.requests, retry=spec.concurrency.retry, seed=spec.seed,
                   worker_cpus=spec.executor.worker_cpus, **kwargs)

    def bind(self, runner: Runner) -> None:
        """Share the run's counters and budget (called by the Run that uses this executor)."""
        self.stats = runner.stats
        self.budget = runner.budget
        self._given = {id(b) for b in runner.pool.overrides.values()}

    def start(self) -> RayExecutor:
        """Join (or start) the cluster and create the workers; errors are one line, before any model call."""
        if self.actors:
            return self
        ray = _ray()
        if self.address and self.address != "local":
            check_address(self.address)
        if not ray.is_initialized():
            import logging  # noqa: PLC0415

            local = self.address in (None, "local")
            opts: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
            if local:
                src = str(Path(__file__).resolve().parents[2])  # workers import this same personae
                path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
                # workers wait on servers: a local cluster has room for every worker asked for
                cpus = max(os.cpu_count() or 1, math.ceil((self.n_workers or 1) * self.worker_cpus))
                opts.update(address="local", num_cpus=cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                            object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                            runtime_env={"env_vars": {"PYTHONPATH": path}})
            else:
                opts["address"] = self.address
            opts.update(self.init_options)
            try:
                ray.init(**opts)
            except Exception as exc:  # noqa: BLE001 (a refused or wrong address, a version mismatch: one line)
                raise ConfigError(f"could not start or join the Ray cluster at {self.address or 'a local one'}: "
                                  f"{' '.join(str(exc).split())[:300]}", field="--address",
                                  fix="check the address and that the cluster runs this ray version; a cluster "
                                  "started by 'ray start' uses token authentication: set RAY_AUTH_MODE=token here "
                                  "(the token is read from ~/.ray/auth_token or RAY_AUTH_TOKEN).") from None
            self._started_ray = True
        self._connected = True
        n = self.n_workers
        if n is None:
            n = max(1, min(256, int(ray.cluster_resources().get("CPU", 1) // self.worker_cpus)))
            self.n_workers = n
        actor_cls = ray.remote(num_cpus=self.worker_cpus, max_restarts=0)(_Worker)
        self.actors = [actor_cls.remote(self.concurrency, self.retry, self.abort_after, self.seed + w)
                       for w in range(n)]
        self.alive = [True] * n
        try:
            ray.get([a.pid.remote() for a in self.actors], timeout=120)
        except Exception as exc:  # noqa: BLE001 (a timeout, a worker that cannot import personae: one line)
            self.close()
            raise ConfigError(f"the Ray workers did not start: {' '.join(str(exc).split())[:300]}",
                              field="executor.workers",
                              fix=f"the cluster needs {self.worker_cpus:g} CPU per worker for {n} workers "
                              "(executor.worker_cpus, executor.workers), and personae installed on every node.") from None
        return self

    def describe(self) -> dict[str, Any]:
        """What run.json records: where the run ran, its workers (options redacted), and what failed over."""
        from ..api import redact  # noqa: PLC0415

        return {"kind": "ray", "address": self.address or "local", "workers": self.n_workers,
                "worker_backends": [redact(e) for e in self.entries] if self.entries is not None else None,
                "workers_alive": sum(self.alive), "rerun_jobs": self.rerun_jobs,
                "duplicates_dropped": self.duplicates_dropped}

    def worker_pids(self) -> list[int]:
        ray = _ray()
        return list(ray.get([a.pid.remote() for a in self.actors], timeout=60))

    def close(self) -> None:
        """Stop the workers (closing their backends), and the local cluster if this executor started it."""
        if not self._connected:
            return
        ray = _ray()
        for actor, alive in zip(self.actors, self.alive):
            if alive:
                with contextlib.suppress(Exception):
                    ray.get(actor.close.remote(), timeout=10)
            with contextlib.suppress(Exception):
                ray.kill(actor)
        self.actors, self.alive = [], []
        if self._started_ray:
            ray.shutdown()
            self._started_ray = False
        self._connected = False

    def __enter__(self) -> RayExecutor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------- one wave
    def _specs(self, jobs: Sequence[Job], worker: int) -> tuple[dict[str, tuple[str, Any]], list[str]]:
        """Each job's backend as (model id, options) for this worker: its entry laid over the studied
        models' options; every other backend (a role on its own binding) as it is."""
        entry = self.entries[worker] if self.entries is not None else {}
        specs: dict[str, tuple[str, Any]] = {}
        by_backend: dict[int, str] = {}
        bids = []
        for job in jobs:
            bid = by_backend.get(id(job.backend))
            if bid is None:
                if id(job.backend) in self._given:
                    raise ConfigError(
                        f"the Ray executor rebuilds each backend in its workers from model id and options, so it "
                        f"cannot use the backend object given in Python for '{job.backend.model_id}'.",
                        field="executor.kind", fix="run it with the asyncio executor, or give the model by id and "
                        "backend options (register a fake responder by name in a module the workers import).")
                model, options = job.backend.model_id, _options_of(job.backend)
                if model in self.studied and options == self.studied[model]:
                    options = _override(options, entry)
                ident = f"{model}\x00{type(options).__name__}\x00{options.model_dump_json()}"
                bid = by_backend[id(job.backend)] = hashlib.sha256(ident.encode()).hexdigest()[:16]
                specs[bid] = (model, options)
            bids.append(bid)
        return specs, bids

    def _shard(self, jobs: Sequence[Job], indices: Sequence[int], worker: int) -> Any:
        specs, bids = self._specs([jobs[i] for i in indices], worker)
        shard = [(i, bid, jobs[i].keys, jobs[i].requests) for i, bid in zip(indices, bids)]
        return self.actors[worker].run_shard.options(num_returns="streaming").remote(specs, shard)

    async def execute(self, jobs: Sequence[Job], sink: Sink) -> None:
        ray = _ray()
        self.start()
        sendable: list[Job] = []
        for job in jobs:  # reserve in plan order: a request budget stops where the asyncio executor's does
            if not self.budget.take(len(job.requests)):
                break
            sendable.append(job)
        done: set[int] = set()
        live = [w for w, ok in enumerate(self.alive) if ok]
        if not live:
            raise BackendError("every Ray worker has died.", fix="run the same command again (finished requests "
                               "are kept in the store).")
        stopping: list[bool] = []

        def stop_all() -> None:
            if not stopping:
                stopping.append(True)
                for w, ok in enumerate(self.alive):
                    if ok:
                        self.actors[w].stop.remote()

        async def consume(worker: int, indices: list[int]) -> tuple[int, list[int], BaseException | None]:
            """Run one shard on one worker; returns the indices it left unreported and why (None: it finished)."""
            try:
                async for ref in self._shard(sendable, indices, worker):
                    for i, (status, payload, attempts) in await ref:
                        if status == "abort":
                            raise _decode_error(payload)
                        if i in done:
                            self.duplicates_dropped += 1
                            continue
                        done.add(i)
                        job = sendable[i]
                        outcome = (Outcome(error=_decode_error(payload), attempts=attempts) if status == "error"
                                   else Outcome(outputs=tuple(payload), attempts=attempts))
                        self.stats.backend_calls += attempts
                        self.stats.retries += max(0, attempts - 1)
                        if outcome.error is None:
                            self.budget.spend_tokens(output_tokens(outcome.outputs))
                        self.sunk += 1
                        sink(job, outcome)
                        if self.budget.max_tokens is not None and self.budget.tokens >= self.budget.max_tokens:
                            self.budget.reached = True
                            stop_all()
            except (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError,
                    ray.exceptions.ObjectLostError) as exc:
                return worker, [i for i in indices if i not in done], exc
            return worker, [], None

        # round-robin: each worker's shard keeps plan order
        tasks = {asyncio.ensure_future(consume(w, list(range(k, len(sendable), len(live)))))
                 for k, w in enumerate(live) if k < len(sendable)}
        try:
            while tasks:
                finished, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for t in finished:
                    worker, left, exc = t.result()
                    if exc is None:
                        continue
                    self.alive[worker] = False
                    live = [w for w, ok in enumerate(self.alive) if ok]
                    if not live:
                        raise BackendError(f"every Ray worker has died (the last: {' '.join(str(exc).split())[:200]}).",
                                           fix="run the same command again: finished requests are kept in the store.")
                    if stopping:  # a budget stopped the wave: what the dead worker held is not sent again
                        continue
                    self.rerun_jobs += len(left)
                    for k, w in enumerate(live):
                        part = left[k::len(live)]
                        if part:
                            tasks.add(asyncio.ensure_future(consume(w, part)))
        except BaseException:
            stop_all()  # workers stop sending; what they still report is not sunk
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        not_sent = len(sendable) - len(done)
        if not_sent:  # stopped by a token budget: give back what was reserved and never sent
            self.budget.requests -= sum(len(sendable[i].requests) for i in range(len(sendable)) if i not in done)
