"""Errors for fields whose type is a union (`str | int | float`, `str | tuple[str, ...]`) name the
field the user wrote and what it accepts, never pydantic's member tags ('hobbies.str'; issue 8, item 7)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from personae._loading import validation_to_config_error
from personae.items import MCItem
from personae.persona import Persona
from personae.studies.individuation import IndividuationOptions


def _line(model: type[BaseModel], data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        model.model_validate(data)
    return validation_to_config_error(info.value, model, file="f.yaml").one_line()


def test_a_profile_value_that_is_a_list_names_profile_field_and_what_is_allowed() -> None:
    line = _line(Persona, {"id": "a", "name": "A", "description": "d",
                           "attributes": {"profile": {"hobbies": ["chess", "hiking"]}}})
    assert line.startswith("f.yaml: field 'attributes.profile.hobbies': must be text or a number (got a list of 2).")
    assert "hobbies.str" not in line and "go under 'metadata:'" in line


def test_a_one_or_many_option_says_both_forms() -> None:
    line = _line(IndividuationOptions, {"data": 3})
    assert line.startswith("f.yaml: field 'data': must be text or a list (got 3).")


def test_a_bad_item_inside_a_list_member_of_a_union_points_at_the_item() -> None:
    assert _line(IndividuationOptions, {"data": ["a.jsonl", 3]}).startswith("f.yaml: field 'data.1': must be text (got 3).")


def test_two_bad_keys_of_a_mapping_are_not_mistaken_for_a_union() -> None:
    line = _line(MCItem, {"id": "q", "domain": "d", "question": "q?", "choices": ["a", "b"],
                          "human_labels": {"A": "x", "B": "x"}})
    assert line.startswith("f.yaml: field 'human_labels.A': must be a number (got 'x').")
