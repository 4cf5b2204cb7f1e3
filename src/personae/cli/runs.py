"""personae runs / personae export RUN"""

from __future__ import annotations

from pathlib import Path

import typer

from ._common import StoreOption, handle_errors, out, table_from_rows


@handle_errors
def runs(
    store: Path = StoreOption,
    limit: int = typer.Option(30, "--limit", "-n", min=0, help="Newest N runs (0: all)."),
) -> None:
    """List the runs in the store: id, study, models, status, counts, date.

    A run whose process died (killed, machine restarted) is listed as aborted; run its spec again
    to resume it.

    Example: personae runs -n 10
    """
    from ..runs import _open_existing, run_rows  # noqa: PLC0415
    from ..store import default_store_path  # noqa: PLC0415

    path = store or default_store_path()
    if store is None and not path.is_file():
        out.print(f"no runs yet (no store at {path}): personae run SPEC --out DIR", markup=False)
        return
    with _open_existing(path) as st:
        for notice in st.notices:
            out.print(notice, markup=False)
        rows = run_rows(st.runs(limit or None))
    if not rows:
        out.print("no runs in this store yet: personae run SPEC --out DIR", markup=False)
        return
    out.print(table_from_rows(rows, title=f"runs in {st.path}"))


@handle_errors
def export(
    run: str = typer.Argument(..., help="A run folder, or a run id (or a unique prefix) from 'personae runs'."),
    fmt: str = typer.Option("csv", "--format", "-f", help="csv, jsonl or parquet (needs pyarrow)."),
    out_dir: Path = typer.Option(None, "--out", "-o", help="Folder to write (default: export-RUNID)."),
    store: Path = StoreOption,
) -> None:
    """Write a run's requests (one row per request, flat columns) and its summary tables to files,
    rebuilt from the store.

    Example: personae export runs/grid --format csv --out runs/grid/export
    """
    from ..runs import export_run, load_run  # noqa: PLC0415

    loaded = load_run(run, store=store)
    files = export_run(loaded, out_dir or Path(f"export-{loaded.run_id}"), fmt)
    out.print(f"run {loaded.run_id} ({loaded.study}, {loaded.status}): {len(loaded.results)} requests", markup=False)
    for f in files:
        out.print(f"wrote {f}", markup=False)
    if loaded.summary is None:
        out.print(f"no summary or stats tables: run {loaded.run_id} is {loaded.status} and stopped before its analysis "
                  "(run its spec again to finish it).", markup=False)
