"""Structured verdicts from an LLM judge, repeated k times, with the judge's self-agreement.

A judge answers in JSON with a fixed schema (constrained by a grammar or `response_format`
where the backend supports it), never by substring-matching YES/NO. A verdict that does not
parse is None: counted, never guessed. With k >= 2 repeats the summary reports, per field, the
share of unanimous items and Fleiss' kappa (categorical fields) or Krippendorff's alpha
(ordinal and numeric fields), so a judge that disagrees with itself says so.

`Judge` takes any pydantic verdict model; every study judges through it (the style study's
stance judge is a one-field verdict model).
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Hashable, Iterable
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Generic

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._judged import Answered, FieldAgreement, ItemKey, JudgedItem, JudgedSet, ParseFailure, V, item_key
from ._json import jsonable
from ._verdict import (VerdictField, describe_fields, field_value, one_json_object, validation_reason,
                       verdict_fields, verdict_schema)
from .backends.base import Message, Request, Sampling, Tags
from .errors import ConfigError
from .stats import category_counts, fleiss_kappa, krippendorff_alpha, unanimous_share

__all__ = ["Answered", "FieldAgreement", "ItemKey", "Judge", "JudgeOptions", "JudgedItem", "JudgedSet",
           "ParseFailure", "item_key"]


class JudgeOptions(BaseModel):
    """Who judges and how often."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str | None = None
    """Judge model id; default: the model under study (a weak judge: say so in the report)."""
    repeats: int = Field(default=1, ge=1, le=20)
    """Verdicts per item; >= 2 reports self-agreement."""
    temperature: float = Field(default=0.7, ge=0.0)
    """Sampling temperature of repeated verdicts (the first is also sampled)."""
    max_tokens: int = Field(default=48, ge=8)
    """Room for the JSON verdict."""


def _check(ok: bool, name: str, message: str, fix: str) -> None:
    if not ok:
        raise ConfigError(message, field=f"judge.{name}", fix=fix)


@dataclass(frozen=True)
class Judge(Generic[V]):
    """An LLM judge whose verdict is any pydantic model, asked `repeats` times per item.

    Field descriptions reach the judge's prompt: `Field(description=...)`, or the docstrings under
    the fields with `model_config = ConfigDict(use_attribute_docstrings=True)` on the verdict.
    """

    verdict: type[V]
    """The verdict model: its JSON schema constrains the reply and validates it."""
    instruction: str
    """What to judge, first in the system message."""
    _: KW_ONLY
    role: str = "judge"
    """`Tags.role` of the judge's requests; `collect` reads only results with this role."""
    repeats: int = 1
    """Verdicts per item; >= 2 measures self-agreement."""
    temperature: float = 0.7
    """Sampling temperature of every verdict."""
    max_tokens: int = 256
    """Room for the JSON verdict."""
    fields: tuple[VerdictField, ...] = field(init=False, repr=False, compare=False)
    """The verdict's fields with their kinds."""

    def __post_init__(self) -> None:
        _check(isinstance(self.verdict, type) and issubclass(self.verdict, BaseModel), "verdict",
               f"the verdict must be a pydantic model class, got {self.verdict!r}.",
               "define `class Verdict(BaseModel): ...` and pass the class.")
        _check(bool(self.instruction.strip()), "instruction", "the judge instruction is empty.",
               "say what to judge and how.")
        _check(bool(self.role.strip()), "role", "the judge role is empty.", "use e.g. role='judge'.")
        _check(isinstance(self.repeats, int) and 1 <= self.repeats <= 20, "repeats",
               f"repeats must be an int from 1 to 20, got {self.repeats!r}.", "use 2 or 3 to measure self-agreement.")
        _check(0.0 <= self.temperature <= 5.0, "temperature", f"temperature must be in [0, 5], got {self.temperature}.",
               "use 0.7 for repeated verdicts (0 makes every repeat the same).")
        _check(8 <= self.max_tokens <= 32768, "max_tokens", f"max_tokens must be in [8, 32768], got {self.max_tokens}.",
               "leave room for the whole JSON object (256 fits most verdicts).")
        object.__setattr__(self, "fields", verdict_fields(self.verdict))
        verdict_schema(self.verdict)  # a verdict a grammar cannot take fails here, not at the first request

    @classmethod
    def from_options(cls, verdict: type[V], instruction: str, options: JudgeOptions, *,
                     role: str = "judge") -> Judge[V]:
        """A judge with the repeats, temperature and max_tokens of a study's `JudgeOptions`."""
        return cls(verdict, instruction, role=role, repeats=options.repeats, temperature=options.temperature,
                   max_tokens=options.max_tokens)

    def schema(self) -> dict[str, Any]:
        """The verdict's JSON schema, inlined and closed for llama.cpp's grammar and OpenAI's strict mode."""
        return verdict_schema(self.verdict)

    def system_message(self) -> str:
        """The instruction and the fields expected (names, types, allowed values, ranges)."""
        return (f"{self.instruction.strip()}\n\nAnswer only with one JSON object with exactly these fields:\n"
                f"{describe_fields(self.schema())}")

    def requests(self, model: str, content: str, *, seed: int, tags: Tags) -> list[Request]:
        """`repeats` verdict requests on `content`, with replicates 0..k-1, seeds seed+k, role tag set."""
        system, schema = Message(role="system", content=self.system_message()), self.schema()
        tags = tags.model_copy(update={"role": self.role})
        return [Request(model=model, messages=(system, Message(role="user", content=content)),
                        sampling=Sampling(temperature=self.temperature, max_tokens=self.max_tokens, seed=seed + k),
                        json_schema=schema, replicate=k, tags=tags)
                for k in range(self.repeats)]

    def parse(self, text: str | None) -> tuple[V | None, str | None]:
        """(verdict, None), or (None, why the reply is not a verdict)."""
        source, reason = one_json_object(text)
        if source is None:
            return None, reason
        try:
            return self.verdict.model_validate_json(source), None
        except ValidationError as exc:
            return None, validation_reason(self.verdict, exc)

    def collect(self, results: Iterable[Answered], *, key: ItemKey = item_key) -> JudgedSet[V]:
        """Group this judge's results (role `self.role`; others are left out) by item, parse each reply."""
        groups: dict[Hashable, list[Answered]] = {}
        for r in results:
            if r.request.tags.role == self.role:
                groups.setdefault(key(r.request), []).append(r)
        return JudgedSet(tuple(self._item(k, rs) for k, rs in groups.items()), self.repeats)

    def _item(self, key: Hashable, results: list[Answered]) -> JudgedItem[V]:
        results = sorted(results, key=lambda r: r.request.replicate)
        seen = Counter(r.request.replicate for r in results)
        twice = [rep for rep, n in seen.items() if n > 1]
        if twice:
            raise ValueError(f"item {key!r} has replicate {twice[0]} {seen[twice[0]]} times: the item key does "
                             "not tell the judged items apart; pass collect(results, key=...) that does.")
        replicates, verdicts, failures = [], [], []
        for r in results:
            if not r.ok:
                continue
            verdict, reason = self.parse(r.text)
            replicates.append(r.request.replicate)
            verdicts.append(verdict)
            if reason is not None:
                failures.append(ParseFailure(r.request.replicate, r.text, reason))
        return JudgedItem(key, results[0].request.tags, tuple(replicates), tuple(verdicts), tuple(failures),
                          tuple(r.error or "request failed" for r in results if not r.ok))

    def agreement(self, judged: JudgedSet[V], *, n_resamples: int = 0,
                  seed: int | None = None) -> dict[str, FieldAgreement]:
        """Per field: Fleiss' kappa (categorical) or Krippendorff's alpha (ordinal, interval), or a note."""
        return {f.name: self._field_agreement(f, judged, n_resamples, seed) for f in self.fields}

    def _field_agreement(self, f: VerdictField, judged: JudgedSet[V], n_resamples: int,
                         seed: int | None) -> FieldAgreement:
        counts = judged.counts()
        if f.kind in ("text", "other"):
            what = "free text" if f.kind == "text" else "a list or object"
            return FieldAgreement(f.name, f.kind, counts, note=f"{what}: agreement not measured.")
        if judged.repeats < 2:
            return FieldAgreement(f.name, f.kind, counts, note="one verdict per item: self-agreement not "
                                  "measured (set repeats >= 2).")
        rows = [[field_value(v, f.name) for v in i.verdicts if v is not None] for i in judged.complete()]
        rows = [r for r in rows if None not in r]
        share = unanimous_share(category_counts(rows)) if rows and f.kind != "interval" else None
        try:
            if f.kind == "categorical":
                if not rows:
                    raise ValueError("no item has all its verdicts parsed")
                stat = fleiss_kappa(category_counts(rows, f.categories), n_resamples=n_resamples, seed=seed)
            else:
                stat = krippendorff_alpha(self._table(f, judged), f.kind, n_resamples=n_resamples, seed=seed)
        except ValueError as exc:
            return FieldAgreement(f.name, f.kind, counts, unanimous_share=share, note=f"not measured: {exc}.")
        # kappa < 0.4: below 'moderate' (Landis & Koch 1977); alpha < 0.667: below what Krippendorff
        # (2004, Content Analysis, 12.4) accepts even for tentative conclusions
        name, low = ("Fleiss' kappa", 0.4) if f.kind == "categorical" else ("Krippendorff's alpha", 0.667)
        note = stat.note
        if np.isfinite(stat.estimate) and stat.estimate < low:
            note = "; ".join(x for x in (note, f"the judge disagrees with itself ({name} {stat.estimate:.2f} < "
                                         f"{low:g}): read this field with care") if x)
        return FieldAgreement(f.name, f.kind, counts, stat, share, note)

    def _table(self, f: VerdictField, judged: JudgedSet[V]) -> np.ndarray:
        """Items x replicates of a numeric field, NaN where no verdict (failed request or parse)."""
        columns = max([judged.repeats] + [r + 1 for i in judged.items for r in i.replicates])
        table = np.full((len(judged.items), columns), np.nan)
        for row, item in enumerate(judged.items):
            for rep, v in zip(item.replicates, item.verdicts):
                value = None if v is None else field_value(v, f.name)
                table[row, rep] = np.nan if value is None else float(value)
        return table

    def aggregate(self, item: JudgedItem[V]) -> dict[str, Any] | None:
        """One value per field over the item's parsed verdicts: the mode (ties: first seen) for
        categorical and other fields, the median for interval fields and the lower median for
        ordinal ones (a value on the scale). None if no verdict parsed."""
        parsed = [v for v in item.verdicts if v is not None]
        if not parsed:
            return None
        out: dict[str, Any] = {}
        for f in self.fields:
            values = [x for x in (field_value(v, f.name) for v in parsed) if x is not None]
            if not values:
                out[f.name] = None
            elif f.kind == "ordinal":
                out[f.name] = statistics.median_low(values)
            elif f.kind == "interval":
                out[f.name] = float(np.median(values))
            else:
                keys = [json.dumps(jsonable(x), sort_keys=True, default=str) for x in values]
                best = Counter(keys).most_common(1)[0][1]
                out[f.name] = next(x for x, k in zip(values, keys) if keys.count(k) == best)
        return out
