"""What the listener study ranks: units of a true persona, a context and candidate replies.

A unit comes from the ranking set (labelled candidates) or from a dialogue file (the true next
line of a persona's speaker among lines drawn from other dialogues; `gold` marks the true one).
Pure functions of their inputs: the study builds them once and again in the analysis.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from ..backends.base import Message
from ..dialogue import Dialogue
from ..studies._cells import derive_seed
from .ranking_set import Label, RankingItem

Source = Literal["set", "dialogues"]


@dataclass(frozen=True)
class Choice:
    """A candidate reply of a unit."""

    text: str
    label: Label | None
    """entail / contradict / neutral (ranking set); None for a dialogue's candidates."""
    gold: bool
    """The reply Hits@1 counts: the set's first entail candidate, or the dialogue's true line."""


@dataclass(frozen=True)
class Unit:
    """One ranking problem."""

    source: Source
    id: str
    sheet: str
    """The true persona as one text."""
    context: tuple[Message, ...]
    """The history the reply answers (it opens and ends with a user message)."""
    choices: tuple[Choice, ...]


def alternating(lines: Sequence[str]) -> tuple[Message, ...]:
    """Lines as chat messages, the last one the user's, roles alternating backwards."""
    n = len(lines)
    return tuple(Message(role="user" if (n - 1 - i) % 2 == 0 else "assistant", content=t) for i, t in enumerate(lines))


def set_units(items: Sequence[RankingItem]) -> tuple[Unit, ...]:
    out = []
    for item in items:
        context = alternating(item.context)
        if context[0].role == "assistant":
            context = (Message(role="user", content="Hello."), *context)
        out.append(Unit(source="set", id=item.id, sheet=item.sheet, context=context,
                        choices=tuple(Choice(c.text, c.label, c.gold) for c in item.candidates)))
    return tuple(out)


def dialogue_units(dialogues: Sequence[Dialogue], *, seed: int, limit: int, n_others: int,
                   context_lines: int) -> tuple[Unit, ...]:
    """The true next line of every persona speaker's reply among `n_others` lines of other dialogues
    (persona speakers' lines only); at most `limit` units, a seeded sample in file order."""
    lines_by_dialogue = {d.id: [x.text for s in d.speakers if s.persona for x in d.lines_of(s.id)]
                         for d in dialogues}
    eligible = []
    for d in dialogues:
        for s in d.speakers:
            if not s.persona:
                continue
            for x in d.lines_of(s.id):
                view = [m for m in _speaker_view(d, s.id, x.turn)][-context_lines:]
                while view and view[0].role == "assistant":
                    view = view[1:]
                others = sorted({t for did, ts in lines_by_dialogue.items() if did != d.id for t in ts} - {x.text})
                if view and others:
                    eligible.append((d, s.sheet, x.turn, x.text, tuple(view), others))
    if len(eligible) > limit:
        keep = set(random.Random(derive_seed(seed, "listener:dialogue-units")).sample(range(len(eligible)), limit))
        eligible = [e for i, e in enumerate(eligible) if i in keep]
    out = []
    for d, sheet, turn, text, view, others in eligible:
        uid = f"{d.id}#{turn}"
        rng = random.Random(derive_seed(seed, f"listener:{uid}"))
        picked = [Choice(t, None, False) for t in rng.sample(others, min(n_others, len(others)))]
        picked.append(Choice(text, None, True))
        rng.shuffle(picked)
        out.append(Unit(source="dialogues", id=uid, sheet=sheet, context=view, choices=tuple(picked)))
    return tuple(out)


def _speaker_view(d: Dialogue, speaker: str, until: int) -> list[Message]:
    return [Message(role="assistant" if y.speaker == speaker else "user", content=y.text) for y in d.before(until)]


__all__ = ["Choice", "Source", "Unit", "alternating", "dialogue_units", "set_units"]
