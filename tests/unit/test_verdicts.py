"""Verdicts never contradict the numbers they are written from (generated summaries, hypothesis),
and the pairing rule that decides which units enter a comparison."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from personae.studies._pairing import pair_units
from personae.studies.accuracy import _verdict as accuracy_verdict
from personae.studies.individuation import _verdict as individuation_verdict
from personae.studies.style import _verdict as style_verdict
from personae.studies.variance import _verdict as variance_verdict

# ---------------------------------------------------------------- the pairing helper


def test_a_unit_enters_only_if_every_arm_succeeded_and_drops_are_counted_per_arm() -> None:
    units = [f"u{i}" for i in range(10)]
    p = pair_units(units, ("with", "without"), {"with": {"u0", "u1", "u2", "u3"}, "without": set(units) - {"u3"}})
    assert p.complete == ("u0", "u1", "u2")
    assert p.dropped == {"with": 6, "without": 1}  # u3 failed in both arms: counted in both
    assert (p.units, p.n_dropped, p.share_dropped, p.status) == (10, 7, 0.7, "not enough data")
    assert p.as_dict() == {"units": 10, "paired": 3, "dropped": {"with": 6, "without": 1}, "share_dropped": 0.7,
                           "status": "not enough data"}
    assert pair_units(units, ("a", "b"), {"a": units, "b": units}).status == "ok"
    assert pair_units(units, ("a", "b"), {"a": units, "b": units[1:]}).status == "dropped"  # 10% > 5%
    assert pair_units(units, ("a", "b"), {"a": units, "b": units[5:]}).status == "dropped"  # exactly 50%
    assert pair_units([], ("a", "b"), {}).status == "not enough data"
    with pytest.raises(ValueError, match="two or more distinct arms"):
        pair_units(units, ("a", "a"), {})


# ---------------------------------------------------------------- generated summaries

finite = st.floats(-3, 3, allow_nan=False)


@st.composite
def interval(draw: Any, allow_none: bool = True) -> tuple[float, float | None, float | None]:
    """(estimate, low, high) with low <= estimate <= high, or no CI."""
    est = draw(finite)
    if allow_none and draw(st.booleans()):
        return est, None, None
    lo, hi = est - draw(st.floats(0, 2)), est + draw(st.floats(0, 2))
    return est, lo, hi


@st.composite
def pairing_stats(draw: Any, arms: tuple[str, str]) -> dict[str, Any]:
    units = draw(st.integers(0, 60))
    a, b = draw(st.integers(0, units)), draw(st.integers(0, units))
    paired = draw(st.integers(max(0, units - a - b), units - max(a, b)))
    share = (units - paired) / units if units else 0.0
    status = "not enough data" if units == 0 or share > 0.5 else "dropped" if share > 0.05 else "ok"
    return {"units": units, "paired": paired, "dropped": {arms[0]: a, arms[1]: b}, "share_dropped": share,
            "status": status}


@st.composite
def individuation_summary(draw: Any) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    exps = draw(st.lists(st.sampled_from(["e1", "e2", "e3", "e4", "e5"]), unique=True, max_size=5))
    table, pairing, ds = [], {}, []
    for exp in exps:
        main = draw(pairing_stats(("with", "without")))
        row: dict[str, Any] = {"model": "m", "experiment": exp, "d_status": main["status"],
                               "share_dropped": main["share_dropped"]}
        pairing[exp] = {"d": main}
        if main["status"] != "not enough data" and draw(st.booleans()):
            d, lo, hi = draw(interval(allow_none=False))
            row.update(d=d, d_ci_low=lo, d_ci_high=hi)
            ds.append(d)
            if draw(st.booleans()):
                content = draw(pairing_stats(("shuffled", "with")))
                pairing[exp]["d_content"] = content
                if content["status"] != "not enough data":
                    c, clo, chi = draw(interval(allow_none=False))
                    row.update(d_content=c, d_content_ci_low=clo, d_content_ci_high=chi)
        table.append(row)
    if ds:
        mean = sum(ds) / len(ds)
        lo = hi = None
        if len(ds) >= 2:
            lo, hi = mean - draw(st.floats(0, 2)), mean + draw(st.floats(0, 2))
        dist = {"experiments": len(ds), "mean_d": mean, "ci_low": lo, "ci_high": hi}
    else:
        dist = {"experiments": 0}
    return {"m": dist}, table, {"m": pairing}


def named(verdict: str, phrase: str) -> list[str]:
    """The experiments a verdict lists after `phrase` ('above 0 in 2 (e1, e3)' -> [e1, e3])."""
    m = re.search(re.escape(phrase) + r" (\d+)(?: \(([^)]*)\))?", verdict)
    assert m is not None, (phrase, verdict)
    names = m.group(2).split(", ") if m.group(2) else []
    assert int(m.group(1)) == len(names) or phrase.endswith("includes 0 in")
    return names


GENERATED = settings(max_examples=300, deadline=None, derandomize=True)  # no unseeded randomness in tests


def check_drop_lead(verdict: str, comparisons: Any) -> None:
    """The verdict leads with the drops exactly when a comparison lost more than 5% of its units."""
    warn = any(c["units"] and c["share_dropped"] > 0.05 for c in comparisons)
    assert verdict.startswith("Failed requests broke the pairing") == warn


@pytest.mark.slow  # make test runs it; the pre-stop check's 60 s does not
@GENERATED
@given(individuation_summary())
def test_the_individuation_verdict_never_contradicts_its_numbers(summary: Any) -> None:
    per_model, table, pairing = summary
    verdict = individuation_verdict(per_model, table, pairing)
    check_drop_lead(verdict, [c for e in pairing["m"].values() for c in e.values()])
    assert "excludes 0" not in verdict
    rows, dist = {r["experiment"]: r for r in table}, per_model["m"]
    if not dist["experiments"]:
        assert "no experiment had enough scored participants" in verdict and "helps" not in verdict
        return
    lo, hi = dist["ci_low"], dist["ci_high"]
    assert ("the profile helps predict" in verdict) == (lo is not None and lo > 0)
    assert ("the profile hurts predict" in verdict) == (hi is not None and hi < 0)
    if "helps" in verdict:
        assert dist["mean_d"] > 0 and lo > 0
    if lo is not None and lo <= 0 <= hi:
        assert "includes 0)" in verdict
    for exp in named(verdict, "above 0 in"):
        assert rows[exp]["d_ci_low"] > 0
    for exp in named(verdict, "below 0 in"):
        assert rows[exp]["d_ci_high"] < 0
    with_d = [r for r in table if r.get("d") is not None]
    assert f"above 0 in {sum(r['d_ci_low'] > 0 for r in with_d)}" in verdict
    assert f"includes 0 in {sum(r['d_ci_low'] <= 0 <= r['d_ci_high'] for r in with_d)}." in verdict
    block = re.search(r"In \d+ \(([^)]*)\) the profile beats no profile", verdict)
    for exp in block.group(1).split(", ") if block else []:  # a gain only where d's CI is above 0
        assert rows[exp]["d_ci_low"] > 0 and not rows[exp]["d_content_ci_low"] > 0
    if re.search(r"\bgain\b", verdict):
        assert block is not None
    scant = [r["experiment"] for r in table if r["d_status"] == "not enough data"]
    assert ("Not enough data" in verdict) == bool(scant)


@st.composite
def accuracy_summary(draw: Any) -> tuple[list[dict[str, Any]], float, dict[str, Any]]:
    chance = draw(st.sampled_from([0.1, 0.2, 0.25, 0.5]))
    conds = draw(st.lists(st.sampled_from(["in-domain", "toddler", "layperson", "pirate"]), unique=True, max_size=4))
    has_base = draw(st.booleans()) or not conds
    all_failed = draw(st.integers(0, 9)) == 0
    table, pairing = [], {}
    for cond in (["baseline"] if has_base else []) + conds:
        acc, lo, hi = draw(interval())
        acc, lo, hi = (None, None, None) if all_failed else (abs(acc) / 3, None if lo is None else abs(acc) / 3 - 0.1,
                                                            None if hi is None else abs(acc) / 3 + 0.1)
        row: dict[str, Any] = {"model": "m", "condition": cond, "accuracy": acc, "ci_low": lo, "ci_high": hi,
                               "parse_failure_rate": None if all_failed else draw(st.floats(0, 1)),
                               "run_to_run_sd": draw(st.one_of(st.none(), st.floats(0, 0.3)))}
        if cond != "baseline" and has_base:
            p = draw(pairing_stats((cond, "baseline")))
            pairing[cond] = p
            row.update(status=p["status"], paired_items=p["paired"])
            if p["status"] != "not enough data" and not all_failed and draw(st.booleans()):
                d, dlo, dhi = draw(interval(allow_none=False))
                row.update(diff=d / 3, diff_ci_low=dlo / 3, diff_ci_high=dhi / 3,
                           p_wilcoxon_holm=draw(st.floats(0, 1)))
        table.append(row)
    return table, chance, {"m": pairing} if pairing else {}


@pytest.mark.slow  # make test runs it; the pre-stop check's 60 s does not
@GENERATED
@given(accuracy_summary())
def test_the_accuracy_verdict_never_contradicts_its_numbers(summary: Any) -> None:
    table, chance, pairing = summary
    verdict = accuracy_verdict(table, chance, pairing)
    check_drop_lead(verdict, pairing.get("m", {}).values())
    rows = {r["condition"]: r for r in table}
    base = rows.get("baseline")
    others = [r for r in table if r["condition"] != "baseline"]
    assert "above chance" not in verdict.replace("at or below chance", "")
    if base and base.get("accuracy") is not None and base["ci_low"] is not None and base["ci_low"] <= chance:
        # which number is compared: the lower end of the CI, not the accuracy
        assert f"lower end of its 95% CI ({base['ci_low']:.2f}) is at or below chance ({chance:.2f})" in verdict
    else:
        assert "chance" not in verdict
    if not others:
        assert "persona condition" not in verdict and "compared conditions" not in verdict
    changed = re.search(r"Accuracy changed for (\d+) of \d+ compared conditions: (.*?) \(Holm", verdict)
    for part in changed.group(2).split("], ") if changed else []:
        r = rows[part.split(" ")[0]]
        assert r["p_wilcoxon_holm"] < 0.05 and (r["diff_ci_low"] > 0 or r["diff_ci_high"] < 0)
        assert not (r["run_to_run_sd"] and abs(r["diff"]) <= r["run_to_run_sd"])
    if "None of the" in verdict:
        assert not any(r.get("diff") is not None and r["p_wilcoxon_holm"] < 0.05 and
                       (r["diff_ci_low"] > 0 or r["diff_ci_high"] < 0) and
                       not (r["run_to_run_sd"] and abs(r["diff"]) <= r["run_to_run_sd"]) for r in others)
    ci_only = [r["condition"] for r in others if r.get("diff") is not None and r["diff_ci_low"] is not None
               and not r["p_wilcoxon_holm"] < 0.05 and (r["diff_ci_low"] > 0 or r["diff_ci_high"] < 0)]
    if ci_only and base is not None:  # a CI away from 0 that the corrected test does not back is said, not counted
        assert f"For {', '.join(ci_only)} the 95% CI of the difference excludes 0 but" in verdict
    scant = [r["condition"] for r in others if r.get("status") == "not enough data"]
    if scant and any(r.get("accuracy") is not None for r in table):
        assert f"Not enough data (over half the items dropped) for {', '.join(scant)}." in verdict


def test_old_accuracy_verdict_defects_are_gone() -> None:
    base = {"model": "m", "condition": "baseline", "accuracy": 0.22, "ci_low": 0.08, "ci_high": 0.36,
            "parse_failure_rate": 0.0, "run_to_run_sd": None}
    only = accuracy_verdict([base], 0.10, {})
    assert "0.22 is not above chance" not in only and "(0.08) is at or below chance (0.10)" in only
    assert "persona condition" not in only and "Only the no-persona baseline was run (accuracy 0.22)" in only


def test_old_individuation_verdict_defects_are_gone() -> None:
    rows = [{"model": "m", "experiment": e, "d": d, "d_ci_low": d - 0.5, "d_ci_high": d + 0.5, "d_content": -0.1,
             "d_content_ci_low": -0.4, "d_content_ci_high": 0.2, "d_status": "ok"} for e, d in (("a", -0.2), ("b", 0.1))]
    verdict = individuation_verdict({"m": {"experiments": 2, "mean_d": -0.05, "ci_low": -0.9, "ci_high": 0.8}}, rows, {})
    assert "excludes 0" not in verdict and "interview block" not in verdict and "helps" not in verdict
    assert "includes 0 in 2." in verdict


def test_the_variance_verdict_does_not_print_0_percent_for_a_share_it_could_not_estimate() -> None:
    pooled = {"items_tested": 4, "more_items_than_chance": {"p_value": 0.5}, "share_items_significant": 0.25,
              "items_significant_holm": 0}
    unknown = variance_verdict({"m": {**pooled, "share_persona": {"estimate": None}}})
    assert "0% of answer variance" not in unknown and "could not be estimated" in unknown
    assert "persona explains 7% of answer variance" in variance_verdict({"m": {**pooled, "share_persona": {"estimate": 0.07}}})


def failed_everywhere(draw: Any, arms: tuple[str, str]) -> dict[str, Any]:
    """The pairing of a comparison in which every request of one arm (or both) failed."""
    units = draw(st.integers(1, 60))
    gone = draw(st.sampled_from([(units, 0), (0, units), (units, units)]))
    return {"units": units, "paired": 0, "dropped": dict(zip(arms, gone)), "share_dropped": 1.0,
            "status": "not enough data"}


def check_drop_counts(verdict: str, comparisons: dict[str, dict[str, Any]]) -> None:
    """Every comparison past 5% dropped is named with its counts, overall and per arm."""
    for label, c in comparisons.items():
        if c["units"] and c["share_dropped"] > 0.05:
            arms = ", ".join(f"{arm} {n}" for arm, n in c["dropped"].items())
            assert (f"{label}: {c['units'] - c['paired']} of {c['units']} units ({c['share_dropped']:.0%}) dropped "
                    f"because an arm failed ({arms})") in verdict


# ---------------------------------------------------------------- style


def moved(e: dict[str, Any]) -> bool:
    """The study's rule, written out again: the CI excludes 0 and the shift is beyond the noise floor."""
    return e.get("shift") is not None and (e["ci_low"] > 0 or e["ci_high"] < 0) and abs(e["shift"]) > e["noise_floor_sd"]


@st.composite
def style_stats(draw: Any) -> dict[str, Any]:
    conds = draw(st.lists(st.sampled_from(["young-child", "pirate", "expert"]), unique=True, max_size=3))
    feats = draw(st.lists(st.sampled_from(["length", "reading_level", "sentiment"]), unique=True, max_size=3))
    all_failed = draw(st.integers(0, 9)) == 0
    stats: dict[str, Any] = {"features": {}, "diversity": {}, "pairing": {}}
    for cond in conds:
        arms = (cond, "baseline")
        p = failed_everywhere(draw, arms) if all_failed else draw(pairing_stats(arms))
        stats["pairing"].setdefault("m", {})[cond] = p
        for f in feats:
            e: dict[str, Any] = {"prompts": p["paired"]}
            if p["status"] != "not enough data" and p["paired"] >= 2 and draw(st.booleans()):
                shift, lo, hi = draw(interval(allow_none=False))
                e.update(shift=shift, ci_low=lo, ci_high=hi,
                         noise_floor_sd=draw(st.one_of(st.just(math.nan), st.floats(0, 2))))
                e["distinguishable"] = moved(e)
            stats["features"].setdefault("m", {}).setdefault(cond, {})[f] = e
    if conds and not all_failed and draw(st.booleans()):
        ratio = draw(st.floats(0.5, 2))
        stats["diversity"]["m"] = {"ratio": ratio, "null_ratio_mean": 1.0, "p_value": draw(st.floats(0.0005, 1)),
                                   "strata": 8}
    else:
        stats["diversity"]["m"] = {"prompts": 0, "answers_without_embedding": 0}
    return stats


@pytest.mark.slow  # make test runs it; the pre-stop check's 60 s does not
@GENERATED
@given(style_stats())
def test_the_style_verdict_never_contradicts_its_numbers(stats: dict[str, Any]) -> None:
    verdict = style_verdict(stats)
    pairings = stats["pairing"].get("m", {})
    check_drop_lead(verdict, pairings.values())
    check_drop_counts(verdict, {f"m {cond} vs baseline": p for cond, p in pairings.items()})
    for cond, p in pairings.items():
        if p["units"] and p["status"] == "not enough data":
            assert re.search(rf"m {cond} vs baseline: [^;]* - not enough data, no estimate", verdict)
    cells = [e for c in stats["features"].get("m", {}).values() for e in c.values()]
    estimated = [e for e in cells if e.get("shift") is not None]
    count = re.search(r"m: (\d+) of (\d+) persona x feature shifts are distinguishable", verdict)
    if estimated:
        assert count is not None
        assert (int(count.group(1)), int(count.group(2))) == (sum(map(moved, estimated)), len(estimated))
    else:  # nothing estimated (all failures, no conditions, no features): no count of shifts at all
        assert count is None and "distinguishable" not in verdict
        assert (f"none of the {len(cells)} persona x feature shifts could be estimated" in verdict) == bool(cells)
    named = re.search(r"features that moved: ([^)]*)\)", verdict)
    flagged = {f for c in stats["features"].get("m", {}).values() for f, e in c.items() if moved(e)}
    assert (named.group(1).split(", ") if named else []) == sorted(flagged)
    assert ("more could not be estimated" in verdict) == (bool(estimated) and len(cells) > len(estimated))
    div = stats["diversity"]["m"]
    if div.get("ratio") is None:
        assert "diverse" not in verdict
    else:
        assert ("answers are more diverse" in verdict) == (div["p_value"] < 0.05)
        assert ("answers are not more diverse" in verdict) == (div["p_value"] >= 0.05)
        assert f"distance ratio {div['ratio']:.2f}, permutation p = {div['p_value']:.3g}" in verdict


def test_the_style_verdict_does_not_count_shifts_it_could_not_estimate_as_indistinguishable() -> None:
    # before: '0 of 3 persona x feature shifts are distinguishable' when 2 of the 3 had no estimate
    shift = {"prompts": 8, "shift": 0.1, "ci_low": -0.2, "ci_high": 0.4, "noise_floor_sd": 0.05}
    stats = {"features": {"m": {"child": {"length": shift, "sentiment": {"prompts": 1}},
                                "pirate": {"length": {"prompts": 0}}}}, "diversity": {"m": {"prompts": 0}}}
    verdict = style_verdict(stats)
    assert "m: 0 of 1 persona x feature shifts are distinguishable from run-to-run noise; 2 more could not be " \
           "estimated (not enough data)." == verdict


# ---------------------------------------------------------------- variance


@st.composite
def variance_stats(draw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    all_failed = draw(st.integers(0, 9)) == 0
    arms = ("democrat", "republican")
    disp = failed_everywhere(draw, arms) if all_failed else draw(pairing_stats(arms))
    comps: dict[str, Any] = {"dispersion": disp}
    pooled: dict[str, Any] = {"items_tested": 0}
    tested = draw(st.integers(0, disp["paired"])) if disp["status"] != "not enough data" else 0
    if tested:
        k = draw(st.integers(0, tested))
        share = draw(st.one_of(st.none(), st.floats(0, 1)))
        pooled = {"items_tested": tested, "share_items_significant": k / tested,
                  "items_significant_holm": draw(st.integers(0, k)),
                  "more_items_than_chance": {"p_value": float(sps.binomtest(k, tested, 0.05,
                                                                             alternative="greater").pvalue)},
                  "share_persona": None if share is None else {"estimate": share}}
    if draw(st.booleans()):  # items with human labels and a no-persona panel
        panels = ("persona panel", "no-persona panel")
        human = failed_everywhere(draw, panels) if all_failed else draw(pairing_stats(panels))
        comps["jsd_to_humans"] = human
        if human["status"] != "not enough data" and human["paired"] and draw(st.booleans()):
            items = draw(st.integers(1, human["paired"]))
            diff, lo, hi = (v / 10 for v in draw(interval(allow_none=False)))
            edge = draw(st.sampled_from([None, 0.0, 0.004, -0.004]))  # CIs that end at or right by 0
            if edge is not None:
                lo, hi = (edge, max(hi, edge)) if draw(st.booleans()) else (min(lo, edge), edge)
                diff = min(max(diff, lo), hi)
            lo, hi = (None, None) if items < 2 else (lo, hi)  # as the study: no CI from one item
            panel = draw(st.floats(0.3, 0.6))
            pooled["jsd_to_humans"] = {"persona_panel": panel, "no_persona_panel": panel - diff, "items": items,
                                       "difference": diff, "difference_ci": None if lo is None else [lo, hi]}
    return {"m": pooled}, {"m": comps}


@pytest.mark.slow  # make test runs it; the pre-stop check's 60 s does not
@GENERATED
@given(variance_stats())
def test_the_variance_verdict_never_contradicts_its_numbers(summary: Any) -> None:
    pooled, pairing = summary
    verdict = variance_verdict(pooled, pairing)
    p, comps = pooled["m"], pairing["m"]
    check_drop_lead(verdict, comps.values())
    check_drop_counts(verdict, {f"m {label}": comps[key] for key, label in (
        ("dispersion", "personas vs run-to-run noise"), ("jsd_to_humans", "persona panel vs no-persona panel "
                                                         "(JSD to humans)")) if key in comps})
    disp = comps["dispersion"]
    if disp["status"] == "not enough data":
        assert (f"m: not enough data to compare personas with run-to-run noise ({disp['paired']} of {disp['units']} "
                "items answered at least twice by every persona), no estimate.") in verdict
        assert "persona differences are" not in verdict and "explains" not in verdict
    elif not p["items_tested"]:
        assert "too few parsed answers" in verdict and "persona differences are" not in verdict
    else:
        chance = p["more_items_than_chance"]["p_value"]
        assert ("persona differences are larger than run-to-run noise" in verdict) == (chance < 0.05)
        assert ("persona differences are not larger than run-to-run noise" in verdict) == (chance >= 0.05)
        assert f"({p['share_items_significant']:.0%} of {p['items_tested']} items significant at 0.05, " \
               f"{p['items_significant_holm']} after Holm" in verdict
        share = (p["share_persona"] or {}).get("estimate")
        assert ("could not be estimated" in verdict) == (share is None)
        if share is not None:
            assert f"persona explains {100 * share:.0f}% of answer variance" in verdict
    human = comps.get("jsd_to_humans")
    jsd = p.get("jsd_to_humans")
    if human is not None and human["status"] == "not enough data":
        assert (f"Against the human label distributions: not enough data ({human['paired']} of {human['units']} "
                "items answered in full by both panels), no estimate.") in verdict
        assert "mean JSD" not in verdict
    elif jsd is None:
        assert "human label" not in verdict
    else:
        assert f"({jsd['items']} items), the persona panel's mean JSD is {jsd['persona_panel']:.3f}" in verdict
        assert f"mean paired difference {jsd['difference']:+.3f}" in verdict
        ci = jsd["difference_ci"]
        assert ("too few items for a CI" in verdict) == (ci is None)
        assert ("the persona panel is closer to the humans" in verdict) == (ci is not None and ci[1] < 0)
        assert ("the persona panel is further from the humans" in verdict) == (ci is not None and ci[0] > 0)
        assert ("the CI includes 0" in verdict) == (ci is not None and ci[0] <= 0 <= ci[1])
