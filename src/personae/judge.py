"""Structured verdicts from an LLM judge, repeated k times, with the judge's self-agreement.

A judge answers in JSON with a fixed schema (constrained by a grammar or `response_format`
where the backend supports it), never by substring-matching YES/NO. A verdict that does not
parse is None: counted, never guessed. With k >= 2 repeats the summary reports the share of
unanimous items and Fleiss' kappa, so a judge that disagrees with itself says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .backends.base import Message, Request, Sampling, Tags
from .parsing import parse_json_field
from .stats import category_counts, fleiss_kappa, unanimous_share


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


def label_schema(field: str, labels: Sequence[str]) -> dict[str, Any]:
    """JSON schema of a one-field categorical verdict."""
    return {"type": "object", "properties": {field: {"type": "string", "enum": list(labels)}},
            "required": [field], "additionalProperties": False}


def judge_requests(options: JudgeOptions, default_model: str, instruction: str, content: str, *,
                   field: str, labels: Sequence[str], seed: int, tags: Tags) -> list[Request]:
    """k verdict requests for one piece of content (distinct replicates and seeds)."""
    system = (f"{instruction}\nAnswer only with a JSON object: {{\"{field}\": one of "
              f"{', '.join(repr(x) for x in labels)}}}.")
    return [Request(model=options.model or default_model,
                    messages=(Message(role="system", content=system), Message(role="user", content=content)),
                    sampling=Sampling(temperature=options.temperature, max_tokens=options.max_tokens, seed=seed + k),
                    json_schema=label_schema(field, labels), replicate=k, tags=tags)
            for k in range(options.repeats)]


def parse_verdict(text: str | None, field: str, labels: Sequence[str]) -> str | None:
    return parse_json_field(text, field, labels)


def self_agreement(verdicts: Mapping[Any, Sequence[str | None]], labels: Sequence[str]) -> dict[str, Any]:
    """Share of unanimous items and Fleiss' kappa over items whose k verdicts all parsed."""
    complete = [list(v) for v in verdicts.values() if v and all(x is not None for x in v)]
    k = max((len(v) for v in verdicts.values()), default=0)
    out: dict[str, Any] = {"items": len(verdicts), "complete_items": len(complete), "repeats": k,
                           "parse_failures": sum(x is None for v in verdicts.values() for x in v)}
    if k < 2 or not complete:
        out["note"] = "one verdict per item: self-agreement not measured (set judge.repeats >= 2)."
        return out
    counts = category_counts(complete, labels)
    used = [lab for lab, n in zip(labels, counts.sum(axis=0)) if n > 0]
    if len(used) == 1:
        out["note"] = (f"the judge gave every answer the same verdict ('{used[0]}'): it does not tell the answers "
                       "apart, so its agreement says nothing; use a stronger judge (judge.model).")
    out["unanimous_share"] = unanimous_share(counts)
    out["fleiss_kappa"] = fleiss_kappa(counts).as_dict()
    kappa = out["fleiss_kappa"]["estimate"]
    if kappa is not None and kappa < 0.4 and "note" not in out:
        out["note"] = f"the judge disagrees with itself (Fleiss' kappa {kappa:.2f} < 0.4): read its verdicts with care."
    return out


def majority(verdicts: Sequence[str | None]) -> str | None:
    """The most common parsed verdict (ties: the first in order of appearance), or None."""
    parsed = [v for v in verdicts if v is not None]
    if not parsed:
        return None
    values, counts = np.unique(parsed, return_counts=True)
    best = counts.max()
    return next(v for v in parsed if counts[list(values).index(v)] == best)
