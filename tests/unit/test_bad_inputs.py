"""Bad input gets one clear line that says where and how to fix it, exit code 2, and loses nothing.

The malformed files live in tests/bad_inputs/, with the substrings each error must contain in
tests/bad_inputs/expected.yaml (file:line, field, what went wrong, the fix). Every case runs
the real CLI in-process. A few scenarios need more than a file: an unreachable server (a port
on 127.0.0.1 that nobody listens on), a model that answers garbage, and --debug.
"""

from __future__ import annotations

import hashlib
import json
import socket
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from personae.backends.base import Request
from personae.backends.fake import register_responder
from personae.cli.main import app

BAD_INPUTS = Path(__file__).resolve().parents[1] / "bad_inputs"
TABLE: dict[str, dict[str, Any]] = yaml.safe_load((BAD_INPUTS / "expected.yaml").read_text(encoding="utf-8"))["cases"]

runner = CliRunner()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Own store, no debug, no progress bar, no proxy between us and 127.0.0.1 (tests/conftest.py
    does the first three too; repeated here so this module also runs on its own)."""
    monkeypatch.setenv("PERSONAE_STORE", str(tmp_path / "store.sqlite"))
    monkeypatch.setenv("PERSONAE_QUIET", "1")
    # --debug sets PERSONAE_DEBUG in os.environ; registering it with monkeypatch undoes that after the test
    monkeypatch.setenv("PERSONAE_DEBUG", "0")
    for var in ("PERSONAE_MODEL", "PERSONAE_OPENAI_BASE_URL", "OPENAI_BASE_URL", "HTTP_PROXY", "HTTPS_PROXY",
                "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def _cases() -> list[Any]:
    params = []
    for name, case in TABLE.items():
        for via in case["via"]:
            params.append(pytest.param(case.get("file", name), via, case["expect"], case.get("absent", []),
                                       id=f"{name}-{via}"))
    return params


def _invoke(args: list[str]) -> Any:
    return runner.invoke(app, args, input="", catch_exceptions=True)


def _one_error_line(result: Any) -> str:
    """Assert the CLI failed the way bad input must fail, and return the error line."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("error: ")
    return lines[0]


def _spec_referencing(tmp_path: Path, persona_file: Path) -> Path:
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"study": "grid", "model": "fake/test", "personas": [str(persona_file)],
                                    "options": {"questions": ["Hello?"]}}), encoding="utf-8")
    return spec


# ------------------------------------------------------------------ the table


def test_the_set_is_big_enough_and_complete() -> None:
    files = {p.name for p in BAD_INPUTS.iterdir() if p.is_file() and p.name != "expected.yaml"}
    covered = {case.get("file", name) for name, case in TABLE.items()} | \
        {data for case in TABLE.values() for data in case.get("data", ())}
    assert len(files) >= 100  # issue 8: at least 100 malformed files
    assert files - covered == set(), "every malformed file needs its expected error in expected.yaml"
    assert covered - files == set(), "expected.yaml names files that do not exist"
    for name, case in TABLE.items():
        assert set(case["via"]) <= {"spec", "validate", "chat", "prices"}, name
        assert set(case) <= {"via", "expect", "file", "data", "absent"}, name
        # the first substring is the file (and line) the error points at: this file, or one it references
        assert any(case["expect"][0].startswith(f) for f in files), f"{name}: the error must name a file"


@pytest.mark.parametrize(("file", "via", "expect", "absent"), _cases())
def test_bad_input_gets_one_line_with_where_and_fix(file: str, via: str, expect: list[str], absent: list[str],
                                                     tmp_path: Path) -> None:
    path = BAD_INPUTS / file
    if via == "spec":
        result = _invoke(["validate", str(_spec_referencing(tmp_path, path))])
    elif via == "validate":
        result = _invoke(["validate", str(path)])
    elif via == "prices":  # a price table given to a dry run
        spec = tmp_path / "spec.yaml"
        spec.write_text(yaml.safe_dump({"study": "grid", "model": "fake/test", "options": {"questions": ["Hi?"]}}),
                        encoding="utf-8")
        result = _invoke(["run", str(spec), "--dry-run", "--prices", str(path)])
    else:
        result = _invoke(["chat", str(path), "--model", "fake/test"])
    line = _one_error_line(result)
    assert "Fix:" in line
    for part in expect:
        assert part in line, f"{part!r} missing from: {line}"
    for part in absent:  # e.g. a password that the line must mask
        assert part not in line, f"{part!r} must not be in: {line}"


# ------------------------------------------------------------------ names given on the command line


def test_missing_spec_file_says_where_it_looked(tmp_path: Path) -> None:
    line = _one_error_line(_invoke(["validate", str(tmp_path / "nope.yaml")]))
    assert "nope.yaml: file not found" in line
    assert f"looked for {tmp_path / 'nope.yaml'}" in line


def test_folder_instead_of_file() -> None:
    line = _one_error_line(_invoke(["validate", str(BAD_INPUTS)]))
    assert "is a folder, not a file" in line


def test_unknown_model_id_in_chat_suggests_a_close_match() -> None:
    line = _one_error_line(_invoke(["chat", "builtin:pirate-captain", "--model", "lcoal/x"]))
    assert "No model 'lcoal/x'" in line
    assert "Did you mean 'local/x'?" in line
    assert "Fix:" in line


def test_unknown_local_model_in_chat_suggests_the_alias() -> None:
    line = _one_error_line(_invoke(["chat", "builtin:pirate-captain", "--model", "local/smollm-135m"]))
    assert "Did you mean 'local/smollm2-135m'?" in line


def test_unknown_builtin_persona_in_chat_suggests_a_close_match() -> None:
    line = _one_error_line(_invoke(["chat", "builtin:pirate-captian", "--model", "fake/test"]))
    assert "no built-in persona 'pirate-captian'" in line
    assert "pirate-captain" in line


def test_unknown_template_in_chat() -> None:
    line = _one_error_line(_invoke(["chat", "builtin:pirate-captain", "--model", "fake/test", "--template", "you-r"]))
    assert "Did you mean 'you-are'?" in line


# ------------------------------------------------------------------ --debug


def test_debug_env_shows_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONAE_DEBUG", "1")
    result = _invoke(["validate", str(BAD_INPUTS / "spec_unknown_study.yaml")])
    assert result.exit_code == 2
    assert "Traceback (most recent call last)" in result.output
    assert result.output.strip().splitlines()[-1].startswith("error: ")


def test_debug_flag_shows_the_traceback() -> None:
    result = _invoke(["--debug", "validate", str(BAD_INPUTS / "spec_unknown_study.yaml")])
    assert result.exit_code == 2
    assert "Traceback (most recent call last)" in result.output


# ------------------------------------------------------------------ an unreachable server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_names_the_url_and_keeps_the_run_folder(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_free_port()}/v1"
    spec = tmp_path / "spec.yaml"
    # 8 requests (4 replicates x 2 questions, baseline only): the runner stops once the first 8 all fail
    spec.write_text(yaml.safe_dump({
        "study": "grid", "model": "openai/some-model", "backend": {"base_url": url, "timeout_s": 5},
        "replicates": 4, "concurrency": {"requests": 2, "retry": {"max_attempts": 2, "base_delay_s": 0}},
        "options": {"questions": ["Hello?", "Why?"]},
    }), encoding="utf-8")
    out = tmp_path / "run"
    line = _one_error_line(_invoke(["run", str(spec), "--out", str(out), "--quiet"]))
    assert url in line
    assert "cannot reach the server" in line
    assert "Fix:" in line and "base_url" in line
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert run["status"] == "aborted"
    assert run["counts"]["errors"] == 8
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 8 and all(url in r["error"] for r in rows)  # every failure is a row, none dropped


# ------------------------------------------------------------------ a model that answers garbage

_GARBAGE = ("", " ", "\x00\x01\x02", "{{{{ not json", "\ufffd" * 40, "<|im_end|><|im_start|>assistant",
            "A) B) C) D)" * 30, "\n\n\n")


def _garbage(request: Request) -> str:
    return _GARBAGE[hashlib.sha256(request.cache_key().encode()).digest()[0] % len(_GARBAGE)]


register_responder("test-bad-inputs-garbage", _garbage)


@pytest.mark.parametrize("study", ["grid", "dialogue"])
def test_garbage_answers_give_rows_not_a_crash(study: str, tmp_path: Path) -> None:
    """No study parses answers yet (grid and dialogue count words), so garbage must flow through
    as ordinary rows: no crash, no dropped row, a summary and a report. When a parsing study
    lands, add it here and assert that unparseable answers are counted as parse failures."""
    options = {"questions": ["Hello?", "Why?"]} if study == "grid" else {"user_turns": ["Hi!", "Who are you?"]}
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "study": study, "model": "fake/test", "backend": {"responder": "test-bad-inputs-garbage"},
        "personas": ["builtin:pirate-captain", "builtin:grumpy-farmer"], "replicates": 3, "options": options,
    }), encoding="utf-8")
    out = tmp_path / "run"
    result = _invoke(["run", str(spec), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    expected = (3 * 2 * 3) if study == "grid" else (2 * 3 * 2)  # conditions x questions x reps / personas x reps x turns
    assert len(rows) == expected
    assert all(r["error"] is None for r in rows)
    assert {r["response"] for r in rows} <= set(_GARBAGE)
    assert json.loads((out / "run.json").read_text(encoding="utf-8"))["status"] == "complete"
    assert (out / "summary.json").exists() and (out / "report.html").exists()


def test_garbage_answers_count_as_parse_failures_in_a_parsing_study(tmp_path: Path) -> None:
    """The accuracy study parses a letter from each answer: garbage must be counted as a parse
    failure (never scored wrong, never a crash). Skipped while that study does not import."""
    try:
        from personae.studies import get_study

        get_study("accuracy")
    except Exception as exc:  # the study is being written: run this test as soon as it imports
        pytest.skip(f"the accuracy study is not available yet ({type(exc).__name__}: {exc})")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({
        "study": "accuracy", "model": "fake/test", "backend": {"responder": "test-bad-inputs-garbage"},
        "replicates": 2, "options": {"limit": 1, "conditions": ["baseline", "layperson"], "n_bootstrap": 1000},
    }), encoding="utf-8")
    out = tmp_path / "run"
    result = _invoke(["run", str(spec), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows and all(r["error"] is None for r in rows)
    counts = json.loads((out / "summary.json").read_text(encoding="utf-8"))["counts"]
    assert counts.get("parse_failures", 0) > 0


# ------------------------------------------------------------------ nothing computed is lost


def test_a_failure_mid_run_keeps_what_was_computed(tmp_path: Path) -> None:
    """A dialogue whose second turn fails keeps the first turn, as a row and in the store."""
    spec = tmp_path / "spec.yaml"
    data = {"study": "dialogue", "model": "fake/test", "personas": ["builtin:pirate-captain"],
            "backend": {"responder": "echo", "fail_when": "Who are you"},  # turn 2 is refused
            "options": {"user_turns": ["Hi!", "Who are you?", "Bye."]}}
    spec.write_text(yaml.safe_dump(data), encoding="utf-8")
    result = _invoke(["run", str(spec), "--out", str(tmp_path / "run1"), "--quiet"])
    assert result.exit_code == 4, result.output  # finished with failed requests
    rows = [json.loads(x) for x in (tmp_path / "run1" / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["error"] is None for r in rows] == [True, False]
    assert rows[0]["response"] == "Hi!"
    assert "refused the request" in rows[1]["error"]

    # run again once the server accepts it: turn 1 comes from the store, the rest is new
    # (a different *script* would be another backend, with a fingerprint and cache of its own)
    data["backend"] = {"responder": "echo"}
    spec.write_text(yaml.safe_dump(data), encoding="utf-8")
    result = _invoke(["run", str(spec), "--out", str(tmp_path / "run2"), "--quiet"])
    assert result.exit_code == 0, result.output
    run = json.loads((tmp_path / "run2" / "run.json").read_text(encoding="utf-8"))
    assert run["counts"]["cache_hits"] == 1 and run["counts"]["errors"] == 0
    rows = [json.loads(x) for x in (tmp_path / "run2" / "results.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["response"] for r in sorted(rows, key=lambda r: r["wave"])] == ["Hi!", "Who are you?", "Bye."]


# ------------------------------------------------------------------ inputs that need more than a file (issue 8)


def test_a_persona_file_that_is_a_symlink_loop(tmp_path: Path) -> None:
    """Symbolic links cannot live in the corpus portably (git on Windows), so this one is made here."""
    loop = tmp_path / "loop.yaml"
    try:
        loop.symlink_to(tmp_path / "loop.yaml")
    except (OSError, NotImplementedError):
        pytest.skip("this file system has no symbolic links")
    line = _one_error_line(_invoke(["validate", str(_spec_referencing(tmp_path, loop))]))
    assert f"{tmp_path / 'spec.yaml'}:6: field 'personas.0'" in line  # safe_dump sorts keys: personas is line 6
    assert f"'{loop}' is a symbolic link that leads nowhere (its target is missing, or links loop)" in line
    assert "Fix: point the link at a real persona file" in line
    line = _one_error_line(_invoke(["chat", str(loop), "--model", "fake/test"]))
    assert "loop.yaml: is a symbolic link that leads nowhere" in line and "Fix:" in line


def _grid_spec(tmp_path: Path) -> Path:
    spec = tmp_path / "good.yaml"
    spec.write_text(yaml.safe_dump({"study": "grid", "model": "fake/test", "personas": ["builtin:pirate-captain"],
                                    "replicates": 2, "options": {"questions": ["Hello?", "Why?"]}}), encoding="utf-8")
    return spec


def test_a_store_that_is_another_programs_sqlite_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """'table results already exists' before: now one line that says what the file is, and the
    file is not changed (same bytes, no -wal beside it)."""
    import sqlite3

    other = tmp_path / "scores.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE results (player TEXT, score INTEGER)")
        conn.execute("INSERT INTO results VALUES ('ada', 3)")
    conn.close()
    before = other.read_bytes()
    monkeypatch.setenv("PERSONAE_STORE", str(other))
    line = _one_error_line(_invoke(["run", str(_grid_spec(tmp_path)), "--out", str(tmp_path / "run"), "--quiet"]))
    assert f"error: {other}: is a SQLite database of another program, not a personae store" in line
    assert "Fix: point PERSONAE_STORE (or --store) at another file" in line
    assert other.read_bytes() == before and not Path(f"{other}-wal").exists()
    assert not (tmp_path / "run").exists()


def test_a_store_in_a_read_only_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Simulated: the tests run as root, who may write to a chmod 0555 folder, so sqlite3.connect is
    replaced by one that raises what SQLite raises in a read-only folder (sqlite3.OperationalError
    'unable to open database file'). The message used to be that text alone."""
    import sqlite3

    from personae import store as store_module

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise sqlite3.OperationalError("unable to open database file")

    monkeypatch.setattr(store_module.sqlite3, "connect", refuse)
    path = tmp_path / "readonly" / "store.sqlite"
    line = _one_error_line(_invoke(["run", str(_grid_spec(tmp_path)), "--store", str(path),
                                           "--out", str(tmp_path / "run"), "--quiet"]))
    assert f"{path}: cannot create or open the store: the folder {path.parent} is not writable" in line
    assert "Fix: set PERSONAE_STORE (or --store) to a file in a folder you may write to" in line


# ------------------------------------------------------------------ a bad input loses nothing already computed


def _snapshot(store: Path, out: Path) -> tuple[list[Any], dict[str, bytes]]:
    import sqlite3

    with sqlite3.connect(store) as conn:
        rows = conn.execute("SELECT key, kind, response FROM results ORDER BY key").fetchall()
    conn.close()
    return rows, {p.name: p.read_bytes() for p in sorted(out.iterdir())}


@pytest.mark.parametrize("bad", ["spec_top_level_typo.yaml", "spec_base_url_credentials.yaml",
                                 "spec_multi_document.yaml", "spec_persona_file_bad.yaml",
                                 "spec_individuation_profile_field_unknown.yaml"])
def test_a_bad_spec_after_a_finished_run_loses_nothing(bad: str, tmp_path: Path) -> None:
    """A store with completed results and a run folder, then a bad spec run into the same store and
    the same --out: exit 2 with one line, and every result and every file of the run is still there,
    byte for byte."""
    store = Path(tmp_path / "store.sqlite")
    out = tmp_path / "run"
    result = _invoke(["run", str(_grid_spec(tmp_path)), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    rows, files = _snapshot(store, out)
    assert len(rows) == 2 * 2 * 2 and {"run.json", "results.jsonl", "summary.json", "report.html"} <= set(files)

    line = _one_error_line(_invoke(["run", str(BAD_INPUTS / bad), "--out", str(out), "--quiet"]))
    assert "Fix:" in line
    assert _snapshot(store, out) == (rows, files)

    # and the good spec still answers from the store: nothing to compute again
    result = _invoke(["run", str(_grid_spec(tmp_path)), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert run["counts"]["cache_hits"] == 8 and run["counts"]["backend_calls"] == 0


def test_a_store_from_a_newer_personae_is_refused_and_keeps_its_results(tmp_path: Path) -> None:
    """Accepted (and written to) before. Now one line naming both schema versions; the store is not
    changed, so the newer personae (here: the row taken out again) still finds every result."""
    import sqlite3

    from personae import __version__
    from personae.store import MIGRATIONS

    store, out = tmp_path / "store.sqlite", tmp_path / "run"
    assert _invoke(["run", str(_grid_spec(tmp_path)), "--out", str(out), "--quiet"]).exit_code == 0
    future = len(MIGRATIONS) + 1
    with sqlite3.connect(store) as conn:
        conn.execute("INSERT INTO migrations VALUES (?, 0)", (future,))
    conn.close()
    rows, files = _snapshot(store, out)

    line = _one_error_line(_invoke(["run", str(_grid_spec(tmp_path)), "--out", str(out), "--quiet"]))
    assert f"{store}: was written by a newer personae: its schema is version {future}" in line
    assert f"this personae ({__version__}) reads up to version {len(MIGRATIONS)}" in line and "Fix: upgrade" in line
    assert _snapshot(store, out) == (rows, files)

    with sqlite3.connect(store) as conn:
        conn.execute("DELETE FROM migrations WHERE version = ?", (future,))
    conn.close()
    assert _invoke(["run", str(_grid_spec(tmp_path)), "--out", str(out), "--quiet"]).exit_code == 0
    assert json.loads((out / "run.json").read_text(encoding="utf-8"))["counts"]["cache_hits"] == 8
