"""The consistency study on the fake backend: planted contradictions found where they were planted.

A scripted partner and a responder that plays the agent, the judge, the Q&A writer and the
answerer. The agent contradicts its sheet ("I have never seen the sea") on its third line
(turn 5) of every dialogue; everything else is consistent. Hand-computed references:
prompt-to-line = 2/3 per dialogue; line-to-line: pairs at turn 3 (1) and 5 (2) = 3, conflicts
at turn 5 = 2 -> 1/3; listener posterior with logprob 0 for the true persona and -5 for 3
distractors = 1 / (1 + 3 e^-5); Q&A every 2 own lines (turns 3 and 5): 5/5 then 0/5 -> 0.5.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

from personae.api import run_study
from personae.backends.base import Request
from personae.backends.fake import FakeBackend
from personae.dialogue import Speaker, build_dialogue, read_dialogues, write_dialogues
from personae.errors import ConfigError
from personae.spec import resolve_spec

from .helpers import FAST_RETRY, read_json

BAD = "I have never seen the sea."
AGENT_LINES = ["Ahoy, I sail the Salt Wren.", "Thirty years on the Caribbean, friend.", BAD]
SCRIPT = ["Who are you?", "How long have you sailed?", "Do you like the sea?"]
QUESTIONS = {"questions": [{"question": f"Question {i}?", "options": ["a", "b", "c", "d", "e"], "key": "A"}
                           for i in range(5)]}


def _agent_line(request: Request) -> str:
    own = sum(1 for m in request.messages if m.role == "assistant")
    return AGENT_LINES[own]


def responder(request: Request) -> str:
    system = request.messages[0].content if request.messages else ""
    user = request.last_user()
    schema = json.dumps(request.json_schema or {})
    if '"contradicts"' in schema:
        line = user.split("Line said by", 1)[1]
        return json.dumps({"contradicts": BAD in line})
    if '"conflicts"' in schema:
        new = user.split("New line by", 1)[1]
        earlier = [int(t) for t in re.findall(r"^\[(\d+)\] Captain", user.split("New line by")[0], re.M)]
        return json.dumps({"conflicts": earlier if BAD in new else []})
    if '"questions"' in schema:
        return json.dumps(QUESTIONS)
    if '"answer"' in schema:  # the key's option is "a", wherever the shuffle put it
        letters = dict(re.findall(r"^([A-E])\. (.)$", user, re.M))
        right = next(k for k, v in letters.items() if v == "a")
        wrong = next(k for k in letters if k != right)
        return json.dumps({"answer": wrong if any(BAD in m.content for m in request.messages) else right})
    if '"speaker"' in schema:
        letter = next(m.group(1) for m in re.finditer(r"^([A-Z])\. (.*)$", user, re.M) if "Flint" in m.group(2))
        return json.dumps({"speaker": letter})
    assert "Mara Flint" in system, system
    return _agent_line(request)


def scorer(request: Request) -> float:
    return 0.0 if "Mara Flint" in request.messages[0].content else -5.0


def _spec(**options: Any) -> dict[str, Any]:
    return {"study": "consistency", "model": "fake/x", "personas": ["builtin:pirate-captain"], "replicates": 2,
            "seed": 1, "concurrency": {"requests": 8, "retry": dict(FAST_RETRY)},
            "roles": {"embedder": "embed/hash"},
            "options": {"turns": 3, "partner": {"script": SCRIPT}, "qa_every": 2, "validity_lines": 4,
                        "judge": {"repeats": 2}, **options}}


def _run(data: dict[str, Any], out: Path | None = None) -> Any:
    backend = FakeBackend("fake/x", responder=responder, scorer=scorer)
    return run_study(resolve_spec(data), out_dir=out, backends={"fake/x": backend}), backend


def test_planted_contradictions_are_found_where_they_were_planted(tmp_path: Path) -> None:
    run, backend = _run(_spec(), tmp_path / "run")
    summary = run.summary
    (row,) = summary.table
    assert row["dialogues"] == 2 and row["complete"] == 2 and row["lines"] == 6
    assert row["prompt_to_line"] == pytest.approx(2 / 3, abs=1e-3)
    assert row["line_to_line"] == pytest.approx(1 / 3, abs=1e-3)
    assert row["qa"] == pytest.approx(0.5, abs=1e-3)
    assert row["listener"] == pytest.approx(1 / (1 + 3 * math.exp(-5)), abs=1e-3)
    assert row["stays_in_character"] == "0/2"  # 2/3 < the 0.9 threshold
    per_dialogue = summary.stats["dialogues"]
    assert [d["line_to_line"] for d in per_dialogue] == pytest.approx([1 / 3, 1 / 3], abs=1e-3)
    assert [d["contradicted_turns"] for d in per_dialogue] == [[5], [5]]  # the agent's third line
    assert summary.stats["judge_validity"]["accuracy"] == 1.0 and "warning" not in summary.stats["judge_validity"]
    assert summary.stats["pass_k"]["fake/x"]["pass_k"] == 0.0
    assert summary.stats["judge_models"][0]["model"] == "fake/x" and summary.stats["judge_models"][0]["fingerprint"]
    agreement = summary.stats["judge_agreement"]["prompt_to_line"]["contradicts"]
    assert agreement["unanimous_share"] == 1.0  # the scripted judge never disagrees with itself
    # the verdict is the table's numbers, and says the judge is the model under study
    assert "prompt-to-line 0.67" in summary.verdict and "line-to-line 0.33" in summary.verdict
    assert any(n.startswith("The judge (") and "is the model under study" in n for n in summary.notes)
    assert any(n.startswith("The scorer (") and "tells its persona" in n for n in summary.notes)
    # the dialogues as data: the agent's lines in order, the partner's script between them
    lines = [c.messages[-1].content for c in backend.history if c.tags.role is None
             and c.json_schema is None]
    assert len(lines) == 6 and lines[0].startswith(SCRIPT[0])


def test_rerun_makes_no_calls_and_gives_the_same_summary(tmp_path: Path) -> None:
    first, _ = _run(_spec())
    second, backend = _run(_spec())
    assert len(backend.history) == 0
    assert second.summary.table == first.summary.table


def test_a_failed_agent_line_stops_its_dialogue_and_is_counted() -> None:
    def failing(request: Request) -> str:
        if request.tags.role is None and request.json_schema is None and request.replicate == 1 \
                and request.tags.extra.get("line") == 3:
            raise RuntimeError("boom")
        return responder(request)

    backend = FakeBackend("fake/x", responder=failing, scorer=scorer)
    run = run_study(resolve_spec(_spec(metrics=["prompt_to_line"])), backends={"fake/x": backend})
    (row,) = run.summary.table
    assert row["complete"] == 1 and row["lines"] == 4  # 3 + 1 lines: replicate 1 stopped at its second line
    assert any("stopped early" in n for n in run.summary.notes)
    assert all(c.tags.extra.get("line", 0) <= 3 for c in backend.history
               if c.replicate == 1 and c.tags.role is None and c.json_schema is None)


def test_imported_dialogues_are_scored_without_generating(tmp_path: Path) -> None:
    sheet = ("I am Captain Mara Flint, a weathered pirate captain.", "I have sailed the Caribbean for thirty years.")
    said = [("user", "Who are you?"), ("agent", "Ahoy."), ("user", "And the sea?"), ("agent", BAD)]
    dialogues = [build_dialogue(f"d{i}", [Speaker(id="agent", name="Captain", persona=sheet), Speaker(id="user")],
                                said, reference_scores={"agent.prompt_to_line": 0.5}) for i in range(2)]
    path = write_dialogues(dialogues, tmp_path / "dialogues.jsonl")
    data = _spec(dialogues=[str(path)], metrics=["prompt_to_line", "listener"])
    data.pop("personas")
    run, backend = _run(data)
    assert not any(c.kind == "generate" and c.tags.condition is None for c in backend.history)
    (row,) = run.summary.table
    assert row["prompt_to_line"] == pytest.approx(0.5)
    assert read_dialogues(path)[0].lines[3].text == BAD


def test_bad_options_are_found_before_any_call(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="partner.script holds 3 lines"):
        resolve_spec(_spec(turns=5))
    with pytest.raises(ConfigError, match="not found"):
        data = _spec(dialogues=[str(tmp_path / "missing.jsonl")])
        resolve_spec(data)


def test_summary_json_and_report_are_written(tmp_path: Path) -> None:
    _run(_spec(), tmp_path / "run")
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["study"] == "consistency"
    assert (tmp_path / "run" / "report.html").read_text(encoding="utf-8").count("pirate") >= 1


def test_question_options_are_shuffled_with_their_key() -> None:
    from personae.consistency.judging import Question, shuffled, usable  # noqa: PLC0415

    q = Question(question="Where do you sail?", options=["Caribbean", "Alps", "Sahara", "Moon", "Mars"], key="A")
    keys = set()
    for seed in range(30):
        s = shuffled(q, seed)
        assert s.options[ord(s.key) - ord("A")] == "Caribbean" and sorted(s.options) == sorted(q.options)
        keys.add(s.key)
    assert len(keys) >= 4  # the key's letter no longer sits at A
    assert not usable(Question(question="Ship?", options=["Abele"] * 5, key="A"))


def test_questions_with_repeated_options_are_not_asked() -> None:
    def lazy_writer(request: Request) -> str:
        if '"questions"' in json.dumps(request.json_schema or {}):
            return json.dumps({"questions": [{"question": "Ship?", "options": ["x"] * 5, "key": "A"}] * 5})
        return responder(request)

    backend = FakeBackend("fake/x", responder=lazy_writer, scorer=scorer)
    run = run_study(resolve_spec(_spec(metrics=["qa"])), backends={"fake/x": backend})
    assert not any('"answer"' in json.dumps(c.json_schema or {}) for c in backend.history)
    assert run.summary.table[0]["qa"] is None
    assert any("0 of 5 questions have five different options" in n for n in run.summary.notes)
    assert "no Q&A score" in run.summary.verdict


def test_a_stopped_long_dialogue_resumes_at_the_line_it_reached(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """A 20-turn simulation stopped by a budget part-way resumes where it was: every agent line is
    asked once over both invocations, and the result equals an uninterrupted run's."""
    from personae.executors.base import Budget  # noqa: PLC0415

    script = [f"Question {i}?" for i in range(20)]

    def chatty(request: Request) -> str:
        if request.json_schema is None and request.tags.role is None and request.kind == "generate":
            return f"Arr, answer {sum(1 for m in request.messages if m.role == 'assistant')}."
        return responder(request)

    data = _spec(turns=20, partner={"script": script}, metrics=["prompt_to_line"], validity_lines=0)
    backend = FakeBackend("fake/x", responder=chatty, scorer=scorer)
    first = run_study(resolve_spec(data), backends={"fake/x": backend}, budget=Budget(max_requests=13))
    assert first.summary is None  # stopped by the budget, before analysis
    asked_first = [c.tags.extra["line"] for c in backend.history if c.tags.role is None]
    assert 0 < len(asked_first) < 40
    backend2 = FakeBackend("fake/x", responder=chatty, scorer=scorer)
    second = run_study(resolve_spec(data), backends={"fake/x": backend2})
    asked_second = [(c.replicate, c.tags.extra["line"]) for c in backend2.history if c.tags.role is None]
    asked_all = [(c.replicate, c.tags.extra["line"]) for c in backend.history if c.tags.role is None] + asked_second
    assert len(asked_all) == len(set(asked_all)) == 40  # 2 dialogues x 20 agent lines, each asked once
    (row,) = second.summary.table
    assert row["complete"] == 2 and row["lines"] == 40
    monkeypatch.setenv("PERSONAE_STORE", str(tmp_path / "fresh.sqlite"))  # an uninterrupted run, from scratch
    fresh = run_study(resolve_spec(data), backends={"fake/x": FakeBackend("fake/x", responder=chatty, scorer=scorer)})
    assert fresh.summary.table == second.summary.table
    assert fresh.summary.stats["dialogues"] == second.summary.stats["dialogues"]


def test_imported_files_from_two_models_are_ranked_against_their_reference_scores(tmp_path: Path) -> None:
    """Two files in the paper's layout, one per model (its reference scores rank model B first);
    the scripted judge finds B's lines consistent and A's contradicting, so the order agrees."""
    def record(i: int, line: str, ref: float) -> dict[str, Any]:
        return {"task_name": "Chat", "P1": "You are a curious user.",
                "P2": "You are Captain Mara Flint, a weathered pirate captain who loves the sea.", "pturn": 1,
                "index": i, "conversation": [[0, "P1: Hi?"], [1, f"P2: {line}"], [2, "P1: And?"], [3, f"P2: {line}"]],
                "P2_prompt_consistency_score": ref}

    for name, line, ref in (("model-a", BAD, 0.2), ("model-b", "Ahoy, the sea is my home.", 0.9)):
        (tmp_path / f"{name}.json").write_text(json.dumps([record(i, line, ref) for i in range(2)]), encoding="utf-8")
    data = _spec(dialogues=[str(tmp_path / "model-a.json"), str(tmp_path / "model-b.json")], speakers=["P2"],
                 metrics=["prompt_to_line"], validity_lines=0)
    data.pop("personas")
    run, _ = _run(data)
    assert {r["model"] for r in run.summary.table} == {"model-a", "model-b"}
    ranked = run.summary.stats["models_rank"]["prompt_to_line"]
    assert ranked["order_ours"] == ranked["order_reference"] == ["model-b", "model-a"] and ranked["same_order"]
    assert ranked["ours"] == {"model-a": 0.0, "model-b": 1.0}
    ids = [d["dialogue"] for d in run.summary.stats["dialogues"]]
    assert len(ids) == len(set(ids)) == 4  # the two files' ids made unique


def test_listener_decoding_is_compared_with_greedy_in_one_run() -> None:
    def plain(request: Request) -> str:
        if request.json_schema is None and request.tags.role is None and request.kind == "generate":
            return "Ahoy."  # only for the greedy arm: the listener arm is decoded by the fake multi-sequence decoder
        return responder(request)

    backend = FakeBackend("fake/x", responder=plain, scorer=scorer)
    data = _spec(metrics=["prompt_to_line"], validity_lines=0,
                 decoding={"listener": {"distractors": 2, "alpha": 3.0}})
    run = run_study(resolve_spec(data), backends={"fake/x": backend})
    assert sorted(r["persona"] for r in run.summary.table) == ["pirate-captain (greedy)", "pirate-captain (listener)"]
    agent = [c for c in backend.history if c.tags.role is None and c.json_schema is None and c.kind == "generate"]
    listener = [c for c in agent if c.decoding is not None]
    assert len(agent) == 12 and len(listener) == 6  # 2 arms x 2 replicates x 3 lines
    assert all(c.sampling.temperature == 0.0 for c in agent)
    assert all(len(c.decoding.distractors) == 2 and c.decoding.alpha == 3.0 for c in listener)
    assert all("Mara Flint" not in d for c in listener for d in c.decoding.distractors)


def test_listener_decoding_on_a_backend_that_cannot_is_refused_at_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONAE_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # never contacted
    data = {**_spec(decoding={"listener": {}}, metrics=["prompt_to_line"]), "model": "openai/x"}
    with pytest.raises(ConfigError, match="listener decoding needs a backend"):
        resolve_spec(data)
    # a role the options do not use is not checked: no listener metric, no scorer needed
    resolve_spec({**_spec(metrics=["prompt_to_line"]), "model": "openai/x"})
    with pytest.raises(ConfigError, match="the scorer .* must score text"):
        resolve_spec({**_spec(metrics=["listener"]), "model": "openai/x"})
