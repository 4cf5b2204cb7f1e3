"""report.html: everything a model wrote is escaped, and the summary table is there."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from personae.api import run_study
from personae.backends.base import Request
from personae.backends.fake import FakeBackend, hash_reply
from personae.report import render_report
from personae.report.tables import column_names, display_rows, merge_intervals
from personae.spec import load_spec

from .helpers import grid_spec, read_json, write_spec

PAYLOAD = "<script>alert(1)</script>"


class Tables(HTMLParser):
    """Collects every <table> as rows of cell texts, and every tag seen."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.tags: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def hostile(request: Request) -> str:
    return f"{PAYLOAD} {hash_reply(request)}"


def test_model_output_is_escaped_and_summary_table_is_present(tmp_path: Path) -> None:
    data = grid_spec([{"id": "q1", "text": "Say <b>hi</b>"}, "What is 2+2?"], replicates=2)
    resolved = load_spec(write_spec(tmp_path, data))
    out = tmp_path / "run"
    outcome = run_study(resolved, out, backends={"fake/test": FakeBackend(responder=hostile)})
    html = (out / "report.html").read_text(encoding="utf-8")

    assert "<script" not in html.lower()
    assert "<b>hi</b>" not in html
    assert html.count("&lt;script&gt;alert(1)&lt;/script&gt;") == len(outcome.results)

    parser = Tables()
    parser.feed(html)
    assert "script" not in parser.tags
    summary = read_json(out / "summary.json")
    # the first table is what people read: one model, so no model column; one CI column; 3 decimals
    shown = display_rows(summary["table"], None)
    table = parser.tables[0]
    header, rows = table[0], table[1:]
    assert header == column_names(shown) and "model" not in header and "95% CI" in header
    assert len(rows) == len(summary["table"]) == 2  # baseline + pirate-captain
    for cells, raw in zip(rows, summary["table"]):
        by_name = dict(zip(header, cells))
        assert by_name["condition"] == raw["condition"]
        assert float(by_name["mean_words"]) == pytest.approx(raw["mean_words"], abs=5e-4)
        assert by_name["95% CI"] == f"[{raw['ci_low']:.3f}, {raw['ci_high']:.3f}]"
    # every column of summary.json is in the full table (model included), CIs merged
    full_header = parser.tables[1][0]
    assert set(full_header) == set(column_names([merge_intervals(r) for r in summary["table"]]))
    assert summary["verdict"] in html
    assert "<img src=\"data:image/png;base64," in html  # the figure is embedded


def test_render_report_escapes_every_field() -> None:
    row = {"condition": PAYLOAD, "item": PAYLOAD, "replicate": 0, "wave": 0, "error": PAYLOAD,
           "messages": [{"role": "user", "content": PAYLOAD}], "prompt": PAYLOAD, "continuation": None,
           "response": None, "score": None}
    html = render_report(
        title=PAYLOAD,
        summary={"study": "grid", "verdict": PAYLOAD, "notes": [PAYLOAD],
                 "table": [{"condition": PAYLOAD, "n": 1}], "stats": {"x": PAYLOAD}},
        run={"models": [PAYLOAD], "version": "0", "counts": {"requests": 1, "backend_calls": 1, "cache_hits": 0,
                                                            "errors": 1}},
        rows=[row],
    )
    assert "<script" not in html.lower()
    assert html.count("&lt;script&gt;") >= 8
