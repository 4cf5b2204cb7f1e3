"""Predictions made elsewhere, read by the accuracy study instead of asking a model (issue 7).

A predictions file is JSONL, one row a line (`options.predictions` takes a path, a glob pattern
or a list of them, relative to the spec):

    {"item_id": "q17", "condition": "baseline", "prediction": "B"}
    {"item_id": "q17", "condition": "toddler", "prediction": "The answer is C.", "replicate": 1}

- `item_id`: an item id of `options.items` (the items file's `id`, MMLU-Pro's `question_id`);
  the items still give the gold answers.
- `condition`: any label (`baseline` is the arm every other condition is compared with).
- `prediction`: an option letter or a reply's whole text, read by the parser of generate mode
  (`parse_choice`); null, "" or a text that names no option is a parse failure (counted, and
  scored both ways). A bare letter outside the item's options (and not an option's text) is an error.
- `model` (optional): one of the spec's `model:` ids; a row without it belongs to the spec's only model.
- `replicate` (optional, default 0): repeats of one (item, condition) are numbered 0, 1, 2...

The wide form gives one row per item with a field per condition:
`{"item_id": "q17", "baseline": "B", "toddler": "C"}` (also with `model` and `replicate`).

Checked before anything else, each as one line `file:line: ... Fix: ...`: malformed lines, unknown
fields, unknown item ids (the first few, with their lines), bare letters outside an item's
options, rows that repeat an (item, condition, model, replicate), and completeness: every
condition needs a row for every predicted item and replicate (a row with `"prediction": null`
stands for an answer that could not be read). Items of the items file that no row names are
left out, and a note says how many.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .._loading import expand_files, read_documents, suggest, validation_to_config_error
from ..errors import ConfigError
from ..items import MCItem
from ..parsing import parse_choice
from .base import Summary

FIELD = "options.predictions"
SHOWN = 3
"""Unknown item ids an error names."""
ROW_EXAMPLE = '{"item_id": "q1", "condition": "baseline", "prediction": "B"}'
_BARE_LETTER = re.compile(r"\s*\**\(?([A-Za-z])\)?\**\.?\s*")
"""A prediction that is one letter ('B', '(b)', '**B**', 'B.'), as parse_choice's first pattern reads it."""


class PredictionRow(BaseModel):
    """One line of a predictions file (long form)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    item_id: str = Field(min_length=1)
    """The item's id in options.items."""
    condition: str = Field(min_length=1)
    """The condition the prediction was made in ('baseline', 'toddler', ...)."""
    prediction: str | None
    """An option letter or the reply's text; null for an answer that could not be read."""
    model: str | None = None
    """One of the spec's model ids; None: the spec's only model."""
    replicate: int = Field(default=0, ge=0)
    """Which repeat of the (item, condition), from 0."""

    @field_validator("item_id", mode="before")
    @classmethod
    def _number_id(cls, value: Any) -> Any:  # MMLU-Pro's question_id is a number
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


@dataclass(frozen=True)
class Prediction:
    """A checked row, with the model it belongs to and where it was read."""

    model: str
    condition: str
    item: str
    replicate: int
    text: str | None
    file: str
    line: int


@dataclass(frozen=True)
class Predictions:
    """What the accuracy study analyses instead of results: checked, complete rows."""

    rows: tuple[Prediction, ...]
    """The rows analysed (items and conditions the study keeps), in file order."""
    files: tuple[str, ...]
    """The files read."""
    sha256: tuple[str, ...]
    """Each file's digest, so a summary says which version of the files it analysed."""
    conditions: tuple[str, ...]
    """The conditions analysed: baseline first, then as the files first name them (or as options.conditions lists them)."""
    items: tuple[str, ...]
    """Ids of the items analysed, in the items' order: those that some row names."""
    replicates: int
    """Samples per (model, condition, item)."""
    notes: tuple[str, ...]
    """What was left out, for the summary."""

    def as_dict(self) -> dict[str, Any]:
        """What summary.stats['predictions'] holds."""
        return {"files": list(self.files), "sha256": list(self.sha256), "rows": len(self.rows), "items": len(self.items),
                "conditions": list(self.conditions), "replicates": self.replicates}

    def annotate(self, summary: Summary, *, personas_unused: bool) -> Summary:
        """The summary of these predictions: their counts, what they are, and what was left out."""
        summary.counts["predictions"] = len(self.rows)
        summary.stats["predictions"] = self.as_dict()
        unused = ["The spec's personas are not used: the conditions are the predictions' own."] if personas_unused else []
        summary.notes[:0] = [f"Answers read from {len(self.rows)} predictions in {', '.join(self.files)}; no model "
                             "was asked.", *self.notes, *unused]
        return summary

    def describe(self) -> str:
        files = ", ".join(Path(f).name for f in self.files)
        return (f"answers from {len(self.rows)} predictions in {files} (no model is asked): "
                f"{len(self.items)} items x {len(self.conditions)} conditions ({', '.join(self.conditions)}) x "
                f"{self.replicates} replicate{'s' if self.replicates != 1 else ''}")


def bare_letter(text: str | None) -> str | None:
    """The letter of a prediction that is one letter and nothing else (upper case), or None."""
    m = _BARE_LETTER.fullmatch(text or "")
    return m.group(1).upper() if m else None


def _row(data: Any, file: str, line: int, field_name: str | None = None) -> PredictionRow:
    try:
        return PredictionRow.model_validate(data)
    except ValidationError as exc:
        err = validation_to_config_error(exc, PredictionRow, file=file, lines={(): line})
        if field_name is None or err.field != "prediction":
            raise err from None
        raise ConfigError(err.detail, file=file, line=line, field=field_name, fix=err.fix) from None


def parse_rows(record: Any, file: str, line: int) -> list[PredictionRow]:
    """The rows of one line: one in the long form, one per condition in the wide form."""
    if not isinstance(record, Mapping):
        raise ConfigError(f"a row must be a JSON object, got {type(record).__name__}.", file=file, line=line,
                          fix=f"write one object a line, e.g. {ROW_EXAMPLE}.")
    if "condition" in record or "prediction" in record:
        return [_row(record, file, line)]
    shared = {k: record[k] for k in ("item_id", "model", "replicate") if k in record}
    conditions = [k for k in record if k not in shared]
    if not conditions:
        raise ConfigError("the row names no condition.", file=file, line=line,
                          fix=f"write {ROW_EXAMPLE}, or one field per condition: "
                          '{"item_id": "q1", "baseline": "B", "toddler": "C"}.')
    return [_row({**shared, "condition": str(c), "prediction": record[c]}, file, line, str(c)) for c in conditions]


def _model_of(row: PredictionRow, models: Sequence[str], file: str, line: int) -> str:
    if row.model is None:
        if len(models) == 1:
            return models[0]
        raise ConfigError(f"the row names no model, and the spec has {len(models)} ({', '.join(models)}).",
                          file=file, line=line, fix='add "model": "ID" to every row, or keep one model in the spec.')
    if row.model not in models:
        raise ConfigError(f"model '{row.model}' is not one of the spec's models ({', '.join(models)})."
                          f"{suggest(row.model, models)}", file=file, line=line,
                          fix="add it to the spec's 'model:' list, or correct the row.")
    return row.model


def read_predictions(files: Sequence[Path], models: Sequence[str]) -> list[Prediction]:
    """Every row of the files, each with its model and line (wide rows split per condition)."""
    out: list[Prediction] = []
    for path in files:
        if path.suffix.lower() != ".jsonl":
            raise ConfigError(f"predictions are read from .jsonl files, not '{path.suffix}'.", file=str(path),
                              field=FIELD, fix=f"write one object a line, e.g. {ROW_EXAMPLE}, in a .jsonl file.")
        for record, lines in read_documents(path):
            line = lines[()]
            for row in parse_rows(record, str(path), line):
                out.append(Prediction(model=_model_of(row, models, str(path), line), condition=row.condition,
                                      item=row.item_id, replicate=row.replicate, text=row.prediction,
                                      file=str(path), line=line))
    return out


def check_rows(rows: Sequence[Prediction], items: Mapping[str, MCItem], items_ref: str) -> None:
    """Unknown item ids, letters outside an item's options, and repeated rows."""
    unknown = [r for r in rows if r.item not in items]
    if unknown:
        first = unknown[0]
        names = list(dict.fromkeys(r.item for r in unknown))
        shown = ", ".join(f"'{r.item}' (line {r.line})" for r in
                          [next(u for u in unknown if u.item == n) for n in names[:SHOWN]])
        more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
        raise ConfigError(f"{len(names)} item id{'s are' if len(names) != 1 else ' is'} not in the items "
                          f"({items_ref}): {shown}{more}.{suggest(first.item, items)}", file=first.file,
                          line=first.line, fix="use the items' ids (the items file's 'id', MMLU-Pro's question_id), "
                          "or set options.items to the items the predictions were made on.")
    for r in rows:
        item = items[r.item]
        letter = bare_letter(r.text)
        if letter is not None and letter not in item.letters and parse_choice(r.text, item.letters, item.choices) is None:
            raise ConfigError(f"prediction '{r.text}' for item '{r.item}' is not one of its options "
                              f"(A-{item.letters[-1]}).", file=r.file, line=r.line,
                              fix=f"give a letter from A to {item.letters[-1]}, or null for an answer that could "
                              "not be read.")
    seen: dict[tuple[str, str, str, int], Prediction] = {}
    several = len({r.model for r in rows}) > 1
    for r in rows:
        first = seen.setdefault((r.model, r.item, r.condition, r.replicate), r)
        if first is not r:
            raise ConfigError(f"item '{r.item}', condition '{r.condition}', replicate {r.replicate}"
                              f"{f', model {r.model}' if several else ''} appears twice (first at "
                              f"{first.file}:{first.line}).", file=r.file, line=r.line,
                              fix="keep one row per item, condition and replicate; number repeats with "
                              '"replicate": 0, 1, 2...')


def _conditions(rows: Sequence[Prediction], wanted: Sequence[str] | None) -> tuple[str, ...]:
    """baseline first, then as the rows first name them; or `wanted` (options.conditions), each of which must be there."""
    present = list(dict.fromkeys(r.condition for r in rows))
    if wanted is None:
        return tuple(sorted(present, key=lambda c: c != "baseline"))
    missing = [c for c in wanted if c not in present]
    if missing:
        raise ConfigError(f"condition '{missing[0]}' has no prediction (the predictions hold: "
                          f"{', '.join(present)}).{suggest(missing[0], present)}", field="options.conditions",
                          fix="list only conditions of the predictions, or leave options.conditions out to use them all.")
    return tuple(wanted)


def check_complete(rows: Sequence[Prediction], models: Sequence[str], conditions: Sequence[str],
                   items: Sequence[str], replicates: int) -> None:
    """Every (model, condition) has a row for every item and replicate."""
    counts = Counter((r.model, r.condition) for r in rows)
    for model in models:
        for cond in conditions:
            if counts[(model, cond)] == len(items) * replicates:
                continue
            have = {(r.item, r.replicate) for r in rows if r.model == model and r.condition == cond}
            gaps = [(i, k) for i in items for k in range(replicates) if (i, k) not in have]
            who = f"{model}: " if len(models) > 1 else ""
            if replicates == 1:
                what = (f"{len(gaps)} of {len(items)} items (e.g. "
                        + ", ".join(f"'{i}'" for i, _ in gaps[:SHOWN]) + ")")
            else:
                what = (f"{len(gaps)} of {len(items) * replicates} (item, replicate) pairs (e.g. "
                        + ", ".join(f"'{i}' replicate {k}" for i, k in gaps[:SHOWN]) + ")")
            where = next((r.file for r in rows if r.condition == cond), rows[0].file)  # a file holding the condition
            raise ConfigError(f"{who}condition '{cond}' has no prediction for {what}.", file=where,
                              fix='add the missing rows ("prediction": null for an answer that could not be read), '
                              "or remove that condition's rows.")


def load_predictions(entries: Sequence[str], base_dir: Path, *, items: Sequence[MCItem], kept: Sequence[MCItem],
                     models: Sequence[str], conditions: Sequence[str] | None, items_ref: str) -> Predictions:
    """Read, check and select the predictions of `options.predictions`.

    `items`: every item of options.items (ids are checked against them); `kept`: those the
    study keeps (options.domains, options.limit). `conditions`: options.conditions when the spec
    sets it (those conditions, in that order), else None (every condition of the rows).
    """
    files = expand_files(entries, base_dir, field=FIELD, example="predictions/*.jsonl")
    rows = read_predictions(files, models)
    check_rows(rows, {i.id: i for i in items}, items_ref)
    chosen = _conditions(rows, conditions)
    keep = {i.id for i in kept}
    selected = [r for r in rows if r.item in keep and r.condition in chosen]
    named = {r.item for r in selected}
    ids = tuple(i.id for i in kept if i.id in named)
    if not ids:
        raise ConfigError("no prediction names an item the study keeps (options.domains, options.limit).",
                          field=FIELD, fix="widen options.domains or options.limit, or check the item ids.")
    replicates = 1 + max(r.replicate for r in selected)
    check_complete(selected, models, chosen, ids, replicates)
    notes = []
    outside = len({r.item for r in rows if r.item not in keep})
    if outside:
        notes.append(f"{outside} predicted items are outside options.domains / options.limit and left out.")
    others = list(dict.fromkeys(r.condition for r in rows if r.condition not in chosen))
    if others:
        notes.append(f"Predictions of conditions not in options.conditions are left out: {', '.join(others)}.")
    unpredicted = len(keep) - len(ids)
    if unpredicted:
        notes.append(f"{unpredicted} of {len(keep)} items have no prediction and are left out.")
    return Predictions(rows=tuple(selected), files=tuple(map(str, files)),
                       sha256=tuple(hashlib.sha256(f.read_bytes()).hexdigest() for f in files), conditions=chosen, items=ids,
                       replicates=replicates, notes=tuple(notes))


__all__ = ["Prediction", "PredictionRow", "Predictions", "bare_letter", "load_predictions", "parse_rows"]
