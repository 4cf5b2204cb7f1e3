"""What a judge's results become: verdicts per item, parse failures, request errors, agreement.

Private records of `personae.judge` (re-exported there).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from pydantic import BaseModel

from ._verdict import Kind
from .backends.base import Request, Tags
from .stats import StatResult

V = TypeVar("V", bound=BaseModel)
ItemKey = Callable[[Request], Hashable]
"""What a verdict is about, from its request: requests with the same key are repeats of one item."""


class Answered(Protocol):
    """What `Judge.collect` reads of a result (`personae.runner.Result` fits)."""

    @property
    def request(self) -> Request: ...
    @property
    def ok(self) -> bool: ...
    @property
    def text(self) -> str | None: ...
    @property
    def error(self) -> str | None: ...


def item_key(request: Request) -> tuple[Any, ...]:
    """The default item key: the request's item, condition, persona, wave and extra tags."""
    t = request.tags
    return (t.item, t.condition, t.persona, t.wave, json.dumps(t.extra, sort_keys=True, default=str))


@dataclass(frozen=True)
class ParseFailure:
    """A judge reply that is not a valid verdict."""

    replicate: int
    """Which repeat it was."""
    text: str | None
    """The raw reply."""
    reason: str
    """Why it does not parse."""


@dataclass(frozen=True)
class JudgedItem(Generic[V]):
    """The k verdicts on one item. A failed request is neither a verdict nor a parse failure."""

    key: Hashable
    """The item key (see `item_key`)."""
    tags: Tags
    """Tags of the item's first request."""
    replicates: tuple[int, ...]
    """Replicates that got a reply, in order."""
    verdicts: tuple[V | None, ...]
    """One per reply, aligned with `replicates`; None where the reply did not parse."""
    failures: tuple[ParseFailure, ...] = ()
    """The replies that did not parse, with their text and reason."""
    request_errors: tuple[str, ...] = ()
    """Errors of requests that got no reply."""


@dataclass(frozen=True)
class JudgedSet(Generic[V]):
    """Every judged item, in order of first appearance."""

    items: tuple[JudgedItem[V], ...]
    """The items."""
    repeats: int
    """Verdicts asked for per item."""

    def complete(self) -> list[JudgedItem[V]]:
        """Items whose `repeats` verdicts all parsed."""
        return [i for i in self.items if len(i.verdicts) == self.repeats and None not in i.verdicts]

    def counts(self) -> dict[str, int]:
        """items, complete_items, verdicts, parse_failures, request_errors."""
        return {"items": len(self.items), "complete_items": len(self.complete()),
                "verdicts": sum(v is not None for i in self.items for v in i.verdicts),
                "parse_failures": sum(len(i.failures) for i in self.items),
                "request_errors": sum(len(i.request_errors) for i in self.items)}


@dataclass(frozen=True)
class FieldAgreement:
    """How well a judge agrees with itself on one verdict field."""

    field: str
    """The verdict field."""
    kind: Kind
    """categorical, ordinal, interval (measured), text or other (not measured)."""
    counts: dict[str, int]
    """`JudgedSet.counts()`: items, complete items, verdicts, parse failures, request errors."""
    statistic: StatResult | None = None
    """Fleiss' kappa (categorical, complete items) or Krippendorff's alpha (ordinal/interval, all
    verdicts); None when not measured."""
    unanimous_share: float | None = None
    """Share of complete items whose k values are all equal (categorical and ordinal fields)."""
    note: str = ""
    """Why nothing was measured, or what to read with care."""

    def as_dict(self) -> dict[str, Any]:
        return {"field": self.field, "kind": self.kind, **self.counts, "unanimous_share": self.unanimous_share,
                "statistic": self.statistic.as_dict() if self.statistic else None, "note": self.note}
