"""Request.cache_key: everything that changes the output, and nothing else."""

from __future__ import annotations

import pytest

from personae.backends.base import Message, Request, Sampling, Tags

BASE = dict(
    model="fake/test",
    messages=(Message(role="system", content="You are Ada."), Message(role="user", content="Hi?")),
    sampling=Sampling(temperature=0.7, top_p=0.9, max_tokens=64, seed=3, stop=("\n",)),
    replicate=1,
    persona_version=2,
)


def base(**changes: object) -> Request:
    return Request(**{**BASE, **changes})


# The recipe itself (sha256 of the key version, the backend fingerprint and the non-default
# fields), golden keys and stability across processes: tests/unit/test_cache_key_v2.py.


def test_replicates_have_distinct_keys() -> None:
    keys = {base(replicate=r).cache_key() for r in range(20)}
    assert len(keys) == 20


@pytest.mark.parametrize("tags", [
    Tags(persona="pirate"),
    Tags(item="q7"),
    Tags(condition="baseline"),
    Tags(wave=3),
    Tags(persona="a", item="b", condition="c", wave=9, extra={"anything": [1, 2]}),
])
def test_tags_do_not_change_the_key(tags: Tags) -> None:
    assert base(tags=tags).cache_key() == base().cache_key()


CHANGES = {
    "model": {"model": "fake/other"},
    "message content": {"messages": (BASE["messages"][0], Message(role="user", content="Hi!"))},
    "message role": {"messages": (Message(role="user", content="You are Ada."), BASE["messages"][1])},
    "message order": {"messages": tuple(reversed(BASE["messages"]))},
    "extra message": {"messages": (*BASE["messages"], Message(role="assistant", content="Hello"))},
    "temperature": {"sampling": BASE["sampling"].model_copy(update={"temperature": 0.8})},
    "top_p": {"sampling": BASE["sampling"].model_copy(update={"top_p": 0.95})},
    "seed": {"sampling": BASE["sampling"].model_copy(update={"seed": 4})},
    "no seed": {"sampling": BASE["sampling"].model_copy(update={"seed": None})},
    "max_tokens": {"sampling": BASE["sampling"].model_copy(update={"max_tokens": 65})},
    "stop": {"sampling": BASE["sampling"].model_copy(update={"stop": ("\n", "User:")})},
    "persona_version": {"persona_version": 3},
    "no persona_version": {"persona_version": None},
    "json_schema": {"json_schema": {"type": "object"}},
    "grammar": {"grammar": 'root ::= "yes" | "no"'},
    "replicate": {"replicate": 0},
    "kind": {"kind": "score", "continuation": "Hello"},
    "prompt": {"prompt": "Hi?"},
}


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_output_relevant_fields_change_the_key(name: str) -> None:
    assert base(**CHANGES[name]).cache_key() != base().cache_key()


def test_every_change_gives_its_own_key() -> None:
    keys = [base(**c).cache_key() for c in CHANGES.values()]
    assert len(set(keys)) == len(keys)


def test_json_schema_key_ignores_dict_order_but_not_content() -> None:
    a = base(json_schema={"type": "object", "properties": {"x": {"type": "string"}}})
    b = base(json_schema={"properties": {"x": {"type": "string"}}, "type": "object"})
    c = base(json_schema={"type": "object", "properties": {"x": {"type": "integer"}}})
    assert a.cache_key() == b.cache_key()
    assert a.cache_key() != c.cache_key()
