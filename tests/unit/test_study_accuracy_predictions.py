"""Accuracy from predictions made elsewhere (issue 7, defect 6): the same statistics, no model asked.

The honest reference for "the same statistics" is a run on the fake backend: its replies,
written out as a predictions file, must give exactly the same table, tests and verdict.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from personae.api import run_study
from personae.backends.base import Request
from personae.backends.fake import FakeBackend
from personae.cli.main import app
from personae.errors import ConfigError
from personae.items import builtin_items
from personae.runner import Result
from personae.spec import resolve_spec
from personae.studies._predictions import bare_letter

from .helpers import read_json, read_jsonl
from .test_study_accuracy import GARBAGE, responder_with, spec, toddler_hurts, uniform

ROOT = Path(__file__).resolve().parents[2]
CONDITIONS = ["baseline", "layperson", "toddler"]
KEY = {i.id: i.answer_letter for i in builtin_items("general")}


def noisy(request: Request) -> str:
    """toddler_hurts, with a reply that names no option in a tenth of the samples (parse failures)."""
    return GARBAGE if uniform(request, "noise") < 0.1 else responder_with(toddler_hurts)(request)


def as_json(data: Any) -> str:
    """Exact comparison that treats NaN as equal to NaN (a p-value of identical arms is NaN)."""
    return json.dumps(data, sort_keys=True, default=str)


def write_rows(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def long_rows(results: list[Result], with_model: bool) -> list[dict[str, Any]]:
    rows = [{"item_id": r.request.tags.item, "condition": r.request.tags.condition, "prediction": r.text,
             "replicate": r.request.replicate, **({"model": r.request.model} if with_model else {})} for r in results]
    random.Random(0).shuffle(rows)  # the rows' order must not matter
    return rows


def wide_rows(results: list[Result]) -> list[dict[str, Any]]:
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for r in results:
        row = rows.setdefault((r.request.tags.item or "", r.request.replicate),
                              {"item_id": r.request.tags.item, "replicate": r.request.replicate})
        row[r.request.tags.condition or ""] = r.text
    return list(rows.values())


def with_predictions(data: dict[str, Any], predictions: Any) -> dict[str, Any]:
    """The same spec with the predictions option, and without `replicates`: the rows say how many."""
    return {**{k: v for k, v in data.items() if k != "replicates"},
            "options": {**data["options"], "predictions": predictions}}


def resolve_in(folder: Path, data: dict[str, Any]) -> Any:
    """Resolve as a spec file in `folder` would be (relative paths start there)."""
    return resolve_spec(data, path=folder / "spec.yaml")


@pytest.mark.parametrize("layout", ["long", "wide", "two files by glob", "two models"])
def test_predictions_give_exactly_the_summary_of_a_run_whose_replies_they_are(layout: str, tmp_path: Path) -> None:
    models = ["fake/a", "fake/b"] if layout == "two models" else ["fake/x"]
    data = spec(model=models, conditions=CONDITIONS, limit=2, replicates=3)
    ran = run_study(resolve_spec(data), backends={m: FakeBackend(m, responder=noisy) for m in models})
    assert ran.summary is not None and len(ran.results) == len(models) * 3 * 14 * 3
    assert ran.summary.counts["parse_failures"] > 0  # the comparison covers parse failures too

    if layout == "wide":
        entry: Any = write_rows(tmp_path / "preds.jsonl", wide_rows(ran.results)).name
    elif layout == "two files by glob":
        for cond in CONDITIONS:
            write_rows(tmp_path / "preds" / f"{cond}.jsonl",
                       [r for r in long_rows(ran.results, False) if r["condition"] == cond])
        entry = "preds/*.jsonl"
    else:
        entry = write_rows(tmp_path / "preds.jsonl", long_rows(ran.results, layout == "two models")).name
    never = {m: FakeBackend(m, responder=lambda r: "A") for m in models}  # would answer otherwise, if asked
    read = run_study(resolve_in(tmp_path, with_predictions(data, entry)), tmp_path / "run", backends=never)

    assert all(b.history == [] for b in never.values())  # no model call
    assert read.results == [] and read.stats.backend_calls == 0 and read.stats.requests == 0
    mine, theirs = read.summary, ran.summary
    assert mine is not None
    assert as_json(mine.table) == as_json(theirs.table)
    assert mine.verdict == theirs.verdict
    assert as_json({k: v for k, v in mine.stats.items() if k not in ("mode", "predictions")}) == \
        as_json({k: v for k, v in theirs.stats.items() if k != "mode"})
    assert mine.stats["mode"] == "predictions" and theirs.stats["mode"] == "generate"
    assert mine.stats["predictions"]["rows"] == len(ran.results) and mine.stats["predictions"]["replicates"] == 3
    files = sorted(f for f in tmp_path.rglob("*.jsonl") if f.parent.name != "run")  # not results.jsonl
    assert mine.stats["predictions"]["sha256"] == [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
    assert mine.counts["parse_failures"] == theirs.counts["parse_failures"]
    assert mine.counts["predictions"] == len(ran.results) and mine.counts["requests"] == 0
    assert mine.notes[0].startswith(f"Answers read from {len(ran.results)} predictions") and "no model was asked" \
        in mine.notes[0]
    assert mine.notes[1:] == theirs.notes
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["verdict"] == theirs.verdict and (tmp_path / "run" / "report.html").exists()
    assert read_json(tmp_path / "run" / "run.json")["status"] == "complete"


def test_the_example_runs_from_the_cli_with_the_numbers_its_file_gives(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(ROOT / "examples" / "accuracy-predictions.yaml"), "--out", str(out),
                                      "--quiet"])
    assert result.exit_code == 0, result.output
    assert "72 predictions read from files: no model was asked (0 requests)" in result.output
    assert read_json(out / "run.json")["counts"]["backend_calls"] == 0
    assert read_jsonl(out / "results.jsonl") == []
    summary = read_json(out / "summary.json")
    rows = {r["condition"]: r for r in summary["table"]}
    assert list(rows) == ["baseline", "expert-physics", "toddler"]
    # the hand computation over the file: a(q, c) = share correct among the parsed letters
    # (here: bare letters, and 'The answer is B.'), averaged over the 12 items
    hits: dict[tuple[str, str], list[bool]] = {}
    for row in read_jsonl(ROOT / "examples" / "accuracy-predictions.jsonl"):
        text = row["prediction"]
        letter = bare_letter(text) or (m.group(1) if text and (m := re.search(r"answer is ([A-D])", text)) else None)
        if letter is not None:
            hits.setdefault((row["condition"], row["item_id"]), []).append(letter == KEY[row["item_id"]])
    for cond, row in rows.items():
        per_item = [np.mean(v) for (c, _), v in hits.items() if c == cond]
        assert row["items"] == 12 and row["accuracy"] == pytest.approx(np.mean(per_item)), cond
    assert rows["toddler"]["parse_failure_rate"] == pytest.approx(2 / 24)  # null and "I like trucks!"
    assert rows["toddler"]["accuracy_parse_wrong"] == pytest.approx(sum(sum(v) for (c, _), v in hits.items()
                                                                        if c == "toddler") / 24)
    assert "72 of 84 items have no prediction and are left out." in summary["notes"]


def test_the_docs_show_the_example_as_it_is() -> None:
    page = (ROOT / "docs" / "studies" / "accuracy.md").read_text(encoding="utf-8")
    section = page[page.index("## Predictions made elsewhere"):]
    block = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert block is not None
    example = ROOT / "examples" / "accuracy-predictions.yaml"
    assert yaml.safe_load(block.group(1)) == yaml.safe_load(example.read_text(encoding="utf-8"))
    shown = re.search(r"```\n(\{.*?)```", section, re.S)
    assert shown is not None
    lines = set((ROOT / "examples" / "accuracy-predictions.jsonl").read_text(encoding="utf-8").splitlines())
    assert all(line in lines for line in shown.group(1).splitlines())  # lines of the file, not made up for the page


# ---------------------------------------------------------------- choices and checks


def three_items(tmp_path: Path, rows: list[dict[str, Any]], **options: Any) -> Any:
    write_rows(tmp_path / "p.jsonl", rows)
    data = {"study": "accuracy", "model": options.pop("model", "openai/m"),
            "options": {"items": "builtin:general", "predictions": "p.jsonl", "n_bootstrap": 1000, **options}}
    return resolve_in(tmp_path, data)


def grid(conds: list[str], items: list[str], letter: str = "A", **extra: Any) -> list[dict[str, Any]]:
    return [{"item_id": i, "condition": c, "prediction": letter, **extra} for c in conds for i in items]


def error_of(tmp_path: Path, rows: list[dict[str, Any]], **options: Any) -> str:
    with pytest.raises(ConfigError) as info:
        three_items(tmp_path, rows, **options)
    assert "Fix:" in str(info.value)
    return str(info.value)


PHYS = ["phys-01", "phys-02", "phys-03"]


def test_conditions_are_the_rows_own_baseline_first_or_those_options_conditions_chooses(tmp_path: Path) -> None:
    from personae.studies.accuracy import AccuracyStudy

    rows = grid(["toddler", "baseline", "pirate"], PHYS)
    study = AccuracyStudy(three_items(tmp_path, rows))
    assert study.condition_names == ["baseline", "toddler", "pirate"]  # any label; baseline first
    assert [i.id for i in study.items] == PHYS and study.plan([]) == []
    chosen = AccuracyStudy(three_items(tmp_path, rows, conditions=["baseline", "pirate"]))
    assert chosen.condition_names == ["baseline", "pirate"]
    summary = chosen.analyze([])
    assert [r["condition"] for r in summary.table] == ["baseline", "pirate"]
    assert "Predictions of conditions not in options.conditions are left out: toddler." in summary.notes
    assert "81 of 84 items have no prediction and are left out." in summary.notes
    assert "condition 'toddlr' has no prediction" in error_of(tmp_path, rows, conditions=["baseline", "toddlr"])
    with_personas = resolve_in(tmp_path, {"study": "accuracy", "model": "openai/m", "personas": ["builtin:toddler"],
                                          "options": {"predictions": "p.jsonl", "n_bootstrap": 1000}})
    assert AccuracyStudy(with_personas).condition_names == ["baseline", "toddler", "pirate"]
    assert "The spec's personas are not used: the conditions are the predictions' own." in \
        AccuracyStudy(with_personas).analyze([]).notes


def test_domains_and_limit_leave_predicted_items_out_with_a_note(tmp_path: Path) -> None:
    from personae.studies.accuracy import AccuracyStudy

    rows = grid(["baseline", "toddler"], [*PHYS, "hist-01"])
    study = AccuracyStudy(three_items(tmp_path, rows, domains=["physics"]))
    assert [i.id for i in study.items] == PHYS
    assert "1 predicted items are outside options.domains / options.limit and left out." in study.analyze([]).notes
    assert "no prediction names an item the study keeps" in error_of(tmp_path, rows, domains=["chemistry"])


def test_models_and_replicates(tmp_path: Path) -> None:
    from personae.studies.accuracy import AccuracyStudy

    two = ["openai/a", "openai/b"]
    rows = [{**r, "model": m} for m in two for r in grid(["baseline"], PHYS, replicate=0)]
    study = AccuracyStudy(three_items(tmp_path, rows, model=two))
    assert [r["model"] for r in study.analyze([]).table] == two
    no_model = grid(["baseline"], PHYS)
    assert "p.jsonl:1: the row names no model, and the spec has 2 (openai/a, openai/b)" in \
        error_of(tmp_path, no_model, model=two)
    assert "model 'openai/c' is not one of the spec's models (openai/m)" in \
        error_of(tmp_path, [{**r, "model": "openai/c"} for r in no_model])
    # replicate 1 of phys-02 is missing in the toddler arm
    reps = [r for k in (0, 1) for r in grid(["baseline", "toddler"], PHYS, replicate=k)
            if not (r["condition"] == "toddler" and r["item_id"] == "phys-02" and r["replicate"] == 1)]
    assert "condition 'toddler' has no prediction for 1 of 6 (item, replicate) pairs (e.g. 'phys-02' replicate 1)" in \
        error_of(tmp_path, reps)


def test_unknown_ids_are_named_a_few_at_a_time(tmp_path: Path) -> None:
    rows = grid(["baseline"], [*PHYS, "x1", "x2", "x3", "x4", "x5"])
    message = error_of(tmp_path, rows)
    assert "p.jsonl:4: 5 item ids are not in the items (builtin:general): 'x1' (line 4), 'x2' (line 5), " \
           "'x3' (line 6) and 2 more." in message


def test_numbers_as_ids_null_and_text_predictions(tmp_path: Path) -> None:
    items = tmp_path / "items.jsonl"
    write_rows(items, [{"id": str(n), "domain": "physics", "question": f"Q{n}?", "choices": ["x", "y", "z"],
                        "answer": "B"} for n in (1, 2)])
    rows = [{"item_id": 1, "condition": "baseline", "prediction": "b"},      # a number as id, a lower-case letter
            {"item_id": 2, "condition": "baseline", "prediction": "Answer: C"},
            {"item_id": 1, "condition": "toddler", "prediction": None},       # could not be read
            {"item_id": 2, "condition": "toddler", "prediction": "y"}]        # the option's text
    from personae.studies.accuracy import AccuracyStudy

    study = AccuracyStudy(three_items(tmp_path, rows, items="items.jsonl"))
    answers = {(a["condition"], a["item"]): a["answer"] for a in study.answers([])}
    assert answers == {("baseline", "1"): "B", ("baseline", "2"): "C", ("toddler", "1"): None, ("toddler", "2"): "B"}
    assert "is not one of its options (A-C)" in error_of(tmp_path, [{**rows[0], "prediction": "D"}], items="items.jsonl")


def test_malformed_rows(tmp_path: Path) -> None:
    assert "p.jsonl:1: a row must be a JSON object, got list" in error_of(tmp_path, [["phys-01", "A"]])  # type: ignore[list-item]
    assert "p.jsonl:1: the row names no condition" in error_of(tmp_path, [{"item_id": "phys-01"}])
    assert "p.jsonl:1: field 'prediction': is required but missing" in \
        error_of(tmp_path, [{"item_id": "phys-01", "condition": "baseline"}])
    assert "p.jsonl:1: field 'toddler': must be text" in \
        error_of(tmp_path, [{"item_id": "phys-01", "baseline": "A", "toddler": 3}])
    assert "field 'replicate': must be >= 0" in \
        error_of(tmp_path, [{"item_id": "phys-01", "condition": "baseline", "prediction": "A", "replicate": -1}])
    (tmp_path / "p.json").write_text("[]", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"p.json: .*predictions are read from .jsonl files"):
        resolve_in(tmp_path, {"study": "accuracy", "model": "openai/m", "options": {"predictions": "p.json"}})
