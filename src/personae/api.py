"""Running a study end to end: waves through the cached runner, then analysis and the run folder.

    from personae import load_spec, run_study
    outcome = run_study(load_spec("examples/tour.yaml"), out_dir="runs/tour")
    print(outcome.summary.verdict)
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import signal
import json
import subprocess
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from ._json import jsonable
from .backends.base import Backend
from .backends.pool import BackendPool
from .errors import ConfigError, PersonaeError, RunTerminated, error_text
from .executors import Budget, Executor, RunAborted
from .progress import Progress
from .report import MAX_TRANSCRIPTS, figure_to_data_uri, write_report
from .roles import WEAK_SELF_JUDGE
from .backends.base import Request
from .runner import Result, Runner, RunStats
from .runs import StoredResults
from .spec import ResolvedSpec, backend_options_for, role_options
from .store import Store
from .studies import Summary, get_study
from .studies.base import Wave
from .tally import RunTally

_SECRET_WORDS = ("key", "token", "secret", "password")
ITEM_BATCH = 256
"""Run items (which results make up a run) are written in batches of this many, and at each wave's end."""
ROWS_FLUSH_S = 0.5
"""results.jsonl is flushed to the OS at most this often and at the end of each chunk (each
result is committed to the store before its row is written; the file is the run folder's copy,
rewritten by every run, so a kill loses at most this half-second of its rows, never a result).
A flush per row was 100,000 system calls in a 100,000-request run."""
WAVE_CHUNK = 4096
"""A lazily planned wave (`Wave`) goes through the runner this many requests at a time."""


@dataclass(frozen=True)
class RunOutcome:
    """What a finished run returns."""

    summary: Summary | None
    """None when the run stopped before analysis (a budget)."""
    results: Sequence[Result]
    """Every result, in plan order: a list, or for a streaming study (`Study.tally`) a `StoredResults`
    view that reads them back from the store."""
    stats: RunStats
    out_dir: Path | None
    run: dict[str, Any]
    status: str = "complete"
    """complete; complete_with_errors (some requests failed: counted, left out, tried again next run);
    or stopped (a budget was reached; run again with a larger one to resume)."""


def redact(options: Mapping[str, Any]) -> dict[str, Any]:
    """Backend options for run.json: secret-looking keys are replaced, and so are credentials in URLs
    (nested blocks, such as one per provider, included)."""
    from .backends.openai import without_credentials  # noqa: PLC0415

    def clean(k: str, v: Any) -> Any:
        if k == "headers" and isinstance(v, Mapping):  # the openai backend's extra headers: any may be a credential
            return {name: "***" for name in v}
        if isinstance(v, Mapping):
            return redact(v)
        if any(w in k.lower() for w in _SECRET_WORDS) and not k.endswith("_env"):
            return "***"
        return without_credentials(v) if isinstance(v, str) and "://" in v else v

    return {k: clean(k, v) for k, v in options.items()}


def git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(jsonable(data), indent=2, ensure_ascii=False, default=str), encoding="utf-8")
    tmp.replace(path)


class Run:
    """One run of a study: waves through the cached runner, then analysis and the run folder.

    One exit path: whatever happens (finished, stopped by a budget, aborted, analysis failed),
    `_finish` records the status in the store and in run.json, and closes what the run opened.
    """

    def __init__(self, resolved: ResolvedSpec, out_dir: str | Path | None = None, *, store: Store | None = None,
                 backends: Mapping[str, Backend] | None = None, pool: BackendPool | None = None,
                 quiet: bool = True, budget: Budget | None = None, executor: Executor | None = None,
                 overwrite: bool = False) -> None:
        self.resolved = resolved
        self.overwrite = overwrite
        self.spec = resolved.spec
        self.study_cls = get_study(self.spec.study)
        self.study = self.study_cls(resolved)
        self.out = Path(out_dir) if out_dir is not None else None
        self._own_store = store is None
        self.store = store or Store()
        self._own_pool = pool is None
        self.pool = pool or pool_for(resolved, overrides=backends)
        self.quiet = quiet
        self.budget = budget or Budget()
        self.executor = executor
        self.run_id = uuid.uuid4().hex[:12]
        self.results: list[Result] = []
        """Every result so far (a streaming study's run keeps none: see `done`)."""
        self.tally = RunTally()
        self.study_tally: Any = self.study.tally()
        """The study's streaming analysis (None: it analyses the held results)."""
        self._transcripts: list[Result] = []
        self.summary: Summary | None = None
        self.status = "running"
        self.error: str | None = None
        self._rows_file: Any = None
        self._rows_dirty = False
        self._tags_json: tuple[Any, str] = (None, "")
        self._folder_ok = False
        self._items: list[tuple[int, str, int | None, int, str]] = []
        self._offset = 0
        self.runner: Runner | None = None

    # ---------------------------------------------------------------- metadata
    def _roles(self) -> dict[str, Any]:
        out = {}
        for decl in self.study_cls.roles_used(self.resolved.options):
            bound = self.resolved.roles.get(decl.name)
            out[decl.name] = {"purpose": decl.purpose, "bound": bound is not None,
                              "model": bound.model if bound else "(the model under study)",
                              "backend": redact(bound.options) if bound else None,
                              "needs_scoring": decl.needs_scoring, "kind": decl.kind}
        return out

    def _meta(self) -> dict[str, Any]:
        spec, resolved = self.spec, self.resolved
        return {
            "run_id": self.run_id, "status": self.status, "study": spec.study, "title": resolved.name,
            "spec_file": str(resolved.path) if resolved.path else None, "base_dir": str(resolved.base_dir),
            "spec": {**spec.model_dump(mode="json"), "backend": redact(spec.backend),
                     "roles": {k: {**v.model_dump(mode="json"), "backend": redact(v.backend)}
                               for k, v in spec.roles.items()}},
            # the personas the study used: the spec's, or the study's default panel when it gave none
            "personas": [p.model_dump(mode="json") for p in (getattr(self.study, "panel", None) or resolved.personas)],
            "models": list(spec.model), "roles": self._roles(),
            "version": __version__, "git_revision": git_revision(), "seed": spec.seed,
            "store": str(self.store.path), "started_at": _now(), "finished_at": None,
            "budget": {"max_requests": self.budget.max_requests, "max_tokens": self.budget.max_tokens},
            "engine": spec.engine,  # the serving engine's settings as the user declared them (read by nothing)
        }

    # ---------------------------------------------------------------- the run
    async def execute(self) -> RunOutcome:
        run = self._meta()
        self.run = run
        phase = "waves"
        try:
            self._open_folder(run)
            self.store.start_run(self.run_id, self.spec.study, str(self.out) if self.out else None, run)
            with Progress(enabled=not self.quiet) as progress:
                self.runner = runner = Runner(
                    self.pool, self.store, concurrency=self.spec.concurrency.requests,
                    retry=self.spec.concurrency.retry, run_id=self.run_id, progress=progress, seed=self.spec.seed,
                    on_result=self._write_row, on_item=self._item, budget=self.budget, executor=self.executor)
                bind = getattr(self.executor, "bind", None)
                if bind is not None:  # an executor built outside the run (Ray) shares its counters and budget
                    bind(runner)
                flusher = asyncio.create_task(self._flush_rows_every(ROWS_FLUSH_S))
                try:
                    await self._waves(runner)
                finally:
                    flusher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await flusher
            if runner.stopped:
                self.status = "stopped"
            else:
                phase = "analysis"
                self.summary = self._analyze()
                self.status = "complete_with_errors" if self.tally.errors else "complete"
        except BaseException as exc:
            self.status = "analysis_failed" if phase == "analysis" else "aborted"
            if phase == "analysis":
                self.error = error_text(exc)
            elif isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt)):
                self.error = "interrupted (Ctrl-C or SIGTERM) before it finished; run the same command to resume"
            else:
                self.error = error_text(exc)[:500]
            raise
        finally:
            await self._finish(run)
        return RunOutcome(summary=self.summary, results=self.done(), stats=self.runner.stats, out_dir=self.out,
                          run=run, status=self.status)

    async def _waves(self, runner: Runner) -> None:
        study, spec = self.study, self.spec
        for wave in range(study.max_waves):
            requests = study.plan(self.done())
            if not requests:
                return
            label = f"{spec.study} wave {wave + 1}" if wave else spec.study
            if isinstance(requests, Wave):  # built and run a chunk at a time, under one progress bar
                task = runner.progress.add(label, total=len(requests))
                for chunk in requests.chunks(WAVE_CHUNK):
                    await self._run_chunk(runner, chunk, label, task)
                    if runner.stopped:
                        break
                runner.progress.done(task)
            else:
                await self._run_chunk(runner, requests, label, None)
            self._flush_items()
            if runner.stopped:
                return
            if self.tally.results and not self.tally.ok:  # nothing works: stop with the cause
                last = self.tally.last_error or "unknown error"
                raise RunAborted(f"stopped: all {self.tally.results} requests failed (nothing is lost: run the same "
                                 f"command again once fixed). Last error: {last}",
                                 fix=None if "Fix:" in last else "fix the cause above and run again.")
        raise PersonaeError(f"the study planned more than {study.max_waves} waves.",
                            fix="this is a bug in the study's plan(); please report it.")

    async def _run_chunk(self, runner: Runner, requests: Sequence[Request], label: str, task: Any) -> None:
        self._offset = self.tally.results
        got = await runner.run(requests, label=label, task=task)
        self._flush_items(final=False)
        if self._rows_file is not None:
            self._rows_file.flush()
        self._keep(got)

    def _keep(self, got: list[Result]) -> None:
        """Count a chunk's results (in plan order) and hold them, or for a streaming study add them
        to its tally and hold only the first few (the report's transcripts)."""
        self.tally.add_all(got)
        if self.study_tally is None:
            self.results.extend(got)
            return
        for r in got:
            self.study_tally.add(r)
        if len(self._transcripts) < MAX_TRANSCRIPTS:
            self._transcripts.extend(got[: MAX_TRANSCRIPTS - len(self._transcripts)])

    def done(self) -> Sequence[Result]:
        """Every result so far, in plan order: held, or read from the store for a streaming study."""
        if self.study_tally is None:
            return self.results
        return StoredResults(self.store, self.run_id, self.tally.results)

    def _item(self, index: int, r: Result) -> None:
        """Record that a result belongs to this run, at its plan position (a wave's requests keep
        their order; a budget-stopped wave's unsent requests leave gaps, closed on flush)."""
        tags = r.request.tags
        if self._tags_json[0] is not tags:  # the replicates of a cell share one Tags: dumped once
            self._tags_json = (tags, tags.model_dump_json())
        self._items.append((self._offset + index, r.key, r.error_id, tags.wave, self._tags_json[1]))
        if len(self._items) >= ITEM_BATCH:
            self._flush_items(final=False)

    def _flush_items(self, final: bool = True) -> None:
        """Write buffered run items (a kill loses at most ITEM_BATCH of them, never a result). At the
        end of a wave the positions are renumbered to close the gaps unsent requests left."""
        if self._items:
            self.store.add_run_items(self.run_id, self._items)
            self._items = []
        if final:
            self.store.compact_run_items(self.run_id)

    def _analyze(self) -> Summary:
        if self.study_tally is not None:
            summary = self.study.analyze_tally(self.study_tally)
        else:
            summary = self.study.analyze(self.results)
        add_role_notes(self.study, self.tally, summary)
        return summary

    def _open_folder(self, run: dict[str, Any]) -> None:
        if self.out is None:
            return
        try:
            self.out.mkdir(parents=True, exist_ok=True)
            self._check_folder_owner()
            previous = _previous_runs(self.out / "run.json")
            if previous:
                run["previous_runs"] = previous
            _write_json(self.out / "run.json", {**run, "counts": RunStats().as_dict()})
            for stale in ("summary.json", "report.html"):  # the folder's files belong to one run
                (self.out / stale).unlink(missing_ok=True)
            self._rows_file = (self.out / "results.jsonl").open("w", encoding="utf-8")
            self._folder_ok = True
        except OSError as exc:
            raise ConfigError(f"cannot write the run folder: {exc.strerror or exc}.", file=str(self.out),
                              fix="choose another --out folder, or one you may write to.") from None

    def _check_folder_owner(self) -> None:
        """Refuse to write into a folder that holds another study's (or another spec's) run."""
        assert self.out is not None
        try:
            old = json.loads((self.out / "run.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if self.overwrite or not isinstance(old, dict):
            return
        spec_file = str(self.resolved.path) if self.resolved.path else None
        if old.get("study") != self.spec.study or (old.get("spec_file") and spec_file and old["spec_file"] != spec_file):
            raise ConfigError(f"holds a run of another spec ({old.get('study')} study from {old.get('spec_file')}).",
                              file=str(self.out), field="--out",
                              fix="choose another --out folder, or add --overwrite to replace that run's files.")

    def _write_row(self, res: Result) -> None:
        if self._rows_file is not None:
            self._rows_file.write(res.row_json() + "\n")
            self._rows_dirty = True

    async def _flush_rows_every(self, seconds: float) -> None:
        """Flush results.jsonl every `seconds` while rows come in (and at the end of each chunk):
        a kill loses at most that much of the folder's copy, never a result in the store."""
        while True:
            await asyncio.sleep(seconds)
            if self._rows_dirty and self._rows_file is not None:
                self._rows_file.flush()
                self._rows_dirty = False

    def _totals(self) -> dict[str, Any]:
        """What the run's results cost, wherever they were computed (a cached re-run computes
        nothing itself, but its results still came from calls: here they are)."""
        t = self.tally
        origins = self.store.run_origin_counts(self.run_id)
        return {"results": t.results, "ok": t.ok, "errors": t.errors, "prompt_tokens": t.prompt_tokens,
                "completion_tokens": t.completion_tokens, "computed_by_run": {str(k): v for k, v in origins.items()}}

    async def _finish(self, run: dict[str, Any]) -> None:
        try:
            if self._rows_file is not None:
                self._rows_file.close()
            stats = self.runner.stats if self.runner else RunStats()
            run.update(status=self.status, finished_at=_now(), counts=stats.as_dict(),
                       tokens={"prompt": stats.prompt_tokens, "completion": stats.completion_tokens})
            run["backends"] = [b.describe() for b in self.pool.backends()]
            describe = getattr(self.executor, "describe", None)  # the Ray executor: workers, re-runs
            run["executor"] = describe() if describe is not None else {"kind": "asyncio" if self.executor is None
                                                                       else type(self.executor).__name__}
            if self.error:
                run["error"] = self.error
            if self.status == "stopped":
                run["stopped"] = "budget"
                run["budget"] = self.budget.describe()
            with contextlib.suppress(Exception):  # items of a run stopped mid-wave (a kill loses at most ITEM_BATCH)
                self._flush_items(final=False)
            try:
                run["totals"] = self._totals()
            except Exception:  # noqa: BLE001 (a store that failed must not hide the run's own error)
                pass
            run["usage"] = self.tally.usage.rows(self.spec.prices)
            if self.summary is not None:
                self.store.put_artifact(self.run_id, "summary", "summary",
                                        content=json.dumps(jsonable(self.summary.model_dump(mode="json"))))
            self.store.finish_run(self.run_id, {k: run[k] for k in ("status", "finished_at", "counts", "tokens",
                                                                    "totals", "stopped", "error", "backends", "usage")
                                                if k in run})
            if self.out is not None and self._folder_ok:
                if self.summary is not None:
                    self._write_outputs(run)
                _write_json(self.out / "run.json", run)
        finally:
            if self._own_pool:
                await self.pool.aclose()
            if self._own_store:
                self.store.close()

    def _write_outputs(self, run: dict[str, Any]) -> None:
        assert self.out is not None and self.summary is not None
        summary = self.summary
        _write_json(self.out / "summary.json", summary.model_dump(mode="json"))
        figures = [(caption, figure_to_data_uri(fig)) for caption, fig in self.study.figures(self.done(), summary)]
        shown = self._transcripts if self.study_tally is not None else self.results[:MAX_TRANSCRIPTS]
        write_report(self.out / "report.html", title=self.resolved.name,
                     summary=jsonable(summary.model_dump(mode="json")), run=run,
                     rows=[r.to_row() for r in shown], n_rows=self.tally.results,
                     figures=figures, display_columns=self.study.display_columns)


def add_role_notes(study: Any, results: Iterable[Result] | RunTally, summary: Summary) -> None:
    """Say in the summary when a role the run used was played by the model under study, and how
    many of a role's requests failed (from the results, or from a run's tally of them)."""
    tally = results if isinstance(results, RunTally) else RunTally.of(results)
    for decl in type(study).roles_used(study.options):
        mine = tally.roles.get(decl.name)
        if mine is None:
            continue
        if decl.name not in study.resolved.roles:
            summary.notes.append((decl.self_note or WEAK_SELF_JUDGE).format(role=decl.name, purpose=decl.purpose))
        if mine.failed:
            models = ", ".join(sorted(mine.failed_models))
            summary.notes.insert(0, f"{mine.failed} of {mine.requests} requests to the {decl.name} ({models}) failed: "
                                    f"what needs them leaves those out (first error: {mine.first_error})")


def _previous_runs(path: Path) -> list[dict[str, Any]]:
    """The runs that wrote this folder before (kept, so re-running never erases what the first run cost)."""
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(old, dict):
        return []
    keep = ("run_id", "status", "started_at", "finished_at", "counts", "tokens")
    return [*old.get("previous_runs", []), {k: old.get(k) for k in keep}][-20:]


def pool_for(resolved: ResolvedSpec, overrides: Mapping[str, Backend] | None = None) -> BackendPool:
    """The backend pool of a resolved spec: its models, its roles, and any backends given in Python."""
    spec = resolved.spec

    def options_for(model: str) -> Mapping[str, Any]:
        return backend_options_for(spec, model) if model in spec.model else role_options(spec, model)

    return BackendPool(roles=resolved.roles, options_for=options_for, overrides=overrides,
                       file=str(resolved.path) if resolved.path else None)


async def run_study_async(
    resolved: ResolvedSpec,
    out_dir: str | Path | None = None,
    *,
    store: Store | None = None,
    backends: Mapping[str, Backend] | None = None,
    pool: BackendPool | None = None,
    quiet: bool = True,
    budget: Budget | None = None,
    executor: Executor | None = None,
    overwrite: bool = False,
) -> RunOutcome:
    """Run every wave of the study, write the run folder (if `out_dir`), and return the outcome.

    `backends` overrides backend creation by model id (e.g. a FakeBackend with a Python responder);
    `pool` shares backends across runs (the tour). A budget that stops the run leaves status
    'stopped' (no summary); the same call with a larger budget resumes from the store. On a failure
    the run folder still gets run.json (status 'aborted') and the results so far.
    """
    return await Run(resolved, out_dir, store=store, backends=backends, pool=pool, quiet=quiet, budget=budget,
                     executor=executor, overwrite=overwrite).execute()


def run_study(resolved: ResolvedSpec, out_dir: str | Path | None = None, *, handle_sigterm: bool = False,
              **kwargs: Any) -> RunOutcome:
    """Synchronous facade over `run_study_async`.

    `handle_sigterm=True` (the CLI) turns SIGTERM into a clean stop like Ctrl-C: status aborted, results
    kept, RunTerminated raised. Off by default: a library must not change how its host process ends.
    """
    # The outcome is handed back through a list, not as the main task's result: on Python 3.11,
    # asyncio.run's SIGINT clean-up formats the main task's repr, result included, which costs
    # ~0.2 s per 10,000 results (a third of a fully cached 10,000-request rerun).
    box: list[RunOutcome] = []
    terminated: list[bool] = []

    async def main() -> None:
        loop, task = asyncio.get_running_loop(), asyncio.current_task()

        def on_sigterm() -> None:  # like Ctrl-C: cancel the run, which records 'aborted' and closes up
            terminated.append(True)
            if task is not None:
                task.cancel()

        if handle_sigterm:
            try:
                loop.add_signal_handler(signal.SIGTERM, on_sigterm)
            except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
                pass
        try:
            box.append(await run_study_async(resolved, out_dir, **kwargs))
        finally:
            if handle_sigterm:
                with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                    loop.remove_signal_handler(signal.SIGTERM)

    try:
        asyncio.run(main())
    except asyncio.CancelledError:
        if terminated:
            raise RunTerminated("terminated (SIGTERM): finished requests are kept in the store and run.json says "
                                "'aborted'.", fix="run the same command again to resume.") from None
        raise
    return box[0]
