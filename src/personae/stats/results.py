"""Small frozen result records returned by the statistics functions."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .._json import jsonable

NAN = float("nan")


def record_dict(record: Any) -> dict[str, Any]:
    """A result dataclass's fields as a plain dict for JSON; NaN and infinities become None."""
    return {f.name: jsonable(getattr(record, f.name)) for f in fields(record)}


@dataclass(frozen=True)
class StatResult:
    """An estimate with its confidence interval and, where a test was run, the test.

    Fields that a procedure does not produce are NaN (``as_dict`` writes them as None). Direction
    convention across the module: two-sample quantities are ``a`` minus ``b`` (or ``a`` over ``b``).
    """

    estimate: float
    """The point estimate (difference, effect size, ratio, coefficient...)."""
    ci_low: float = NAN
    """Lower confidence bound (-inf for a one-sided 'less' interval)."""
    ci_high: float = NAN
    """Upper confidence bound (+inf for a one-sided 'greater' interval)."""
    statistic: float = NAN
    """The test statistic (W, chi-square, F, z...), named in ``method``."""
    p_value: float = NAN
    """The p-value of the test named in ``method``."""
    n: int = 0
    """Number of units the estimate rests on (items, pairs, subjects...)."""
    level: float = 0.95
    """Confidence level of the interval."""
    se: float = NAN
    """Standard error (bootstrap SD for bootstrap procedures)."""
    method: str = ""
    """How the estimate, interval and test were computed."""
    note: str = ""
    """Anything the reader must know (degenerate data, corrections applied...). Empty if nothing."""

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for JSON; NaN and infinities become None."""
        return record_dict(self)
