"""Synthetic participants: drawn from an experiment's demographic marginals, assigned conditions,
asked in a constrained JSON format and their answers read back.

Each participant is a Persona (attributes.demographics filled in, a one-line description built
from them) rendered by the spec's persona template like any other persona. Draws are seeded by
(spec seed, experiment id), so adding an experiment to a suite changes no other participant.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..persona import Attributes, Demographics, Persona
from ..studies._cells import derive_seed
from .experiment import Experiment, Marginal


@dataclass(frozen=True)
class Participant:
    """One synthetic participant of one experiment."""

    index: int
    """Position in the sample, from 0."""
    persona: Persona
    """The persona asked with."""
    conditions: tuple[str, ...]
    """The conditions seen, in order (one between subjects; all, shuffled, within)."""


def _draw_share(rng: np.random.Generator, shares: dict[str, float]) -> str:
    keys = list(shares)
    weights = np.array([shares[k] for k in keys], float)
    return keys[int(rng.choice(len(keys), p=weights / weights.sum()))]


def _draw_age(rng: np.random.Generator, m: Marginal) -> int:
    for _ in range(100):  # a normal cut to [min, max] by rejection; the clip only guards a far-off mean
        x = rng.normal(m.mean, m.sd)
        if m.min <= x <= m.max:
            return int(round(x))
    return int(round(min(max(m.mean, m.min), m.max)))


def describe(d: Demographics) -> str:
    """'a 34-year-old woman with a bachelor's degree, a nurse from Canada' from the fields set."""
    who = d.gender or "person"
    head = f"a {d.age}-year-old {who}" if d.age is not None else f"a {who}"
    if head.startswith("a ") and re.match(r"[aeiou8]|1[18]-", head[2:]):
        head = "an " + head[2:]
    parts = [head]
    if d.education:
        parts.append(f"whose highest education is {d.education}")
    if d.occupation:
        parts.append(f"working as {d.occupation}" if d.occupation != "student" else "who is a student")
    if d.nationality:
        parts.append(f"from {d.nationality}")
    if d.politics:
        parts.append(f"who identifies as {d.politics}")
    return ", ".join(parts)


def sample_participants(exp: Experiment, n: int, seed: int) -> tuple[Participant, ...]:
    """n participants drawn from `exp.sample`'s marginals; between subjects the conditions are dealt
    in turn (balanced) and the deal shuffled, within subjects each sees every condition in a
    shuffled order."""
    rng = np.random.default_rng(derive_seed(seed, "replicate", exp.id))
    s = exp.sample
    names = list(exp.condition_names)
    deal = [names[i % len(names)] for i in range(n)]
    rng.shuffle(deal)
    out = []
    for i in range(n):
        fields: dict[str, Any] = {}
        if s.age is not None:
            fields["age"] = _draw_age(rng, s.age)
        for name in ("gender", "education", "nationality", "occupation", "politics"):
            shares = getattr(s, name)
            if shares:
                fields[name] = _draw_share(rng, shares)
        demo = Demographics(**fields)
        persona = Persona(id=f"{exp.id}-p{i}", name=f"Participant {i + 1}", description=describe(demo),
                          attributes=Attributes(demographics=demo))
        conds = (deal[i],) if exp.design == "between" else tuple(names[j] for j in rng.permutation(len(names)))
        out.append(Participant(i, persona, conds))
    return tuple(out)


# ---------------------------------------------------------------- asking and reading


def answer_schema(exp: Experiment) -> dict[str, Any]:
    """The JSON schema a constrained reply follows: {"answer": ...} of the measure's type."""
    m = exp.measure
    if m.kind == "choice":
        prop: dict[str, Any] = {"type": "string", "enum": list(m.options or ())}
    elif m.kind == "likert":
        low, high = m.scale  # type: ignore[misc]
        # an enum as well as the bounds: llama.cpp's schema-to-grammar enforces enums, not integer bounds
        prop = {"type": "integer", "enum": list(range(low, high + 1)), "minimum": low, "maximum": high}
    else:
        prop = {"type": "number"}
        if m.min is not None:
            prop["minimum"] = m.min
        if m.max is not None:
            prop["maximum"] = m.max
    return {"type": "object", "properties": {"answer": prop}, "required": ["answer"], "additionalProperties": False}


def question_text(exp: Experiment, condition: str) -> str:
    """The user message of one condition: instructions, stimulus, question and the answer format."""
    m = exp.measure
    stimulus = next(c.text for c in exp.conditions if c.name == condition)
    if m.kind == "choice":
        how = "Answer with one of: " + "; ".join(f'"{o}"' for o in (m.options or ())) + "."
    elif m.kind == "likert":
        low, high = m.scale  # type: ignore[misc]
        ends = f" ({low} = {m.labels[0]}, {high} = {m.labels[1]})" if m.labels else ""
        how = f"Answer with a whole number from {low} to {high}{ends}."
    else:
        bounds = [f"at least {m.min:g}" if m.min is not None else "", f"at most {m.max:g}" if m.max is not None else ""]
        how = "Answer with a number" + (" (" + ", ".join(b for b in bounds if b) + ")" if any(bounds) else "") + "."
    return (f"{exp.instructions}\n\n{stimulus.strip()}\n\n{m.question.strip()}\n{how}\n"
            'Reply in JSON as {"answer": ...}.')


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def parse_answer(exp: Experiment, text: str | None) -> float | str | None:
    """The answer of a reply: the JSON 'answer' field, else the only option named / the first
    number in the text; None when there is none or it is outside the scale, options or bounds."""
    if not text:
        return None
    m = exp.measure
    value: Any = None
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        try:
            data = json.loads(text[start:end + 1])
            if isinstance(data, dict):
                value = data.get("answer")
        except (json.JSONDecodeError, RecursionError):
            value = None
    if m.kind == "choice":
        options = m.options or ()
        if isinstance(value, str):
            hit = [o for o in options if o.lower() == value.strip().lower()]
            return hit[0] if hit else None
        lowered = text.lower()
        named = [o for o in options if re.search(rf"(?<!\w){re.escape(o.lower())}(?!\w)", lowered)]
        return named[0] if len(named) == 1 else None
    if isinstance(value, bool):
        value = None
    if not isinstance(value, (int, float)):
        found = _NUMBER.search(text if value is None else str(value))
        value = float(found.group().replace(",", "")) if found else None
    if value is None or not math.isfinite(float(value)):
        return None
    x = float(value)
    if m.kind == "likert":
        low, high = m.scale  # type: ignore[misc]
        return x if x == int(x) and low <= x <= high else None
    if (m.min is not None and x < m.min) or (m.max is not None and x > m.max):
        return None
    return x
