"""The study interface: plan waves of requests, then analyse the results.

A study is a small state machine over waves. `plan(done)` receives every result so far and
returns the next wave of requests ([] when finished). A static grid returns everything in
wave 0; a dialogue returns turn t of every dialogue in wave t, built from turn t-1's replies.
Because each wave goes through the cached runner and `plan` is a pure function of the results,
a killed run replays finished waves from the store and resumes at the wave it reached.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import islice
from typing import Any, ClassVar, Generic, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field

from ..backends.base import Message, Request, Sampling, Tags
from ..persona import Persona, builtin_personas, render_persona
from ..roles import RoleDecl
from ..runner import Result
from ..spec_types import ResolvedSpec
from ._cells import Cell, cell_seed, derive_seed

OptionsT = TypeVar("OptionsT", bound=BaseModel)


class Prompt(BaseModel):
    """A question or open prompt that a study asks."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    """Prompt id, unique in the study."""
    text: str = Field(min_length=1)
    """What the user asks."""


def prompts_from_strings(value: Any) -> Any:
    """Let option lists mix plain strings ('q1', 'q2'... ids) and {id, text} mappings."""
    if isinstance(value, (list, tuple)):
        return [{"id": f"q{i + 1}", "text": v} if isinstance(v, str) else v for i, v in enumerate(value)]
    return value


class Wave:
    """A wave planned lazily: `plan` may return one instead of a list. Its requests are built as the
    run takes them, a chunk at a time, so a 100,000-request grid is never a list of 100,000
    Requests in memory; it knows its size (progress, `personae validate`, the dry run) and can be
    iterated again (each pass builds the requests anew, the same ones)."""

    __slots__ = ("_make", "_size")

    def __init__(self, make: Callable[[], Iterable[Request]], size: int) -> None:
        self._make, self._size = make, size

    def __len__(self) -> int:
        return self._size

    def __bool__(self) -> bool:
        return self._size > 0

    def __iter__(self) -> Iterator[Request]:
        return iter(self._make())

    def chunks(self, size: int) -> Iterator[list[Request]]:
        """The requests in lists of at most `size`, in order."""
        it = iter(self)
        while chunk := list(islice(it, size)):
            yield chunk


class Summary(BaseModel):
    """What summary.json holds: a verdict, a table, and every statistic with its CI."""

    model_config = ConfigDict(extra="forbid")

    study: str
    """Study name."""
    verdict: str
    """Plain-language conclusion."""
    table: list[dict[str, Any]] = Field(default_factory=list)
    """Rows of the main table (one per persona/condition/model)."""
    stats: dict[str, Any] = Field(default_factory=dict)
    """Estimates with CIs and tests with statistics and p-values."""
    counts: dict[str, int] = Field(default_factory=dict)
    """Requests, errors, parse failures."""
    notes: list[str] = Field(default_factory=list)
    """Caveats (e.g. errors excluded, judge disagreement)."""


class Study(ABC, Generic[OptionsT]):
    """Base class of every study, generic over its options model: `class GridStudy(Study[GridOptions])`."""

    name: ClassVar[str]
    """Registered name used in specs."""
    Options: ClassVar[type[BaseModel]]
    """The study's own options (frozen, extra='forbid'): the OptionsT of `self.options`. (A ClassVar
    cannot hold a type variable, so the type checker does not tie the two; __init__ checks it.)"""
    max_waves: ClassVar[int] = 10_000
    """Safety cap on the number of waves."""
    display_columns: ClassVar[tuple[str, ...] | None] = None
    """Columns of the summary table printed in the terminal (None: all)."""
    roles: ClassVar[tuple[RoleDecl, ...]] = ()
    """The roles this study uses besides the model under study (bound in the spec's `roles:`)."""

    def __init__(self, resolved: ResolvedSpec) -> None:
        if not isinstance(resolved.options, self.Options):
            raise TypeError(f"{type(self).__name__} takes {self.Options.__name__}, got "
                            f"{type(resolved.options).__name__}: resolve the spec with resolve_spec().")
        self.resolved = resolved
        self.spec = resolved.spec
        self.options: OptionsT = cast(OptionsT, resolved.options)
        self.personas: tuple[Persona, ...] = resolved.personas
        self._system_prompts: dict[int, tuple[Persona, str, Message]] = {}
        self._last_cell: tuple[Cell[Any], Sequence[Message], Request] | None = None

    @classmethod
    def check(cls, resolved: ResolvedSpec) -> None:
        """Extra validation of a resolved spec (raise ConfigError). Default: nothing."""

    @classmethod
    def roles_used(cls, options: Any) -> tuple[RoleDecl, ...]:
        """The declared roles a run with these options calls (validation checks only those, and
        `personae validate` lists only those). Default: every declared role."""
        return cls.roles

    @classmethod
    def role_aliases(cls, options: Any) -> dict[str, tuple[str, str]]:
        """Roles bound by one of the study's own options, as {role: (model id, option field)}
        (kept for specs written before `roles:` existed). Default: none."""
        return {}

    def role_model(self, role: str, studied: str) -> str:
        """The model that plays `role` for answers of the studied model `studied`."""
        bound = self.resolved.roles.get(role)
        return bound.model if bound is not None else studied

    def role_is_bound(self, role: str) -> bool:
        return role in self.resolved.roles

    @staticmethod
    def require_scoring(resolved: ResolvedSpec, why: str, field: str) -> None:
        """Raise a ConfigError if a model's backend cannot score text (a backend that cannot be asked
        yet, e.g. with no server URL, is left for the run to report)."""
        from ..errors import ConfigError  # noqa: PLC0415

        for model in Study.models_without_scoring(resolved, unknown_can=True):
            raise ConfigError(f"{why} needs a backend that scores text, and {model} cannot.", field=field,
                              fix="use local/..., or openai/... with backend.scoring: prompt_logprobs (vLLM).")

    @staticmethod
    def require_multiseq(resolved: ResolvedSpec, why: str, field: str) -> None:
        """Raise a ConfigError if a studied model's backend cannot decode several sequences in lockstep
        (listener decoding); a backend that cannot be created yet is left for the run to report."""
        from ..errors import ConfigError  # noqa: PLC0415

        for model in Study.models_without(resolved, "supports_multiseq", unknown_can=True):
            raise ConfigError(f"{why} needs a backend that decodes several sequences in lockstep, and {model} "
                              "cannot.", field=field,
                              fix="use local/... (the embedded model or a GGUF file), or drop it.")

    @staticmethod
    def models_without_scoring(resolved: ResolvedSpec, *, unknown_can: bool) -> tuple[str, ...]:
        """The studied models whose backend cannot score text (see `models_without`)."""
        return Study.models_without(resolved, "supports_scoring", unknown_can=unknown_can)

    @staticmethod
    def models_without(resolved: ResolvedSpec, capability: str, *, unknown_can: bool) -> tuple[str, ...]:
        """The studied models whose backend lacks a capability flag (e.g. 'supports_scoring'), asked of
        each backend (created without contacting any server); `unknown_can` says how to count one
        that cannot be created yet."""
        from ..backends import create_backend  # noqa: PLC0415
        from ..errors import BackendUnavailableError  # noqa: PLC0415
        from ..spec import backend_options_for  # noqa: PLC0415

        out = []
        for model in resolved.spec.model:
            try:
                backend = create_backend(model, backend_options_for(resolved.spec, model))
            except BackendUnavailableError:
                if not unknown_can:
                    out.append(model)
                continue
            if not getattr(backend, capability):
                out.append(model)
        return tuple(out)

    @abstractmethod
    def plan(self, done: Sequence[Result]) -> list[Request] | Wave:
        """The next wave of requests given every result so far; [] when the study is finished (a
        `Wave` builds a large wave's requests as the run takes them)."""

    @abstractmethod
    def analyze(self, results: Sequence[Result]) -> Summary:
        """Statistics and verdict from all results (errors included, and counted)."""

    def tally(self) -> Any | None:
        """A streaming analysis, or None (the default: the run holds every Result and calls `analyze`).

        A study that returns a tally (an object with `add(result)`) analyses results as they come:
        the run adds each wave's results to it, in plan order, and keeps no Result objects (they are
        in the store and results.jsonl; `RunOutcome.results` reads them back from the store), then
        calls `analyze_tally`. Its `analyze(results)` must be `analyze_tally` of a tally of those
        results, so the two paths cannot disagree. For studies whose analysis needs a few numbers
        per result (not its messages): memory stays flat in the grid's size."""
        return None

    def analyze_tally(self, tally: Any) -> Summary:
        """The summary from a tally that `tally()` made and every result was added to."""
        raise NotImplementedError(f"{type(self).__name__} returns a tally but does not analyse one")

    def describe(self) -> list[str]:
        """Extra lines `personae validate` prints about what the study will do with its data
        (which fields form a profile, which expert plays each domain). Default: none."""
        return []

    def row_features(self, result: Result) -> dict[str, Any]:
        """Per-answer values the study computes (a parsed answer, style features), as extra columns
        of `load_run(...).requests`. Default: none."""
        return {}

    def figures(self, results: Sequence[Result], summary: Summary) -> list[tuple[str, Any]]:
        """(caption, matplotlib Figure) pairs for the report. Default: none."""
        return []

    # ---------------------------------------------------------------- helpers for subclasses
    def persona_panel(self, default: Sequence[str]) -> tuple[Persona, ...]:
        """The spec's personas, or the built-in personas named in `default`."""
        if self.personas:
            return self.personas
        library = builtin_personas()
        return tuple(library[p] for p in default)

    def system_prompt(self, persona: Persona | None) -> str | None:
        """The persona rendered with the spec's template, once per persona (not once per request)."""
        if persona is None:
            return None
        return self._system(persona)[1]

    def _system(self, persona: Persona) -> tuple[Persona, str, Message]:
        hit = self._system_prompts.get(id(persona))
        if hit is not None and hit[0] is persona:  # the entry holds the persona, so its id is not reused
            return hit
        text = render_persona(persona, self.spec.template, self.spec.templates)
        entry = self._system_prompts[id(persona)] = (persona, text, Message(role="system", content=text))
        return entry

    def sampling_for(self, replicate: int, sampling: Sampling | None = None, tags: Tags | None = None) -> Sampling:
        """The spec's sampling with a seed derived from the spec seed, the cell and the replicate
        (`cell_seed`: every persona, item, condition, wave and replicate gets its own)."""
        base = sampling or self.spec.sampling
        return base.model_copy(update={"seed": cell_seed(self.spec.seed, tags or Tags(), replicate)})

    def chat_request(self, model: str, persona: Persona | None, history: Sequence[Message], *, replicate: int,
                     tags: Tags, sampling: Sampling | None = None, **extra: Any) -> Request:
        """A generation request with the persona rendered as the system prompt."""
        return self._chat(model, persona, history, replicate, tags, self.sampling_for(replicate, sampling, tags), extra)

    def cell_request(self, cell: Cell[Any], history: Sequence[Message], *, sampling: Sampling | None = None,
                     **extra: Any) -> Request:
        """The generation request of one cell of `cells()`: its model, persona, replicate, tags and seed.

        The replicates of a cell differ only in replicate and seed: the next replicate of the cell
        asked last (same tags, history and model) is a copy of its request with those two changed,
        not a new validation of the same messages (a 100,000-request grid builds 100,000)."""
        last = self._last_cell
        if (last is not None and sampling is None and not extra and last[0].tags is cell.tags
                and last[1] is history and last[0].model == cell.model and last[0].persona is cell.persona):
            base = last[2]
            return base.model_copy(update={"replicate": cell.replicate,
                                           "sampling": base.sampling.model_copy(update={"seed": cell.seed})})
        seeded = (sampling or self.spec.sampling).model_copy(update={"seed": cell.seed})
        request = self._chat(cell.model, cell.persona, history, cell.replicate, cell.tags, seeded, extra)
        self._last_cell = (cell, history, request) if sampling is None and not extra else None
        return request

    def _chat(self, model: str, persona: Persona | None, history: Sequence[Message], replicate: int, tags: Tags,
              sampling: Sampling, extra: dict[str, Any]) -> Request:
        system = self._system(persona)[2] if persona is not None else None  # one Message per persona
        messages = ((system,) if system is not None and system.content else ()) + tuple(history)
        return Request(kind="generate", model=model, messages=messages, sampling=sampling, replicate=replicate,
                       persona_version=persona.version if persona else None, tags=tags, **extra)


def count_results(results: Sequence[Result]) -> dict[str, int]:
    return {
        "requests": len(results),
        "ok": sum(r.ok for r in results),
        "errors": sum(not r.ok for r in results),
        "cached": sum(r.cached for r in results),
    }


__all__ = ["Prompt", "Study", "Summary", "Wave", "count_results", "derive_seed", "prompts_from_strings"]
