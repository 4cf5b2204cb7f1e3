"""The dry run counts a local model's prompt tokens with the model's own tokenizer, without loading
its weights, and the count is what llama.cpp reports when the run happens; the numbers that
docs/cost.md shows for examples/dialogue.yaml are the ones the dry run prints."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from personae.api import run_study
from personae.backends.local import LocalBackend
from personae.dryrun import estimate_run
from personae.spec import load_spec, resolve_spec

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_first_wave_prompt_tokens_are_what_llama_cpp_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = {"study": "grid", "model": "local/smollm2-135m", "personas": ["builtin:pirate-captain"],
            "sampling": {"temperature": 0.0, "max_tokens": 4}, "options": {"questions": ["Why is the sky blue?"]}}
    resolved = resolve_spec(data)
    with monkeypatch.context() as m:  # the dry run loads the vocabulary, never the weights
        m.setattr(LocalBackend, "_load", lambda self: pytest.fail("the dry run loaded the model's weights"))
        est = estimate_run(resolved, store=tmp_path / "store.sqlite")
    (row,) = est.rows
    assert row.tokens_counted_by == "tokenizer" and row.to_send == 2 and row.completion_tokens == 2 * 4
    outcome = run_study(resolved, tmp_path / "run")
    reported = sum(r.generation.prompt_tokens for r in outcome.results if r.generation is not None)
    assert reported > 0 and row.prompt_tokens == reported


def test_docs_cost_page_shows_what_the_dry_run_prints(tmp_path: Path) -> None:
    est = estimate_run(load_spec(ROOT / "examples" / "dialogue.yaml"), store=tmp_path / "store.sqlite")
    (row,) = est.rows
    page = (ROOT / "docs" / "cost.md").read_text(encoding="utf-8")
    line = next(x for x in page.splitlines() if x.strip().startswith("local/smollm2-135m |"))
    cells = [c.strip() for c in line.split("|")]
    assert cells[2:8] == [str(row.first_wave), str(row.later_waves), str(row.cached), str(row.to_send),
                          f"{row.prompt_tokens:,}", f"{row.completion_tokens:,}"], line
    assert re.search(rf"waves: {est.waves}; wave 1 exact", page)
