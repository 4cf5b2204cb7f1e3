"""Studies that need log-probabilities ask the backend whether it can score, at validation time."""

from __future__ import annotations

from typing import Any

import pytest

from personae.errors import ConfigError
from personae.spec import resolve_spec

URL = "http://127.0.0.1:9/v1"  # never contacted: creating a backend opens no connection


def spec(study: str, scoring: str, **options: Any) -> dict[str, Any]:
    return {"study": study, "model": "openai/m", "backend": {"base_url": URL, "scoring": scoring},
            "options": options}


@pytest.mark.parametrize(("study", "options"), [("accuracy", {"mode": "logprob"}), ("individuation", {})])
def test_a_backend_without_scoring_is_refused(study: str, options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="needs a backend that scores text, and openai/m cannot"):
        resolve_spec(spec(study, "none", **options))


@pytest.mark.parametrize(("study", "options"), [("accuracy", {"mode": "logprob"}), ("individuation", {})])
def test_a_backend_with_scoring_is_accepted(study: str, options: dict[str, Any]) -> None:
    assert resolve_spec(spec(study, "prompt_logprobs", **options)).spec.study == study


def test_generate_mode_needs_no_scoring() -> None:
    assert resolve_spec(spec("accuracy", "none", mode="generate")).options.mode == "generate"
