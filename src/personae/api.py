"""Running a study end to end: waves through the cached runner, then analysis and the run folder.

    from personae import load_spec, run_study
    outcome = run_study(load_spec("examples/tour.yaml"), out_dir="runs/tour")
    print(outcome.summary.verdict)
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import __version__
from ._json import jsonable
from .backends import create_backend
from .backends.base import Backend
from .errors import ConfigError, PersonaeError
from .progress import Progress
from .report import MAX_TRANSCRIPTS, figure_to_data_uri, write_report
from .runner import Result, RunAborted, Runner, RunStats
from .spec import ResolvedSpec, backend_options_for
from .store import Store
from .studies import Summary, get_study

_SECRET_WORDS = ("key", "token", "secret", "password")


@dataclass(frozen=True)
class RunOutcome:
    """What a finished run returns."""

    summary: Summary
    results: list[Result]
    stats: RunStats
    out_dir: Path | None
    run: dict[str, Any]


def redact(options: Mapping[str, Any]) -> dict[str, Any]:
    """Backend options for run.json: secret-looking keys are replaced, and so are credentials in URLs
    (nested blocks, such as one per provider, included)."""
    from .backends.openai import without_credentials  # noqa: PLC0415

    def clean(k: str, v: Any) -> Any:
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


async def run_study_async(
    resolved: ResolvedSpec,
    out_dir: str | Path | None = None,
    *,
    store: Store | None = None,
    backends: Mapping[str, Backend] | None = None,
    quiet: bool = True,
) -> RunOutcome:
    """Run every wave of the study, write the run folder (if `out_dir`), and return the outcome.

    `backends` overrides backend creation (e.g. a FakeBackend with a Python responder).
    On a failure the run folder still gets run.json (status 'aborted') and the results so far.
    """
    spec = resolved.spec
    study = get_study(spec.study)(resolved)
    own_store = store is None
    store = store or Store()
    made: dict[str, Backend] = {}
    if backends is None:
        for model in spec.model:
            made[model] = create_backend(model, backend_options_for(spec, model),
                                         file=str(resolved.path) if resolved.path else None)
        backends = made
    out = Path(out_dir) if out_dir is not None else None
    run_id = uuid.uuid4().hex[:12]
    run: dict[str, Any] = {
        "run_id": run_id, "status": "running", "study": spec.study, "title": resolved.name,
        "spec_file": str(resolved.path) if resolved.path else None,
        "spec": {**spec.model_dump(mode="json"), "backend": redact(spec.backend)},
        "personas": [p.model_dump(mode="json") for p in resolved.personas],
        "models": list(spec.model), "backends": [b.describe() for b in backends.values()],
        "version": __version__, "git_revision": git_revision(), "seed": spec.seed,
        "store": str(store.path), "started_at": _now(), "finished_at": None,
    }
    rows_file = None
    if out is not None:
        try:
            out.mkdir(parents=True, exist_ok=True)
            _write_json(out / "run.json", {**run, "counts": RunStats().as_dict()})
            rows_file = (out / "results.jsonl").open("w", encoding="utf-8")
        except OSError as exc:
            for b in made.values():
                await b.aclose()
            if own_store:
                store.close()
            raise ConfigError(f"cannot write the run folder: {exc.strerror or exc}.", file=str(out),
                              fix="choose another --out folder, or one you may write to.") from None

    def on_result(res: Result) -> None:
        if rows_file is not None:
            rows_file.write(json.dumps(jsonable(res.to_row()), ensure_ascii=False) + "\n")
            rows_file.flush()

    store.start_run(run_id, spec.study, str(out) if out else None, {"spec_file": run["spec_file"]})
    results: list[Result] = []
    with Progress(enabled=not quiet) as progress:
        runner = Runner(backends, store, concurrency=spec.concurrency.requests, retry=spec.concurrency.retry,
                        run_id=run_id, progress=progress, seed=spec.seed, on_result=on_result)
        try:
            for wave in range(study.max_waves):
                requests = study.plan(results)
                if not requests:
                    break
                label = f"{spec.study} wave {wave + 1}" if wave else spec.study
                results.extend(await runner.run(requests, label=label))
                if results and not any(r.ok for r in results):  # nothing works: stop with the cause
                    last = results[-1].error or "unknown error"
                    raise RunAborted(f"stopped: all {len(results)} requests failed (nothing is lost: run the same "
                                     f"command again once fixed). Last error: {last}",
                                     fix=None if "Fix:" in last else "fix the cause above and run again.")
            else:
                raise PersonaeError(f"the study planned more than {study.max_waves} waves.",
                                    fix="this is a bug in the study's plan(); please report it.")
        except BaseException:
            run.update(status="aborted", finished_at=_now(), counts=runner.stats.as_dict())
            if out is not None:
                _write_json(out / "run.json", run)
            store.finish_run(run_id, {"status": "aborted"})
            if own_store:
                store.close()
            raise
        finally:
            if rows_file is not None:
                rows_file.close()
            for b in made.values():
                await b.aclose()
    try:
        summary = study.analyze(results)
    except BaseException as exc:  # every result is in the store; say so in run.json before raising
        run.update(status="analysis_failed", finished_at=_now(), counts=runner.stats.as_dict(),
                   error=f"{type(exc).__name__}: {exc}")
        if out is not None:
            _write_json(out / "run.json", run)
        if own_store:
            store.close()
        raise
    run.update(status="complete", finished_at=_now(), counts=runner.stats.as_dict(),
               tokens={"prompt": runner.stats.prompt_tokens, "completion": runner.stats.completion_tokens})
    store.finish_run(run_id, {"status": "complete", "counts": runner.stats.as_dict()})
    if own_store:
        store.close()
    if out is not None:
        _write_json(out / "summary.json", summary.model_dump(mode="json"))
        figures = [(caption, figure_to_data_uri(fig)) for caption, fig in study.figures(results, summary)]
        write_report(out / "report.html", title=resolved.name, summary=jsonable(summary.model_dump(mode="json")),
                     run=run, rows=[r.to_row() for r in results[:MAX_TRANSCRIPTS]], n_rows=len(results),
                     figures=figures, display_columns=study.display_columns)
        _write_json(out / "run.json", run)
    return RunOutcome(summary=summary, results=results, stats=runner.stats, out_dir=out, run=run)


def run_study(resolved: ResolvedSpec, out_dir: str | Path | None = None, **kwargs: Any) -> RunOutcome:
    """Synchronous facade over `run_study_async`."""
    # The outcome is handed back through a list, not as the main task's result: on Python 3.11,
    # asyncio.run's SIGINT clean-up formats the main task's repr, result included, which costs
    # ~0.2 s per 10,000 results (a third of a fully cached 10,000-request rerun).
    box: list[RunOutcome] = []

    async def main() -> None:
        box.append(await run_study_async(resolved, out_dir, **kwargs))

    asyncio.run(main())
    return box[0]
