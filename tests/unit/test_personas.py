"""Personas: loading from every file shape, rendering with every template, the built-in library."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from personae.errors import ConfigError
from personae.persona import (BUILTIN_TEMPLATES, Persona, builtin_persona, builtin_personas, load_personas,
                              render_persona)

ADA = {
    "id": "ada",
    "name": "Dr. Ada Park",
    "description": "a senior physicist",
    "facts": ["I grew up on a farm.", "My favourite particle is the muon."],
    "style": ["precise", "warm"],
    "attributes": {
        "demographics": {"age": 47, "occupation": "physicist", "location": "Seoul"},
        "expertise_domain": "physics",
        "knowledge_level": "expert",
        "profile": {"openness": 4.5, "favourite_colour": "green"},
    },
}
BOB = {"id": "bob", "name": "Bob", "description": "a retired sailor"}


@pytest.mark.parametrize("name, content", [
    ("one.yaml", yaml.safe_dump(ADA)),
    ("one.json", json.dumps(ADA)),
])
def test_load_single_persona(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    (p,) = load_personas(path)
    assert p.id == "ada" and p.name == "Dr. Ada Park"
    assert p.facts == ("I grew up on a farm.", "My favourite particle is the muon.")
    assert p.attributes.demographics.age == 47
    assert p.attributes.profile == {"openness": 4.5, "favourite_colour": "green"}


@pytest.mark.parametrize("name, content", [
    ("list.yaml", yaml.safe_dump([ADA, BOB])),
    ("wrapped.yaml", yaml.safe_dump({"personas": [ADA, BOB]})),
    ("list.json", json.dumps([ADA, BOB])),
    ("wrapped.json", json.dumps({"personas": [ADA, BOB]})),
    ("many.jsonl", json.dumps(ADA) + "\n\n" + json.dumps(BOB) + "\n"),
])
def test_load_many_personas(tmp_path: Path, name: str, content: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    personas = load_personas(path)
    assert [p.id for p in personas] == ["ada", "bob"]
    assert personas[1] == Persona(**BOB)


def test_single_string_fact_is_one_fact(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({**BOB, "facts": "I love the sea."}))
    assert load_personas(path)[0].facts == ("I love the sea.",)


def test_duplicate_ids_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(yaml.safe_dump([BOB, BOB]))
    with pytest.raises(ConfigError, match="bob"):
        load_personas(path)


def test_unknown_field_is_an_error_not_a_no_op(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump({**BOB, "descripton": "typo"}))
    with pytest.raises(ConfigError):
        load_personas(path)


def test_personas_are_frozen() -> None:
    p = Persona(**ADA)
    with pytest.raises(ValidationError):
        p.name = "Someone else"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        p.attributes.demographics.age = 3  # type: ignore[misc]
    with pytest.raises(AttributeError):
        p.facts.append("x")  # type: ignore[attr-defined]
    library_entry = builtin_persona("pirate-captain")
    with pytest.raises(ValidationError):
        library_entry.version = 99  # type: ignore[misc]
    assert builtin_persona("pirate-captain").version != 99


# ---------------------------------------------------------------- rendering

def test_you_are() -> None:
    text = render_persona(Persona(**ADA), "you-are")
    assert text == ("You are Dr. Ada Park, a senior physicist. I grew up on a farm. "
                    "My favourite particle is the muon. Style: precise; warm.")


def test_take_the_role() -> None:
    text = render_persona(Persona(**ADA), "take-the-role")
    assert text.startswith("Take the role of a senior physicist.")
    assert "staying true to the characteristics" in text
    assert text.endswith("I grew up on a farm. My favourite particle is the muon.")


def test_adopt_identity() -> None:
    text = render_persona(Persona(**BOB), "adopt-identity")
    assert text.startswith("Adopt the identity of a retired sailor.")
    assert "Bob" not in text  # the identity template names the description only


def test_third_person_rewrites_facts() -> None:
    p = Persona(**{**BOB, "facts": ["I am tired.", "my boat is red."]})
    text = render_persona(p, "third-person")
    assert text.startswith("Bob is a retired sailor.")
    assert "they are tired." in text and "their boat is red." in text
    assert " I " not in f" {text} " and "my " not in text
    assert text.endswith("Reply exactly as Bob would.")


def test_interview_has_a_question_and_answer_per_profile_field() -> None:
    text = render_persona(Persona(**ADA), "interview")
    lines = text.splitlines()
    assert len(lines) % 2 == 0
    questions, answers = lines[::2], lines[1::2]
    assert all(q.startswith("Interviewer: ") and a.startswith("Interviewee: ") for q, a in zip(questions, answers))
    pairs = [(q.removeprefix("Interviewer: "), a.removeprefix("Interviewee: ")) for q, a in zip(questions, answers)]
    assert ("What is your age?", "47") in pairs
    assert ("What is your occupation?", "physicist") in pairs
    assert ("What is your openness?", "4.5") in pairs
    assert ("What is your favourite colour?", "green") in pairs
    assert ("Tell me something about yourself.", "I grew up on a farm.") in pairs
    assert len(pairs) == 3 + 2 + 2  # three demographics, two profile fields, two facts
    assert "gender" not in text  # absent fields are not asked


@pytest.mark.parametrize("template", sorted(BUILTIN_TEMPLATES))
def test_every_builtin_template_renders_every_library_persona(template: str) -> None:
    for p in builtin_personas().values():
        text = render_persona(p, template)
        assert text.strip() == text and text
        if template != "interview":
            assert p.description in text


def test_user_template_via_extra_templates() -> None:
    extra = {"card": "[{{ p.id }}] {{ p.name | upper }} ({{ p.attributes.demographics.age }})\n{{ interview }}"}
    text = render_persona(Persona(**ADA), "card", extra)
    first, *rest = text.splitlines()
    assert first == "[ada] DR. ADA PARK (47)"
    assert rest[0] == "Interviewer: What is your age?"


def test_user_template_can_override_a_builtin_name() -> None:
    assert render_persona(Persona(**BOB), "you-are", {"you-are": "Hi, {{ p.name }}."}) == "Hi, Bob."


def test_unknown_template_is_a_config_error_with_a_suggestion() -> None:
    with pytest.raises(ConfigError, match="you-are"):
        render_persona(Persona(**BOB), "you-ar")


def test_template_using_a_missing_field_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        render_persona(Persona(**BOB), "x", {"x": "{{ p.nmae }}"})


# ---------------------------------------------------------------- library

def test_library_has_experts_in_several_domains() -> None:
    experts = [p for p in builtin_personas().values() if p.attributes.knowledge_level == "expert"]
    domains = {p.attributes.expertise_domain for p in experts}
    assert None not in domains
    assert len(domains) >= 3
    assert {"mathematics", "physics", "chemistry"} <= domains


def test_library_has_low_knowledge_personas() -> None:
    lib = builtin_personas()
    assert lib["layperson"].attributes.knowledge_level == "low"
    assert lib["young-child"].attributes.knowledge_level == "low"
    assert lib["toddler"].attributes.knowledge_level == "none"
    assert lib["toddler"].attributes.demographics.age < lib["young-child"].attributes.demographics.age


def test_library_has_identity_personas() -> None:
    lib = builtin_personas()
    politics = {p.attributes.demographics.politics for p in lib.values()} - {None}
    religion = {p.attributes.demographics.religion for p in lib.values()} - {None}
    education = {p.attributes.demographics.education for p in lib.values()} - {None}
    assert {"Democrat", "Republican"} <= politics
    assert len(religion) >= 2 and len(education) >= 2


def test_library_has_characters() -> None:
    lib = builtin_personas()
    for pid in ("pirate-captain", "victorian-detective", "grumpy-farmer"):
        assert lib[pid].facts and lib[pid].style


def test_library_ids_match_and_unknown_id_suggests() -> None:
    lib = builtin_personas()
    assert all(pid == p.id for pid, p in lib.items())
    with pytest.raises(ConfigError, match="pirate-captain"):
        builtin_persona("pirate-captian")
