"""personae: use LLM personas honestly.

Measure what a persona does to a model, with statistics that separate effect from noise, and use
personas for what they are good for (character, personalisation, diverse panels, simulating
human reasoning), with those measurements built in.
"""

__version__ = "0.2.0"

from .api import Run, RunOutcome, run_study, run_study_async  # noqa: E402
from .backends import create_backend  # noqa: E402
from .backends.base import Backend, Embedding, Generation, Message, Request, Sampling, Score, Tags  # noqa: E402
from .errors import BackendError, ConfigError, ParseError, PersonaeError  # noqa: E402
from .persona import Persona, builtin_persona, builtin_personas, load_personas, render_persona  # noqa: E402
from .backends.pool import BackendPool, Binding  # noqa: E402
from .dryrun import DryRun, estimate_run  # noqa: E402
from .executors import AsyncioExecutor, Budget, Executor  # noqa: E402
from .roles import RoleDecl, RoleSpec  # noqa: E402
from .runner import Result, RetryPolicy, Runner  # noqa: E402
from .runs import LoadedRun, export_run, load_run  # noqa: E402
from .spec import ResolvedSpec, StudySpec, load_spec, resolve_spec  # noqa: E402
from .store import Store  # noqa: E402

__all__ = [
    "LoadedRun", "export_run", "load_run",
    "AsyncioExecutor", "BackendPool", "Binding", "Budget", "Embedding", "Executor", "RoleDecl", "RoleSpec", "Run",
    "Backend", "BackendError", "ConfigError", "Generation", "Message", "ParseError", "Persona", "PersonaeError",
    "Request", "ResolvedSpec", "Result", "RetryPolicy", "RunOutcome", "Runner", "Sampling", "Score", "Store",
    "StudySpec", "Tags", "builtin_persona", "builtin_personas", "create_backend", "load_personas", "load_spec",
    "render_persona", "resolve_spec", "run_study", "run_study_async", "DryRun", "estimate_run",
]
