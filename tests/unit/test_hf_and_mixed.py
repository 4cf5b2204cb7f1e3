"""The Hugging Face item loader (with a stand-in `datasets` module: no network in tests) and the
accuracy study's optional mixed model."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from personae.api import run_study
from personae.backends.fake import FakeBackend
from personae.errors import ConfigError
from personae.items import load_hf_items
from personae.spec import resolve_spec

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.fixture(autouse=True)
def _fresh_hf_cache() -> None:
    load_hf_items.cache_clear()  # the loader caches per process; every test starts from nothing


def test_hf_loader_without_datasets_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    with pytest.raises(ConfigError, match="needs the 'datasets' package"):
        load_hf_items("TIGER-Lab/MMLU-Pro")


def test_hf_loader_converts_the_mmlu_pro_layout(monkeypatch: pytest.MonkeyPatch) -> None:
    records = [json.loads(line) for line in (DATA / "mmlu_pro_sample.jsonl").read_text().splitlines() if line]
    calls: list[tuple[str, str]] = []

    def load_dataset(name: str, split: str) -> list[dict]:
        calls.append((name, split))
        return records

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    items = load_hf_items("TIGER-Lab/MMLU-Pro", split="validation", limit=2)
    again = load_hf_items("TIGER-Lab/MMLU-Pro", split="validation", limit=2)  # checking then running a spec
    assert again is items and calls == [("TIGER-Lab/MMLU-Pro", "validation")]  # downloaded once
    assert [i.id for i in items] == [str(r["question_id"]) for r in records[:2]]
    assert [i.answer for i in items] == [r["answer_index"] for r in records[:2]]


def test_hf_loader_reports_a_failed_download(monkeypatch: pytest.MonkeyPatch) -> None:
    def load_dataset(name: str, split: str) -> list[dict]:
        raise ConnectionError("no network")

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    with pytest.raises(ConfigError, match="could not load the dataset 'x/y': ConnectionError"):
        load_hf_items("x/y")


def test_accuracy_mixed_model_estimates_a_condition_effect(tmp_path: Path) -> None:
    """Toddler answers wrong, the baseline right: the item-clustered logit's toddler term is negative."""
    def responder(request) -> str:  # noqa: ANN001
        key = request.messages[-1].content.split("Answer:")[0]
        from personae.items import builtin_items

        item = next(i for i in builtin_items("general") if i.question in key)
        toddler = "toddler" in (request.messages[0].content if request.messages[0].role == "system" else "")
        right = item.answer_letter
        wrong = next(letter for letter in item.letters if letter != right)
        # the toddler is right on 1 replicate in 4, the baseline on 3 in 4
        good = (request.replicate == 0) if toddler else (request.replicate != 0)
        return right if good else wrong

    spec = resolve_spec({"study": "accuracy", "model": "fake/x", "replicates": 4,
                         "options": {"conditions": ["baseline", "toddler"], "limit": 3, "mixed_model": True,
                                     "n_bootstrap": 1000}})
    outcome = run_study(spec, tmp_path / "run", backends={"fake/x": FakeBackend("fake/x", responder=responder)})
    fits = outcome.summary.stats["mixed_model"]
    assert fits["formula"] == "correct ~ condition + (1|item)"
    for name in ("mixed", "gee"):  # the mixed logit and its GEE check agree on the direction
        assert "error" not in fits[name], fits[name]
        (term,) = [t for t in fits[name]["terms"] if "toddler" in t["term"]]
        assert term["estimate"] < 0 and term["ci_high"] < 0, (name, term)
    assert "bayes" in fits["mixed"]["method"].lower() or "mixed" in fits["mixed"]["method"].lower()
