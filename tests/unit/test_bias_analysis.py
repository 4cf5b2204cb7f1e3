"""The bias statistics against scipy/statsmodels and worked examples; the false-positive rate under the null."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats as sps

from personae.bias.analysis import (Answer, congruence_effect, congruence_stats, did_logit, gap_change,
                                    numeracy_table, proportion_change)


def answers(counts: dict[tuple[str, bool], tuple[int, int]], persona: str = "democrat", arm: str = "none",
            seed_participants: int = 1) -> list[Answer]:
    """Answer records with (frame, congruent) -> (correct, wrong) counts."""
    out = []
    for (frame, cong), (k, w) in counts.items():
        for j in range(k + w):
            out.append(Answer(model="m", arm=arm, template="you-are", persona=persona, participant=j % seed_participants,
                              item=f"{frame}.{cong}.{j}", vignette="v", axis="politics", frame=frame, congruent=cong,
                              correct=j < k))
    return out


COUNTS = {("identity", True): (45, 15), ("identity", False): (24, 36), ("neutral", True): (40, 20),
          ("neutral", False): (38, 22)}


def test_rr_and_fisher_equal_scipy_on_the_same_table() -> None:
    s = congruence_stats([a for a in answers(COUNTS) if a.frame == "identity"])
    assert s["acc_congruent"] == 0.75 and s["acc_incongruent"] == 0.4
    assert s["rr"] == pytest.approx(0.75 / 0.4)
    # Katz log-method CI by hand: se = sqrt(1/45 - 1/60 + 1/24 - 1/60)
    se = math.sqrt(1 / 45 - 1 / 60 + 1 / 24 - 1 / 60)
    assert s["rr_ci"] == pytest.approx([math.exp(math.log(0.75 / 0.4) - 1.959964 * se),
                                        math.exp(math.log(0.75 / 0.4) + 1.959964 * se)], rel=1e-5)
    ref = sps.fisher_exact([[45, 15], [24, 36]])
    assert s["p_fisher"] == pytest.approx(ref.pvalue)
    cond = sps.contingency.odds_ratio([[45, 15], [24, 36]], kind="conditional")
    assert s["odds_ratio"] == pytest.approx(cond.statistic)


def test_did_is_the_interaction_of_a_statsmodels_logit_and_the_log_odds_ratio_difference() -> None:
    did = did_logit(answers(COUNTS))
    assert did is not None
    # saturated model: the interaction is log OR(identity) - log OR(neutral), Wald se = sqrt(sum 1/cell)
    expected = math.log(45 * 36 / (15 * 24)) - math.log(40 * 22 / (20 * 38))
    se = math.sqrt(sum(1 / x for pair in COUNTS.values() for x in pair))
    assert did["estimate"] == pytest.approx(expected, rel=1e-6)
    assert did["se"] == pytest.approx(se, rel=1e-6)
    assert did["p"] == pytest.approx(2 * sps.norm.sf(expected / se), rel=1e-4)
    # the same fit through statsmodels' array interface
    rows = answers(COUNTS)
    c = np.array([int(a.congruent) for a in rows])
    i = np.array([int(a.frame == "identity") for a in rows])
    y = np.array([int(a.correct) for a in rows])
    fit = sm.GLM(y, np.column_stack([np.ones_like(c), c, i, c * i]), family=sm.families.Binomial()).fit()
    assert did["estimate"] == pytest.approx(fit.params[3], rel=1e-6)
    # a cell where every answer is correct separates: no estimate rather than an infinite one
    assert did_logit(answers({**COUNTS, ("neutral", False): (60, 0)})) is None


def test_gap_change_worked_example_and_the_wald_difference_of_statsmodels() -> None:
    # gap none = 45/60 - 24/60 = 0.35; gap arm = 40/60 - 30/60 = 0.1667; change = -0.1833
    g = gap_change((45, 60, 24, 60), (40, 60, 30, 60))
    assert g["change"] == pytest.approx(-0.18333, abs=1e-4)
    se = math.sqrt(0.75 * 0.25 / 60 + 0.4 * 0.6 / 60 + (2 / 3) * (1 / 3) / 60 + 0.5 * 0.5 / 60)
    assert g["ci"] == pytest.approx([-0.18333 - 1.959964 * se, -0.18333 + 1.959964 * se], abs=1e-4)
    p = proportion_change(30, 60, 45, 60)
    se2 = math.sqrt(0.5 * 0.5 / 60 + 0.75 * 0.25 / 60)
    assert p["change"] == pytest.approx(-0.25) and p["ci"] == pytest.approx([-0.25 - 1.959964 * se2,
                                                                           -0.25 + 1.959964 * se2], abs=1e-6)


def test_holm_runs_over_personas_and_arms() -> None:
    rows = answers(COUNTS) + answers(COUNTS, persona="republican") + answers(COUNTS, arm="step-by-step")
    table = numeracy_table(rows)
    assert len(table) == 3
    raw = sorted(r["p_fisher"] for r in table)
    adjusted = sorted(r["p_fisher_holm"] for r in table)
    assert adjusted[0] == pytest.approx(min(1.0, 3 * raw[0]))


@pytest.mark.slow  # a simulation of hundreds of studies: runs in make test, not in test-fast
def test_the_false_positive_rate_under_no_effect_is_at_most_five_percent() -> None:
    """>= 200 null simulations: congruent and incongruent answers correct with the same probability."""
    rng = np.random.default_rng(20260602)
    positives, covered, sims = 0, 0, 400
    for _ in range(sims):
        k1, k2 = rng.binomial(60, 0.6), rng.binomial(60, 0.6)
        row: dict[str, Any] = congruence_stats(answers({("identity", True): (k1, 60 - k1),
                                                        ("identity", False): (k2, 60 - k2)}))
        row["p_fisher_holm"] = row["p_fisher"]  # one comparison
        positives += congruence_effect(row)
        covered += row["rr_ci"][0] <= 1 <= row["rr_ci"][1]
    assert positives / sims <= 0.05
    assert covered / sims >= 0.93


@pytest.mark.slow  # a simulation of hundreds of studies: runs in make test, not in test-fast
def test_a_planted_rr_is_covered_by_its_ci_at_the_nominal_rate() -> None:
    rng = np.random.default_rng(11)
    hits = 0
    for _ in range(200):
        k1, k2 = rng.binomial(120, 0.9), rng.binomial(120, 0.45)
        s = congruence_stats(answers({("identity", True): (k1, 120 - k1), ("identity", False): (k2, 120 - k2)}))
        hits += s["rr_ci"][0] <= 2.0 <= s["rr_ci"][1]
    assert hits / 200 >= 0.9
