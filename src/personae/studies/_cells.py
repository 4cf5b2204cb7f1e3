"""The cells of a study: model x condition x item x replicate, each with its tags and its seed.

grid, accuracy and variance each wrote this loop by hand, with the tags and the seed derived
inside it; a fourth copy would have been one more place for a study to tag a cell differently
or to seed two cells alike. `cells()` is that loop once. The seed of a cell is the one
`Study.sampling_for` derives from the same tags (both call `cell_seed`), so a study that moves
onto `cells()` changes no request and no cache key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

from ..backends.base import Tags
from ..persona import Persona


class HasId(Protocol):
    """An item a study asks about: anything with an `id` (a Prompt, an MCItem)."""

    @property
    def id(self) -> str: ...


ItemT = TypeVar("ItemT", bound=HasId)


@dataclass(frozen=True)
class Condition:
    """One arm of a study."""

    name: str
    """The condition label (the `condition` tag)."""
    persona: Persona | None = None
    """The persona every item of this arm is asked with; None: no persona."""
    replicates: int | None = None
    """Replicates per item in this arm; None: the count given to `cells()` (variance's no-persona
    panel has as many samples as all personas together)."""


@dataclass(frozen=True)
class Cell(Generic[ItemT]):
    """One request's place in a study: who is asked what, which repeat, with which seed."""

    model: str
    """The model id asked."""
    condition: str
    """The condition's name."""
    persona: Persona | None
    """The persona asked with (rendered as the system prompt); None: no persona."""
    item: ItemT
    """The item asked."""
    replicate: int
    """Which repeat of the (condition, item), from 0."""
    tags: Tags
    """persona id, item id and condition name, as the results are grouped by."""
    seed: int
    """`cell_seed(seed, tags, replicate)`: distinct across personas, items, conditions and replicates."""


_SEED_JSON = json.JSONEncoder(sort_keys=True, default=str)
"""`json.dumps(parts, sort_keys=True, default=str)`, built once (the same text, so the same seeds)."""


def derive_seed(*parts: Any) -> int:
    """A deterministic 31-bit seed from any JSON-able parts."""
    digest = hashlib.sha256(_SEED_JSON.encode(parts).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def cell_seed(seed: int, tags: Tags, replicate: int) -> int:
    """The sampling seed of one cell and replicate, derived from the spec's seed.

    Every (persona, item, condition, wave, replicate) gets its own seed. A seed shared across
    personas (seed + replicate) would make the personas' samples common random numbers: their
    runs move together, and a test that treats runs as independent (the variance study's
    permutation test) would see persona differences smaller than they are.
    """
    return derive_seed(seed, tags.persona, tags.item, tags.condition, tags.wave, replicate)


def cell_seeds(seed: int, tags: Tags, replicates: int) -> list[int]:
    """`[cell_seed(seed, tags, r) for r in range(replicates)]`, the same numbers, with the cell's
    part of the seed text hashed once: replicate r only appends ``, r]`` to the JSON of
    ``[seed, persona, item, condition, wave`` (a 100,000-request grid derives 100,000 seeds)."""
    head = _SEED_JSON.encode([seed, tags.persona, tags.item, tags.condition, tags.wave, 0])
    prefix = hashlib.sha256(head[:-2].encode())  # drops the "0]" of replicate 0
    out = []
    for r in range(replicates):
        h = prefix.copy()
        h.update(f"{r}]".encode())
        out.append(int.from_bytes(h.digest()[:4], "little") & 0x7FFFFFFF)
    return out


def cells(models: Sequence[str], conditions: Sequence[Condition], items: Sequence[ItemT], replicates: int, *,
          seed: int, persona_for: Callable[[str, ItemT], Persona | None] | None = None,
          outer: Literal["condition", "item"] = "condition") -> Iterator[Cell[ItemT]]:
    """Every cell of a static grid, in a fixed order: per model, per condition, per item, per replicate.

    `replicates` is the count per (condition, item) unless the condition sets its own.
    `persona_for(condition name, item)` gives the persona when it depends on the item (accuracy's
    in-domain expert); without it each condition's own persona is used. `outer="item"` swaps the
    two middle loops (per model, per item, per condition), the order in which variance asks.
    """
    if replicates < 1 or any(c.replicates is not None and c.replicates < 1 for c in conditions):
        raise ValueError(f"replicates must be at least 1, got {replicates} and "
                         f"{[c.replicates for c in conditions if c.replicates is not None]} per condition.")
    if outer == "condition":
        pairs = [(c, i) for c in conditions for i in items]
    elif outer == "item":
        pairs = [(c, i) for i in items for c in conditions]
    else:
        raise ValueError(f"outer must be 'condition' or 'item', got {outer!r}.")
    for model in models:
        for cond, item in pairs:
            persona = persona_for(cond.name, item) if persona_for else cond.persona
            tags = Tags(persona=persona.id if persona else None, item=item.id, condition=cond.name)
            n = replicates if cond.replicates is None else cond.replicates
            for r, r_seed in enumerate(cell_seeds(seed, tags, n)):
                yield Cell(model=model, condition=cond.name, persona=persona, item=item, replicate=r, tags=tags,
                           seed=r_seed)
