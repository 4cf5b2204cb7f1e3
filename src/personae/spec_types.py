"""The resolved spec, in a module that imports no study and not spec.py.

Studies take a ResolvedSpec; spec.py imports the studies (to look a study up by name and check
its options). Keeping the type here lets the studies name it without that import cycle.
`from personae.spec import ResolvedSpec` keeps working: spec.py re-exports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from .backends.pool import Binding
from .persona import Persona

if TYPE_CHECKING:
    from .spec import StudySpec


@dataclass(frozen=True)
class ResolvedSpec:
    """A validated spec with its personas loaded and its study options parsed."""

    spec: StudySpec
    personas: tuple[Persona, ...]
    options: BaseModel
    path: Path | None
    base_dir: Path
    roles: Mapping[str, Binding] = field(default_factory=dict)
    """The roles bound to a model (by `roles:`, an option alias, or the role's own default)."""

    @property
    def name(self) -> str:
        return self.spec.title or (self.path.stem if self.path else self.spec.study)
