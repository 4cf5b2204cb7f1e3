"""Failed requests become error rows that run.json, results.jsonl and the summary all count."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import personae.api
from personae.api import run_study
from personae.backends.base import Request
from personae.backends.fake import FakeBackend
from personae.errors import BackendError, BackendUnavailableError
from personae.runner import RunAborted
from personae.spec import load_spec
from personae.store import Store

from .helpers import grid_spec, read_json, read_jsonl, write_spec

QUESTIONS = [
    {"id": "rain", "text": "What do you do on a rainy day?"},
    {"id": "job", "text": "Describe your job in one sentence."},
    {"id": "food", "text": "What is your favourite food?"},
]


def test_some_failures_are_error_rows_everywhere(tmp_path: Path) -> None:
    # 2 conditions (baseline + pirate) x 3 questions x 2 replicates = 12 requests; 'job' fails: 4 errors.
    spec = write_spec(tmp_path, grid_spec(QUESTIONS, backend={"fail_when": "your job"}))
    out = tmp_path / "run"
    outcome = run_study(load_spec(spec), out)

    run = read_json(out / "run.json")
    assert run["status"] == "complete_with_errors"  # issue 8: failures are not a plain success
    assert run["counts"]["requests"] == 12
    assert run["counts"]["errors"] == 4
    assert run["counts"]["backend_calls"] == 12  # permanent errors are not retried

    rows = read_jsonl(out / "results.jsonl")
    assert len(rows) == 12
    errors = [r for r in rows if r["error"]]
    assert len(errors) == 4
    assert {r["item"] for r in errors} == {"job"}
    assert all(r["response"] is None for r in errors)
    assert all(r["response"] for r in rows if not r["error"])
    assert sorted((r["condition"], r["item"], r["replicate"]) for r in rows) == sorted(
        (c, q["id"], rep) for c in ("baseline", "pirate-captain") for q in QUESTIONS for rep in range(2))

    summary = read_json(out / "summary.json")
    assert summary["counts"] == {"requests": 12, "ok": 8, "errors": 4, "cached": 0}
    per_condition = {r["condition"]: r for r in summary["table"]}
    assert set(per_condition) == {"baseline", "pirate-captain"}
    for row in per_condition.values():
        assert row["errors"] == 2
        assert row["n"] == 4
    assert any("4 failed" in note for note in summary["notes"])

    assert outcome.stats.errors == 4
    assert sum(not r.ok for r in outcome.results) == 4
    with Store() as store:
        assert store.count("results") == 8
        assert len(store.errors_for(run["run_id"])) == 4


def test_error_rows_are_retried_on_the_next_run(tmp_path: Path) -> None:
    failing = write_spec(tmp_path, grid_spec(QUESTIONS, backend={"fail_when": "your job"}), "failing.yaml")
    run_study(load_spec(failing), tmp_path / "first")
    healthy = write_spec(tmp_path, grid_spec(QUESTIONS), "healthy.yaml")
    outcome = run_study(load_spec(healthy), tmp_path / "second")
    run = read_json(tmp_path / "second" / "run.json")
    assert run["counts"]["backend_calls"] == 4
    assert run["counts"]["cache_hits"] == 8
    assert run["counts"]["errors"] == 0
    assert all(r.ok for r in outcome.results)


def test_all_failing_run_aborts_early(tmp_path: Path) -> None:
    # Baseline only, 4 questions x 5 replicates = 20 requests, every one refused.
    questions = [f"Question number {i}?" for i in range(4)]
    spec = write_spec(tmp_path, grid_spec(questions, personas=[], replicates=5, backend={"fail_when": "Question"}))
    out = tmp_path / "run"
    with pytest.raises(RunAborted) as info:
        run_study(load_spec(spec), out)
    assert isinstance(info.value, BackendError)
    assert "all failed" in str(info.value)

    run = read_json(out / "run.json")
    assert run["status"] == "aborted"
    assert run["finished_at"] is not None
    errors = run["counts"]["errors"]
    # The runner gives up after 8 failures with no success; at most (concurrency - 1) more were in flight.
    assert 8 <= errors < 20
    rows = read_jsonl(out / "results.jsonl")
    assert len(rows) == errors and all(r["error"] for r in rows)
    assert not (out / "summary.json").exists()
    with Store() as store:
        assert store.count("results") == 0


def test_backend_outage_mid_run_aborts_and_keeps_finished_work(tmp_path: Path) -> None:
    calls: list[Request] = []

    def down_after_three(request: Request) -> str:
        calls.append(request)
        if len(calls) > 3:
            raise BackendUnavailableError("connection refused", backend="fake/test")
        return "fine"

    data = grid_spec(QUESTIONS)
    data["concurrency"]["requests"] = 1
    spec = load_spec(write_spec(tmp_path, data))
    out = tmp_path / "run"
    with pytest.raises(RunAborted, match="connection refused"):
        run_study(spec, out, backends={"fake/test": FakeBackend(responder=down_after_three)})
    run = read_json(out / "run.json")
    assert run["status"] == "aborted"
    with Store() as store:
        assert store.count("results") == 3


def test_a_store_the_run_opened_is_closed_even_when_it_aborts(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    opened: list[Store] = []

    class TrackedStore(Store):
        closed = False

        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, **kw)  # type: ignore[arg-type]
            opened.append(self)

        def close(self) -> None:
            self.closed = True
            super().close()

    monkeypatch.setattr(personae.api, "Store", TrackedStore)
    questions = [f"Question number {i}?" for i in range(4)]
    aborting = write_spec(tmp_path, grid_spec(questions, personas=[], replicates=5, backend={"fail_when": "?"}))
    with pytest.raises(RunAborted):
        run_study(load_spec(aborting), tmp_path / "aborted")
    fine = write_spec(tmp_path, grid_spec(questions, personas=[]), "fine.yaml")
    run_study(load_spec(fine), tmp_path / "fine")
    assert len(opened) == 2
    assert [s.closed for s in opened] == [True, True]


def test_error_messages_are_grouped_by_kind_with_counts_and_one_example(tmp_path: Path) -> None:
    """Issue 7, defect 9: 529 distinct messages (each with its own token count) made run.json 61 KB."""
    from personae.errors import BackendError

    def too_long(request):  # type: ignore[no-untyped-def]
        n = 4000 + len(request.last_user())
        if request.last_user() == "ok":  # one success first, or the run stops as a dead server
            return "fine"
        if "refuse" in request.last_user():
            raise BackendError("the server refused it", backend="fake/test", status=400)
        raise BackendError(f"prompt of {n} tokens is over n_ctx=2048", backend="fake/test", status=400)

    backend = FakeBackend(responder=too_long)
    from .helpers import request as make, run_requests

    with Store(tmp_path / "s.sqlite") as st:
        _, runner = run_requests(backend, st, [make("ok")] + [make("q" * i) for i in range(1, 41)] + [make("refuse")],
                                 concurrency=1)
    kinds = runner.stats.error_messages
    assert len(kinds) == 2
    by_count = sorted(kinds.values(), key=lambda e: e["count"])
    assert [e["count"] for e in by_count] == [1, 40]
    assert "prompt of 4001 tokens" in by_count[1]["example"]


def test_a_run_with_failed_requests_exits_4_and_says_so_before_the_verdict(tmp_path: Path) -> None:
    """Issue 8, defect 4: 13 of 60 requests failed and the run exited 0 with a verdict on the rest."""
    import yaml
    from typer.testing import CliRunner

    from personae.cli.main import app

    from .helpers import grid_spec

    spec = tmp_path / "spec.yaml"
    data = grid_spec(["Hi?", "Why not?", "How?"], replicates=2, backend={"fail_when": "Why"})
    spec.write_text(yaml.safe_dump(data), encoding="utf-8")
    result = CliRunner().invoke(app, ["run", str(spec), "--out", str(tmp_path / "run")])
    assert result.exit_code == 4, result.output
    out = result.output
    assert "4 of 12 requests failed" in out and out.index("requests failed") < out.index("verdict:")
    run = json.loads((tmp_path / "run" / "run.json").read_text(encoding="utf-8"))
    assert run["status"] == "complete_with_errors" and run["counts"]["errors"] == 4
    # the same command tries them again; a healthy server completes the run: exit 0
    data["backend"] = {}
    spec.write_text(yaml.safe_dump(data), encoding="utf-8")
    again = CliRunner().invoke(app, ["run", str(spec), "--out", str(tmp_path / "run")])
    assert again.exit_code == 0, again.output
    assert json.loads((tmp_path / "run" / "run.json").read_text(encoding="utf-8"))["status"] == "complete"
