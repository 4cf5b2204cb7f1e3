"""With a sequential design the verdicts never contradict the always-valid CS (generated summaries):
no effect is called while the CS covers no effect, whatever the fixed-sample figures say."""

from __future__ import annotations

import pytest

import math
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


@st.composite
def bias_rows(draw: Any) -> list[dict[str, Any]]:
    """Numeracy rows with an RR, its CI, a Holm Fisher p, a floor and an always-valid CS anywhere."""
    rows = []
    for persona in draw(st.lists(st.sampled_from(["democrat", "republican", "atheist"]), unique=True, min_size=1)):
        rr = draw(st.floats(0.2, 5))
        cs_lo, cs_hi = around(draw, draw(st.floats(-0.9, 0.9)))
        rows.append({"model": "m", "arm": "none", "persona": persona, "answers": 40, "errors": 0, "parse_failures": 0,
                     "rr": rr, "rr_ci": [draw(st.floats(0.05, rr)), draw(st.floats(rr, 10))],
                     "p_fisher_holm": draw(st.floats(0, 1)), "rr_noise_floor": draw(st.one_of(st.none(), st.floats(1, 2))),
                     "cs_low": max(-1.0, cs_lo), "cs_high": min(1.0, cs_hi)})
    return rows


@GENERATED
@given(bias_rows())
def test_the_bias_numeracy_verdict_calls_an_effect_only_where_the_cs_excludes_zero(rows: list[dict[str, Any]]) -> None:
    from personae.bias.analysis import numeracy_verdict

    verdict = numeracy_verdict(rows, [], {"errors": 0, "requests": 10}, sequential=True)
    m = re.search(r"identity personas read the table differently when the truth fit their identity: (.*?) \(always-valid "
                  r"CS of the congruence gap", verdict)
    named = re.findall(r"(?:^|; )([\w-]+) RR ", m.group(1)) if m else []
    by = {r["persona"]: r for r in rows}
    for p in named:
        r = by[p]
        assert (r["cs_low"] > 0 and r["rr_ci"][0] > 1) or (r["cs_high"] < 0 and r["rr_ci"][1] < 1), (r, verdict)
        assert r["rr_noise_floor"] is not None and abs(math.log(r["rr"])) > math.log(r["rr_noise_floor"])
    for p, r in by.items():
        if r["cs_low"] <= 0 <= r["cs_high"]:  # the CS covers no effect: never called, whatever Fisher says
            assert p not in named
            if r["p_fisher_holm"] < 0.05 and not r["rr_ci"][0] <= 1 <= r["rr_ci"][1]:
                assert "not counted" in verdict and p in verdict
        floor_ok = r["rr_noise_floor"] is not None and abs(math.log(r["rr"])) > math.log(r["rr_noise_floor"])
        agrees = (r["cs_low"] > 0 and r["rr_ci"][0] > 1) or (r["cs_high"] < 0 and r["rr_ci"][1] < 1)
        assert (p in named) == (agrees and floor_ok)
        assert f"{p} RR {r['rr']:.2f}" not in verdict or "always-valid CS [" in verdict
    if not named:
        assert "none of the" in verdict and "read the table differently" not in verdict


@st.composite
def bias_vda_tests(draw: Any) -> list[dict[str, Any]]:
    tests = []
    for label in draw(st.lists(st.sampled_from(["democrat vs no persona", "republican vs no persona",
                                                 "democrat vs republican"]), unique=True, min_size=1)):
        diff = draw(st.floats(-0.5, 0.5))
        t = {"model": "m", "arm": "none", "comparison": label, "persona": label.split(" vs ")[0],
             "against": "none" if label.endswith("no persona") else "republican", "diff": diff,
             "ci": [diff - draw(st.floats(0, 0.3)), diff + draw(st.floats(0, 0.3))],
             "p_holm": draw(st.floats(0, 1)), "noise_floor": draw(st.one_of(st.none(), st.floats(0, 0.3)))}
        if t["against"] == "none":  # only a persona against no persona has a CS
            lo, hi = around(draw, draw(st.floats(-0.9, 0.9)))
            t.update(cs_low=lo, cs_high=hi)
        tests.append(t)
    return tests


@GENERATED
@given(bias_vda_tests())
def test_the_bias_veracity_verdict_calls_a_difference_only_where_the_cs_excludes_zero(tests: list[dict[str, Any]]
                                                                                       ) -> None:
    from personae.bias.veracity import veracity_verdict

    rows = [{"model": "m", "arm": "none", "persona": "none", "vda": 0.6, "dropped_participants": 0}]
    verdict = veracity_verdict(rows, tests, sequential=True)
    m = re.search(r"persona vs no persona comparisons differ: (.*?) \(always-valid CS of the difference", verdict)
    named = re.findall(r"(?:^|; )([\w-]+ vs [\w -]+?) \(none\)", m.group(1)) if m else []
    for t in tests:
        called = t["comparison"] in named
        if t.get("cs_low") is None:  # an identity pair: shown, never decided in a sequential design
            assert not called and "identity-pair comparisons have no always-valid CS" in verdict
            continue
        agrees = (t["cs_low"] > 0 and t["ci"][0] > 0) or (t["cs_high"] < 0 and t["ci"][1] < 0)
        beyond = t["noise_floor"] is not None and abs(t["diff"]) > t["noise_floor"]
        assert called == (agrees and beyond), (t, verdict)
        if t["cs_low"] <= 0 <= t["cs_high"]:
            assert not called
