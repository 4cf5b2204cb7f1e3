"""The bias verdict never contradicts its table (generated tables and debias rows, hypothesis)."""

from __future__ import annotations

import pytest

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

import math

from personae.bias.analysis import (beyond_control, congruence_effect, lowers_baseline, numeracy_verdict, shrinks_gap,
                                    significant)

PERSONAS = ["democrat", "republican", "atheist"]
ARMS = ["none", "step-by-step"]


@st.composite
def row(draw: Any, arm: str, persona: str) -> dict[str, Any]:
    r: dict[str, Any] = {"model": "m", "arm": arm, "persona": persona, "answers": draw(st.integers(1, 50)),
                         "errors": 0, "parse_failures": 0}
    r["parse_failures"] = draw(st.integers(0, r["answers"]))
    if draw(st.booleans()):
        rr = draw(st.floats(0.2, 5))
        r["rr"] = rr
        r["rr_ci"] = [draw(st.floats(0.05, rr)), draw(st.floats(rr, 10))]
        r["p_fisher_holm"] = draw(st.floats(0, 1))
        r["rr_noise_floor"] = draw(st.one_of(st.none(), st.floats(1, 4)))
        if draw(st.booleans()):
            est = draw(st.floats(-3, 3))
            r["did"] = {"estimate": est, "ci": [est - draw(st.floats(0, 2)), est + draw(st.floats(0, 2))]}
            r["p_did_holm"] = draw(st.floats(0, 1))
    return r


@st.composite
def debias(draw: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"model": "m", "arm": "step-by-step", "gap": None, "baseline": None}
    if draw(st.booleans()):
        g0, g1 = draw(st.floats(-1, 1)), draw(st.floats(-1, 1))
        w = draw(st.floats(0, 1))
        d["gap"] = {"gap_none": g0, "gap_arm": g1, "change": g1 - g0, "ci": [g1 - g0 - w, g1 - g0 + w]}
    if draw(st.booleans()):
        b0, b1 = draw(st.floats(0, 1)), draw(st.floats(0, 1))
        w = draw(st.floats(0, 1))
        d["baseline"] = {"base": b0, "arm": b1, "change": b1 - b0, "ci": [b1 - b0 - w, b1 - b0 + w]}
    return d


@st.composite
def tables(draw: Any) -> list[dict[str, Any]]:
    return [draw(row(arm, p)) for arm in ARMS for p in PERSONAS if draw(st.booleans())]


@pytest.mark.slow  # make test runs it; the pre-stop check's 60 s does not
@settings(max_examples=300, deadline=None, derandomize=True)
@given(table=tables(), deb=st.lists(debias(), max_size=1), errors=st.integers(0, 3))
def test_the_verdict_says_what_the_table_holds(table: list[dict[str, Any]], deb: list[dict[str, Any]],
                                                errors: int) -> None:
    text = numeracy_verdict(table, deb, {"errors": errors, "requests": 10})
    assert text.startswith(f"{errors} of 10 requests failed") == bool(errors)
    if not table:
        assert "No answer was recorded." in text
        return
    tested = [r for r in table if r.get("rr") is not None]
    if not tested:
        assert "No persona could be compared" in text
    for arm in ARMS:
        rows = [r for r in tested if r["arm"] == arm]
        if not rows:
            continue
        label = "no debiasing" if arm == "none" else f"arm {arm}"
        hits = [r for r in rows if congruence_effect(r)]
        if hits:
            assert f"With {label}, {len(hits)} of {len(rows)} identity personas read the table differently" in text
            for r in hits:
                said = f"{r['persona']} RR {r['rr']:.2f}"
                assert said in text
                tail = " (beyond the neutral control)" if beyond_control(r) else " (not beyond the neutral control)"
                assert said + f" [{r['rr_ci'][0]:.2f}, {r['rr_ci'][1]:.2f}], {_floor(r)}" + tail in text
        else:
            assert f"With {label}, none of the {len(rows)} identity personas shows" in text
    for d in deb:
        if d["gap"] is None:
            assert "no congruence gap to compare" in text
            continue
        assert (f"Arm {d['arm']} shrinks the congruence gap" in text) == shrinks_gap(d)
        assert (f"Arm {d['arm']} does not shrink the congruence gap" in text) == (not shrinks_gap(d))
        if d["baseline"] is not None:
            assert ("and lowers baseline accuracy" in text) == lowers_baseline(d)


def _floor(r: dict[str, Any]) -> str:
    f = r.get("rr_noise_floor")
    return "noise floor unknown" if f is None else f"noise floor x{f:.2f}"


def _arm_sentences(text: str, label: str) -> str:
    return " ".join(s for s in text.split("With ") if s.startswith(f"{label}, "))


@pytest.mark.slow  # make test runs it; the pre-stop check's 60 s does not
@settings(max_examples=300, deadline=None, derandomize=True)
@given(table=tables(), deb=st.lists(debias(), max_size=1))
def test_the_verdict_never_calls_an_effect_within_the_floor_or_with_a_ci_covering_one(
        table: list[dict[str, Any]], deb: list[dict[str, Any]]) -> None:
    text = numeracy_verdict(table, deb, {"errors": 0, "requests": 10})
    for r in (r for r in table if r.get("rr") is not None):
        said = _arm_sentences(text, "no debiasing" if r["arm"] == "none" else f"arm {r['arm']}")
        phrase = f"{r['persona']} RR {r['rr']:.2f} [{r['rr_ci'][0]:.2f}, {r['rr_ci'][1]:.2f}], {_floor(r)}"
        called = phrase + " (beyond the neutral control)" in said or phrase + " (not beyond the neutral control)" in said
        covers = r["rr_ci"][0] <= 1 <= r["rr_ci"][1]
        floor = r["rr_noise_floor"]
        within = floor is None or abs(math.log(r["rr"])) <= math.log(floor)
        if covers or within or r["p_fisher_holm"] >= 0.05:
            assert not called
        else:
            assert called
        if significant(r) and within:  # passes the CI and Holm, not the floor: said so
            assert phrase in said and "not distinguishable from noise" in said


@st.composite
def vda_tests(draw: Any) -> dict[str, Any]:
    diff = draw(st.floats(-0.5, 0.5))
    return {"model": "m", "arm": "none", "comparison": draw(st.sampled_from(["democrat vs no persona",
                                                                              "democrat vs republican",
                                                                              "republican vs no persona"])),
            "diff": diff, "ci": [diff - draw(st.floats(0, 0.3)), diff + draw(st.floats(0, 0.3))],
            "p_holm": draw(st.one_of(st.none(), st.floats(0, 1))),
            "noise_floor": draw(st.one_of(st.none(), st.floats(0, 0.3)))}


@settings(max_examples=200, deadline=None, derandomize=True)
@given(tests=st.lists(vda_tests(), max_size=3), base=st.one_of(st.none(), st.floats(0, 1)),
       dropped=st.integers(0, 2))
@pytest.mark.slow  # make test runs it; the pre-stop check's 60 s does not
def test_the_veracity_verdict_says_what_its_tests_hold(tests: list[dict[str, Any]], base: float | None,
                                                       dropped: int) -> None:
    from personae.bias.veracity import vda_differs, veracity_verdict  # noqa: PLC0415

    rows = [{"model": "m", "arm": "none", "persona": "none", "vda": base, "dropped_participants": dropped}]
    text = veracity_verdict(rows, tests)
    assert ("no-persona VDA" in text) == (base is not None)
    if base is not None:
        assert f"no-persona VDA {base:.3f}" in text
    hits = [t for t in tests if vda_differs(t)]
    if not tests:
        assert "no comparison could be made" in text
    elif hits:
        assert f"{len(hits)} of {len(tests)} comparisons differ" in text
        for t in hits:
            assert f"{t['comparison']} ({t['arm']}) {t['diff']:+.3f}" in text
    else:
        assert f"none of the {len(tests)} comparisons" in text
    assert ("participants with a failed or unparseable rating were left out" in text) == bool(dropped)


@pytest.mark.slow  # make test runs it; the pre-stop check's 60 s does not
@settings(max_examples=300, deadline=None, derandomize=True)
@given(tests=st.lists(vda_tests(), max_size=3, unique_by=lambda t: t["comparison"]))
def test_the_veracity_verdict_never_calls_a_difference_within_the_floor_or_with_a_ci_covering_zero(
        tests: list[dict[str, Any]]) -> None:
    from personae.bias.veracity import veracity_verdict  # noqa: PLC0415

    text = veracity_verdict([{"model": "m", "arm": "none", "persona": "none", "vda": 0.6, "dropped_participants": 0}],
                            tests)
    listed = text.split("comparisons differ: ")[1].split(" (Holm-adjusted")[0] if "comparisons differ: " in text else ""
    for t in tests:
        floor = t["noise_floor"]
        covers = t["ci"][0] <= 0 <= t["ci"][1]
        within = floor is None or abs(t["diff"]) <= floor
        called = f"{t['comparison']} ({t['arm']}) {t['diff']:+.3f}" in listed
        assert called == (not covers and not within and t["p_holm"] is not None and t["p_holm"] < 0.05)
        if not covers and within and t["p_holm"] is not None and t["p_holm"] < 0.05:
            assert f"{t['comparison']} ({t['arm']}) {t['diff']:+.3f}" in text and "not distinguishable from noise" in text
