"""Suite statistics by hand on a small suite, the distribution check, and the verdict (hypothesis):
the verdict is written from the rows and suite statistics and never contradicts them."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st

from personae.replicate.analysis import (NO_ESTIMATE, NOT_SIGNIFICANT, OPPOSITE, REPLICATED, distribution,
                                         suite_stats, verdict)
from personae.replicate.experiment import parse_experiment
from personae.replicate.planned import Observation


def row(i: int, *, status: str, null: bool, original_p: float, p: float | None = None, ratio: float | None = None,
        covers: bool | None = None, warning: str | None = None, errors: int = 0, fallback: bool = False,
        dropped: int = 0) -> dict[str, Any]:
    est = status != NO_ESTIMATE
    test = {"test": "logistic", "test_used": "fisher_exact", "metric": "risk_difference", "reference_metric": "log_odds"
            } if fallback else {"test": "welch_t", "test_used": "welch_t", "metric": "d", "reference_metric": "d"}
    return {"model": "m", "experiment": f"e{i}", "status": status, "success": status == REPLICATED, **test,
            "dropped": dropped,
            "p": (p if p is not None else (0.01 if status in (REPLICATED, OPPOSITE) else 0.5)) if est else None,
            "effect": 0.3 if est else None, "ci_low": 0.1 if est else None, "ci_high": 0.5 if est else None,
            "reference_effect": 0.0 if null else 0.6, "reference_is_null": null,
            "original_p": original_p, "covers_reference": covers if est else None, "ratio": ratio if est else None,
            "distribution_warning": warning, "errors": errors}


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson (1927) score interval, written out: (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)."""
    p = k / n
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


SMALL = [
    row(1, status=REPLICATED, null=False, original_p=0.001, ratio=0.5, covers=False),
    row(2, status=NOT_SIGNIFICANT, null=False, original_p=0.005, ratio=0.2, covers=True),
    row(3, status=REPLICATED, null=False, original_p=0.02, ratio=1.5, covers=True),
    row(4, status=OPPOSITE, null=True, original_p=0.04, p=0.01, covers=False),
    row(5, status=NOT_SIGNIFICANT, null=True, original_p=0.03, p=0.4, covers=True),
]


def test_suite_statistics_by_hand() -> None:
    s = suite_stats(SMALL)
    assert (s["success"]["k"], s["success"]["n"]) == (2, 3)  # e1, e3 of the three real effects
    assert (s["success"]["ci_low"], s["success"]["ci_high"]) == pytest.approx(wilson(2, 3))
    assert (s["false_positive"]["k"], s["false_positive"]["n"]) == (1, 2)  # e4 is significant (p .01)
    assert (s["marginal"]["k"], s["marginal"]["n"]) == (1, 3)  # originals with .01 <= p < .05: e3-e5; e3 replicated
    assert (s["coverage"]["k"], s["coverage"]["n"]) == (3, 5)
    assert s["inflation"]["median_ratio"] == pytest.approx(0.5)  # median of 0.5, 0.2, 1.5 (real effects only)
    y = np.array([1.0, 0, 1, 0, 0])
    x = -np.log10([0.001, 0.005, 0.02, 0.04, 0.03])
    fit = sm.Logit(y, sm.add_constant(x)).fit(disp=0)
    assert s["regression"]["slope"] == pytest.approx(fit.params[1]) and s["regression"]["p"] == pytest.approx(fit.pvalues[1])


def test_regression_refuses_too_few_or_separated() -> None:
    assert "error" in suite_stats(SMALL[:3])["regression"]
    separated = [row(i, status=REPLICATED if i < 3 else NOT_SIGNIFICANT, null=False, original_p=10.0 ** -(6 - i))
                 for i in range(6)]
    assert "separation" in suite_stats(separated)["regression"]["error"]


def _exp(kind: str, **measure: Any) -> Any:
    test = ({"kind": "chi_square", "a": "a", "b": "b", "target": "x"} if kind == "choice"
            else {"kind": "welch_t", "a": "a", "b": "b"})
    return parse_experiment({"id": "e", "title": "t", "citation": "c",
                             "conditions": [{"name": "a", "text": "A"}, {"name": "b", "text": "B"}],
                             "measure": {"kind": kind, "question": "q", **measure}, "test": test,
                             "original": {"n": 50, "effect": 0.4, "p": 0.01, "metric": "phi" if kind == "choice" else "d"}},
                            file="e.yaml")


def test_distribution_check_flags_collapse_onto_one_answer_and_toward_the_middle() -> None:
    e = _exp("likert", scale=[1, 7])
    one = distribution(e, [Observation(i, "a", 4.0 if i else 5.0) for i in range(20)])
    assert one["modal_share"] == pytest.approx(0.95) and "onto one answer" in one["warning"]
    middle = distribution(e, [Observation(i, "a", [3.0, 4.0, 5.0][i % 3]) for i in range(30)])
    # answers 3, 4, 5 of 1..7: the middle point 4 +- 0.5 holds a third; none at the ends; SD 0.83 of a max 3
    assert middle["share_extreme"] == 0 and middle["sd_ratio"] == pytest.approx(np.std([3, 4, 5] * 10, ddof=1) / 3)
    centre = distribution(e, [Observation(i, "a", 4.0 if i % 10 < 7 else 3.0) for i in range(30)])
    assert "toward the middle" in centre["warning"]
    spread = distribution(e, [Observation(i, "a", float(1 + i % 7)) for i in range(28)])
    assert spread["warning"] is None and spread["share_extreme"] == pytest.approx(2 / 7)
    choice = distribution(_exp("choice", options=["x", "y"]), [Observation(i, "a", "x") for i in range(10)])
    assert "onto one answer" in choice["warning"] and choice["sd"] is None


@pytest.mark.parametrize(("answers", "needle"), [
    ([1.0] * 13 + [2.0, 3.0, 4.0, 5.0, 6.0, 7.0] * 1 + [7.0], "pile-up at the minimum of the scale (65% answered 1)"),
    ([7.0] * 14 + [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], "pile-up at the maximum of the scale (70% answered 7)"),
    ([5.0] * 17 + [1.0, 4.0, 7.0], "pile-up onto one answer (85% gave 5)"),
    ([7.0] * 19 + [6.0], "collapse onto one answer (95% gave the same answer, 7, the maximum of the scale)"),
])
def test_distribution_check_flags_a_pile_up_at_one_end_or_on_one_answer(answers: list[float], needle: str) -> None:
    d = distribution(_exp("likert", scale=[1, 7]), [Observation(i, "a", v) for i, v in enumerate(answers)])
    assert d["warning"] == needle


def test_distribution_pile_up_thresholds_and_a_spread_distribution() -> None:
    from personae.replicate.analysis import PILE_END_SHARE, PILE_MODAL_SHARE

    e = _exp("likert", scale=[1, 7])
    just_below = [7.0] * 11 + [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 2.0, 3.0, 5.0]  # 55% at the maximum: no warning
    assert 11 / 20 < PILE_END_SHARE and distribution(e, [Observation(i, "a", v) for i, v in enumerate(just_below)])[
        "warning"] is None
    spread = distribution(e, [Observation(i, "a", float(1 + i % 7)) for i in range(70)])
    assert spread["warning"] is None and spread["share_min"] == spread["share_max"] == pytest.approx(1 / 7)
    numeric = distribution(_exp("numeric", min=0, max=100), [Observation(i, "a", 0.0 if i < 7 else 50.0 + i)
                                                             for i in range(10)])
    assert numeric["warning"] == "pile-up at the minimum of the scale (70% answered 0)"
    choice = _exp("choice", options=["x", "y"])
    eighty = distribution(choice, [Observation(i, "a", "x" if i < 8 else "y") for i in range(10)])
    assert 0.8 >= PILE_MODAL_SHARE and eighty["warning"] == "pile-up onto one answer (80% gave 'x')"
    even = distribution(choice, [Observation(i, "a", "xy"[i % 2]) for i in range(10)])
    assert even["warning"] is None and even["share_min"] is None


STATUSES = st.sampled_from([REPLICATED, OPPOSITE, NOT_SIGNIFICANT, NO_ESTIMATE])


@st.composite
def suites(draw: Any) -> list[dict[str, Any]]:
    n = draw(st.integers(1, 9))
    return [row(i, status=draw(STATUSES), null=draw(st.booleans()), original_p=draw(st.sampled_from([1e-6, 0.003, 0.02, 0.04, 0.3])),
                ratio=draw(st.one_of(st.none(), st.floats(-3, 3))), covers=draw(st.one_of(st.none(), st.booleans())),
                warning=draw(st.sampled_from([None, "collapse onto one answer",
                                              "pile-up at the maximum of the scale (70% answered 7)"])),
                errors=draw(st.integers(0, 3)), fallback=draw(st.booleans()), dropped=draw(st.sampled_from([0, 0, 2])))
            for i in range(n)]


@pytest.mark.slow  # make test runs it; the pre-stop check's 60 s does not
@settings(max_examples=200, deadline=None)
@given(suites())
def test_verdict_never_contradicts_the_rows(rows: list[dict[str, Any]]) -> None:
    s = suite_stats(rows)
    text = verdict(rows, {"m": s})
    effects = [r for r in rows if not r["reference_is_null"]]
    nulls = [r for r in rows if r["reference_is_null"]]
    if all(r["status"] == NO_ESTIMATE for r in rows):
        assert "no experiment gave an estimate" in text and "replicated (" not in text
        return
    k = sum(r["success"] for r in effects)
    if effects:
        assert f"{k} of {len(effects)} original effects replicated" in text
    else:
        assert "original effects replicated" not in text
    fp = sum(r["p"] is not None and r["p"] < 0.05 for r in nulls)
    if nulls:
        assert f"{fp} of {len(nulls)} null results came out significant" in text
    if len(rows) <= 6:  # each experiment is named with its own status
        for r in rows:
            said = re.search(rf"\b{r['experiment']} (replicated|opposite|not significant|no estimate)\b", text)
            assert said is not None and said.group(1) == r["status"]
            false_positive = f"{r['experiment']} replicated the original ("
            assert (false_positive in text) == (r["status"] == REPLICATED and r["reference_is_null"])
    collapsed = [r for r in rows if r["distribution_warning"] and "collapse" in r["distribution_warning"]]
    assert (f"Answers collapsed in {len(collapsed)} experiment" in text) == bool(collapsed)
    piled = [r for r in rows if r["distribution_warning"] and "pile-up" in r["distribution_warning"]]
    assert (f"Answers piled up at one end or on one answer in {len(piled)} experiment" in text) == bool(piled)
    fallback = [r for r in rows if r["test_used"] == "fisher_exact"]
    assert (f"The logit separated in {len(fallback)} experiment" in text) == bool(fallback)
    for r in fallback:  # a fallback row is never reported as the regression it could not fit
        if len(rows) <= 6 and r["status"] != NO_ESTIMATE:
            said_as = "replicated the original" if r["status"] == REPLICATED and r["reference_is_null"] else r["status"]
            assert f"{r['experiment']} {said_as} (by fisher_exact instead of logistic: risk_difference" in text
    dropped = sum(r["dropped"] for r in rows)
    assert (f"{dropped} participants missing an answer" in text) == bool(dropped)
    lost = sum(r["errors"] for r in rows)
    assert (f"{lost} failed requests are counted" in text) == bool(lost)


def test_status_follows_the_sign_and_for_anova_the_order() -> None:
    from personae.replicate.analysis import status_of
    from personae.replicate.planned import TestResult

    signed = _exp("likert", scale=[1, 7])  # original effect +0.4
    assert status_of(signed, TestResult("welch_t", "d", 0.5, 0.1, 0.9, 3.0, 0.01, 50), {}) == REPLICATED
    assert status_of(signed, TestResult("welch_t", "d", -0.5, -0.9, -0.1, -3.0, 0.01, 50), {}) == OPPOSITE
    assert status_of(signed, TestResult("welch_t", "d", 0.5, -0.1, 0.9, 1.0, 0.2, 50), {}) == NOT_SIGNIFICANT
    assert status_of(signed, TestResult("welch_t", "d", math.nan, math.nan, math.nan, math.nan, math.nan, 0), {}) == NO_ESTIMATE
    anova = parse_experiment({"id": "a", "title": "t", "citation": "c",
                              "conditions": [{"name": n, "text": n} for n in ("hi", "mid", "lo")],
                              "measure": {"kind": "likert", "question": "q", "scale": [1, 7]},
                              "test": {"kind": "anova", "order": ["hi", "mid", "lo"]},
                              "original": {"n": 90, "effect": 0.1, "p": 0.01, "metric": "eta2"}}, file="a.yaml")
    sig = TestResult("anova", "eta2", 0.2, 0.1, 0.3, 8.0, 0.001, 90)
    assert status_of(anova, sig, {"hi": 5.0, "mid": 4.0, "lo": 3.0}) == REPLICATED
    assert status_of(anova, sig, {"hi": 3.0, "mid": 4.0, "lo": 5.0}) == OPPOSITE
