"""Studies by name. Each module registers one Study subclass."""

from __future__ import annotations

import importlib

from .._loading import suggest
from ..errors import ConfigError
from ._cells import Cell, Condition, cells
from .base import Study, Summary

__all__ = ["Cell", "Condition", "Study", "Summary", "cells", "get_study", "STUDIES"]

# name -> module that defines it (imported lazily)
STUDIES: dict[str, str] = {
    "grid": "personae.studies.grid",
    "dialogue": "personae.studies.dialogue",
    "accuracy": "personae.studies.accuracy",
    "variance": "personae.studies.variance",
    "individuation": "personae.studies.individuation",
    "style": "personae.studies.style",
    "consistency": "personae.studies.consistency",
    "listener": "personae.studies.listener",
    "replicate": "personae.studies.replicate",
    "bias": "personae.studies.bias",
}


def get_study(name: str, *, file: str | None = None, line: int | None = None) -> type[Study]:
    if name not in STUDIES:
        raise ConfigError(f"no study '{name}'.{suggest(name, STUDIES)}", file=file, line=line, field="study",
                          fix=f"use one of {', '.join(sorted(STUDIES))}.")
    module = importlib.import_module(STUDIES[name])
    return module.STUDY
