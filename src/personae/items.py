"""Items: multiple-choice questions with a domain label and a key, and their loaders.

Layouts read:
- `jsonl` / `json` / `yaml`: {id, domain, question, choices: [...], answer: "B" | 1 | "choice text"}
- `csv`: columns id, domain, question, A, B, C, D (as many letters as needed), answer
- `mmlu-pro`: MMLU-Pro records {question_id, question, options, answer, answer_index, category}
- `gpqa`: GPQA CSV ("Question", "Correct Answer", "Incorrect Answer 1..3", "High-level domain",
  "Record ID"); options are shuffled with a seed. GPQA must never be redistributed: bring the file.
- `chaosnli`: ChaosNLI JSONL {uid, example: {premise, hypothesis}, label_counter: {e, n, c}}
  as 3-way items with human label distributions (for the variance study); its alphaNLI file
  {uid, example: {obs1, obs2, hyp1, hyp2}, label_counter: {"1", "2"}} as 2-option items (which
  hypothesis best explains the observations), options A/B = hyp1/hyp2, with the same counts.
- a Hugging Face dataset name (`hf:NAME`), when `datasets` is installed and a network is there.

`items_format: auto` picks the reader by extension, then by the first record's fields: MMLU-Pro
(`question`, `options`, and `answer_index` or `question_id`), ChaosNLI (`label_counter`, or an
`example` with `premise` or `obs1`), GPQA (CSV columns `Question`, `Correct Answer`).

MMLU-Pro categories and GPQA domains are mapped onto the expert personas' `expertise_domain`
vocabulary ("Physics" -> "physics", "computer science" -> "computer-science", "math" ->
"mathematics", "health" -> "medicine"); the original label is kept in `metadata`.
"""

from __future__ import annotations

import csv
import random
import string
from collections.abc import Mapping, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from ._loading import line_for, read_documents, suggest, validation_to_config_error
from .errors import ConfigError

LETTERS = string.ascii_uppercase
ItemFormat = Literal["auto", "jsonl", "json", "yaml", "csv", "mmlu-pro", "gpqa", "chaosnli"]


class MCItem(BaseModel):
    """A multiple-choice item."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1)
    """Unique id in the bank."""
    domain: str = Field(min_length=1)
    """Domain label, matched against expert personas' expertise_domain (e.g. 'physics')."""
    question: str = Field(min_length=1)
    """The question (or the full stem)."""
    choices: tuple[str, ...] = Field(min_length=2, max_length=26)
    """Answer options, in order; lettered A, B, C..."""
    answer: int | None = None
    """Index of the correct choice (None for opinion items without a key)."""
    human_labels: dict[str, float] | None = None
    """Human label counts or shares keyed by choice letter (e.g. from ChaosNLI)."""
    source: str | None = None
    """Where the item comes from."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Free-form; personae never reads it."""

    @model_validator(mode="before")
    @classmethod
    def _answer_as_index(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        ans, choices = data.get("answer"), data.get("choices")
        if isinstance(ans, str) and isinstance(choices, (list, tuple)):
            a = ans.strip()
            if len(a) == 1 and a.upper() in LETTERS[: len(choices)]:
                data["answer"] = LETTERS.index(a.upper())
            elif a in choices:
                data["answer"] = list(choices).index(a)
            elif a.isdigit():
                data["answer"] = int(a)
        return data

    @field_validator("answer", mode="before")
    @classmethod
    def _answer_resolved(cls, value: Any, info: ValidationInfo) -> Any:
        # strings that name a letter, a choice's text or an index were turned into indices above
        if isinstance(value, str):
            choices = info.data.get("choices") or ()
            letters = f"{LETTERS[0]}-{LETTERS[len(choices) - 1]}, " if choices else ""
            raise ValueError(f"the answer must be a choice letter ({letters}case-insensitive), "
                             "the exact text of a choice, or a 0-based index")
        return value

    @model_validator(mode="after")
    def _answer_in_range(self) -> MCItem:
        if self.answer is not None and not 0 <= self.answer < len(self.choices):
            raise ValueError(f"answer index {self.answer} is outside the {len(self.choices)} choices")
        return self

    @property
    def letters(self) -> str:
        return LETTERS[: len(self.choices)]

    @property
    def answer_letter(self) -> str | None:
        return None if self.answer is None else LETTERS[self.answer]

    def render(self) -> str:
        """Question and lettered options."""
        options = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(self.choices))
        return f"{self.question}\n{options}"

    def human_distribution(self) -> list[float] | None:
        """Human label shares in choice order, or None."""
        if not self.human_labels:
            return None
        counts = [float(self.human_labels.get(LETTERS[i], 0.0)) for i in range(len(self.choices))]
        total = sum(counts)
        return [c / total for c in counts] if total > 0 else None


def _parse(records: Sequence[tuple[Any, tuple[Any, ...]]], file: str, lines: dict | None) -> list[MCItem]:
    items = []
    for record, prefix in records:
        try:
            items.append(MCItem.model_validate(record))
        except ValidationError as exc:
            raise validation_to_config_error(exc, MCItem, file=file, lines=lines, prefix=prefix) from None
    return items


# Benchmark domain labels -> the expert personas' expertise_domain values.
_DOMAIN_ALIASES = {"math": "mathematics", "maths": "mathematics", "health": "medicine", "cs": "computer-science"}


def normalize_domain(label: Any, default: str = "unknown") -> str:
    """A benchmark's domain label in personae's vocabulary: lower case, hyphens, known aliases."""
    text = "-".join(str(label or "").strip().lower().replace("_", " ").split())
    return _DOMAIN_ALIASES.get(text, text) or default


def _require(rec: Any) -> Mapping[str, Any]:
    if not isinstance(rec, Mapping):
        raise TypeError(f"a record must be an object, not {type(rec).__name__}")
    return rec


def _from_mmlu_pro(rec: Mapping[str, Any]) -> dict[str, Any]:
    rec = _require(rec)
    qid = rec.get("question_id", rec.get("id"))
    if qid is None:
        raise KeyError("question_id")
    options = rec["options"]
    if not isinstance(options, (list, tuple)):
        raise TypeError("'options' must be a list")
    answer = rec.get("answer_index")
    if answer is None:
        answer = rec.get("answer")
    category = rec.get("category")
    return {"id": str(qid), "domain": normalize_domain(category),
            "question": rec["question"], "choices": list(options), "answer": answer, "source": "mmlu-pro",
            "metadata": {k: v for k, v in (("category", category), ("src", rec.get("src"))) if v is not None}}


def _text(rec: Mapping[str, Any], column: str) -> str:
    value = rec[column]
    if value is None:  # csv.DictReader fills a short row's missing columns with None
        raise KeyError(column)
    return str(value).strip()


def _from_gpqa(rec: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
    rec = _require(rec)
    correct = _text(rec, "Correct Answer")
    options = [correct] + [_text(rec, f"Incorrect Answer {i}") for i in (1, 2, 3)]
    rng.shuffle(options)
    question = _text(rec, "Question")
    domain = rec.get("High-level domain")
    meta = {k: rec.get(c) for k, c in (("high_level_domain", "High-level domain"), ("subdomain", "Subdomain"))
            if rec.get(c)}
    return {"id": str(rec.get("Record ID") or question[:40]), "domain": normalize_domain(domain, "science"),
            "question": question, "choices": options, "answer": options.index(correct), "source": "gpqa",
            "metadata": meta}


_NLI = {"e": "entailment", "n": "neutral", "c": "contradiction"}
ALPHA_NLI_QUESTION = "Which hypothesis best explains what happened between the two observations?"


def _from_chaosnli(rec: Mapping[str, Any]) -> dict[str, Any]:
    """ChaosNLI's SNLI/MNLI files (premise, hypothesis; 3 labels) or its alphaNLI file (obs1, obs2,
    hyp1, hyp2; labels "1"/"2"): either way with the 100 annotators' label counts."""
    rec = _require(rec)
    ex = _require(rec.get("example", rec))
    counts = rec.get("label_counter") or {}
    if not isinstance(counts, Mapping):
        raise TypeError("'label_counter' must be an object")
    if "obs1" in ex or "hyp1" in ex:
        return _from_alpha_nli(rec, ex, counts)
    return {
        "id": str(rec.get("uid", ex.get("uid"))), "domain": "nli",
        "question": (f"Premise: {ex['premise']}\nHypothesis: {ex['hypothesis']}\n"
                     "Does the premise entail the hypothesis, is it neutral, or does it contradict it?"),
        "choices": ["entailment", "neutral", "contradiction"],
        "answer": {"e": 0, "n": 1, "c": 2}.get(str(rec.get("majority_label", "")), None),
        "human_labels": {LETTERS[i]: float(counts.get(k, 0)) for i, k in enumerate(_NLI)}, "source": "chaosnli",
    }


def _from_alpha_nli(rec: Mapping[str, Any], ex: Mapping[str, Any], counts: Mapping[str, Any]) -> dict[str, Any]:
    """alphaNLI (abductive NLI): two observations, two hypotheses; the question is which hypothesis
    best explains the observations. Labels "1"/"2" are options A/B."""
    majority = str(rec.get("majority_label", ""))
    return {
        "id": str(rec.get("uid", ex.get("uid"))), "domain": "abductive-nli",
        "question": f"Observation 1: {ex['obs1']}\nObservation 2: {ex['obs2']}\n{ALPHA_NLI_QUESTION}",
        "choices": [str(ex["hyp1"]), str(ex["hyp2"])],
        "answer": {"1": 0, "2": 1}.get(majority),
        "human_labels": {"A": float(counts.get("1", counts.get(1, 0))), "B": float(counts.get("2", counts.get(2, 0)))},
        "source": "chaosnli-alphanli",
    }


def detect_layout(record: Any) -> ItemFormat | None:
    """The published layout a record is in, from its fields (for items_format: auto), or None."""
    if not isinstance(record, Mapping):
        return None
    if "options" in record and "question" in record and ("answer_index" in record or "question_id" in record):
        return "mmlu-pro"
    example = record.get("example")
    if "label_counter" in record or (isinstance(example, Mapping) and ("premise" in example or "obs1" in example)):
        return "chaosnli"
    if "Correct Answer" in record and "Question" in record:
        return "gpqa"
    return None


def _layout_name(fmt: str, record: Any) -> str:
    """The layout a converter expected, named as its file is ('chaosnli (alphaNLI: obs1, obs2, hyp1, hyp2)')."""
    if fmt != "chaosnli":
        return fmt
    example = record.get("example", record) if isinstance(record, Mapping) else None
    if isinstance(example, Mapping) and ("obs1" in example or "hyp1" in example):
        return "chaosnli alphaNLI (obs1, obs2, hyp1, hyp2)"
    return "chaosnli SNLI/MNLI (premise, hypothesis)"


def _read_csv(path: Path) -> list[tuple[dict[str, Any], int]]:
    """Rows with the line each starts on ('utf-8-sig' drops the byte-order mark spreadsheets write)."""
    rows = []
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            start = 2
            for row in reader:
                rows.append((row, start))
                start = reader.line_num + 1
    except UnicodeDecodeError:
        raise ConfigError("is not UTF-8 text.", file=str(path), fix="save the file as UTF-8.") from None
    except csv.Error as exc:
        raise ConfigError(f"invalid CSV: {exc}.", file=str(path), fix="check the quoting near that line.") from None
    return rows


def _csv_item(row: Mapping[str, Any]) -> dict[str, Any]:
    letters = [c for c in LETTERS if c in row and row[c] not in (None, "")]
    return {"id": row["id"], "domain": row["domain"], "question": row["question"],
            "choices": [row[c] for c in letters], "answer": row.get("answer")}


def load_items(path: str | Path, fmt: ItemFormat = "auto", *, seed: int = 0) -> tuple[MCItem, ...]:
    """Load items from a file in one of the layouts above."""
    path = Path(path)
    suffix = path.suffix.lower()
    auto = fmt == "auto"  # the records' own fields then name a published layout (detect_layout)
    if fmt == "auto":
        fmt = {".jsonl": "jsonl", ".json": "json", ".yaml": "yaml", ".yml": "yaml", ".csv": "csv"}.get(suffix, "auto")
        if fmt == "auto":
            raise ConfigError(f"cannot tell the item layout of '{suffix}' files.", file=str(path),
                              fix="use .jsonl/.json/.yaml/.csv or set items_format (mmlu-pro, gpqa, chaosnli).")
    if fmt in ("csv", "gpqa"):
        if not path.exists():
            raise ConfigError("file not found.", file=str(path), fix="check the path.")
        rows = _read_csv(path)
        if auto and rows and detect_layout(rows[0][0]) == "gpqa":
            fmt = "gpqa"
        rng = random.Random(seed)
        recs = []
        for row, line in rows:
            try:
                recs.append(_from_gpqa(row, rng) if fmt == "gpqa" else _csv_item(row))
            except KeyError as exc:
                raise ConfigError(f"missing column {exc}.", file=str(path), line=1 if fmt == "csv" else line,
                                  fix="add the column to the header line; a CSV item file has the columns id, "
                                  "domain, question, A, B, ... and optionally answer." if fmt == "csv" else
                                  "see the layouts in personae.items' documentation.") from None
        items = _parse([(r, (i,)) for i, r in enumerate(recs)], str(path),
                       {(i,): line for i, (_, line) in enumerate(rows)})
        item_lines: list[int | None] = [line for _, line in rows]
    else:
        docs = read_documents(path)
        raw: list[tuple[Any, tuple[Any, ...]]] = []
        lines: dict[tuple[Any, ...], int]
        if path.suffix.lower() == ".jsonl":
            # one record a line; the prefix is the record's index, mapped to its line
            raw = [(data, (i,)) for i, (data, _) in enumerate(docs)]
            lines = {(i,): ln[()] for i, (_, ln) in enumerate(docs)}
        else:
            data, lines = docs[0]
            if isinstance(data, Mapping) and "items" in data:
                if not isinstance(data["items"], list):
                    raise ConfigError("'items' must be a list.", file=str(path), line=line_for(lines, ("items",)),
                                      field="items", fix="write 'items:' followed by a list of items.")
                raw.extend((r, ("items", i)) for i, r in enumerate(data["items"]))
            elif isinstance(data, list):
                raw.extend((r, (i,)) for i, r in enumerate(data))
            else:
                raw.append((data, ()))
        if auto and raw and fmt in ("jsonl", "json", "yaml"):
            fmt = detect_layout(raw[0][0]) or fmt
        conv = {"mmlu-pro": _from_mmlu_pro, "chaosnli": _from_chaosnli}.get(fmt)
        if conv is not None:
            converted = []
            for r, p in raw:
                try:
                    converted.append((conv(r), p))
                except KeyError as exc:
                    raise ConfigError(f"a record lacks the field {exc} of the {_layout_name(fmt, r)} layout.",
                                      file=str(path), line=line_for(lines, p),
                                      fix="check items_format matches the file.") from None
                except TypeError as exc:
                    raise ConfigError(f"a record does not fit the {fmt} layout: {exc}.", file=str(path),
                                      line=line_for(lines, p), fix="check items_format matches the file.") from None
            raw = converted
        items = _parse(raw, str(path), lines)
        item_lines = [line_for(lines, p) for _, p in raw]
    return check_unique_items(items, file=str(path), lines=item_lines)


def check_unique_items(items: Sequence[MCItem], *, file: str | None = None,
                       lines: Sequence[int | None] = ()) -> tuple[MCItem, ...]:
    """The items, or a ConfigError naming the second use of an id (and its line, `lines[i]` being item i's)."""
    seen: dict[str, int] = {}
    for i, it in enumerate(items):
        if it.id in seen:
            first = lines[seen[it.id]] if seen[it.id] < len(lines) else None
            raise ConfigError(f"item id '{it.id}' appears twice" + (f" (first on line {first})." if first else "."),
                              file=file, line=lines[i] if i < len(lines) else None, field="id",
                              fix="give every item a unique id (ids key the results and the pairing of conditions).")
        seen[it.id] = i
    if not items:
        raise ConfigError("no items.", file=file, fix="add at least one item.")
    return tuple(items)


BUILTIN_BANKS = ("general", "opinions")


@lru_cache(maxsize=4)
def builtin_items(bank: str = "general") -> tuple[MCItem, ...]:
    """Item banks written for this project: 'general' (keyed, several domains), 'opinions' (no key)."""
    if bank not in BUILTIN_BANKS:
        raise ConfigError(f"no built-in item bank '{bank}'.{suggest(bank, BUILTIN_BANKS, 'builtin:')}",
                          field="options.items", fix=f"use one of {', '.join('builtin:' + b for b in BUILTIN_BANKS)}, "
                          "or a file path relative to the spec.")
    entry = resources.files("personae") / "data" / "items" / f"{bank}.jsonl"
    with resources.as_file(entry) as p:
        return load_items(p)


@lru_cache(maxsize=8)  # a spec is checked, then run: download the dataset once per process
def load_hf_items(name: str, *, split: str = "test", fmt: ItemFormat = "mmlu-pro",
                  limit: int | None = None, seed: int = 0) -> tuple[MCItem, ...]:
    """Items from a Hugging Face dataset (needs `datasets` and a network; never used by default)."""
    try:
        import datasets  # noqa: PLC0415
    except ImportError:
        raise ConfigError(f"loading '{name}' needs the 'datasets' package.",
                          fix="pip install datasets, or download the file and give its path.") from None
    try:
        ds = datasets.load_dataset(name, split=split)
    except Exception as exc:  # network or name errors come in many types
        raise ConfigError(f"could not load the dataset '{name}': {type(exc).__name__}: {str(exc)[:120]}",
                          fix="check the name and the network, or download the file and give its path.") from None
    rows = list(ds)[:limit] if limit else list(ds)
    rng = random.Random(seed)
    conv = {"mmlu-pro": _from_mmlu_pro, "chaosnli": _from_chaosnli,
            "gpqa": lambda r: _from_gpqa(r, rng)}.get(fmt)
    try:
        recs = [conv(r) if conv else r for r in rows]
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"a record of '{name}' does not fit the {fmt} layout: {exc}.",
                          fix="set fmt to the dataset's layout.") from None
    return check_unique_items(_parse([(r, (i,)) for i, r in enumerate(recs)], name, None))


def resolve_items(ref: str, base_dir: Path, fmt: ItemFormat = "auto", *, seed: int = 0,
                  hf_split: str = "test") -> tuple[MCItem, ...]:
    """Items named in a spec: 'builtin:BANK', 'hf:DATASET' (needs `datasets` and a network), or a file
    path relative to the spec's folder."""
    if ref.startswith("builtin:"):
        return builtin_items(ref.removeprefix("builtin:"))
    if ref.startswith("hf:"):
        return load_hf_items(ref.removeprefix("hf:"), split=hf_split, fmt="mmlu-pro" if fmt == "auto" else fmt,
                             seed=seed)
    path = base_dir / ref
    if path.is_dir() or not path.exists():
        what = "is a folder, not a file" if path.is_dir() else f"was not found (looked in {base_dir})"
        raise ConfigError(f"the item file '{ref}' {what}.", field="options.items",
                          fix="give an item file's path relative to the spec, or 'builtin:general' / "
                          "'builtin:opinions'.")
    return load_items(path, fmt, seed=seed)
