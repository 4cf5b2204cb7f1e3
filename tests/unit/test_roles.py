"""Roles (core v2): a study's judge on another model than the one under study, bound in `roles:`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from personae.api import run_study
from personae.backends.base import Request
from personae.backends.fake import FakeBackend, register_responder
from personae.cli.main import app
from personae.errors import ConfigError
from personae.spec import load_spec, resolve_spec
from personae.store import Store

from .helpers import read_json, write_spec
from .test_study_style import OPINIONS, PROMPTS, spec as style_spec, stance_answers


def judge_says_for(request: Request) -> str:
    """A judge that always says 'for': its verdicts are told apart from the studied model's."""
    return json.dumps({"stance": "for"})


register_responder("always-for", judge_says_for)
register_responder("stance-answers", stance_answers)


def with_judge(**extra: Any) -> dict[str, Any]:
    data = style_spec(PROMPTS[:2] + OPINIONS[:2], features=["length"], effect_feature="length", stance=True,
                      judge={"repeats": 2})
    data["backend"] = {"responder": "stance-answers"}
    return {**data, **extra}


def test_the_judge_runs_on_its_own_backend_cached_and_a_rerun_makes_no_call(tmp_path: Path) -> None:
    data = with_judge(roles={"judge": {"model": "fake/judge", "backend": {"responder": "always-for"}}})
    studied = FakeBackend("fake/x", responder=stance_answers)
    judge = FakeBackend("fake/judge", responder=judge_says_for)
    first = run_study(resolve_spec(data), tmp_path / "one", backends={"fake/x": studied, "fake/judge": judge})
    verdicts = [r for r in first.results if r.request.tags.role == "judge"]
    assert verdicts and all(r.request.model == "fake/judge" for r in verdicts)
    assert all(r.text == '{"stance": "for"}' for r in verdicts)
    # the studied backend answered no verdict, the judge backend answered nothing but verdicts
    assert all(q.json_schema is None for q in studied.history)
    assert judge.history and all(q.json_schema is not None for q in judge.history)
    stance = first.summary.stats["stance"]["fake/x"]
    # the studied model hedges on every baseline answer; only the judge's own 'for' can make it 'for'
    assert stance["baseline"] == {"for": 2 * 3, "against": 0, "neutral": 0}
    run_json = read_json(tmp_path / "one" / "run.json")
    assert run_json["roles"]["judge"]["model"] == "fake/judge" and run_json["roles"]["judge"]["bound"]
    assert not any("model under study" in n for n in first.summary.notes)
    again = run_study(resolve_spec(data), tmp_path / "two", backends={
        "fake/x": FakeBackend("fake/x", responder=stance_answers),
        "fake/judge": FakeBackend("fake/judge", responder=judge_says_for)})
    assert again.stats.backend_calls == 0 and again.stats.cache_hits == len(again.results)
    assert again.summary.stats["stance"] == first.summary.stats["stance"]


def test_a_judge_on_a_model_not_listed_under_model_is_created_from_the_spec(tmp_path: Path) -> None:
    # no Python backends at all: both come from the spec (the bug: "no backend was created for model")
    data = with_judge(roles={"judge": {"model": "fake/judge", "backend": {"responder": "always-for"}}})
    outcome = run_study(resolve_spec(data), tmp_path / "run")
    verdicts = [r for r in outcome.results if r.request.tags.role == "judge"]
    assert verdicts and {r.request.model for r in verdicts} == {"fake/judge"}
    assert {r.text for r in verdicts} == {'{"stance": "for"}'}


def test_judge_model_option_is_an_alias_of_roles_judge(tmp_path: Path) -> None:
    data = with_judge()
    data["options"]["judge"]["model"] = "fake/judge"
    resolved = resolve_spec(data)
    assert resolved.roles["judge"].model == "fake/judge"
    outcome = run_study(resolved, tmp_path / "run")
    assert {r.request.model for r in outcome.results if r.request.tags.role == "judge"} == {"fake/judge"}
    both = with_judge(roles={"judge": "fake/other"})
    both["options"]["judge"]["model"] = "fake/judge"
    with pytest.raises(ConfigError, match=r"given twice.*roles.judge.*options.judge.model"):
        resolve_spec(both)


def test_an_unbound_judge_is_the_studied_model_and_the_summary_says_it_is_weak(tmp_path: Path) -> None:
    outcome = run_study(resolve_spec(with_judge()), tmp_path / "run")
    assert {r.request.model for r in outcome.results if r.request.tags.role == "judge"} == {"fake/x"}
    assert any("judge" in n and "model under study" in n for n in outcome.summary.notes)
    assert read_json(tmp_path / "run" / "run.json")["roles"]["judge"]["bound"] is False


def test_role_errors_are_found_at_validation(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no role 'jugde'.*Did you mean 'judge'") as info:
        resolve_spec(with_judge(roles={"jugde": "fake/judge"}))
    assert info.value.field == "roles.jugde"
    with pytest.raises(ConfigError, match="unknown provider 'fak'"):
        resolve_spec(with_judge(roles={"judge": "fak/judge"}))
    with pytest.raises(ConfigError, match="responder"):
        resolve_spec(with_judge(roles={"judge": {"model": "fake/j", "backend": {"responder": "nope"}}}))
    with pytest.raises(ConfigError, match="no role 'judge'.*uses none"):
        resolve_spec({"study": "grid", "model": "fake/x", "options": {"questions": ["Hi?"]},
                      "roles": {"judge": "fake/j"}})
    no_alias = with_judge(roles={"embedder": "fake/x"})
    del no_alias["options"]["embedder"]
    with pytest.raises(ConfigError, match="embed text, and fake/x cannot"):
        resolve_spec(no_alias)
    path = write_spec(tmp_path, with_judge(roles={"judge": {"model": "fake/j", "backend": {"responder": "nope"}}}))
    with pytest.raises(ConfigError) as info:
        load_spec(path)
    assert info.value.file == str(path) and info.value.line is not None


def test_validate_lists_the_roles_without_calling_a_model(tmp_path: Path) -> None:
    path = write_spec(tmp_path, with_judge(roles={"judge": {"model": "fake/judge", "backend": {"responder": "always-for"}}}))
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert "role judge: fake/judge" in result.output
    assert "role embedder: embed/hash" in result.output
    with Store() as st:
        assert st.count("results") == 0


def test_two_base_urls_under_one_model_id_never_share_results() -> None:
    from personae.backends import create_backend
    from personae.runner import Runner

    a = create_backend("openai/m", {"base_url": "http://127.0.0.1:9001/v1"})
    b = create_backend("openai/m", {"base_url": "http://127.0.0.1:9002/v1/"})
    req = Request(model="openai/m", messages=())
    with Store() as st:
        ka = Runner({"openai/m": a}, st).key_for(req)
        kb = Runner({"openai/m": b}, st).key_for(req)
    assert ka != kb
    assert b.fingerprint().endswith("127.0.0.1:9002/v1:scoring=none")  # no trailing slash in the key
    # credentials in a URL are refused, so they never reach a fingerprint (issue 8, item 6)
    with pytest.raises(ConfigError, match="holds a user name or password"):
        create_backend("openai/m", {"base_url": "http://user:secret@127.0.0.1:9002/v1/"})


def test_a_judge_whose_server_refuses_everything_stops_the_run_even_though_the_studied_model_answers(
        tmp_path: Path) -> None:
    from personae.runner import RunAborted

    data = with_judge(roles={"judge": {"model": "fake/judge", "backend": {"fail_when": ""}}})  # refuses all
    with pytest.raises(RunAborted, match=r"the first 8 requests to fake/judge \(the judge\) all failed"):
        run_study(resolve_spec(data), tmp_path / "run")
    run_json = read_json(tmp_path / "run" / "run.json")
    assert run_json["status"] == "aborted"
    with Store() as st:  # every answer of the studied model is kept
        assert st.count("results") >= 4 * 4 * 3 and st.count("errors") >= 8  # answers (and embeddings)


def test_failed_judge_requests_are_counted_in_the_notes(tmp_path: Path) -> None:
    # the judge refuses the young child's answers only ("Yes! It is fun."): after the baseline's succeeded
    data = with_judge(roles={"judge": {"model": "fake/judge", "backend": {"fail_when": "Yes!",
                                                                         "responder": "always-for"}}})
    outcome = run_study(resolve_spec(data), tmp_path / "run")
    failed = [r for r in outcome.results if r.request.tags.role == "judge" and not r.ok]
    assert len(failed) == 2 * 3 * 2  # 2 opinion prompts x 3 runs x 2 repeats of the child's answers
    assert outcome.summary.notes[0].startswith(f"{len(failed)} of 48 requests to the judge (fake/judge) failed")
    agreement = outcome.summary.stats["stance"]["fake/x"]["agreement"]
    assert agreement["request_errors"] == len(failed) and "12 of 48 verdicts failed as requests" in agreement["note"]
    assert any(n.startswith("stance judge (fake/judge) of fake/x's answers: 12 of 48") for n in outcome.summary.notes)


def test_the_report_names_each_role_and_its_model(tmp_path: Path) -> None:
    data = with_judge(roles={"judge": {"model": "fake/judge", "backend": {"responder": "always-for"}}})
    run_study(resolve_spec(data), tmp_path / "run")
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "judge = fake/judge" in html and "embedder = embed/hash" in html
    run_study(resolve_spec(with_judge()), tmp_path / "self")
    assert "judge = the model under study (weak)" in (tmp_path / "self" / "report.html").read_text()


def test_personae_runs_lists_the_role_models_beside_the_studied_ones(tmp_path: Path) -> None:
    from personae.runs import run_rows
    from personae.store import Store

    data = with_judge(roles={"judge": {"model": "fake/judge", "backend": {"responder": "always-for"}}})
    store = tmp_path / "s.sqlite"
    with Store(store) as st:
        run_study(resolve_spec(data), tmp_path / "one", store=st)
        rows = run_rows(st.runs())
    assert rows[0]["models"] == "fake/x" and "judge: fake/judge" in rows[0]["roles"].split(", ")
