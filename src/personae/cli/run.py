"""personae run SPEC --out DIR"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.text import Text

from ._common import StoreOption, err, handle_errors, open_store, out, table_from_rows


@handle_errors
def run(
    spec: Path = typer.Argument(..., help="Study spec (YAML or JSON)."),
    out_dir: Path = typer.Option(None, "--out", "-o", help="Run folder to write (required unless --dry-run)."),
    store: Path = StoreOption,
    quiet: bool = typer.Option(False, "--quiet", "-q", envvar="PERSONAE_QUIET", help="No progress bar."),
    model: list[str] = typer.Option([], "--model", "-m",
                                    help="Run on this model instead of the spec's (repeat for several)."),
    max_requests: int = typer.Option(None, "--max-requests",
                                     help="Send at most N requests to backends, then stop cleanly (resumable)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into an --out folder that holds another spec's run."),
    max_tokens: int = typer.Option(None, "--max-tokens",
                                   help="Stop cleanly once N tokens (prompt + completion) were used (resumable)."),
    executor: str = typer.Option(None, "--executor", envvar="PERSONAE_EXECUTOR",
                                 help="asyncio (one process; default) or ray (shard over a Ray cluster; the ray "
                                 "extra). Default: the spec's executor.kind."),
    address: str = typer.Option(None, "--address", envvar="PERSONAE_RAY_ADDRESS",
                                help="Ray cluster to join (HOST:PORT, ray://HOST:10001 or auto); none starts a "
                                "local one."),
    dry_run: bool = typer.Option(False, "--dry-run",
                                 help="Check the spec and print requests, cache hits, tokens and cost per model and "
                                 "role; call no model, write nothing."),
    prices: Path = typer.Option(None, "--prices", envvar="PERSONAE_PRICES",
                                help="YAML/JSON price table (prices: {MODEL: {input: ..., output: ...}} per million "
                                "tokens), on top of the spec's prices:."),
) -> None:
    """Run a study spec and write DIR/run.json, results.jsonl, summary.json and report.html.

    Running it again answers from the store (zero backend calls); a killed run resumes where it
    stopped.

    Example: personae run examples/grid.yaml --out runs/grid
    Example: personae run examples/accuracy.yaml -m openai/qwen2.5-7b --out runs/acc-qwen
    Example: personae run examples/style.yaml --out runs/style --max-requests 100
    Example: personae run examples/grid.yaml --out runs/grid --executor ray --address 127.0.0.1:6379
    Example: personae run examples/accuracy.yaml --dry-run --prices prices.yaml

    Exit codes: 0 finished, 2 an error (one line says where and how to fix it), 3 stopped by
    --max-requests / --max-tokens (run the same command with a larger budget to continue), 4
    finished with failed requests (counted, left out; the same command tries them again).
    """
    from ..api import run_study  # noqa: PLC0415
    from ..errors import ConfigError  # noqa: PLC0415
    from ..executors import Budget  # noqa: PLC0415
    from ..dryrun import estimate_run  # noqa: PLC0415
    from ..spec import load_spec  # noqa: PLC0415
    from .dry_run import print_dry_run, with_prices  # noqa: PLC0415

    for flag, value in (("--max-requests", max_requests), ("--max-tokens", max_tokens)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be at least 1 (got {value}).", field=flag,
                              fix=f"give a positive number, or leave {flag} out for no budget.")
    resolved = with_prices(load_spec(spec, models=model), prices)
    if dry_run:
        print_dry_run(estimate_run(resolved, store=store, out_dir=out_dir, overwrite=overwrite),
                      max_requests=max_requests, max_tokens=max_tokens)
        return
    if out_dir is None:
        raise ConfigError("personae run needs a run folder to write.", field="--out",
                          fix="add --out DIR (e.g. --out runs/mine), or --dry-run to only see what it would cost.")
    budget = Budget(max_requests=max_requests, max_tokens=max_tokens)
    with executor_for(resolved, executor, address, budget) as ex, open_store(store) as st:
        for notice in st.notices:
            err.print(notice, markup=False)
        outcome = run_study(resolved, out_dir, store=st, quiet=quiet, budget=budget, overwrite=overwrite,
                            handle_sigterm=True, executor=ex)
    if outcome.summary is None:
        s = outcome.stats
        out.print(f"stopped: the budget was reached after {s.backend_calls} backend calls ({s.cache_hits} cache hits, "
                  f"{s.not_sent} requests not sent). Nothing is lost: run the same command with a larger budget "
                  "to continue.", markup=False)
        out.print(f"wrote {outcome.out_dir}/run.json, results.jsonl (status: stopped)", markup=False)
        raise typer.Exit(BUDGET_EXIT)
    print_outcome(outcome)
    if outcome.status == "complete_with_errors":
        raise typer.Exit(ERRORS_EXIT)


def executor_for(resolved, kind: str | None, address: str | None, budget):  # type: ignore[no-untyped-def]
    """A context manager giving the run's executor: None (the runner's asyncio one) or a started Ray
    executor (cluster joined and workers up before any model call; stopped on exit)."""
    import contextlib  # noqa: PLC0415

    from ..errors import ConfigError  # noqa: PLC0415

    spec_exec = resolved.spec.executor
    kind = kind or spec_exec.kind
    if kind not in ("asyncio", "ray"):
        raise ConfigError(f"no executor '{kind}'.", field="--executor", fix="use --executor asyncio or --executor ray.")
    if kind == "asyncio":
        for flag, value in (("--address", address), ("executor.address", spec_exec.address),
                            ("executor.workers", spec_exec.workers)):
            if value is not None:
                raise ConfigError("this is an option of the Ray executor, but the run uses asyncio.", field=flag,
                                  file=str(resolved.path) if resolved.path and flag.startswith("executor") else None,
                                  fix="add --executor ray (or executor.kind: ray in the spec), or remove it.")
        return contextlib.nullcontext(None)
    from ..executors.ray import RayExecutor  # noqa: PLC0415

    return RayExecutor.from_spec(resolved, address=address, budget=budget)


BUDGET_EXIT = 3
"""Exit code of a run stopped by its budget."""
ERRORS_EXIT = 4
"""Exit code of a run that finished with failed requests (counted and left out of the statistics;
the same command tries them again)."""


def print_outcome(outcome) -> None:  # type: ignore[no-untyped-def]
    from ..studies import get_study  # noqa: PLC0415

    from ..report.tables import display_rows  # noqa: PLC0415

    s = outcome.stats
    table = outcome.summary.table
    rows = display_rows(table, get_study(outcome.summary.study).display_columns)
    title = outcome.run["title"]
    models = {r.get("model") for r in table}
    if len(models) == 1 and None not in models:  # one model: say it once, in the title
        title = f"{title} ({models.pop()})"
    out.print(table_from_rows(rows, title=title))
    if s.errors:  # before the verdict: it was computed without them
        kinds = sorted(s.error_messages.values(), key=lambda e: -int(e["count"]))
        out.print(Text.assemble((f"{s.errors} of {s.requests} requests failed", "bold red"),
                                f" (left out of the statistics; run the same command to try them again). "
                                f"Most common: {kinds[0]['example'] if kinds else '?'}"))
    out.print(Text.assemble(("verdict:", "bold"), " ", outcome.summary.verdict))  # plain text, not markup
    predictions = outcome.summary.counts.get("predictions")
    if predictions is not None and not s.requests:
        out.print(f"{predictions} predictions read from files: no model was asked (0 requests)")
    else:
        out.print(f"{s.requests} requests: {s.backend_calls} backend calls, {s.cache_hits} cache hits, "
                  f"{s.errors} errors, {s.retries} retries")
    if outcome.out_dir is not None:
        out.print(f"wrote {outcome.out_dir}/run.json, results.jsonl, summary.json, report.html", markup=False)
