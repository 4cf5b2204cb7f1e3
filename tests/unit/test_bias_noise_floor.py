"""The bias study's noise floor (split-half, personae.stats.split_half_floor) by hand on small data."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from personae.bias.analysis import Answer, numeracy_table, rr_noise_floor
from personae.bias.veracity import vda_noise_floor
from personae.stats import beyond_floor, split_half_floor


def mean_of_first(halves: list[list[float]]) -> float:
    return sum(halves[0]) / len(halves[0])


def test_the_floor_of_a_mean_over_every_split_by_hand() -> None:
    # [0, 0, 1, 1]: C(4, 2) = 6 splits; {0,0}|{1,1} gives -1, {1,1}|{0,0} gives +1, the 4 mixed give 0:
    # SD = sqrt((1 + 1) / 6) = sqrt(1/3)
    res = split_half_floor([[0.0, 0.0, 1.0, 1.0]], mean_of_first, seed=1)
    assert res.estimate == pytest.approx(math.sqrt(1 / 3))
    assert res.n == 6 and "all 6 splits" in res.method


def test_the_floor_of_a_difference_splits_each_group_on_its_own() -> None:
    # a = [0, 1], b = [1, 1]: 2 x 2 = 4 splits; (mean a1 - mean b1) - (mean a2 - mean b2) = a1 - a2 = +-1: SD 1
    res = split_half_floor([[0.0, 1.0], [1.0, 1.0]], lambda h: h[0][0] - h[1][0], seed=1)
    assert res.estimate == pytest.approx(1.0) and res.n == 4
    assert vda_noise_floor([0.0, 1.0], [1.0, 1.0], seed=1) == pytest.approx(1.0)


def test_odd_groups_give_the_first_half_the_smaller_share_and_too_small_groups_no_floor() -> None:
    # [0, 1, 2]: first halves {0}, {1}, {2}; second halves {1,2}, {0,2}, {0,1}: d = -1.5, 0, +1.5
    res = split_half_floor([[0.0, 1.0, 2.0]], lambda h: float(np.mean(h[0])), seed=1)
    assert res.estimate == pytest.approx(math.sqrt(2 * 1.5**2 / 3)) and res.n == 3
    assert math.isnan(split_half_floor([[1.0]], mean_of_first, seed=1).estimate)
    assert vda_noise_floor([1.0], [0.0, 1.0], seed=1) is None


def test_many_splits_are_seeded_draws() -> None:
    values = [float(i % 3) for i in range(30)]
    a = split_half_floor([values], mean_of_first, seed=5, n_splits=300)
    b = split_half_floor([values], mean_of_first, seed=5, n_splits=300)
    assert a.estimate == b.estimate and a.n == 300 and "300 seeded random splits" in a.method
    # a mean of 15 of 30 finite-population draws: SD(d) = 2 sd sqrt(1/15 - 1/30) * sqrt(30 / 29) ... about
    # 2 * sqrt(var / 15 * 15 / 29): var = 2/3, so sqrt(4 * (2/3) / 29) = 0.303
    assert a.estimate == pytest.approx(math.sqrt(4 * (2 / 3) / 29), rel=0.1)


def answer(participant: int, congruent: bool, correct: bool) -> Answer:
    return Answer(model="m", arm="none", template="you-are", persona="democrat", participant=participant,
                  item=f"i{int(congruent)}{participant}", vignette="v", axis="party", frame="identity",
                  congruent=congruent, correct=correct)


def log_rr(table: list[list[float]]) -> float:
    """log RR by hand, with risk_ratio's rule: 0.5 added to every cell when one is 0 (Haldane-Anscombe)."""
    if any(c == 0 for row in table for c in row):
        table = [[c + 0.5 for c in row] for row in table]
    (a, b), (c, d) = table
    return math.log((a / (a + b)) / (c / (c + d)))


def test_the_rr_floor_by_hand() -> None:
    # 4 participants, 2 congruent and 2 incongruent items each: correct counts (congruent, incongruent)
    counts = {0: (2, 1), 1: (2, 0), 2: (1, 1), 3: (2, 2)}
    rows = [answer(p, cong, k < (kc if cong else ki)) for p, (kc, ki) in counts.items() for cong in (True, False)
            for k in range(2)]
    diffs = []
    for first in itertools.combinations(range(4), 2):
        halves = [[p for p in range(4) if (p in first) == side] for side in (True, False)]
        tables = [[[sum(counts[p][0] for p in h), sum(2 - counts[p][0] for p in h)],
                   [sum(counts[p][1] for p in h), sum(2 - counts[p][1] for p in h)]] for h in halves]
        diffs.append(log_rr(tables[0]) - log_rr(tables[1]))
    expected = math.exp(float(np.std(diffs)))
    got = rr_noise_floor(rows, seed=3)
    assert got["rr_noise_floor"] == pytest.approx(expected)
    assert got["rr_noise_floor"] == pytest.approx(2.2432, abs=1e-4)  # the same number, written down
    assert "all 6 splits" in got["rr_noise_floor_method"]
    row = numeracy_table(rows)[0]
    assert row["rr_noise_floor"] == pytest.approx(expected)
    # RR = (7/8) / (4/8) = 1.75 < 2.24: inside the floor (four participants make a wide floor)
    assert row["rr"] == pytest.approx(1.75) and row["within_noise_floor"] is True


def test_beyond_floor_needs_the_ci_and_the_floor() -> None:
    assert beyond_floor(0.3, [0.1, 0.5], 0.2)
    assert not beyond_floor(0.3, [-0.1, 0.5], 0.2)  # CI covers 0
    assert not beyond_floor(0.3, [0.1, 0.5], 0.3)  # not larger than the floor
    assert not beyond_floor(0.3, [0.1, 0.5], None) and not beyond_floor(0.3, [0.1, 0.5], float("nan"))
    assert beyond_floor(1.5, [1.2, 1.9], 0.2, null=1.0) and not beyond_floor(1.1, [1.05, 1.2], 0.2, null=1.0)
