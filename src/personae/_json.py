"""Strict JSON values: NaN and infinities become null (used by the run folder and the statistics)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any


def jsonable(value: Any) -> Any:
    """`value` with non-finite floats turned into None, numpy scalars/arrays into Python values, and
    objects with `as_dict()` into dicts, recursively."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):  # numpy arrays and scalars
        value = value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "as_dict"):
        return value.as_dict()
    return value


_STRICT = json.JSONEncoder(ensure_ascii=False, allow_nan=False)
"""Built once: `json.dumps` with any keyword argument builds a new encoder per call (a third of
the cost of dumping one short row)."""


def dumps_strict(value: Any) -> str:
    """One line of strict JSON. Tries the plain encoder first (rows of results are almost always
    plain already: ~10x faster than walking them with `jsonable`), and falls back to `jsonable`
    when the value holds NaN, an infinity or a type json does not know."""
    try:
        return _STRICT.encode(value)
    except (ValueError, TypeError):
        return json.dumps(jsonable(value), ensure_ascii=False, default=str)
