"""Core v2 roles on real backends: the studied model is the embedded one (in process) while the
judge is a real llama.cpp server on 127.0.0.1, each with its own fingerprint and cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from personae.api import run_study
from personae.backends.local import LocalBackend
from personae.spec import resolve_spec

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "local/smollm2-135m"
JUDGE = "openai/smollm2-server"


def style_with_server_judge(base_url: str) -> dict:
    return {
        "study": "style", "model": MODEL, "seed": 1, "replicates": 2,
        "personas": ["builtin:young-child", "builtin:expert-physics"],
        "sampling": {"temperature": 0.8, "max_tokens": 24},
        "roles": {"judge": {"model": JUDGE, "backend": {"base_url": base_url, "json_format": "json_object"}}},
        "options": {"prompts": [{"id": "opinion-cars", "text": "Should cities ban cars from their centres?"},
                                {"id": "explain-rain", "text": "Why does it rain?"}],
                    "features": ["length"], "effect_feature": "length", "stance": True,
                    "judge": {"repeats": 2, "max_tokens": 32}, "embedder": "hash",
                    "n_bootstrap": 1000, "n_permutations": 200},
    }


def test_the_style_judge_runs_on_a_llama_server_while_the_embedded_model_answers(
        llama_server: str, local_backend: LocalBackend, tmp_path: Path) -> None:
    data = style_with_server_judge(llama_server)
    first = run_study(resolve_spec(data), tmp_path / "one", backends={MODEL: local_backend})
    answers = [r for r in first.results if r.request.tags.role is None]
    verdicts = [r for r in first.results if r.request.tags.role == "judge"]
    assert answers and all(r.request.model == MODEL and r.ok for r in answers)
    assert len(verdicts) == 3 * 1 * 2 * 2  # (baseline + 2 personas) x 1 opinion prompt x 2 runs x 2 repeats
    assert all(r.request.model == JUDGE and r.ok for r in verdicts)
    parsed = [json.loads(r.text or "{}").get("stance") for r in verdicts]
    assert sum(p in ("for", "against", "neutral") for p in parsed) >= len(parsed) - 1  # JSON-constrained
    run_json = json.loads((tmp_path / "one" / "run.json").read_text(encoding="utf-8"))
    assert run_json["roles"]["judge"]["model"] == JUDGE and run_json["roles"]["judge"]["bound"]
    fingerprints = {b["model"]: b["fingerprint"] for b in run_json["backends"]}
    assert fingerprints[JUDGE].startswith("openai:http://127.0.0.1:")
    assert fingerprints[MODEL].startswith("local:")
    again = run_study(resolve_spec(data), tmp_path / "two", backends={MODEL: local_backend})
    assert again.stats.backend_calls == 0 and again.stats.cache_hits == len(again.results)
    assert again.summary.stats["stance"] == first.summary.stats["stance"]
