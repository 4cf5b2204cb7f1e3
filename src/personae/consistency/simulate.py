"""Simulated dialogues: a persona agent and a partner, one line per wave, rebuilt from results.

Every (model, persona, replicate) is one dialogue of `2 * turns` lines: the partner opens each
exchange, the agent answers. Wave t asks line t of every live dialogue at once, so a 60-turn run
keeps all dialogues in flight together, and a killed run resumes at the line it reached (the
lines before it are cached results). A dialogue whose line fails stops there and is counted;
nothing after it is asked.

The partner is a scripted list of user lines (no calls), or a user simulator with its own
persona played by the `partner` role (default: the model under study).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..backends.base import Message, Request, Tags
from ..dialogue import Dialogue, Speaker, build_dialogue
from ..persona import Persona
from ..runner import Result

AGENT, PARTNER = "agent", "partner"
OPENING = "Start the conversation with your first message."


def persona_sheet(persona: Persona) -> tuple[str, ...]:
    """A persona as the sentences of its sheet: who it is, then its facts (PersonaChat style)."""
    return (f"I am {persona.name}, {persona.description}.", *persona.facts)


@dataclass(frozen=True)
class Slot:
    """One simulated dialogue: who the agent is, which model plays it, which replicate, and how the
    agent decodes ('plain': the spec's sampling; 'greedy' and 'listener' when the listener is compared)."""

    model: str
    persona: Persona
    replicate: int
    arm: str = "plain"

    @property
    def id(self) -> str:
        base = f"{self.model}|{self.persona.id}|{self.replicate}"
        return base if self.arm == "plain" else f"{base}|{self.arm}"


@dataclass(frozen=True)
class State:
    """How far a dialogue got: its lines so far and whether it goes on."""

    said: tuple[tuple[str, str], ...]
    """(speaker, text) of every line so far."""
    next_line: int | None
    """The line to ask next; None when finished or stopped."""
    stopped_at: int | None = None
    """The line whose request failed (the dialogue stopped there)."""


def line_index(results: Sequence[Result]) -> dict[tuple[str, int], Result]:
    """Simulation results by (dialogue id, line)."""
    out: dict[tuple[str, int], Result] = {}
    for r in results:
        e = r.request.tags.extra
        if "dialogue" in e and "line" in e:
            out[(e["dialogue"], int(e["line"]))] = r
    return out


def speaker_of(line: int) -> str:
    return PARTNER if line % 2 == 0 else AGENT


def state_of(slot: Slot, n_lines: int, script: Sequence[str] | None, index: Mapping[tuple[str, int], Result]) -> State:
    said: list[tuple[str, str]] = []
    for t in range(n_lines):
        if speaker_of(t) == PARTNER and script is not None:
            said.append((PARTNER, script[t // 2]))
            continue
        r = index.get((slot.id, t))
        if r is None:
            return State(tuple(said), t)
        if not r.ok:
            return State(tuple(said), None, stopped_at=t)
        said.append((speaker_of(t), (r.text or "").strip()))
    return State(tuple(said), None)


def agent_history(said: Sequence[tuple[str, str]], reminder: str | None) -> list[Message]:
    """The agent's view: partner lines are the user's, its own are the assistant's."""
    msgs = [Message(role="user" if s == PARTNER else "assistant", content=text) for s, text in said]
    if reminder and msgs and msgs[-1].role == "user":
        msgs[-1] = Message(role="user", content=f"{msgs[-1].content}\n\n({reminder})")
    return msgs


def partner_messages(said: Sequence[tuple[str, str]], partner_persona: str) -> list[Message]:
    """The user simulator's view: it is the assistant, the agent's lines are the user's."""
    system = (f"You are playing a person in a conversation. {partner_persona.strip()} Write only your next "
              "message, one or two sentences, with no name, label or quotes.")
    msgs = [Message(role="system", content=system), Message(role="user", content=OPENING)]
    msgs += [Message(role="assistant" if s == PARTNER else "user", content=text) for s, text in said]
    return msgs


def slot_tags(slot: Slot, line: int, role: str | None) -> Tags:
    condition = slot.persona.id if slot.arm == "plain" else f"{slot.persona.id}|{slot.arm}"
    return Tags(persona=slot.persona.id, item=f"line-{line}", condition=condition, wave=line, role=role,
                extra={"dialogue": slot.id, "line": line, "model": slot.model})


def to_dialogue(slot: Slot, state: State, partner_sheet: Sequence[str]) -> Dialogue:
    speakers = (Speaker(id=AGENT, name=slot.persona.name, persona=persona_sheet(slot.persona),
                        persona_id=slot.persona.id),
                Speaker(id=PARTNER, persona=tuple(partner_sheet)))
    meta: dict[str, Any] = {"model": slot.model, "persona": slot.persona.id, "replicate": slot.replicate,
                            "arm": slot.arm}
    if state.stopped_at is not None:
        meta["stopped_at"] = state.stopped_at
    return build_dialogue(slot.id, speakers, state.said, source="personae", metadata=meta)


def requests_for_wave(slots: Sequence[Slot], states: Mapping[str, State], *, make_agent: Any,
                      make_partner: Any) -> list[Request]:
    """The next line of every live dialogue (callables build the agent's and the partner's request)."""
    reqs = []
    for slot in slots:
        st = states[slot.id]
        if st.next_line is None:
            continue
        maker = make_partner if speaker_of(st.next_line) == PARTNER else make_agent
        reqs.append(maker(slot, st))
    return reqs
