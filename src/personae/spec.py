"""Study specs: YAML (or Python) validated into one model, with personas and options resolved.

A spec names a study, one or more models, personas, sampling and the study's own options:

    study: grid
    model: local/smollm2-135m
    personas: [builtin:pirate-captain, my_personas.yaml]
    replicates: 3
    sampling: {temperature: 0.8, max_tokens: 48}
    options:
      questions: ["What do you do on a rainy day?"]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._loading import LineMap, line_for, read_documents, suggest, validation_to_config_error
from .backends import create_backend, parse_model_id
from .backends.base import Sampling
from .errors import ConfigError, PersonaeError
from .persona import BUILTIN_TEMPLATES, Persona, builtin_personas, check_unique, load_personas, parse_persona
from .runner import RetryPolicy


class ConcurrencySpec(BaseModel):
    """How hard to drive the backend."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    requests: int = Field(default=4, ge=1, le=1024)
    """Requests in flight per backend (the local backend always uses 1)."""
    retry: RetryPolicy = RetryPolicy()
    """Retries and per-request timeout."""


class StudySpec(BaseModel):
    """Everything that defines a run. The same model is built from YAML or from Python."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    study: str
    """Registered study name, e.g. 'grid' or 'dialogue'."""
    title: str | None = None
    """Shown in the report."""
    model: tuple[str, ...]
    """One model id or a list, e.g. local/smollm2-135m, openai/MODEL, fake/test."""
    backend: dict[str, Any] = Field(default_factory=dict)
    """Backend options (checked against the backend's option model)."""
    personas: tuple[Any, ...] = ()
    """Personas: 'builtin:ID', a file path (relative to the spec), or an inline mapping."""
    template: str = "you-are"
    """Persona template: you-are, take-the-role, adopt-identity, third-person, interview, or your own."""
    templates: dict[str, str] = Field(default_factory=dict)
    """Your own persona templates (jinja2; the persona is 'p')."""
    sampling: Sampling = Sampling(temperature=0.7, max_tokens=64)
    """Sampling parameters for generation."""
    replicates: int = Field(default=1, ge=1, le=1000)
    """Repeats per cell; each repeat gets its own seed and cache key."""
    seed: int = 0
    """Base seed; replicate r uses seed + r."""
    concurrency: ConcurrencySpec = ConcurrencySpec()
    """Concurrency, retries and timeouts."""
    options: dict[str, Any] = Field(default_factory=dict)
    """The study's own options (checked against the study's option model)."""

    @field_validator("model", mode="before")
    @classmethod
    def _one_model(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("personas", mode="before")
    @classmethod
    def _one_persona(cls, value: Any) -> Any:
        return (value,) if isinstance(value, (str, Mapping)) else value


@dataclass(frozen=True)
class ResolvedSpec:
    """A validated spec with its personas loaded and its study options parsed."""

    spec: StudySpec
    personas: tuple[Persona, ...]
    options: BaseModel
    path: Path | None
    base_dir: Path

    @property
    def name(self) -> str:
        return self.spec.title or (self.path.stem if self.path else self.spec.study)


def _resolve_personas(spec: StudySpec, base_dir: Path, file: str | None, lines: LineMap) -> tuple[Persona, ...]:
    out: list[Persona] = []
    library = None
    for i, entry in enumerate(spec.personas):
        where = ("personas", i)
        line = line_for(lines, where)
        if isinstance(entry, Mapping):
            out.append(parse_persona(entry, file=file, lines=lines, prefix=where))
        elif isinstance(entry, str) and entry.startswith("builtin:"):
            library = library or builtin_personas()
            pid = entry.removeprefix("builtin:")
            if pid not in library:
                raise ConfigError(f"no built-in persona '{pid}'.{suggest(pid, library)}", file=file, line=line,
                                  field=f"personas.{i}", fix="run 'personae personas' to list the library.")
            out.append(library[pid])
        elif isinstance(entry, str):
            path = (base_dir / entry) if not Path(entry).is_absolute() else Path(entry)
            if not path.exists():
                raise ConfigError(f"persona file '{entry}' not found (looked in {base_dir}).", file=file, line=line,
                                  field=f"personas.{i}",
                                  fix="give a path relative to the spec, or 'builtin:ID' for a built-in persona.")
            out.extend(load_personas(path))
        else:
            raise ConfigError(f"a persona entry must be 'builtin:ID', a file path or a mapping, got {entry!r}.",
                              file=file, line=line, field=f"personas.{i}", fix="see docs/specs.md.")
    return check_unique(out, file=file)


def resolve_spec(data: Any, *, path: Path | None = None, lines: LineMap | None = None) -> ResolvedSpec:
    """Validate raw spec data (from YAML or Python) into a ResolvedSpec, or raise a ConfigError."""
    from .studies import get_study  # noqa: PLC0415 (studies import spec types)

    file = str(path) if path else None
    lines = lines or {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"a spec must be a mapping of fields, got {type(data).__name__}.", file=file,
                          fix="start the file with 'study: NAME' and 'model: ID'.")
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as exc:
        raise validation_to_config_error(exc, StudySpec, file=file, lines=lines) from None
    study_cls = get_study(spec.study, file=file, line=line_for(lines, ("study",)))
    for i, model in enumerate(spec.model):
        try:
            parse_model_id(model)
        except ConfigError as exc:
            raise ConfigError(exc.message, file=file, line=line_for(lines, ("model", i)) or line_for(lines, ("model",)),
                              field="model", fix=exc.fix) from None
    _check_backend_options(spec, file, lines)
    templates = {**BUILTIN_TEMPLATES, **spec.templates}
    if spec.template not in templates:
        raise ConfigError(f"no persona template '{spec.template}'.{suggest(spec.template, templates)}", file=file,
                          line=line_for(lines, ("template",)), field="template",
                          fix=f"use one of {', '.join(sorted(templates))}, or define it under 'templates:'.")
    base_dir = path.parent if path else Path.cwd()
    personas = _resolve_personas(spec, base_dir, file, lines)
    try:
        options = study_cls.Options.model_validate(spec.options)
    except ValidationError as exc:
        raise validation_to_config_error(exc, study_cls.Options, file=file, lines=lines, prefix=("options",)) from None
    resolved = ResolvedSpec(spec=spec, personas=personas, options=options, path=path, base_dir=base_dir)
    try:
        study_cls.check(resolved)
    except PersonaeError as exc:
        if isinstance(exc, ConfigError) and exc.file:
            raise
        raise ConfigError(exc.message, file=file, fix=exc.fix) from None
    return resolved


def load_spec(path: str | Path) -> ResolvedSpec:
    """Read and validate a spec file (YAML or JSON)."""
    path = Path(path)
    docs = read_documents(path)
    if len(docs) != 1:
        raise ConfigError("a spec file holds one spec.", file=str(path), fix="use .yaml or .json, not .jsonl.")
    data, lines = docs[0]
    return resolve_spec(data, path=path, lines=lines)


def _check_backend_options(spec: StudySpec, file: str | None, lines: LineMap) -> None:
    """Validate backend options for every model without contacting any server."""
    from .backends import options_model  # noqa: PLC0415

    for model in spec.model:
        provider, _ = parse_model_id(model)
        opts_cls = options_model(provider)
        try:
            opts_cls.model_validate(spec.backend)
        except ValidationError as exc:
            raise validation_to_config_error(exc, opts_cls, file=file, lines=lines, prefix=("backend",)) from None


__all__ = ["StudySpec", "ResolvedSpec", "ConcurrencySpec", "load_spec", "resolve_spec", "create_backend"]
