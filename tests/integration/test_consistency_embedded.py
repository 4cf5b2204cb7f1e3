"""The consistency study on the embedded model: a 10-turn simulation scored end to end offline,
and the judge-free listener metric telling a real dialogue from one whose lines were swapped
with another persona's. Structure and direction, not the tiny model's numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from personae.api import run_study
from personae.backends.local import LocalBackend
from personae.dialogue import Speaker, build_dialogue, write_dialogues
from personae.spec import resolve_spec

pytestmark = [pytest.mark.integration, pytest.mark.slow]
MODEL = "local/smollm2-135m"
PIRATE = ("I am Captain Mara Flint, a weathered pirate captain.", "I have sailed the Caribbean for thirty years.",
          "My ship is called the Salt Wren.", "I lost my left eye in a storm.")
PIRATE_LINES = ["Ahoy! I be Captain Flint of the Salt Wren.", "Thirty years I've sailed the Caribbean, matey.",
                "Lost this eye to a storm off Tortuga, arr.", "The Salt Wren is the finest ship on the sea."]
NURSE_LINES = ["I just finished a night shift at the hospital.", "My patients need their medicine at six.",
               "I check blood pressure and change bandages.", "The ward was busy, three new admissions tonight."]
ASKS = ["Who are you?", "What have you done all these years?", "What happened to your eye?", "Tell me about work."]


def _run(spec: dict[str, Any], backend: LocalBackend, out: Path):  # noqa: ANN201
    return run_study(resolve_spec({"model": MODEL, "seed": 3, **spec}), out, backends={MODEL: backend})


def test_ten_turn_simulation_is_scored_end_to_end(local_backend: LocalBackend, tmp_path: Path) -> None:
    script = [f"Question {i + 1}: tell me something about your life." for i in range(10)]
    outcome = _run({"study": "consistency", "personas": ["builtin:pirate-captain"], "replicates": 1,
                    "sampling": {"temperature": 0.7, "max_tokens": 24},
                    "options": {"turns": 10, "partner": {"script": script}, "metrics": ["prompt_to_line", "listener"],
                                "judge": {"repeats": 1}, "validity_lines": 3}}, local_backend, tmp_path / "run")
    (row,) = outcome.summary.table
    assert row["complete"] == 1 and row["lines"] == 10
    assert row["listener"] is not None and 0.0 <= row["listener"] <= 1.0
    counts = outcome.summary.stats["judge_agreement"]["counts"]["prompt_to_line"]
    assert counts["items"] == 10  # every agent line judged (parsed or counted as a failure)
    assert outcome.summary.stats["judge_validity"]["lines"] == 3
    assert (tmp_path / "run" / "report.html").exists()


def test_listener_ranks_a_swapped_dialogue_lower(local_backend: LocalBackend, tmp_path: Path) -> None:
    def dialogue(did: str, lines: list[str]):  # type: ignore[no-untyped-def]
        said = [x for pair in zip([("user", a) for a in ASKS], [("agent", t) for t in lines]) for x in pair]
        return build_dialogue(did, [Speaker(id="agent", name="Captain Flint", persona=PIRATE), Speaker(id="user")],
                              said)

    path = write_dialogues([dialogue("original", PIRATE_LINES), dialogue("swapped", NURSE_LINES)],
                           tmp_path / "dialogues.jsonl")
    outcome = _run({"study": "consistency", "options": {"dialogues": [str(path)], "metrics": ["listener"],
                                                        "validity_lines": 0, "distractors": 3}},
                   local_backend, tmp_path / "run")
    by_dialogue = {d["dialogue"]: d["listener"] for d in outcome.summary.stats["dialogues"]}
    assert by_dialogue["original"] > by_dialogue["swapped"], by_dialogue
