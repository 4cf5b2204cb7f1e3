"""The replicate study on the fake backend, answering by known rules.

Rules (the responder reads the stimulus in the user message, and a participant-specific hash for noise):
- 'planted-t' (welch_t, likert 1-7): condition 'more' answers 5 + noise, 'less' 3 + noise (noise in
  {-1, 0, 1}): d ~ +2.4 planted, original direction positive -> replicated;
- 'planted-reverse': the same rule, but the original effect is negative -> 'opposite';
- 'planted-choice' (chi_square, target 'sure'): 'gain' frame picks 'sure' 80%, 'loss' 20% (by the
  hash) -> phi > 0, replicated;
- 'planted-null' (welch_t): the answer ignores the condition -> the reference null is not significant
  (false positive rate 0 of 1).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from personae.api import run_study
from personae.backends.base import Request
from personae.backends.fake import FakeBackend
from personae.errors import ConfigError
from personae.replicate.participants import parse_answer, sample_participants
from personae.replicate.experiment import load_experiment
from personae.spec import resolve_spec
from personae.studies import get_study

from .helpers import FAST_RETRY

LIKERT = {"kind": "likert", "question": "How much?", "scale": [1, 7]}


def _exp(id_: str, texts: tuple[str, str], effect: float, p: float, **kw: Any) -> dict[str, Any]:
    names = kw.pop("names", ("more", "less"))
    return {"id": id_, "title": id_, "citation": "Made up for a test (2026)",
            "conditions": [{"name": n, "text": t} for n, t in zip(names, texts)],
            "measure": kw.pop("measure", LIKERT),
            "test": kw.pop("test", {"kind": "welch_t", "a": names[0], "b": names[1]}),
            "original": {"n": 120, "effect": effect, "p": p, "metric": kw.pop("metric", "d")},
            "sample": {"n": 60, "age": {"mean": 30, "sd": 8}, "gender": {"woman": 0.5, "man": 0.5}}, **kw}


def _noise(request: Request, k: int) -> int:
    who = request.tags.persona or ""
    return hashlib.sha256(who.encode()).digest()[0] % k


def responder(request: Request) -> str:
    text = request.last_user()
    if "STIM-MORE" in text:
        return json.dumps({"answer": 5 + _noise(request, 3) - 1})
    if "STIM-LESS" in text:
        return json.dumps({"answer": 3 + _noise(request, 3) - 1})
    if "STIM-NULL" in text:
        return json.dumps({"answer": 2 + _noise(request, 5)})
    if "STIM-GAIN" in text:
        return json.dumps({"answer": "sure" if _noise(request, 10) < 8 else "gamble"})
    if "STIM-LOSS" in text:
        return json.dumps({"answer": "sure" if _noise(request, 10) < 2 else "gamble"})
    return "no idea"


def _suite(tmp_path: Path) -> list[str]:
    exps = [
        _exp("planted-t", ("STIM-MORE", "STIM-LESS"), 0.8, 0.001),
        _exp("planted-reverse", ("STIM-MORE", "STIM-LESS"), -0.5, 0.03),
        _exp("planted-choice", ("STIM-GAIN", "STIM-LOSS"), 0.5, 1e-6, names=("gain", "loss"),
             measure={"kind": "choice", "question": "Which?", "options": ["sure", "gamble"]},
             test={"kind": "chi_square", "a": "gain", "b": "loss", "target": "sure"}, metric="phi"),
        _exp("planted-null", ("STIM-NULL one", "STIM-NULL two"), 0.4, 0.02,
             replication={"n": 5000, "effect": 0.01, "ci": [-0.04, 0.06], "p": 0.7, "metric": "d",
                          "source": "A made-up many-lab replication"}),
    ]
    paths = []
    for e in exps:
        path = tmp_path / f"{e['id']}.yaml"
        path.write_text(yaml.safe_dump(e), encoding="utf-8")
        paths.append(str(path))
    return paths


def _run(tmp_path: Path, **options: Any) -> Any:
    spec = {"study": "replicate", "model": "fake/x", "seed": 5,
            "concurrency": {"requests": 8, "retry": dict(FAST_RETRY)},
            "options": {"experiments": _suite(tmp_path), "n_bootstrap": 500, **options}}
    backend = FakeBackend("fake/x", responder=responder)
    return run_study(resolve_spec(spec), backends={"fake/x": backend}), backend


def test_planted_effects_and_their_direction_are_recovered(tmp_path: Path) -> None:
    run, backend = _run(tmp_path)
    rows = {r["experiment"]: r for r in run.summary.table}
    t, rev, ch, null = rows["planted-t"], rows["planted-reverse"], rows["planted-choice"], rows["planted-null"]
    assert t["status"] == "replicated" and t["effect"] > 1.5 and t["p"] < 1e-6 and t["ci_low"] > 0
    assert t["means"]["more"] == pytest.approx(5, abs=0.5) and t["means"]["less"] == pytest.approx(3, abs=0.5)
    assert rev["status"] == "opposite" and not rev["success"]
    assert ch["status"] == "replicated" and ch["effect"] > 0.4 and ch["metric"] == "phi"
    assert null["reference_is_null"] and null["status"] == "not significant" and null["reference"] == "replication"
    assert null["ratio"] is None and t["ratio"] == pytest.approx(t["effect"] / 0.8)  # no ratio against a null
    likert = next(r for r in backend.history if r.tags.item == "planted-t").json_schema
    assert likert["properties"]["answer"]["enum"] == [1, 2, 3, 4, 5, 6, 7]  # llama.cpp enforces enums, not bounds
    # 60 participants each, one condition each (between), every answer parsed
    assert len(backend.history) == 4 * 60 and all(r["answered"] == 60 and r["parse_failures"] == 0
                                                  for r in rows.values())
    s = run.summary.stats["suite"]["fake/x"]
    assert (s["success"]["k"], s["success"]["n"]) == (2, 3)  # t and choice; the reversed one is not
    assert (s["false_positive"]["k"], s["false_positive"]["n"]) == (0, 1)
    # the requests were constrained to the measure's schema (the fake backend supports JSON)
    assert all(r.json_schema is not None and r.json_schema["required"] == ["answer"] for r in backend.history)
    assert "2 of 3 original effects replicated" in run.summary.verdict
    assert "0 of 1 null results came out significant" in run.summary.verdict
    assert ch["test_used"] == "chi_square" and "logit separated" not in run.summary.verdict  # planned, not a fallback


def test_each_participant_is_a_persona_from_the_marginals(tmp_path: Path) -> None:
    run, backend = _run(tmp_path)
    systems = {r.tags.persona: r.messages[0].content for r in backend.history if r.tags.item == "planted-t"}
    assert len(systems) == 60 and all(re.search(r"\d+-year-old (woman|man)", s) for s in systems.values())
    conds = [r.tags.condition for r in backend.history if r.tags.item == "planted-t"]
    assert conds.count("more") == conds.count("less") == 30  # between subjects, balanced


def test_failed_requests_are_counted_not_scored(tmp_path: Path) -> None:
    fake = FakeBackend("fake/x", responder=responder)
    fake.options = fake.options.model_copy(update={"fail_when": "STIM-LESS"})
    spec = {"study": "replicate", "model": "fake/x", "seed": 5, "concurrency": {"requests": 8, "retry": dict(FAST_RETRY)},
            "options": {"experiments": _suite(tmp_path)[:1], "n_bootstrap": 500}}
    run = run_study(resolve_spec(spec), backends={"fake/x": fake})
    (row,) = run.summary.table
    assert row["errors"] == 30 and row["answered"] == 30 and row["status"] == "no estimate"
    assert "30 failed requests are counted in errors" in run.summary.verdict


def test_rerun_makes_no_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERSONAE_STORE", str(tmp_path / "store.sqlite"))
    first, _ = _run(tmp_path)
    second, backend = _run(tmp_path)
    assert len(backend.history) == 0 and second.summary.table == first.summary.table


def test_sampling_is_seeded_and_follows_the_marginals(tmp_path: Path) -> None:
    path = Path(_suite(tmp_path)[0])
    exp = load_experiment(path)
    a, b = sample_participants(exp, 400, 1), sample_participants(exp, 400, 1)
    assert [p.persona for p in a] == [p.persona for p in b]
    women = sum(p.persona.attributes.demographics.gender == "woman" for p in a) / 400
    ages = [p.persona.attributes.demographics.age for p in a]
    assert 0.42 < women < 0.58 and 28 < sum(ages) / 400 < 32 and min(ages) >= 18  # type: ignore[operator]


def test_answers_are_parsed_within_the_scale(tmp_path: Path) -> None:
    exp = load_experiment(Path(_suite(tmp_path)[0]))
    assert parse_answer(exp, '{"answer": 6}') == 6.0
    assert parse_answer(exp, "I would say 4.") == 4.0
    assert parse_answer(exp, '{"answer": 9}') is None and parse_answer(exp, "no idea") is None


def test_a_typo_in_an_experiment_file_names_file_line_and_fix(tmp_path: Path) -> None:
    e = _exp("typo", ("a", "b"), 0.5, 0.01)
    e["test"] = {"kind": "welch_t", "a": "more", "b": "les"}
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(e, sort_keys=False), encoding="utf-8")
    spec = {"study": "replicate", "model": "fake/x", "options": {"experiments": [str(path)]}}
    with pytest.raises(ConfigError) as err:
        get_study("replicate").check(resolve_spec(spec))
    msg = str(err.value)
    assert "typo.yaml:" in msg and "field 'test.b'" in msg and "Did you mean 'less'?" in msg and "Fix:" in msg


def test_within_subjects_participants_see_every_condition_and_the_paired_effect_is_recovered(tmp_path: Path) -> None:
    e = _exp("planted-within", ("STIM-MORE", "STIM-LESS"), 0.6, 0.001, design="within",
             test={"kind": "paired_t", "a": "more", "b": "less"}, metric="dz")
    path = tmp_path / "within.yaml"
    path.write_text(yaml.safe_dump(e), encoding="utf-8")
    spec = {"study": "replicate", "model": "fake/x", "seed": 2, "concurrency": {"requests": 8, "retry": dict(FAST_RETRY)},
            "options": {"experiments": [str(path)], "n": 20, "constrained": False}}
    def noisy(request: Request) -> str:  # noise that differs between a participant's two answers
        base = 5 if "STIM-MORE" in request.last_user() else 3
        k = hashlib.sha256(f"{request.tags.persona}{request.tags.condition}".encode()).digest()[0] % 3
        return json.dumps({"answer": base + k - 1})

    backend = FakeBackend("fake/x", responder=noisy)
    run = run_study(resolve_spec(spec), backends={"fake/x": backend})
    (row,) = run.summary.table
    assert len(backend.history) == 40 and all(r.json_schema is None for r in backend.history)  # constrained: false
    by_person: dict[str, set[str]] = {}
    for r in backend.history:
        by_person.setdefault(str(r.tags.persona), set()).add(str(r.tags.condition))
    assert len(by_person) == 20 and all(c == {"more", "less"} for c in by_person.values())
    assert row["test"] == "paired_t" and row["metric"] == "dz" and row["answered"] == 20
    assert row["status"] == "replicated" and row["effect"] > 1 and row["means"]["more"] > row["means"]["less"] + 1


def test_the_builtin_suite_has_12_effects_and_4_nulls_each_cited() -> None:
    from personae.replicate import builtin_ids, resolve_experiments

    suite = resolve_experiments(("builtin",), Path("."))
    assert len(suite) == len(builtin_ids()) == 16
    assert sum(not e.original_is_null for e in suite) >= 12 and sum(e.original_is_null for e in suite) >= 4
    # every null rests on a large replication: its numbers (p >= .05), or its cited conclusion
    assert all(e.replication is not None and e.replication.is_null and e.replication.source
               for e in suite if e.original_is_null)
    assert all(r.found_effect is not None or (r.p is not None and r.effect is not None and r.n is not None)
               for e in suite for r in (e.original, e.replication) if r is not None)
    assert all(e.citation and e.notes for e in suite)


def test_a_replication_known_by_its_conclusion_is_a_null_with_no_reference_effect(tmp_path: Path) -> None:
    """found_effect: false (no numbers at hand) makes the experiment a null, and the row has no
    coverage or ratio; the original itself must have numbers, and a conclusion needs its source."""
    from personae.replicate import resolve_experiments

    (exp,) = resolve_experiments(("builtin:moral-cleansing",), Path("."))
    assert exp.original_is_null and exp.replication is not None and exp.replication.effect is None
    outcome = run_study(resolve_spec({"study": "replicate", "model": "fake/conclusion", "seed": 2,
                                      "options": {"experiments": ["builtin:moral-cleansing"], "n": 20,
                                                  "n_bootstrap": 200}}),
                        backends={"fake/conclusion": FakeBackend("fake/conclusion", responder=schema_responder)})
    (row,) = outcome.summary.table
    assert row["reference_is_null"] and row["reference_effect"] is None
    assert row["covers_reference"] is None and row["ratio"] is None
    bad = tmp_path / "bad.yaml"
    for replication, message in (("{metric: d, found_effect: false}", "found_effect needs the source"),
                                 ("{metric: d, n: 50}", "give n, effect and p")):
        text = (Path("src/personae/data/replicate/moral-cleansing.yaml").read_text(encoding="utf-8")
                .split("\nreplication:")[0] + f"\nreplication: {replication}\n")
        bad.write_text(text + "sample: {n: 10}\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=message):
            resolve_experiments((str(bad),), tmp_path)


def schema_responder(request: Request) -> str:
    """A valid answer to any measure, chosen by a hash of the participant: no condition has an effect."""
    prop = (request.json_schema or {})["properties"]["answer"]
    k = hashlib.sha256(str(request.tags.persona).encode()).digest()[0]
    if "enum" in prop:
        return json.dumps({"answer": prop["enum"][k % len(prop["enum"])]})
    low, high = prop.get("minimum", 0), prop.get("maximum", 100)
    return json.dumps({"answer": low + (high - low) * (k / 255)})


def test_the_whole_builtin_suite_runs_and_scores_the_nulls(tmp_path: Path) -> None:
    spec = {"study": "replicate", "model": "fake/x", "seed": 3, "concurrency": {"requests": 8, "retry": dict(FAST_RETRY)},
            "options": {"experiments": ["builtin"], "n": 10, "n_bootstrap": 200}}
    backend = FakeBackend("fake/x", responder=schema_responder)
    run = run_study(resolve_spec(spec), backends={"fake/x": backend})
    s = run.summary
    assert len(s.table) == 16 and len(backend.history) == 16 * 10
    assert all(r["parse_failures"] == 0 and r["errors"] == 0 and r["answered"] == 10 for r in s.table)
    suite = s.stats["suite"]["fake/x"]
    assert suite["success"]["n"] == 12 and suite["false_positive"]["n"] == 4 and suite["experiments"] == 16
    study = get_study("replicate")(resolve_spec(spec))
    (caption, fig), = study.figures([], s)
    assert "Synthetic vs reference" in caption and len(fig.axes[0].lines) + len(fig.axes[0].collections) > 0


def _run_one(tmp_path: Path, e: dict[str, Any], responder_fn: Any, **options: Any) -> tuple[Any, FakeBackend]:
    path = tmp_path / f"{e['id']}.yaml"
    path.write_text(yaml.safe_dump(e), encoding="utf-8")
    spec = {"study": "replicate", "model": "fake/x", "seed": 4, "concurrency": {"requests": 8, "retry": dict(FAST_RETRY)},
            "options": {"experiments": [str(path)], "n_bootstrap": 300, **options}}
    backend = FakeBackend("fake/x", responder=responder_fn)
    return run_study(resolve_spec(spec), backends={"fake/x": backend}), backend


def test_within_anova_recovers_a_planted_effect_and_counts_dropped_participants(tmp_path: Path) -> None:
    e = _exp("planted-rm", ("STIM-HI", "STIM-MID"), 0.3, 0.001, design="within", names=("hi", "mid", "lo"),
             test={"kind": "anova", "order": ["hi", "mid", "lo"]}, metric="partial_eta2")
    e["conditions"].append({"name": "lo", "text": "STIM-LO"})

    def planted(request: Request) -> str:  # 5 / 4 / 3 plus participant and per-answer noise
        text = request.last_user()
        base = 5 if "STIM-HI" in text else 4 if "STIM-MID" in text else 3
        if "STIM-LO" in text and _noise(request, 10) == 0:
            return "no idea"  # an unparsable answer: that participant lacks 'lo' and is dropped
        k = hashlib.sha256(f"{request.tags.persona}{request.tags.condition}".encode()).digest()[0] % 3
        return json.dumps({"answer": base + _noise(request, 2) + k - 1})

    run, backend = _run_one(tmp_path, e, planted, n=30)
    (row,) = run.summary.table
    lost = row["parse_failures"]
    assert len(backend.history) == 90 and lost > 0 and row["dropped"] == lost and row["answered"] == 30
    assert row["test"] == "anova" and row["test_used"] == "anova_rm" and row["metric"] == "partial_eta2"
    assert row["status"] == "replicated" and row["p"] < 1e-4 and row["effect"] > 0.3 and row["ci_low"] > 0
    assert f"{lost} participant" in (row["test_note"] or "") and "dropped" in " ".join(run.summary.notes)
    assert f"{lost} participants missing an answer to a condition were left out" in run.summary.verdict


def test_a_separated_logit_is_scored_by_its_fallback_test_and_said_so(tmp_path: Path) -> None:
    e = _exp("planted-separation", ("STIM-GAIN", "STIM-LOSS"), 1.2, 1e-4, names=("gain", "loss"),
             measure={"kind": "choice", "question": "Which?", "options": ["sure", "gamble"]},
             test={"kind": "logistic", "a": "gain", "b": "loss", "target": "sure"}, metric="log_odds")

    def separated(request: Request) -> str:  # gain always 'sure', loss always 'gamble': perfect separation
        return json.dumps({"answer": "sure" if "STIM-GAIN" in request.last_user() else "gamble"})

    run, _ = _run_one(tmp_path, e, separated, n=40)
    (row,) = run.summary.table
    assert row["test"] == "logistic" and row["test_used"] == "chi_square" and row["metric"] == "risk_difference"
    assert row["reference_metric"] == "log_odds" and row["effect"] == 1.0 and row["p"] < 1e-6
    assert row["status"] == "replicated" and row["ratio"] is None and row["covers_reference"] is None
    assert "separation" in row["test_note"] and any("separation" in n for n in run.summary.notes)
    v = run.summary.verdict
    assert "planted-separation replicated (by chi_square instead of logistic: risk_difference 1.00" in v
    assert "reference log_odds 1.20" in v and "The logit separated in 1 experiment" in v
    study = get_study("replicate")(resolve_spec({"study": "replicate", "model": "fake/x",
                                                 "options": {"experiments": [str(tmp_path / "planted-separation.yaml")]}}))
    assert study.figures([], run.summary) == []  # an effect in another metric is not plotted against the reference
