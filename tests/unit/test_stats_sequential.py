"""The always-valid confidence sequence (Waudby-Smith & Ramdas 2024) and the stopping rule.

References: (1) the paper's own definitions, written out below as a plain scalar loop (Theorem 3,
the hedged capital process, with the predictable plug-in bets of eq. (26)); (2) a Monte-Carlo
check with a fixed seed of the property that defines a confidence sequence: it covers the mean
at every time at once with probability >= 1 - alpha, where a fixed-sample t CI looked at after
every batch does not (repeated significance testing, Armitage, McPherson & Rowe 1969, J. R.
Stat. Soc. A 132: 235-244, about 0.19-0.25 for 10-20 looks at a nominal 0.05).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from personae.stats.sequential import ConfidenceSequence, betting_cs, betting_cs_at, stop_decision


def capital_by_hand(y: list[float], m: float, alpha: float, c: float = 0.5, theta: float = 0.5) -> float:
    """max over t of the hedged capital K_t(m) for observations y in [0, 1], one step at a time."""
    k_up = k_down = 1.0
    best = 0.0
    total = 0.0
    sq = 0.0
    mu_prev, s2_prev = 0.5, 0.25
    for t, yt in enumerate(y, start=1):
        lam = math.sqrt(2 * math.log(2 / alpha) / (s2_prev * t * math.log(1 + t)))
        up = lam if m == 0 else min(lam, c / m)
        down = lam if m == 1 else min(lam, c / (1 - m))
        k_up *= 1 + up * (yt - m)
        k_down *= 1 - down * (yt - m)
        best = max(best, theta * k_up + (1 - theta) * k_down)
        total += yt
        sq += (yt - mu_prev) ** 2
        mu_prev = (0.5 + total) / (t + 1)
        s2_prev = (0.25 + sq) / (t + 1)
    return best


def test_the_interval_is_the_set_the_papers_capital_process_does_not_reject() -> None:
    rng = np.random.default_rng(7)
    x = np.clip(rng.normal(0.3, 0.4, 40), -1, 1)
    y = list((x + 1) / 2)
    cs = betting_cs(x, alpha=0.05, grid=401)
    step = 2 / 400
    for m_x in np.linspace(-1, 1, 401):
        rejected = capital_by_hand(y, (m_x + 1) / 2, 0.05) >= 1 / 0.05
        if rejected:  # a rejected mean lies outside the open interval one grid step inside the reported one
            assert not (cs.cs_low + step < m_x < cs.cs_high - step), m_x
        else:
            assert cs.cs_low <= m_x <= cs.cs_high, m_x
    assert cs.cs_low > -1 and cs.cs_high < 1 and cs.cs_low < 0.3 < cs.cs_high
    assert cs.n == 40 and cs.estimate == pytest.approx(float(np.mean(x)))


@pytest.mark.slow  # make test runs it; the pre-stop check's 60 s does not
def test_it_covers_the_mean_at_every_look_at_once_where_repeated_t_intervals_do_not() -> None:
    """Monte Carlo, fixed seed: 400 sequences of 200 paired accuracy differences, a look every 10."""
    rng = np.random.default_rng(20240101)
    reps, n, every, alpha = 400, 200, 10, 0.05
    looks = list(range(every, n + 1, every))
    cs_miss = t_miss = 0
    for _ in range(reps):
        p = rng.uniform(0.3, 0.9, n)
        x = rng.binomial(5, p) / 5 - rng.binomial(5, p) / 5  # true mean difference 0
        seqs = betting_cs_at(x, looks, alpha=alpha, bounds=(-1, 1), grid=401)
        cs_miss += any(s.excludes(0.0) for s in seqs)
        t_miss += any(sps.ttest_1samp(x[:k], 0.0).pvalue < alpha for k in looks)
    assert cs_miss / reps <= alpha
    assert t_miss / reps > 2 * alpha  # what the CS protects against: about 0.2 with 20 looks


def test_it_only_narrows_and_closes_in_on_the_mean() -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(0.0, 1.0, 2000)
    seqs = betting_cs_at(x, [10, 100, 1000, 2000], bounds=(0, 1))
    widths = [s.width for s in seqs]
    assert widths == sorted(widths, reverse=True)
    assert all(s.cs_low <= 0.5 <= s.cs_high for s in seqs)
    assert widths[-1] < 0.1
    before = betting_cs_at(x, [0], bounds=(0, 1))[0]  # no observation yet: the bounds themselves
    assert (before.cs_low, before.cs_high, before.n) == (0.0, 1.0, 0) and math.isnan(before.estimate)


def test_a_large_effect_is_excluded_from_zero_on_its_side() -> None:
    rng = np.random.default_rng(11)
    x = np.clip(rng.normal(-0.4, 0.3, 60), -1, 1)
    cs = betting_cs(x)
    assert cs.cs_high < 0 and cs.excludes(0.0)


def test_bad_arguments_are_errors() -> None:
    with pytest.raises(ValueError, match="within"):
        betting_cs([0.5, 1.5], bounds=(-1, 1))
    with pytest.raises(ValueError, match="alpha"):
        betting_cs([0.1], alpha=1.5)
    with pytest.raises(ValueError, match="looks"):
        betting_cs_at([0.1, 0.2], [3])


def test_the_stopping_rule() -> None:
    away = ConfidenceSequence(-0.3, -0.5, -0.1, 40, 0.05, -1, 1)
    across = ConfidenceSequence(0.02, -0.2, 0.25, 40, 0.05, -1, 1)
    narrow = ConfidenceSequence(0.0, -0.04, 0.05, 400, 0.05, -1, 1)
    assert stop_decision([away], [0.0], rule="decision").reason == "decision"
    assert stop_decision([away, across], [0.0, 0.0], rule="decision").reason == "continue"
    assert stop_decision([away, across], [0.0, 0.0], rule="decision", exhausted=True).reason == "max_items"
    # with a width target, a narrow CS around 0 is a decision too (the effect is known to be small)
    assert stop_decision([away, narrow], [0.0, 0.0], rule="decision", ci_width=0.1).reason == "decision"
    assert stop_decision([narrow], [0.0], rule="ci_width", ci_width=0.1).reason == "ci_width"
    assert stop_decision([away], [0.0], rule="ci_width", ci_width=0.1).reason == "continue"
    with pytest.raises(ValueError, match="needs ci_width"):
        stop_decision([away], [0.0], rule="ci_width")
