"""Scoring a replication: one row per experiment, the suite's statistics, and the verdict.

Row statuses (`status`), from the planned test only:
- replicated: p < .05 in the original direction (signed effects: the sign of original.effect;
  anova with an `order`: the same highest and lowest condition; otherwise any p < .05): the
  paper's success criterion (Hewitt et al. 2024, arXiv 2408.16073);
- opposite: p < .05 the other way; not significant: p >= .05; no estimate: the test could not run.

Suite (over the experiments run; `reference` is the large replication where one exists, else the
original): success rate over experiments whose reference found an effect (Wilson 95% CI); the
false-positive rate over experiments whose reference found none (significant either way); a
logistic regression of success on -log10(original p); the share of marginal originals
(.01 <= p < .05) replicated; coverage (the synthetic 95% CI contains the reference effect);
inflation (median synthetic / reference effect over real effects).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .experiment import Experiment
from .planned import Observation, TestResult, fit_logit, group_means

ALPHA = 0.05
REPLICATED, OPPOSITE, NOT_SIGNIFICANT, NO_ESTIMATE = "replicated", "opposite", "not significant", "no estimate"


def _nan(x: float | None) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def status_of(exp: Experiment, result: TestResult, means: dict[str, float | None]) -> str:
    """The row's status from the test result (see the module docstring)."""
    if _nan(result.p) or _nan(result.effect):
        return NO_ESTIMATE
    if result.p >= ALPHA:
        return NOT_SIGNIFICANT
    if exp.signed:
        if exp.original.effect == 0:
            return REPLICATED
        return REPLICATED if math.copysign(1, result.effect) == math.copysign(1, exp.original.effect) else OPPOSITE
    order = exp.test.order
    known = {k: v for k, v in means.items() if v is not None}
    if order and known:
        hi, lo = max(known, key=known.__getitem__), min(known, key=known.__getitem__)
        return REPLICATED if (hi, lo) == (order[0], order[-1]) else OPPOSITE
    return REPLICATED


COLLAPSE_MODAL_SHARE = 0.9
"""A warning of collapse onto one answer at this share of the modal answer (any measure)."""
PILE_MODAL_SHARE = 0.8
"""A warning of a pile-up onto one answer at this share of the modal answer (any measure)."""
PILE_END_SHARE = 0.6
"""A warning of a pile-up at one end at this share of answers at the scale's minimum or maximum."""
MIDDLE_SHARE = 0.6
"""A warning of collapse toward the middle at this share at the middle point(s) ..."""
MIDDLE_MAX_EXTREME = 0.05
"""... with fewer than this share at the ends."""
MIN_ANSWERS_TO_WARN = 5
"""No distribution warning on fewer answers than this."""


def _scale_shares(exp: Experiment, xs: np.ndarray) -> dict[str, Any]:
    """SD ratio and the shares at the minimum, maximum, ends and middle of a bounded scale."""
    m = exp.measure
    bounds = m.scale if m.kind == "likert" else (m.min, m.max)
    if bounds is None or bounds[0] is None or bounds[1] is None:
        return {}
    low, high = float(bounds[0]), float(bounds[1])
    sd = float(xs.std(ddof=1)) if len(xs) > 1 else None
    width = 0.5 if m.kind == "likert" else (high - low) / 10  # the middle point(s), or the middle tenth
    return {"low": low, "high": high, "sd_ratio": None if sd is None else sd / ((high - low) / 2),
            "share_min": float(np.mean(xs <= low)), "share_max": float(np.mean(xs >= high)),
            "share_extreme": float(np.mean((xs <= low) | (xs >= high))),
            "share_middle": float(np.mean(np.abs(xs - (low + high) / 2) <= width))}


def _number(x: float) -> str:
    return f"{x:g}"


def distribution_warning(out: dict[str, Any], modal: str) -> str | None:
    """The first warning that applies, most severe first (thresholds: the constants above)."""
    if out["n"] < MIN_ANSWERS_TO_WARN:
        return None
    share = out["modal_share"]
    ends = [(end, out[key], _number(out[bound])) for end, key, bound in
            (("minimum", "share_min", "low"), ("maximum", "share_max", "high")) if out.get(key) is not None]
    if share >= COLLAPSE_MODAL_SHARE:
        at = next((f", the {end} of the scale" for end, _, value in ends if value == modal), "")
        return f"collapse onto one answer ({share:.0%} gave the same answer, {modal}{at})"
    for end, end_share, value in ends:
        if end_share >= PILE_END_SHARE:
            return f"pile-up at the {end} of the scale ({end_share:.0%} answered {value})"
    if share >= PILE_MODAL_SHARE:
        return f"pile-up onto one answer ({share:.0%} gave {modal})"
    if out["share_middle"] is not None and out["share_middle"] >= MIDDLE_SHARE and (
            out["share_extreme"] or 0) < MIDDLE_MAX_EXTREME:
        return (f"collapse toward the middle ({out['share_middle']:.0%} at the middle, "
                f"{out['share_extreme']:.0%} at the ends)")
    return None


def distribution(exp: Experiment, obs: Sequence[Observation]) -> dict[str, Any]:
    """SD and the shares of extreme, minimum, maximum, middle and modal answers against the scale,
    with a warning on collapse (onto one answer, toward the middle) or a pile-up (at one end, onto
    one answer)."""
    answers = [o.answer for o in obs]
    out: dict[str, Any] = {"n": len(answers), "sd": None, "sd_ratio": None, "share_extreme": None,
                           "share_min": None, "share_max": None, "share_middle": None, "modal_share": None,
                           "warning": None}
    if not answers:
        return out
    values, counts = np.unique(np.array([str(a) for a in answers]), return_counts=True)
    out["modal_share"] = float(counts.max() / counts.sum())
    modal = str(values[int(counts.argmax())])
    if exp.measure.kind != "choice":
        xs = np.array([float(a) for a in answers])
        out["sd"] = float(xs.std(ddof=1)) if len(xs) > 1 else None
        out.update(_scale_shares(exp, xs))
        modal = _number(float(modal))
    else:
        modal = f"'{modal}'"
    out["warning"] = distribution_warning(out, modal)
    for key in ("low", "high"):
        out.pop(key, None)
    return out


def experiment_row(exp: Experiment, result: TestResult, obs: Sequence[Observation], *, model: str, planned: int,
                   errors: int, parse_failures: int) -> dict[str, Any]:
    """The table row of one experiment on one model."""
    means = group_means(exp, obs)
    ref = exp.reference
    status = status_of(exp, result, means)
    same_metric = result.metric == exp.metric  # a fallback test's effect is not comparable with the reference's
    ratio = None  # against a null reference a ratio only measures how near zero the reference is
    if same_metric and not _nan(result.effect) and ref.effect and not exp.original_is_null:
        ratio = result.effect / ref.effect
    covers = None  # a reference known only by its conclusion (found_effect) has no effect to cover
    if same_metric and ref.effect is not None and not (_nan(result.ci_low) or _nan(result.ci_high)):
        covers = bool(result.ci_low <= ref.effect <= result.ci_high)
    dist = distribution(exp, obs)
    return {
        "model": model, "experiment": exp.id, "test": exp.test.kind, "test_used": result.test_used or exp.test.kind,
        "test_note": result.note, "metric": result.metric, "reference_metric": exp.metric,
        "participants": planned, "answered": len({o.participant for o in obs}), "errors": errors,
        "parse_failures": parse_failures, "dropped": result.dropped,
        "effect": None if _nan(result.effect) else result.effect,
        "ci_low": None if _nan(result.ci_low) else result.ci_low,
        "ci_high": None if _nan(result.ci_high) else result.ci_high,
        "p": None if _nan(result.p) else result.p,
        "statistic": None if _nan(result.statistic) else result.statistic,
        "original_effect": exp.original.effect, "original_p": exp.original.p, "original_n": exp.original.n,
        "reference_effect": ref.effect, "reference_p": ref.p,
        "reference": "replication" if exp.replication is not None else "original",
        "reference_is_null": exp.original_is_null,
        "status": status, "success": status == REPLICATED, "ratio": ratio, "covers_reference": covers,
        "means": means, "sd": dist["sd"], "sd_ratio": dist["sd_ratio"], "share_extreme": dist["share_extreme"],
        "share_min": dist["share_min"], "share_max": dist["share_max"],
        "modal_share": dist["modal_share"], "distribution_warning": dist["warning"],
    }


def wilson(k: int, n: int) -> tuple[float | None, float | None]:
    """Wilson 95% interval of k / n (statsmodels proportion_confint, method 'wilson')."""
    if n == 0:
        return None, None
    from statsmodels.stats.proportion import proportion_confint  # noqa: PLC0415

    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson")
    return float(lo), float(hi)


def _rate(rows: Sequence[dict[str, Any]], hit: str) -> dict[str, Any]:
    k, n = sum(bool(r[hit]) for r in rows), len(rows)
    lo, hi = wilson(k, n)
    return {"k": k, "n": n, "rate": k / n if n else None, "ci_low": lo, "ci_high": hi}


def success_regression(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Logit of success on -log10(original p) (statsmodels), over the rows with an estimate."""
    usable = [r for r in rows if r["status"] != NO_ESTIMATE]
    out: dict[str, Any] = {"formula": "success ~ -log10(original p)", "n": len(usable)}
    y = np.array([float(r["success"]) for r in usable])
    x = np.array([-math.log10(r["original_p"]) for r in usable])
    if len(usable) < 4 or len(set(y.tolist())) < 2 or np.ptp(x) == 0:
        return {**out, "error": "needs at least 4 experiments with both successes and failures and differing p"}
    fit, why = fit_logit(y, x)
    if fit is None:
        return {**out, "error": why}
    lo, hi = fit.conf_int()[1]  # type: ignore[attr-defined]
    return {**out, "intercept": float(fit.params[0]), "slope": float(fit.params[1]), "ci_low": float(lo),
            "ci_high": float(hi), "p": float(fit.pvalues[1])}


def suite_stats(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The suite statistics of one model's rows (see the module docstring)."""
    effects = [r for r in rows if not r["reference_is_null"]]
    nulls = [r for r in rows if r["reference_is_null"]]
    marginal = [r for r in rows if 0.01 <= r["original_p"] < 0.05]
    significant = [{**r, "significant": r["p"] is not None and r["p"] < ALPHA} for r in nulls]
    covered = [r for r in rows if r["covers_reference"] is not None]
    ratios = [r["ratio"] for r in effects if r["ratio"] is not None]
    return {
        "experiments": len(rows),
        "success": _rate(effects, "success"),
        "false_positive": _rate(significant, "significant"),
        "marginal": _rate(marginal, "success"),
        "coverage": _rate(covered, "covers_reference"),
        "inflation": {"n": len(ratios), "median_ratio": float(np.median(ratios)) if ratios else None,
                      "median_abs_ratio": float(np.median(np.abs(ratios))) if ratios else None},
        "regression": success_regression(rows),
        "distribution_warnings": sum(r["distribution_warning"] is not None for r in rows),
    }


def _num(x: float | None, fmt: str = ".2f") -> str:
    return "n/a" if x is None else format(x, fmt)


def _p(p: float | None) -> str:
    return "n/a" if p is None else ("< .001" if p < 0.001 else f"{p:.3f}")


def _one(r: dict[str, Any]) -> str:
    ran = f"by {r['test_used']} instead of {r['test']}: " if is_fallback(r) else ""
    ref_metric = r["reference_metric"]
    ref = f"reference {ref_metric} {_num(r['reference_effect'])}" if ref_metric != r["metric"] else (
        f"reference {_num(r['reference_effect'])}")
    est = f"{ran}{r['metric']} {_num(r['effect'])} [{_num(r['ci_low'])}, {_num(r['ci_high'])}], p {_p(r['p'])}; {ref}"
    if r["status"] == NO_ESTIMATE:
        return f"{r['experiment']} no estimate"
    if r["status"] == REPLICATED and r["reference_is_null"]:  # the original's effect, which its reference did not find
        return f"{r['experiment']} replicated the original ({est}), a false positive: its reference found no effect"
    return f"{r['experiment']} {r['status']} ({est})"


def _share(part: dict[str, Any], what: str) -> str:
    if not part["n"]:
        return ""
    return (f"{part['k']} of {part['n']} {what} ({part['rate']:.0%}, 95% CI {part['ci_low']:.0%} to "
            f"{part['ci_high']:.0%})")


FALLBACK_TESTS = ("fisher_exact", "chi_square")
"""The tests the logistic test falls back to under separation (`TestResult.test_used`)."""


def is_fallback(row: dict[str, Any]) -> bool:
    """The row's planned logistic test separated and another test scored it (a planned chi_square is not one)."""
    return row["test"] == "logistic" and row["test_used"] in FALLBACK_TESTS


def _warned(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The verdict's sentences on distribution warnings: collapse, then pile-up."""
    said = []
    collapsed = [r["experiment"] for r in rows if r["distribution_warning"] and "collapse" in r["distribution_warning"]]
    piled = [r["experiment"] for r in rows if r["distribution_warning"] and "pile-up" in r["distribution_warning"]]
    if collapsed:
        said.append(f"Answers collapsed in {len(collapsed)} experiment{'s' if len(collapsed) != 1 else ''} "
                    f"({', '.join(collapsed)}): their tests compare near-constant answers.")
    if piled:
        said.append(f"Answers piled up at one end or on one answer in {len(piled)} experiment"
                    f"{'s' if len(piled) != 1 else ''} ({', '.join(piled)}; see distribution_warning): "
                    "their tests compare bunched answers.")
    return said


def verdict(rows: Sequence[dict[str, Any]], suites: dict[str, dict[str, Any]]) -> str:
    """The verdict from the table's rows and the suite statistics only, per model."""
    parts = []
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        s = suites[model]
        said = []
        if all(r["status"] == NO_ESTIMATE for r in mine):
            said.append("no experiment gave an estimate (see errors and parse_failures), so nothing replicated or failed.")
        else:
            if s["success"]["n"]:
                said.append(_share(s["success"], "original effects replicated") + ".")
            if s["false_positive"]["n"]:
                said.append(_share(s["false_positive"], "null results came out significant (false positives)") + ".")
            if s["coverage"]["n"]:
                said.append(f"The synthetic CI covered the reference effect in {s['coverage']['k']} of "
                            f"{s['coverage']['n']}.")
            if s["inflation"]["median_ratio"] is not None:
                said.append(f"Median synthetic / reference effect: {s['inflation']['median_ratio']:.2f}.")
            if len(mine) <= 6:
                said.append("; ".join(_one(r) for r in mine) + ".")
        said.extend(_warned(mine))
        fallback = [r["experiment"] for r in mine if is_fallback(r)]
        if fallback:
            said.append(f"The logit separated in {len(fallback)} experiment{'s' if len(fallback) != 1 else ''} "
                        f"({', '.join(fallback)}): tested on the condition x outcome table instead, with the risk "
                        "difference as the effect (not compared with the reference's log odds).")
        dropped = sum(r["dropped"] for r in mine)
        if dropped:
            said.append(f"{dropped} participants missing an answer to a condition were left out of "
                        "within-subjects tests (counted in dropped).")
        lost = sum(r["errors"] for r in mine)
        if lost:
            said.append(f"{lost} failed requests are counted in errors, not scored.")
        parts.append(f"{model}: " + " ".join(said))
    return " ".join(parts)
