"""The replicate study's planned tests, each pinned to scipy/statsmodels on the same data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats as sps

from personae.errors import ConfigError
from personae.replicate.experiment import parse_experiment
from personae.replicate.planned import (
    Observation,
    cohens_d_ci,
    cramers_v,
    partial_eta_squared,
    run_test,
)


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


# A worked one-way repeated-measures example: 5 participants x 3 conditions. By hand: grand mean 4.8,
# SS_total 38.4, SS_condition 5 x ((6.4-4.8)^2 + (5-4.8)^2 + (3-4.8)^2) = 29.2, SS_participants 5.0667,
# SS_error 38.4 - 29.2 - 5.0667 = 4.1333; F(2, 8) = (29.2 / 2) / (4.1333 / 8) = 28.258; partial eta^2 = 29.2 / 33.333.
RM = np.array([[7, 5, 3], [6, 5, 4], [8, 6, 3], [5, 5, 2], [6, 4, 3]], float)


def rm_obs(matrix: np.ndarray, conds: str = "abc") -> list[Observation]:
    return [Observation(i, c, float(matrix[i, j])) for i in range(len(matrix)) for j, c in enumerate(conds)]


def rm_f_by_hand(m: np.ndarray) -> tuple[float, float, float]:
    """F, its p (scipy's F distribution) and partial eta^2 from the sums of squares (numpy)."""
    n, k = m.shape
    grand = m.mean()
    ss_cond = n * ((m.mean(axis=0) - grand) ** 2).sum()
    ss_subj = k * ((m.mean(axis=1) - grand) ** 2).sum()
    ss_error = ((m - grand) ** 2).sum() - ss_cond - ss_subj
    f = (ss_cond / (k - 1)) / (ss_error / ((n - 1) * (k - 1)))
    return f, float(sps.f.sf(f, k - 1, (n - 1) * (k - 1))), ss_cond / (ss_cond + ss_error)


def within_anova_exp() -> object:
    return exp({"kind": "anova", "order": ["a", "b", "c"]}, design="within", conds=("a", "b", "c"), metric="partial_eta2")


def test_within_anova_equals_statsmodels_anovarm_and_the_f_by_hand() -> None:
    import pandas as pd
    from statsmodels.stats.anova import AnovaRM

    r = run_test(within_anova_exp(), rm_obs(RM), seed=3, n_boot=500)
    frame = pd.DataFrame([{"s": i, "c": c, "y": RM[i, j]} for i in range(5) for j, c in enumerate("abc")])
    ref = AnovaRM(frame, "y", "s", within=["c"]).fit().anova_table.iloc[0]  # statsmodels, independently fed
    assert r.statistic == pytest.approx(ref["F Value"]) and r.p == pytest.approx(ref["Pr > F"])
    f, p, eta = rm_f_by_hand(RM)
    assert r.statistic == pytest.approx(f) == pytest.approx(28.258, abs=1e-3) and r.p == pytest.approx(p)
    assert r.effect == pytest.approx(eta) == pytest.approx(29.2 / (29.2 + 4.1333), abs=1e-4)
    assert r.df == 2 and r.n == 5 and r.dropped == 0 and r.metric == "partial_eta2" and r.test_used == "anova_rm"
    assert r.ci_low <= r.effect <= r.ci_high
    again = run_test(within_anova_exp(), rm_obs(RM), seed=3, n_boot=500)
    assert (again.ci_low, again.ci_high) == (r.ci_low, r.ci_high)  # the bootstrap is seeded


def test_within_anova_drops_and_counts_participants_missing_a_condition() -> None:
    obs = [o for o in rm_obs(np.vstack([RM, [[4, 4, 4]]])) if not (o.participant == 5 and o.condition == "b")]
    r = run_test(within_anova_exp(), obs, n_boot=200)
    full = run_test(within_anova_exp(), rm_obs(RM), n_boot=200)
    assert r.dropped == 1 and r.n == 5 and r.statistic == pytest.approx(full.statistic)
    assert "1 participant without an answer to every condition" in (r.note or "")


def test_within_anova_recovers_a_planted_effect_and_holds_its_level() -> None:
    rng = np.random.default_rng(5)
    person = rng.normal(0, 1, (60, 1))  # a participant effect shared across conditions
    planted = np.clip(np.round(4 + person + np.array([0.6, 0.0, -0.6]) + rng.normal(0, 0.8, (60, 3))), 1, 7)
    r = run_test(within_anova_exp(), rm_obs(planted), n_boot=300)
    assert r.p < 1e-4 and r.effect > 0.2 and r.ci_low > 0
    assert r.effect == pytest.approx(rm_f_by_hand(planted)[2])
    null = np.clip(np.round(4 + person + rng.normal(0, 0.8, (60, 3))), 1, 7)
    assert run_test(within_anova_exp(), rm_obs(null), n_boot=300).p > 0.05


def test_within_anova_without_error_variance_is_no_estimate() -> None:
    shifted = np.array([[1.0, 2, 3], [2, 3, 4], [4, 5, 6]])  # every participant moves alike: SS_error 0
    assert partial_eta_squared(shifted) == pytest.approx(1.0)
    r = run_test(within_anova_exp(), rm_obs(shifted), n_boot=200)
    assert math.isnan(r.p) and "no error variance" in (r.note or "")
    assert math.isnan(partial_eta_squared(np.full((3, 3), 4.0)))


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


def logit_exp() -> object:
    return exp({"kind": "logistic", "a": "a", "b": "b", "target": "yes"}, CHOICE, metric="log_odds")


def test_logistic_under_separation_falls_back_to_chi_square_equal_to_scipy() -> None:
    r = run_test(logit_exp(), choice_obs(20, 20, 3, 20))  # all of a says yes: quasi-separation, no finite slope
    table = np.array([[20, 0], [3, 17]])
    assert sps.contingency.expected_freq(table).min() >= 5
    chi2, p, _, _ = sps.chi2_contingency(table, correction=False)
    assert r.test_used == "chi_square" and r.statistic == pytest.approx(chi2) and r.p == pytest.approx(p)
    assert r.metric == "risk_difference" and r.effect == pytest.approx(20 / 20 - 3 / 20)
    from statsmodels.stats.proportion import confint_proportions_2indep

    lo, hi = confint_proportions_2indep(20, 20, 3, 20, method="newcomb", compare="diff")
    assert (r.ci_low, r.ci_high) == pytest.approx((lo, hi)) and "separation" in (r.note or "")


def test_logistic_under_perfect_separation_with_small_counts_uses_fisher_in_the_right_direction() -> None:
    r = run_test(logit_exp(), choice_obs(0, 6, 6, 6))  # b always says yes, a never: planted perfect separation
    assert r.test_used == "fisher_exact" and r.p == pytest.approx(sps.fisher_exact([[0, 6], [6, 0]]).pvalue)
    assert r.p < 0.05 and r.effect == -1.0 and r.ci_high < 0 and math.isnan(r.statistic)


def test_logistic_separation_on_a_continuous_x_stays_no_estimate_and_says_why() -> None:
    e = exp({"kind": "logistic", "x": "age", "target": "yes"}, CHOICE, metric="log_odds")
    obs = [Observation(i, "a" if i % 2 else "b", "yes" if i >= 10 else "no", age=20 + i) for i in range(20)]
    r = run_test(e, obs)
    assert math.isnan(r.p) and r.test_used is None and "x: age" in (r.note or "") and "separation" in (r.note or "")


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
    ({"kind": "welch_t", "a": "a", "b": "b"}, "d", "test.kind", "tested with paired_t, anova or correlation"),
    ({"kind": "anova"}, "eta2", "original.metric", "reports 'partial_eta2'"),
])
def test_inconsistent_experiments_are_refused_with_the_field(test, metric, field, needle) -> None:
    design = "within" if "paired_t, anova" in needle or "partial_eta2" in needle else "between"
    with pytest.raises(ConfigError) as err:
        exp(test, metric=metric, design=design)
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
