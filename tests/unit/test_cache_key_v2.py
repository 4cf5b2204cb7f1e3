"""Cache key v2: non-default fields + key version + backend fingerprint, stable forever."""

from __future__ import annotations

import pytest

import hashlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from hypothesis import given, settings, strategies as st
from pydantic import create_model

from personae.backends import create_backend
from personae.backends.base import KEY_VERSION, Message, Request, Sampling
from personae.backends.fake import FakeBackend
from personae.runner import Runner
from personae.store import MIGRATIONS, Store

from .helpers import request, run_requests

REQ = Request(model="fake/test", messages=(Message(role="system", content="You are Ada."),
                                           Message(role="user", content="Hi?")),
              sampling=Sampling(temperature=0.7, max_tokens=64, seed=3), replicate=1, persona_version=2)

# Golden keys: computed once by this recipe and pinned. If one changes, every user's cache is
# invalidated: bump KEY_VERSION on purpose instead, and say so in the changelog.
GOLDEN = {
    "": "2192d06237d62674ca3e3a1c892b784ddc322f9742fd7c2fcdf7e8f5c5c45787",
    "fake:fake/test:hash:-": "53a35ec9b3666771d1cc06b6e4478e5a6c3dd489911413c26a1e4dc15a9d9618",
}


def by_hand(req: Request, fingerprint: str) -> str:
    """The documented recipe, written out independently of the code under test."""
    payload = {"v": 2, "backend": fingerprint, "request": {
        "model": req.model, "messages": [m.model_dump() for m in req.messages],
        "sampling": {"temperature": 0.7, "max_tokens": 64, "seed": 3}, "replicate": 1, "persona_version": 2}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def test_golden_keys() -> None:
    assert KEY_VERSION == 2
    for fingerprint, key in GOLDEN.items():
        assert REQ.cache_key(fingerprint) == key == by_hand(REQ, fingerprint)


@pytest.mark.slow  # make test runs it; the pre-stop check's 60 s does not
def test_keys_are_stable_across_processes_and_hash_seeds() -> None:
    code = ("from personae.backends.base import Message, Request, Sampling\n"
            "r = Request(model='fake/test', messages=(Message(role='system', content='You are Ada.'), "
            "Message(role='user', content='Hi?')), sampling=Sampling(temperature=0.7, max_tokens=64, seed=3), "
            "replicate=1, persona_version=2)\nprint(r.cache_key('fake:fake/test:hash:-'))\n")
    keys = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": seed, "PATH": ""}).stdout.strip() for seed in ("1", "2")}
    assert keys == {GOLDEN["fake:fake/test:hash:-"]}


FIELD_TYPES = {"int": (int, 0), "str": (str | None, None), "bool": (bool, False), "list": (tuple[int, ...], ())}


@settings(max_examples=40, deadline=None)
@given(name=st.from_regex(r"[a-z][a-z_]{2,12}", fullmatch=True).filter(lambda n: n not in Request.model_fields),
       kind=st.sampled_from(sorted(FIELD_TYPES)), text=st.text(max_size=30), replicate=st.integers(0, 50),
       temperature=st.floats(0, 2), fingerprint=st.text(max_size=20))
def test_a_new_optional_field_at_its_default_leaves_every_key_unchanged(
        name: str, kind: str, text: str, replicate: int, temperature: float, fingerprint: str) -> None:
    typ, default = FIELD_TYPES[kind]
    Newer = create_model("Newer", __base__=Request, **{name: (typ, default)})  # type: ignore[call-overload]
    fields: dict[str, Any] = dict(model="fake/test", messages=(Message(role="user", content=text),),
                                  sampling=Sampling(temperature=temperature), replicate=replicate)
    assert Newer(**fields).cache_key(fingerprint) == Request(**fields).cache_key(fingerprint)


def test_the_fingerprint_separates_backends() -> None:
    a, b = FakeBackend("fake/test"), FakeBackend("fake/test", None)
    assert a.fingerprint() == b.fingerprint()
    scripted = create_backend("fake/test", {"script": ["x"]})
    other = create_backend("fake/test", {"script": ["y"]})
    assert len({a.fingerprint(), scripted.fingerprint(), other.fingerprint()}) == 3
    assert REQ.cache_key(a.fingerprint()) != REQ.cache_key(scripted.fingerprint())
    scoring = create_backend("openai/m", {"base_url": "http://127.0.0.1:1/v1", "scoring": "prompt_logprobs"})
    plain = create_backend("openai/m", {"base_url": "http://127.0.0.1:1/v1"})
    assert scoring.fingerprint() != plain.fingerprint()


def test_a_local_model_is_identified_by_its_file_and_adapter(tmp_path: Path) -> None:
    one, two = tmp_path / "a.gguf", tmp_path / "b.gguf"
    one.write_bytes(b"GGUF" + bytes(3 << 20))
    two.write_bytes(b"GGUF" + bytes(3 << 20 - 1) + b"!")  # same size, other tail: another quantisation
    adapter = tmp_path / "lora.gguf"
    adapter.write_bytes(b"GGUF-lora")
    fa = create_backend(f"local/{one}").fingerprint()
    assert fa == create_backend(f"local/{one}").fingerprint()
    assert fa.startswith(f"local:{one.stat().st_size}:")
    two.rename(one)  # another file under the same path
    fb = create_backend(f"local/{one}").fingerprint()
    with_lora = create_backend(f"local/{one}", {"lora": str(adapter)}).fingerprint()
    assert len({fa, fb, with_lora}) == 3 and with_lora.startswith(fb.removesuffix("+kv:f32") + "+lora:")
    f16 = create_backend(f"local/{one}", {"kv_type": "f16"}).fingerprint()
    assert fb.endswith("+kv:f32") and f16 == fb.removesuffix("+kv:f32")  # f16: the keys of before the option


def test_runs_on_two_differently_scripted_fakes_do_not_share_results(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as st:
        yes = create_backend("fake/test", {"script": ["yes"]})
        no = create_backend("fake/test", {"script": ["no"]})
        (r1,), _ = run_requests(yes, st, [request("q")])
        (r2,), _ = run_requests(no, st, [request("q")])
        assert (r1.text, r2.text, r2.cached) == ("yes", "no", False)
        (r3,), _ = run_requests(yes, st, [request("q")])
        assert r3.cached and r3.text == "yes"


def test_a_store_of_the_previous_version_is_migrated_and_its_rows_are_not_reused(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE migrations (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
    conn.executescript(MIGRATIONS[0])
    conn.execute("INSERT INTO migrations VALUES (1, 0)")
    req = request("hello")
    with Store(tmp_path / "other.sqlite") as other:
        key = Runner({"fake/test": FakeBackend()}, other).key_for(req)
    # a v1 row, even one under the very key v2 would use, is never answered from
    conn.execute("INSERT INTO results VALUES (?, 'generate', 'fake/test', '{}', ?, 0)",
                 (key, json.dumps({"text": "stale v1 answer"})))
    conn.commit()
    conn.close()
    with Store(path) as st:
        assert st.schema_version == 2
        assert st.notices and "1 cached results from personae 0.1" in st.notices[0]
        (res,), _ = run_requests(FakeBackend(), st, [req])
        assert not res.cached and res.text != "stale v1 answer"
    with Store(path) as st:
        assert st.notices == []  # said once, when migrating
        (again,), _ = run_requests(FakeBackend(), st, [req])
        assert again.cached and again.text == res.text  # the v2 answer replaced the v1 row


_texts = st.text(max_size=20)
_requests = st.builds(
    Request,
    kind=st.sampled_from(["generate", "score", "embed"]),
    model=st.sampled_from(["fake/test", "local/smollm2-135m"]),
    messages=st.lists(st.builds(Message, role=st.sampled_from(["system", "user", "assistant"]), content=_texts),
                      max_size=3).map(tuple),
    prompt=st.none() | _texts, continuation=st.none() | _texts, per_token=st.booleans(),
    sampling=st.builds(Sampling, temperature=st.sampled_from([0.0, 0, 0.7, 1.0]), top_p=st.sampled_from([1.0, 0.9]),
                       max_tokens=st.sampled_from([128, 16]), seed=st.none() | st.integers(0, 2**31),
                       stop=st.lists(_texts, max_size=2).map(tuple)),
    json_schema=st.none() | st.just({"type": "object", "required": ("a",)}),
    grammar=st.none() | _texts, replicate=st.integers(0, 3), persona_version=st.none() | st.integers(0, 3),
    input=st.none() | _texts,
)


@settings(max_examples=300, deadline=None)
@given(_requests)
def test_key_payload_written_out_equals_pydantics_dump_of_the_non_default_fields(req: Request) -> None:
    # key_payload builds the dict by hand for speed; pydantic's dump is the recipe it must equal
    # (values and key order), so the canonical JSON and every key stay what they were.
    reference = req.model_dump(mode="json", exclude={"tags"}, exclude_defaults=True)
    got = req.key_payload()
    assert got == reference and list(got) == list(reference)
    assert req.key_payload() == reference  # a second call (the message memo) gives the same
