"""The four measuring studies end to end on the embedded model (small sizes), and the shipped
MiniLM embedder. They assert structure and sense, not the tiny model's numbers."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from personae.api import run_study
from personae.backends.local import LocalBackend
from personae.spec import resolve_spec

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MODEL = "local/smollm2-135m"


def run(spec: dict[str, Any], backend: LocalBackend, out: Path):  # noqa: ANN201
    return run_study(resolve_spec({"model": MODEL, **spec}), out, backends={MODEL: backend})


def test_minilm_ships_offline_and_ranks_meaning() -> None:
    from personae.embed import cosine_distances, get_embedder

    vecs = get_embedder("minilm").encode(["The sky is blue.", "Azure skies above us.", "I like pizza."])
    assert vecs.shape == (3, 384) and np.allclose(np.linalg.norm(vecs, axis=1), 1.0)
    d = cosine_distances(vecs)
    assert d[0, 1] < d[0, 2] and d[0, 1] < d[1, 2]


def test_accuracy_logprob_mode(local_backend: LocalBackend, tmp_path: Path) -> None:
    outcome = run({"study": "accuracy", "seed": 1,
                   "options": {"mode": "logprob", "limit": 2, "conditions": ["baseline", "toddler"],
                               "n_bootstrap": 1000}}, local_backend, tmp_path / "acc")
    rows = {r["condition"]: r for r in outcome.summary.table}
    assert set(rows) == {"baseline", "toddler"} and outcome.stats.requests == 14 * 2 * 4
    for r in rows.values():
        assert r["items"] == 14 and 0.0 <= r["accuracy"] <= 1.0 and r["parse_failure_rate"] == 0.0
    assert 0.0 <= rows["toddler"]["p_wilcoxon"] <= 1.0 and rows["toddler"]["diff_ci_low"] <= rows["toddler"]["diff"]
    assert outcome.summary.verdict.startswith(MODEL)
    assert (tmp_path / "acc" / "report.html").exists()


def test_variance_with_a_letter_grammar_parses_every_answer(local_backend: LocalBackend, tmp_path: Path) -> None:
    outcome = run({"study": "variance", "replicates": 2, "seed": 2,
                   "personas": ["builtin:democrat", "builtin:republican", "builtin:young-child"],
                   "sampling": {"temperature": 1.0, "max_tokens": 2},
                   "options": {"limit": 3, "constrained": True, "n_permutations": 200, "n_bootstrap": 1000}},
                  local_backend, tmp_path / "var")
    assert outcome.summary.counts["parse_failures"] == 0
    for row in outcome.summary.table:
        assert row["answers"] == 6 and row["d_within"] >= 0 and row["d_between"] >= 0 and 0 < row["p_value"] <= 1
    assert "run-to-run noise" in outcome.summary.verdict


def test_individuation_scores_with_and_without_the_profile(local_backend: LocalBackend, tmp_path: Path) -> None:
    outcome = run({"study": "individuation", "seed": 3, "options": {"participants": 3, "n_bootstrap": 1000}},
                  local_backend, tmp_path / "ind")
    assert outcome.stats.errors == 0
    rows = {r["experiment"]: r for r in outcome.summary.table}
    assert set(rows) == {"politics-agreement", "age-habits", "coin-guess"}
    for r in rows.values():
        assert r["participants"] == 3 and r["nll_without"] > 0 and r["nll_with"] > 0 and r["nll_shuffled"] > 0
        assert r["d"] is None or math.isfinite(r["d"])


def test_style_with_minilm_and_a_stance_judge(local_backend: LocalBackend, tmp_path: Path) -> None:
    outcome = run({"study": "style", "replicates": 2, "seed": 4,
                   "personas": ["builtin:young-child", "builtin:expert-physics"],
                   "sampling": {"temperature": 0.8, "max_tokens": 24},
                   "options": {"limit": 3, "judge": {"repeats": 2}, "n_bootstrap": 1000, "n_permutations": 200}},
                  local_backend, tmp_path / "style")
    assert outcome.stats.errors == 0
    div = outcome.summary.stats["diversity"][MODEL]
    assert div["embedder"] == "minilm" and math.isfinite(div["ratio"]) and 0 < div["p_value"] <= 1
    stance = outcome.summary.stats["stance"][MODEL]
    assert stance["agreement"]["repeats"] == 2  # verdicts were JSON-constrained and parsed
    assert stance["agreement"]["parse_failures"] == 0
    assert {r["persona"] for r in outcome.summary.table} == {"young-child", "expert-physics"}
