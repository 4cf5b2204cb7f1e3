"""Each study's page shows its example as it is in examples/ (the first YAML block, compared as data)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs" / "studies").glob("*.md"))
FENCE = re.compile(r"```yaml\n(.*?)```", re.S)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.stem)
def test_the_page_shows_the_example_as_it_is(page: Path) -> None:
    example = ROOT / "examples" / f"{page.stem}.yaml"
    assert example.exists(), f"docs/studies/{page.name} has no examples/{example.name}"
    blocks = FENCE.findall(page.read_text(encoding="utf-8"))
    assert blocks, f"{page.name} shows no YAML"
    assert yaml.safe_load(blocks[0]) == yaml.safe_load(example.read_text(encoding="utf-8")), (
        f"the first YAML block of docs/studies/{page.name} differs from examples/{example.name}")
