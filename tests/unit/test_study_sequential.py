"""Sequential designs (issue 12) on the fake backend: a planted effect stops early in the right
direction, no effect runs to the end without calling one, a width target stops for width, and a
unit with a failed arm leaves both sides of the confidence sequence."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from personae.api import run_study
from personae.backends.base import Request
from personae.backends.fake import FakeBackend
from personae.errors import BackendError
from personae.spec import resolve_spec
from personae.stats.sequential import betting_cs
from personae.studies.accuracy import AccuracyStudy
from personae.studies.variance import VarianceStudy

from . import test_study_accuracy as acc
from . import test_study_variance as var


def accuracy_spec(model: str, **sequential: Any) -> dict[str, Any]:
    data = acc.spec(model=model, replicates=3, conditions=["baseline", "toddler"],
                    sequential={"look_every": 10, **sequential})
    data["options"].pop("limit")  # the whole bank: 84 items
    return data


def run_accuracy(model: str, responder: Any, **sequential: Any) -> Any:
    return run_study(resolve_spec(accuracy_spec(model, **sequential)),
                     backends={model: FakeBackend(model, responder=responder)})


def test_a_planted_effect_stops_early_and_reports_its_direction() -> None:
    outcome = run_accuracy("fake/hurts", acc.responder_with(acc.toddler_hurts))
    seq = outcome.summary.stats["sequential"]
    assert seq["stopped_because"] == "decision" and seq["looks"] < 9
    assert seq["items_released"] == 10 * seq["looks"] < 84
    assert seq["calls"] == len(outcome.results) == seq["items_released"] * 2 * 3
    assert seq["calls_fixed_design"] == 84 * 2 * 3 and seq["calls_saved"] == pytest.approx(1 - seq["calls"] / 504)
    toddler = next(r for r in outcome.summary.table if r["condition"] == "toddler")
    assert toddler["diff"] < 0 and toddler["cs_high"] < 0 and toddler["diff_ci_high"] < 0
    assert toddler["cs_low"] <= toddler["diff_ci_low"]  # the always-valid CS is the wider one
    assert toddler["items"] == toddler["cs_items"] == seq["items_released"]
    assert "Accuracy changed for 1 of 1 compared conditions" in outcome.summary.verdict
    assert outcome.summary.verdict.startswith(f"Sequential design: stopped after {seq['looks']} look")
    # every look released look_every new items, each asked in every arm and replicate
    items_per_look = [h["items"] for h in seq["history"]]
    assert items_per_look == list(range(10, seq["items_released"] + 1, 10))
    # the CS at the last look is the one over the items in release order (stats.sequential, by hand)
    study = AccuracyStudy(resolve_spec(accuracy_spec("fake/hurts")))
    assert study.sequencer is not None
    order = study.sequencer.order[: seq["items_released"]]
    values = study.unit_values(outcome.results, order)["fake/hurts: toddler"]
    ref = betting_cs([values[i] for i in order])
    assert (toddler["cs_low"], toddler["cs_high"]) == (ref.cs_low, ref.cs_high)


def test_no_effect_runs_to_the_end_and_calls_no_effect() -> None:
    outcome = run_accuracy("fake/same", acc.responder_with(acc.no_effect))
    seq = outcome.summary.stats["sequential"]
    assert seq["stopped_because"] == "max_items" and seq["items_released"] == 84 and seq["calls_saved"] == 0
    toddler = next(r for r in outcome.summary.table if r["condition"] == "toddler")
    assert toddler["cs_low"] <= 0 <= toddler["cs_high"]
    assert "None of the 1 compared conditions changed accuracy" in outcome.summary.verdict


def test_a_width_target_stops_for_width() -> None:
    outcome = run_accuracy("fake/width", acc.responder_with(acc.no_effect), stop="ci_width", ci_width=0.6)
    seq = outcome.summary.stats["sequential"]
    assert seq["stopped_because"] == "ci_width" and seq["items_released"] < 84
    final = seq["final"]["fake/width: toddler"]
    assert final["cs_high"] - final["cs_low"] <= 0.6
    assert "changed accuracy" in outcome.summary.verdict and "Accuracy changed for" not in outcome.summary.verdict


def test_a_unit_with_a_failed_arm_leaves_both_sides_of_the_sequence() -> None:
    domains = sorted({i.domain for i in acc.BANK})
    base = acc.responder_with(acc.toddler_hurts)

    def failing_baseline(request: Request) -> str:
        if not acc.system_of(request) and acc.item_of(request).domain == domains[0]:
            raise BackendError("no", status=400)
        return base(request)

    outcome = run_accuracy("fake/broken", failing_baseline, max_items=40)
    seq = outcome.summary.stats["sequential"]
    released = seq["items_released"]
    study = AccuracyStudy(resolve_spec(accuracy_spec("fake/broken", max_items=40)))
    assert study.sequencer is not None
    lost = [i for i in study.sequencer.order[:released] if study.items_by_id[i].domain == domains[0]]
    toddler = next(r for r in outcome.summary.table if r["condition"] == "toddler")
    assert toddler["cs_items"] == released - len(lost) == toddler["paired_items"]
    assert toddler["dropped_baseline"] == len(lost) and toddler["dropped_condition"] == 0
    assert seq["items_max"] == 40 and seq["calls_fixed_design"] == 40 * 2 * 3


def test_the_sequential_design_asks_the_fixed_designs_requests(tmp_path: Any) -> None:
    """Same tags and seeds: a fixed run's store answers a sequential run of the same spec."""
    respond = acc.responder_with(acc.toddler_hurts)
    fixed = accuracy_spec("fake/shared")
    del fixed["options"]["sequential"]
    run_study(resolve_spec(fixed), backends={"fake/shared": FakeBackend("fake/shared", responder=respond)})
    again = run_accuracy("fake/shared", respond)
    assert again.results and all(r.cached for r in again.results)
    # plan is a pure function of the results: the first wave is the first look_every items of the order
    study = AccuracyStudy(resolve_spec(accuracy_spec("fake/shared")))
    first = study.plan([])
    assert study.sequencer is not None and {r.tags.item for r in first} == set(study.sequencer.order[:10])


def variance_spec(model: str) -> dict[str, Any]:
    data = var.spec(sequential={"look_every": 4})
    data["options"].pop("limit")  # 24 opinion items
    data["model"] = model
    return data


@pytest.mark.slow  # make test runs it; the pre-stop check's 60 s does not
def test_variance_stops_early_for_persona_differences_and_runs_on_without() -> None:
    leaning = run_study(resolve_spec(variance_spec("fake/lean")),
                        backends={"fake/lean": FakeBackend("fake/lean", responder=var.leaning)})
    seq = leaning.summary.stats["sequential"]
    assert seq["stopped_because"] == "decision" and seq["items_released"] < 24
    assert seq["final"]["fake/lean: dispersion"]["cs_low"] > 0.05
    assert "persona differences are larger than run-to-run noise" in leaning.summary.verdict
    assert len(leaning.summary.table) == seq["items_released"]

    def uniform_answers(request: Request) -> str:
        return var.sample(request, [0.2] * 5)

    flat = run_study(resolve_spec(variance_spec("fake/flat")),
                     backends={"fake/flat": FakeBackend("fake/flat", responder=uniform_answers)})
    seq = flat.summary.stats["sequential"]
    assert seq["stopped_because"] == "max_items" and seq["items_released"] == 24
    assert seq["final"]["fake/flat: dispersion"]["cs_low"] <= 0.05
    assert "persona differences are not shown to be larger" in flat.summary.verdict
    per_item = Counter(r.request.tags.item for r in flat.results)
    assert len(per_item) == 24 and len(set(per_item.values())) == 1
    assert VarianceStudy(resolve_spec(variance_spec("fake/flat"))).sequencer is not None
