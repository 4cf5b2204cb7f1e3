"""Self-contained HTML reports: summary table, statistics, plots (embedded PNG), transcripts.

Everything a model wrote is escaped (jinja2 autoescape): a reply containing <script> is shown,
never run.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2

from .tables import cell, column_names, display_rows, merge_intervals

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("personae", "report/templates"),
    autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
    undefined=jinja2.StrictUndefined,
)


def figure_to_data_uri(fig: Any) -> str:
    """A matplotlib figure as a base64 PNG data URI (the figure is closed)."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


MAX_TRANSCRIPTS = 200
"""Requests shown as transcripts in a report (the rest are in results.jsonl)."""


def render_report(*, title: str, summary: dict[str, Any], run: dict[str, Any], rows: Sequence[dict[str, Any]],
                  figures: Sequence[tuple[str, str]] = (), max_transcripts: int = MAX_TRANSCRIPTS,
                  n_rows: int | None = None, display_columns: Sequence[str] | None = None) -> str:
    """The report as one HTML string. `n_rows` is the total number of requests when `rows` holds
    only the first ones (the caller need not build rows that are not shown)."""
    table = summary.get("table", [])
    shown = display_rows(table, display_columns)
    full = [merge_intervals(r) for r in table]
    return _env.get_template("report.html.j2").render(
        title=title, summary=summary, run=run, figures=figures, cell=cell,
        shown=shown, shown_columns=column_names(shown), full=full, full_columns=column_names(full),
        transcripts=list(rows)[:max_transcripts], n_rows=len(rows) if n_rows is None else n_rows,
        stats_json=json.dumps(summary.get("stats", {}), indent=2, default=str),
    )


def write_report(path: Path, **kwargs: Any) -> Path:
    path.write_text(render_report(**kwargs), encoding="utf-8")
    return path
