"""Roles: the models a study uses besides the one under study (a judge, a partner, an embedder...).

A study declares its roles (`Study.roles`); a spec binds them in `roles:`

    model: local/smollm2-135m
    roles:
      judge: {model: openai/qwen2.5-7b, backend: {base_url: http://127.0.0.1:8000/v1}}

An unbound role is played by the model under study (the report says that a model judging itself
is weak evidence). Every role's call is a normal request (cached, retried, counted) whose tags
carry the role, so a table of answers never mixes in verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


@dataclass(frozen=True)
class RoleDecl:
    """A role a study uses."""

    name: str
    """Name in the spec's `roles:` block and in the results' `role` tag."""
    purpose: str
    """What it does, shown by `personae validate` and in run.json."""
    needs_scoring: bool = False
    """The bound backend must score text (log-probabilities)."""
    kind: str = "generate"
    """'generate' for a model that answers, 'embed' for an embedder."""
    default: str | None = None
    """Model id used when the spec binds nothing (None: the model under study)."""
    self_note: str | None = None
    """The summary's note when the model under study plays this role ('{role}' and '{purpose}' are
    filled in); None: the note for a model judging itself."""


class RoleSpec(BaseModel):
    """One binding in the spec's `roles:` block."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: str
    """Model id that plays the role, e.g. openai/qwen2.5-7b or local/PATH.gguf."""
    backend: dict[str, Any] = Field(default_factory=dict)
    """Backend options for it (default: the spec's `backend:` options for that provider)."""

    @model_validator(mode="before")
    @classmethod
    def _model_only(cls, value: Any) -> Any:
        return {"model": value} if isinstance(value, str) else value


WEAK_SELF_JUDGE = ("The {role} ({purpose}) is the model under study: a model judging its own answers is weak "
                   "evidence. Bind roles.{role} to a stronger model.")
