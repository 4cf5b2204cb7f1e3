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

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ._loading import LineMap, line_for, read_documents, suggest, validation_to_config_error
from .backends import check_model_id, create_backend, parse_model_id
from .backends.base import Sampling
from .errors import ConfigError, PersonaeError
from .persona import BUILTIN_TEMPLATES, Persona, builtin_personas, load_personas, parse_persona
from .backends.pool import Binding
from .cost import Price, check_price_models
from .executors.base import RetryPolicy
from .roles import RoleDecl, RoleSpec
from .spec_types import ResolvedSpec


class ConcurrencySpec(BaseModel):
    """How hard to drive the backend."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    requests: int = Field(default=4, ge=1, le=1024)
    """Requests in flight per backend (the local backend always uses 1)."""
    retry: RetryPolicy = RetryPolicy()
    """Retries and per-request timeout."""


MAX_WORKERS = 256
"""Most Ray workers one run starts."""


class ExecutorSpec(BaseModel):
    """Where the requests run: asyncio in this process (default), or shards over a Ray cluster
    (docs/scale.md). `personae run --executor` and `--address` override `kind` and `address`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["asyncio", "ray"] = "asyncio"
    """'asyncio' (one process) or 'ray' (the `ray` extra)."""
    address: str | None = None
    """Ray cluster to join: HOST:PORT of a head node (`ray start --head`), 'ray://HOST:10001', or
    'auto'; none starts a local cluster on 127.0.0.1 for this run."""
    workers: int | tuple[dict[str, Any], ...] | None = None
    """Ray workers (actors), each with its own backend: a number of alike workers, or one entry per
    worker of backend options laid over `backend:` for the models under study (e.g. one
    `{base_url: ...}` per vLLM server). Default: one per CPU of the cluster."""
    worker_cpus: float = Field(default=1.0, gt=0, le=64)
    """CPUs Ray reserves for each worker."""


class StudySpec(BaseModel):
    """Everything that defines a run. The same model is built from YAML or from Python."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    study: str
    """Registered study name, e.g. 'grid' or 'dialogue'."""
    title: str | None = None
    """Shown in the report."""
    model: tuple[str, ...] = Field(min_length=1)
    """One model id or a list, e.g. local/smollm2-135m, openai/MODEL, fake/test."""
    backend: dict[str, Any] = Field(default_factory=dict)
    """Backend options (checked against the backend's option model), or one block per provider:
    `{openai: {base_url: ...}, local: {n_ctx: 4096}}`."""
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
    """Base seed; every cell and replicate gets its own seed derived from it (deterministic)."""
    concurrency: ConcurrencySpec = ConcurrencySpec()
    """Concurrency, retries and timeouts."""
    executor: ExecutorSpec = ExecutorSpec()
    """Where requests run: asyncio here (default) or a Ray cluster (docs/scale.md)."""
    options: dict[str, Any] = Field(default_factory=dict)
    """The study's own options (checked against the study's option model)."""
    roles: dict[str, RoleSpec] = Field(default_factory=dict)
    """Models for the study's roles (judge, partner, ...), each `{model: ID, backend: {...}}` or just an
    id; an unbound role is played by the model under study."""
    prices: dict[str, Price] = Field(default_factory=dict)
    """Price per million tokens of the run's models, `{MODEL: {input: ..., output: ...}}`, for the cost in
    `personae run --dry-run`, run.json and the report (a `--prices FILE` adds to it). Not part of any key."""
    engine: dict[str, Any] = Field(default_factory=dict)
    """The serving engine's settings as you launched it (e.g. vLLM's version, flags, environment), free-form:
    recorded in run.json, read by nothing else (personae cannot see a server's flags)."""

    @field_validator("model", mode="before")
    @classmethod
    def _one_model(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @field_validator("personas", mode="before")
    @classmethod
    def _one_persona(cls, value: Any) -> Any:
        return (value,) if isinstance(value, (str, Mapping)) else value


def _resolve_personas(spec: StudySpec, base_dir: Path, file: str | None, lines: LineMap) -> tuple[Persona, ...]:
    out: list[Persona] = []
    sources: list[tuple[int | None, str]] = []  # (spec line, where the persona came from)
    library = None
    for i, entry in enumerate(spec.personas):
        where = ("personas", i)
        line = line_for(lines, where)
        if isinstance(entry, Mapping):
            out.append(parse_persona(entry, file=file, lines=lines, prefix=where))
            sources.append((line, f"personas.{i}"))
        elif isinstance(entry, str) and entry.startswith("builtin:"):
            library = library or builtin_personas()
            pid = entry.removeprefix("builtin:")
            if pid not in library:
                raise ConfigError(f"no built-in persona '{pid}'.{suggest(pid, library, 'builtin:')}",
                                  file=file, line=line,
                                  field=f"personas.{i}", fix="run 'personae personas' to list the library.")
            out.append(library[pid])
            sources.append((line, entry))
        elif isinstance(entry, str):
            path = (base_dir / entry) if not Path(entry).is_absolute() else Path(entry)
            if path.is_dir():
                raise ConfigError(f"'{entry}' is a folder, not a file ({path}).", file=file, line=line,
                                  field=f"personas.{i}", fix="name a persona file inside it (.yaml, .yml, .json or "
                                  ".jsonl), one entry per file.")
            if path.is_symlink() and not path.exists():
                raise ConfigError(f"'{entry}' is a symbolic link that leads nowhere (its target is missing, or links "
                                  "loop).", file=file, line=line, field=f"personas.{i}",
                                  fix="point the link at a real persona file, or give the file's own path.")
            if not path.is_file():
                raise ConfigError(f"persona file '{entry}' not found (looked in {base_dir}).{_file_hint(entry, base_dir)}",
                                  file=file, line=line, field=f"personas.{i}",
                                  fix="give a path relative to the spec, or 'builtin:ID' for a built-in persona.")
            loaded = load_personas(path)
            out.extend(loaded)
            sources.extend((line, entry) for _ in loaded)
        else:
            raise ConfigError(f"a persona entry must be 'builtin:ID', a file path or a mapping, got {entry!r}.",
                              file=file, line=line, field=f"personas.{i}",
                              fix="write e.g. 'builtin:pirate-captain', 'my_personas.yaml', or "
                              "'{id: ada, name: Ada, description: a physicist}'.")
    first: dict[str, int] = {}
    for n, persona in enumerate(out):
        if persona.id in first:
            line, source = sources[n]
            earlier = sources[first[persona.id]][1]
            raise ConfigError(f"persona id '{persona.id}' appears twice (from {earlier} and from {source}).",
                              file=file, line=line, field="personas",
                              fix="remove one of them or give every persona a unique id.")
        first[persona.id] = n
    return tuple(out)


def _file_hint(entry: str, base_dir: Path) -> str:
    """' Did you mean ...?' for a misspelt persona file or a built-in id written without 'builtin:'."""
    if entry in builtin_personas():
        return f" Did you mean 'builtin:{entry}'?"
    folder = (base_dir / entry).parent
    if folder.is_dir():
        names = [p.name for p in folder.iterdir() if p.suffix.lower() in (".yaml", ".yml", ".json", ".jsonl")]
        hint = suggest(Path(entry).name, names, cutoff=0.85)
        if hint:
            return hint
    return suggest(Path(entry).stem, builtin_personas(), "builtin:")


def _field_path(field: str | None) -> tuple[Any, ...]:
    """'options.questions.2.id' -> ('options', 'questions', 2, 'id'), to look up a line."""
    if not field:
        return ()
    return tuple(int(p) if p.isdigit() else p for p in field.split("."))


def resolve_spec(data: Any, *, path: Path | None = None, lines: LineMap | None = None,
                 replaced_models: Sequence[str] = ()) -> ResolvedSpec:
    """Validate raw spec data (from YAML or Python) into a ResolvedSpec, or raise a ConfigError.
    `replaced_models`: the models a --model option replaced (their `prices:` entries are no typos)."""
    from .studies import get_study  # noqa: PLC0415 (studies import spec types)

    file = str(path) if path else None
    lines = lines or {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"a spec must be a mapping of fields, got {type(data).__name__}.", file=file,
                          fix="start the file with 'study: NAME' and 'model: ID'.")
    if not {"study", "model"} & set(data) and ("id" in data or set(data) == {"personas"}):
        raise ConfigError("this is a persona file, not a spec.", file=file, line=1, field="study",
                          fix="reference it from a spec ('personas: [FILE]') and validate or run the spec.")
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as exc:
        raise validation_to_config_error(exc, StudySpec, file=file, lines=lines) from None
    study_cls = get_study(spec.study, file=file, line=line_for(lines, ("study",)))
    for i, model in enumerate(spec.model):
        try:
            check_model_id(model)
        except ConfigError as exc:
            raise ConfigError(exc.detail, file=file, line=line_for(lines, ("model", i)),
                              field="model" if len(spec.model) == 1 else f"model.{i}", fix=exc.fix) from None
    _check_backend_options(spec, file, lines)
    _check_worker_options(spec, file, lines)
    templates = {**BUILTIN_TEMPLATES, **spec.templates}
    if spec.template not in templates:
        raise ConfigError(f"no persona template '{spec.template}'.{suggest(spec.template, templates)}", file=file,
                          line=line_for(lines, ("template",)), field="template",
                          fix=f"use one of {', '.join(sorted(templates))}, or define it under 'templates:'.")
    base_dir = path.parent if path else Path.cwd()
    personas = _resolve_personas(spec, base_dir, file, lines)
    _check_template(spec, personas, file, lines)
    try:
        options = study_cls.Options.model_validate(spec.options)
    except ValidationError as exc:
        raise validation_to_config_error(exc, study_cls.Options, file=file, lines=lines, prefix=("options",)) from None
    roles = _resolve_roles(spec, study_cls, options, file, lines)
    check_price_models(spec.prices, file=file, lines=lines, used=[*spec.model, *(b.model for b in roles.values())],
                       known=replaced_models)
    resolved = ResolvedSpec(spec=spec, personas=personas, options=options, path=path, base_dir=base_dir, roles=roles)
    try:
        _check_role_capabilities(resolved, study_cls.roles_used(options))
        study_cls.check(resolved)
    except PersonaeError as exc:
        if isinstance(exc, ConfigError) and exc.file:
            raise
        field = exc.field if isinstance(exc, ConfigError) else None
        detail = exc.detail if isinstance(exc, ConfigError) else exc.message
        path_ = _field_path(field)
        line = line_for(lines, path_) if path_[:1] in lines else None
        raise ConfigError(detail, file=file, line=line, field=field, fix=exc.fix) from None
    return resolved


def load_spec(path: str | Path, *, models: Sequence[str] = ()) -> ResolvedSpec:
    """Read and validate a spec file (YAML or JSON); `models` replaces the spec's `model:`."""
    path = Path(path)
    docs = read_documents(path)
    if len(docs) != 1:
        raise ConfigError("a spec file holds one spec.", file=str(path), fix="use .yaml or .json, not .jsonl.")
    data, lines = docs[0]
    replaced: Sequence[str] = ()
    if models and isinstance(data, Mapping):
        original = data.get("model")
        replaced = [original] if isinstance(original, str) else [m for m in original or () if isinstance(m, str)]
        data = {**data, "model": list(models)}
    return resolve_spec(data, path=path, lines=lines, replaced_models=replaced)


def _check_template(spec: StudySpec, personas: tuple[Persona, ...], file: str | None, lines: LineMap) -> None:
    """Render the persona template once per persona now, so a template error names the spec and line."""
    from .persona import render_persona  # noqa: PLC0415

    probe = personas or (Persona(id="probe", name="Probe", description="a probe persona"),)
    for persona in probe:
        try:
            render_persona(persona, spec.template, spec.templates)
        except ConfigError as exc:
            own = spec.template in spec.templates
            field = f"templates.{spec.template}" if own else "template"
            line = line_for(lines, ("templates", spec.template) if own else ("template",))
            raise ConfigError(exc.detail, file=file, line=line, field=field, fix=exc.fix) from None


def _is_per_provider(backend: dict[str, Any]) -> bool:
    from .backends import PROVIDERS  # noqa: PLC0415

    return bool(backend) and set(backend) <= set(PROVIDERS) and all(isinstance(v, dict) for v in backend.values())


def backend_options_for(spec: StudySpec, model: str) -> dict[str, Any]:
    """The backend options of one model: `backend:` itself, or its entry for the model's provider
    when `backend:` is keyed by provider (`backend: {openai: {base_url: ...}, local: {n_ctx: 4096}}`),
    so that one spec can compare models behind different providers."""
    if _is_per_provider(spec.backend):
        provider, _ = parse_model_id(model)
        return dict(spec.backend.get(provider, {}))
    return dict(spec.backend)


def _check_backend_options(spec: StudySpec, file: str | None, lines: LineMap) -> None:
    """Validate backend options for every model without contacting any server."""
    per_provider = _is_per_provider(spec.backend)
    for model in spec.model:
        provider, _ = parse_model_id(model)
        prefix = ("backend", provider) if per_provider else ("backend",)
        check_options_for(model, backend_options_for(spec, model), prefix, file, lines)


def _check_worker_options(spec: StudySpec, file: str | None, lines: LineMap) -> None:
    """Each Ray worker's backend options (laid over `backend:`) are valid for every model under study."""
    workers = spec.executor.workers
    if workers is None:
        return
    if isinstance(workers, int) and not 1 <= workers <= MAX_WORKERS or workers == ():
        raise ConfigError(f"needs 1 to {MAX_WORKERS} workers (got {'an empty list' if workers == () else workers}).",
                          file=file, line=line_for(lines, ("executor", "workers")), field="executor.workers",
                          fix="give a number of alike workers (e.g. 2), or one entry of backend options per worker "
                          "(e.g. [{base_url: http://10.0.0.1:8000/v1}, {base_url: http://10.0.0.2:8000/v1}]).")
    if isinstance(workers, int):
        return
    for i, entry in enumerate(workers):
        for model in spec.model:
            check_options_for(model, {**backend_options_for(spec, model), **entry}, ("executor", "workers", i),
                              file, lines)


def check_options_for(model: str, options: Mapping[str, Any], prefix: tuple[Any, ...], file: str | None,
                      lines: LineMap) -> None:
    """Validate one model's backend options against its provider's option model, plus the provider's
    own `check_options(options)` where it has one (the fake backend checks its responder is registered)."""
    import importlib  # noqa: PLC0415

    from .backends import PROVIDERS, options_model  # noqa: PLC0415

    provider, _ = parse_model_id(model)
    opts_cls = options_model(provider)
    try:
        opts = opts_cls.model_validate(dict(options))
    except ValidationError as exc:
        raise validation_to_config_error(exc, opts_cls, file=file, lines=lines, prefix=prefix) from None
    check = getattr(importlib.import_module(PROVIDERS[provider][0]), "check_options", None)
    if check is None:
        return
    try:
        check(opts)
    except ConfigError as exc:
        field_ = ".".join([*map(str, prefix), *(exc.field or "").split(".")[1:]]) if exc.field else None
        raise ConfigError(exc.detail, file=file, line=line_for(lines, _field_path(field_) or prefix),
                          field=field_, fix=exc.fix) from None


def role_options(spec: StudySpec, model: str) -> dict[str, Any]:
    """Default backend options of a role's model: the spec's options for that provider (a flat
    `backend:` block applies only to the providers of the models under study)."""
    if _is_per_provider(spec.backend):
        return backend_options_for(spec, model)
    studied = {parse_model_id(m)[0] for m in spec.model}
    return dict(spec.backend) if parse_model_id(model)[0] in studied else {}


def _resolve_roles(spec: StudySpec, study_cls: Any, options: BaseModel, file: str | None,
                   lines: LineMap) -> dict[str, Binding]:
    """Bind every role: from `roles:`, from a study option that aliases it, or the role's default."""
    declared: dict[str, RoleDecl] = {r.name: r for r in study_cls.roles}
    bound: dict[str, tuple[RoleSpec, tuple[Any, ...]]] = {}
    for name, role in spec.roles.items():
        if name not in declared:
            uses = (f"it uses: {', '.join(declared)}" if declared else "it uses none")
            raise ConfigError(f"the {spec.study} study has no role '{name}'.{suggest(name, declared)}", file=file,
                              line=line_for(lines, ("roles", name)), field=f"roles.{name}",
                              fix=f"remove it or use one of the study's roles ({uses}).")
        bound[name] = (role, ("roles", name))
    for name, (model, field_) in study_cls.role_aliases(options).items():
        if name in bound:
            raise ConfigError(f"the {name} is given twice: in roles.{name} and in {field_}.", file=file,
                              line=line_for(lines, _field_path(field_)), field=field_,
                              fix=f"keep roles.{name} and remove {field_}.")
        bound[name] = (RoleSpec(model=model), _field_path(field_))
    for name, decl in declared.items():
        if name not in bound and decl.default is not None:
            bound[name] = (RoleSpec(model=decl.default), ())
    out: dict[str, Binding] = {}
    for name, (role, where) in bound.items():
        model_where = (*where, "model") if where[:1] == ("roles",) else where
        try:
            check_model_id(role.model)
        except ConfigError as exc:
            raise ConfigError(exc.detail, file=file, line=line_for(lines, model_where) if where else None,
                              field=".".join(map(str, model_where)) or f"roles.{name}", fix=exc.fix) from None
        opts = dict(role.backend) if role.backend else role_options(spec, role.model)
        backend_where = (*where, "backend") if role.backend else ("backend",)
        check_options_for(role.model, opts, backend_where, file, lines)
        out[name] = Binding(role.model, opts)
    return out


def _check_role_capabilities(resolved: ResolvedSpec, declared: Sequence[RoleDecl]) -> None:
    """A role that must score or embed gets a backend that can (asked of the backend, created
    without contacting any server)."""
    from .errors import BackendUnavailableError  # noqa: PLC0415

    for decl in declared:
        bindings = ([resolved.roles[decl.name]] if decl.name in resolved.roles else
                    [Binding(m, backend_options_for(resolved.spec, m)) for m in resolved.spec.model])
        for binding in bindings:
            needs = ("score text" if decl.needs_scoring else "embed text" if decl.kind == "embed"
                     else "generate text")
            try:
                backend = create_backend(binding.model, binding.options)
            except BackendUnavailableError:
                continue  # e.g. no server URL yet: the run itself reports that
            ok = (backend.supports_scoring if decl.needs_scoring else
                  backend.supports_embedding if decl.kind == "embed" else backend.supports_generation)
            if not ok:
                raise ConfigError(f"the {decl.name} ({decl.purpose}) must {needs}, and {binding.model} cannot.",
                                  field=f"roles.{decl.name}",
                                  fix="bind the role to a model that can"
                                  + (" (local/..., or openai/... with backend.scoring: prompt_logprobs)."
                                     if decl.needs_scoring else " (e.g. embed/minilm)." if decl.kind == "embed"
                                     else "."))


__all__ = ["StudySpec", "ResolvedSpec", "ConcurrencySpec", "backend_options_for", "load_spec", "resolve_spec",
           "create_backend"]
