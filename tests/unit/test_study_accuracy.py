"""The accuracy study on the fake backend: a known persona effect is found, no effect is not."""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from personae.api import run_study
from personae.backends.base import Generation, Request
from personae.backends.fake import FakeBackend
from personae.errors import BackendError
from personae.items import MCItem, builtin_items
from personae.parsing import parse_choice
from personae.persona import builtin_personas, render_persona
from personae.runner import Result
from personae.spec import resolve_spec
from personae.studies.accuracy import AccuracyStudy, analyze_accuracy, expert_for

from .helpers import FAST_RETRY, read_json

ROOT = Path(__file__).resolve().parents[2]
BANK = builtin_items("general")
GARBAGE = "Hmm, I really cannot say."


def uniform(request: Request, salt: str = "") -> float:
    """A deterministic number in [0, 1) from the request (so from its replicate and seed too)."""
    # from the request's content, not its cache key, so a new key recipe does not redraw the data
    digest = hashlib.sha256((salt + request.model_dump_json(exclude={"tags"})).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def system_of(request: Request) -> str:
    return next((m.content for m in request.messages if m.role == "system"), "")


def item_of(request: Request) -> MCItem:
    text = request.last_user()
    return next(i for i in BANK if i.question in text)


def wrong_letter(item: MCItem, u: float) -> str:
    wrong = [x for x in item.letters if x != item.answer_letter]
    return wrong[int(u * len(wrong))]


def responder_with(p_correct: Callable[[str], float]) -> Callable[[Request], str]:
    """Correct with a probability that depends on the system prompt (the persona the model saw)."""
    def respond(request: Request) -> str:
        item = item_of(request)
        if uniform(request) < p_correct(system_of(request)):
            return str(item.answer_letter)
        return wrong_letter(item, uniform(request, "wrong"))
    return respond


def toddler_hurts(system: str) -> float:
    return 0.2 if "a toddler" in system else 0.7


def no_effect(system: str) -> float:
    return 0.7


def spec(**options: Any) -> dict[str, Any]:
    model = options.pop("model", "fake/x")
    replicates = options.pop("replicates", 5)
    return {"study": "accuracy", "model": model, "replicates": replicates, "seed": 3,
            "sampling": {"temperature": 0.7, "max_tokens": 8},
            "concurrency": {"requests": 8, "retry": dict(FAST_RETRY)},
            "options": {"limit": 3, "n_bootstrap": 1000, **options}}


def rows_by_condition(table: list[dict[str, Any]], model: str = "fake/x") -> dict[str, dict[str, Any]]:
    return {r["condition"]: r for r in table if r["model"] == model}


def test_a_harmful_persona_is_flagged_and_the_in_domain_expert_is_not(tmp_path: Path) -> None:
    backend = FakeBackend("fake/x", responder=responder_with(toddler_hurts))
    outcome = run_study(resolve_spec(spec()), out_dir=tmp_path / "run", backends={"fake/x": backend})
    rows = rows_by_condition(outcome.summary.table)

    assert list(rows) == ["baseline", "in-domain", "off-domain", "layperson", "young-child", "toddler"]
    assert all(r["items"] == 21 for r in rows.values())  # 3 items x 7 domains
    # the toddler prompt reached the model: exactly its requests were answered at 20%
    toddler_systems = {system_of(r) for r in backend.history if "a toddler" in system_of(r)}
    assert toddler_systems == {render_persona(builtin_personas()["toddler"], "you-are")}

    toddler = rows["toddler"]
    assert toddler["diff"] < 0 and toddler["diff_ci_high"] < 0
    assert toddler["p_wilcoxon_holm"] < 0.05
    assert toddler["accuracy"] == pytest.approx(0.2, abs=0.1)
    assert rows["baseline"]["accuracy"] == pytest.approx(0.7, abs=0.1)
    inside = rows["in-domain"]
    assert inside["p_wilcoxon_holm"] >= 0.05
    assert inside["diff_ci_low"] <= 0 <= inside["diff_ci_high"]
    for cond in ("in-domain", "off-domain", "layperson", "young-child"):
        assert rows[cond]["p_wilcoxon_holm"] >= 0.05, cond
    # Holm never makes a p-value smaller
    assert all(r["p_wilcoxon_holm"] >= r["p_wilcoxon"] for c, r in rows.items() if c != "baseline")

    verdict = outcome.summary.verdict
    assert "Accuracy changed for 1 of 5 compared conditions: toddler" in verdict and "in-domain" not in verdict
    # a(q, c) recomputed by hand for the toddler: share correct over its 5 samples per item
    by_item: dict[str, list[bool]] = {}
    for r in outcome.results:
        if r.request.tags.condition == "toddler":
            item = item_of(r.request)
            by_item.setdefault(item.id, []).append(r.text == item.answer_letter)
    assert toddler["accuracy"] == pytest.approx(np.mean([np.mean(v) for v in by_item.values()]))
    assert toddler["acc_tau_1"] == pytest.approx(np.mean([all(v) for v in by_item.values()]))
    assert read_json(tmp_path / "run" / "summary.json")["verdict"] == verdict


def test_parse_failures_are_counted_and_not_scored_wrong() -> None:
    for item in BANK:  # the garbage reply names no option of any item
        assert parse_choice(GARBAGE, item.letters, item.choices) is None

    def respond(request: Request) -> str:  # always right when it answers; 30% garbage
        return GARBAGE if uniform(request, "garbage") < 0.3 else str(item_of(request).answer_letter)

    outcome = run_study(resolve_spec(spec(conditions=["baseline", "layperson"])),
                        backends={"fake/x": FakeBackend("fake/x", responder=respond)})
    rows = rows_by_condition(outcome.summary.table)
    garbage = Counter(r.request.tags.condition for r in outcome.results if r.text == GARBAGE)
    assert 0 < garbage["baseline"] < 105 and garbage["layperson"] > 0
    for cond in ("baseline", "layperson"):
        assert rows[cond]["accuracy"] == 1.0  # over parsed answers only
        assert rows[cond]["parse_failure_rate"] == pytest.approx(garbage[cond] / (21 * 5))
        assert rows[cond]["errors"] == 0
    assert outcome.summary.counts["parse_failures"] == sum(garbage.values())
    assert any("not scored wrong" in n for n in outcome.summary.notes)


def test_logprob_mode_reads_the_letter_with_the_highest_log_probability() -> None:
    def key_scorer(request: Request) -> float:
        return 0.0 if request.continuation == item_of(request).answer_letter else -4.0

    conds = ["baseline", "in-domain", "toddler"]
    backend = FakeBackend("fake/x", scorer=key_scorer)
    outcome = run_study(resolve_spec(spec(mode="logprob", conditions=conds, limit=2)), backends={"fake/x": backend})
    assert {r.kind for r in backend.history} == {"score"}
    items = AccuracyStudy(resolve_spec(spec(mode="logprob", conditions=conds, limit=2))).items
    assert len(backend.history) == len(conds) * sum(len(i.choices) for i in items)
    rows = rows_by_condition(outcome.summary.table)
    assert all(rows[c]["accuracy"] == 1.0 for c in conds)
    assert outcome.summary.stats["samples_per_cell"] == 1 and outcome.summary.stats["mode"] == "logprob"

    # a scorer that always prefers 'A' is right exactly on the items keyed 'A'
    prefers_a = FakeBackend("fake/x", scorer=lambda r: 0.0 if r.continuation == "A" else -1.0)
    again = run_study(resolve_spec({**spec(mode="logprob", conditions=conds, limit=2), "seed": 4}),
                      backends={"fake/x": prefers_a})
    expected = np.mean([i.answer_letter == "A" for i in items])
    assert all(r["accuracy"] == pytest.approx(expected) for r in again.summary.table)


def test_in_domain_and_off_domain_personas_follow_the_item_domain() -> None:
    study = AccuracyStudy(resolve_spec(spec(limit=2)))
    domains = {i.domain for i in study.items}
    library = builtin_personas()
    seen = 0
    for req in study.plan([]):
        item = next(i for i in study.items if i.id == req.tags.item)
        cond, pid = req.tags.condition, req.tags.persona
        if cond == "baseline":
            assert pid is None and system_of(req) == ""
        elif cond == "in-domain":
            assert pid == f"expert-{item.domain}"
            assert system_of(req) == render_persona(library[pid], "you-are")
            seen += item.domain == "physics"
        elif cond == "off-domain":
            assert pid is not None and pid.startswith("expert-") and pid != f"expert-{item.domain}"
            assert pid.removeprefix("expert-") in domains
            assert system_of(req) == render_persona(library[pid], "you-are")
    assert seen == 2 * 5  # 2 physics items x 5 replicates
    assert expert_for("physics") == library["expert-physics"]


def test_models_by_conditions_table_with_two_models() -> None:
    backends = {"fake/a": FakeBackend("fake/a", responder=responder_with(no_effect)),
                "fake/b": FakeBackend("fake/b", responder=responder_with(toddler_hurts))}
    outcome = run_study(resolve_spec(spec(model=["fake/a", "fake/b"], replicates=4)), backends=backends)
    table = outcome.summary.table
    conds = ["baseline", "in-domain", "off-domain", "layperson", "young-child", "toddler"]
    assert [(r["model"], r["condition"]) for r in table] == [(m, c) for m in ("fake/a", "fake/b") for c in conds]
    # each model only saw its own requests
    assert {r.model for r in backends["fake/a"].history} == {"fake/a"}
    assert len(backends["fake/b"].history) == len(conds) * 21 * 4
    assert rows_by_condition(table, "fake/b")["toddler"]["p_wilcoxon_holm"] < 0.05
    assert rows_by_condition(table, "fake/a")["toddler"]["p_wilcoxon_holm"] >= 0.05
    # Holm runs over the 10 comparisons of both models together
    tests = [r for r in table if r["condition"] != "baseline"]
    assert len(tests) == 10 and all("p_wilcoxon_holm" in r for r in tests)
    smallest = min(tests, key=lambda r: r["p_wilcoxon"])
    assert smallest["p_wilcoxon_holm"] == pytest.approx(min(1.0, 10 * smallest["p_wilcoxon"]))
    verdict = outcome.summary.verdict
    assert "fake/a: None of the 5 compared conditions changed accuracy" in verdict
    assert "fake/b: Accuracy changed for 1 of 5 compared conditions: toddler" in verdict


@pytest.mark.slow  # a simulation of hundreds of studies: runs in make test, not in test-fast
def test_no_persona_effect_false_positive_rate_over_200_simulated_nulls() -> None:
    # 200 null datasets: each item has its own difficulty, answers do not depend on the condition.
    # Claim tested: the FAMILY-WISE rate (any of the 5 conditions flagged by the Holm-adjusted
    # Wilcoxon test the verdict uses) is at most 5%. The per-comparison rate of the unadjusted
    # test is also checked, with a Monte Carlo tolerance of 2.5 binomial SEs (1000 comparisons).
    study = AccuracyStudy(resolve_spec(spec(limit=2, replicates=3)))
    requests = study.plan([])
    keys = [r.cache_key() for r in requests]
    by_id = {i.id: i for i in study.items}
    sims, any_flagged, per_flagged, n_tests = 200, 0, 0, 0
    for sim in range(sims):
        rng = np.random.default_rng(10_000 + sim)
        p_item = {i: rng.uniform(0.3, 0.9) for i in by_id}
        draws = rng.random(len(requests))
        results = []
        for req, key, u in zip(requests, keys, draws):
            item = by_id[req.tags.item or ""]
            letter = item.answer_letter if u < p_item[item.id] else wrong_letter(item, 0.0)
            results.append(Result(req, key, generation=Generation(text=str(letter))))
        rows = [r for r in analyze_accuracy(study, results).table if r["condition"] != "baseline"]
        any_flagged += any(r["p_wilcoxon_holm"] < 0.05 for r in rows)
        per_flagged += sum(r["p_wilcoxon"] < 0.05 for r in rows)
        n_tests += len(rows)
    assert n_tests == 5 * sims
    assert any_flagged / sims <= 0.05
    assert per_flagged / n_tests <= 0.05 + 2.5 * math.sqrt(0.05 * 0.95 / n_tests)




def test_a_model_that_never_gives_a_letter_gets_a_verdict_that_says_so(tmp_path: Path) -> None:
    spec = resolve_spec({"study": "accuracy", "model": "fake/x", "replicates": 2,
                         "options": {"conditions": ["baseline", "toddler"], "limit": 2, "n_bootstrap": 1000}})
    outcome = run_study(spec, tmp_path / "run", backends={"fake/x": FakeBackend("fake/x", responder=lambda r: "Hmm.")})
    assert all(r["parse_failure_rate"] == 1.0 and r["accuracy"] is None for r in outcome.summary.table)
    assert "no answer could be parsed" in outcome.summary.verdict
    assert outcome.summary.counts["parse_failures"] == outcome.summary.counts["requests"]


def test_the_readme_example_on_a_server_that_cannot_score_runs_in_generate_mode(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 7, defect 8: `personae run examples/accuracy.yaml -m openai/MODEL` failed (logprob needs
    scoring). With mode: auto the example reads answers by generation there, and says so."""
    from personae.spec import load_spec
    from personae.studies import get_study

    monkeypatch.setenv("PERSONAE_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # never contacted
    example = ROOT / "examples" / "accuracy.yaml"
    served = load_spec(example, models=["openai/qwen"])
    study = get_study("accuracy")(served)
    assert study.mode == "generate" and study.cannot_score == ("openai/qwen",)
    assert {r.kind for r in study.plan([])} == {"generate"}
    local = get_study("accuracy")(load_spec(example))
    assert local.mode == "logprob" and {r.kind for r in local.plan([])} == {"score"}

    monkeypatch.setattr(FakeBackend, "supports_scoring", False)
    data = {**spec(mode="auto", limit=1), "replicates": 2}
    outcome = run_study(resolve_spec(data), backends={"fake/x": FakeBackend("fake/x", responder=responder_with(no_effect))})
    assert outcome.summary.stats["mode"] == "generate"
    assert any(n.startswith("mode auto: answers generated and parsed (generate), as fake/x cannot score") for n in
               outcome.summary.notes)


MMLU_PRO_CATEGORIES = ("biology", "business", "chemistry", "computer science", "economics", "engineering", "health",
                       "history", "law", "math", "other", "philosophy", "physics", "psychology")


def test_every_mmlu_pro_category_and_builtin_domain_has_a_builtin_expert_with_facts() -> None:
    library = builtin_personas()
    for label in [c for c in MMLU_PRO_CATEGORIES if c != "other"] + sorted({i.domain for i in BANK}):
        expert = expert_for(label)
        assert expert is not None, label
        assert expert.id in library and expert is library[expert.id], label  # built in, not written on the fly
        assert 2 <= len(expert.facts) <= 3 and all(f.startswith("I ") for f in expert.facts), label
        assert expert.attributes.knowledge_level == "expert"
    assert expert_for("psychology").id == "expert-psychology"
    assert expert_for("health").id == "expert-medicine"
    assert expert_for("computer science").id == "expert-computer-science"
    # no field, no expert: neither "Other Expert, an expert in other" nor an invented one without facts
    assert expert_for("other") is None and expert_for("astrology") is None


def test_items_without_an_expert_have_no_in_domain_condition_and_the_notes_count_them(tmp_path: Path) -> None:
    data = ROOT / "tests" / "data" / "mmlu_pro_categories.jsonl"
    resolved = resolve_spec(spec(items=str(data), items_format="mmlu-pro", replicates=2))
    study = AccuracyStudy(resolved)
    reqs = study.plan([])
    inside = [r for r in reqs if r.tags.condition == "in-domain"]
    by_id = {i.id: i for i in study.items}
    assert {by_id[r.tags.item or ""].domain for r in inside} == {i.domain for i in study.items} - {"other"}
    assert all(r.tags.persona == f"expert-{by_id[r.tags.item or ''].domain}" for r in inside)
    assert all(r.tags.persona is not None for r in reqs if r.tags.condition == "off-domain")
    assert study.without_expert() == {"in-domain": ["91010"], "off-domain": []}
    assert "in-domain other: no expert, so its 1 item has no in-domain condition" in study.describe()

    backend = FakeBackend("fake/x", responder=lambda r: "A")
    summary = run_study(resolved, backends={"fake/x": backend}).summary
    rows = rows_by_condition(summary.table)
    assert rows["baseline"]["items"] == 14 and rows["in-domain"]["items"] == 13
    assert any("1 of 14 items had no in-domain condition" in n and "other" in n for n in summary.notes)


def failing_baseline(domains: set[str]) -> Callable[[Request], str]:
    """toddler_hurts, except that every no-persona request about an item of `domains` fails (one arm only)."""
    respond = responder_with(toddler_hurts)

    def answer(request: Request) -> str:
        if not system_of(request) and item_of(request).domain in domains:
            raise BackendError("scripted failure of the baseline arm", backend="fake/x", status=400)
        return respond(request)
    return answer


def test_items_failed_in_the_baseline_only_are_dropped_counted_and_lead_the_verdict() -> None:
    domains = sorted({i.domain for i in BANK})
    lost = set(domains[:1])  # 3 of 21 items lose their baseline: 14% of every comparison
    conditions = ["baseline", "layperson", "toddler"]
    broken = run_study(resolve_spec(spec(conditions=conditions)),
                       backends={"fake/x": FakeBackend("fake/x", responder=failing_baseline(lost))})
    full = run_study(resolve_spec(spec(conditions=conditions)),  # re-uses the first run's successes
                     backends={"fake/x": FakeBackend("fake/x", responder=responder_with(toddler_hurts))})
    rows, full_rows = rows_by_condition(broken.summary.table), rows_by_condition(full.summary.table)
    toddler = rows["toddler"]
    assert (toddler["paired_items"], toddler["dropped_condition"], toddler["dropped_baseline"]) == (18, 0, 3)
    assert toddler["status"] == "dropped" and toddler["share_dropped"] == pytest.approx(3 / 21)
    assert broken.summary.stats["pairing"]["fake/x"]["toddler"]["dropped"] == {"toddler": 0, "baseline": 3}
    # the difference is the full run's, over the 18 items both arms answered (hand computation)
    kept = [i.id for i in AccuracyStudy(resolve_spec(spec(conditions=conditions))).items if i.domain not in lost]

    def acc(cond: str) -> dict[str, float]:
        hits: dict[str, list[bool]] = {}
        for r in full.results:
            if r.request.tags.condition == cond:
                item = item_of(r.request)
                hits.setdefault(item.id, []).append(r.text == item.answer_letter)
        return {i: float(np.mean(v)) for i, v in hits.items()}

    t, b = acc("toddler"), acc("baseline")
    assert toddler["diff"] == pytest.approx(np.mean([t[i] - b[i] for i in kept]))
    assert full_rows["toddler"]["share_dropped"] == 0 and full_rows["toddler"]["paired_items"] == 21
    verdict = broken.summary.verdict
    assert verdict.startswith("Failed requests broke the pairing in 2 comparisons")
    assert "fake/x toddler vs baseline: 3 of 21 units (14%) dropped because an arm failed (toddler 0, baseline 3)" \
        in verdict
    assert not full.summary.verdict.startswith("Failed")


def test_past_half_the_items_dropped_a_comparison_gives_no_estimate() -> None:
    domains = sorted({i.domain for i in BANK})
    outcome = run_study(resolve_spec(spec(conditions=["baseline", "toddler"])),
                        backends={"fake/x": FakeBackend("fake/x", responder=failing_baseline(set(domains[:4])))})
    toddler = rows_by_condition(outcome.summary.table)["toddler"]
    assert toddler["status"] == "not enough data" and toddler["dropped_baseline"] == 12
    assert toddler.get("diff") is None and toddler.get("p_wilcoxon") is None
    assert outcome.summary.stats["tests"] == []
    verdict = outcome.summary.verdict
    assert verdict.startswith("Failed requests broke the pairing") and "not enough data, no estimate" in verdict
    assert "Not enough data (over half the items dropped) for toddler." in verdict
    assert "changed accuracy" not in verdict and "Accuracy changed" not in verdict


def test_answers_are_scored_both_ways_and_a_position_bias_is_flagged() -> None:
    """Issue 7, defect 6: parse failures scored wrong as MMLU-Pro does, beside the parsed-only
    accuracy; the answer-letter distribution with a position-bias flag; point CIs carry a note."""
    from scipy.stats import binomtest

    def mostly_a(request: Request) -> str:  # 'A' for everything, garbage for a fifth of the samples
        return GARBAGE if uniform(request, "garbage") < 0.2 else "A"

    outcome = run_study(resolve_spec(spec(conditions=["baseline"], replicates=3)),
                        backends={"fake/x": FakeBackend("fake/x", responder=mostly_a)})
    (row,) = outcome.summary.table
    answers = [r for r in outcome.results if r.ok]
    parsed = [r for r in answers if r.text == "A"]
    keys = {i.question: i.answer_letter for i in BANK}
    correct = sum(keys[next(q for q in keys if q in r.request.last_user())] == "A" for r in parsed)
    assert row["accuracy_parse_wrong"] == pytest.approx(correct / len(answers))  # garbage counted wrong
    assert row["parse_failure_rate"] == pytest.approx(1 - len(parsed) / len(answers))
    dist = outcome.summary.stats["answer_letters"]["fake/x"]
    assert dist["answers"] == {"A": len(parsed)} and dist["top"] == "A" and dist["top_share"] == 1.0
    key_a = dist["key"].get("A", 0) / len(parsed)
    assert dist["key_share_of_top"] == pytest.approx(key_a)
    assert dist["p_value"] == pytest.approx(binomtest(len(parsed), len(parsed), key_a, alternative="greater").pvalue)
    assert dist["position_bias"]
    assert any("position bias: it answered 'A'" in n for n in outcome.summary.notes)
    assert "could not be parsed" in outcome.summary.verdict


def test_a_model_without_a_favourite_letter_is_not_flagged_and_a_point_ci_has_a_note() -> None:
    def always_right(request: Request) -> str:
        return str(item_of(request).answer_letter)

    outcome = run_study(resolve_spec(spec(conditions=["baseline", "toddler"], replicates=2)),
                        backends={"fake/x": FakeBackend("fake/x", responder=always_right)})
    assert not outcome.summary.stats["answer_letters"]["fake/x"]["position_bias"]
    assert not any("position bias" in n for n in outcome.summary.notes)
    assert any("baseline: the 95% CI of the accuracy is [1, 1]" in n and "not certainty" in n
               for n in outcome.summary.notes)
