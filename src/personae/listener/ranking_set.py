"""The listener's ranking set: items of a persona, a context and labelled candidate replies.

A Dialogue-NLI-style set (METHODS.md section 5) written for this project ships as
`builtin` (src/personae/data/listener/ranking.yaml, 62 items). A file of your own has the same
layout (YAML or JSON):

    items:
      - id: vegan-runner
        persona: ["I have been vegan for ten years.", "I run marathons."]
        context: ["We are grilling burgers tonight, want one?"]   # the partner speaks last
        candidates:
          entail: ["Thanks, but I do not eat meat."]               # the first one is the gold reply
          contradict: ["Sure, I love a good beef burger."]
          neutral: ["What time should I come by?"]

Candidates are put in a fixed order per item (seeded by the item's id), so no label has a place
of its own and ties do not favour one label.
"""

from __future__ import annotations

import random
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .._loading import check_unique_ids, read_model_file
from ..errors import ConfigError
from ..studies._cells import derive_seed

Label = Literal["entail", "contradict", "neutral"]
LABELS: tuple[Label, ...] = ("entail", "contradict", "neutral")
BUILTIN = Path(__file__).resolve().parents[1] / "data" / "listener" / "ranking.yaml"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Candidates(_Frozen):
    """An item's candidate replies by label."""

    entail: tuple[str, ...] = Field(min_length=1)
    """Replies that follow from the persona; the first is the gold reply (Hits@1)."""
    contradict: tuple[str, ...] = Field(min_length=1)
    """Replies that contradict a persona sentence."""
    neutral: tuple[str, ...] = ()
    """Fluent replies the persona neither implies nor rules out."""


class SetItem(_Frozen):
    """One item as written in the file."""

    id: str = Field(min_length=1, max_length=80)
    """Unique id of the item."""
    persona: tuple[str, ...] = Field(min_length=1)
    """The persona, one first-person sentence per entry."""
    context: tuple[str, ...] = Field(min_length=1, max_length=6)
    """The lines before the reply, alternating speakers; the partner speaks the last one."""
    candidates: Candidates
    """The candidate replies, by label."""

    @model_validator(mode="after")
    def _distinct(self) -> SetItem:
        texts = [t for label in LABELS for t in getattr(self.candidates, label)]
        if any(not t.strip() for t in texts + list(self.persona) + list(self.context)):
            raise ValueError("a persona sentence, context line or candidate is empty")
        dup = sorted({t for t in texts if texts.count(t) > 1})
        if dup:
            raise ValueError(f"candidate {dup[0]!r} appears more than once")
        return self


class Candidate(_Frozen):
    """A candidate reply with its label."""

    text: str
    """The reply."""
    label: Label
    """entail, contradict or neutral."""
    gold: bool = False
    """The item's gold reply (its first entail candidate)."""


class RankingItem(_Frozen):
    """An item ready to rank: its candidates in their fixed order."""

    id: str
    """Item id."""
    persona: tuple[str, ...]
    """Persona sentences."""
    context: tuple[str, ...]
    """Lines before the reply (the partner speaks last)."""
    candidates: tuple[Candidate, ...]
    """Candidates in a fixed order seeded by the id."""

    @property
    def sheet(self) -> str:
        return " ".join(self.persona)


class _SetFile(_Frozen):
    version: int = 1
    """Layout version of the file."""
    items: tuple[SetItem, ...] = Field(min_length=1)
    """The items."""


def _ordered(item: SetItem) -> RankingItem:
    c = item.candidates
    out = [Candidate(text=t, label=label, gold=(label == "entail" and i == 0))
           for label in LABELS for i, t in enumerate(getattr(c, label))]
    random.Random(derive_seed(0, f"ranking:{item.id}")).shuffle(out)
    return RankingItem(id=item.id, persona=item.persona, context=item.context, candidates=tuple(out))


def load_ranking_set(source: str | Path = "builtin", *, base_dir: Path | None = None) -> tuple[RankingItem, ...]:
    """The items of the built-in set ('builtin') or of a YAML/JSON file (relative to `base_dir`)."""
    if str(source) == "builtin":
        return _builtin()
    path = Path(source)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    if not path.is_file():
        raise ConfigError(f"ranking set '{source}' not found.", file=str(path), field="options.set",
                          fix="write 'set: builtin' or give a YAML/JSON file with 'items:' (docs/studies/listener.md).")
    return _parse(path)


@cache
def _builtin() -> tuple[RankingItem, ...]:
    return _parse(BUILTIN)


def _parse(path: Path) -> tuple[RankingItem, ...]:
    if path.suffix.lower() == ".jsonl":
        raise ConfigError("a ranking set is one YAML or JSON document, not JSON lines.", file=str(path),
                          field="options.set", fix="write the items under 'items:' in a .yaml or .json file.")
    parsed, lines = read_model_file(path, _SetFile, "items")
    check_unique_ids([i.id for i in parsed.items], path, lines, "items", "item")
    sheets = {" ".join(i.persona) for i in parsed.items}
    if len(sheets) < 2:
        raise ConfigError("the set holds one persona; the listener needs others to draw distractors from.",
                          file=str(path), field="items", fix="add items with other personas.")
    return tuple(_ordered(i) for i in parsed.items)


__all__ = ["BUILTIN", "LABELS", "Candidate", "Label", "RankingItem", "load_ranking_set"]
