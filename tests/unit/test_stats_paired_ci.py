"""paired_difference_ci: Student-t below SMALL_SAMPLE units, the paired bootstrap from there on."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from personae.stats import SMALL_SAMPLE, paired_bootstrap, paired_difference_ci


def test_small_samples_use_the_paired_t_interval() -> None:
    """Reference: scipy.stats.ttest_rel(a, b).confidence_interval()."""
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=12), rng.normal(size=12)
    got = paired_difference_ci(a, b, seed=0)
    ref = sps.ttest_rel(a, b).confidence_interval(0.95)
    assert (got.ci_low, got.ci_high) == pytest.approx((ref.low, ref.high))
    assert got.estimate == pytest.approx(np.mean(a - b)) and "Student-t" in got.method


def test_students_sleep_data_worked_example() -> None:
    """Reference: R, t.test(extra ~ group, data = sleep, paired = TRUE) on Cushny & Peebles' sleep data
    (Student 1908): mean difference -1.58, 95 percent CI -2.4598858 to -0.7001142."""
    drug1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
    drug2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]
    got = paired_difference_ci(drug1, drug2, seed=0)
    assert got.estimate == pytest.approx(-1.58)
    assert (got.ci_low, got.ci_high) == pytest.approx((-2.4598858, -0.7001142), abs=1e-7)


def test_equal_differences_give_a_point_interval() -> None:
    """scipy's interval is NaN when the differences have no spread; personae's is the point."""
    got = paired_difference_ci([1.0, 2.0, 3.0], [0.5, 1.5, 2.5], seed=0)
    assert (got.ci_low, got.estimate, got.ci_high, got.se) == (0.5, 0.5, 0.5, 0.0)


def test_large_samples_use_the_paired_bootstrap() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=SMALL_SAMPLE), rng.normal(size=SMALL_SAMPLE)
    got = paired_difference_ci(a, b, seed=7, n_resamples=2000)
    ref = paired_bootstrap(a, b, seed=7, n_resamples=2000)
    assert (got.ci_low, got.ci_high) == (ref.ci_low, ref.ci_high)


def test_small_sample_coverage_is_close_to_nominal() -> None:
    """400 seeded null data sets of 8 units: the interval misses 0 about 5% of the time."""
    rng = np.random.default_rng(5)
    misses = sum(not (ci.ci_low <= 0 <= ci.ci_high) for ci in
                 (paired_difference_ci(rng.normal(size=8), rng.normal(size=8), seed=0) for _ in range(400)))
    assert misses / 400 <= 0.05 + 2.5 * np.sqrt(0.05 * 0.95 / 400)
