"""The CLI, in process (Typer's CliRunner), on the fake backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from personae.cli.main import app
from personae.persona import builtin_persona, builtin_personas, render_persona
from personae.store import Store

from .helpers import grid_spec, read_json, read_jsonl, write_spec


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("COLUMNS", "250")  # wide tables: no wrapped ids
    return CliRunner()


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    return write_spec(tmp_path, grid_spec(["What do you do on a rainy day?", "Name a colour."], replicates=2))


def test_run_writes_the_run_folder_and_reruns_from_the_store(cli: CliRunner, spec: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = cli.invoke(app, ["run", str(spec), "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("run.json", "results.jsonl", "summary.json", "report.html"):
        assert (out / name).is_file(), name
    first = read_json(out / "run.json")
    assert first["status"] == "complete"
    assert first["counts"]["requests"] == 8 and first["counts"]["backend_calls"] == 8
    assert len(read_jsonl(out / "results.jsonl")) == 8
    assert "8 requests: 8 backend calls, 0 cache hits" in result.output

    again = cli.invoke(app, ["run", str(spec), "--out", str(out)])
    assert again.exit_code == 0, again.output
    second = read_json(out / "run.json")
    assert second["counts"]["backend_calls"] == 0
    assert second["counts"]["cache_hits"] == 8
    assert second["run_id"] != first["run_id"]
    assert "8 requests: 0 backend calls, 8 cache hits" in again.output
    rows = read_jsonl(out / "results.jsonl")
    assert len(rows) == 8 and all(r["cached"] for r in rows)


def test_run_uses_the_store_option(cli: CliRunner, spec: Path, tmp_path: Path) -> None:
    store = tmp_path / "elsewhere.sqlite"
    result = cli.invoke(app, ["run", str(spec), "--out", str(tmp_path / "run"), "--store", str(store)])
    assert result.exit_code == 0, result.output
    with Store(store) as st:
        assert st.count() == 8


def test_run_bad_spec_is_one_red_line_and_exit_2(cli: CliRunner, tmp_path: Path) -> None:
    bad = write_spec(tmp_path, {**grid_spec(["Hi?"]), "replicatse": 2}, "bad.yaml")
    result = cli.invoke(app, ["run", str(bad), "--out", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "replicatse" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("where", ["store_not_sqlite", "store_folder_missing", "out_is_a_file"])
def test_an_unusable_store_or_run_folder_is_one_red_line(where: str, cli: CliRunner, spec: Path,
                                                         tmp_path: Path) -> None:
    """These used to end in a sqlite3 / OSError traceback."""
    (tmp_path / "not.sqlite").write_text("not a database")
    (tmp_path / "a_file").write_text("")
    store = {"store_not_sqlite": tmp_path / "not.sqlite", "store_folder_missing": tmp_path / "a_file" / "store.sqlite"}
    args = ["run", str(spec), "--out", str(tmp_path / ("a_file" if where == "out_is_a_file" else "run"))]
    if where in store:
        args += ["--store", str(store[where])]
    result = cli.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    line = result.output.strip()
    assert line.startswith("error: ") and "\n" not in line
    assert {"out_is_a_file": "cannot write the run folder",  # each says what is wrong with it (issue 8, item 7)
            "store_not_sqlite": "is not a personae store (not a SQLite database at all)",
            "store_folder_missing": "cannot create the store's folder"}[where] in line
    assert "Fix:" in line


def test_names_from_the_spec_are_printed_as_text_not_rich_markup(cli: CliRunner, tmp_path: Path) -> None:
    """A title, model id or item id holding '[/b]' used to end a finished run in a rich MarkupError traceback,
    and '[bold]x' was silently swallowed from tables."""
    data = {**grid_spec(["Hi?"]), "model": "fake/sea[/b]", "title": "[bold]Sea[/bold] study [/i]"}
    result = cli.invoke(app, ["run", str(write_spec(tmp_path, data)), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "[bold]Sea[/bold] study [/i] (fake/sea[/b])" in result.output
    assert "verdict: fake/sea[/b]: " in result.output


def test_validate_good_spec(cli: CliRunner, spec: Path) -> None:
    result = cli.invoke(app, ["validate", str(spec)])
    assert result.exit_code == 0, result.output
    assert "ok:" in result.output and "8 requests in the first wave" in result.output


def test_validate_bad_spec_exits_2(cli: CliRunner, tmp_path: Path) -> None:
    bad = write_spec(tmp_path, {**grid_spec(["Hi?"]), "model": "fake"}, "bad.yaml")
    result = cli.invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2


def test_models_lists_every_provider(cli: CliRunner) -> None:
    result = cli.invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    for example in ("local/smollm2-135m", "openai/MODEL", "fake/test"):
        assert example in result.output


def test_personas_lists_the_library(cli: CliRunner) -> None:
    result = cli.invoke(app, ["personas"])
    assert result.exit_code == 0, result.output
    for pid in builtin_personas():
        assert f"builtin:{pid}" in result.output


def test_personas_shows_one_rendered(cli: CliRunner) -> None:
    result = cli.invoke(app, ["personas", "young-child", "--template", "third-person"])
    assert result.exit_code == 0, result.output
    assert render_persona(builtin_persona("young-child"), "third-person") in result.output


def test_chat_replies_from_the_backend(cli: CliRunner, isolated_store: Path) -> None:
    result = cli.invoke(app, ["chat", "builtin:pirate-captain", "--model", "fake/test"], input="hello\n/quit\n")
    assert result.exit_code == 0, result.output
    with Store(isolated_store) as st:
        ((_, _, request, response),) = list(st.iter_results())
    request, response = json.loads(request), json.loads(response)
    pirate = builtin_persona("pirate-captain")
    assert request["messages"] == [{"role": "system", "content": render_persona(pirate)},
                                   {"role": "user", "content": "hello"}]
    assert f"{pirate.name}> {response['text']}" in result.output


def test_chat_keeps_history_and_reset_clears_it(cli: CliRunner, isolated_store: Path) -> None:
    result = cli.invoke(app, ["chat", "builtin:pirate-captain", "--model", "fake/test"],
                        input="one\ntwo\n/reset\nthree\n/quit\n")
    assert result.exit_code == 0, result.output
    with Store(isolated_store) as st:
        requests = [json.loads(r) for _, _, r, _ in st.iter_results()]
    users = sorted([m["content"] for m in r["messages"] if m["role"] == "user"] for r in requests)
    assert users == [["one"], ["one", "two"], ["three"]]


def test_run_model_option_replaces_the_spec_models(tmp_path: Path) -> None:
    """`personae run SPEC -m fake/a -m fake/b` runs the spec on those models instead."""
    spec_path = write_spec(tmp_path, grid_spec(["Hi?"], replicates=1))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", str(spec_path), "--out", str(out), "-q", "-m", "fake/a", "-m", "fake/b"])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text())
    assert run["models"] == ["fake/a", "fake/b"]
    assert {r["model"] for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())} == {"fake/a", "fake/b"}
    bad = CliRunner().invoke(app, ["run", str(spec_path), "--out", str(out), "-q", "-m", "lcoal/x"])
    assert bad.exit_code == 2 and "local/x" in bad.output


def test_out_into_a_folder_of_another_specs_run_refuses_unless_overwrite(tmp_path: Path) -> None:
    """Issue 8, defect 5: a run folder's files belong to one run."""
    import yaml

    from .helpers import dialogue_spec, grid_spec

    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(yaml.safe_dump(grid_spec(["Hi?"])), encoding="utf-8")
    b.write_text(yaml.safe_dump(dialogue_spec(["Hi?"])), encoding="utf-8")
    runner = CliRunner()
    assert runner.invoke(app, ["run", str(a), "--out", str(tmp_path / "run")]).exit_code == 0
    assert runner.invoke(app, ["run", str(a), "--out", str(tmp_path / "run")]).exit_code == 0  # the same spec: fine
    refused = runner.invoke(app, ["run", str(b), "--out", str(tmp_path / "run")])
    assert refused.exit_code == 2 and "holds a run of another spec (grid study" in refused.output
    assert "--overwrite" in refused.output
    assert json.loads((tmp_path / "run" / "run.json").read_text())["study"] == "grid"  # untouched
    forced = runner.invoke(app, ["run", str(b), "--out", str(tmp_path / "run"), "--overwrite"])
    assert forced.exit_code == 0 and json.loads((tmp_path / "run" / "run.json").read_text())["study"] == "dialogue"


def test_chat_with_the_listener_decodes_with_distractors_and_off_compares(cli: CliRunner, isolated_store: Path) -> None:
    result = cli.invoke(app, ["chat", "builtin:pirate-captain", "--model", "fake/test", "--listener", "--alpha", "3"],
                        input="hello\n/listener off\nhello\n/quit\n")
    assert result.exit_code == 0, result.output
    assert "listener decoding: distractors" in result.output and "alpha 3, beta 0.5" in result.output
    with Store(isolated_store) as st:
        requests = [json.loads(r) for _, _, r, _ in st.iter_results()]
    with_listener = [r for r in requests if r.get("decoding")]
    assert len(requests) == 2 and len(with_listener) == 1  # the same message twice: two cache keys
    assert with_listener[0]["decoding"]["alpha"] == 3.0 and len(with_listener[0]["decoding"]["distractors"]) == 2
    assert all(r["sampling"]["temperature"] == 0.0 for r in requests)  # greedy both ways, so /listener off compares


def test_chat_listener_on_a_backend_that_cannot_decode_in_lockstep_says_so(cli: CliRunner,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONAE_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # never contacted
    result = cli.invoke(app, ["chat", "builtin:pirate-captain", "--model", "openai/x", "--listener"], input="/quit\n")
    assert result.exit_code == 2
    assert "--listener needs a backend that decodes several sequences in lockstep" in result.output
