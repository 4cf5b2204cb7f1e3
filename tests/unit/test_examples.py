"""Every example spec in examples/ validates (studies, personas, options) without calling a model."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from personae.cli.main import app
from personae.studies import STUDIES

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.stem)
def test_example_validates(path: Path) -> None:
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert f"study '{path.stem.split('-')[0]}'" in result.output  # accuracy-predictions.yaml: an accuracy spec


def test_every_study_has_an_example() -> None:
    assert {p.stem for p in EXAMPLES.glob("*.yaml")} >= set(STUDIES)
