"""Sequential designs for the comparison studies: release items in batches, stop when the data decide.

With `options.sequential` a study does not plan its whole grid in wave 0. Its items are put in a
seeded random order (so that each batch is a random sample of the bank, not the first domain of
a file sorted by domain) and `plan(done)` releases `look_every` items at a time, every arm and
replicate of each. After each batch (a look) every comparison's paired per-item values, in the
order the items were released, go into an always-valid confidence sequence
(`personae.stats.sequential`, Waudby-Smith & Ramdas 2024), and `stop_decision` says whether to
go on. Because `plan` stays a pure function of the results, a killed run resumes at its look.

- Paired units: an item enters a comparison only if every arm of it succeeded (the study's
  `unit_values` leaves out an item with a failed arm from both sides, as `_pairing` does).
- Several comparisons: each CS is at level alpha / k (Bonferroni over the k comparisons), so all of
  them hold at once with probability >= 1 - alpha; Holm is for fixed samples.
- The fixed design it is compared with asks every item up to `max_items`; `calls_saved` is the
  share of that design's requests never sent.
- Requests carry the same tags and seeds as the fixed design's, so the two share the cache.

How a study plugs in: give it `sequential: SequentialOptions | None` in its options, a
`unit_values(results, items) -> {comparison: {item id: value}}`, the `bounds` and `null` of the
values, a `unit_requests(item ids)` (every request of those items, as the fixed design asks them),
and let `plan` return `next_batch(study, done)` and `analyze` put `sequential_report(study, results)`
under stats.sequential (a `Sequenced` study).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigError
from ..backends.base import Request
from ..runner import Result
from ..stats.sequential import CITATION, METHOD, ConfidenceSequence, StopDecision, StopRule, betting_cs_at, \
    stop_decision

UnitValues = Mapping[str, Mapping[str, float]]
"""comparison label -> item id -> the paired value of that item (only items every arm answered)."""


class SequentialOptions(BaseModel):
    """Sample items in batches and stop once the decision (or a CI width) is reached."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    look_every: int = Field(default=20, ge=2)
    """Items released per batch; the stopping rule looks after each batch."""
    stop: StopRule = "decision"
    """'decision': stop once every comparison's always-valid CS excludes no effect (or, with
    ci_width set, is narrower than it); 'ci_width': stop once every CS is narrower than ci_width."""
    ci_width: float | None = Field(default=None, gt=0.0, le=2.0)
    """Target width of the always-valid CS (in the comparison's units: accuracy points / 100 for
    accuracy, share of items for variance). Needed by stop: ci_width."""
    max_items: int | None = Field(default=None, ge=2)
    """At most this many items (default: the whole bank); the fixed design compared with asks this many."""
    alpha: float = Field(default=0.05, gt=0.0, lt=0.5)
    """Miscoverage of the CSs, shared out over the comparisons (Bonferroni)."""


def check_sequential(options: SequentialOptions | None) -> None:
    """Raise a ConfigError for a sequential design that cannot stop as asked (before any model call)."""
    if options is not None and options.stop == "ci_width" and options.ci_width is None:
        raise ConfigError("stop: ci_width stops once every CS is narrower than a target, and none is set.",
                          field="options.sequential.stop", fix="add e.g. 'ci_width: 0.1', or use stop: decision.")


@dataclass(frozen=True)
class Look:
    """One look: how many items were released, and each comparison's CS over the complete ones."""

    items: int
    """Items released before this look."""
    sequences: dict[str, ConfidenceSequence]
    """comparison -> its CS over the items (of those released) that every arm answered."""
    decision: StopDecision

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.items, "decision": self.decision.reason,
                "comparisons": {k: _cs_brief(cs) for k, cs in self.sequences.items()}}


def _cs_brief(cs: ConfidenceSequence) -> dict[str, Any]:
    est = None if math.isnan(cs.estimate) else cs.estimate
    return {"n": cs.n, "estimate": est, "cs_low": cs.cs_low, "cs_high": cs.cs_high}


class Sequencer:
    """The release order of the items and the stopping rule over it (pure: results in, items out)."""

    def __init__(self, options: SequentialOptions, item_ids: Sequence[str], seed: int, *, bounds: tuple[float, float],
                 nulls: Callable[[str], float] | float, comparisons: Sequence[str]) -> None:
        self.options = options
        rng = np.random.default_rng(seed)
        order = [item_ids[i] for i in rng.permutation(len(item_ids))]
        self.order: tuple[str, ...] = tuple(order[: options.max_items] if options.max_items else order)
        self.bounds = bounds
        self._null = nulls
        self.comparisons = tuple(comparisons)
        self.alpha_each = options.alpha / max(1, len(self.comparisons))
        self._position = {item: n for n, item in enumerate(self.order)}

    def describe(self) -> str:
        """The line `personae validate` prints about the design."""
        o = self.options
        rule = "every CS excludes no effect" + (f" or is at most {o.ci_width} wide" if o.ci_width else "") \
            if o.stop == "decision" else f"every CS is at most {o.ci_width} wide"
        return (f"sequential: {len(self.order)} items in a seeded random order, {o.look_every} per look; stops once "
                f"{rule} (always-valid betting CS, alpha {o.alpha:g} over {len(self.comparisons)} comparisons, "
                "Bonferroni)")

    def null(self, comparison: str) -> float:
        return self._null(comparison) if callable(self._null) else float(self._null)

    def released(self, done: Sequence[Result]) -> int:
        """Items released so far: up to the furthest item of the order any result names."""
        seen = [self._position[i] for i in {r.request.tags.item for r in done} if i in self._position]
        return max(seen) + 1 if seen else 0

    def released_ids(self, done: Sequence[Result]) -> tuple[str, ...]:
        """The ids of the items released so far, in release order."""
        return self.order[: self.released(done)]

    def looks(self, values: UnitValues, released: int) -> list[Look]:
        """Every look up to `released` items, each comparison's CS from one pass over its values."""
        points = list(range(self.options.look_every, released, self.options.look_every)) + [released]
        per: dict[str, tuple[ConfidenceSequence, ...]] = {}
        for label in self.comparisons:
            got = values.get(label, {})
            flags = [item in got for item in self.order[:released]]
            x = [got[item] for item, ok in zip(self.order, flags) if ok]
            counts = np.cumsum(flags)
            per[label] = betting_cs_at(x, [int(counts[n - 1]) for n in points], alpha=self.alpha_each,
                                       bounds=self.bounds)
        out = []
        for k, n in enumerate(points):
            seqs = {label: per[label][k] for label in self.comparisons}
            decision = stop_decision(list(seqs.values()), [self.null(c) for c in seqs], rule=self.options.stop,
                                     ci_width=self.options.ci_width, exhausted=n >= len(self.order))
            out.append(Look(n, seqs, decision))
        return out

    def next_items(self, done: Sequence[Result], values: Callable[[Sequence[str]], UnitValues]) -> list[str]:
        """The ids of the next batch to ask ([] once the rule stops or the order is used up).
        `values(released item ids)` gives the paired per-item values of every comparison."""
        n = self.released(done)
        if n == 0:
            return list(self.order[: self.options.look_every])
        if n >= len(self.order) or self.looks(values(self.order[:n]), n)[-1].decision.stop:
            return []
        return list(self.order[n: n + self.options.look_every])

    def report(self, values: UnitValues, released: int, calls: int, fixed_calls: int) -> dict[str, Any]:
        """The block summary.json keeps under stats.sequential."""
        looks = self.looks(values, released) if released else []
        last = looks[-1] if looks else None
        reason = last.decision.reason if last else "continue"
        return {
            "method": METHOD, "citation": CITATION, "rule": self.options.stop, "ci_width": self.options.ci_width,
            "alpha": self.options.alpha, "alpha_per_comparison": self.alpha_each,
            "correction": f"Bonferroni over {len(self.comparisons)} comparisons",
            "look_every": self.options.look_every, "looks": len(looks), "items_released": released,
            "items_max": len(self.order), "stopped_because": reason if reason != "continue" else "not finished",
            "calls": calls, "calls_fixed_design": fixed_calls,
            "calls_saved": (1 - calls / fixed_calls) if fixed_calls else 0.0,
            "history": [look.as_dict() for look in looks],
            "final": {k: cs.as_dict() for k, cs in last.sequences.items()} if last else {},
        }


class Sequenced(Protocol):
    """A study with a sequential design: what `next_batch` and `sequential_report` ask of it."""

    @property
    def sequencer(self) -> Sequencer | None: ...

    def unit_values(self, results: Sequence[Result], item_ids: Sequence[str]) -> UnitValues: ...

    def unit_requests(self, item_ids: Sequence[str]) -> list[Request]: ...


def _sequencer(study: Sequenced) -> Sequencer:
    seq = study.sequencer
    if seq is None:
        raise ValueError("the study has no sequential design (options.sequential is not set)")
    return seq


def next_batch(study: Sequenced, done: Sequence[Result]) -> list[Request]:
    """The requests of the next batch (the first one when nothing is done; [] once the rule stops)."""
    ids = _sequencer(study).next_items(done, lambda released: study.unit_values(done, released))
    return study.unit_requests(ids)


def sequential_report(study: Sequenced, results: Sequence[Result]) -> dict[str, Any]:
    """The stats.sequential block of a run: looks, calls against the fixed design's, the final CSs."""
    seq = _sequencer(study)
    ids = seq.released_ids(results)
    return seq.report(study.unit_values(results, ids), len(ids), len(results), len(study.unit_requests(seq.order)))


def stop_sentence(seq: Mapping[str, Any]) -> str:
    """One sentence on the sequential design: looks, items, calls saved, why it stopped."""
    why = {"decision": "every comparison's always-valid CS had reached a decision",
           "ci_width": f"every always-valid CS was at most {seq['ci_width']} wide",
           "max_items": "all items were used without reaching the stopping rule"}.get(seq["stopped_because"],
                                                                                       "the run had not finished")
    return (f"Sequential design: stopped after {seq['looks']} look{'s' if seq['looks'] != 1 else ''} "
            f"({seq['items_released']} of {seq['items_max']} items) because {why}; {seq['calls']} of the fixed "
            f"design's {seq['calls_fixed_design']} calls made ({seq['calls_saved']:.0%} saved).")


__all__ = ["Look", "Sequenced", "SequentialOptions", "Sequencer", "UnitValues", "check_sequential", "next_batch",
           "sequential_report", "stop_sentence"]
