"""Paired comparisons: which units enter, and what was dropped from each arm.

A unit (a response, an item, a participant, a prompt) enters a paired comparison only if every
one of its arms succeeded. Pairing by "whatever each arm has" is what made the individuation
study compare ~90 "without" responses with ~20 "with" responses per participant when one arm
failed (d = -1.69 instead of +0.03). `pair_units` is that rule, once, for every study:
planned units x arms -> the complete units and, per arm, how many units it lost.

Thresholds (METHODS, general rules): past `WARN_SHARE` of a comparison's units dropped the
verdict says so first; past `MAX_SHARE` the comparison gives no estimate ("not enough data").
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

K = TypeVar("K", bound=Hashable)

WARN_SHARE = 0.05
"""Above this share of units dropped, the verdict leads with the drop."""
MAX_SHARE = 0.5
"""Above this share of units dropped, the comparison is 'not enough data' (no estimate)."""
NOT_ENOUGH = "not enough data"

Status = Literal["ok", "dropped", "not enough data"]


@dataclass(frozen=True)
class Pairing(Generic[K]):
    """The outcome of pairing the planned units of one comparison over its arms."""

    arms: tuple[str, ...]
    """The comparison's arms, in the order given."""
    units: int
    """Planned units."""
    complete: tuple[K, ...]
    """Units whose every arm succeeded, in planned order: only these enter the comparison."""
    dropped: dict[str, int]
    """Per arm: planned units whose result in that arm is missing or failed (a unit that failed in
    two arms counts in both)."""

    @property
    def n_dropped(self) -> int:
        """Units left out (each once, however many of its arms failed)."""
        return self.units - len(self.complete)

    @property
    def share_dropped(self) -> float:
        """Share of planned units left out (0 when nothing was planned)."""
        return self.n_dropped / self.units if self.units else 0.0

    @property
    def status(self) -> Status:
        """'ok' (at most WARN_SHARE dropped), 'dropped' (more), or 'not enough data' (more than MAX_SHARE)."""
        if self.units == 0 or self.share_dropped > MAX_SHARE:
            return NOT_ENOUGH
        return "dropped" if self.share_dropped > WARN_SHARE else "ok"

    def as_dict(self) -> dict[str, Any]:
        """The counts for a summary: units, paired, dropped per arm, share dropped, status."""
        return {"units": self.units, "paired": len(self.complete), "dropped": dict(self.dropped),
                "share_dropped": self.share_dropped, "status": self.status}


def pair_units(units: Iterable[K], arms: Sequence[str], succeeded: Mapping[str, Collection[K]]) -> Pairing[K]:
    """The units of `units` whose every arm in `arms` is in `succeeded[arm]`, with drops per arm.

    `units` are the planned units (from the design, not from the results: a unit whose requests
    never came back counts as dropped). `succeeded[arm]` holds the units that arm answered.
    """
    if len(arms) < 2 or len(set(arms)) != len(arms):
        raise ValueError(f"a paired comparison needs two or more distinct arms, got {list(arms)}.")
    planned = list(dict.fromkeys(units))
    ok = {arm: set(succeeded.get(arm, ())) for arm in arms}
    complete = tuple(u for u in planned if all(u in ok[arm] for arm in arms))
    dropped = {arm: sum(u not in ok[arm] for u in planned) for arm in arms}
    return Pairing(arms=tuple(arms), units=len(planned), complete=complete, dropped=dropped)


def drop_counts(stats: Mapping[str, Any]) -> str:
    """'12 of 40 units (30%) dropped: with 12, without 0' from a `Pairing.as_dict()`."""
    per_arm = ", ".join(f"{arm} {n}" for arm, n in stats["dropped"].items())
    return (f"{stats['units'] - stats['paired']} of {stats['units']} units ({stats['share_dropped']:.0%}) dropped "
            f"because an arm failed ({per_arm})")


def drop_warnings(comparisons: Iterable[tuple[str, Mapping[str, Any] | None]]) -> str:
    """The sentence a verdict leads with when any comparison lost more than WARN_SHARE of its units
    ('' when none did). `comparisons`: (label, `Pairing.as_dict()`) pairs."""
    hit = [f"{label}: {drop_counts(p)}" + (f" - {NOT_ENOUGH}, no estimate" if p["status"] == NOT_ENOUGH else "")
           for label, p in comparisons if p is not None and p["units"] and p["share_dropped"] > WARN_SHARE]
    if not hit:
        return ""
    return (f"Failed requests broke the pairing in {len(hit)} comparison{'s' if len(hit) > 1 else ''} (more than "
            f"{WARN_SHARE:.0%} of units dropped): " + "; ".join(hit) + ". ")


__all__ = ["MAX_SHARE", "NOT_ENOUGH", "WARN_SHARE", "Pairing", "drop_counts", "drop_warnings", "pair_units"]
