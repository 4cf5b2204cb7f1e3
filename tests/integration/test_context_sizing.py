"""The local backend sizes its context from the longest prompt of each wave (issue 7, defect 2):
a 3,000-token prompt runs on the default options instead of failing, and a prompt that cannot
fit stops the run before any call of its wave, naming the item and the n_ctx that fits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from personae.api import run_study
from personae.cli.main import app
from personae.spec import resolve_spec
from personae.store import Store

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LONG = "Here is a long transcript line about the weather and the sea. " * 170  # ~2,300 tokens: over the 2,048 of the old default


def spec(**backend: object) -> dict:
    return {"study": "grid", "model": "local/smollm2-135m", "backend": {"n_threads": 2, **backend},
            "sampling": {"temperature": 0.0, "max_tokens": 8}, "options": {"include_baseline": True,
            "questions": [{"id": "short", "text": "Hi?"}, {"id": "long-transcript", "text": LONG + "\nSummarise."}]}}


def test_a_prompt_longer_than_2048_tokens_runs_on_the_default_context(tmp_path: Path) -> None:
    outcome = run_study(resolve_spec(spec()), tmp_path / "run")
    assert all(r.ok for r in outcome.results), [r.error for r in outcome.results]
    long = next(r for r in outcome.results if r.request.tags.item == "long-transcript")
    assert long.generation.prompt_tokens > 2048
    local = next(b for b in json.loads((tmp_path / "run" / "run.json").read_text())["backends"])
    assert local["n_ctx"] >= long.generation.prompt_tokens + 8 and local["n_ctx_auto"]


def test_an_explicit_context_too_small_stops_before_any_call(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(json.dumps(spec(n_ctx=1024)), encoding="utf-8")
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    line = result.output.strip().splitlines()[-1]
    assert "item long-transcript" in line and "more than backend.n_ctx 1024" in line
    assert "set backend.n_ctx: 2304" in line and "trained on 8192" in line
    with Store() as st:
        assert st.count("results") == 0 and st.count("errors") == 0  # found before any call
