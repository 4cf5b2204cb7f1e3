"""Reading YAML/JSON/JSONL files and turning validation errors into errors that teach.

Every loader keeps enough position information to say *which line* of *which file* holds the
bad field, and pydantic's messages are rewritten into one line with a fix (a close match for a
misspelt field name, the allowed values for a bad literal).
"""

from __future__ import annotations

import difflib
import glob
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from .errors import ConfigError

# A document plus a map from field path (tuple of keys/indices) to 1-based line number.
LineMap = dict[tuple[Any, ...], int]


def _node_lines(node: yaml.Node, path: tuple[Any, ...], out: LineMap,
                dups: list[tuple[tuple[Any, ...], int, int]] | None = None) -> None:
    """Fill `out` with the line of every key and item; record keys that a mapping repeats in `dups`."""
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if dups is not None and isinstance(key_node, yaml.ScalarNode) and key != "<<":
                if key in seen:
                    dups.append((path + (key,), seen[key], line))
                seen[key] = line
            out[path + (key,)] = line
            _node_lines(value_node, path + (key,), out, dups)
            out[path + (key,)] = line
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _node_lines(item, path + (i,), out, dups)


def _lines_of(node: yaml.Node | None, file: str) -> LineMap:
    """The line map of a composed document; a key written twice in one mapping is an error
    (YAML and JSON loaders silently keep the last value, which hides copy-paste mistakes)."""
    lines: LineMap = {(): 1}
    if node is None:
        return lines
    dups: list[tuple[tuple[Any, ...], int, int]] = []
    _node_lines(node, (), lines, dups)
    if dups:
        where, first, second = dups[0]
        raise ConfigError(f"appears twice in the same mapping (lines {first} and {second}); only the last "
                          "one would be used.", file=file, line=second,
                          field=".".join(str(p) for p in where), fix="delete or merge one of them.")
    return lines


MAX_VALUES = 100_000
"""Most values a YAML file may expand to through its aliases (a 'billion laughs' file of a few
hundred bytes expands to gigabytes: refused, not loaded)."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and lists a spec, persona or data file may have."""


def _check_yaml_graph(root: yaml.Node | None, file: str) -> None:
    """Refuse a YAML node graph that expands past MAX_VALUES or nests deeper than MAX_DEPTH. Aliases
    make the graph share nodes; sizes are counted once per node and multiplied, iteratively."""
    if root is None:
        return
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    shared: yaml.Node | None = None
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    seen: set[int] = set()
    while stack:
        node, done = stack.pop()
        kids: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            kids = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            kids = list(node.value)
        if not done:
            if id(node) in seen:
                shared = shared or node
                continue
            seen.add(id(node))
            stack.append((node, True))
            stack.extend((k, False) for k in kids if id(k) not in seen)
            continue
        size[id(node)] = 1 + sum(size.get(id(k), 1) for k in kids)
        depth[id(node)] = 1 + max((depth.get(id(k), 1) for k in kids), default=0)
        if depth[id(node)] > MAX_DEPTH:
            raise _too_deep(file, node.start_mark.line + 1)
        if size[id(node)] > MAX_VALUES:
            line = (shared or node).start_mark.line + 1
            raise ConfigError(f"its aliases expand to more than {MAX_VALUES:,} values (an anchor used inside "
                              "anchors many times over).", file=file, line=line,
                              fix="write the values out instead of nesting aliases; personae does not expand "
                              "files this large.")


def _too_deep(file: str, line: int | None) -> ConfigError:
    return ConfigError(f"is nested more than {MAX_DEPTH} levels deep.", file=file, line=line,
                       fix="flatten the file: specs, personas and data records need only a few levels.")


def _check_depth(data: Any, file: str) -> None:
    """Refuse data (from JSON) nested deeper than MAX_DEPTH, iteratively."""
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, d = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if d > MAX_DEPTH:
            raise _too_deep(file, None)
        stack.extend((c, d + 1) for c in children)


def _json_loads(text: str, file: str, line: int | None = None) -> Any:
    try:
        data = json.loads(text)
    except RecursionError:
        raise _too_deep(file, line) from None
    _check_depth(data, file)
    return data


def read_text(path: Path) -> str:
    """A file's text, or a one-line error: not found, a folder, not UTF-8 (with its line), unreadable."""
    if not path.exists():
        if path.is_symlink():
            raise ConfigError("is a symbolic link that leads nowhere (its target is missing, or links loop).",
                              file=str(path), fix="point the link at a real file, or give the file's own path.")
        raise ConfigError("file not found.", file=str(path), fix=f"check the path (looked for {path.absolute()}).")
    if path.is_dir():
        raise ConfigError("is a folder, not a file.", file=str(path), fix="give the path of a YAML, JSON or JSONL file.")
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte-order mark (Windows editors) is not content
    except UnicodeDecodeError as exc:
        head = path.read_bytes()[:4]
        if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
            raise ConfigError("is UTF-16 text (it starts with a UTF-16 byte-order mark); personae reads UTF-8.",
                              file=str(path), line=1, fix="save the file as UTF-8 (most editors offer 'UTF-8' under "
                              "'Save with encoding').") from None
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(f"is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}).",
                          file=str(path), line=line,
                          fix="save the file as UTF-8 (most editors offer 'UTF-8' under 'Save with encoding').") from None
    except OSError as exc:
        raise ConfigError(f"cannot be read: {exc.strerror or exc}.", file=str(path),
                          fix="check the file's permissions.") from None
    if "\x00" in text:
        at = text.index("\x00")
        raise ConfigError(f"holds a NUL byte (character {at + 1}): it is a binary file, or text saved in another "
                          "encoding.", file=str(path), line=text.count("\n", 0, at) + 1,
                          fix="save the file as plain UTF-8 text, without NUL characters.")
    return text


def read_documents(path: Path) -> list[tuple[Any, LineMap]]:
    """Read a YAML, JSON or JSONL file into documents, each with a line map.

    YAML and JSON files hold one document; JSONL holds one per line.
    """
    text = read_text(path)
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        docs: list[tuple[Any, LineMap]] = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                docs.append((_json_loads(line, str(path), n), {(): n}))
            except json.JSONDecodeError as exc:
                raise ConfigError(
                    f"invalid JSON: {exc.msg} (column {exc.colno}).", file=str(path), line=n,
                    fix="each line of a .jsonl file must be one complete JSON object.",
                ) from None
        if not docs:
            raise ConfigError("the file is empty.", file=str(path), fix="add at least one record.")
        return docs
    if suffix == ".json":
        if not text.strip():
            raise ConfigError("the file is empty.", file=str(path), fix="add the content it should hold.")
        try:
            data = _json_loads(text, str(path))
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"invalid JSON: {exc.msg} (column {exc.colno}).", file=str(path), line=exc.lineno,
                fix="check brackets, commas and quotes near that line (JSON allows no trailing comma).",
            ) from None
        return [(data, _json_lines(text, str(path)))]
    if suffix not in (".yaml", ".yml"):
        raise ConfigError(
            f"unknown file type '{suffix}'.", file=str(path),
            fix="use .yaml, .yml, .json or .jsonl.",
        )
    try:
        node = yaml.compose(text)
        _check_yaml_graph(node, str(path))
        data = yaml.safe_load(text)
    except yaml.composer.ComposerError as exc:
        if "expected a single document" in str(exc.context or ""):
            raise _many_documents(text, exc, str(path)) from None
        raise _yaml_error(exc, str(path)) from None
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, str(path)) from None
    except RecursionError:
        raise _too_deep(str(path), None) from None
    if data is None:
        raise ConfigError("the file is empty.", file=str(path), fix="add the content it should hold.")
    return [(data, _lines_of(node, str(path)))]


def _many_documents(text: str, exc: yaml.composer.ComposerError, file: str) -> ConfigError:
    """'holds N YAML documents' for a file with several '---' documents (PyYAML's own message,
    'expected a single document in the stream', names neither the count nor the cure)."""
    starts: list[int] = []
    try:
        for event in yaml.parse(text):
            if isinstance(event, yaml.DocumentStartEvent):
                starts.append(event.start_mark.line + 1)
    except yaml.YAMLError:  # a later document is also malformed: count what was read
        pass
    line = exc.problem_mark.line + 1 if exc.problem_mark else None
    count = f"{len(starts)} YAML documents" if len(starts) >= 2 else "more than one YAML document"
    return ConfigError(f"holds {count} (a '---' line starts each one after the first); personae reads one "
                       "document per file.", file=file, line=line,
                       fix="put each document in its own file, or merge them into one (several personas go in "
                       "one list under 'personas:').")


def expand_files(entries: Sequence[str], base_dir: Path, *, field: str, example: str) -> list[Path]:
    """The files named by a list of paths and glob patterns (`*`, `?`, `[...]`, `**`), relative to
    `base_dir`, in the order given (each pattern's matches sorted), each file once. A pattern that
    matches nothing is an error on `field` (`example` is a pattern shown in its fix)."""
    files: list[Path] = []
    for entry in entries:
        if glob.has_magic(entry):
            found = sorted(Path(p) for p in glob.glob(str(base_dir / entry), recursive=True) if Path(p).is_file())
            if not found:
                unclosed = ("; its '[' opens a set of characters that is never closed (write '[[]' for a literal '[')"
                            if entry.count("[") > entry.count("]") else "")
                raise ConfigError(f"the pattern '{entry}' matches no file (looked in {base_dir}){unclosed}.",
                                  field=field, fix=f"check the pattern, e.g. '{example}'.")
        elif (base_dir / entry).is_dir():
            raise ConfigError(f"'{entry}' is a folder, not a file ({base_dir / entry}).", field=field,
                              fix=f"name the files in it, or a pattern such as '{Path(entry) / '*.jsonl'}'.")
        elif not (base_dir / entry).exists() and not (base_dir / entry).is_symlink():
            raise ConfigError(f"the file '{entry}' was not found (looked in {base_dir}).", field=field,
                              fix=f"give paths relative to the spec, or a pattern such as '{example}'.")
        else:
            found = [base_dir / entry]
        files += [f for f in found if f not in files]
    return files


def _json_lines(text: str, file: str) -> LineMap:
    """Line numbers for a JSON document (JSON is YAML, so the YAML composer finds them)."""
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:  # valid JSON that PyYAML cannot read (rare): file-level lines only
        return {(): 1}
    return _lines_of(node, file)


def _yaml_error(exc: yaml.YAMLError, file: str) -> ConfigError:
    """A one-line ConfigError for a YAML syntax error, pointing at the line that needs editing."""
    problem_mark = getattr(exc, "problem_mark", None)
    context_mark = getattr(exc, "context_mark", None)
    problem = (getattr(exc, "problem", None) or str(exc).splitlines()[0]).strip()
    context = (getattr(exc, "context", None) or "").strip()
    line = (problem_mark.line + 1) if problem_mark else None
    context_line = (context_mark.line + 1) if context_mark else None
    fix = "check indentation and quoting near that line (a ': ' inside a value needs quotes)."
    if "end of stream" in problem and context_line:
        # an unclosed quote or bracket: the error surfaces at the end of the file, the cause is earlier
        line = context_line
        fix = f"close the quote or bracket opened on line {context_line}."
    elif "\\t" in problem or "\t" in problem:
        fix = "indent with spaces, not tabs."
    elif "mapping values are not allowed" in problem:
        fix = "put the value in quotes: a ': ' inside an unquoted value starts a new mapping."
    elif "expected <block end>" in problem or "could not find expected ':'" in problem:
        fix = "align items of the same list or mapping at the same indentation."
    where = ""
    if context and context_line:
        where = f" ({context})" if context_line == line else f" ({context} on line {context_line})"
    return ConfigError(f"invalid YAML: {problem}{where}.", file=file, line=line, fix=fix)


def line_for(lines: LineMap, loc: tuple[Any, ...]) -> int | None:
    """The line of the deepest known prefix of `loc`."""
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """Field names of the (sub)model that `loc` points into, for 'did you mean'."""
    import collections.abc  # noqa: PLC0415
    import typing  # noqa: PLC0415

    current: Any = model
    key_next = False  # the part after a dict[str, Model] field is a key of the user's choosing
    for part in loc[:-1]:
        if isinstance(part, int) or key_next:
            key_next = False
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return []
        ann = fields[part].annotation
        key_next = typing.get_origin(ann) in (dict, collections.abc.Mapping)
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


def suggest(word: str, choices: Iterable[str], prefix: str = "", cutoff: float = 0.6) -> str:
    """' Did you mean 'x'?' (with `prefix` put before x, e.g. 'builtin:') or an empty string."""
    close = difflib.get_close_matches(str(word), sorted(map(str, choices)), n=1, cutoff=cutoff)
    return f" Did you mean '{prefix}{close[0]}'?" if close else ""


# Examples for fields whose fix is more useful with one ("add 'model: ...'" teaches nothing).
_EXAMPLES: dict[str, str] = {
    "study": "study: grid",
    "model": "model: local/smollm2-135m",
    "id": "id: dr-ada-park",
    "name": "name: Dr. Ada Park",
    "description": "description: a senior physicist",
    "questions": 'questions: ["Why is the sky blue?"]',
    "user_turns": 'user_turns: ["Hello! Who are you?"]',
    "text": 'text: "Why is the sky blue?"',
}

# pydantic error types, by what they mean for someone editing a YAML file
_INT_TYPES = {"int_type", "int_parsing", "int_from_float", "int_parsing_size"}
_FLOAT_TYPES = {"float_type", "float_parsing", "finite_number"}
_BOOL_TYPES = {"bool_type", "bool_parsing"}
_LIST_TYPES = {"list_type", "tuple_type", "set_type", "frozen_set_type", "iterable_type"}
_MAPPING_TYPES = {"dict_type", "model_type", "model_attributes_type", "mapping_type", "dataclass_type"}
_ONE_OR_MANY = {"model", "personas", "facts", "style"}  # fields that also accept a single value
_BOUNDS = {"greater_than_equal": (">=", "ge"), "greater_than": (">", "gt"),
           "less_than_equal": ("<=", "le"), "less_than": ("<", "lt")}


def _slug(value: Any) -> str:
    slug = re.sub(r"[^a-z0-9_.-]+", "-", str(value).strip().lower()).strip("-_.")
    return slug or "my-id"


def _shown(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, (list, tuple)):
        return "an empty list" if not value else f"a list of {len(value)}"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _pick_error(exc: ValidationError) -> dict[str, Any]:
    """The error most worth showing: a misspelt field explains a 'missing' one, so it comes first."""
    errors = exc.errors()
    for err in errors:
        if err["type"] == "extra_forbidden":
            return err
    return errors[0]


# the part pydantic adds to an error's location for each member of a union ('str', 'int',
# 'tuple[str, ...]', 'RoleSpec'): a tag for the type that was tried, not a field the user wrote
_UNION_TAG = re.compile(r"^(str|int|float|bool|bytes|none|[a-z_-]+\[.*\]|[A-Z]\w*)$")


def _kind_name(err: Mapping[str, Any]) -> str:
    """What a union member accepts, in words: 'text', 'a whole number', 'a list'..."""
    kind = err["type"]
    if kind in ("string_type", "str_type"):
        return "text"
    for kinds, words in ((_INT_TYPES, "a whole number"), (_FLOAT_TYPES, "a number"), (_BOOL_TYPES, "true or false"),
                         (_LIST_TYPES, "a list"), (_MAPPING_TYPES, "a mapping of fields")):
        if kind in kinds:
            return words
    if kind in ("literal_error", "enum"):
        return f"one of {(err.get('ctx') or {}).get('expected', '')}"
    return str(err["loc"][-1])


def _union_members(err: Mapping[str, Any], errors: list[Any]) -> list[str] | None:
    """When `err` is one member's failure of a union (its location ends in a type tag and another error
    shares the rest of it), what the union accepts, in words; else None."""
    loc = tuple(err["loc"])
    if not loc or not isinstance(loc[-1], str) or not _UNION_TAG.match(loc[-1]):
        return None
    # the members of one union saw the same input and failed in different ways ('A' and 'B' of
    # a dict[str, float] are two keys, not a union: other inputs, the same failure)
    siblings = [e for e in errors if len(e["loc"]) == len(loc) and tuple(e["loc"][:-1]) == loc[:-1]
                and isinstance(e["loc"][-1], str) and _UNION_TAG.match(e["loc"][-1]) and e.get("input") is err.get("input")]
    if len({e["type"] for e in siblings}) < 2:
        return None
    return list(dict.fromkeys(_kind_name(e) for e in siblings))


_BRACKET_TAG = re.compile(r"^[a-z_-]+\[.*\]$")  # 'tuple[str, ...]', 'function-after[...]': never a field name


def _deepest_member(err: Mapping[str, Any], errors: list[Any]) -> Mapping[str, Any]:
    """For a union, the member error that got furthest into the value: `data: [a, 3]` against
    `str | tuple[str, ...]` is 'data.1 must be text', not 'data must be text'."""
    loc = tuple(err["loc"])
    if not loc or not isinstance(loc[-1], str) or not _UNION_TAG.match(loc[-1]):
        return err
    n = len(loc) - 1
    deeper = [e for e in errors if len(e["loc"]) > len(loc) and tuple(e["loc"][:n]) == loc[:-1]
              and isinstance(e["loc"][n], str) and _UNION_TAG.match(e["loc"][n])]
    return max(deeper, key=lambda e: len(e["loc"])) if deeper else err


def _or(words: list[str]) -> str:
    if "a number" in words and "a whole number" in words:
        words = [w for w in words if w != "a whole number"]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def validation_to_config_error(
    exc: ValidationError,
    model: type[BaseModel],
    *,
    file: str | None,
    lines: LineMap | None = None,
    prefix: tuple[Any, ...] = (),
) -> ConfigError:
    """Turn the most useful pydantic error into a one-line ConfigError with a fix."""
    err = _pick_error(exc)
    members = _union_members(err, exc.errors()) if err["type"] != "extra_forbidden" else None
    if members is None:
        err = _deepest_member(err, exc.errors())
    raw = tuple(err["loc"])[:-1] if members is not None else tuple(err["loc"])  # 'profile.hobbies', not '...hobbies.str'
    loc = tuple(p for p in raw if not (isinstance(p, str) and (p.startswith("function-") or _BRACKET_TAG.match(p))))
    field = ".".join(str(p) for p in prefix + loc) or None
    line = line_for(lines or {}, prefix + loc) if lines else None
    kind = err["type"]
    given = err.get("input")
    ctx = err.get("ctx") or {}
    name = str(loc[-1]) if loc else ""

    def fail(message: str, fix: str) -> ConfigError:
        return ConfigError(message, file=file, line=line, field=field, fix=fix)

    if members is not None:
        text_hint = " (quote a value to make it text)" if "text" in members else ""
        elsewhere = " Lists and nested values go under 'metadata:', which personae never reads." \
            if "profile" in loc and "metadata" in model.model_fields else ""
        return fail(f"must be {_or(members)} (got {_shown(given)}).",
                    f"write one value that is {_or(members)}{text_hint}.{elsewhere}")
    if kind == "extra_forbidden":
        allowed = _fields_at(model, loc)
        hint = suggest(name, allowed)
        fix = f"rename or remove it. Allowed here: {', '.join(allowed)}." if allowed else "remove it."
        return fail(f"unknown field.{hint}", fix)
    if kind == "missing":
        example = _EXAMPLES.get(name, f"{name}: ...")
        return fail("is required but missing.", f"add '{example}'.")
    if kind in ("literal_error", "enum"):
        expected = ctx.get("expected", "")
        options = [o.strip().strip("'") for o in str(expected).replace(" or ", ",").split(",") if o.strip()]
        hint = suggest(str(given), options) if options else ""
        return fail(f"{given!r} is not allowed.{hint}", f"use one of {expected}.")
    if kind in _BOUNDS:
        op, key = _BOUNDS[kind]
        return fail(f"must be {op} {ctx.get(key)} (got {_shown(given)}).", f"use a value {op} {ctx.get(key)}.")
    if kind == "too_short":
        least = ctx.get("min_length", 1)
        return fail(f"needs at least {least} item{'s' if least != 1 else ''} (got {_shown(given)}).",
                    f"add {'an item' if least == 1 else f'{least} items'}"
                    + (f", e.g. '{_EXAMPLES[name]}'." if name in _EXAMPLES else "."))
    if kind == "too_long":
        return fail(f"holds more than {ctx.get('max_length')} items.", f"keep at most {ctx.get('max_length')}.")
    if kind == "string_too_short":
        return fail("must not be empty.", f"write a value, e.g. '{_EXAMPLES.get(name, name + ': ...')}'.")
    if kind == "string_too_long":
        return fail(f"is longer than {ctx.get('max_length')} characters.",
                    f"shorten it to at most {ctx.get('max_length')} characters.")
    if kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern", "")
        if name == "id" or name.endswith("_id"):
            return fail(f"{given!r} is not a valid id.",
                        f"use lowercase letters, digits, '-', '_' and '.', starting with a letter or digit, "
                        f"e.g. '{_slug(given)}'.")
        return fail(f"{given!r} does not match the pattern {pattern}.", f"write a value that matches {pattern}.")
    if kind in _INT_TYPES:
        return fail(f"must be a whole number (got {_shown(given)}).", "write an integer without quotes, e.g. 3.")
    if kind in _FLOAT_TYPES:
        return fail(f"must be a number (got {_shown(given)}).", "write a number without quotes, e.g. 0.7.")
    if kind in _BOOL_TYPES:
        return fail(f"must be true or false (got {_shown(given)}).", "write true or false.")
    if kind in ("string_type", "str_type"):
        return fail(f"must be text (got {_shown(given)}).",
                    "write a string; quote values that YAML would read as numbers, dates or yes/no.")
    if kind in _LIST_TYPES:
        example = f"write e.g. '{_EXAMPLES[name]}'." if name in _EXAMPLES else \
            "write a list: '[a, b]' or one '- item' per line."
        what = "a list (or one value)" if name in _ONE_OR_MANY else "a list"
        return fail(f"must be {what} (got {_shown(given)}).", example)
    if kind == "invalid_key":
        return fail(f"keys must be text (got {_shown(given)}).", "quote the key or remove it.")
    if kind in _MAPPING_TYPES:
        return fail(f"must be a mapping of fields (got {_shown(given)}).", "write 'key: value' pairs under it.")
    msg = str(err["msg"]).rstrip(".")
    return fail(f"{msg} (got {_shown(given)}).", "correct the value; see the docs for this field.")


ModelT = TypeVar("ModelT", bound=BaseModel)


def read_model_file(path: Path, model: type[ModelT], key: str) -> tuple[ModelT, LineMap]:
    """One YAML/JSON document validated into `model` (a bare list is read as {key: list}), with its line map."""
    data, lines = read_documents(path)[0]
    if isinstance(data, list):
        data = {key: data}
    try:
        return model.model_validate(data), lines
    except ValidationError as exc:
        raise validation_to_config_error(exc, model, file=str(path), lines=lines) from None


def check_unique_ids(ids: Sequence[str], path: Path, lines: LineMap, key: str, what: str) -> None:
    """Raise a ConfigError at the second record of the first id that appears twice under `key`."""
    dup = next((i for i in ids if ids.count(i) > 1), None)
    if dup is not None:
        n = ids.index(dup, ids.index(dup) + 1)
        raise ConfigError(f"{what} id '{dup}' appears more than once.", file=str(path),
                          line=line_for(lines, (key, n, "id")), field=f"{key}.{n}.id",
                          fix=f"give every {what} its own id.")
