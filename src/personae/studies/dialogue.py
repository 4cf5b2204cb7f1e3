"""dialogue: a persona talks with a scripted user over several turns, one wave per turn.

Every (model, persona, replicate) is one dialogue. Wave t asks turn t of every live dialogue at
once, with the replies of turns 0..t-1 in the history, so concurrency stays high and a killed
run resumes at the turn it reached. A dialogue whose turn fails stops there and is counted.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..backends.base import Message, Request, Tags
from ..errors import ConfigError
from ..persona import Persona
from ..runner import Result
from ..spec_types import ResolvedSpec
from ..stats import mean_ci
from .base import Study, Summary, count_results

_WORD = re.compile(r"[a-z']{4,}")


class DialogueOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    user_turns: tuple[str, ...] = Field(min_length=1)
    """What the user says, turn by turn."""


def persona_words(persona: Persona) -> set[str]:
    text = " ".join((persona.name, persona.description, *persona.facts))
    return set(_WORD.findall(text.lower()))


def transcript(results: Sequence[Result]) -> list[Message]:
    """The dialogue history reconstructed from one dialogue's results, in turn order."""
    history: list[Message] = []
    for res in sorted(results, key=lambda r: r.request.tags.wave):
        history.append(res.request.messages[-1])
        history.append(Message(role="assistant", content=res.text or ""))
    return history


class DialogueStudy(Study[DialogueOptions]):
    name = "dialogue"
    Options = DialogueOptions

    @classmethod
    def check(cls, resolved: ResolvedSpec) -> None:
        if not resolved.personas:
            raise ConfigError("a dialogue needs at least one persona.", field="personas",
                              fix="add e.g. 'personas: [builtin:pirate-captain]'.")

    def dialogues(self) -> list[tuple[str, Persona, int]]:
        return [(m, p, r) for m in self.spec.model for p in self.personas for r in range(self.spec.replicates)]

    def plan(self, done: Sequence[Result]) -> list[Request]:
        by_dialogue: dict[tuple[str, str, int], list[Result]] = {}
        for res in done:
            by_dialogue.setdefault((res.request.model, res.request.tags.persona or "", res.request.replicate),
                                   []).append(res)
        wave = max((r.request.tags.wave for r in done), default=-1) + 1
        if wave >= len(self.options.user_turns):
            return []
        reqs = []
        for model, persona, rep in self.dialogues():
            past = by_dialogue.get((model, persona.id, rep), [])
            if len(past) != wave or any(not r.ok for r in past):
                continue  # stopped by a failed turn
            history = transcript(past) + [Message(role="user", content=self.options.user_turns[wave])]
            reqs.append(self.chat_request(model, persona, history, replicate=rep,
                                          tags=Tags(persona=persona.id, item=f"turn-{wave}", condition=persona.id,
                                                    wave=wave)))
        return reqs

    def analyze(self, results: Sequence[Result]) -> Summary:
        table: list[dict[str, Any]] = []
        n_turns = len(self.options.user_turns)
        for model in self.spec.model:
            for persona in self.personas:
                rs = [r for r in results if r.request.model == model and r.request.tags.persona == persona.id]
                ok = [r for r in rs if r.ok]
                vocab = persona_words(persona)
                overlap = [bool(vocab & set(_WORD.findall((r.text or "").lower()))) for r in ok]
                lens = mean_ci([len((r.text or "").split()) for r in ok])
                complete = sum(1 for rep in range(self.spec.replicates)
                               if sum(1 for r in ok if r.request.replicate == rep) == n_turns)
                table.append({
                    "model": model, "persona": persona.id, "dialogues": self.spec.replicates,
                    "complete_dialogues": complete, "turns_ok": len(ok), "errors": len(rs) - len(ok),
                    "mean_words": round(lens.estimate, 2) if ok else None,
                    "persona_word_share": round(float(np.mean(overlap)), 3) if overlap else None,
                })
        counts = count_results(results)
        complete = sum(r["complete_dialogues"] for r in table)
        total = sum(r["dialogues"] for r in table)
        verdict = (f"{complete} of {total} dialogues reached all {n_turns} turns. 'persona_word_share' is the share "
                   "of replies that reuse a content word of the persona sheet: a crude in-character signal, not a "
                   "consistency score.")
        return Summary(study=self.name, verdict=verdict, table=table, counts=counts,
                       stats={"turns": n_turns})


STUDY = DialogueStudy
