"""Shared fixtures for every test: each test gets its own store and no progress bar."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the store at a fresh SQLite file under tmp_path and silence progress bars."""
    path = tmp_path / "store.sqlite"
    monkeypatch.setenv("PERSONAE_STORE", str(path))
    monkeypatch.setenv("PERSONAE_QUIET", "1")
    for var in ("PERSONAE_DEBUG", "PERSONAE_MODEL", "PERSONAE_OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    return path
