"""Krippendorff's alpha, pinned to Krippendorff's worked example and to the `krippendorff` package."""

from __future__ import annotations

import krippendorff
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from personae.stats import krippendorff_alpha

NA = np.nan
# Reference: Krippendorff, K. (2011). "Computing Krippendorff's Alpha-Reliability", Annenberg School
# for Communication, University of Pennsylvania, section C: 4 observers (rows A-D) x 12 units, '.' =
# missing. Published: nominal 0.743, ordinal 0.815, interval 0.849, ratio 0.797 (the `krippendorff`
# package, which takes this observers x units layout, gives the same to three decimals).
OBSERVERS_X_UNITS = np.array([
    [1, 2, 3, 3, 2, 1, 4, 1, 2, NA, NA, NA],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, NA, 3],
    [NA, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, NA],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, NA],
])
UNITS_X_RATERS = OBSERVERS_X_UNITS.T  # personae's layout: one row per unit
PUBLISHED = {"nominal": 0.743, "ordinal": 0.815, "interval": 0.849, "ratio": 0.797}
LEVELS = tuple(PUBLISHED)


@pytest.mark.parametrize("level", LEVELS)
def test_worked_example_of_krippendorff_2011(level: str) -> None:
    result = krippendorff_alpha(UNITS_X_RATERS, level)
    assert round(result.estimate, 3) == PUBLISHED[level]
    reference = krippendorff.alpha(reliability_data=OBSERVERS_X_UNITS, level_of_measurement=level)
    assert result.estimate == pytest.approx(reference, abs=1e-12)
    assert result.n == 11 and result.method == f"Krippendorff's alpha ({level})"
    assert "1 unit(s) with fewer than two values left out" in result.note  # unit 12: only observer B


def test_none_is_missing_like_nan() -> None:
    with_none = [[None if np.isnan(x) else x for x in row] for row in UNITS_X_RATERS.tolist()]
    assert krippendorff_alpha(with_none, "interval").estimate == krippendorff_alpha(UNITS_X_RATERS, "interval").estimate


def test_nominal_labels_may_be_strings() -> None:
    names = {1.0: "one", 2.0: "two", 3.0: "three", 4.0: "four", 5.0: "five"}
    labels = [[None if np.isnan(x) else names[x] for x in row] for row in UNITS_X_RATERS.tolist()]
    assert krippendorff_alpha(labels).estimate == pytest.approx(krippendorff_alpha(UNITS_X_RATERS).estimate)


cell = st.one_of(st.none(), st.sampled_from([0, 0.5, 1, 2, 3, 4.5, 7]))  # None: missing
units_x_raters = st.integers(2, 12).flatmap(lambda units: st.integers(2, 5).flatmap(
    lambda raters: st.lists(st.lists(cell, min_size=raters, max_size=raters), min_size=units, max_size=units)))


@settings(max_examples=150, deadline=None, derandomize=True)
@given(units_x_raters, st.sampled_from(LEVELS))
def test_matches_the_krippendorff_package_on_random_data_with_missing_values(rows: list[list[int | None]],
                                                                          level: str) -> None:
    # Reference: krippendorff.alpha (Castro's `krippendorff` package), which takes raters x units.
    table = np.array(rows, dtype=float)
    pairable = table[(~np.isnan(table)).sum(axis=1) >= 2]
    assume(np.unique(pairable[~np.isnan(pairable)]).size >= 2)  # else alpha is undefined (tested below)
    reference = krippendorff.alpha(reliability_data=table.T, level_of_measurement=level)
    assert krippendorff_alpha(table, level).estimate == pytest.approx(reference, abs=1e-9)


@pytest.mark.parametrize("level", LEVELS)
def test_perfect_agreement_is_one(level: str) -> None:
    assert krippendorff_alpha([[1, 1, 1], [2, 2, None], [5, 5, 5]], level).estimate == pytest.approx(1.0)


def test_one_value_everywhere_is_undefined_with_a_reason() -> None:
    result = krippendorff_alpha([[3, 3], [3, 3], [3, None]], "ordinal")
    assert np.isnan(result.estimate) and "every pairable value is 3: " in result.note
    assert "undefined" in result.note and "1 unit(s) with fewer than two values" in result.note
    assert result.as_dict()["estimate"] is None


def test_fewer_than_two_pairable_values_is_an_error_that_says_why_and_how() -> None:
    with pytest.raises(ValueError, match="at least one unit with two or more values.*transpose"):
        krippendorff_alpha([[1, None], [None, 2], [3, None]])


def test_bad_arguments_say_what_to_do() -> None:
    with pytest.raises(ValueError, match="level of measurement.*`confidence`"):
        krippendorff_alpha(UNITS_X_RATERS, 0.95)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="needs numbers.*level='nominal'"):
        krippendorff_alpha([["low", "high"], ["low", "low"]], "ordinal")
    with pytest.raises(ValueError, match="non-negative.*level='interval'"):
        krippendorff_alpha([[-1, 2], [3, 3]], "ratio")
    with pytest.raises(ValueError, match="units x raters"):
        krippendorff_alpha([1, 2, 3])
    with pytest.raises(ValueError, match="infinite"):
        krippendorff_alpha([[1, np.inf], [2, 2]], "interval")
    with pytest.raises(ValueError, match="explicit seed"):
        krippendorff_alpha(UNITS_X_RATERS, n_resamples=10)


def test_bootstrap_over_units_is_seeded_and_brackets_the_estimate() -> None:
    a = krippendorff_alpha(UNITS_X_RATERS, "interval", n_resamples=500, seed=3)
    b = krippendorff_alpha(UNITS_X_RATERS, "interval", n_resamples=500, seed=3)
    assert (a.ci_low, a.ci_high) == (b.ci_low, b.ci_high)
    assert a.ci_low < a.estimate <= a.ci_high <= 1.0 and a.se > 0
    assert "percentile bootstrap over units, 500 resamples" in a.method


@pytest.mark.parametrize("level", ["nominal", "interval"])
def test_bootstrap_ci_equals_the_package_on_hand_resampled_units(level: str) -> None:
    # Reference: the percentile bootstrap written out: the pairable units (unit 12 has one value and
    # is left out) resampled with one (300, 11) index matrix from the seed's Generator, each resample
    # scored by krippendorff.alpha, then the 2.5% and 97.5% quantiles of the defined values.
    res = krippendorff_alpha(UNITS_X_RATERS, level, n_resamples=300, seed=3)
    pairable = UNITS_X_RATERS[np.sum(~np.isnan(UNITS_X_RATERS), axis=1) >= 2]
    idx = np.random.default_rng(3).integers(0, pairable.shape[0], (300, pairable.shape[0]))
    boot = []
    for row in idx:
        sample = pairable[row]
        values = np.unique(sample[~np.isnan(sample)])
        boot.append(np.nan if values.size < 2 else
                    krippendorff.alpha(reliability_data=sample.T, level_of_measurement=level))
    boot_arr = np.array(boot)
    defined = boot_arr[np.isfinite(boot_arr)]
    assert (res.ci_low, res.ci_high) == pytest.approx(tuple(np.quantile(defined, [0.025, 0.975])), abs=1e-9)
    assert res.ci_low <= res.estimate <= res.ci_high and "1 unit(s) with fewer than two values" in res.note
    assert res == krippendorff_alpha(UNITS_X_RATERS, level, n_resamples=300, seed=3)
