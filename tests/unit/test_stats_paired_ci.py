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
