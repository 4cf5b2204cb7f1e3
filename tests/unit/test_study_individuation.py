"""The individuation study on synthetic transcripts: does the profile help predict the responses?"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from personae.api import run_study
from personae.backends.base import Request, Score
from personae.backends.fake import FakeBackend
from personae.cli.main import app
from personae.errors import ConfigError
from personae.errors import BackendError
from personae.runner import Result
from personae.spec import load_spec, resolve_spec
from personae.stats import cohens_d
from personae.studies.individuation import IndividuationStudy

from .helpers import FAST_RETRY, read_json

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ("age-habits", "coin-guess", "politics-agreement")
AGE = re.compile(r"Interviewer: What is your age\?\nInterviewee: (\d+)")


def transcript_noise(request: Request, scale: float) -> float:
    """Noise that depends on the transcript and the response but not on the interview block: the
    same response after the same transcript gets the same noise with and without the profile."""
    prompt = request.prompt or ""
    transcript = prompt.split("\n\n", 1)[1] if prompt.startswith("Interviewer:") else prompt
    digest = hashlib.sha256(f"{transcript}|{request.continuation}".encode()).digest()
    return scale * (int.from_bytes(digest[:8], "big") / 2**64 - 0.5)


def predicted(prompt: str) -> str | None:
    """What the generating rule predicts, if the profile line it needs is in the prompt (else None)."""
    if "Statement:" in prompt:  # politics-agreement: liberals agree
        if "Interviewee: liberal" in prompt:
            return "agree"
        if "Interviewee: conservative" in prompt:
            return "disagree"
        return None
    if "\nQ: " in prompt:  # age-habits: under 40 -> video chat and streaming yes, newspaper no
        age = AGE.search(prompt)
        if age is None:
            return None
        young = int(age.group(1)) < 40
        question = prompt.rsplit("\nQ: ", 1)[1]
        return "yes" if (young != ("newspaper" in question)) else "no"
    return None  # coin-guess: nothing in any profile predicts a coin


def request_noise(request: Request, scale: float) -> float:
    """Noise of its own for every request (reading the profile perturbs scores a little, at random)."""
    digest = hashlib.sha256(request.cache_key().encode()).digest()
    return scale * (int.from_bytes(digest[:8], "big") / 2**64 - 0.5)


def informed_scorer(request: Request) -> float:
    """A model that uses the profile where it carries information, and is 50/50 otherwise."""
    noise = transcript_noise(request, 0.6)
    guess = predicted(request.prompt or "")
    if guess is None:
        return math.log(0.5) + noise
    hit = (request.continuation or "").strip() == guess
    return (math.log(0.9) if hit else math.log(0.1)) + noise + request_noise(request, 0.2)


def blind_scorer(request: Request) -> float:
    """Ignores the profile: a log-probability from the response and the transcript only."""
    return -0.7 * len((request.continuation or "").split()) + transcript_noise(request, 0.6)


def spec(**options: Any) -> dict[str, Any]:
    return {"study": "individuation", "model": "fake/x", "seed": 5,
            "concurrency": {"requests": 8, "retry": dict(FAST_RETRY)},
            "options": {"participants": 12, "n_bootstrap": 1000, **options}}


def run(scorer: Callable[[Request], float], out: Path | None = None, **options: Any) -> Any:
    return run_study(resolve_spec(spec(**options)), out_dir=out,
                     backends={"fake/x": FakeBackend("fake/x", scorer=scorer)})


def hand_d(results: list[Result], experiment: str, responses: set[int] | None = None) -> float:
    """METHODS section 2: d = (mean NLL without - mean NLL with) / sqrt((sd_w^2 + sd_wo^2) / 2),
    over participants, each participant's NLL being the mean over their responses (only the
    response indices in `responses`, if given)."""
    nll: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in results:
        extra = r.request.tags.extra
        if extra["experiment"] == experiment and (responses is None or extra["response"] in responses):
            assert r.score is not None
            nll[(extra["participant"], r.request.tags.condition or "")].append(-r.score.logprob)
    people = sorted({p for p, _ in nll})
    with_ = [sum(nll[(p, "with")]) / len(nll[(p, "with")]) for p in people]
    without = [sum(nll[(p, "without")]) / len(nll[(p, "without")]) for p in people]

    def var(xs: list[float]) -> float:
        m = sum(xs) / len(xs)
        return sum((x - m) ** 2 for x in xs) / (len(xs) - 1)

    return (sum(without) / len(without) - sum(with_) / len(with_)) / math.sqrt((var(with_) + var(without)) / 2)


def test_requests_score_each_response_with_and_without_the_interview_block() -> None:
    study = IndividuationStudy(resolve_spec(spec()))
    requests = study.plan([])
    assert {r.kind for r in requests} == {"score"}
    pairs: dict[str, dict[str, Request]] = defaultdict(dict)
    for r in requests:
        pairs[r.tags.item or ""][r.tags.condition or ""] = r
    assert len(pairs) == 12 * (4 + 3 + 4)
    assert all(set(v) == {"with", "without", "shuffled"} for v in pairs.values())
    for item, both in pairs.items():
        w, wo, sh = both["with"], both["without"], both["shuffled"]
        # the control: another participant's interview block before the same transcript and response
        assert sh.continuation == w.continuation and (sh.prompt or "").endswith(wo.prompt or "")
        assert (sh.prompt or "").startswith("Interviewer: ")
        assert sh.tags.extra["participant"] == w.tags.extra["participant"]
        assert w.continuation == wo.continuation
        assert (w.continuation or "").strip() in ("agree", "disagree", "yes", "no", "heads", "tails")
        assert "Interviewer:" not in (wo.prompt or "")
        assert (w.prompt or "").startswith("Interviewer: What is your age?\nInterviewee: ")
        assert (w.prompt or "").endswith(wo.prompt or "")  # the block is prepended, the transcript unchanged
        assert "<<" not in (w.prompt or "")  # earlier responses are unmarked
        if item.startswith("politics-agreement/"):
            assert re.search(r"Interviewee: (liberal|conservative)", w.prompt or "")


def test_an_informative_profile_gives_positive_d_and_coin_guesses_do_not(tmp_path: Path) -> None:
    outcome = run(informed_scorer, tmp_path / "run")
    rows = {r["experiment"]: r for r in outcome.summary.table}
    assert sorted(rows) == list(EXPERIMENTS)
    for exp in ("politics-agreement", "age-habits"):
        assert rows[exp]["profile_informative"] is True
        assert rows[exp]["d"] > 1.0 and rows[exp]["d_ci_low"] > 0, exp
        assert rows[exp]["nll_with"] < rows[exp]["nll_without"]
    coin = rows["coin-guess"]
    assert coin["profile_informative"] is False
    # nothing in a profile predicts a coin: the same scores with and without it, d = 0
    assert coin["d"] == pytest.approx(0.0, abs=1e-12) and coin["d_ci_low"] <= 0 <= coin["d_ci_high"]
    for exp, row in rows.items():  # d from the NLLs in the results, by the METHODS formula
        assert row["participants"] == 12
        assert row["d"] == pytest.approx(hand_d(outcome.results, exp), rel=1e-9)
    dist = outcome.summary.stats["d_over_experiments"]["fake/x"]
    assert dist["experiments"] == 3
    assert dist["mean_d"] == pytest.approx(np.mean([r["d"] for r in rows.values()]))
    assert dist["min_d"] == pytest.approx(coin["d"])
    assert "mean d = +" in outcome.summary.verdict
    assert read_json(tmp_path / "run" / "summary.json")["table"][0]["experiment"] == "age-habits"


def test_a_profile_blind_scorer_gives_d_near_zero_and_the_verdict_says_so() -> None:
    outcome = run(blind_scorer)
    for row in outcome.summary.table:  # the same score with and without the profile: d is 0
        assert row["d"] == pytest.approx(0.0, abs=1e-12) and row["d_ci_low"] <= 0 <= row["d_ci_high"]
        assert row["nll_with"] == pytest.approx(row["nll_without"])
    dist = outcome.summary.stats["d_over_experiments"]["fake/x"]
    assert dist["mean_d"] == pytest.approx(0.0, abs=1e-12) and dist["share_abs_d_below_0.1"] == 1.0
    assert "the profile does not reliably help predict responses" in outcome.summary.verdict


def _results(study: IndividuationStudy, requests: list[Request], keys: list[str],
             logprobs: np.ndarray) -> list[Result]:
    return [Result(q, k, score=Score(logprob=float(v), n_tokens=1)) for q, k, v in zip(requests, keys, logprobs)]


@pytest.mark.slow  # a simulation of hundreds of studies: runs in make test, not in test-fast
def test_null_false_positive_rate_of_the_per_experiment_ci() -> None:
    # A profile-blind random scorer (each score an independent draw, whatever the prompt). Over 400
    # simulations x 3 experiments the per-experiment 95% CI of d must exclude 0 in at most 5% of
    # cases + a Monte Carlo tolerance of 2.5 binomial SEs over the 1200 CIs (0.05 + 0.0157).
    # (200 simulations as asked would allow 0.072; 400 keep the bound tight at 1.4 s.)
    study = IndividuationStudy(resolve_spec(spec()))
    requests = study.plan([])
    keys = [r.cache_key() for r in requests]
    sims, excluded, cis = 400, 0, 0
    for sim in range(sims):
        rng = np.random.default_rng(30_000 + sim)
        summary = study.analyze(_results(study, requests, keys, -rng.gamma(2.0, 0.5, len(requests))))
        for row in summary.table:
            cis += 1
            excluded += row["d_ci_low"] > 0 or row["d_ci_high"] < 0
    assert cis == 3 * sims
    assert excluded / cis <= 0.05 + 2.5 * math.sqrt(0.05 * 0.95 / cis)


def test_the_ci_is_paired_over_participants() -> None:
    # Each participant is scored with and without the profile: NLLs differ a lot between
    # participants but the profile lowers every one by ~0.2. The paired CI sees the effect; an
    # unpaired CI (two independent groups, SD ~1 between participants) would not.
    study = IndividuationStudy(resolve_spec(spec()))
    requests = study.plan([])
    keys = [r.cache_key() for r in requests]
    rng = np.random.default_rng(8)
    base = {item: rng.normal(-2.0, 1.0) for item in sorted({r.tags.item or "" for r in requests})}
    logprobs = np.array([base[r.tags.item or ""] + (0.2 if r.tags.condition == "with" else 0.0)
                         + rng.normal(0, 0.05) for r in requests])
    results = _results(study, requests, keys, logprobs)
    for row in study.analyze(results).table:
        assert 0 < row["d"] < 1.0 and row["d_ci_low"] > 0, row["experiment"]
        assert row["d"] == pytest.approx(hand_d(results, row["experiment"]), rel=1e-9)
        # the same data read as two independent groups: that CI cannot tell the effect from 0
        nll = defaultdict(list)
        for r in results:
            if r.request.tags.extra["experiment"] == row["experiment"]:
                nll[(r.request.tags.condition, r.request.tags.extra["participant"])].append(-r.score.logprob)
        people = sorted({p for _, p in nll})
        unpaired = cohens_d([np.mean(nll[("without", p)]) for p in people],
                            [np.mean(nll[("with", p)]) for p in people], paired=False, ci="normal")
        assert unpaired.ci_low < 0 < unpaired.ci_high




def test_own_profile_beats_another_participants_profile_only_where_it_decides_the_response(tmp_path: Path) -> None:
    """d_content (shuffled vs own profile) isolates the person: positive where the rule reads the profile."""
    outcome = run(informed_scorer, tmp_path / "run")
    rows = {r["experiment"]: r for r in outcome.summary.table}
    assert rows["politics-agreement"]["d_content"] > 0 and rows["politics-agreement"]["d_content_ci_low"] > 0
    assert rows["coin-guess"]["d_content"] == pytest.approx(0.0, abs=1e-12)
    assert "Against another participant's profile" in outcome.summary.verdict


# ---------------------------------------------------------------- the Psych-201 layout (issue 7)

PSYCH201 = ROOT / "tests" / "data" / "psych201"


def study_in(folder: Path, **options: Any) -> IndividuationStudy:
    """The study of a spec written in `folder` (so that `data:` is relative to it)."""
    shutil.copytree(PSYCH201, folder / "psych201", dirs_exist_ok=True)
    data = spec(**options)
    data["options"].pop("participants")
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return IndividuationStudy(load_spec(path))


def test_per_trial_lists_and_design_variables_are_not_profile_fields(tmp_path: Path) -> None:
    study = study_in(tmp_path, data="psych201/memory.jsonl")
    (first, *_) = study.transcripts
    assert first.profile == {"age": first.fields()["age"], "gender": first.fields()["gender"]}
    assert set(first.other) == {"RTs", "condition"}
    for t in study.transcripts:
        block = study.interview(t)
        assert "age" in block and "gender" in block
        assert "RTs" not in block and "condition" not in block and "[" not in block
    for req in study.plan([]):
        assert "What is your RTs" not in req.prompt and "What is your condition" not in req.prompt


def test_the_rule_ignores_case_and_empty_values_and_profile_fields_still_selects(tmp_path: Path) -> None:
    study = study_in(tmp_path, data="psych201/choices.jsonl")
    t = study.transcripts[0]
    assert set(t.profile) == {"age", "education", "stai"}
    assert set(t.other) == {"session", "block", "rt", "Trial", "notes"}
    chosen = study_in(tmp_path / "b", data="psych201/memory.jsonl", profile_fields=["age", "condition"])
    block = chosen.interview(chosen.transcripts[0])
    assert "What is your age?" in block and "What is your condition?" in block and "gender" not in block


def test_validate_says_which_fields_form_the_profile(tmp_path: Path) -> None:
    study = study_in(tmp_path, data="psych201/*.jsonl")
    lines = study.describe()
    assert lines[0] == ("experiment synthetic-gamble (3 participants): profile fields age, education, stai; "
                        "not in the profile: session (design variable), block (per-trial list), rt (per-trial list), "
                        "Trial (design variable), notes (empty)")
    assert "experiment synthetic-memory (4 participants): profile fields age, gender; not in the profile: RTs " \
           "(per-trial list), condition (design variable)" in lines
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "spec.yaml")])
    assert result.exit_code == 0, result.output
    assert "profile fields age, gender; not in the profile: RTs (per-trial list)" in result.output.replace("\n", " ")


def test_data_takes_a_list_of_files_or_a_glob_relative_to_the_spec(tmp_path: Path) -> None:
    by_glob = study_in(tmp_path, data="psych201/*.jsonl")
    by_list = study_in(tmp_path, data=["psych201/memory.jsonl", "psych201/choices.jsonl"])
    assert {t.experiment for t in by_glob.transcripts} == {"synthetic-memory", "synthetic-gamble", "synthetic-bandit"}
    assert sorted((t.experiment, t.participant) for t in by_glob.transcripts) == \
        sorted((t.experiment, t.participant) for t in by_list.transcripts)
    assert len(by_glob.transcripts) == 4 + 3 + 3
    # a pattern listed next to a file it matches reads that file once
    both = study_in(tmp_path, data=["psych201/memory.jsonl", "psych201/*.jsonl"])
    assert len(both.transcripts) == 10
    backend = FakeBackend("fake/x", scorer=lambda r: -1.0)
    outcome = run_study(by_glob.resolved, backends={"fake/x": backend})
    assert {r["experiment"] for r in outcome.summary.table} == {t.experiment for t in by_glob.transcripts}


def test_data_errors_name_the_pattern_the_duplicate_and_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="the pattern 'nowhere/\\*.jsonl' matches no file") as info:
        study_in(tmp_path, data="nowhere/*.jsonl")
    assert info.value.field == "options.data" and info.value.line is not None
    (tmp_path / "psych201").mkdir(exist_ok=True)
    (tmp_path / "again.jsonl").write_text((PSYCH201 / "memory.jsonl").read_text(encoding="utf-8").splitlines()[2]
                                          + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="participant 'm2' of experiment 'synthetic-memory' appears twice") as info:
        study_in(tmp_path, data=["psych201/memory.jsonl", "again.jsonl"])
    assert info.value.file is not None and info.value.file.endswith("again.jsonl") and info.value.line == 1
    # the spec's field is to blame, not the data: the error points at the listed name (issue 8, item 7)
    with pytest.raises(ConfigError, match="lists 'agee', which is not a field of the transcripts in "
                       "options.data. Did you mean 'age'") as info:
        study_in(tmp_path, data="psych201/memory.jsonl", profile_fields=["age", "agee"])
    assert info.value.field == "options.profile_fields.1"
    (tmp_path / "design.jsonl").write_text(json.dumps({"text": "Go: <<x>>", "experiment": "e", "participant": "p",
                                                       "RTs": [1, 2], "condition": "a"}) + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="no transcript has profile fields \\(RTs, condition"):
        study_in(tmp_path, data="design.jsonl")


def one_arm_failures(request: Request) -> float:
    """informed_scorer, except that the with-profile requests of politics-agreement's last response
    (1 of 4 per participant) and of age-habits' responses 1-2 (2 of 3) fail permanently."""
    e, arm = request.tags.extra, request.tags.condition
    if arm == "with" and ((e["experiment"] == "politics-agreement" and e["response"] == 3)
                          or (e["experiment"] == "age-habits" and e["response"] >= 1)):
        raise BackendError("scripted failure of the with-profile arm", backend="fake/x", status=400)
    return informed_scorer(request)


def test_failures_in_one_arm_drop_the_unit_from_both_arms_and_the_verdict_leads_with_it() -> None:
    # without the shuffled control: a shuffled request can be the very request of another
    # participant's 'with' arm (same profile and transcript) and would answer it from the cache
    outcome = run(one_arm_failures, shuffled_control=False)  # first: the full run re-uses its successes
    full = run(informed_scorer, shuffled_control=False)
    rows = {r["experiment"]: r for r in outcome.summary.table}
    pol, age, coin = rows["politics-agreement"], rows["age-habits"], rows["coin-guess"]
    # politics: 12 of 48 responses lost their with-profile score; d is computed on responses 0-2 of
    # every participant in BOTH arms (the old code averaged 'without' over 4 responses and 'with' over 3)
    assert pol["responses"] == 36 and pol["participants"] == 12
    assert (pol["dropped_with"], pol["dropped_without"], pol["share_dropped"]) == (12, 0, 0.25)
    assert pol["d"] == pytest.approx(hand_d(full.results, "politics-agreement", {0, 1, 2}), rel=1e-9)
    assert pol["d_status"] == "dropped"
    # age-habits: 2 of 3 responses are gone, so no estimate at all
    assert age["d_status"] == "not enough data" and age.get("d") is None and age["dropped_with"] == 24
    # coin-guess: untouched, the same numbers as without failures
    full_coin = next(r for r in full.summary.table if r["experiment"] == "coin-guess")
    assert coin["d"] == pytest.approx(full_coin["d"]) and coin["share_dropped"] == 0.0
    pairing = outcome.summary.stats["pairing"]["fake/x"]
    assert pairing["politics-agreement"]["d"]["dropped"] == {"with": 12, "without": 0}
    assert outcome.summary.stats["d_over_experiments"]["fake/x"]["experiments"] == 2
    verdict = outcome.summary.verdict
    assert verdict.startswith("Failed requests broke the pairing")
    first = verdict.split(". ")[0]
    assert "politics-agreement (with vs without profile): 12 of 48 units (25%) dropped" in first
    assert "with 12, without 0" in first
    assert "age-habits (with vs without profile): 24 of 36 units (67%) dropped" in first and "not enough data" in first
    assert "coin-guess" not in first
    assert "Not enough data (over half the responses dropped) in 1 (age-habits)" in verdict
    # without failures nothing is dropped and the verdict does not speak of it
    assert all(r["share_dropped"] == 0 for r in full.summary.table)
    assert not full.summary.verdict.startswith("Failed")
