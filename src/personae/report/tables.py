"""Summary tables for people (terminal and HTML): key columns, rounded numbers, one CI column."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def cell(value: Any) -> str:
    """Table text: floats to 3 decimals (or 2 significant digits when tiny), None and NaN as blank."""
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:
            return ""
        return f"{value:.3f}" if abs(value) >= 0.001 or value == 0 else f"{value:.2g}"
    return str(value)


def merge_intervals(row: dict[str, Any]) -> dict[str, Any]:
    """X_ci_low and X_ci_high (or ci_low and ci_high) become one column 'X 95% CI'."""
    merged: dict[str, Any] = {}
    for k, v in row.items():
        if k.endswith("ci_low"):
            stem = k[: -len("ci_low")]
            hi = row.get(stem + "ci_high")
            label = (stem.rstrip("_") + " 95% CI").strip()
            merged[label] = None if v is None or hi is None else f"[{cell(v)}, {cell(hi)}]"
        elif not k.endswith("ci_high"):
            merged[k] = v
    return merged


def display_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None) -> list[dict[str, Any]]:
    """The rows people read: only `columns` (plus 'model' when several models), CIs merged.

    summary.json keeps every column; this is presentation only.
    """
    models = {r.get("model") for r in rows}
    keep_model = len(models) > 1
    present = {k for r in rows for k in r}  # a column no row has (e.g. JSD to humans without human labels) is not shown
    out = []
    for r in rows:
        picked = r if not columns else {k: r.get(k) for k in ("model", *columns) if k in present}
        if not keep_model:
            picked = {k: v for k, v in picked.items() if k != "model"}
        out.append(merge_intervals(dict(picked)))
    return out


def column_names(rows: Sequence[dict[str, Any]]) -> list[str]:
    names: list[str] = []
    for row in rows:
        names.extend(k for k in row if k not in names)
    return names
