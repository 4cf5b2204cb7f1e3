"""The planning helper `cells()`, and the plans of the studies built on it.

The golden plans under tests/data/plans/ were captured from the hand-written loops that `cells()`
replaced: every request of grid, accuracy and variance (order, messages, seeds, tags, keys) must
stay byte-identical, or the cache of every earlier run would miss. To regenerate them on purpose
(after a deliberate change to what a study asks), run this file with PERSONAE_WRITE_PLANS=1 and
say in the commit why the requests changed.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from personae.backends.base import Request, Tags
from personae.persona import Persona, builtin_persona
from personae.spec import resolve_spec
from personae.studies import Condition, cells, get_study
from personae.studies.base import Prompt, derive_seed
from personae.studies.grid import GridStudy

from .helpers import MODEL, _spec, grid_spec

PLANS = Path(__file__).resolve().parents[1] / "data" / "plans"
ADA = {"id": "ada", "name": "Ada", "description": "a physicist"}

# name -> spec data: a few personas x 2-3 items x 2 replicates each
SPECS: dict[str, dict[str, Any]] = {
    "grid": grid_spec(["Q one?", {"id": "two", "text": "Q two?"}],
                      personas=["builtin:pirate-captain", "builtin:toddler"], model=[MODEL, "fake/other"]),
    "accuracy": _spec("accuracy", {"domains": ["physics", "history"], "limit": 1,
                                   "conditions": ["baseline", "in-domain", "off-domain", "toddler"]},
                      personas=[ADA], replicates=2, seed=3, backend=None),
    "accuracy_logprob": _spec("accuracy", {"domains": ["physics", "history"], "limit": 1,
                                                       "conditions": ["baseline", "off-domain"], "mode": "logprob"},
                                          personas=[], replicates=2, seed=3, backend=None),
    "accuracy_constrained": _spec("accuracy", {"domains": ["mathematics"], "limit": 2, "constrained": True,
                                               "conditions": ["baseline", "layperson"]},
                                  personas=[], replicates=2, seed=4, backend=None),
    "variance": _spec("variance", {"limit": 2}, personas=["builtin:democrat", "builtin:republican"],
                      replicates=2, seed=7, backend=None),
    "variance_constrained_no_baseline": _spec("variance", {"limit": 2, "constrained": True, "baseline": False},
                                              personas=["builtin:democrat", ADA], replicates=2, seed=8,
                                              backend=None),
}


def plan_of(name: str) -> list[dict[str, Any]]:
    data = SPECS[name]
    study = get_study(data["study"])(resolve_spec(data))
    return [r.model_dump(mode="json") for r in study.plan([])]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_plan_matches_golden(name: str) -> None:
    path = PLANS / f"{name}.json"
    plan = plan_of(name)
    if os.environ.get("PERSONAE_WRITE_PLANS") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(plan, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    golden = json.loads(path.read_text(encoding="utf-8"))
    assert len(plan) == len(golden)
    for i, (got, want) in enumerate(zip(plan, golden, strict=True)):
        # the golden read back as a Request: a field added since (at its default) changes nothing
        assert got == Request.model_validate(want).model_dump(mode="json"), f"request {i} of {name} changed"


# ---------------------------------------------------------------- cells() itself
ITEMS = (Prompt(id="q1", text="One?"), Prompt(id="q2", text="Two?"), Prompt(id="q3", text="Three?"))
PIRATE, TODDLER = builtin_persona("pirate-captain"), builtin_persona("toddler")
CONDITIONS = (Condition("baseline"), Condition("pirate-captain", PIRATE), Condition("toddler", TODDLER))


def test_cells_counts_and_order() -> None:
    got = list(cells(["fake/a", "fake/b"], CONDITIONS, ITEMS, 2, seed=1))
    assert len(got) == 2 * 3 * 3 * 2
    want = [(m, c.name, i.id, r) for m in ["fake/a", "fake/b"] for c in CONDITIONS for i in ITEMS for r in range(2)]
    assert [(c.model, c.condition, c.item.id, c.replicate) for c in got] == want

    by_item = list(cells(["fake/a"], CONDITIONS, ITEMS, 2, seed=1, outer="item"))
    assert [(c.condition, c.item.id, c.replicate) for c in by_item] == \
        [(c.name, i.id, r) for i in ITEMS for c in CONDITIONS for r in range(2)]


def test_cells_tags_and_personas() -> None:
    for cell in cells(["fake/a"], CONDITIONS, ITEMS, 1, seed=1):
        assert cell.persona is dict((c.name, c.persona) for c in CONDITIONS)[cell.condition]
        assert cell.tags == Tags(persona=cell.persona.id if cell.persona else None, item=cell.item.id,
                                 condition=cell.condition)
        assert cell.item in ITEMS


def test_cells_seeds_are_distinct_and_derived_from_the_documented_parts() -> None:
    got = list(cells(["fake/a", "fake/b"], CONDITIONS, ITEMS, 3, seed=42))
    one_model = [c for c in got if c.model == "fake/a"]
    assert len({c.seed for c in one_model}) == len(one_model)  # across personas, items and replicates
    assert [c.seed for c in one_model] == [c.seed for c in got if c.model == "fake/b"]  # the model is not a part
    for c in got:
        persona = c.persona.id if c.persona else None
        assert c.seed == derive_seed(42, persona, c.item.id, c.condition, 0, c.replicate)
    assert {c.seed for c in cells(["fake/a"], CONDITIONS, ITEMS, 3, seed=43)}.isdisjoint({c.seed for c in got})


@pytest.mark.parametrize("tags", [Tags(), Tags(persona='say "hi"', item="q\\1", condition="ü", wave=3),
                                  Tags(persona="p", item=None, condition=None, wave=12)])
@pytest.mark.parametrize("seed", [0, 42, -7, 2**40])
def test_cell_seeds_hash_the_cell_once_with_the_same_numbers_as_cell_seed(tags: Tags, seed: int) -> None:
    from personae.studies._cells import cell_seed, cell_seeds
    assert cell_seeds(seed, tags, 12) == [cell_seed(seed, tags, r) for r in range(12)]  # 10, 11: two digits
    assert cell_seeds(seed, tags, 0) == []


def test_cells_per_condition_replicates() -> None:
    conds = [Condition("pirate-captain", PIRATE), Condition("baseline", replicates=5)]
    got = Counter(c.condition for c in cells(["fake/a"], conds, ITEMS[:2], 2, seed=0))
    assert got == {"pirate-captain": 2 * 2, "baseline": 5 * 2}


def test_cells_persona_for_depends_on_condition_and_item() -> None:
    def persona_for(condition: str, item: Prompt) -> Persona | None:
        return None if condition == "baseline" else (PIRATE if item.id == "q1" else TODDLER)

    got = list(cells(["fake/a"], [Condition("baseline"), Condition("expert")], ITEMS[:2], 1, seed=0,
                     persona_for=persona_for))
    assert [(c.condition, c.item.id, c.tags.persona) for c in got] == [
        ("baseline", "q1", None), ("baseline", "q2", None), ("expert", "q1", "pirate-captain"),
        ("expert", "q2", "toddler")]


@pytest.mark.parametrize("kwargs", [{"replicates": 0}, {"conditions": [Condition("x", replicates=0)]},
                                    {"outer": "persona"}])
def test_cells_rejects_bad_arguments(kwargs: dict[str, Any]) -> None:
    args: dict[str, Any] = {"models": ["fake/a"], "conditions": CONDITIONS, "items": ITEMS, "replicates": 1,
                            "seed": 0, **kwargs}
    with pytest.raises(ValueError):
        list(cells(**args))


def test_cell_request_seed_is_the_one_sampling_for_derives() -> None:
    study = GridStudy(resolve_spec(SPECS["grid"]))
    for cell in cells(study.spec.model, study.conditions(), study.options.questions, 2, seed=study.spec.seed):
        via_cell = study.cell_request(cell, [])
        via_chat = study.chat_request(cell.model, cell.persona, [], replicate=cell.replicate, tags=cell.tags)
        assert via_cell.sampling.seed == cell.seed
        assert via_cell == via_chat


# ---------------------------------------------------------------- the typed seam
def test_study_takes_its_own_options_only() -> None:
    grid = resolve_spec(SPECS["grid"])
    variance = get_study("variance")
    with pytest.raises(TypeError, match="VarianceStudy takes VarianceOptions, got GridOptions"):
        variance(grid)


def test_resolved_spec_is_importable_from_spec_and_spec_types() -> None:
    from personae import ResolvedSpec as from_package  # noqa: PLC0415
    from personae.spec import ResolvedSpec as from_spec  # noqa: PLC0415
    from personae.spec_types import ResolvedSpec as from_types  # noqa: PLC0415

    assert from_package is from_spec is from_types
    assert isinstance(resolve_spec(SPECS["grid"]), from_types)
