"""Statistics of the bias study's numeracy task (Task B), from answer records only (pure functions).

Per (model, arm, persona with an identity the vignettes touch):
- accuracy when the correct reading is identity-congruent and when it is incongruent;
- RR = Acc(congruent) / Acc(incongruent) with its log-method CI (stats.risk_ratio), the odds ratio
  with Fisher's exact test (stats.fisher_exact), both on the table rows [congruent, incongruent] x
  columns [correct, wrong] of every answer (answers treated as independent, as arXiv 2506.20020 does);
- the same on the neutral control (same numbers, neutral frame, pseudo-congruence);
- difference in differences: the logistic regression correct ~ congruent * identity_frame
  (statsmodels GLM, binomial family, logit link) on the persona's identity and neutral answers;
  the interaction is the congruence effect beyond the neutral control, in log-odds.
Fisher and interaction p-values are Holm-adjusted per model across personas and arms.

Noise floor (METHODS.md general rules: the run-to-run spread of the same persona), by split-half:
the persona's simulated participants (a template and replicate each; every one answers every item)
are split at random into two halves, 200 seeded times, and log RR is computed on each half's
identity-frame answers; the SD of the difference between halves (stats.split_half_floor) is the
floor, reported as the factor `rr_noise_floor` = exp(SD). A congruence effect is called only when
it also lies outside that floor (|log RR| > log rr_noise_floor): within it, the verdict says "not
distinguishable from noise".

Debiasing arms against the 'none' arm: the congruence gap Acc(congruent) - Acc(incongruent), pooled
over the identity personas, its change with a Wald CI, and the change of the baseline accuracy
(every answer on the neutral control) with statsmodels' Wald CI for two independent proportions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..stats import beyond_floor, fisher_exact, holm, risk_ratio, split_half_floor

NONE_ARM = "none"
N_SPLITS = 200
"""Seeded split-half splits per noise floor (every split when there are fewer)."""
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Answer:
    """One simulated participant's answer to one item (a failed request or parse failure: correct None)."""

    model: str
    arm: str
    template: str
    persona: str | None
    participant: int | str
    """The simulated participant (a replicate index; any id in results made elsewhere)."""
    item: str
    vignette: str
    axis: str
    frame: str
    """'identity' or 'neutral' (the control)."""
    congruent: bool | None
    """Whether the correct reading fits the persona's identity (pseudo-congruence on the control)."""
    correct: bool | None
    error: bool = False
    """The request failed (counted, never scored)."""


def _table(rows: Sequence[Answer]) -> np.ndarray:
    cong = [a.correct for a in rows if a.congruent]
    inc = [a.correct for a in rows if a.congruent is False]
    return np.array([[sum(cong), len(cong) - sum(cong)], [sum(inc), len(inc) - sum(inc)]], dtype=int)


def _acc(k: int, n: int) -> float | None:
    return k / n if n else None


def congruence_stats(rows: Sequence[Answer], prefix: str = "") -> dict[str, Any]:
    """Accuracies, RR with CI and Fisher's test on the scored answers of one group (congruence known)."""
    t = _table([a for a in rows if a.correct is not None and a.congruent is not None])
    (kc, wc), (ki, wi) = t
    out: dict[str, Any] = {f"{prefix}n_congruent": int(kc + wc), f"{prefix}n_incongruent": int(ki + wi),
                           f"{prefix}acc_congruent": _acc(kc, kc + wc), f"{prefix}acc_incongruent": _acc(ki, ki + wi),
                           f"{prefix}acc_congruent_ci": _wilson(kc, kc + wc),
                           f"{prefix}acc_incongruent_ci": _wilson(ki, ki + wi)}
    if kc + wc == 0 or ki + wi == 0:
        return {**out, f"{prefix}rr": None, f"{prefix}rr_ci": None, f"{prefix}odds_ratio": None,
                f"{prefix}or_ci": None, f"{prefix}p_fisher": None}
    rr = risk_ratio(t)
    fe = fisher_exact(t)
    return {**out, f"{prefix}rr": _num(rr.estimate), f"{prefix}rr_ci": _ci(rr.ci_low, rr.ci_high),
            f"{prefix}odds_ratio": _num(fe.estimate), f"{prefix}or_ci": _ci(fe.ci_low, fe.ci_high),
            f"{prefix}p_fisher": _num(fe.p_value), f"{prefix}rr_note": rr.note or None}


def _wilson(k: int, n: int) -> list[float | None] | None:
    """Wilson 95% interval of k / n (None when n is 0)."""
    from ..replicate.analysis import wilson  # noqa: PLC0415

    return list(wilson(int(k), int(n))) if n else None


def _log_rr(rows: Sequence[Answer]) -> float | None:
    """log RR of the scored answers with known congruence (risk_ratio's correction; None if undefined)."""
    t = _table([a for a in rows if a.correct is not None and a.congruent is not None])
    if t[0].sum() == 0 or t[1].sum() == 0:
        return None
    rr = risk_ratio(t).estimate
    return math.log(rr) if math.isfinite(rr) and rr > 0 else None


def rr_noise_floor(rows: Sequence[Answer], *, seed: Any, n_splits: int = N_SPLITS) -> dict[str, Any]:
    """The split-half noise floor of a persona's RR: its participants (template, participant) split
    in two halves; exp(SD of log RR(half 1) - log RR(half 2)) (stats.split_half_floor)."""
    by_unit: dict[tuple[str, Any], list[Answer]] = {}
    for a in rows:
        by_unit.setdefault((a.template, a.participant), []).append(a)
    units = list(by_unit.values())
    res = split_half_floor([units], lambda halves: _log_rr([a for u in halves[0] for a in u]),
                           seed=seed, n_splits=n_splits)
    floor = None if math.isnan(res.estimate) else math.exp(res.estimate)
    return {"rr_noise_floor": floor, "rr_noise_floor_method": f"{res.method}; log RR" + (f" ({res.note})"
                                                                                       if res.note else "")}


def _num(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _ci(lo: float, hi: float) -> list[float | None] | None:
    lo_, hi_ = _num(lo), _num(hi)
    return None if lo_ is None and hi_ is None else [lo_, hi_]


def did_logit(rows: Sequence[Answer], *, by_persona: bool = False) -> dict[str, Any] | None:
    """correct ~ congruent * identity_frame (+ C(persona) when pooling personas), statsmodels GLM binomial.

    Returns the interaction (difference in differences, log-odds) with its Wald CI and p, or None
    when a congruence x frame cell is empty, all correct or all wrong (the fit separates and the
    estimate is infinite).
    """
    import pandas as pd  # noqa: PLC0415
    import statsmodels.formula.api as smf  # noqa: PLC0415
    from statsmodels.genmod.families import Binomial  # noqa: PLC0415

    scored = [a for a in rows if a.correct is not None and a.congruent is not None]
    df = pd.DataFrame({"correct": [int(bool(a.correct)) for a in scored],
                       "congruent": [int(bool(a.congruent)) for a in scored],
                       "identity": [int(a.frame == "identity") for a in scored],
                       "persona": [a.persona or "none" for a in scored]})
    if df.empty:
        return None
    cells = df.groupby(["congruent", "identity"])["correct"].agg(["sum", "count"])
    if len(cells) < 4 or ((cells["sum"] == 0) | (cells["sum"] == cells["count"])).any():
        return None
    formula = "correct ~ congruent * identity" + (" + C(persona)" if by_persona and df.persona.nunique() > 1 else "")
    fit = smf.glm(formula, data=df, family=Binomial()).fit()
    term = "congruent:identity"
    lo, hi = fit.conf_int().loc[term]
    return {"model": f"{formula} (statsmodels GLM, binomial family, logit link)", "term": term,
            "estimate": float(fit.params[term]), "ci": [float(lo), float(hi)], "se": float(fit.bse[term]),
            "p": float(fit.pvalues[term]), "n": int(len(df)),
            "odds_ratio_ratio": float(math.exp(fit.params[term]))}


def _scored(answers: Sequence[Answer]) -> list[Answer]:
    return [a for a in answers if not a.error]


def _row_seed(seed: int, *parts: Any) -> int:
    from ..studies._cells import derive_seed  # noqa: PLC0415

    return derive_seed(seed, "noise-floor", *parts)


def numeracy_table(answers: Sequence[Answer], *, seed: int = 0, n_splits: int = N_SPLITS) -> list[dict[str, Any]]:
    """One row per (model, arm, persona): accuracy by congruence, RR, OR, Fisher, control, DiD and
    the RR's split-half noise floor (seeded from `seed` and the row)."""
    keys = list(dict.fromkeys((a.model, a.arm, a.persona) for a in answers))
    table = []
    for model, arm, persona in keys:
        mine = [a for a in answers if (a.model, a.arm, a.persona) == (model, arm, persona)]
        ok = _scored(mine)
        ident = [a for a in ok if a.frame == "identity"]
        neut = [a for a in ok if a.frame == "neutral"]
        parsed_i = [a for a in ident if a.correct is not None]
        parsed_n = [a for a in neut if a.correct is not None]
        row: dict[str, Any] = {
            "model": model, "arm": arm, "persona": persona or "none",
            "axis": next((a.axis for a in ident if a.congruent is not None), None),
            "participants": len({(a.template, a.participant) for a in mine}),
            "answers": len(mine), "errors": sum(a.error for a in mine),
            "parse_failures": sum(a.correct is None for a in ok),
            "accuracy_identity": _acc(sum(bool(a.correct) for a in parsed_i), len(parsed_i)),
            "accuracy_neutral": _acc(sum(bool(a.correct) for a in parsed_n), len(parsed_n)),
            "accuracy_identity_ci": _wilson(sum(bool(a.correct) for a in parsed_i), len(parsed_i)),
            "accuracy_neutral_ci": _wilson(sum(bool(a.correct) for a in parsed_n), len(parsed_n)),
        }
        if row["axis"] is not None:
            row.update(congruence_stats(ident))
            row.update(congruence_stats(neut, "control_"))
            row["did"] = did_logit(ok)
            ci = row.get("rr_ci") or [None, None]
            row["rr_ci_low"], row["rr_ci_high"] = ci
            row.update(rr_noise_floor(ident, seed=_row_seed(seed, model, arm, persona), n_splits=n_splits))
            row["within_noise_floor"] = within_rr_floor(row)
        table.append(row)
    for model in dict.fromkeys(r["model"] for r in table):
        for key, get in (("p_fisher", lambda r: r.get("p_fisher")),
                         ("p_did", lambda r: (r.get("did") or {}).get("p"))):
            rows = [r for r in table if r["model"] == model and get(r) is not None]
            for r, adj in zip(rows, holm([get(r) for r in rows]) if rows else []):
                r[f"{key}_holm"] = float(adj)
    return table


def _pooled(answers: Sequence[Answer], model: str, arm: str) -> tuple[int, int, int, int]:
    rows = [a for a in _scored(answers) if a.model == model and a.arm == arm and a.frame == "identity"
            and a.correct is not None and a.congruent is not None]
    t = _table(rows)
    return int(t[0, 0]), int(t[0].sum()), int(t[1, 0]), int(t[1].sum())


def gap_change(base: tuple[int, int, int, int], arm: tuple[int, int, int, int]) -> dict[str, Any] | None:
    """(gap_arm - gap_base) with a Wald CI, where gap = k1/n1 - k2/n2 (four independent proportions:
    var = sum p(1-p)/n). Worked example in tests/unit/test_bias_analysis.py."""
    if min(base[1], base[3], arm[1], arm[3]) == 0:
        return None
    ps = [(base[0] / base[1], base[1]), (base[2] / base[3], base[3]), (arm[0] / arm[1], arm[1]),
          (arm[2] / arm[3], arm[3])]
    g_base = ps[0][0] - ps[1][0]
    g_arm = ps[2][0] - ps[3][0]
    se = math.sqrt(sum(p * (1 - p) / n for p, n in ps))
    d = g_arm - g_base
    return {"gap_none": g_base, "gap_arm": g_arm, "change": d, "ci": [d - Z95 * se, d + Z95 * se], "se": se}


def proportion_change(k_arm: int, n_arm: int, k_base: int, n_base: int) -> dict[str, Any] | None:
    """k_arm/n_arm - k_base/n_base with statsmodels' Wald CI (confint_proportions_2indep, method 'wald')."""
    from statsmodels.stats.proportion import confint_proportions_2indep  # noqa: PLC0415

    if n_arm == 0 or n_base == 0:
        return None
    lo, hi = confint_proportions_2indep(k_arm, n_arm, k_base, n_base, method="wald", compare="diff")
    return {"base": k_base / n_base, "arm": k_arm / n_arm, "change": k_arm / n_arm - k_base / n_base,
            "ci": [float(lo), float(hi)]}


def debias_rows(answers: Sequence[Answer]) -> list[dict[str, Any]]:
    """Each debiasing arm against 'none': the change of the pooled congruence gap and of baseline accuracy."""
    out = []
    for model in dict.fromkeys(a.model for a in answers):
        arms = list(dict.fromkeys(a.arm for a in answers if a.model == model))
        if NONE_ARM not in arms:
            continue
        base = _pooled(answers, model, NONE_ARM)

        def neutral(arm: str) -> tuple[int, int]:
            rows = [a for a in _scored(answers) if a.model == model and a.arm == arm and a.frame == "neutral"
                    and a.correct is not None]
            return sum(bool(a.correct) for a in rows), len(rows)

        kb, nb = neutral(NONE_ARM)
        for arm in arms:
            if arm == NONE_ARM:
                continue
            gap = gap_change(base, _pooled(answers, model, arm))
            ka, na = neutral(arm)
            out.append({"model": model, "arm": arm, "gap": gap, "baseline": proportion_change(ka, na, kb, nb)})
    return out


# ---------------------------------------------------------------- verdict
def _excludes(ci: Sequence[float | None] | None, value: float) -> bool:
    return ci is not None and ci[0] is not None and ci[1] is not None and (ci[0] > value or ci[1] < value)


def significant(row: dict[str, Any], sequential: bool = False) -> bool:
    """RR's 95% CI excludes 1 and the Holm-adjusted Fisher p < 0.05 (the noise floor not yet asked);
    with a sequential design (`sequential`) `cs_agrees` instead: the fixed-sample p is not valid after looking."""
    if sequential:
        return cs_agrees(row)
    p = row.get("p_fisher_holm")
    return row.get("rr") is not None and _excludes(row.get("rr_ci"), 1.0) and p is not None and p < 0.05


def cs_agrees(row: dict[str, Any]) -> bool:
    """Sequential design: the always-valid CS of the congruence gap beyond no persona (cs_low, cs_high;
    personae.bias.sequential) excludes 0 and the RR's 95% CI excludes 1 on the same side (right more
    often when congruent: CS above 0 and RR above 1; less often: both below)."""
    lo, hi, ci = row.get("cs_low"), row.get("cs_high"), row.get("rr_ci")
    if row.get("rr") is None or lo is None or hi is None or not _excludes(ci, 1.0):
        return False
    return (lo > 0 and ci[0] > 1) or (hi < 0 and ci[1] < 1)  # type: ignore[index,operator]


def _log(x: float | None) -> float | None:
    return math.log(x) if x is not None and x > 0 else None


def within_rr_floor(row: dict[str, Any]) -> bool | None:
    """|log RR| <= log rr_noise_floor (None when the RR or the floor is unknown)."""
    rr, floor = _log(row.get("rr")), _log(row.get("rr_noise_floor"))
    return None if rr is None or floor is None else abs(rr) <= floor


def congruence_effect(row: dict[str, Any], sequential: bool = False) -> bool:
    """An identity-congruence effect: RR's 95% CI excludes 1, the Holm-adjusted Fisher p < 0.05 (with
    a sequential design: `cs_agrees`) and RR lies outside the split-half noise floor (|log RR| >
    log rr_noise_floor; an unknown floor distinguishes nothing)."""
    ci = row.get("rr_ci")
    log_ci = [_log(ci[0]), _log(ci[1])] if ci else None
    return significant(row, sequential) and beyond_floor(_log(row.get("rr")), log_ci, _log(row.get("rr_noise_floor")))


def beyond_control(row: dict[str, Any]) -> bool:
    """The congruence effect is larger on the identity frame than on the neutral control (DiD)."""
    did = row.get("did") or {}
    p = row.get("p_did_holm")
    return bool(did) and _excludes(did.get("ci"), 0.0) and p is not None and p < 0.05


def shrinks_gap(d: dict[str, Any]) -> bool:
    """The arm moves the pooled congruence gap toward 0 (the CI of the change excludes 0 on that side)."""
    g = d.get("gap")
    if not g:
        return False
    lo, hi = g["ci"]
    return (g["gap_none"] > 0 and hi < 0) or (g["gap_none"] < 0 and lo > 0)


def lowers_baseline(d: dict[str, Any]) -> bool:
    b = d.get("baseline")
    return bool(b) and b["ci"][1] < 0


def _fmt_ci(ci: Sequence[float | None] | None) -> str:
    if not ci or ci[0] is None or ci[1] is None:
        return "[n/a]"
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def _fmt_floor(row: dict[str, Any]) -> str:
    f = row.get("rr_noise_floor")
    return "noise floor unknown" if f is None else f"noise floor x{f:.2f}"


def fmt_cs(row: dict[str, Any]) -> str:
    """'always-valid CS [+0.10, +0.32]' (or 'no always-valid CS') from a row's cs_low, cs_high."""
    lo, hi = row.get("cs_low"), row.get("cs_high")
    return "no always-valid CS" if lo is None or hi is None else f"always-valid CS [{lo:+.2f}, {hi:+.2f}]"


def _fmt_rr(r: dict[str, Any], sequential: bool) -> str:
    return f"{r['persona']} RR {r['rr']:.2f} {_fmt_ci(r['rr_ci'])}, " + (f"{fmt_cs(r)}, " if sequential else "") \
        + _fmt_floor(r)


CRITERIA = {False: "RR 95% CI excludes 1, Holm-adjusted Fisher p < 0.05, RR outside the noise floor",
            True: "always-valid CS of the congruence gap beyond no persona excludes 0, the RR 95% CI excludes 1 on "
                  "the same side, RR outside the noise floor"}
"""What a called identity-congruence effect passed, in the fixed and in the sequential design."""


def numeracy_verdict(table: Sequence[dict[str, Any]], debias: Sequence[dict[str, Any]],
                     counts: dict[str, int], *, sequential: bool = False) -> str:
    """The verdict, from the table's rows, the debias rows and the counts only. With a sequential
    design (`sequential`) an effect is called from the always-valid CS (`cs_agrees`), never from
    the fixed-sample Fisher p, which is not valid after looking at the data."""
    parts = []
    if counts.get("errors"):
        parts.append(f"{counts['errors']} of {counts.get('requests', 0)} requests failed (counted, not scored).")
    for model in dict.fromkeys(r["model"] for r in table):
        rows = [r for r in table if r["model"] == model]
        said: list[str] = []
        failures = sum(r["parse_failures"] for r in rows)
        total = sum(r["answers"] - r["errors"] for r in rows)
        if total and failures / total > 0.05:
            said.append(f"{failures} of {total} answers ({failures / total:.0%}) could not be parsed (left out, not "
                        "scored wrong).")
        tested = [r for r in rows if r.get("rr") is not None]
        if not tested:
            said.append("No persona could be compared on congruent and incongruent items (no identity persona, or no "
                        "scored answer on one side).")
        for arm in dict.fromkeys(r["arm"] for r in tested):
            arm_rows = [r for r in tested if r["arm"] == arm]
            hits = [r for r in arm_rows if congruence_effect(r, sequential)]
            noise = [r for r in arm_rows if significant(r, sequential) and not congruence_effect(r, sequential)]
            label = "no debiasing" if arm == NONE_ARM else f"arm {arm}"
            if hits:
                said.append(f"With {label}, {len(hits)} of {len(arm_rows)} identity personas read the table "
                            "differently when the truth fit their identity: " + "; ".join(
                                _fmt_rr(r, sequential) + (" (beyond the neutral control)" if beyond_control(r) else
                                                          " (not beyond the neutral control)") for r in hits)
                            + f" ({CRITERIA[sequential]}).")
            else:
                best = max(arm_rows, key=lambda r: abs(math.log(r["rr"])) if r["rr"] else 0.0)
                rule = f"called when: {CRITERIA[True]}" if sequential else \
                    "Holm-adjusted Fisher, alpha 0.05, with the RR CI excluding 1 and RR outside the noise floor"
                said.append(f"With {label}, none of the {len(arm_rows)} identity personas shows an identity-congruence "
                            f"effect (largest: {_fmt_rr(best, sequential)}; {rule}).")
            if noise:
                said.append(f"With {label}, " + "; ".join(_fmt_rr(r, sequential) for r in noise)
                            + f" {'passes' if len(noise) == 1 else 'pass'} the {'CS' if sequential else 'CI and Holm'} "
                            "test but not the noise floor (the split-half spread of the same persona): not "
                            "distinguishable from noise.")
            fixed_only = [r for r in arm_rows if sequential and significant(r) and not cs_agrees(r)]
            if fixed_only:
                said.append(f"With {label}, for " + ", ".join(r["persona"] for r in fixed_only) + " the fixed-sample "
                            "RR CI and Holm-adjusted Fisher test point to an effect but the always-valid CS includes 0 "
                            "or points the other way (fixed-sample figures are not valid after looking at the data): "
                            "not counted.")
        for d in (x for x in debias if x["model"] == model):
            if not d.get("gap"):
                said.append(f"Arm {d['arm']}: no congruence gap to compare.")
                continue
            g = d["gap"]
            verb = "shrinks" if shrinks_gap(d) else "does not shrink"
            text = (f"Arm {d['arm']} {verb} the congruence gap ({g['gap_none']:+.2f} -> {g['gap_arm']:+.2f}, change "
                    f"{g['change']:+.2f} {_fmt_ci(g['ci'])})")
            if d.get("baseline"):
                b = d["baseline"]
                low = lowers_baseline(d)
                text += (f" and {'lowers' if low else 'does not lower'} baseline accuracy on the neutral control "
                         f"({b['base']:.2f} -> {b['arm']:.2f}, {_fmt_ci(b['ci'])})")
            said.append(text + ".")
        parts.append(f"{model}: " + " ".join(said))
    if not table:
        parts.append("No answer was recorded.")
    return " ".join(parts)
