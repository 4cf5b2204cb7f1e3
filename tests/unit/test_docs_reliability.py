"""docs/reliability.md names a test for each guarantee: every test it names exists, and so does
every bad-input case it cites (a guarantee backed by a renamed or deleted test would be a claim)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
REFS = sorted(set(re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", PAGE)))
CASES = sorted({name for group in re.findall(r"\(cases? ([^)]*)\)", PAGE) for name in re.findall(r"`([^`]+)`", group)})


def test_the_page_backs_every_guarantee() -> None:
    rows = [line for line in PAGE.splitlines() if line.startswith("| **")]
    assert len(rows) >= 13
    assert all("`tests/" in row for row in rows), [row[:60] for row in rows if "`tests/" not in row]


@pytest.mark.parametrize(("path", "name"), REFS, ids=lambda v: v or "-")
def test_each_named_test_exists(path: str, name: str) -> None:
    source = ROOT / path
    assert source.is_file(), f"docs/reliability.md names {path}, which does not exist"
    if name:
        assert re.search(rf"^def {name}\(", source.read_text(encoding="utf-8"), re.M), f"no {name} in {path}"


@pytest.mark.parametrize("case", CASES)
def test_each_cited_bad_input_case_exists(case: str) -> None:
    table = yaml.safe_load((ROOT / "tests" / "bad_inputs" / "expected.yaml").read_text(encoding="utf-8"))["cases"]
    assert case in table and (ROOT / "tests" / "bad_inputs" / case).is_file()
