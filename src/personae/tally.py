"""What a run knows about its results without holding them: counts, tokens, usage, role failures.

A run of a study that analyses as results come (`Study.tally()`, a streaming study) keeps no
Result objects: each is written to the store and results.jsonl, added to the study's tally and to
this one, and dropped. Everything the run itself says about its results afterwards (run.json's
totals and usage, the summary's notes on roles, its status) is read from a `RunTally`, for every
study, so a streaming run and one that holds its results say the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .cost import Usage


@dataclass
class RoleTally:
    """One study role's results: how many, how many failed, by which models, the first error."""

    requests: int = 0
    failed: int = 0
    failed_models: set[str] = field(default_factory=set)
    first_error: str | None = None


@dataclass
class RunTally:
    """Counts of a run's results, added one at a time (`add`) or from a list (`of`)."""

    results: int = 0
    ok: int = 0
    cached: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    roles: dict[str | None, RoleTally] = field(default_factory=dict)
    """Per `tags.role` (None: the model under study)."""
    usage: Usage = field(default_factory=Usage)
    last_error: str | None = None

    @property
    def errors(self) -> int:
        return self.results - self.ok

    def add(self, r: Any) -> None:
        self.results += 1
        self.cached += bool(r.cached)
        gen = r.generation
        if gen is not None:
            self.prompt_tokens += gen.prompt_tokens
            self.completion_tokens += gen.completion_tokens
        role = self.roles.get(r.request.tags.role)
        if role is None:
            role = self.roles[r.request.tags.role] = RoleTally()
        role.requests += 1
        if r.error is None:
            self.ok += 1
        else:
            self.last_error = r.error
            role.failed += 1
            role.failed_models.add(r.request.model)
            if role.first_error is None:
                role.first_error = r.error
        self.usage.add(r)

    def add_all(self, results: Iterable[Any]) -> None:
        for r in results:
            self.add(r)

    @classmethod
    def of(cls, results: Iterable[Any]) -> RunTally:
        tally = cls()
        tally.add_all(results)
        return tally

    def counts(self) -> dict[str, int]:
        """The summary's `counts` block (what `count_results` gives for a list)."""
        return {"requests": self.results, "ok": self.ok, "errors": self.errors, "cached": self.cached}


__all__ = ["RoleTally", "RunTally"]
