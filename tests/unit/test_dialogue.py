"""The dialogue study: one wave per turn, history carried forward, resume mid-dialogue."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from personae.api import run_study
from personae.backends.base import Message, Request
from personae.backends.fake import FakeBackend, FakeOptions, hash_reply
from personae.errors import BackendError
from personae.persona import builtin_persona, render_persona
from personae.runner import Result
from personae.spec import load_spec

from .helpers import dialogue_spec, read_json, read_jsonl, write_spec

TURNS = [
    "Hello! Who are you?",
    "What did you do this morning?",
    "Tell me about your favourite storm.",
    "Remind me, what is your name?",
]
PERSONAS = ["pirate-captain", "grumpy-farmer"]


def by_dialogue(results: list[Result]) -> dict[tuple[str, int], list[Result]]:
    out: dict[tuple[str, int], list[Result]] = defaultdict(list)
    for r in results:
        out[(r.request.tags.persona or "", r.request.replicate)].append(r)
    return {k: sorted(v, key=lambda r: r.request.tags.wave) for k, v in out.items()}


def test_each_turn_carries_the_replies_of_earlier_turns(tmp_path: Path) -> None:
    resolved = load_spec(write_spec(tmp_path, dialogue_spec(TURNS)))
    backend = FakeBackend(options=FakeOptions(responder="persona"))
    outcome = run_study(resolved, tmp_path / "run", backends={"fake/test": backend})

    assert len(outcome.results) == 2 * 2 * len(TURNS)
    assert all(r.ok for r in outcome.results)
    # Waves: every turn t request reached the backend after every turn t-1 request.
    waves = [r.tags.wave for r in backend.history]
    assert waves == sorted(waves)
    assert Counter(waves) == {t: 4 for t in range(len(TURNS))}

    dialogues = by_dialogue(outcome.results)
    assert set(dialogues) == {(p, rep) for p in PERSONAS for rep in range(2)}
    for (pid, _), turns in dialogues.items():
        system = render_persona(builtin_persona(pid), "you-are")
        assert [r.request.tags.wave for r in turns] == list(range(len(TURNS)))
        for t, res in enumerate(turns):
            expected = [Message(role="system", content=system)]
            for i in range(t):
                expected += [Message(role="user", content=TURNS[i]),
                             Message(role="assistant", content=turns[i].text or "")]
            expected.append(Message(role="user", content=TURNS[t]))
            assert list(res.request.messages) == expected
            # The 'persona' responder names the persona from the system prompt.
            assert res.text == f"As {builtin_persona(pid).name}: {hash_reply(res.request)}"

    summary = read_json(tmp_path / "run" / "summary.json")
    assert all(row["complete_dialogues"] == 2 and row["errors"] == 0 for row in summary["table"])


def test_resume_mid_dialogue_computes_only_the_missing_turns(tmp_path: Path) -> None:
    failing = write_spec(tmp_path, dialogue_spec(TURNS, backend={"fail_when": "favourite storm"}), "failing.yaml")
    first = run_study(load_spec(failing), tmp_path / "first")
    waves = Counter([r.request.tags.wave for r in first.results])
    assert waves == {0: 4, 1: 4, 2: 4}  # turn 2 failed in every dialogue, so no turn 3
    assert [r.ok for r in first.results if r.request.tags.wave == 2] == [False] * 4
    run = read_json(tmp_path / "first" / "run.json")
    assert run["status"] == "complete_with_errors" and run["counts"]["errors"] == 4
    summary = read_json(tmp_path / "first" / "summary.json")
    assert summary["counts"]["errors"] == 4
    assert all(row["complete_dialogues"] == 0 and row["errors"] == 2 for row in summary["table"])

    healthy = FakeBackend()
    resolved = load_spec(write_spec(tmp_path, dialogue_spec(TURNS), "healthy.yaml"))
    second = run_study(resolved, tmp_path / "second", backends={"fake/test": healthy})
    assert sorted(r.tags.wave for r in healthy.history) == [2] * 4 + [3] * 4
    assert second.stats.backend_calls == 8
    assert second.stats.cache_hits == 8
    first_texts = {r.key: r.text for r in first.results if r.ok}
    for res in second.results:
        if res.request.tags.wave < 2:
            assert res.cached and res.text == first_texts[res.key]
    # Turn 2 was asked with the stored replies of turns 0 and 1 in its history.
    for req in healthy.history:
        if req.tags.wave == 2:
            replies = [m.content for m in req.messages if m.role == "assistant"]
            assert len(replies) == 2 and all(r in first_texts.values() for r in replies)
    summary = read_json(tmp_path / "second" / "summary.json")
    assert all(row["complete_dialogues"] == 2 for row in summary["table"])


def test_a_failed_turn_stops_that_dialogue_only(tmp_path: Path) -> None:
    def refuses_pirate_turn_1(request: Request) -> str:
        if request.tags.persona == "pirate-captain" and request.replicate == 0 and request.tags.wave == 1:
            raise BackendError("refused", backend="fake/test", status=400)
        return hash_reply(request)

    resolved = load_spec(write_spec(tmp_path, dialogue_spec(TURNS)))
    backend = FakeBackend(responder=refuses_pirate_turn_1)
    outcome = run_study(resolved, tmp_path / "run", backends={"fake/test": backend})

    dialogues = by_dialogue(outcome.results)
    stopped = dialogues[("pirate-captain", 0)]
    assert [(r.request.tags.wave, r.ok) for r in stopped] == [(0, True), (1, False)]
    for key, turns in dialogues.items():
        if key != ("pirate-captain", 0):
            assert [r.request.tags.wave for r in turns] == [0, 1, 2, 3] and all(r.ok for r in turns)
    assert len(backend.history) == 2 + 3 * 4

    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["counts"]["errors"] == 1
    rows = {r["persona"]: r for r in summary["table"]}
    assert rows["pirate-captain"]["complete_dialogues"] == 1 and rows["pirate-captain"]["errors"] == 1
    assert rows["grumpy-farmer"]["complete_dialogues"] == 2 and rows["grumpy-farmer"]["errors"] == 0
    assert "3 of 4 dialogues" in summary["verdict"]
    error_rows = [r for r in read_jsonl(tmp_path / "run" / "results.jsonl") if r["error"]]
    assert [(r["persona"], r["replicate"], r["wave"]) for r in error_rows] == [("pirate-captain", 0, 1)]
