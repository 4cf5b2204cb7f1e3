"""Reading YAML/JSON/JSONL files and turning validation errors into errors that teach.

Every loader keeps enough position information to say *which line* of *which file* holds the
bad field, and pydantic's messages are rewritten into one line with a fix (a close match for a
misspelt field name, the allowed values for a bad literal).
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .errors import ConfigError

# A document plus a map from field path (tuple of keys/indices) to 1-based line number.
LineMap = dict[tuple[Any, ...], int]


def _node_lines(node: yaml.Node, path: tuple[Any, ...], out: LineMap) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[path + (key,)] = key_node.start_mark.line + 1
            _node_lines(value_node, path + (key,), out)
            out[path + (key,)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _node_lines(item, path + (i,), out)


def read_documents(path: Path) -> list[tuple[Any, LineMap]]:
    """Read a YAML, JSON or JSONL file into documents, each with a line map.

    YAML and JSON files hold one document; JSONL holds one per line.
    """
    if not path.exists():
        raise ConfigError(
            "file not found.", file=str(path), fix="check the path (relative paths are resolved "
            "against the spec file's folder)."
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError("is not UTF-8 text.", file=str(path), fix="save the file as UTF-8.")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        docs: list[tuple[Any, LineMap]] = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                docs.append((json.loads(line), {(): n}))
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    f"invalid JSON: {exc.msg} (column {exc.colno}).", file=str(path), line=n,
                    fix="each line of a .jsonl file must be one complete JSON object.",
                ) from None
        if not docs:
            raise ConfigError("the file is empty.", file=str(path), fix="add at least one record.")
        return docs
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"invalid JSON: {exc.msg} (column {exc.colno}).", file=str(path), line=exc.lineno,
                fix="check brackets, commas and quotes near that line.",
            ) from None
        return [(data, {(): 1})]
    if suffix not in (".yaml", ".yml"):
        raise ConfigError(
            f"unknown file type '{suffix}'.", file=str(path),
            fix="use .yaml, .yml, .json or .jsonl.",
        )
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(
            f"invalid YAML: {problem}.", file=str(path),
            line=(mark.line + 1) if mark else None,
            fix="check indentation and quoting near that line (a ':' inside a value needs quotes).",
        ) from None
    if data is None:
        raise ConfigError("the file is empty.", file=str(path), fix="add the content it should hold.")
    lines: LineMap = {}
    if node is not None:
        _node_lines(node, (), lines)
    return [(data, lines)]


def line_for(lines: LineMap, loc: tuple[Any, ...]) -> int | None:
    """The line of the deepest known prefix of `loc`."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (sub)model that `loc` points into, for 'did you mean'."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        ann = fields[part].annotation
        current = _first_model(ann)
        if current is None:
            return []
    fields = getattr(current, "model_fields", None)
    return list(fields) if fields else []


def _first_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _first_model(arg)
        if found is not None:
            return found
    return None


def suggest(word: str, choices: list[str] | tuple[str, ...] | set[str]) -> str:
    """' Did you mean 'x'?' or an empty string."""
    close = difflib.get_close_matches(str(word), sorted(map(str, choices)), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def validation_to_config_error(
    exc: ValidationError,
    model: type[BaseModel],
    *,
    file: str | None,
    lines: LineMap | None = None,
    prefix: tuple[Any, ...] = (),
) -> ConfigError:
    """Turn the first pydantic error into a one-line ConfigError with a fix."""
    err = exc.errors()[0]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    field = ".".join(str(p) for p in prefix + loc) or None
    line = line_for(lines or {}, prefix + loc) if lines else None
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _fields_at(model, loc)
        hint = suggest(loc[-1], allowed)
        fix = f"remove or rename it.{hint} Allowed here: {', '.join(allowed)}." if allowed else "remove it."
        return ConfigError("unknown field.", file=file, line=line, field=field, fix=fix)
    if kind == "missing":
        return ConfigError("is required but missing.", file=file, line=line, field=field,
                           fix=f"add '{loc[-1]}: ...'.")
    if kind in ("literal_error", "enum"):
        expected = err.get("ctx", {}).get("expected", "")
        given = err.get("input")
        hint = ""
        options = [o.strip().strip("'") for o in str(expected).replace(" or ", ",").split(",") if o.strip()]
        if options:
            hint = suggest(str(given), options)
        return ConfigError(f"{given!r} is not allowed.{hint}", file=file, line=line, field=field,
                           fix=f"use one of {expected}.")
    msg = err["msg"]
    given = err.get("input")
    shown = repr(given) if not isinstance(given, (dict, list)) else type(given).__name__
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return ConfigError(f"{msg} (got {shown}).", file=file, line=line, field=field,
                       fix="correct the value; see the docs for this field.")
