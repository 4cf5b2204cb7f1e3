"""Shared CLI plumbing: error handling (one red line, exit 2), tables, store option."""

from __future__ import annotations

import functools
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..errors import PersonaeError, RunTerminated, mask_secrets
from ..report.tables import cell, column_names, merge_intervals

F = TypeVar("F", bound=Callable[..., Any])

# piped output (CI logs, files) gets a wide table instead of rich's 80-column default
out = Console(highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def debug_enabled() -> bool:
    return os.environ.get("PERSONAE_DEBUG", "") not in ("", "0")


def handle_errors(fn: F) -> F:
    """Turn PersonaeError into one red line and exit code 2 (traceback only with --debug)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RunTerminated as exc:
            err.print(exc.one_line(), style="yellow", markup=False)
            raise typer.Exit(143) from None
        except PersonaeError as exc:
            if debug_enabled():
                err.print(mask_secrets(traceback.format_exc()), markup=False)
            # one line, whatever a library put in the message (server replies can hold newlines)
            line = " ".join(exc.one_line().split())
            err.print(f"error: {line}", style="bold red", markup=False, emoji=False)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err.print("interrupted: finished requests are kept in the store; run the same command to resume.",
                      style="yellow", markup=False)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def table_from_rows(rows: Sequence[dict[str, Any]], title: str | None = None) -> Table:
    """A rich table of the rows. Cells and title are plain text, never markup: they hold ids and names
    from the user's files ('q[/b]' would otherwise be a MarkupError, '[bold]x' would vanish)."""
    table = Table(title=Text(title) if title is not None else None, show_lines=False)
    rows = [merge_intervals(r) for r in rows]
    columns = column_names(rows)
    for c in columns:
        table.add_column(Text(c), overflow="fold")
    for row in rows:
        table.add_row(*(Text(cell(row.get(c))) for c in columns))
    return table


StoreOption = typer.Option(None, "--store", envvar="PERSONAE_STORE",
                           help="SQLite store (cache). Default: ~/.cache/personae/store.sqlite.")


def open_store(path: Path | None) -> Any:
    from ..store import Store  # noqa: PLC0415

    return Store(path)
