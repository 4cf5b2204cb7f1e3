"""The bias study's sequential design: the paired value of each unit, and its bounds (pure functions).

Units are the bias items: numeracy items and veracity headlines, released in batches by
`personae.studies._sequential.Sequencer`. Each comparison is one identity persona against no
persona, in one arm of one model, on one task; its value on a unit is a difference of the two
arms' answers to that unit, signed so that the null (no persona effect) is 0:

- numeracy, "{model}: numeracy {arm}/{persona}": on an identity-frame item whose vignette touches
  the persona's identity, v = s (a_p - a_0). a_p is the share of the persona's simulated
  participants (every template and replicate) who read the table correctly, a_0 the no persona's
  share in the same arm; s = +1 when the correct reading fits the persona's identity (congruent)
  and -1 when it goes against it. Shares lie in [0, 1], so v lies in [-1, 1]: the known bounds a
  confidence sequence needs. Every vignette comes in both framings, so the persona is congruent on
  half of its items and the mean of v over them is (gap_p - gap_0) / 2, gap = Acc(congruent) -
  Acc(incongruent), the no persona scored on the persona's congruence mapping: half the persona's
  identity-congruence gap beyond the gap the model shows with no persona. No effect: 0. A
  persona that is better or worse at every table moves congruent and incongruent items alike and
  cancels. Neutral-frame items and items of other axes give that persona no value.
- veracity, "{model}: veracity {arm}/{persona}": on headline h, v = s (r_p - r_0) / 5, r the mean
  1-6 rating of the persona's (the no persona's) participants, s = +1 for a real headline and -1
  for a fake one. A difference of two ratings lies in [-5, 5], so v lies in [-1, 1]. With as many
  real as fake headlines (the built-in set, headlines_limit) the mean of v over them is the
  difference of mean VDA (VDA = 0.5 + (mean real - mean fake) / 10), persona minus no persona. No
  effect on discernment: 0.

A unit enters a comparison only if both arms of it succeeded (`_pairing.pair_units`): no request
of the unit failed in that arm and at least one answer was parsed. Otherwise its value is not
computed, it leaves both sides, and the pairing counts what each arm lost; a failure is never
scored as a wrong answer.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from ..errors import ConfigError
from ..studies._pairing import Pairing, pair_units
from .analysis import Answer
from .veracity import Rating

BOUNDS = (-1.0, 1.0)
"""Bounds of every unit value (see the module docstring)."""
NULL = 0.0
"""The value of every comparison with no persona effect."""
PERSONA, NO_PERSONA = "persona", "no persona"
"""The two arms of each comparison, as the pairing counts name them."""
RATING_SPAN = 5
"""Largest difference of two 1-6 ratings: the veracity value's scale."""

Task = Literal["numeracy", "veracity"]
CellKey = tuple[str, str, str | None, str]
"""(model, arm, persona or None, unit id)."""


@dataclass(frozen=True)
class Comparison:
    """One identity persona against no persona, in one arm of one model, on one task."""

    task: Task
    model: str
    arm: str
    persona: str

    @property
    def label(self) -> str:
        return f"{self.model}: {self.task} {self.arm}/{self.persona}"


@dataclass
class _Cell:
    """The answers of one arm to one unit: their sum, how many were parsed, whether a request failed."""

    total: float = 0.0
    parsed: int = 0
    failed: bool = False

    @property
    def usable(self) -> bool:
        return not self.failed and self.parsed > 0

    @property
    def mean(self) -> float:
        return self.total / self.parsed


Cells = dict[CellKey, _Cell]


def _cells(records: Iterable[tuple[CellKey, float | None, bool]]) -> Cells:
    out: Cells = {}
    for key, value, error in records:
        cell = out.setdefault(key, _Cell())
        cell.failed |= error
        if value is not None and not error:
            cell.total += value
            cell.parsed += 1
    return out


def numeracy_cells(answers: Iterable[Answer]) -> Cells:
    """Per (model, arm, persona, item): the share-correct tally of the participants' answers."""
    return _cells(((a.model, a.arm, a.persona, a.item), None if a.correct is None else float(a.correct), a.error)
                  for a in answers)


def veracity_cells(ratings: Iterable[Rating]) -> Cells:
    """Per (model, arm, persona, headline): the mean-rating tally of the participants' ratings."""
    return _cells(((r.model, r.arm, r.persona, r.headline), None if r.rating is None else float(r.rating), r.error)
                  for r in ratings)


Weight = Callable[[Comparison, str], float | None]
"""The signed scale of a unit in a comparison (s, or s / 5), None when the unit is not one of its units."""


def paired_values(comparisons: Iterable[Comparison], released: Sequence[str], cells: Cells, weight: Weight
                  ) -> tuple[dict[str, dict[str, float]], dict[str, Pairing[str]]]:
    """Per comparison: unit id -> w (mean_persona - mean_no_persona) over the released units both arms
    answered, and the pairing of its released units (what each arm lost)."""
    values: dict[str, dict[str, float]] = {}
    pairings: dict[str, Pairing[str]] = {}
    for c in comparisons:
        units = [u for u in released if weight(c, u) is not None]
        arms = {PERSONA: c.persona, NO_PERSONA: None}
        ok = {arm: {u for u in units if (cell := cells.get((c.model, c.arm, who, u))) is not None and cell.usable}
              for arm, who in arms.items()}
        pairing = pair_units(units, tuple(arms), ok)
        pairings[c.label] = pairing
        values[c.label] = {u: float(weight(c, u) or 0.0) * (cells[(c.model, c.arm, c.persona, u)].mean
                                                            - cells[(c.model, c.arm, None, u)].mean)
                           for u in pairing.complete}
    return values, pairings


def congruence_sign(congruent: bool | None) -> float | None:
    """+1 on a congruent item, -1 on an incongruent one, None when the item does not touch the identity."""
    return None if congruent is None else 1.0 if congruent else -1.0


def veracity_sign(real: bool) -> float:
    """+1/5 on a real headline, -1/5 on a fake one (a rating difference over its span)."""
    return (1.0 if real else -1.0) / RATING_SPAN


def check_units(no_persona: bool, comparisons: Sequence[Comparison], item_ids: Collection[str],
                headline_ids: Collection[str]) -> None:
    """The ConfigErrors of a sequential design that cannot work, found before any model call."""
    if not no_persona:
        raise ConfigError("options.sequential stops when each identity persona's difference from no persona is "
                          "decided, and no_persona is false.", field="options.no_persona",
                          fix="set no_persona: true, or remove sequential.")
    if not comparisons:
        raise ConfigError("options.sequential stops when each identity persona's difference from no persona is "
                          "decided, and there is no such comparison (no vignette touches the identities, and no "
                          "veracity task).", field="options.sequential",
                          fix="list identities the vignettes touch (e.g. democrat, republican), add the veracity task, "
                              "or remove sequential.")
    clash = sorted(set(item_ids) & set(headline_ids))
    if clash:
        raise ConfigError(f"headline id '{clash[0]}' is also a numeracy item id, and a sequential design releases "
                          "items by id.", field="options.headlines", fix="give the headline another id.")


__all__ = ["BOUNDS", "NO_PERSONA", "NULL", "PERSONA", "Comparison", "check_units", "congruence_sign", "numeracy_cells",
           "paired_values", "veracity_cells", "veracity_sign"]
