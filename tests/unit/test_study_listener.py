"""The listener study on the fake backend: S1 finds the reply only the true persona makes likely.

A scripted scorer (per word, the fake backend splits a score evenly over words):
- the contradicting reply is generic: -1.0 per word under every persona, so S0 ranks it first;
- the entailed reply is likely only under its own persona: -1.5 per word there, -6 under others;
- the neutral reply: -3 per word everywhere.
By hand (alpha 8, beta 1, 2 distractors): S1(contradict) = 8 log(1/3) - 1 = -9.79 per token, and
S1(entail) > 8 log(e^-1.5 / (e^-1.5 + 2 e^-6)) - 1.5 = -1.59, so S1 picks the entailed reply,
which S0 ranked second: Contradict@1 1 -> 0, Hits@1 and Entail@1 0 -> 1.
"""

from __future__ import annotations

import asyncio
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from personae.api import run_study
from personae.backends.base import Message, Request
from personae.backends.fake import FakeBackend
from personae.dialogue import read_dialogues
from personae.embed import get_embedder
from personae.errors import ConfigError
from personae.listener.analysis import verdict_for
from personae.listener.distractors import choose_distractors
from personae.listener.ranking import rank_replies, rank_scores
from personae.listener.ranking_set import load_ranking_set
from personae.spec import resolve_spec

from .helpers import FAST_RETRY

DATA = Path(__file__).resolve().parents[1] / "data" / "dialogues"
N_ITEMS = 4


def _items(n: int = N_ITEMS) -> list[dict[str, Any]]:
    return [{"id": f"p{i}", "persona": [f"I am person number {i}.", "I have a secret."],
             "context": [f"Tell me about yourself, friend {i}."],
             "candidates": {"entail": [f"Entailed reply of {i} here."],
                            "contradict": [f"Generic contradiction {i}."],
                            "neutral": [f"A neutral line {i} said slowly."]}} for i in range(n)]


def _set_file(tmp_path: Path, items: list[dict[str, Any]] | None = None) -> Path:
    path = tmp_path / "set.yaml"
    path.write_text(yaml.safe_dump({"items": items if items is not None else _items()}), encoding="utf-8")
    return path


def scorer(request: Request) -> float:
    who = int(re.search(r"person number (\d+)", request.messages[0].content).group(1))  # type: ignore[union-attr]
    text = request.continuation or ""
    words = len(text.split())
    if text.startswith("Entailed"):
        own = int(re.search(r"of (\d+)", text).group(1))  # type: ignore[union-attr]
        return words * (-1.5 if own == who else -6.0)
    if text.startswith("Generic"):
        return words * -1.0
    return words * -3.0


def _spec(tmp_path: Path, **options: Any) -> dict[str, Any]:
    return {"study": "listener", "model": "fake/x", "seed": 4, "base_dir": str(tmp_path),
            "concurrency": {"requests": 8, "retry": dict(FAST_RETRY)},
            "options": {"set": str(_set_file(tmp_path)), "n_bootstrap": 1000, **options}}


def _run(data: dict[str, Any], fake: FakeBackend | None = None) -> Any:
    backend = fake or FakeBackend("fake/x", scorer=scorer)
    data = {k: v for k, v in data.items() if k != "base_dir"}
    return run_study(resolve_spec(data), backends={"fake/x": backend}), backend


def _rows(summary: Any) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["source"], r["metric"]): r for r in summary.table}


def test_s1_picks_the_reply_only_the_true_persona_makes_likely(tmp_path: Path) -> None:
    run, backend = _run(_spec(tmp_path))
    rows = _rows(run.summary)
    c, h, e = rows[("set", "Contradict@1")], rows[("set", "Hits@1")], rows[("set", "Entail@1")]
    assert (c["S0"], c["S1"], c["diff"], c["diff_ci"]) == (1.0, 0.0, -1.0, [-1.0, -1.0])
    assert (h["S0"], h["S1"], h["diff"]) == (0.0, 1.0, 1.0) and (e["S0"], e["S1"]) == (0.0, 1.0)
    assert all(r["items"] == N_ITEMS for r in rows.values())
    # 3 candidates x (the true persona + 2 distractors) per item, each scored per token
    assert len(backend.history) == N_ITEMS * 3 * 3 and all(r.per_token and r.kind == "score" for r in backend.history)
    # every world's system prompt holds one persona; the true one is among them for every item
    for i in range(N_ITEMS):
        systems = {r.messages[0].content for r in backend.history if r.tags.item == f"p{i}"}
        assert len(systems) == 3 and f"Your persona: I am person number {i}. I have a secret." in systems
    assert "S1 lowers Contradict@1 (fake/x, set; better)" in run.summary.verdict
    assert "S1 raises Hits@1 (fake/x, set; better)" in run.summary.verdict
    compute = run.summary.stats["compute"]["fake/x, set"]
    assert compute["score_requests_per_item"] == {"S0": 3.0, "S1": 9.0} and compute["request_ratio"] == 3.0
    diag = run.summary.stats["diagnostics"]["fake/x, set"]
    assert diag["changed_pick"] == 1.0 and diag["p_true_by_label"]["contradict"] == pytest.approx(1 / 3, abs=1e-3)
    p = math.exp(-1.5 * 4) / (math.exp(-1.5 * 4) + 2 * math.exp(-6.0 * 4))  # 4 words of the entailed reply
    assert diag["p_true_by_label"]["entail"] == pytest.approx(p, abs=1e-3)


def test_rerun_makes_no_calls_and_gives_the_same_summary(tmp_path: Path) -> None:
    store = {"PERSONAE_STORE": str(tmp_path / "store.sqlite")}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in store.items():
            mp.setenv(k, v)
        first, _ = _run(_spec(tmp_path))
        second, backend = _run(_spec(tmp_path))
    assert len(backend.history) == 0 and second.summary.table == first.summary.table
    assert second.summary.verdict == first.summary.verdict


def test_alpha_zero_ranks_as_s0(tmp_path: Path) -> None:
    run, _ = _run(_spec(tmp_path, alpha=0))
    c = _rows(run.summary)[("set", "Contradict@1")]
    assert (c["S0"], c["S1"], c["diff"]) == (1.0, 1.0, 0.0)
    assert "S1 does not change Contradict@1 distinguishably" in run.summary.verdict


def test_a_unit_with_a_failed_request_leaves_the_comparison_and_the_verdict_says_so(tmp_path: Path) -> None:
    fake = FakeBackend("fake/x", scorer=scorer)
    fake.options = fake.options.model_copy(update={"fail_when": "friend 3."})
    run, _ = _run(_spec(tmp_path), fake)
    (pairing,) = run.summary.stats["pairing"]
    assert pairing["units"] == N_ITEMS and pairing["paired"] == N_ITEMS - 1 and pairing["dropped"] == {"S0": 1, "S1": 1}
    assert run.summary.verdict.startswith("Failed requests broke the pairing")
    assert all(r["items"] == N_ITEMS - 1 for r in run.summary.table)
    assert run.summary.counts["errors"] == 9


def test_dialogue_ranking_hits_at_1(tmp_path: Path) -> None:
    path = DATA / "personachat_self.txt"
    dialogues = read_dialogues(path)
    owner = {x.text: d.speakers[0].sheet for d in dialogues for x in d.lines_of("self")}
    said_in = {x.text: d.id for d in dialogues for x in d.lines}

    def dialogue_scorer(request: Request) -> float:
        """The true line: likely only under its own persona; other dialogues' lines: generic."""
        sheet = request.messages[0].content.removeprefix("Your persona: ")
        text = request.continuation or ""
        n = len(text.split())
        if said_in[text] == said_in[request.last_user()]:  # the unit's true line
            return n * (-1.5 if owner[text] == sheet else -6.0)
        return n * -1.0

    data = _spec(tmp_path, set=None, dialogues=[str(path)], dialogue_candidates=2)
    run, backend = _run(data, FakeBackend("fake/x", scorer=dialogue_scorer))
    (row,) = run.summary.table
    assert row["source"] == "dialogues" and row["metric"] == "Hits@1"
    assert row["items"] == 4  # the persona speaker's lines with a partner's line before them (3 + 1 of 2)
    # S0 prefers the other dialogues' generic lines (-1.0 per word); S1 the line only its persona makes likely
    assert (row["S0"], row["S1"]) == (0.0, 1.0)
    for r in backend.history:
        assert r.messages[-1].role == "user" and r.messages[1].role == "user"


def test_nearest_distractors_come_from_the_embeddings(tmp_path: Path) -> None:
    data = {**_spec(tmp_path, distractors={"k": 1, "choose": "nearest"}), "roles": {"embedder": "embed/hash"}}
    run, backend = _run(data)
    sheets = [i.sheet for i in load_ranking_set(_set_file(tmp_path))]
    vectors = get_embedder("hash").encode(sheets)
    for i, sheet in enumerate(sheets):
        systems = {r.messages[0].content.removeprefix("Your persona: ") for r in backend.history if r.tags.item == f"p{i}"}
        (nearest,) = choose_distractors(i, len(sheets), 1, mode="nearest", vectors=vectors)
        assert systems == {sheet, sheets[nearest]}
    assert run.summary.counts["requests"] == len(sheets) + N_ITEMS * 3 * 2  # the embed wave, then the scores


def test_limit_and_the_builtin_set(tmp_path: Path) -> None:
    data = _spec(tmp_path, set="builtin", limit=3)
    run, backend = _run(data, FakeBackend("fake/x"))
    items = load_ranking_set("builtin")[:3]
    assert {r.tags.item for r in backend.history} == {i.id for i in items}
    assert len(backend.history) == 3 * sum(len(i.candidates) for i in items)


# ---------------------------------------------------------------- the built-in set
def test_the_builtin_set_is_big_and_varied() -> None:
    items = load_ranking_set("builtin")
    assert len(items) >= 60 and len({i.sheet for i in items}) == len(items)
    for item in items:
        labels = [c.label for c in item.candidates]
        assert 3 <= len(item.persona) <= 5 and 1 <= len(item.context) <= 3
        assert 1 <= labels.count("entail") <= 2 and 1 <= labels.count("contradict") <= 2
        assert 1 <= labels.count("neutral") <= 3 and sum(c.gold for c in item.candidates) == 1
    first = [i.candidates[0].label for i in items]
    assert len(set(first)) == 3  # the order is shuffled: no label always comes first


# ---------------------------------------------------------------- errors that teach
@pytest.mark.parametrize(("items", "message"), [
    ([{**_items()[0], "candiates": {}}], "candiates"),
    ([{**_items()[0], "candidates": {"entail": ["x."], "contradict": []}}, _items()[1]], "at least 1"),
    ([_items()[0], {**_items()[1], "id": "p0"}], "item id 'p0' appears more than once"),
    ([{**_items()[0], "candidates": {"entail": ["same."], "contradict": ["same."]}}, _items()[1]], "more than once"),
    ([_items()[0]], "one persona"),
])
def test_bad_sets_are_refused_with_a_fix(tmp_path: Path, items: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as exc:
        load_ranking_set(_set_file(tmp_path, items))
    assert "set.yaml" in str(exc.value.file) and "Fix:" in str(exc.value)


def test_a_missing_or_jsonl_set_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found.*Fix:"):
        load_ranking_set("nope.yaml", base_dir=tmp_path)
    (tmp_path / "set.jsonl").write_text("{}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not JSON lines"):
        load_ranking_set(tmp_path / "set.jsonl")


@pytest.mark.parametrize(("options", "message"), [
    ({"set": None}, "nothing to rank"),
    ({"set": None, "generation": True, "dialogues": ["d.txt"]}, "generation mode answers the set's prompts"),
    ({"system": "You are someone."}, "persona"),
    ({"distractors": {"k": 2, "choose": "closest"}}, "closest"),
])
def test_bad_options_are_refused(tmp_path: Path, options: dict[str, Any], message: str) -> None:
    data = {k: v for k, v in _spec(tmp_path, **options).items() if k != "base_dir"}
    with pytest.raises(ConfigError, match=message):
        resolve_spec(data)


# ---------------------------------------------------------------- ranking mode as a library call
def test_rank_replies_returns_the_best_with_its_posterior() -> None:
    """The scripted scorer of the study test, on the backend directly: S0 takes the generic
    contradiction, S1 the reply only person 0 makes likely; the posterior is the listener's given it."""
    sheets = [f"I am person number {i}. I have a secret." for i in range(3)]
    candidates = ["Generic contradiction 0.", "Entailed reply of 0 here.", "A neutral line 0 said slowly."]
    context = [Message(role="user", content="Tell me about yourself.")]
    backend = FakeBackend("fake/x", scorer=scorer)
    r = asyncio.run(rank_replies(backend, sheets, context, candidates))
    assert (r.s0_best, r.best) == (0, 1) and len(backend.history) == 9
    p = math.exp(-1.5 * 4) / (math.exp(-1.5 * 4) + 2 * math.exp(-6.0 * 4))
    assert r.posterior[0] == pytest.approx(p) and sum(r.posterior) == pytest.approx(1.0)
    assert r.s0 == pytest.approx((-1.0, -1.5, -3.0))
    with pytest.raises(ValueError, match="different token counts"):
        rank_scores([[[-1.0], [-1.0, -2.0]]])


# ---------------------------------------------------------------- the verdict says what the table holds
def _ci() -> st.SearchStrategy[tuple[float, float, float]]:
    return st.tuples(st.floats(-1, 1), st.floats(-1, 1), st.floats(-1, 1)).map(lambda t: tuple(sorted(t)))  # type: ignore[return-value]


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.sampled_from(["Hits@1", "Contradict@1", "Entail@1"]), _ci(),
                          st.sampled_from(["ok", "dropped", "not enough data"])), min_size=0, max_size=4))
def test_verdict_never_contradicts_the_table(rows: list[tuple[str, tuple[float, float, float], str]]) -> None:
    table = []
    for i, (metric, (lo, d, hi), status) in enumerate(rows):
        lo, d, hi = round(lo, 3), round(d, 3), round(hi, 3)
        table.append({"model": "m", "source": f"s{i}", "metric": metric, "items": 60, "status": status,
                      "better": "lower" if metric == "Contradict@1" else "higher",
                      "S0": 0.5, "S1": 0.5 + d, "diff": None if status == "not enough data" else d,
                      "diff_ci": [lo, hi]})
    verdict = verdict_for(table, {"pairing": []})
    if not table:
        assert verdict == "No unit was ranked."
    for row in table:
        m, where = row["metric"], f"m, {row['source']}"
        said = {"lowers": f"S1 lowers {m} ({where};" in verdict, "raises": f"S1 raises {m} ({where};" in verdict,
                "same": f"S1 does not change {m} distinguishably ({where};" in verdict,
                "none": f"{m} ({where}): not enough data" in verdict}
        if row["diff"] is None:
            assert said == {"lowers": False, "raises": False, "same": False, "none": True}
            continue
        lo, hi = row["diff_ci"]
        expected = "lowers" if hi < 0 else "raises" if lo > 0 else "same"
        assert [k for k, v in said.items() if v] == [expected]
        if expected != "same":
            good = (expected == "lowers") == (m == "Contradict@1")
            assert f"S1 {expected} {m} ({where}; {'better' if good else 'worse'})" in verdict
        assert f"difference {row['diff']:+.2f}" in verdict


# ---------------------------------------------------------------- generation mode


def test_generation_mode_compares_greedy_s0_with_listener_decoding(tmp_path: Path) -> None:
    """S0 replies come from the responder ("I have no secret at all": the scripted judge calls it a
    contradiction); S1 replies come from the fake multi-sequence decoder (fake words: consistent).
    So the contradiction rate is 1 under S0 and 0 under S1 on every unit: difference -1, better."""
    def replies(request: Request) -> str:
        if request.json_schema is not None:  # the judge
            return '{"contradicts": %s}' % ("true" if "no secret" in request.last_user() else "false")
        return "I have no secret at all."

    def any_scorer(request: Request) -> float:
        return -1.0 * len((request.continuation or "").split())

    backend = FakeBackend("fake/x", responder=replies, scorer=any_scorer)
    run, _ = _run(_spec(tmp_path, generation={"limit": 3, "max_tokens": 6}), backend)
    rows = {r["metric"]: r for r in run.summary.table if r["source"] == "generation"}
    c = rows["contradiction rate (judge)"]
    assert (c["S0"], c["S1"], c["diff"], c["items"]) == (1.0, 0.0, -1.0, 3)
    assert "S1 lowers contradiction rate (judge) (fake/x, generation; better)" in run.summary.verdict
    post = rows["listener posterior of the true persona"]
    assert post["items"] == 3 and post["S0"] == pytest.approx(1 / 3, abs=1e-3) == post["S1"]  # blind to personas
    generated = [h for h in backend.history if h.kind == "generate" and h.json_schema is None]
    assert len(generated) == 6 and sum(h.decoding is not None for h in generated) == 3
    assert all(h.sampling.temperature == 0.0 for h in generated)
    decoded = next(h for h in generated if h.decoding is not None)
    assert len(decoded.decoding.distractors) == 2 and "person number" in decoded.decoding.distractors[0]
    g = run.summary.stats["generation"]
    assert g["compute"]["fake/x"]["S1"]["forward_passes_per_reply"] is not None
    assert any("not independent evidence" in n for n in run.summary.notes)
