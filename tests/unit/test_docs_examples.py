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


# Every YAML block in the docs and the README is valid: complete specs validate, spec fragments
# validate inside the page's example (or a minimal grid spec), persona blocks as a persona.
# Only a data file the reader brings (a .jsonl/.csv that is not in this repository) may be missing.
DOCS = sorted((ROOT / "docs").rglob("*.md")) + [ROOT / "README.md"]
BLOCKS = [(page, i, block) for page in DOCS for i, block in enumerate(FENCE.findall(page.read_text(encoding="utf-8")))]
MINIMAL = {"study": "grid", "model": "fake/test", "options": {"questions": ["Hi?"]}}


def _tolerable(exc: Exception) -> bool:
    text = str(exc)
    return ("not found" in text or "matches no file" in text) and any(ext in text for ext in (".jsonl", ".csv"))


@pytest.mark.parametrize(("page", "index", "block"), BLOCKS, ids=[f"{p.relative_to(ROOT)}#{i}" for p, i, _ in BLOCKS])
def test_every_yaml_block_in_the_docs_is_valid(page: Path, index: int, block: str,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from personae.errors import ConfigError
    from personae.persona import parse_persona
    from personae.spec import StudySpec, resolve_spec

    monkeypatch.setenv("PERSONAE_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # never contacted
    data = yaml.safe_load(block)
    assert isinstance(data, dict), f"{page.name} block {index} is not a mapping"
    if "id" in data and "description" in data:
        parse_persona(data)
        return
    if "conditions" in data and "measure" in data:  # a replicate experiment file
        from personae.replicate import parse_experiment

        parse_experiment(data, file=f"{page.name} block {index}")
        return
    assert set(data) <= set(StudySpec.model_fields), f"{page.name} block {index}: unknown fields {set(data) - set(StudySpec.model_fields)}"
    example = ROOT / "examples" / f"{page.stem}.yaml"
    if "roles" in data and not example.exists():
        example = ROOT / "examples" / "style.yaml"  # the study with roles
    if "study" not in data:
        base = yaml.safe_load(example.read_text(encoding="utf-8")) if example.exists() else dict(MINIMAL)
        if "options" in data and "options" in base:
            data = {**data, "options": {**base["options"], **data["options"]}}
        data = {**base, **data}
    try:
        resolve_spec(data, path=ROOT / "examples" / "from-docs.yaml")
    except ConfigError as exc:
        if not _tolerable(exc):
            raise
