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

from personae.backends.base import Tags
from personae.items import builtin_items
from personae.persona import builtin_persona
from personae.spec import resolve_spec
from personae.studies import get_study
from personae.studies.base import Prompt, derive_seed

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
    for i, (got, want) in enumerate(zip(plan, golden)):
        assert got == want, f"request {i} of {name} changed"
