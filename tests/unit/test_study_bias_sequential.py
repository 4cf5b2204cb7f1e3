"""The bias study's sequential design on the fake backend: a planted persona effect stops early,
no effect runs through every unit and calls nothing, the requests are the fixed design's own (same
cache keys), a unit with a failed arm leaves both sides of the CS and is counted, and a design that
cannot work is refused before any model call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from personae.api import run_study
from personae.backends.base import Request
from personae.backends.fake import FakeBackend
from personae.errors import BackendError, ConfigError
from personae.spec import resolve_spec
from personae.stats.sequential import betting_cs
from personae.studies.bias import BiasStudy

from .helpers import FAST_RETRY
from .test_stats_sequential import capital_by_hand
from .test_study_bias import persona_of, responder, uniform

HEADLINES = 48
"""Headlines of the test's file, 24 real and 24 fake."""


def headline_file(tmp_path: Path) -> Path:
    path = tmp_path / "headlines.csv"
    rows = [f"h{k:02d},Report number {k} on the {'' if k % 2 else 'shocking '}news,{'real' if k % 2 else 'fake'}"
            for k in range(HEADLINES)]
    path.write_text("id,headline,veracity\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def veracity_spec(model: str, headlines: Path, **sequential: Any) -> dict[str, Any]:
    return {"study": "bias", "model": model, "replicates": 4, "seed": 3,
            "sampling": {"temperature": 0.7, "max_tokens": 8}, "concurrency": {"requests": 8, "retry": dict(FAST_RETRY)},
            "options": {"tasks": ["veracity"], "headlines": str(headlines), "identities": ["democrat"],
                        "templates": ["you-are"], "arms": ["none"], "mode": "generate",
                        "sequential": {"look_every": 8, **sequential}}}


def rater(discerning: bool):
    """No persona rates 2-5 at random; the Democrat, when `discerning`, rates real 5-6 and fake 1-2."""
    def rate(request: Request) -> str:
        u = uniform(request, "rating")
        if discerning and persona_of(request) == "democrat":
            return str((1 if "shocking" in request.last_user() else 5) + int(u * 2))
        return str(2 + int(u * 4))
    return rate


def run(spec: dict[str, Any], respond: Any) -> tuple[Any, FakeBackend]:
    model = spec["model"]
    backend = FakeBackend(model, responder=respond)
    return run_study(resolve_spec(spec), backends={model: backend}), backend


def test_a_planted_discernment_effect_stops_early_and_the_cs_is_the_units_own(tmp_path: Path) -> None:
    outcome, backend = run(veracity_spec("fake/discern", headline_file(tmp_path)), rater(True))
    seq = outcome.summary.stats["sequential"]
    assert seq["stopped_because"] == "decision" and seq["items_released"] < HEADLINES
    per_headline = 2 * 4  # (democrat + no persona) x 4 participants
    assert seq["calls"] == len(backend.history) == seq["items_released"] * per_headline
    assert seq["calls_fixed_design"] == HEADLINES * per_headline and seq["calls_saved"] > 0
    row = next(r for r in outcome.summary.table if r["task"] == "veracity" and r["persona"] == "democrat")
    assert row["cs_low"] > 0 and row["vda_diff"] > 0 and row["cs_items"] == seq["items_released"]
    assert outcome.summary.stats["headlines"] == seq["items_released"] and outcome.summary.stats["items"] == 0
    assert outcome.summary.verdict.startswith(f"Sequential design: stopped after {seq['looks']} look")
    assert "1 of 1 persona vs no persona comparisons differ" in outcome.summary.verdict
    # the unit values by hand from the replies: (mean rating democrat - mean rating no persona) / 5, signed
    study = BiasStudy(resolve_spec(veracity_spec("fake/discern", headline_file(tmp_path))))
    assert study.sequencer is not None
    order = study.sequencer.order[: seq["items_released"]]
    ratings: dict[tuple[str, bool], list[int]] = {}
    for r in outcome.results:
        ratings.setdefault((r.request.tags.item or "", r.request.tags.persona == "democrat"), []).append(int(r.text))
    by_hand = []
    for h in order:
        sign = 1 if study.headlines_by_id[h].real else -1
        mean = {who: sum(ratings[(h, who)]) / len(ratings[(h, who)]) for who in (True, False)}
        by_hand.append(sign * (mean[True] - mean[False]) / 5)
    values = study.unit_values(outcome.results, order)["fake/discern: veracity none/democrat"]
    assert [values[h] for h in order] == pytest.approx(by_hand)
    # the CS is stats.sequential's betting CS over those values in release order (one comparison: alpha 0.05)
    ref = betting_cs(by_hand, alpha=0.05, bounds=(-1.0, 1.0))
    assert (row["cs_low"], row["cs_high"]) == pytest.approx((ref.cs_low, ref.cs_high))
    assert seq["history"][-1]["comparisons"]["fake/discern: veracity none/democrat"]["cs_low"] == row["cs_low"]
    # and it is the set of means the paper's capital process, written out by hand, never rejected
    y = [(v + 1) / 2 for v in by_hand]
    step = 2 / 1000  # the study's grid of 1,001 candidate means on [-1, 1]
    for m in np.linspace(-1, 1, 201):
        if capital_by_hand(y, (m + 1) / 2, 0.05) >= 1 / 0.05:
            assert not row["cs_low"] + step < m < row["cs_high"] - step, m
        else:
            assert row["cs_low"] <= m <= row["cs_high"], m


def test_no_effect_runs_through_every_headline_and_calls_nothing(tmp_path: Path) -> None:
    outcome, backend = run(veracity_spec("fake/same", headline_file(tmp_path)), rater(False))
    seq = outcome.summary.stats["sequential"]
    assert seq["stopped_because"] == "max_items" and seq["items_released"] == HEADLINES and seq["calls_saved"] == 0
    row = next(r for r in outcome.summary.table if r["task"] == "veracity" and r["persona"] == "democrat")
    assert row["cs_low"] <= 0 <= row["cs_high"]
    assert "none of the 1 persona vs no persona comparisons differs" in outcome.summary.verdict
    assert len({r.request.tags.item for r in outcome.results}) == HEADLINES


def test_the_sequential_requests_are_the_fixed_designs_with_the_same_cache_keys(tmp_path: Path) -> None:
    seq_spec = veracity_spec("fake/keys", headline_file(tmp_path))
    fixed_spec = veracity_spec("fake/keys", headline_file(tmp_path))
    del fixed_spec["options"]["sequential"]
    fixed = BiasStudy(resolve_spec(fixed_spec)).plan([])
    outcome, backend = run(seq_spec, rater(True))
    assert 0 < len(backend.history) < len(fixed)
    keys = {r.cache_key() for r in fixed}
    assert {r.cache_key() for r in backend.history} <= keys
    asked = {x.request.cache_key() for x in outcome.results}
    assert asked <= keys and len(asked) == len(backend.history)
    # so a fixed run's store answers a sequential run of the same spec (another model: a store of its own)
    shared = veracity_spec("fake/shared", headline_file(tmp_path))
    run({**shared, "options": {k: v for k, v in shared["options"].items() if k != "sequential"}}, rater(True))
    again, backend = run(shared, rater(True))
    assert again.results and all(r.cached for r in again.results) and not backend.history
    # plan is a pure function of the results: the first wave is the first look_every units of the order
    study = BiasStudy(resolve_spec(seq_spec))
    assert study.sequencer is not None
    assert {r.tags.item for r in study.plan([])} == set(study.sequencer.order[:8])


def test_a_headline_with_a_failed_arm_leaves_both_sides_and_is_counted(tmp_path: Path) -> None:
    spec = veracity_spec("fake/broken", headline_file(tmp_path), max_items=40)
    study = BiasStudy(resolve_spec(spec))
    assert study.sequencer is not None
    broken = set(study.sequencer.order[1:16:3])  # 5 of the first two batches (a look at 8 cannot decide)
    text = {study.headlines_by_id[h].text for h in broken}
    rate = rater(True)

    def fail_no_persona(request: Request) -> str:
        if persona_of(request) is None and any(t in request.last_user() for t in text):
            raise BackendError("no", status=400)
        return rate(request)

    outcome, _ = run(spec, fail_no_persona)
    seq = outcome.summary.stats["sequential"]
    released = study.sequencer.order[: seq["items_released"]]
    lost = [h for h in released if h in broken]
    assert lost, "the test needs a broken headline among those released"
    pairing = seq["pairing"]["fake/broken: veracity none/democrat"]
    assert pairing["dropped"] == {"persona": 0, "no persona": len(lost)}
    assert pairing["paired"] == len(released) - len(lost) == seq["final"]["fake/broken: veracity none/democrat"]["n"]
    assert outcome.summary.counts["errors"] == len(lost) * 4  # counted, never scored
    values = study.unit_values(outcome.results, released)["fake/broken: veracity none/democrat"]
    assert not set(values) & set(lost)
    assert seq["items_max"] == 40 and seq["calls_fixed_design"] == 40 * 2 * 4
    if len(lost) > 0.05 * len(released):  # the verdict leads with the broken pairing (METHODS, general rules)
        assert outcome.summary.verdict.startswith("Failed requests broke the pairing in 1 comparison")


def test_a_comparison_that_lost_most_of_its_units_gives_no_cs_and_calls_nothing(tmp_path: Path) -> None:
    rate = rater(True)
    broken = {f"Report number {k} on" for k in range(HEADLINES) if k % 5 < 3}  # 60% of the headlines

    def no_persona_fails(request: Request) -> str:
        if persona_of(request) is None and any(b in request.last_user() for b in broken):
            raise BackendError("no", status=400)
        return rate(request)

    outcome, backend = run(veracity_spec("fake/lost", headline_file(tmp_path)), no_persona_fails)
    seq = outcome.summary.stats["sequential"]
    label = "fake/lost: veracity none/democrat"
    study = BiasStudy(resolve_spec(veracity_spec("fake/lost", headline_file(tmp_path))))
    assert study.sequencer is not None
    released = study.sequencer.order[: seq["items_released"]]
    lost = sum(int(h[1:]) % 5 < 3 for h in released)
    assert seq["pairing"][label]["status"] == "not enough data"
    assert seq["pairing"][label]["dropped"] == {"persona": 0, "no persona": lost} and lost > len(released) / 2
    row = next(r for r in outcome.summary.table if r["task"] == "veracity" and r["persona"] == "democrat")
    assert row.get("cs_low") is None
    assert outcome.summary.verdict.startswith("Failed requests broke the pairing in 1 comparison")
    assert "not enough data, no estimate" in outcome.summary.verdict
    assert "comparisons differ:" not in outcome.summary.verdict
    assert outcome.summary.counts["errors"] == lost * 4  # counted, never scored


def politics_vignettes(path: Path, n: int) -> Path:
    """n politics vignettes (democrat / republican) with their own counts, identity frame only."""
    wording = {"intro": "Researchers compared towns {k}.", "treatment": "towns that passed rule {k}",
               "control": "towns that did not", "good": "things got better", "bad": "things got worse"}
    vignettes = [{"id": f"rule-{k}", "axis": "politics", "favours_good": "democrat", "favours_bad": "republican",
                  "counts": [[200 + 7 * k, 80 + k], [90 + k, 20 + k]],
                  "identity": {key: v.format(k=k) for key, v in wording.items()}} for k in range(n)]
    path.write_text(yaml.safe_dump({"vignettes": vignettes}), encoding="utf-8")
    return path


def numeracy_spec(model: str, vignettes: Path) -> dict[str, Any]:
    return {"study": "bias", "model": model, "replicates": 8, "seed": 5,
            "sampling": {"temperature": 0.7, "max_tokens": 8}, "concurrency": {"requests": 8, "retry": dict(FAST_RETRY)},
            "options": {"tasks": ["numeracy"], "vignettes": str(vignettes), "identities": ["democrat", "republican"],
                        "templates": ["you-are"], "arms": ["none"], "mode": "generate",
                        "sequential": {"look_every": 8}}}


@pytest.mark.slow  # make test runs it; the pre-stop check's 60 s does not
@pytest.mark.parametrize(("planted", "stops"), [((0.95, 0.3), True), ((0.7, 0.7), False)], ids=["effect", "null"])
def test_numeracy_stops_for_a_planted_congruence_effect_and_runs_on_without(tmp_path: Path, planted: Any,
                                                                            stops: bool) -> None:
    spec = numeracy_spec(f"fake/num-{stops}", politics_vignettes(tmp_path / "v.yaml", 12))  # 48 identity items
    study = BiasStudy(resolve_spec(spec))
    outcome, backend = run(spec, responder(study, *planted, p_other=0.7))
    seq = outcome.summary.stats["sequential"]
    rows = {r["persona"]: r for r in outcome.summary.table if r["task"] == "numeracy"}
    assert set(seq["final"]) == {"fake/num-" + str(stops) + ": numeracy none/democrat",
                                 "fake/num-" + str(stops) + ": numeracy none/republican"}
    assert seq["alpha_per_comparison"] == pytest.approx(0.025)
    if stops:
        assert seq["stopped_because"] == "decision" and seq["items_released"] < 48
        assert len(backend.history) == seq["calls"] < seq["calls_fixed_design"]
        for pid in ("democrat", "republican"):
            assert rows[pid]["cs_low"] > 0 and rows[pid]["rr"] > 1
        assert "2 of 2 identity personas read the table differently" in outcome.summary.verdict
    else:
        assert seq["stopped_because"] == "max_items" and seq["items_released"] == 48
        assert any(rows[pid]["cs_low"] <= 0 <= rows[pid]["cs_high"] for pid in ("democrat", "republican"))
        assert "read the table differently" not in outcome.summary.verdict
    # each CS is the betting CS at alpha / 2 over the persona's identity items in release order
    assert study.sequencer is not None
    order = study.sequencer.order[: seq["items_released"]]
    for pid in ("democrat", "republican"):
        values = study.unit_values(outcome.results, order)[f"fake/num-{stops}: numeracy none/{pid}"]
        ref = betting_cs([values[i] for i in order if i in values], alpha=0.025)
        assert (rows[pid]["cs_low"], rows[pid]["cs_high"]) == pytest.approx((ref.cs_low, ref.cs_high))
        assert rows[pid]["cs_items"] == len(values) == len(order)


@pytest.mark.parametrize(("options", "field", "words"), [
    ({"results": "released/outcomes.csv"}, "options.sequential", "asks no model"),
    ({"no_persona": False}, "options.no_persona", "no_persona is false"),
    ({"tasks": ["numeracy"], "only": ["gun-control"], "identities": ["man", "woman"]}, "options.sequential",
     "there is no such comparison"),
    ({"sequential": {"stop": "ci_width"}}, "options.sequential.stop", "none is set"),
])
def test_a_sequential_design_that_cannot_work_is_refused_before_any_call(options: dict[str, Any], field: str,
                                                                         words: str, tmp_path: Path) -> None:
    spec = veracity_spec("fake/bad", headline_file(tmp_path))
    spec["options"].update(options)
    spec["options"]["sequential"] = {"look_every": 4, **options.get("sequential", {})}
    with pytest.raises(ConfigError) as err:
        BiasStudy.check(resolve_spec(spec))
    assert err.value.field == field and words in str(err.value) and err.value.fix


def test_a_headline_id_that_is_also_an_item_id_is_refused(tmp_path: Path) -> None:
    """Units are released by id: a headline and a numeracy item may not share one."""
    path = tmp_path / "clash.csv"
    path.write_text("id,headline,veracity\ngun-control.identity.original.good-first,A real one,real\nh2,A fake one,fake\n",
                    encoding="utf-8")
    spec = veracity_spec("fake/clash", path)
    spec["options"].update(tasks=["numeracy", "veracity"], only=["gun-control"])
    with pytest.raises(ConfigError) as err:
        BiasStudy.check(resolve_spec(spec))
    assert err.value.field == "options.headlines" and "also a numeracy item id" in str(err.value)
