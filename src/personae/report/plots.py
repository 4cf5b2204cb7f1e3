"""Plots shared by the studies (matplotlib, Agg backend). Each returns a Figure."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _plt() -> Any:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def forest_plot(labels: Sequence[str], est: Sequence[float], low: Sequence[float], high: Sequence[float], *,
                xlabel: str, zero: float = 0.0) -> Any:
    """Estimates with CIs, one row per label, and a reference line at `zero`."""
    return grouped_forest_plot(labels, [("", est, low, high)], xlabel=xlabel, refs=[(zero, "")])


PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")

Series = tuple[str, Sequence[float | None], Sequence[float | None], Sequence[float | None]]
"""(name, estimates, CI lows, CI highs), one value per row; None: no point (or no CI) on that row."""


def grouped_forest_plot(labels: Sequence[str], series: Sequence[Series], *, xlabel: str,
                        refs: Sequence[tuple[float, str]] = ()) -> Any:
    """Estimates with CIs, one row per label and one marker per series within the row (the series
    present on a row are spread around it; a legend when the series are named), and a vertical line
    at each (x, label) of `refs` (dashed, dotted, ...). Each series is one errorbar container holding
    only its rows with an estimate."""
    plt = _plt()
    named = any(name for name, *_ in series) or any(label for _, label in refs)
    fig, ax = plt.subplots(figsize=(9.0 if named else 6.5, (0.3 + 0.12 * len(series)) * len(labels) + 1.3))
    ys = list(range(len(labels)))[::-1]
    present = [[k for k, s in enumerate(series) if s[1][i] is not None] for i in range(len(labels))]
    for k, (name, est, low, high) in enumerate(series):
        pts = []
        for i, (y, e, lo, hi) in enumerate(zip(ys, est, low, high)):
            if e is None:
                continue
            here = present[i]
            off = 0.0 if len(here) == 1 else 0.3 - 0.6 * here.index(k) / (len(here) - 1)
            pts.append((y + off, e, e if lo is None else lo, e if hi is None else hi))
        ax.errorbar([p[1] for p in pts], [p[0] for p in pts], xerr=[[p[1] - p[2] for p in pts], [p[3] - p[1] for p in pts]],
                    fmt="o", color=PALETTE[k % len(PALETTE)], lw=2, ms=5, capsize=0, label=name or None)
    for j, (x, label) in enumerate(refs):
        ax.axvline(x, color="#999", ls=("--", ":", "-.")[j % 3], lw=1, label=label or None)
    ax.set_yticks(ys, labels)
    ax.set_xlabel(xlabel)
    if named:
        ax.legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return fig


def scatter_with_errors(x: Sequence[float], y: Sequence[float], *, labels: Sequence[str], xerr: Any = None,
                        yerr: Any = None, xlabel: str, ylabel: str, diagonal: bool = False,
                        ref_slope: float | None = None, ref_label: str = "") -> Any:
    """Labelled points with optional error bars, an optional y = x line and a reference line y = slope x."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o", color="#4c72b0", ecolor="#9db3d6", capsize=2)
    for xi, yi, lab in zip(x, y, labels):
        ax.annotate(lab, (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if diagonal and len(x):
        lo, hi = min(min(x), min(y)), max(max(x), max(y))
        ax.plot([lo, hi], [lo, hi], color="#999", ls="--", lw=1)
    if ref_slope is not None and len(x):
        xs = [0.0, max(x)]
        ax.plot(xs, [ref_slope * v for v in xs], color="#c44e52", ls=":", lw=1.2, label=ref_label or None)
        if ref_label:
            ax.legend(loc="lower right", fontsize=8, frameon=False)
    ax.axhline(0, color="#ddd", lw=0.8)
    ax.axvline(0, color="#ddd", lw=0.8)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    fig.tight_layout()
    return fig


def curves(series: Sequence[tuple[str, Sequence[float | None], Sequence[Sequence[float | None] | None]]], *,
           xlabel: str, ylabel: str, onsets: Sequence[int | None] | None = None) -> Any:
    """One line per (label, values, CIs) over positions 1..n, CI bands where known, and a dotted
    vertical line at each series' onset (a 0-based position)."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for k, (label, values, cis) in enumerate(series):
        xs = [i + 1 for i, v in enumerate(values) if v is not None]
        (line,) = ax.plot(xs, [v for v in values if v is not None], marker="o", ms=3, label=label)
        band = [(i + 1, c[0], c[1]) for i, c in enumerate(cis) if c is not None and None not in c]
        if band:
            ax.fill_between([b[0] for b in band], [b[1] for b in band], [b[2] for b in band],
                            color=line.get_color(), alpha=0.15, lw=0)
        onset = onsets[k] if onsets else None
        if onset is not None:
            ax.axvline(onset + 1, color=line.get_color(), ls=":", lw=1.2)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig
