"""The replicate study on the embedded model, small: structure and the constrained answers, not
the tiny model's numbers."""

from __future__ import annotations

import pytest

from personae.api import run_study
from personae.backends.local import LocalBackend
from personae.spec import resolve_spec

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MODEL = "local/smollm2-135m"


def test_replicate_on_the_embedded_model(local_backend: LocalBackend) -> None:
    spec = {"study": "replicate", "model": MODEL, "seed": 1, "sampling": {"temperature": 1.0, "max_tokens": 12},
            "options": {"experiments": ["builtin:lost-ticket", "builtin:flag-priming"], "n": 8, "n_bootstrap": 500}}
    outcome = run_study(resolve_spec(spec), backends={MODEL: local_backend})
    s = outcome.summary
    assert s.counts["requests"] == 16 and s.counts["errors"] == 0
    rows = {r["experiment"]: r for r in s.table}
    assert set(rows) == {"lost-ticket", "flag-priming"}
    # constrained to the schema: every choice reply names an option, every likert reply is on the 1-7 scale
    assert rows["lost-ticket"]["parse_failures"] == 0 and rows["flag-priming"]["parse_failures"] == 0
    for r in rows.values():
        assert r["answered"] == 8 and r["status"] in ("replicated", "opposite", "not significant", "no estimate")
        if r["effect"] is not None and r["ci_low"] is not None:
            assert r["ci_low"] <= r["effect"] <= r["ci_high"]
    assert s.stats["constrained"] == {MODEL: True}
    assert "original effects replicated" in s.verdict
