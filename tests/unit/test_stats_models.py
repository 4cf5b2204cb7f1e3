"""personae.stats, part 2: ANOVA and ICC, mixed models, Fleiss' kappa, correlations, power.

Every test names its independent reference (scipy, statsmodels or a published worked example).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa
from statsmodels.stats.power import NormalIndPower, TTestPower

from personae.stats import (
    category_counts,
    correlation,
    fleiss_kappa,
    icc1,
    item_logit,
    kendall,
    one_way_anova_components,
    paired_items_needed,
    paired_power,
    paired_sd_diff,
    pearson,
    spearman,
    unanimous_share,
    variance_components,
)
from personae.stats.correlation import kendall_axis, pearson_axis, spearman_axis

# Shrout & Fleiss (1979), Psychological Bulletin 86(2), Table 2: 6 targets rated by 4 judges.
SHROUT_FLEISS = np.array([[9, 2, 5, 8], [6, 1, 3, 2], [8, 4, 6, 8], [7, 1, 2, 6], [10, 5, 6, 9], [6, 2, 4, 7]])
# pingouin's 'icc' dataset (8 wines x 4 judges), rows = wines.
WINES = np.array([[1, 2, 0, 1], [1, 3, 3, 2], [3, 8, 1, 4], [6, 4, 3, 3], [6, 5, 5, 6], [7, 5, 6, 2],
                  [8, 7, 7, 9], [9, 9, 9, 8]])


def _long(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return table.ravel().astype(float), np.repeat(np.arange(table.shape[0]), table.shape[1])


# ---------------------------------------------------------------- ANOVA, ICC(1)
def test_anova_components_match_scipy_f_oneway() -> None:
    # Reference: scipy.stats.f_oneway (F, p) on unbalanced groups.
    rng = np.random.default_rng(1)
    sizes = [5, 8, 6, 11]
    groups = np.repeat(np.arange(4), sizes)
    values = rng.normal(size=groups.size) + np.repeat([0.0, 0.4, -0.3, 0.8], sizes)
    comp = one_way_anova_components(values, groups)
    ref = sps.f_oneway(*(values[groups == g] for g in range(4)))
    assert comp.f == pytest.approx(ref.statistic, rel=1e-12)
    assert comp.p_value == pytest.approx(ref.pvalue, rel=1e-10)
    assert comp.ss_between + comp.ss_within == pytest.approx(np.sum((values - values.mean()) ** 2))
    assert comp.eta_squared == pytest.approx(comp.ss_between / comp.ss_total)
    n0 = (30 - np.sum(np.square(sizes)) / 30) / 3  # Searle, Casella & McCulloch (1992) eq. 3.27
    assert comp.n0 == pytest.approx(n0)
    assert comp.sigma2_between == pytest.approx(max((comp.ms_between - comp.ms_within) / n0, 0))
    assert comp.as_dict()["n_groups"] == 4


def test_icc1_shrout_fleiss_worked_example() -> None:
    # Reference: Shrout & Fleiss (1979) Tables 3-4: BMS = 11.24, WMS = 6.26, ICC(1,1) = .17,
    # ICC(1,4) = .44.
    values, targets = _long(SHROUT_FLEISS)
    comp = one_way_anova_components(values, targets)
    assert comp.ms_between == pytest.approx(11.24, abs=5e-3)
    assert comp.ms_within == pytest.approx(6.26, abs=5e-3)
    assert icc1(values, targets).estimate == pytest.approx(0.17, abs=5e-3)
    assert icc1(values, targets, average=True).estimate == pytest.approx(0.44, abs=5e-3)
    assert comp.share_between == pytest.approx(icc1(values, targets).estimate)


def test_icc1_pingouin_documented_example() -> None:
    # Reference: pingouin.intraclass_corr docs on its 'icc' wine data, one-way ICC1: 0.727521,
    # F = 11.680026 (df 7, 24), p = 0.000002, CI95% [0.43, 0.93]; pingouin 0.1.x printed
    # (0.727526, array([0.434, 0.927])).
    values, wines = _long(WINES)
    res = icc1(values, wines)
    assert res.estimate == pytest.approx(0.727521, abs=1e-6)
    assert res.statistic == pytest.approx(11.680026, abs=1e-6)
    assert (res.ci_low, res.ci_high) == pytest.approx((0.434, 0.927), abs=5e-4)
    assert res.p_value == pytest.approx(0.000002, abs=5e-7) and res.n == 8


def test_anova_validation_and_degenerate() -> None:
    with pytest.raises(ValueError, match="two groups"):
        one_way_anova_components([1.0, 2.0, 3.0], ["a", "a", "a"])
    with pytest.raises(ValueError, match="more observations than groups"):
        one_way_anova_components([1.0, 2.0], ["a", "b"])
    same = icc1([1.0, 1.0, 2.0, 2.0], ["a", "a", "b", "b"])
    assert same.estimate == 1.0 and "no within-group variance" in same.note
    neg = one_way_anova_components([1.0, 2.0, 1.0, 2.0], ["a", "a", "b", "b"])
    assert neg.sigma2_between == 0.0 and neg.truncated


# ---------------------------------------------------------------- mixed models
def _crossed(seed: int, personas: int = 6, items: int = 12, runs: int = 3) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    p = np.repeat(np.arange(personas), items * runs)
    i = np.tile(np.repeat(np.arange(items), runs), personas)
    y = rng.normal(0, 0.6, personas)[p] + rng.normal(0, 1.2, items)[i] + rng.normal(0, 1.0, p.size)
    return y, p, i


def test_variance_components_equal_anova_for_balanced_one_way() -> None:
    # Reference: for balanced data the REML estimate equals the ANOVA estimator when that is
    # positive (Searle, Casella & McCulloch 1992, Variance Components, sec. 6.3).
    y, p, _ = _crossed(3)
    vc = variance_components(y, p)
    comp = one_way_anova_components(y, p)
    assert comp.sigma2_between > 0
    assert vc.components["persona"] == pytest.approx(comp.sigma2_between, rel=1e-3)
    assert vc.components["residual"] == pytest.approx(comp.sigma2_within, rel=1e-3)
    assert sum(vc.shares.values()) == pytest.approx(1.0)


def test_variance_components_crossed_equal_two_way_anova() -> None:
    # Reference: same theorem for the balanced crossed additive model: with MS_E pooled over the
    # residual df (N - P - I + 1), sigma2_persona = (MS_P - MS_E) / (I R) and
    # sigma2_item = (MS_I - MS_E) / (P R).
    y, p, i = _crossed(5)
    P, I, R = 6, 12, 3
    gm = y.mean()
    ss_p = I * R * np.sum((np.bincount(p, y) / (I * R) - gm) ** 2)
    ss_i = P * R * np.sum((np.bincount(i, y) / (P * R) - gm) ** 2)
    ms_e = (np.sum((y - gm) ** 2) - ss_p - ss_i) / (y.size - P - I + 1)
    vc = variance_components(y, p, i)
    assert vc.components["persona"] == pytest.approx((ss_p / (P - 1) - ms_e) / (I * R), rel=2e-3)
    assert vc.components["item"] == pytest.approx((ss_i / (I - 1) - ms_e) / (P * R), rel=2e-3)
    assert vc.components["residual"] == pytest.approx(ms_e, rel=2e-3)
    assert vc.converged and vc.as_dict()["shares"]["persona"] == pytest.approx(vc.shares["persona"])


def _accuracy_data(seed: int, items: int = 60, k: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    conds = np.array(["base", "expert", "child"])
    shift = {"base": 0.0, "expert": 0.0, "child": -1.0}
    item_effect = rng.normal(0.5, 1.2, items)
    item = np.repeat(np.arange(items), 3 * k)
    cond = np.tile(np.repeat(conds, k), items)
    eta = item_effect[item] + np.array([shift[c] for c in cond])
    return (rng.random(item.size) < 1 / (1 + np.exp(-eta))).astype(float), cond, item


def test_item_logit_gee_equals_marginal_log_odds_ratio() -> None:
    # Reference: with the same design in every cluster the GEE for a saturated mean model solves
    # sum_i (y_i - mu) = 0 whatever the working correlation (Liang & Zeger 1986), so each
    # coefficient is the log odds ratio of the pooled accuracies.
    y, cond, item = _accuracy_data(1)
    res = item_logit(y, cond, item, baseline="base")
    logit = lambda q: np.log(q / (1 - q))  # noqa: E731
    for c in ("child", "expert"):
        expected = logit(y[cond == c].mean()) - logit(y[cond == "base"].mean())
        assert res.term(c).estimate == pytest.approx(expected, abs=1e-6)
    assert res.term("child").p_value < 0.01 and res.within_item_corr > 0
    assert res.term("child").odds_ratio == pytest.approx(np.exp(res.term("child").estimate))


def test_item_logit_conditional_matched_pairs() -> None:
    # Reference: for matched pairs the conditional ML log odds ratio is log(n01 / n10) with
    # SE sqrt(1/n01 + 1/n10) (Agresti, Categorical Data Analysis 2002, sec. 10.2.3).
    rng = np.random.default_rng(2)
    base = rng.random(200) < 0.6
    cond = np.where(rng.random(200) < 0.75, base, rng.random(200) < 0.4)
    y = np.concatenate([base, cond]).astype(float)
    labels = np.repeat(["base", "persona"], 200)
    items = np.tile(np.arange(200), 2)
    res = item_logit(y, labels, items, baseline="base", method="conditional")
    n01, n10 = np.sum(~base & cond), np.sum(base & ~cond)
    assert res.term("persona").estimate == pytest.approx(np.log(n01 / n10), abs=1e-5)
    assert res.term("persona").se == pytest.approx(np.sqrt(1 / n01 + 1 / n10), rel=1e-3)
    assert "dropped" in res.note and res.n_items == n01 + n10


def test_item_logit_bayes_glmm_recovers_simulated_effects() -> None:
    # Reference: the simulation truth (conditional log OR -1.0 and 0.0, item SD 1.2) and the
    # conditional logit estimate of the same within-item effect (statsmodels ConditionalLogit).
    y, cond, item = _accuracy_data(4, items=60)
    res = item_logit(y, cond, item, baseline="base", method="bayes", seed=0)
    clogit = item_logit(y, cond, item, baseline="base", method="conditional")
    assert res.term("child").estimate == pytest.approx(-1.0, abs=0.3)
    assert abs(res.term("expert").estimate) < 0.3
    for name in ("child", "expert"):
        assert res.term(name).estimate == pytest.approx(clogit.term(name).estimate, abs=0.05)
        assert res.term(name).se < clogit.term(name).se  # mean-field VB understates uncertainty
    assert res.item_sd == pytest.approx(1.2, abs=0.3)
    small = (y[: 12 * 15], cond[: 12 * 15], item[: 12 * 15])  # seeded VB start: same seed, same fit
    assert item_logit(*small, baseline="base", method="bayes", seed=3) == item_logit(
        *small, baseline="base", method="bayes", seed=3)


def test_item_logit_validation() -> None:
    y, cond, item = _accuracy_data(1, items=5)
    with pytest.raises(ValueError, match="baseline"):
        item_logit(y, cond, item, baseline="nobody")
    with pytest.raises(ValueError, match="seed"):
        item_logit(y, cond, item, baseline="base", method="bayes")
    with pytest.raises(ValueError, match="method"):
        item_logit(y, cond, item, baseline="base", method="glmer")


# ---------------------------------------------------------------- Fleiss' kappa
# Fleiss (1971) style example from Wikipedia "Fleiss' kappa": 10 subjects, 14 raters, 5 categories.
WIKI = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                 [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])


def test_fleiss_kappa_matches_statsmodels_and_worked_example() -> None:
    # Reference: statsmodels.stats.inter_rater.fleiss_kappa; Wikipedia's worked example: 0.210.
    assert fleiss_kappa(WIKI).estimate == pytest.approx(0.210, abs=5e-4)
    assert fleiss_kappa(WIKI).estimate == pytest.approx(sm_fleiss_kappa(WIKI), rel=1e-12)
    rng = np.random.default_rng(7)
    labels = np.where(rng.random((30, 5)) < 0.7, rng.integers(0, 3, 30)[:, None], rng.integers(0, 3, (30, 5)))
    counts = category_counts(labels.tolist())
    assert counts.tolist() == aggregate_raters(labels)[0].tolist()
    assert fleiss_kappa(counts).estimate == pytest.approx(sm_fleiss_kappa(counts), rel=1e-12)


def test_fleiss_kappa_bootstrap_ci_equals_statsmodels_on_hand_resampled_items() -> None:
    # Reference: the percentile bootstrap written out: items resampled with one (500, 10) index
    # matrix from the seed's Generator, each resampled table scored by statsmodels' fleiss_kappa.
    res = fleiss_kappa(WIKI, n_resamples=500, seed=2)
    idx = np.random.default_rng(2).integers(0, 10, (500, 10))
    boot = np.array([sm_fleiss_kappa(WIKI[row]) for row in idx])
    assert (res.ci_low, res.ci_high) == pytest.approx(tuple(np.quantile(boot, [0.025, 0.975])), rel=1e-10)
    assert res.se == pytest.approx(boot.std(ddof=1), rel=1e-10)


def test_fleiss_kappa_bootstrap_and_edge_cases() -> None:
    res = fleiss_kappa(WIKI, n_resamples=2000, seed=1)
    assert res.ci_low <= res.estimate <= res.ci_high
    assert res == fleiss_kappa(WIKI, n_resamples=2000, seed=1)
    with pytest.raises(ValueError, match="seed"):
        fleiss_kappa(WIKI, n_resamples=10)
    same = fleiss_kappa([[3, 0], [3, 0]])
    assert np.isnan(same.estimate) and "undefined" in same.note
    assert unanimous_share([[3, 0], [2, 1], [0, 3]]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="same number"):
        fleiss_kappa([[3, 0], [1, 1]])
    with pytest.raises(ValueError, match="not one of the categories"):
        category_counts([["yes", "no"], ["yes", "maybe"]], categories=["yes", "no"])


# ---------------------------------------------------------------- correlations
def test_correlation_points_and_p_match_scipy() -> None:
    # Reference: scipy.stats.pearsonr, spearmanr, kendalltau (tau-b), with ties.
    rng = np.random.default_rng(3)
    x = rng.integers(1, 6, 40).astype(float)
    y = x + rng.integers(-2, 3, 40)
    for fn, ref in ((pearson, sps.pearsonr), (spearman, sps.spearmanr), (kendall, sps.kendalltau)):
        res = fn(x, y, seed=0, n_resamples=500)
        expected = ref(x, y)
        assert res.estimate == pytest.approx(expected.statistic, rel=1e-12)
        assert res.p_value == pytest.approx(expected.pvalue, rel=1e-9)
        assert res.ci_low <= res.estimate <= res.ci_high


def test_vectorised_coefficients_match_scipy_row_by_row() -> None:
    # Reference: scipy.stats.pearsonr / spearmanr / kendalltau applied to each row.
    rng = np.random.default_rng(4)
    x = rng.integers(0, 4, (25, 12)).astype(float)
    y = rng.integers(0, 4, (25, 12)).astype(float)
    for fn, ref in ((pearson_axis, sps.pearsonr), (spearman_axis, sps.spearmanr), (kendall_axis, sps.kendalltau)):
        expected = [ref(a, b).statistic for a, b in zip(x, y)]
        assert fn(x, y, axis=-1) == pytest.approx(expected, rel=1e-10, nan_ok=True)


def test_pearson_bootstrap_ci_close_to_fisher_z() -> None:
    # Reference: scipy.stats.pearsonr(...).confidence_interval() (Fisher z) on bivariate normal data.
    rng = np.random.default_rng(5)
    x = rng.normal(size=300)
    y = 0.5 * x + rng.normal(size=300)
    res = correlation(x, y, method="pearson", seed=1, n_resamples=3000)
    fisher = sps.pearsonr(x, y).confidence_interval()
    assert (res.ci_low, res.ci_high) == pytest.approx((fisher.low, fisher.high), abs=0.03)


def test_correlation_validation() -> None:
    with pytest.raises(ValueError, match="method"):
        correlation([1, 2, 3], [1, 2, 3], method="distance", seed=0)
    flat = spearman([1, 1, 1, 1], [1, 2, 3, 4], seed=0)
    assert np.isnan(flat.estimate) and "constant" in flat.note


# ---------------------------------------------------------------- power and sample size
@pytest.mark.parametrize(("p0", "delta"), [(0.7, 0.03), (0.5, -0.1), (0.85, 0.05)])
def test_items_needed_without_clustering_matches_statsmodels(p0: float, delta: float) -> None:
    # Reference: statsmodels.stats.power.TTestPower (paired t on d_q, effect size delta / sd) and,
    # for K = 1 without clustering, NormalIndPower for two independent proportions with effect size
    # delta / sqrt((v0 + v1) / 2) (equal up to the t-vs-normal difference).
    res = paired_items_needed(p0, delta, k=1, icc=0.0, alpha=0.05, power=0.8)
    v0, v1 = p0 * (1 - p0), (p0 + delta) * (1 - p0 - delta)
    assert res.sd_diff == pytest.approx(np.sqrt(v0 + v1))
    t_n = TTestPower().solve_power(effect_size=abs(delta) / res.sd_diff, alpha=0.05, power=0.8)
    assert res.n_items == int(np.ceil(t_n))
    z_n = NormalIndPower().solve_power(effect_size=abs(delta) / np.sqrt((v0 + v1) / 2), alpha=0.05, power=0.8)
    assert abs(res.n_items - z_n) <= 3
    assert res.power >= 0.8
    assert paired_power(res.n_items - 1, p0, delta).power < 0.8


def test_paired_power_matches_statsmodels_ttestpower() -> None:
    # Reference: statsmodels TTestPower.power, two-sided and one-sided ('larger').
    res = paired_power(150, 0.6, 0.1, k=5, icc=0.3, item_corr=0.4)
    es = 0.1 / res.sd_diff
    assert res.power == pytest.approx(TTestPower().power(es, 150, 0.05), rel=1e-10)
    one = paired_power(150, 0.6, 0.1, k=5, icc=0.3, item_corr=0.4, alternative="one-sided")
    assert one.power == pytest.approx(TTestPower().power(es, 150, 0.05, alternative="larger"), rel=1e-10)


def test_t_power_gpower_worked_example_and_large_noncentrality() -> None:
    # Reference: G*Power 3 (Faul et al. 2007), one-sample t test, two-tailed, alpha 0.05, power
    # 0.80: d = 0.5 needs N = 34 (actual power 0.8077775), d = 0.8 needs N = 15 (0.8213105).
    # And the noncentral t written out with scipy.stats.nct (independent of statsmodels).
    from personae.stats.power import _t_power

    assert _t_power(0.5, 34, 0.05, "two-sided") == pytest.approx(0.8077775, abs=1e-7)
    assert _t_power(0.5, 33, 0.05, "two-sided") < 0.8
    assert _t_power(0.8, 15, 0.05, "two-sided") == pytest.approx(0.8213105, abs=1e-7)
    crit = sps.t.isf(0.025, 149)
    by_hand = sps.nct.sf(crit, 149, 0.3 * np.sqrt(150)) + sps.nct.cdf(-crit, 149, 0.3 * np.sqrt(150))
    assert _t_power(0.3, 150, 0.05, "two-sided") == pytest.approx(by_hand, rel=1e-10)
    # statsmodels (scipy.special's noncentral t) returns NaN here, where the power is above 0.9999:
    assert np.isnan(TTestPower().power(0.093, 15793, 0.05))
    assert _t_power(0.093, 15793, 0.05, "two-sided") == pytest.approx(1.0, abs=1e-9)


def test_replicates_help_until_the_icc_floor() -> None:
    # Reference: the design effect 1 + (K - 1) icc (Kish 1965): Var = v (1 + (K - 1) icc) / K.
    v = 0.6 * 0.4 + 0.7 * 0.3
    for k in (1, 5, 25):
        assert paired_sd_diff(0.6, 0.1, k=k, icc=0.3) ** 2 == pytest.approx(v * (1 + (k - 1) * 0.3) / k)
    many = paired_items_needed(0.7, 0.03, k=1000, icc=0.5).n_items
    assert paired_items_needed(0.7, 0.03, k=5, icc=0.5).n_items > many
    assert many >= paired_items_needed(0.7, 0.03, k=1, icc=0.0).n_items * 0.5


def test_items_needed_simulation_check() -> None:
    # Reference: seeded Monte Carlo of the design itself (Beta item accuracies with variance
    # icc * v, K Bernoulli replicates, paired t test on per-item accuracy differences, r = 0).
    p0, delta, k, icc = 0.6, 0.1, 5, 0.3
    n = paired_items_needed(p0, delta, k=k, icc=icc, power=0.8).n_items
    rng = np.random.default_rng(123)
    sims = 2000

    def item_accuracy(p: float) -> np.ndarray:
        s = 1 / icc - 1  # Beta(p s, (1 - p) s) has variance p (1 - p) icc
        return rng.binomial(k, rng.beta(p * s, (1 - p) * s, (sims, n))) / k

    d = item_accuracy(p0 + delta) - item_accuracy(p0)
    t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / np.sqrt(n))
    empirical = np.mean(np.abs(t) > sps.t.isf(0.025, n - 1))
    assert empirical == pytest.approx(0.8, abs=0.03)


def test_power_validation() -> None:
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        paired_items_needed(0.98, 0.05)
    with pytest.raises(ValueError, match="icc"):
        paired_items_needed(0.7, 0.03, icc=1.5)
    with pytest.raises(ValueError, match="non-zero"):
        paired_power(100, 0.7, 0.0)
    assert paired_items_needed(0.7, 0.03, k=5, icc=0.5).as_dict()["k"] == 5
