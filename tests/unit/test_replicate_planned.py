"""The replicate study's planned tests, each pinned to scipy/statsmodels on the same data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats as sps

from personae.errors import ConfigError
from personae.replicate.experiment import parse_experiment
from personae.replicate.planned import Observation, cohens_d_ci, cramers_v, run_test


def exp(test: dict, measure: dict | None = None, design: str = "between", conds=("a", "b"), metric: str = "d",
        values=None) -> object:
    conditions = [{"name": c, "text": f"text {c}", **({"value": values[i]} if values else {})}
                  for i, c in enumerate(conds)]
    return parse_experiment({"id": "x", "title": "t", "citation": "c", "design": design, "conditions": conditions,
                             "measure": measure or {"kind": "likert", "question": "q", "scale": [1, 7]},
                             "test": test, "original": {"n": 100, "effect": 0.5, "p": 0.01, "metric": metric}},
                            file="x.yaml")


RNG = np.random.default_rng(7)
A = RNG.integers(1, 8, 40).astype(float)
B = np.clip(A[:35] - RNG.integers(0, 3, 35), 1, 7)


def obs_two(a=A, b=B) -> list[Observation]:
    return ([Observation(i, "a", float(v), age=20 + i % 30) for i, v in enumerate(a)]
            + [Observation(100 + i, "b", float(v), age=25 + i % 20) for i, v in enumerate(b)])


def test_welch_t_equals_scipy_and_d_is_hedges_olkin() -> None:
    r = run_test(exp({"kind": "welch_t", "a": "a", "b": "b"}), obs_two())
    ref = sps.ttest_ind(A, B, equal_var=False)
    assert r.statistic == pytest.approx(ref.statistic) and r.p == pytest.approx(ref.pvalue)
    assert r.df == pytest.approx(ref.df)
    pooled = math.sqrt((39 * A.var(ddof=1) + 34 * B.var(ddof=1)) / 73)
    d = (A.mean() - B.mean()) / pooled
    assert r.effect == pytest.approx(d) and r.effect > 0
    se = math.sqrt(75 / (40 * 35) + d * d / 150)  # Hedges & Olkin (1985) eq. 5.15
    assert (r.ci_low, r.ci_high) == pytest.approx((d - 1.96 * se, d + 1.96 * se), abs=1e-3)


def test_paired_t_equals_scipy() -> None:
    e = exp({"kind": "paired_t", "a": "a", "b": "b"}, design="within", metric="dz")
    a, b = A[:35], B
    obs = [Observation(i, "a", float(v)) for i, v in enumerate(a)] + [Observation(i, "b", float(v)) for i, v in enumerate(b)]
    r = run_test(e, obs)
    ref = sps.ttest_rel(a, b)
    assert r.p == pytest.approx(ref.pvalue) and r.statistic == pytest.approx(ref.statistic)
    assert r.effect == pytest.approx((a - b).mean() / (a - b).std(ddof=1))


def test_anova_equals_scipy_and_eta2_by_hand() -> None:
    e = exp({"kind": "anova"}, conds=("a", "b", "c"), metric="eta2")
    g = [A[:20], B[:20], A[20:40] - 1]
    obs = [Observation(k * 100 + i, c, float(v)) for k, (c, xs) in enumerate(zip("abc", g)) for i, v in enumerate(xs)]
    r = run_test(e, obs, seed=1, n_boot=500)
    ref = sps.f_oneway(*g)
    assert r.p == pytest.approx(ref.pvalue) and r.statistic == pytest.approx(ref.statistic)
    allv = np.concatenate(g)
    eta2 = sum(len(x) * (x.mean() - allv.mean()) ** 2 for x in g) / ((allv - allv.mean()) ** 2).sum()
    assert r.effect == pytest.approx(eta2) and r.ci_low <= r.effect <= r.ci_high


CHOICE = {"kind": "choice", "question": "q", "options": ["yes", "no"]}


def choice_obs(yes_a: int, n_a: int, yes_b: int, n_b: int) -> list[Observation]:
    return ([Observation(i, "a", "yes" if i < yes_a else "no") for i in range(n_a)]
            + [Observation(100 + i, "b", "yes" if i < yes_b else "no") for i in range(n_b)])


def test_chi_square_equals_scipy_with_signed_phi() -> None:
    e = exp({"kind": "chi_square", "a": "a", "b": "b", "target": "yes"}, CHOICE, metric="phi")
    r = run_test(e, choice_obs(30, 40, 12, 40), n_boot=500)
    table = np.array([[30, 10], [12, 28]])
    chi2, p, _, _ = sps.chi2_contingency(table, correction=False)
    assert r.statistic == pytest.approx(chi2) and r.p == pytest.approx(p)
    # phi of a 2 x 2 table: (ad - bc) / sqrt(row and column totals) = (840 - 120) / sqrt(40*40*42*38)
    assert r.effect == pytest.approx(720 / math.sqrt(40 * 40 * 42 * 38))
    flipped = run_test(e, choice_obs(12, 40, 30, 40), n_boot=500)
    assert flipped.effect == pytest.approx(-r.effect)


def test_cramers_v_by_hand() -> None:
    table = np.array([[10.0, 20, 30], [30, 20, 10]])
    chi2 = sps.chi2_contingency(table, correction=False)[0]
    assert cramers_v(table) == pytest.approx(math.sqrt(chi2 / 120))


def test_logistic_equals_statsmodels() -> None:
    e = exp({"kind": "logistic", "a": "a", "b": "b", "target": "yes"}, CHOICE, metric="log_odds")
    r = run_test(e, choice_obs(30, 40, 12, 40))
    y = np.array([1] * 30 + [0] * 10 + [1] * 12 + [0] * 28, float)
    x = np.array([1] * 40 + [0] * 40, float)
    fit = sm.Logit(y, sm.add_constant(x)).fit(disp=0)
    assert r.effect == pytest.approx(fit.params[1]) and r.p == pytest.approx(fit.pvalues[1])
    assert r.effect == pytest.approx(math.log((30 / 10) / (12 / 28)))  # the log odds ratio


def test_linear_on_condition_values_equals_statsmodels() -> None:
    e = exp({"kind": "linear", "x": "value"}, conds=("a", "b"), metric="slope", values=[10.0, 2.0])
    r = run_test(e, obs_two())
    x = np.array([10.0] * 40 + [2.0] * 35)
    fit = sm.OLS(np.concatenate([A, B]), sm.add_constant(x)).fit()
    assert r.effect == pytest.approx(fit.params[1]) and r.p == pytest.approx(fit.pvalues[1])
    assert (r.ci_low, r.ci_high) == pytest.approx(tuple(fit.conf_int()[1]))


def test_correlation_with_age_equals_scipy() -> None:
    e = exp({"kind": "correlation", "x": "age"}, metric="r")
    o = obs_two()
    r = run_test(e, o)
    ref = sps.pearsonr([x.age for x in o], [x.answer for x in o])
    assert r.effect == pytest.approx(ref.statistic) and r.p == pytest.approx(ref.pvalue)
    ci = ref.confidence_interval()
    assert (r.ci_low, r.ci_high) == pytest.approx((ci.low, ci.high), abs=1e-6)


def test_no_variance_gives_no_estimate_not_an_error() -> None:
    r = run_test(exp({"kind": "welch_t", "a": "a", "b": "b"}), obs_two(np.full(10, 4.0), np.full(10, 4.0)))
    assert math.isnan(r.effect) and r.as_dict()["effect"] is None


def test_cohens_d_sign() -> None:
    assert cohens_d_ci(np.array([1.0, 2, 3]), np.array([4.0, 5, 6]))[0] < 0


@pytest.mark.parametrize(("test", "metric", "field", "needle"), [
    ({"kind": "welch_t", "a": "a", "b": "c"}, "d", "test.b", "'c' is not a condition"),
    ({"kind": "welch_t", "a": "a", "b": "b"}, "r", "original.metric", "reports 'd'"),
    ({"kind": "paired_t", "a": "a", "b": "b"}, "dz", "test.kind", "needs a within-subjects design"),
    ({"kind": "chi_square", "a": "a", "b": "b", "target": "yes"}, "phi", "measure.kind", "needs a choice measure"),
])
def test_inconsistent_experiments_are_refused_with_the_field(test, metric, field, needle) -> None:
    with pytest.raises(ConfigError) as err:
        exp(test, metric=metric)
    assert err.value.field == field and needle in str(err.value) and "Fix:" in str(err.value)


@pytest.mark.parametrize("kind", ["welch_t", "chi_square", "logistic", "correlation"])
def test_planned_tests_hold_their_level_under_the_null(kind: str) -> None:
    """300 seeded simulations with no effect: each test rejects at p < .05 about 5% of the time
    (binomial 95% range for 300 draws at 0.05: 2.7% to 7.7%; the bound below is wider)."""
    rng = np.random.default_rng(11)
    choice = kind in ("chi_square", "logistic")
    test = {"kind": kind, "a": "a", "b": "b"} if kind != "correlation" else {"kind": "correlation", "x": "age"}
    if choice:
        test["target"] = "yes"
    e = exp(test, CHOICE if choice else None, metric={"welch_t": "d", "chi_square": "phi", "logistic": "log_odds",
                                                    "correlation": "r"}[kind])
    rejected = 0
    for _ in range(300):
        if choice:
            answers = np.where(rng.random(80) < 0.4, "yes", "no")
        else:
            answers = rng.integers(1, 8, 80).astype(float)
        obs = [Observation(i, "a" if i < 40 else "b", a if choice else float(a), age=int(rng.integers(18, 70)))
               for i, a in enumerate(answers)]
        r = run_test(e, obs, n_boot=1) if kind == "chi_square" else run_test(e, obs)
        rejected += r.p < 0.05
    assert 0.015 <= rejected / 300 <= 0.095
