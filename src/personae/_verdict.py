"""Verdict models seen three ways: a JSON schema a grammar can enforce, a prompt, and field kinds.

Private helpers of `personae.judge`. The schema is made acceptable to llama.cpp's JSON-schema
grammar and to OpenAI's strict mode: `$defs` inlined, `additionalProperties: false` and every
property required on each object. Field kinds decide which agreement statistic a field gets.
"""

from __future__ import annotations

import json
import types
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from .errors import ConfigError

Kind = Literal["categorical", "ordinal", "interval", "text", "other"]
"""categorical: Literal/Enum/bool; ordinal: Literal of ints or a bounded int; interval: other numbers."""


@dataclass(frozen=True)
class VerdictField:
    """One field of a verdict model and how its agreement is measured."""

    name: str
    """Attribute name on the verdict model."""
    kind: Kind
    """Which statistic applies (see `Kind`)."""
    categories: tuple[Any, ...] = ()
    """Allowed values of a categorical field (Enum fields: the members' values)."""


def verdict_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON schema with `$defs` inlined, every object closed and all its fields required."""
    raw = model.model_json_schema()
    defs = raw.pop("$defs", {})
    return _close(_inline(raw, defs, (), model.__name__))


def _inline(node: Any, defs: dict[str, Any], seen: tuple[str, ...], owner: str) -> Any:
    if isinstance(node, list):
        return [_inline(x, defs, seen, owner) for x in node]
    if not isinstance(node, dict):
        return node
    node = dict(node)
    if len(node.get("allOf", ())) == 1:  # older pydantic: {"allOf": [{"$ref": ...}], "description": ...}
        node = {**node.pop("allOf")[0], **node}
    ref = node.pop("$ref", None)
    if ref is not None:
        name = ref.rsplit("/", 1)[-1]
        if name in seen:
            raise ConfigError(f"verdict model {owner} is recursive ({' -> '.join(seen + (name,))}); a grammar "
                              "cannot inline it.", fix="give the verdict a fixed depth (no model that contains "
                              "itself).")
        node = {**_inline(defs[name], defs, seen + (name,), owner), **node}
    return {k: _inline(v, defs, seen, owner) for k, v in node.items() if k != "default"}


def _close(node: Any) -> Any:
    if isinstance(node, list):
        return [_close(x) for x in node]
    if not isinstance(node, dict):
        return node
    out = {k: _close(v) for k, v in node.items()}
    if out.get("type") == "object" and "properties" in out:
        out["required"] = list(out["properties"])
        out["additionalProperties"] = False
    return out


def describe_fields(schema: dict[str, Any]) -> str:
    """One line per field of a closed verdict schema: name, type, allowed values or range."""
    lines = []
    for name, prop in schema.get("properties", {}).items():
        about = prop.get("description")
        lines.append(f'- "{name}": {_describe(prop)}' + (f" ({about})" if about else ""))
    return "\n".join(lines)


def _describe(p: dict[str, Any]) -> str:
    if "const" in p:
        return f"exactly {json.dumps(p['const'])}"
    if "enum" in p:
        return "one of " + ", ".join(json.dumps(v) for v in p["enum"])
    if "anyOf" in p:
        return " or ".join(_describe(x) for x in p["anyOf"])
    kind = p.get("type")
    if kind in ("integer", "number"):
        return ("an integer" if kind == "integer" else "a number") + _range(p)
    if kind == "string":
        return "a string" + _range(p, "minLength", "maxLength", " characters")
    if kind == "array":
        each = _describe(p.get("items", {}))
        return "a list" + _range(p, "minItems", "maxItems", " items") + f"; each item: {each}"
    if kind == "object":
        fields = "; ".join(f'"{k}": {_describe(v)}' for k, v in p.get("properties", {}).items())
        return f"an object with fields {fields}" if fields else "an object"
    return {"boolean": "true or false", "null": "null"}.get(str(kind), "any JSON value")


def _range(p: dict[str, Any], low: str = "minimum", high: str = "maximum", unit: str = "") -> str:
    lo, hi = p.get(low), p.get(high)
    if lo is not None and hi is not None:
        return f" from {lo:g} to {hi:g}{unit}"
    bounds = [f"{word} {p[key]:g}{unit}" for word, key in (("at least", low), ("above", "exclusiveMinimum"),
                                                           ("at most", high), ("below", "exclusiveMaximum"))
              if p.get(key) is not None and (unit == "" or key in (low, high))]
    return (" " + " and ".join(bounds)) if bounds else ""


def verdict_fields(model: type[BaseModel]) -> tuple[VerdictField, ...]:
    """Each field of `model` with its kind (Optional[X] counts as X; None is a missing value)."""
    return tuple(_classify(name, info) for name, info in model.model_fields.items())


def _classify(name: str, info: FieldInfo) -> VerdictField:
    ann = info.annotation
    if get_origin(ann) in (Union, types.UnionType):
        rest = [a for a in get_args(ann) if a is not type(None)]
        ann = rest[0] if len(rest) == 1 else ann
    if ann is bool:
        return VerdictField(name, "categorical", (False, True))
    if isinstance(ann, type) and issubclass(ann, Enum):
        return VerdictField(name, "categorical", tuple(m.value for m in ann))
    if get_origin(ann) is Literal:
        args = get_args(ann)
        if all(isinstance(a, int) and not isinstance(a, bool) for a in args):
            return VerdictField(name, "ordinal", tuple(sorted(args)))
        return VerdictField(name, "categorical", args)
    if ann is int:
        bounds = {type(m) for m in info.metadata}
        bounded = bounds & {annotated_types.Ge, annotated_types.Gt} and bounds & {annotated_types.Le, annotated_types.Lt}
        return VerdictField(name, "ordinal" if bounded else "interval")
    if ann is float:
        return VerdictField(name, "interval")
    return VerdictField(name, "text" if ann is str else "other")


def field_value(verdict: BaseModel, name: str) -> Any:
    """A verdict's value of a field, with Enum members as their values."""
    value = getattr(verdict, name)
    return value.value if isinstance(value, Enum) else value


def one_json_object(text: str | None) -> tuple[str | None, str | None]:
    """The source of the one JSON object in a reply (fences and prose around it allowed), or (None, reason)."""
    if text is None or not text.strip():
        return None, "empty reply"
    start = text.find("{")
    if start < 0:
        return None, f"no JSON object in the reply: {_snippet(text)}"
    decoder = json.JSONDecoder()
    try:
        _, end = decoder.raw_decode(text, start)
    except RecursionError:
        return None, f"a JSON object nested too deep to read: {_snippet(text)}"
    except json.JSONDecodeError as exc:
        cut = "; the reply stops inside the object: raise max_tokens?" if text.count("{", start) > text.count(
            "}", start) else ""
        return None, f"not valid JSON at character {exc.pos} ({exc.msg}){cut}: {_snippet(text)}"
    later = text.find("{", end)
    while later >= 0:
        try:
            decoder.raw_decode(text, later)
            return None, f"more than one JSON object in the reply; expected one: {_snippet(text)}"
        except (json.JSONDecodeError, RecursionError):
            later = text.find("{", later + 1)
    return text[start:end], None


def validation_reason(model: type[BaseModel], exc: ValidationError) -> str:
    """A one-line account of why a JSON object does not fit the verdict model."""
    errors: Sequence[Any] = exc.errors()
    parts = [f"{'.'.join(map(str, e['loc'])) or '(object)'}: {e['msg']}" for e in errors[:3]]
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return f"does not fit {model.__name__}: " + "; ".join(parts) + more


def _snippet(text: str, width: int = 80) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= width else flat[: width - 3] + "...")
