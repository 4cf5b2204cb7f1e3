"""The consistency verdict never contradicts its table (generated tables, hypothesis)."""

from __future__ import annotations

import pytest

import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from personae.consistency.analysis import verdict_for

METRICS = {"prompt_to_line": "prompt-to-line", "line_to_line": "line-to-line", "qa": "Q&A",
           "listener": "listener posterior"}
score = st.one_of(st.none(), st.floats(0, 1))


@st.composite
def rows(draw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"model": "m", "persona": draw(st.sampled_from(["pirate", "nurse"])),
                           "dialogues": draw(st.integers(1, 5))}
    for metric in METRICS:
        value = draw(score)
        row[metric] = value
        if value is not None and draw(st.booleans()):
            lo = draw(st.floats(0, value))
            row[f"{metric}_ci"] = [lo, draw(st.floats(value, 1))]
    row["drift_tested"] = draw(st.booleans())
    row["drift_onset"] = draw(st.one_of(st.none(), st.integers(0, 30))) if row["drift_tested"] else None
    row["parroting_rate"] = draw(st.one_of(st.none(), st.floats(0, 1)))
    return row


@settings(max_examples=300, deadline=None, derandomize=True)
@given(table=st.lists(rows(), max_size=3), warn=st.booleans(), measured=st.lists(st.sampled_from(list(METRICS)),
                                                                                  unique=True))
@pytest.mark.slow  # make test runs it; the pre-stop check's 60 s does not
def test_the_verdict_says_what_the_table_holds(table: list[dict[str, Any]], warn: bool, measured: list[str]) -> None:
    stats: dict[str, Any] = {"metrics": measured, "listener_chance": 0.25,
                             "judge_validity": {"warning": "the judge cannot tell the speakers apart"} if warn else {}}
    text = verdict_for(table, stats)
    assert text.startswith("Warning: the judge cannot tell") == warn
    if not table:
        assert "No dialogue was scored." in text
        return
    for row in table:
        assert f"{row['persona']} ({row['model']}, {row['dialogues']} dialogue" in text
        for metric, label in METRICS.items():
            value = row[metric]
            if value is not None:
                assert f"{label} {value:.2f}" in text
            elif metric in measured:
                assert re.search(rf"no [^;.]*{re.escape(label)}", text), text
        if row["prompt_to_line"] is not None and row["drift_tested"]:
            assert ("drifts down from its line" in text) == (row["drift_onset"] is not None) or len(table) > 1
            if row["drift_onset"] is None and len(table) == 1:
                assert "no drift detected" in text
        if not row["drift_tested"] and len(table) == 1:
            assert "no drift detected" not in text
