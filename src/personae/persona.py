"""Personas: the data model, loading from files, and rendering into a system prompt."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import jinja2
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._loading import LineMap, line_for, read_documents, suggest, validation_to_config_error
from .errors import ConfigError

KnowledgeLevel = Literal["none", "low", "medium", "high", "expert"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Demographics(_Frozen):
    """Who the persona is, socially. Every field is optional."""

    age: int | None = Field(default=None, ge=0, le=130)
    """Age in years."""
    gender: str | None = None
    """Gender, in the persona's own words."""
    location: str | None = None
    """Where the persona lives."""
    nationality: str | None = None
    """Nationality."""
    occupation: str | None = None
    """Job or main activity."""
    education: str | None = None
    """Highest education reached, e.g. 'high school', "bachelor's degree"."""
    religion: str | None = None
    """Religious identity, e.g. 'religious', 'atheist'."""
    politics: str | None = None
    """Political identity, e.g. 'Democrat', 'Republican'."""


class Attributes(_Frozen):
    """Typed attributes that studies read (domain matching, knowledge level, traits)."""

    demographics: Demographics = Demographics()
    """Social attributes."""
    expertise_domain: str | None = None
    """Domain the persona is an expert in; matched against item domain labels."""
    knowledge_level: KnowledgeLevel | None = None
    """How much the persona knows in general ('low' for a layperson or a child)."""
    traits: tuple[str, ...] = ()
    """Personality traits, e.g. 'curious', 'blunt'."""
    profile: dict[str, str | int | float] = Field(default_factory=dict)
    """Extra profile fields (questionnaire scores...), rendered by the interview template."""


class Persona(_Frozen):
    """A persona: who to be, what they know, how they speak."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=80)
    """Stable identifier: lowercase letters, digits, '-', '_' and '.'."""
    name: str = Field(min_length=1)
    """Display name, e.g. 'Dr. Ada Park'."""
    description: str = Field(min_length=1)
    """Who the persona is, as a noun phrase: 'a senior physicist'."""
    facts: tuple[str, ...] = ()
    """First-person persona facts, as in PersonaChat: 'I grew up on a farm.'"""
    attributes: Attributes = Attributes()
    """Typed attributes."""
    style: tuple[str, ...] = ()
    """Style notes: 'speaks in short sentences'."""
    version: int = Field(default=1, ge=1)
    """Bump when the persona changes; part of every cache key."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Free-form data for the user; personae never reads it."""

    @field_validator("facts", "style", mode="before")
    @classmethod
    def _one_string_is_one_item(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value


# ---------------------------------------------------------------- loading

def _personas_from(data: Any, *, file: str | None = None,
                   lines: LineMap | None = None) -> list[tuple[Any, tuple[Any, ...]]]:
    """Split a document into persona records with their path inside the document."""
    if isinstance(data, Mapping) and "personas" in data:
        line = line_for(lines or {}, ("personas",))
        others = sorted(str(k) for k in data if k != "personas")
        if others:
            looks_like_spec = bool({"study", "model"} & set(others))
            raise ConfigError(
                f"a persona file with 'personas:' holds nothing else (also found: {', '.join(others)}).",
                file=file, line=line, field=others[0],
                fix="pass a spec to 'personae run' or 'personae validate', not as a persona file."
                if looks_like_spec else "move these fields into each persona under 'personas:'.")
        items = data["personas"]
        if not isinstance(items, list):
            raise ConfigError(f"must be a list of personas, got {_kind(items)}.", file=file, line=line,
                              field="personas", fix="write one '- id: ...' entry per persona under 'personas:'.")
        return [(item, ("personas", i)) for i, item in enumerate(items)]
    if isinstance(data, list):
        return [(item, (i,)) for i, item in enumerate(data)]
    return [(data, ())]


def _kind(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}" if len(repr(value)) <= 40 else type(value).__name__


def parse_persona(record: Any, *, file: str | None = None, lines: dict | None = None,
                  prefix: tuple[Any, ...] = ()) -> Persona:
    """Validate one persona record (a mapping) into a Persona, with a teaching error."""
    if not isinstance(record, Mapping):
        raise ConfigError(
            f"a persona must be a mapping of fields, got {_kind(record)}.", file=file,
            line=line_for(lines or {}, prefix) if lines else None,
            field=".".join(map(str, prefix)) or None,
            fix="write the persona as 'id: ..., name: ..., description: ...' (or 'builtin:ID' in a spec).",
        )
    try:
        return Persona.model_validate(record)
    except ValidationError as exc:
        raise validation_to_config_error(exc, Persona, file=file, lines=lines, prefix=prefix) from None


def load_personas(path: str | Path) -> tuple[Persona, ...]:
    """Load one or many personas from YAML, JSON or JSONL.

    A file may hold one persona, a list of personas, or `{personas: [...]}`.
    """
    path = Path(path)
    out: list[Persona] = []
    where: list[int | None] = []
    for data, lines in read_documents(path):
        for record, prefix in _personas_from(data, file=str(path), lines=lines):
            line_prefix = prefix if path.suffix.lower() != ".jsonl" else ()
            persona = parse_persona(record, file=str(path), lines=lines, prefix=line_prefix)
            out.append(persona)
            where.append(line_for(lines, line_prefix + ("id",)))
    return check_unique(out, file=str(path), lines=where)


def check_unique(personas: Iterable[Persona], *, file: str | None = None,
                 lines: Sequence[int | None] | None = None) -> tuple[Persona, ...]:
    """Raise a ConfigError if two personas share an id; `lines[i]` is where persona i is defined."""
    first: dict[str, int] = {}
    result = tuple(personas)
    for i, p in enumerate(result):
        if p.id in first:
            line = lines[i] if lines and i < len(lines) else None
            earlier = lines[first[p.id]] if lines and first[p.id] < len(lines) else None
            also = f" (first on line {earlier})" if earlier else ""
            raise ConfigError(f"persona id '{p.id}' appears twice{also}.", file=file, line=line, field="id",
                              fix="give every persona a unique id (ids key the cache and the results).")
        first[p.id] = i
    return result


@lru_cache(maxsize=1)
def builtin_personas() -> dict[str, Persona]:
    """The built-in persona library, by id (experts, low-knowledge, identities, characters)."""
    folder = resources.files("personae") / "data" / "personas"
    found: dict[str, Persona] = {}
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".yaml"):
            with resources.as_file(entry) as p:
                for persona in load_personas(p):
                    found[persona.id] = persona
    return found


def builtin_persona(persona_id: str) -> Persona:
    library = builtin_personas()
    if persona_id not in library:
        raise ConfigError(
            f"no built-in persona '{persona_id}'.{suggest(persona_id, library)}",
            fix="run 'personae personas' to list the built-in library.",
        )
    return library[persona_id]


# ---------------------------------------------------------------- rendering

_INTERVIEW_QUESTIONS = {
    "age": "What is your age?",
    "gender": "What is your gender?",
    "location": "Where do you live?",
    "nationality": "What is your nationality?",
    "occupation": "What is your occupation?",
    "education": "What is your highest level of education?",
    "religion": "What is your religion?",
    "politics": "What is your political affiliation?",
}

BUILTIN_TEMPLATES: dict[str, str] = {
    "you-are": (
        "You are {{ p.name }}, {{ p.description }}."
        "{% for f in p.facts %} {{ f }}{% endfor %}"
        "{% if p.style %} Style: {{ p.style | join('; ') }}.{% endif %}"
    ),
    "take-the-role": (
        "Take the role of {{ p.description }}. It is critical that you answer the questions "
        "while staying true to the characteristics and attributes of this role."
        "{% for f in p.facts %} {{ f }}{% endfor %}"
    ),
    "adopt-identity": (
        "Adopt the identity of {{ p.description }}. Answer the questions while staying in strict "
        "accordance with the nature of this identity."
        "{% for f in p.facts %} {{ f }}{% endfor %}"
    ),
    "third-person": (
        "{{ p.name }} is {{ p.description }}."
        "{% for f in third_person_facts %} {{ f }}{% endfor %}"
        " Reply exactly as {{ p.name }} would."
    ),
    "interview": "{{ interview }}",
}


def profile_interview(fields: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(question, answer) pairs for profile fields: known demographics first, then the rest in order.

    `{"age": 34}` gives `("What is your age?", "34")`; unknown keys ask "What is your {key}?".
    """
    pairs = [(q, str(fields[k])) for k, q in _INTERVIEW_QUESTIONS.items() if fields.get(k) is not None]
    pairs += [(f"What is your {k.replace('_', ' ')}?", str(v)) for k, v in fields.items()
              if k not in _INTERVIEW_QUESTIONS and v is not None]
    return pairs


def format_interview(pairs: Iterable[tuple[str, str]]) -> str:
    return "\n".join(f"Interviewer: {q}\nInterviewee: {a}" for q, a in pairs)


def interview_lines(persona: Persona) -> list[tuple[str, str]]:
    """(question, answer) pairs for every available profile field, in a stable order."""
    fields = {**persona.attributes.demographics.model_dump(), **persona.attributes.profile}
    pairs = profile_interview(fields)
    for fact in persona.facts:
        pairs.append(("Tell me something about yourself.", fact))
    return pairs


def interview_block(persona: Persona) -> str:
    return format_interview(interview_lines(persona))


def _third_person(fact: str) -> str:
    words = {"I": "they", "I'm": "they're", "my": "their", "me": "them", "am": "are", "I've": "they've"}
    return " ".join(words.get(w, w) for w in fact.split())


_env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=False)


@lru_cache(maxsize=256)
def _compile(source: str) -> jinja2.Template:
    """Compile a template once: compiling costs ~2 ms, rendering ~20 us (a 10,000-request grid)."""
    return _env.from_string(source)


def render_persona(
    persona: Persona,
    template: str = "you-are",
    extra_templates: Mapping[str, str] | None = None,
) -> str:
    """Render a persona into a system prompt with a named template.

    `extra_templates` maps names to jinja2 text; inside, `p` is the persona, `interview` the
    interview block and `third_person_facts` the facts in the third person.
    """
    templates = {**BUILTIN_TEMPLATES, **(extra_templates or {})}
    if template not in templates:
        raise ConfigError(
            f"no persona template '{template}'.{suggest(template, templates)}",
            field="template",
            fix=f"use one of {', '.join(sorted(templates))}, or define it under 'templates:'.",
        )
    try:
        compiled = _compile(templates[template])
        return compiled.render(
            p=persona,
            interview=interview_block(persona),
            third_person_facts=[_third_person(f) for f in persona.facts],
        ).strip()
    except jinja2.UndefinedError as exc:
        missing = re.search(r"has no attribute '([^']+)'", str(exc)) or re.search(r"'([^']+)' is undefined", str(exc))
        name = missing.group(1) if missing else str(exc)
        hint = suggest(name, Persona.model_fields, "p.") or suggest(name, ("p", "interview", "third_person_facts"))
        raise ConfigError(f"template '{template}' uses '{name}', which does not exist.{hint}", field="templates",
                          fix=f"use p.{', p.'.join(Persona.model_fields)}, interview or third_person_facts.") from None
    except jinja2.TemplateError as exc:
        raise ConfigError(f"template '{template}' failed: {str(exc).rstrip('.')}.", field="templates",
                          fix="fix the jinja2 syntax; the persona is available as 'p'.") from None
