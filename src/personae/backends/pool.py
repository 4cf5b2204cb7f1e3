"""One pool of backends per run: each (model id, options) backend is created once, on first use,
and closed once at the end. The runner, `personae chat` and the tour all get their backends here.

A request finds its backend by its role and model: a role bound in the spec's `roles:` block uses
that binding's options; anything else (the model under study, an unbound role, an embedder) uses
the options the spec gives that model. Two bindings of one model id with different options (two
servers, a GGUF with and without an adapter) are two backends with two fingerprints, so they never
share cached answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import BackendError
from .base import Backend, Request


@dataclass(frozen=True)
class Binding:
    """A model id with the backend options it runs with."""

    model: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def identity(self) -> tuple[str, str]:
        return self.model, json.dumps(dict(self.options), sort_keys=True, default=str)


class BackendPool:
    """Creates backends lazily, shares them between roles bound alike, and closes them once."""

    def __init__(self, *, roles: Mapping[str, Binding] | None = None,
                 options_for: Callable[[str], Mapping[str, Any]] | None = None,
                 overrides: Mapping[str, Backend] | None = None, file: str | None = None) -> None:
        self.roles = dict(roles or {})
        self._options_for = options_for or (lambda model: {})
        self.overrides = dict(overrides or {})
        self.file = file
        self._made: dict[tuple[str, str], Backend] = {}
        self._by_request: dict[tuple[str, str | None], Backend] = {}  # (model, role) -> backend, memoised
        self._closed = False

    @classmethod
    def of(cls, backends: Mapping[str, Backend]) -> BackendPool:
        """A pool that answers from the given backends (by model id) only."""
        pool = cls(overrides=backends)
        pool._options_for = pool._refuse
        return pool

    def _refuse(self, model: str) -> Mapping[str, Any]:
        raise BackendError(f"no backend was created for model '{model}'.",
                           fix="list the model under 'model:' in the spec, or bind its role under 'roles:'.")

    def binding(self, model: str, role: str | None = None) -> Binding:
        bound = self.roles.get(role) if role else None
        if bound is not None and bound.model == model:
            return bound
        return Binding(model, self._options_for(model))

    def get(self, model: str, role: str | None = None) -> Backend:
        bound = self.roles.get(role) if role else None
        if model in self.overrides and (bound is None or bound.model == model):
            return self.overrides[model]
        binding = self.binding(model, role)
        ident = binding.identity()
        backend = self._made.get(ident)
        if backend is None:
            from . import create_backend  # noqa: PLC0415

            if self._closed:
                raise BackendError("the backend pool is closed.", fix="this is a bug; please report it.")
            backend = self._made[ident] = create_backend(model, binding.options, file=self.file)
        return backend

    def for_request(self, request: Request) -> Backend:
        where = (request.model, request.tags.role)
        backend = self._by_request.get(where)
        if backend is None:
            backend = self._by_request[where] = self.get(*where)
        return backend

    def backends(self) -> list[Backend]:
        """Every backend handed out so far (created here or given), each once."""
        seen: dict[int, Backend] = {}
        for b in [*self.overrides.values(), *self._made.values()]:
            seen.setdefault(id(b), b)
        return list(seen.values())

    async def aclose(self) -> None:
        """Close the backends this pool created (given ones belong to the caller)."""
        self._closed = True
        self._by_request = {}
        made, self._made = list(self._made.values()), {}
        for backend in made:
            await backend.aclose()
