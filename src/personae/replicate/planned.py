"""The planned tests of the replicate study: answers in, effect size with CI and p out (pure).

Each test is the scipy/statsmodels routine named below; the effect size is in the metric the
experiment declares (`Experiment.metric`), signed in the test's orientation:

- welch_t: scipy.stats.ttest_ind(equal_var=False); Cohen's d (a - b over the pooled SD), CI from
  the large-sample SE sqrt((na+nb)/(na nb) + d^2 / (2(na+nb))) (Hedges & Olkin 1985).
- paired_t: scipy.stats.ttest_rel; d_z = mean(a - b) / SD(a - b), CI from SE sqrt(1/n + dz^2/(2n)).
- anova (between): scipy.stats.f_oneway; eta^2 = SS_between / SS_total, stratified bootstrap CI.
- anova (within): statsmodels AnovaRM (participant as subject, condition as within factor) over
  the participants who answered every condition (the rest are dropped and counted); partial
  eta^2 = SS_condition / (SS_condition + SS_error), bootstrap CI resampling participants.
- chi_square: scipy.stats.chi2_contingency(correction=False); with a target, the 2 x 2 table
  (a, b) x (target, other) and phi signed by (share of target in a) - (share in b); else
  Cramer's V of condition x answer; bootstrap CI.
- logistic: statsmodels Logit of (answer == target) on x; the slope (log odds), Wald CI and p.
  Under perfect (or quasi-) separation with x: condition the slope is infinite, so the test falls
  back to the (a, b) x (target, other) table: scipy.stats.fisher_exact when an expected count is
  below 5, else chi2_contingency(correction=False); the effect is the risk difference
  share(target | a) - share(target | b) with the Newcombe CI (statsmodels
  confint_proportions_2indep), which exists under separation. `test_used` and `note` say so.
  With a continuous x (value, age) separation stays no estimate, with the reason in `note`.
- linear: statsmodels OLS of the answer on x; the slope, its CI and p.
- correlation: scipy.stats.pearsonr of the answer with x; r, Fisher-z CI.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as sps

from .experiment import Experiment

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Observation:
    """One parsed answer of one participant to one condition."""

    participant: int
    """Participant index within the experiment."""
    condition: str
    """The condition the answer was given in."""
    answer: float | str
    """The number (likert, numeric) or option (choice)."""
    age: int | None = None
    """The participant's age, for x: age."""


@dataclass(frozen=True)
class TestResult:
    """The planned test on one data set."""

    test: str
    """The test's kind."""
    metric: str
    """The effect size's metric."""
    effect: float
    """The effect size (NaN when it cannot be computed, e.g. no variance)."""
    ci_low: float
    """Lower end of its 95% CI."""
    ci_high: float
    """Upper end."""
    statistic: float
    """t, F, chi-square or z."""
    p: float
    """Two-sided p-value (NaN when the test cannot be run)."""
    n: int
    """Participants analysed."""
    df: float | None = None
    """Degrees of freedom, where the test has them."""
    test_used: str | None = None
    """The test actually run when it differs from the planned one (logistic -> 'fisher_exact' or
    'chi_square' under separation, anova -> 'anova_rm' within subjects); None: the planned test."""
    note: str | None = None
    """Why another test ran, or why there is no estimate (one line)."""
    dropped: int = 0
    """Participants left out of a within-subjects test because an answer to a condition is missing
    (a failed request or an unparsable answer)."""

    def as_dict(self) -> dict[str, object]:
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in asdict(self).items()}


NAN = float("nan")


def _by(obs: Sequence[Observation], cond: str) -> np.ndarray:
    return np.array([float(o.answer) for o in obs if o.condition == cond], float)


def cohens_d_ci(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    """Cohen's d (a - b, pooled SD) with the Hedges & Olkin large-sample 95% CI."""
    na, nb = len(a), len(b)
    pooled = math.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / (na + nb - 2))
    if pooled == 0:
        return NAN, NAN, NAN
    d = (a.mean() - b.mean()) / pooled
    se = math.sqrt((na + nb) / (na * nb) + d * d / (2 * (na + nb)))
    return float(d), float(d - Z95 * se), float(d + Z95 * se)


def welch_t(exp: Experiment, obs: Sequence[Observation]) -> TestResult:
    a, b = _by(obs, str(exp.test.a)), _by(obs, str(exp.test.b))
    if len(a) < 2 or len(b) < 2 or (np.ptp(a) == 0 and np.ptp(b) == 0):  # no variance: no test
        return TestResult("welch_t", "d", NAN, NAN, NAN, NAN, NAN, len(a) + len(b))
    res = sps.ttest_ind(a, b, equal_var=False)
    d, lo, hi = cohens_d_ci(a, b)
    return TestResult("welch_t", "d", d, lo, hi, float(res.statistic), float(res.pvalue), len(a) + len(b),
                      float(res.df))


def complete_cases(obs: Sequence[Observation], conditions: Sequence[str]) -> tuple[np.ndarray, int]:
    """The participants x conditions matrix of the participants who answered every one of
    `conditions` (in that column order), and how many participants were dropped for a gap."""
    got = {(o.participant, o.condition): float(o.answer) for o in obs}
    everyone = {p for p, _ in got}
    people = sorted(p for p in everyone if all((p, c) in got for c in conditions))
    matrix = np.array([[got[(p, c)] for c in conditions] for p in people], float).reshape(len(people), len(conditions))
    return matrix, len(everyone) - len(people)


def paired_t(exp: Experiment, obs: Sequence[Observation]) -> TestResult:
    matrix, dropped = complete_cases(obs, (str(exp.test.a), str(exp.test.b)))
    a, b = matrix[:, 0], matrix[:, 1]
    n = len(matrix)
    if n < 2 or np.ptp(a - b) == 0:  # no variance of the differences: no test
        return TestResult("paired_t", "dz", NAN, NAN, NAN, NAN, NAN, n, dropped=dropped)
    res = sps.ttest_rel(a, b)
    sd = float(np.std(a - b, ddof=1))
    dz = float(np.mean(a - b)) / sd
    se = math.sqrt(1 / n + dz * dz / (2 * n))
    return TestResult("paired_t", "dz", dz, dz - Z95 * se, dz + Z95 * se, float(res.statistic), float(res.pvalue),
                      n, float(n - 1), dropped=dropped)


def eta_squared(groups: Sequence[np.ndarray]) -> float:
    values = np.concatenate(groups)
    total = float(((values - values.mean()) ** 2).sum())
    if total == 0:
        return NAN
    between = float(sum(len(g) * (g.mean() - values.mean()) ** 2 for g in groups))
    return between / total


def cramers_v(table: np.ndarray) -> float:
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    if min(table.shape) < 2:
        return NAN
    chi2 = sps.chi2_contingency(table, correction=False)[0]
    return float(math.sqrt(chi2 / (table.sum() * (min(table.shape) - 1))))


def _bootstrap(groups: Sequence[np.ndarray], fn, seed: int, n_boot: int) -> tuple[float, float]:
    """Percentile 95% CI of fn(groups) resampling within each group (conditions keep their sizes;
    a 2-D group is resampled by rows, e.g. whole participants of a within-subjects matrix)."""
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(n_boot):
        value = fn([g[rng.integers(0, len(g), len(g))] for g in groups])
        if not math.isnan(value):
            draws.append(value)
    if len(draws) < n_boot // 2:
        return NAN, NAN
    return float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))


def rm_sums_of_squares(matrix: np.ndarray) -> tuple[float, float]:
    """(SS_condition, SS_error) of a participants x conditions matrix, one-way repeated measures:
    SS_error = SS_total - SS_condition - SS_participants."""
    grand = matrix.mean()
    ss_cond = float(matrix.shape[0] * ((matrix.mean(axis=0) - grand) ** 2).sum())
    ss_subj = float(matrix.shape[1] * ((matrix.mean(axis=1) - grand) ** 2).sum())
    return ss_cond, max(float(((matrix - grand) ** 2).sum()) - ss_cond - ss_subj, 0.0)


def partial_eta_squared(matrix: np.ndarray) -> float:
    """SS_condition / (SS_condition + SS_error); NaN when both are 0."""
    ss_cond, ss_error = rm_sums_of_squares(matrix)
    return NAN if ss_cond + ss_error <= 1e-12 else ss_cond / (ss_cond + ss_error)


def anova_rm(exp: Experiment, obs: Sequence[Observation], seed: int = 0, n_boot: int = 2000) -> TestResult:
    """One-way repeated-measures ANOVA (statsmodels AnovaRM) over the complete participants."""
    import pandas as pd
    from statsmodels.stats.anova import AnovaRM

    conds = list(exp.condition_names)
    matrix, dropped = complete_cases(obs, conds)
    n = len(matrix)
    note = (f"{dropped} participant{'s' if dropped != 1 else ''} without an answer to every condition left out"
            if dropped else None)
    if n < 2 or rm_sums_of_squares(matrix)[1] <= 1e-12:  # too few, or no error variance: F is undefined
        note = note or "no error variance (every participant differs between conditions alike): F is undefined"
        return TestResult("anova", "partial_eta2", NAN, NAN, NAN, NAN, NAN, n, test_used="anova_rm", note=note,
                          dropped=dropped)
    frame = pd.DataFrame([{"participant": i, "condition": c, "answer": matrix[i, j]}
                          for i in range(n) for j, c in enumerate(conds)])
    row = AnovaRM(frame, "answer", "participant", within=["condition"]).fit().anova_table.iloc[0]
    lo, hi = _bootstrap([matrix], lambda ms: partial_eta_squared(ms[0]), seed, n_boot)
    return TestResult("anova", "partial_eta2", partial_eta_squared(matrix), lo, hi, float(row["F Value"]),
                      float(row["Pr > F"]), n, float(row["Num DF"]), test_used="anova_rm", note=note, dropped=dropped)


def anova(exp: Experiment, obs: Sequence[Observation], seed: int = 0, n_boot: int = 2000) -> TestResult:
    if exp.design == "within":
        return anova_rm(exp, obs, seed, n_boot)
    groups = [g for g in (_by(obs, c) for c in exp.condition_names) if len(g)]
    n = int(sum(len(g) for g in groups))
    if len(groups) < 2 or any(len(g) < 2 for g in groups) or eta_squared(groups) != eta_squared(groups):
        return TestResult("anova", "eta2", NAN, NAN, NAN, NAN, NAN, n)
    res = sps.f_oneway(*groups)
    lo, hi = _bootstrap(groups, eta_squared, seed, n_boot)
    return TestResult("anova", "eta2", eta_squared(groups), lo, hi, float(res.statistic), float(res.pvalue), n,
                      float(len(groups) - 1))


def _codes(exp: Experiment, obs: Sequence[Observation]) -> tuple[list[str], list[str], list[list[int]]]:
    """Rows (conditions), columns (options, or target / other) and the per-row 0/1 codes of each column."""
    t = exp.test
    if t.target is not None:
        rows = [str(t.a), str(t.b)]
        cols = [t.target, "other"]
    else:
        rows, cols = list(exp.condition_names), list(exp.measure.options or ())
    coded = [[(cols.index(o.answer) if o.answer in cols else 1) for o in obs if o.condition == r] for r in rows]
    return rows, cols, coded


def _table(coded: Sequence[np.ndarray], ncols: int) -> np.ndarray:
    return np.array([[int((c == j).sum()) for j in range(ncols)] for c in coded], float)


def _phi(coded: Sequence[np.ndarray]) -> float:
    """phi of the 2 x 2 table, signed by share(target | a) - share(target | b)."""
    table = _table(coded, 2)
    v = cramers_v(table)
    if math.isnan(v):
        return NAN
    shares = table[:, 0] / table.sum(axis=1)
    return float(math.copysign(v, shares[0] - shares[1]))


def chi_square(exp: Experiment, obs: Sequence[Observation], seed: int = 0, n_boot: int = 2000) -> TestResult:
    rows, cols, coded_lists = _codes(exp, obs)
    coded = [np.array(c, int) for c in coded_lists]
    n = int(sum(len(c) for c in coded))
    table = _table(coded, len(cols))
    kept = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    metric = exp.metric
    if min(kept.shape) < 2:
        return TestResult("chi_square", metric, NAN, NAN, NAN, NAN, NAN, n)
    chi2, p, df, _ = sps.chi2_contingency(kept, correction=False)
    groups = [c for c in coded if len(c)]
    if metric == "phi":
        effect = _phi(coded)
        lo, hi = _bootstrap(groups, _phi, seed, n_boot) if len(groups) == 2 else (NAN, NAN)
    else:
        effect = cramers_v(table)
        lo, hi = _bootstrap(groups, lambda gs: cramers_v(_table(gs, len(cols))), seed, n_boot)
    return TestResult("chi_square", metric, effect, lo, hi, float(chi2), float(p), n, float(df))


def predictor(exp: Experiment, obs: Sequence[Observation]) -> tuple[np.ndarray, list[Observation]]:
    """The x of linear / logistic / correlation and the observations it is defined for."""
    t = exp.test
    values = {c.name: c.value for c in exp.conditions}
    kept: list[Observation] = []
    xs: list[float] = []
    for o in obs:
        if t.x == "condition":
            if o.condition not in (t.a, t.b):
                continue
            x = 1.0 if o.condition == t.a else 0.0
        elif t.x == "value":
            x = float(values[o.condition])  # type: ignore[arg-type]
        else:
            if o.age is None:
                continue
            x = float(o.age)
        kept.append(o)
        xs.append(x)
    return np.array(xs, float), kept


def fit_logit(y: np.ndarray, x: np.ndarray) -> tuple[object | None, str | None]:
    """statsmodels Logit of y on [1, x]: (fit, None), or (None, why) on perfect separation, no
    convergence or a singular design (the slope is then not estimable)."""
    import statsmodels.api as sm  # noqa: PLC0415

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = sm.Logit(y, sm.add_constant(x)).fit(disp=0, maxiter=200)
        except Exception as exc:  # singular design, or statsmodels' own separation error
            return None, f"{type(exc).__name__}: {exc}"
    if any("separation" in str(w.message).lower() for w in caught) or not fit.mle_retvals.get("converged", True):
        return None, "perfect separation (the outcome is predicted exactly): no slope"
    return fit, None


FISHER_MIN_EXPECTED = 5.0
"""Below this expected count in any cell of the 2 x 2 table the fallback uses Fisher's exact test."""


def separation_fallback(y: np.ndarray, x: np.ndarray, why: str) -> TestResult:
    """The test of the (a, b) x (target, other) table for a logit of y on a 0/1 condition x that
    separates: Fisher's exact test with small expected counts, else chi-square; the risk
    difference share(y | x = 1) - share(y | x = 0) with its Newcombe 95% CI."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    ya, yb = y[x == 1], y[x == 0]
    table = np.array([[ya.sum(), len(ya) - ya.sum()], [yb.sum(), len(yb) - yb.sum()]])
    expected = sps.contingency.expected_freq(table)
    if expected.min() < FISHER_MIN_EXPECTED:
        used, stat, p = "fisher_exact", NAN, float(sps.fisher_exact(table).pvalue)
    else:
        chi2, p, _, _ = sps.chi2_contingency(table, correction=False)
        used, stat = "chi_square", float(chi2)
    rd = float(ya.mean() - yb.mean())
    lo, hi = confint_proportions_2indep(int(ya.sum()), len(ya), int(yb.sum()), len(yb), method="newcomb",
                                        compare="diff")
    note = f"{why}; {used} of the condition x outcome table was run instead, with the risk difference as the effect"
    return TestResult("logistic", "risk_difference", rd, float(lo), float(hi), stat, float(p), len(y),
                      None if used == "fisher_exact" else 1.0, test_used=used, note=note)


def _regression(exp: Experiment, obs: Sequence[Observation], kind: str) -> TestResult:
    import statsmodels.api as sm  # noqa: PLC0415

    x, kept = predictor(exp, obs)
    metric = exp.metric
    n = len(kept)
    if kind == "logistic":
        y = np.array([1.0 if o.answer == exp.test.target else 0.0 for o in kept])
    else:
        y = np.array([float(o.answer) for o in kept])
    if n < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return TestResult(kind, metric, NAN, NAN, NAN, NAN, NAN, n)
    if kind == "logistic":
        fit, why = fit_logit(y, x)
        if fit is None and exp.test.x == "condition":
            return separation_fallback(y, x, why or "the logit did not fit")
        if fit is None:  # a continuous x: no test of the table to fall back on
            return TestResult(kind, metric, NAN, NAN, NAN, NAN, NAN, n,
                              note=f"{why}; with x: {exp.test.x} (continuous) there is no fallback test")
    else:
        fit = sm.OLS(y, sm.add_constant(x)).fit()
    lo, hi = fit.conf_int()[1]  # type: ignore[attr-defined]
    stat = float(fit.tvalues[1])  # type: ignore[attr-defined]
    return TestResult(kind, metric, float(fit.params[1]), float(lo), float(hi), stat, float(fit.pvalues[1]), n,
                      None if kind == "logistic" else float(fit.df_resid))


def linear(exp: Experiment, obs: Sequence[Observation]) -> TestResult:
    return _regression(exp, obs, "linear")


def logistic(exp: Experiment, obs: Sequence[Observation]) -> TestResult:
    return _regression(exp, obs, "logistic")


def correlation(exp: Experiment, obs: Sequence[Observation]) -> TestResult:
    if exp.design == "within" and exp.test.x == "condition":
        got = {(o.participant, o.condition): float(o.answer) for o in obs}
        people = sorted({p for p, _ in got if (p, exp.test.a) in got and (p, exp.test.b) in got})
        x = np.array([got[(p, str(exp.test.a))] for p in people])
        y = np.array([got[(p, str(exp.test.b))] for p in people])
    else:
        x, kept = predictor(exp, obs)
        y = np.array([float(o.answer) for o in kept])
    n = len(x)
    if n < 4 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return TestResult("correlation", "r", NAN, NAN, NAN, NAN, NAN, n)
    res = sps.pearsonr(x, y)
    r = float(res.statistic)
    z, se = math.atanh(max(min(r, 0.999999), -0.999999)), 1 / math.sqrt(n - 3)
    return TestResult("correlation", "r", r, math.tanh(z - Z95 * se), math.tanh(z + Z95 * se),
                      r, float(res.pvalue), n, float(n - 2))


def run_test(exp: Experiment, obs: Sequence[Observation], *, seed: int = 0, n_boot: int = 2000) -> TestResult:
    """The experiment's planned test on its observations."""
    kind = exp.test.kind
    if kind == "anova":
        return anova(exp, obs, seed, n_boot)
    if kind == "chi_square":
        return chi_square(exp, obs, seed, n_boot)
    return {"welch_t": welch_t, "paired_t": paired_t, "linear": linear, "logistic": logistic,
            "correlation": correlation}[kind](exp, obs)


def group_means(exp: Experiment, obs: Sequence[Observation]) -> dict[str, float | None]:
    """Mean answer per condition (likert, numeric) or share of the target option (choice)."""
    out: dict[str, float | None] = {}
    for c in exp.condition_names:
        mine = [o.answer for o in obs if o.condition == c]
        if not mine:
            out[c] = None
        elif exp.measure.kind == "choice":
            target = exp.test.target or (exp.measure.options or ("",))[0]
            out[c] = sum(a == target for a in mine) / len(mine)
        else:
            out[c] = float(np.mean([float(a) for a in mine]))
    return out
