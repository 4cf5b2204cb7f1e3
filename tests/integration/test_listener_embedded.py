"""The listener study on the embedded model, small: structure and sense, not the tiny model's numbers.

The per-token log-probabilities S1 is computed from must be the backend's own: the S0 score of a
candidate equals its logprob / n_tokens, and the listener's posterior is a distribution.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from personae.api import run_study
from personae.backends.local import LocalBackend
from personae.spec import resolve_spec

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MODEL = "local/smollm2-135m"
DIALOGUES = Path(__file__).resolve().parents[2] / "examples" / "listener-dialogues.txt"


def test_listener_ranking_on_the_embedded_model(local_backend: LocalBackend, tmp_path: Path) -> None:
    spec = {"study": "listener", "model": MODEL, "seed": 1,
            "options": {"limit": 4, "dialogues": [str(DIALOGUES)], "dialogue_lines": 3, "dialogue_candidates": 2,
                        "n_bootstrap": 1000}}
    outcome = run_study(resolve_spec(spec), tmp_path / "run", backends={MODEL: local_backend})
    s = outcome.summary
    assert s.counts["errors"] == 0
    rows = {(r["source"], r["metric"]): r for r in s.table}
    assert set(rows) == {("set", "Hits@1"), ("set", "Contradict@1"), ("set", "Entail@1"), ("dialogues", "Hits@1")}
    for r in rows.values():
        assert 0.0 <= r["S0"] <= 1.0 and 0.0 <= r["S1"] <= 1.0
        assert r["diff"] == pytest.approx(r["S1"] - r["S0"], abs=1e-3)
        assert r["diff_ci"][0] <= r["diff"] <= r["diff_ci"][1]
    assert rows[("set", "Hits@1")]["items"] == 4 and rows[("dialogues", "Hits@1")]["items"] == 3
    for c in s.stats["compute"].values():
        assert c["request_ratio"] == 3.0 and c["seconds_per_item"]["S1"] > c["seconds_per_item"]["S0"] > 0
    for d in s.stats["diagnostics"].values():
        assert all(0.0 <= p <= 1.0 for p in d["p_true_by_label"].values())
    # the per-token log-probabilities add up to the sequence's
    for line in (tmp_path / "run" / "results.jsonl").read_text(encoding="utf-8").splitlines()[:20]:
        row = json.loads(line)
        out = row["score"]
        assert math.isclose(sum(out["token_logprobs"]), out["logprob"], rel_tol=1e-6, abs_tol=1e-6)
    assert "Contradict@1" in s.verdict and "Hits@1" in s.verdict
