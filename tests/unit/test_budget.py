"""Budgets (core v2): --max-requests / --max-tokens stop a run cleanly; a larger budget resumes it
without repeating a call."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from personae.api import run_study
from personae.backends.fake import FakeBackend
from personae.cli.main import app
from personae.executors import Budget
from personae.spec import resolve_spec
from personae.store import Store

from .helpers import dialogue_spec, grid_spec, read_json, write_spec


def final_rows(outcome) -> list[tuple]:  # type: ignore[no-untyped-def]
    return [(r.key, r.text, r.request.tags.model_dump_json()) for r in outcome.results]


def test_a_grid_stopped_by_max_requests_resumes_to_the_uninterrupted_results(tmp_path: Path) -> None:
    data = grid_spec(["Hi?", "Why?", "How?"], replicates=3)  # 2 conditions x 3 x 3 = 18 requests
    reference = run_study(resolve_spec(data), store=Store(tmp_path / "ref.sqlite"),
                          backends={"fake/test": FakeBackend()})
    backend = FakeBackend()
    calls = 0
    for budget in (5, 5, 100):
        outcome = run_study(resolve_spec(data), tmp_path / "run", backends={"fake/test": backend},
                            budget=Budget(max_requests=budget))
        calls += outcome.stats.backend_calls
        if outcome.status == "stopped":
            run_json = read_json(tmp_path / "run" / "run.json")
            assert run_json["status"] == "stopped" and run_json["stopped"] == "budget"
            assert outcome.stats.backend_calls == 5 and outcome.summary is None
            assert not (tmp_path / "run" / "summary.json").exists()
    assert outcome.status == "complete"
    assert final_rows(outcome) == final_rows(reference)
    got, want = outcome.summary.model_dump(), reference.summary.model_dump()
    assert got["counts"].pop("cached") == 10 and want["counts"].pop("cached") == 0  # 10 from the stopped runs
    assert got == want
    distinct = len({r.key for r in reference.results})
    assert calls == distinct == len(backend.history) == 18


def test_a_dialogue_stopped_mid_wave_resumes_at_the_turn_it_reached(tmp_path: Path) -> None:
    data = dialogue_spec(["Hello?", "And then?", "Bye?"])  # 2 personas x 2 replicates x 3 turns
    reference = run_study(resolve_spec(data), store=Store(tmp_path / "ref.sqlite"),
                          backends={"fake/test": FakeBackend()})
    backend = FakeBackend()
    statuses = []
    for budget in (3, 3, 3, 3, 50):
        outcome = run_study(resolve_spec(data), backends={"fake/test": backend}, budget=Budget(max_requests=budget))
        statuses.append(outcome.status)
    assert statuses == ["stopped"] * 3 + ["complete"] * 2  # the 4th budget covers the last 3 requests exactly
    assert final_rows(outcome) == final_rows(reference)
    assert len(backend.history) == len({r.key for r in reference.results}) == 12


def test_max_tokens_stops_and_the_cli_exits_3_then_resumes(tmp_path: Path) -> None:
    path = write_spec(tmp_path, grid_spec(["Hi?", "Why?"], replicates=2))
    first = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "run"), "--max-tokens", "1"])
    assert first.exit_code == 3, first.output
    assert "stopped: the budget was reached" in first.output and "larger budget" in first.output
    stopped = read_json(tmp_path / "run" / "run.json")
    sent = stopped["counts"]["backend_calls"]
    # requests in flight when the budget is reached still finish: at most `concurrency` (4) are sent
    assert stopped["budget"]["tokens_used"] > 1 and 1 <= sent <= 4
    second = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "run")])
    assert second.exit_code == 0, second.output
    run_json = read_json(tmp_path / "run" / "run.json")
    assert run_json["status"] == "complete"
    assert run_json["counts"]["backend_calls"] == 8 - sent and run_json["counts"]["cache_hits"] == sent
    assert run_json["previous_runs"][-1]["status"] == "stopped"
    assert run_json["totals"]["computed_by_run"] == {stopped["run_id"]: sent, run_json["run_id"]: 8 - sent}
