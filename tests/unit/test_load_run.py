"""Rebuilding runs from the store (core v2): load_run gives each study's results back, in plan order
with their tags, and analysing them again gives the run folder's summary.json."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from personae.api import run_study
from personae.backends.base import Request
from personae.backends.fake import FakeBackend
from personae.cli.main import app
from personae.errors import ConfigError
from personae.runs import load_run
from personae.spec import resolve_spec
from personae.store import Store

from . import test_study_accuracy as acc
from . import test_study_individuation as ind
from . import test_study_style as sty
from . import test_study_variance as var
from .helpers import dialogue_spec, grid_spec, read_json, read_jsonl


def fails_on_why(request: Request) -> str:
    if "Why" in request.last_user():
        from personae.errors import BackendError

        raise BackendError("refused", backend="fake/x", status=400)
    return "Fine, thanks."


CASES: dict[str, tuple[dict[str, Any], Callable[[], FakeBackend]]] = {
    "grid": (grid_spec(["Hi?", "Why?"], replicates=2),
             lambda: FakeBackend("fake/test", responder=fails_on_why)),
    "dialogue": (dialogue_spec(["Hello?", "And then?"]), lambda: FakeBackend("fake/test")),
    "accuracy": (acc.spec(limit=1, conditions=["baseline", "toddler", "layperson"]),
                 lambda: FakeBackend("fake/x", responder=acc.responder_with(acc.toddler_hurts))),
    "variance": (var.spec(limit=3, replicates=3), lambda: FakeBackend("fake/x", responder=var.leaning)),
    "individuation": ({**ind.spec(), "options": {**ind.spec()["options"], "participants": 6}},
                      lambda: FakeBackend("fake/x", scorer=ind.informed_scorer)),
    "style": (sty.spec(sty.PROMPTS[:3] + sty.OPINIONS[:1], stance=True, judge={"repeats": 2}, features=["length"],
                       effect_feature="length"),
              lambda: FakeBackend("fake/x", responder=sty.stance_answers)),
}


@pytest.mark.parametrize("study", sorted(CASES))
def test_load_run_rebuilds_every_study_so_that_analysis_gives_the_same_summary(study: str, tmp_path: Path) -> None:
    data, make = CASES[study]
    backend = make()
    outcome = run_study(resolve_spec(data), tmp_path / "run", backends={backend.model_id: backend})
    folder_summary = read_json(tmp_path / "run" / "summary.json")
    loaded = load_run(tmp_path / "run")
    assert loaded.study == study and loaded.status == ("complete_with_errors" if study == "grid" else "complete")
    # the results, in plan order, with their tags
    assert [(r.key, r.request.tags, r.text, r.error) for r in loaded.results] == \
        [(r.key, r.request.tags, r.text, r.error) for r in outcome.results]
    rows = read_jsonl(tmp_path / "run" / "results.jsonl")
    assert len(loaded.results) == len(rows)
    assert loaded.summary == folder_summary
    assert json.loads(json.dumps(loaded.analyze().model_dump(mode="json"))) == folder_summary
    frame = loaded.requests
    assert isinstance(frame, pd.DataFrame) and len(frame) == len(outcome.results)
    assert list(frame["position"]) == list(range(len(frame)))
    if study == "style":
        answers = frame[frame["role"].isna()]
        assert set(frame["role"].dropna()) == {"judge", "embedder"}
        assert answers["length"].notna().all()  # the study's own per-answer feature
        assert set(answers.groupby("condition")["response"].count()) == {3 * 4}  # 4 prompts x 3 replicates
    if study == "accuracy":
        assert {"answer", "correct"} <= set(frame.columns)
        assert frame["correct"].dropna().isin([True, False]).all()
    if study == "variance":
        assert frame["answer"].notna().all() and set(frame["answer_code"]) <= {0, 1, 2, 3, 4}
    if study == "grid":
        assert frame["error"].notna().sum() == 4 and loaded.meta["totals"]["errors"] == 4


def test_a_run_id_and_the_store_alone_are_enough(tmp_path: Path) -> None:
    data, make = CASES["grid"]
    outcome = run_study(resolve_spec(data), tmp_path / "run", backends={"fake/test": make()})
    run_id = outcome.run["run_id"]
    for f in (tmp_path / "run").iterdir():
        f.unlink()
    loaded = load_run(run_id[:6])
    assert loaded.run_id == run_id and len(loaded.results) == len(outcome.results)
    assert loaded.meta["spec"]["study"] == "grid" and loaded.meta["counts"]["backend_calls"] > 0
    assert loaded.analyze().model_dump() == outcome.summary.model_dump()
    with pytest.raises(ConfigError, match="no run 'nope'"):
        load_run("nope")


def test_a_cached_rerun_keeps_what_the_first_run_cost(tmp_path: Path) -> None:
    data, make = CASES["dialogue"]
    first = run_study(resolve_spec(data), tmp_path / "run", backends={"fake/test": make()})
    second = run_study(resolve_spec(data), tmp_path / "run", backends={"fake/test": make()})
    assert second.stats.backend_calls == 0
    run_json = read_json(tmp_path / "run" / "run.json")
    assert run_json["counts"]["backend_calls"] == 0
    assert run_json["previous_runs"][-1]["counts"]["backend_calls"] == first.stats.backend_calls
    assert run_json["totals"]["computed_by_run"] == {first.run["run_id"]: len(first.results)}
    assert run_json["totals"]["completion_tokens"] == first.stats.completion_tokens > 0
    with Store() as st:  # the store merged the finish into what the start recorded
        meta = st.run(first.run["run_id"])["meta"]
        assert meta["spec_file"] is None and meta["counts"]["backend_calls"] == first.stats.backend_calls


def test_runs_lists_runs_and_a_killed_one_is_aborted(tmp_path: Path) -> None:
    data, make = CASES["grid"]
    run_study(resolve_spec(data), tmp_path / "run", backends={"fake/test": make()})
    with Store() as st:  # a run whose process is gone (pid 2**22 + 1 does not exist)
        st.start_run("deadbeef0000", "grid", None, {"models": ["fake/test"]})
        st._conn.execute("UPDATE runs SET pid = ? WHERE id = 'deadbeef0000'", (2**22 + 1,))
    result = CliRunner().invoke(app, ["runs"])
    assert result.exit_code == 0, result.output
    assert "deadbeef0000" in result.output and "aborted" in result.output and "complete" in result.output


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_export_writes_the_requests_and_the_summary_tables(fmt: str, tmp_path: Path) -> None:
    data, make = CASES["grid"]
    outcome = run_study(resolve_spec(data), tmp_path / "run", backends={"fake/test": make()})
    result = CliRunner().invoke(app, ["export", str(tmp_path / "run"), "--format", fmt, "--out", str(tmp_path / "x")])
    assert result.exit_code == 0, result.output
    reader = {"csv": pd.read_csv, "parquet": pd.read_parquet, "jsonl": lambda p: pd.read_json(p, lines=True)}[fmt]
    requests = reader(tmp_path / "x" / f"requests.{fmt}")
    assert len(requests) == len(outcome.results)
    assert {"persona", "item", "condition", "replicate", "role", "system_prompt", "last_user", "response",
            "error"} <= set(requests.columns)
    assert len(reader(tmp_path / "x" / f"summary.{fmt}")) == len(outcome.summary.table)
    bad = CliRunner().invoke(app, ["export", str(tmp_path / "run"), "--format", "xls"])
    assert bad.exit_code == 2 and "no export format 'xls'" in bad.output


def test_version() -> None:
    from personae import __version__

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"personae {__version__}"


def test_export_of_a_stopped_run_writes_its_requests_and_says_there_is_no_summary(tmp_path: Path) -> None:
    from personae.executors import Budget

    data, make = CASES["grid"]
    outcome = run_study(resolve_spec(data), tmp_path / "run", backends={"fake/test": make()},
                        budget=Budget(max_requests=2))
    assert outcome.status == "stopped"
    result = CliRunner().invoke(app, ["export", str(tmp_path / "run"), "--out", str(tmp_path / "x")])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "x" / "requests.csv")) == len(outcome.results) == 2
    assert not (tmp_path / "x" / "summary.csv").exists() and not (tmp_path / "x" / "stats.csv").exists()
    assert "no summary or stats tables" in result.output and "stopped" in result.output
