"""The generic Judge: schema, requests, parsing, collection, agreement (fake backend only)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from enum import Enum
from typing import Literal

import krippendorff
import numpy as np
import pytest
from pydantic import BaseModel, ConfigDict, Field
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa

from personae.backends.base import Generation, Request, Tags
from personae.backends.fake import FakeBackend, FakeOptions, register_responder
from personae.errors import ConfigError
from personae.judge import Judge, JudgedSet, JudgeOptions
from personae.runner import Result
from personae.store import Store

from .helpers import MODEL, run_requests


class Stance(str, Enum):
    AGREE = "agree"
    DISAGREE = "disagree"
    NEUTRAL = "neutral"


class Verdict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    stance: Stance
    """The answer's stance."""
    score: int = Field(ge=1, le=5, description="how strongly")
    """1 (weak) to 5 (strong)."""
    cited: list[int] = Field(default_factory=list)
    """Numbers of the sentences that show it."""
    certainty: float = 0.5
    """The judge's own certainty."""
    reason: str = ""
    """Free text."""


JUDGE = Judge(Verdict, "Judge the stance of the answer.", repeats=3)
TAGS = Tags(item="q1", persona="p1", condition="persona", extra={"judged": "k1"})


def verdict_json(stance: str, score: int, certainty: float = 0.5) -> str:
    return json.dumps({"stance": stance, "score": score, "cited": [1], "certainty": certainty, "reason": "r"})


def result(text: str | None, *, item: str = "q1", replicate: int = 0, error: str | None = None,
           role: str = "judge") -> Result:
    request = JUDGE.requests(MODEL, f"answer to {item}", seed=0, tags=Tags(item=item))[0]
    request = request.model_copy(update={"replicate": replicate, "tags": Tags(item=item, role=role)})
    generation = None if error is not None else Generation(text=text or "")
    return Result(request, request.cache_key(), generation=generation, error=error)


def results_from(table: Sequence[Sequence[str | None]]) -> list[Result]:
    """One item per row, one replicate per column."""
    return [result(text, item=f"q{i}", replicate=k) for i, row in enumerate(table) for k, text in enumerate(row)]


# --- schema and prompt ----------------------------------------------------------------------------


def test_schema_inlines_the_enum_closes_the_object_and_requires_every_field() -> None:
    schema = JUDGE.schema()
    assert "$defs" not in schema and "$ref" not in json.dumps(schema) and "default" not in json.dumps(schema)
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["stance", "score", "cited", "certainty", "reason"]
    props = schema["properties"]
    assert props["stance"]["enum"] == ["agree", "disagree", "neutral"] and props["stance"]["type"] == "string"
    assert (props["score"]["type"], props["score"]["minimum"], props["score"]["maximum"]) == ("integer", 1, 5)
    assert props["cited"] == {"type": "array", "items": {"type": "integer"}, "title": "Cited"}


def test_nested_models_are_inlined_and_closed_too() -> None:
    class Part(BaseModel):
        ok: bool

    class Twice(BaseModel):
        first: Part
        second: Part | None = None

    schema = Judge(Twice, "x").schema()
    assert "$ref" not in json.dumps(schema) and "$defs" not in schema
    assert schema["properties"]["first"]["additionalProperties"] is False
    assert schema["properties"]["first"]["required"] == ["ok"]
    assert schema["required"] == ["first", "second"]


def test_the_schema_is_accepted_by_llama_cpp_json_schema_grammar() -> None:
    grammar = pytest.importorskip("llama_cpp.llama_grammar")
    gbnf = grammar.json_schema_to_gbnf(json.dumps(JUDGE.schema()))
    assert "root ::=" in gbnf and '\\"agree\\"' in gbnf


def test_a_recursive_verdict_is_refused_when_the_judge_is_made() -> None:
    class Node(BaseModel):
        child: Node | None = None

    with pytest.raises(ConfigError, match="recursive.*fixed depth"):
        Judge(Node, "x")


@pytest.mark.parametrize("bad, match", [
    ({"repeats": 0}, "repeats must be an int from 1 to 20"),
    ({"temperature": -1.0}, "temperature"),
    ({"max_tokens": 2}, "max_tokens"),
    ({"role": " "}, "role is empty"),
])
def test_bad_judge_options_are_config_errors_with_a_fix(bad: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=f"{match}.*Fix:"):
        Judge(Verdict, "x", **bad)  # type: ignore[arg-type]


def test_a_verdict_that_is_not_a_pydantic_model_is_refused() -> None:
    with pytest.raises(ConfigError, match="pydantic model class.*Fix: define"):
        Judge(dict, "x")  # type: ignore[type-var]


def test_system_message_states_the_instruction_and_every_field() -> None:
    system = JUDGE.system_message()
    assert system.startswith("Judge the stance of the answer.")
    assert '- "stance": one of "agree", "disagree", "neutral"' in system
    assert '- "score": an integer from 1 to 5 (how strongly)' in system
    assert '- "cited": a list; each item: an integer' in system
    assert '- "certainty": a number' in system and '- "reason": a string' in system


def test_field_kinds_decide_the_statistic() -> None:
    class Kinds(BaseModel):
        flag: bool
        label: Literal["a", "b"]
        level: Literal[1, 2, 3]
        bounded: int = Field(ge=0, le=10)
        count: int = Field(ge=0)
        share: float
        text: str
        items: list[int]

    kinds = {f.name: (f.kind, f.categories) for f in Judge(Kinds, "x").fields}
    assert kinds == {"flag": ("categorical", (False, True)), "label": ("categorical", ("a", "b")),
                     "level": ("ordinal", (1, 2, 3)), "bounded": ("ordinal", ()), "count": ("interval", ()),
                     "share": ("interval", ()), "text": ("text", ()), "items": ("other", ())}
    assert {f.name: f.kind for f in JUDGE.fields}["stance"] == "categorical"


# --- requests and parsing -------------------------------------------------------------------------


def test_k_requests_have_distinct_replicates_and_seeds_and_the_role_tag() -> None:
    reqs = JUDGE.requests("fake/judge", "The answer.", seed=10, tags=TAGS)
    assert [r.replicate for r in reqs] == [0, 1, 2]
    assert [r.sampling.seed for r in reqs] == [10, 11, 12]
    assert len({r.cache_key() for r in reqs}) == 3  # repeats never collapse in the cache
    for r in reqs:
        assert r.model == "fake/judge" and r.json_schema == JUDGE.schema()
        assert r.tags == TAGS.model_copy(update={"role": "judge"})
        assert [m.role for m in r.messages] == ["system", "user"] and r.messages[1].content == "The answer."
        assert r.messages[0].content == JUDGE.system_message()
        assert (r.sampling.temperature, r.sampling.max_tokens) == (0.7, 256)


def test_from_options_keeps_the_study_options() -> None:
    judge = Judge.from_options(Verdict, "x", JudgeOptions(model="fake/j", repeats=2, temperature=0.3,
                                                           max_tokens=64), role="stance-judge")
    assert (judge.repeats, judge.temperature, judge.max_tokens, judge.role) == (2, 0.3, 64, "stance-judge")


GOOD = Verdict(stance=Stance.AGREE, score=4, cited=[1], certainty=0.5, reason="r")


@pytest.mark.parametrize("text", [
    verdict_json("agree", 4),
    f"```json\n{verdict_json('agree', 4)}\n```",
    f"Here is my verdict: {verdict_json('agree', 4)} Hope it helps.",
])
def test_parse_accepts_json_fenced_or_with_text_around(text: str) -> None:
    assert JUDGE.parse(text) == (GOOD, None)


@pytest.mark.parametrize("text, reason", [
    ('{"stance": "agree", "score": 4, "cit', "not valid JSON.*raise max_tokens"),
    ("{stance: agree}", "not valid JSON"),
    ("I agree.", "no JSON object"),
    ("", "empty reply"),
    (None, "empty reply"),
    (verdict_json("agree", 7), "does not fit Verdict: score: Input should be less than or equal to 5"),
    (verdict_json("maybe", 3), "does not fit Verdict: stance: Input should be 'agree', 'disagree' or 'neutral'"),
    ('{"stance": "agree"}', "score: Field required"),
    ('{"stance": "agree", "score": 1, "extra": 1}', "extra: Extra inputs are not permitted"),
    (f"{verdict_json('agree', 4)} or {verdict_json('disagree', 2)}", "more than one JSON object"),
])
def test_parse_gives_a_reason_instead_of_a_verdict(text: str | None, reason: str) -> None:
    verdict, why = JUDGE.parse(text)
    assert verdict is None and why is not None
    assert re.search(reason, why), why


# --- collect ----------------------------------------------------------------------------------------


def test_collect_separates_request_errors_from_parse_failures() -> None:
    results = [result(verdict_json("agree", 4), item="a", replicate=k) for k in range(3)] + [
        result(verdict_json("agree", 4), item="b", replicate=0),
        result("not json", item="b", replicate=1),
        result(None, item="b", replicate=2, error="HTTP 500: boom"),
        result(verdict_json("agree", 4), item="a", replicate=0, role="partner"),  # another role: left out
    ]
    judged = JUDGE.collect(results)
    a, b = judged.items
    assert (a.key[0], b.key[0]) == ("a", "b") and a.verdicts == (GOOD, GOOD, GOOD)
    assert b.replicates == (0, 1) and b.verdicts == (GOOD, None)
    assert [(f.replicate, f.text) for f in b.failures] == [(1, "not json")]
    assert "no JSON object" in b.failures[0].reason
    assert b.request_errors == ("HTTP 500: boom",)
    assert judged.counts() == {"items": 2, "complete_items": 1, "verdicts": 4, "parse_failures": 1,
                               "request_errors": 1}
    assert judged.complete() == [a]


def test_collect_refuses_a_key_that_merges_items() -> None:
    results = [result(verdict_json("agree", 4), item=item) for item in ("a", "b")]
    with pytest.raises(ValueError, match="replicate 0 2 times.*key="):
        JUDGE.collect(results, key=lambda request: "everything")


# --- agreement against independent references ----------------------------------------------------

STANCES = [("agree", "agree", "agree"), ("agree", "disagree", "agree"), ("neutral", "neutral", "neutral"),
           ("disagree", "disagree", "neutral"), ("agree", "agree", "neutral"), ("disagree", "disagree", "disagree"),
           ("neutral", "agree", "neutral"), ("agree", "agree", "agree")]
SCORES = [(4, 4, 5), (2, 3, 2), (3, 3, 3), (1, 2, 1), (5, 5, 4), (1, 1, 1), (3, 2, 3), (5, 4, 5)]
CERTAINTY = [(0.9, 0.8, 0.9), (0.4, 0.5, 0.3), (0.6, 0.6, 0.7), (0.2, 0.3, 0.2), (0.9, 0.7, 0.8),
             (0.1, 0.2, 0.1), (0.5, 0.5, 0.4), (0.8, 0.9, 0.9)]
BROKEN = (1, 2)  # item 1, replicate 2 does not parse


def judged_table() -> JudgedSet[Verdict]:
    rows = [[verdict_json(s, n, c) for s, n, c in zip(*cells)] for cells in zip(STANCES, SCORES, CERTAINTY)]
    rows[BROKEN[0]][BROKEN[1]] = '{"stance": "agree", "score": 9}'
    return JUDGE.collect(results_from(rows))


def test_agreement_matches_statsmodels_fleiss_kappa_and_the_krippendorff_package() -> None:
    out = JUDGE.agreement(judged_table())
    assert set(out) == {"stance", "score", "cited", "certainty", "reason"}
    # Reference: statsmodels.stats.inter_rater.fleiss_kappa over the items whose 3 verdicts parsed.
    complete = [s for i, s in enumerate(STANCES) if i != BROKEN[0]]
    table, _ = aggregate_raters(np.array(complete))
    stance = out["stance"]
    assert stance.kind == "categorical" and stance.statistic is not None
    assert stance.statistic.estimate == pytest.approx(sm_fleiss_kappa(table, method="fleiss"), abs=1e-12)
    assert stance.unanimous_share == pytest.approx(np.mean([len(set(s)) == 1 for s in complete]))
    # Reference: krippendorff.alpha (raters x units), every verdict, the broken one missing.
    for name, values, level in (("score", SCORES, "ordinal"), ("certainty", CERTAINTY, "interval")):
        data = np.array(values, dtype=float)
        data[BROKEN] = np.nan
        reference = krippendorff.alpha(reliability_data=data.T, level_of_measurement=level)
        field = out[name]
        assert field.kind == level and field.statistic is not None
        assert field.statistic.estimate == pytest.approx(reference, abs=1e-12)
    assert out["score"].unanimous_share == pytest.approx(2 / 7) and out["certainty"].unanimous_share is None
    assert out["cited"].statistic is None and "list or object" in out["cited"].note
    assert out["reason"].statistic is None and "free text" in out["reason"].note
    assert out["stance"].counts == {"items": 8, "complete_items": 7, "verdicts": 23, "parse_failures": 1,
                                    "request_errors": 0}
    row = out["score"].as_dict()
    assert row["parse_failures"] == 1 and row["statistic"]["method"] == "Krippendorff's alpha (ordinal)"


def test_agreement_with_a_bootstrap_ci_is_seeded() -> None:
    a = JUDGE.agreement(judged_table(), n_resamples=200, seed=1)["score"].statistic
    b = JUDGE.agreement(judged_table(), n_resamples=200, seed=1)["score"].statistic
    assert a is not None and b is not None and a.ci_low == b.ci_low and a.ci_low < a.estimate


def test_one_verdict_per_item_measures_no_agreement() -> None:
    judge = Judge(Verdict, "x")
    out = judge.agreement(judge.collect(results_from([[verdict_json("agree", 3)], [verdict_json("neutral", 2)]])))
    assert all(f.statistic is None for f in out.values())
    assert "set repeats >= 2" in out["stance"].note and out["stance"].counts["items"] == 2


def test_a_judge_that_never_changes_its_verdict_gets_a_note_not_a_number() -> None:
    judged = JUDGE.collect(results_from([[verdict_json("agree", 3)] * 3] * 4))
    out = JUDGE.agreement(judged)
    assert out["stance"].statistic is not None and np.isnan(out["stance"].statistic.estimate)
    assert "one category" in out["stance"].note and out["stance"].unanimous_share == 1.0
    assert "every pairable value is 3" in out["score"].note


def test_a_self_contradicting_judge_is_flagged() -> None:
    judged = JUDGE.collect(results_from([[verdict_json(s, 3) for s in ("agree", "disagree", "neutral")]] * 4))
    assert "disagrees with itself" in JUDGE.agreement(judged)["stance"].note


def test_no_parsed_verdict_is_a_note() -> None:
    out = JUDGE.agreement(JUDGE.collect(results_from([["junk"] * 3] * 2)))
    assert out["stance"].statistic is None and "no item has all its verdicts parsed" in out["stance"].note
    assert out["score"].statistic is None and "at least one unit with two or more values" in out["score"].note


def test_aggregate_takes_the_mode_and_the_median() -> None:
    judged = JUDGE.collect(results_from([[verdict_json("agree", 2, 0.2), verdict_json("neutral", 5, 0.9),
                                          verdict_json("neutral", 4, 0.4), verdict_json("agree", 1, 0.3)],
                                         ["junk"]]))
    assert JUDGE.aggregate(judged.items[0]) == {"stance": "agree", "score": 2,
                                                "cited": [1], "certainty": 0.35, "reason": "r"}
    assert JUDGE.aggregate(judged.items[1]) is None


# --- end to end through the runner and the fake backend ----------------------------------------


def run(backend: FakeBackend, requests: list[Request]) -> list[Result]:
    """The one place this file uses the runner (its constructor is changing)."""
    with Store() as store:
        results, _ = run_requests(backend, store, requests)
    return results


def fake_judge(request: Request) -> str:
    """Item i's verdicts: scores from SCORES[i], a fenced reply for replicate 1 of item 0, junk for item 3."""
    i = int(request.last_user().split()[-1])
    k = request.replicate
    if i == 3 and k == 0:
        return "I cannot judge this."
    text = verdict_json(STANCES[i][k], SCORES[i][k], CERTAINTY[i][k])
    return f"```json\n{text}\n```" if (i, k) == (0, 1) else text


register_responder("test-judge", fake_judge)


def test_end_to_end_through_the_runner_and_the_fake_backend() -> None:
    backend = FakeBackend("fake/judge", FakeOptions(responder="test-judge", fail_when="REFUSE"))
    requests = [r for i in range(6) for r in JUDGE.requests(
        "fake/judge", f"{'REFUSE ' if i == 5 else ''}answer {i}", seed=100 * i, tags=Tags(item=f"q{i}"))]
    judged = JUDGE.collect(run(backend, requests))
    assert [r.sampling.seed for r in backend.history if r.tags.item == "q2"] == [200, 201, 202]
    assert judged.counts() == {"items": 6, "complete_items": 4, "verdicts": 14, "parse_failures": 1,
                               "request_errors": 3}
    assert judged.items[0].verdicts[1] is not None  # the fenced reply parsed
    assert judged.items[5].verdicts == () and len(judged.items[5].request_errors) == 3
    out = JUDGE.agreement(judged)
    complete = [STANCES[i] for i in (0, 1, 2, 4)]
    table, _ = aggregate_raters(np.array(complete))
    assert out["stance"].statistic is not None
    assert out["stance"].statistic.estimate == pytest.approx(sm_fleiss_kappa(table, method="fleiss"))
    scores = np.array(SCORES[:6], dtype=float)
    scores[3, 0] = np.nan
    scores[5, :] = np.nan
    reference = krippendorff.alpha(reliability_data=scores.T, level_of_measurement="ordinal")
    assert out["score"].statistic is not None and out["score"].statistic.estimate == pytest.approx(reference)
    assert out["score"].counts["request_errors"] == 3


def test_a_reply_nested_thousands_deep_is_a_parse_failure_not_a_crash() -> None:
    """Issue 8: deep nesting must never raise RecursionError (here from a model's reply)."""
    from personae.parsing import parse_json_field

    deep = '{"score": ' + "[" * 50_000 + "]" * 50_000 + "}"
    assert parse_json_field(deep, "score") is None
    from personae._verdict import one_json_object

    text, reason = one_json_object(deep)
    assert text is None and "nested too deep" in (reason or "")
