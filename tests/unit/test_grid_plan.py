"""The grid study's plan: every cell once, a seed per cell and replicate, persona prompts, baseline without one."""

from __future__ import annotations

import pytest

from collections import Counter
from pathlib import Path

from personae.persona import builtin_persona, render_persona
from personae.spec import load_spec
from personae.studies import get_study

from .helpers import MODEL, grid_spec, write_spec


def test_grid_plans_every_cell_once(tmp_path: Path) -> None:
    data = grid_spec(["Q one?", {"id": "two", "text": "Q two?"}],
                     personas=["builtin:pirate-captain", "builtin:toddler"], replicates=3,
                     template="third-person", model=[MODEL, "fake/other"])
    resolved = load_spec(write_spec(tmp_path, data))
    reqs = get_study("grid")(resolved).plan([])

    cells = Counter((r.model, r.tags.condition, r.tags.item, r.replicate) for r in reqs)
    assert len(reqs) == 2 * 3 * 2 * 3
    assert set(cells.values()) == {1}
    assert {c for _, c, _, _ in cells} == {"baseline", "pirate-captain", "toddler"}
    assert {i for _, _, i, _ in cells} == {"q1", "two"}
    assert len({r.cache_key() for r in reqs}) == len(reqs)

    # every cell has its own seed (no common random numbers across personas), and the plan is deterministic
    assert len({r.sampling.seed for r in reqs}) == len(reqs) // 2  # one seed per cell; the two models share it
    again = get_study("grid")(load_spec(write_spec(tmp_path, data))).plan([])
    assert [r.sampling.seed for r in again] == [r.sampling.seed for r in reqs]
    for r in reqs:
        assert r.sampling.temperature == 0.7 and r.sampling.max_tokens == 32
        assert r.messages[-1].role == "user"
        if r.tags.condition == "baseline":
            assert r.tags.persona is None and r.persona_version is None
            assert [m.role for m in r.messages] == ["user"]
        else:
            persona = builtin_persona(r.tags.condition)
            assert r.tags.persona == persona.id and r.persona_version == persona.version
            assert r.messages[0].role == "system"
            assert r.messages[0].content == render_persona(persona, "third-person")


def test_grid_without_baseline(tmp_path: Path) -> None:
    data = grid_spec(["Q?"], replicates=1, options={"questions": ["Q?"], "include_baseline": False})
    reqs = get_study("grid")(load_spec(write_spec(tmp_path, data))).plan([])
    assert [r.tags.condition for r in reqs] == ["pirate-captain"]


def test_bumping_persona_version_changes_every_key(tmp_path: Path) -> None:
    persona = {"id": "ada", "name": "Ada", "description": "a physicist"}
    v1 = load_spec(write_spec(tmp_path, grid_spec(["Q?"], personas=[persona]), "v1.yaml"))
    v2 = load_spec(write_spec(tmp_path, grid_spec(["Q?"], personas=[{**persona, "version": 2}]), "v2.yaml"))
    keys1 = {r.tags.condition + str(r.replicate): r.cache_key() for r in get_study("grid")(v1).plan([])}
    keys2 = {r.tags.condition + str(r.replicate): r.cache_key() for r in get_study("grid")(v2).plan([])}
    assert keys1.keys() == keys2.keys()
    for cell in keys1:
        if cell.startswith("ada"):
            assert keys1[cell] != keys2[cell]
        else:  # the baseline has no persona, so its cache entries stay valid
            assert keys1[cell] == keys2[cell]


def test_run_to_run_sd_is_numpys_sample_sd() -> None:
    # the per-question SD is summed in plain Python for speed; numpy's ddof=1 SD is the reference
    import numpy as np

    from personae.studies.grid import _sd
    for values in ([3, 5], [10, 10, 10], [1, 2, 3, 4, 50], [7, 0, 12, 12, 3, 9, 1000]):
        assert _sd(values) == pytest.approx(float(np.std(values, ddof=1)), rel=1e-12)
