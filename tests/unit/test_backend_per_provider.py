"""One spec, models behind different providers: `backend:` keyed by provider."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from personae.errors import ConfigError
from personae.spec import backend_options_for, load_spec


def write(tmp_path: Path, backend: dict) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({"study": "grid", "model": ["fake/a", "openai/m"], "backend": backend,
                                    "options": {"questions": ["Hi?"]}}))
    return path


def test_each_model_gets_its_providers_block(tmp_path: Path) -> None:
    resolved = load_spec(write(tmp_path, {"fake": {"responder": "echo"},
                                          "openai": {"base_url": "http://127.0.0.1:1/v1"}}))
    assert backend_options_for(resolved.spec, "fake/a") == {"responder": "echo"}
    assert backend_options_for(resolved.spec, "openai/m") == {"base_url": "http://127.0.0.1:1/v1"}


def test_a_shared_block_with_one_providers_option_fails_for_the_other(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="base_url"):
        load_spec(write(tmp_path, {"base_url": "http://127.0.0.1:1/v1"}))  # fake/ has no base_url


def test_a_typo_inside_a_provider_block_names_the_path_and_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_spec(write(tmp_path, {"fake": {"responder": "echo"}, "openai": {"base_ur": "http://127.0.0.1:1/v1"}}))
    msg = str(err.value)
    assert "backend.openai.base_ur" in msg and "Did you mean 'base_url'" in msg and "spec.yaml:" in msg
