"""With a sequential design the verdicts never contradict the always-valid CS (generated summaries):
no effect is called while the CS covers no effect, whatever the fixed-sample figures say."""

from __future__ import annotations

import pytest

import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from personae.studies.accuracy import _verdict as accuracy_verdict
from personae.studies.variance import _verdict as variance_verdict

GENERATED = settings(max_examples=300, deadline=None, derandomize=True)


@st.composite
def sequential_block(draw: Any, labels: list[str]) -> dict[str, Any]:
    items_max = draw(st.integers(2, 200))
    released = draw(st.integers(1, items_max))
    fixed = items_max * 6
    calls = released * 6
    final = {}
    for label in labels:
        lo = draw(st.floats(0.0, 1.0))
        final[label] = {"cs_low": lo, "cs_high": draw(st.floats(lo, 1.0)), "n": released}
    return {"looks": draw(st.integers(1, 10)), "items_released": released, "items_max": items_max,
            "stopped_because": draw(st.sampled_from(["decision", "ci_width", "max_items", "not finished"])),
            "ci_width": 0.1, "calls": calls, "calls_fixed_design": fixed, "calls_saved": 1 - calls / fixed,
            "final": final}


def around(draw: Any, center: float) -> tuple[float, float]:
    return center - draw(st.floats(0, 0.8)), center + draw(st.floats(0, 0.8))


@st.composite
def accuracy_summary(draw: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    conds = draw(st.lists(st.sampled_from(["layperson", "toddler", "pirate", "child"]), unique=True, min_size=1))
    table: list[dict[str, Any]] = [{"model": "m", "condition": "baseline", "accuracy": 0.7, "ci_low": 0.6,
                                    "ci_high": 0.8, "parse_failure_rate": 0.0}]
    for c in conds:
        diff = draw(st.floats(-0.9, 0.9))
        lo, hi = around(draw, diff)
        cs_lo, cs_hi = around(draw, draw(st.floats(-0.9, 0.9)))  # anywhere: the CS need not hold the diff
        table.append({"model": "m", "condition": c, "accuracy": 0.5, "parse_failure_rate": 0.0, "diff": diff,
                      "diff_ci_low": lo, "diff_ci_high": hi, "cs_low": cs_lo, "cs_high": cs_hi,
                      "p_wilcoxon_holm": draw(st.floats(0, 1)), "status": "ok",
                      "run_to_run_sd": draw(st.one_of(st.none(), st.floats(0, 0.3)))})
    return table, draw(sequential_block([f"m: {c}" for c in conds]))


@pytest.mark.slow  # make test runs it; the pre-stop check's 60 s does not
@GENERATED
@given(accuracy_summary())
def test_the_accuracy_verdict_calls_an_effect_only_where_the_cs_excludes_zero(summary: Any) -> None:
    table, seq = summary
    verdict = accuracy_verdict(table, 0.25, None, seq)
    assert verdict.startswith(f"Sequential design: stopped after {seq['looks']} look")
    rows = {r["condition"]: r for r in table}
    m = re.search(r"Accuracy changed for (\d+) of (\d+) compared conditions, the always-valid CS of the difference "
                  r"away from 0: (.*?); the others did not\.", verdict)
    named = re.findall(r"(\w+) [+-]\d+\.\d points \(always-valid CS", m.group(3)) if m else []
    if m:
        assert int(m.group(1)) == len(named) >= 1
    for c in named:
        r = rows[c]
        assert (r["cs_low"] > 0 and r["diff"] > 0) or (r["cs_high"] < 0 and r["diff"] < 0), (c, r, verdict)
        assert r["diff_ci_low"] > 0 or r["diff_ci_high"] < 0
        assert not (r["run_to_run_sd"] and abs(r["diff"]) <= r["run_to_run_sd"])
    covering = [c for c, r in rows.items() if c != "baseline" and r["cs_low"] <= 0 <= r["cs_high"]]
    assert not set(covering) & set(named)
    if not m:
        assert "None of the" in verdict or "Accuracy changed" not in verdict


@st.composite
def variance_summary(draw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    tested = draw(st.integers(1, 40))
    sig = draw(st.integers(0, tested))
    pooled = {"m": {"items_tested": tested, "share_items_significant": sig / tested,
                    "items_significant_holm": draw(st.integers(0, sig)),
                    "more_items_than_chance": {"p_value": draw(st.floats(0, 1))},
                    "share_persona": draw(st.one_of(st.none(), st.builds(lambda e: {"estimate": e}, st.floats(0, 1))))}}
    return pooled, draw(sequential_block(["m: dispersion"]))


@GENERATED
@given(variance_summary())
def test_the_variance_verdict_calls_persona_differences_only_where_the_cs_lies_above_chance(summary: Any) -> None:
    pooled, seq = summary
    verdict = variance_verdict(pooled, {}, seq)
    cs = seq["final"]["m: dispersion"]
    larger = "persona differences are larger than run-to-run noise" in verdict
    assert larger == (cs["cs_low"] > 0.05 and pooled["m"]["more_items_than_chance"]["p_value"] < 0.05)
    assert f"[{cs['cs_low']:.2f}, {cs['cs_high']:.2f}]" in verdict
    assert verdict.startswith("Sequential design: stopped after")
