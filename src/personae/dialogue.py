"""Dialogues as data: who speaks (with their persona sheet), and what each line says.

A `Dialogue` is what the consistency, listener and robustness studies read and write: its
speakers (each with the sentences of their persona or backstory) and its lines (speaker, turn,
text). Dialogues made elsewhere come in through `read_dialogues`, which reads the published
layouts as their authors ship them (see `personae.dialogue_layouts` for each one), and go out
through `write_dialogues`.

    >>> from personae.dialogue import Dialogue, Line, Speaker
    >>> d = Dialogue(id="d1", speakers=(Speaker(id="agent", persona=("I am a pirate.",)),
    ...                                 Speaker(id="user")),
    ...              lines=(Line(speaker="user", turn=0, text="Who are you?"),
    ...                     Line(speaker="agent", turn=1, text="A pirate, arr.")))
    >>> [line.text for line in d.lines_of("agent")]
    ['A pirate, arr.']
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .errors import ConfigError


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Speaker(_Frozen):
    """One participant of a dialogue."""

    id: str = Field(min_length=1)
    """How lines name this speaker: 'agent', 'user', 'P1', 'self', 'partner'."""
    name: str = ""
    """Display name ('Captain Morgan'); empty when the source gives none."""
    persona: tuple[str, ...] = ()
    """The persona sheet or backstory, one sentence (or paragraph) per entry; empty when unknown."""
    persona_id: str | None = None
    """The personae persona this speaker plays, when the dialogue was simulated here."""

    @property
    def sheet(self) -> str:
        """The persona as one text."""
        return " ".join(self.persona)


class Line(_Frozen):
    """One line of a dialogue."""

    speaker: str
    """The `Speaker.id` of who says it."""
    turn: int = Field(ge=0)
    """Position of the line in the dialogue, from 0 (every line is one turn)."""
    text: str
    """What is said."""


class Dialogue(_Frozen):
    """Speakers and their lines, in order."""

    id: str = Field(min_length=1)
    """Stable identifier, unique within a file."""
    speakers: tuple[Speaker, ...] = Field(min_length=1)
    """Everyone who speaks (and possibly a silent participant whose persona is known)."""
    lines: tuple[Line, ...] = ()
    """The lines, turn 0, 1, 2, ..."""
    reference_scores: dict[str, float] = Field(default_factory=dict)
    """Scores shipped with the dialogue by its source, keyed 'SPEAKER.metric' (e.g. the
    consistency-RL paper's 'P2.prompt_to_line'), kept to compare personae's judge against."""
    source: str = "personae"
    """The layout it was read from."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Whatever else the source carried; personae never reads it."""

    @model_validator(mode="after")
    def _consistent(self) -> Dialogue:
        ids = [s.id for s in self.speakers]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"speaker ids must be unique, '{dup[0]}' appears {ids.count(dup[0])} times")
        for n, line in enumerate(self.lines):
            if line.speaker not in ids:
                raise ValueError(f"line {n} is spoken by '{line.speaker}', who is not among the speakers "
                                 f"({', '.join(ids)})")
            if line.turn != n:
                raise ValueError(f"line {n} has turn {line.turn}; turns count the lines from 0 in order")
        return self

    def speaker(self, speaker_id: str) -> Speaker:
        for s in self.speakers:
            if s.id == speaker_id:
                return s
        raise KeyError(speaker_id)

    def lines_of(self, speaker_id: str) -> tuple[Line, ...]:
        """The lines one speaker says, in order."""
        return tuple(line for line in self.lines if line.speaker == speaker_id)

    def before(self, turn: int) -> tuple[Line, ...]:
        """The lines said before `turn` (the history a line answers)."""
        return self.lines[:turn]


def build_dialogue(dialogue_id: str, speakers: Sequence[Speaker], said: Sequence[tuple[str, str]], **extra: Any) -> Dialogue:
    """A dialogue from (speaker id, text) pairs in order; turns are numbered here."""
    return Dialogue(id=dialogue_id, speakers=tuple(speakers),
                    lines=tuple(Line(speaker=s, turn=n, text=t) for n, (s, t) in enumerate(said)), **extra)


Layout = Literal["auto", "personae", "parlai", "personachat-json", "consistency-rl"]
LAYOUTS: tuple[str, ...] = ("personae", "parlai", "personachat-json", "consistency-rl")


def read_dialogues(path: str | Path, layout: Layout = "auto") -> tuple[Dialogue, ...]:
    """Read every dialogue of a file, in the layout given or the one its content shows.

    Layouts: 'personae' (this project's JSONL, one `Dialogue` per line), 'parlai' (PersonaChat /
    ConvAI2 text with 'your persona:' and "partner's persona:" lines, numbered or ParlAI's
    'text:...' form), 'personachat-json' (the JSON or JSON-lines release with a 'personality' list
    and 'utterances' of 'history' and 'candidates', or per-turn rows with 'conv_id'), 'consistency-rl'
    (the JSON of arXiv 2511.00222 with
    'P1', 'P2', 'pturn' and 'conversation'). Errors name the file and line and say how to fix it.
    """
    from . import dialogue_layouts as layouts  # noqa: PLC0415  (the layouts import this module)

    return layouts.read(Path(path), layout)


def write_dialogues(dialogues: Sequence[Dialogue], path: str | Path, layout: Layout = "personae") -> Path:
    """Write dialogues in a layout `read_dialogues` reads back (the file is replaced atomically)."""
    from . import dialogue_layouts as layouts  # noqa: PLC0415

    if layout == "auto":
        raise ConfigError("cannot write in layout 'auto'.", field="layout",
                          fix=f"name one of: {', '.join(LAYOUTS)}.")
    return layouts.write(list(dialogues), Path(path), layout)
