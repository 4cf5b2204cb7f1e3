"""The bias study on the fake backend: a planted identity effect is recovered, no effect is not found."""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path
from typing import Any

import pytest

from personae.api import run_study
from personae.backends.base import Request
from personae.backends.fake import FakeBackend, FakeOptions
from personae.bias.analysis import congruence_effect
from personae.bias.instruments import NumeracyItem
from personae.spec import resolve_spec
from personae.studies.bias import BiasStudy, draw, option_probabilities

from .helpers import FAST_RETRY

IDENTITIES = {"a Democrat": "democrat", "a Republican": "republican"}


def uniform(request: Request, salt: str = "") -> float:
    digest = hashlib.sha256((salt + request.model_dump_json(exclude={"tags"})).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def spec(**options: Any) -> dict[str, Any]:
    replicates = options.pop("replicates", 20)
    return {"study": "bias", "model": "fake/x", "replicates": replicates, "seed": 7,
            "sampling": {"temperature": 0.7, "max_tokens": 8},
            "concurrency": {"requests": 8, "retry": dict(FAST_RETRY)},
            "options": {"tasks": ["numeracy"], "only": ["gun-control"], "identities": ["democrat", "republican"],
                        "mode": "generate",
                        "arms": ["none"], **options}}


def persona_of(request: Request) -> str | None:
    system = next((m.content for m in request.messages if m.role == "system"), "")
    return next((pid for words, pid in IDENTITIES.items() if words in system), None)


def item_of(study: BiasStudy, request: Request) -> NumeracyItem:
    return next(i for i in study.items if request.last_user().startswith(i.text))


def responder(study: BiasStudy, p_congruent: float, p_incongruent: float, p_other: float = 0.7):
    """Correct with p_congruent when the truth fits the persona's identity (identity frame only)."""
    def respond(request: Request) -> str:
        item = item_of(study, request)
        c = item.congruence(persona_of(request)) if item.frame == "identity" else None
        p = p_other if c is None else p_congruent if c else p_incongruent
        right = uniform(request) < p
        return item.answer if right else ("B" if item.answer == "A" else "A")
    return respond


def rows(summary: Any, arm: str = "none") -> dict[str, dict[str, Any]]:
    return {r["persona"]: r for r in summary.table if r["arm"] == arm}


def test_a_planted_identity_effect_is_recovered_within_its_ci() -> None:
    resolved = resolve_spec(spec())
    study = BiasStudy(resolved)
    backend = FakeBackend("fake/x", responder=responder(study, 0.9, 0.45))  # planted RR = 2.0
    outcome = run_study(resolved, backends={"fake/x": backend})
    # 3 templates x 2 personas + no persona, 8 items, 20 participants
    assert len(backend.history) == (3 * 2 + 1) * 8 * 20
    systems = {next((m.content for m in r.messages if m.role == "system"), "") for r in backend.history}
    assert any(s.startswith("Take the role of a Democrat") for s in systems)
    assert any(s.startswith("Adopt the identity of a Republican") for s in systems)
    assert any(s.startswith("You are Dana, a Democrat") for s in systems)
    table = rows(outcome.summary)
    for pid in ("democrat", "republican"):
        r = table[pid]
        assert r["n_congruent"] == r["n_incongruent"] == 3 * 20 * 2  # templates x participants x congruent items
        assert r["rr_ci"][0] < 2.0 < r["rr_ci"][1] and r["rr_ci"][0] > 1
        assert congruence_effect(r)
        # 60 participants (3 templates x 20): the split-half noise floor of log RR is well under log 2
        assert r["rr_noise_floor"] is not None and 1 < r["rr_noise_floor"] < 1.4
        assert math.log(r["rr"]) > 2 * math.log(r["rr_noise_floor"]) and r["within_noise_floor"] is False
        assert f"{pid} RR {r['rr']:.2f} {_ci(r['rr_ci'])}, noise floor x{r['rr_noise_floor']:.2f}" in \
            outcome.summary.verdict
        assert r["control_rr_ci"][0] < 1 < r["control_rr_ci"][1]  # no effect planted on the neutral control
        assert r["did"]["ci"][0] > 0 and r["p_did_holm"] < 0.05
    assert "read the table differently when the truth fit their identity" in outcome.summary.verdict
    assert "beyond the neutral control" in outcome.summary.verdict
    assert "(statsmodels GLM, binomial family, logit link)" in table["democrat"]["did"]["model"]
    assert "not distinguishable from noise" not in outcome.summary.verdict
    assert "200 seeded random splits" in table["democrat"]["rr_noise_floor_method"]


def _ci(ci: list[float]) -> str:
    return f"[{ci[0]:.2f}, {ci[1]:.2f}]"


@pytest.mark.slow  # make test runs it; the pre-stop check's 60 s does not
def test_the_report_has_the_task_b_and_task_a_figures(tmp_path: Path) -> None:
    resolved = resolve_spec(spec(tasks=["numeracy", "veracity"], arms=["none", "step-by-step"], replicates=4,
                                 headlines_limit=2))
    study = BiasStudy(resolved)
    numeracy = responder(study, 0.9, 0.45)

    def respond(request: Request) -> str:
        if "How accurate is this news headline" in request.last_user():
            return str(1 + int(uniform(request, "vda") * 6))
        return numeracy(request)

    outcome = run_study(resolved, tmp_path / "run", backends={"fake/x": FakeBackend("fake/x", responder=respond)})
    figs = study.figures(outcome.results, outcome.summary)
    captions = [c for c, _ in figs]
    assert [c.split(":")[0] for c in captions] == ["Task B (arm none)", "Task B (arm step-by-step)",
                                                   "Task A (arm none)", "Task A (arm step-by-step)"]
    for caption, fig in figs:
        ax = fig.axes[0]
        points = {c.get_label(): len(c.lines[0].get_xdata()) for c in ax.containers}
        labels = [t.get_text() for t in ax.get_yticklabels()]
        if caption.startswith("Task B"):
            # 2 identity personas on 4 series, the no persona on its 2
            assert points == {"congruent (identity frame)": 2, "incongruent (identity frame)": 2,
                              "control: pseudo-congruent (neutral frame)": 2,
                              "control: pseudo-incongruent (neutral frame)": 2,
                              "no persona: identity frame": 1, "no persona: neutral frame": 1}
            assert labels == ["no persona", "democrat", "republican"]  # top to bottom
            blue = ax.containers[0]  # each point's CI is the row's Wilson interval
            arm = caption.split("arm ")[1].split(")")[0]
            r = next(r for r in outcome.summary.table if (r["task"], r["arm"], r["persona"]) == ("numeracy", arm,
                                                                                                 "democrat"))
            seg = blue.lines[2][0].get_segments()[list(blue.lines[0].get_xdata()).index(r["acc_congruent"])]
            assert [seg[0][0], seg[1][0]] == pytest.approx(r["acc_congruent_ci"])
        else:
            assert points == {"no persona (baseline)": 1, "persona": 2}
            assert labels == ["no persona", "democrat", "republican"]
            arm = caption.split("arm ")[1].split(")")[0]
            base = next(r for r in outcome.summary.table if (r["task"], r["arm"], r["persona"]) == ("veracity", arm,
                                                                                                    "none"))
            assert ax.containers[0].lines[0].get_xdata()[0] == pytest.approx(base["vda"])
            refs = sorted(line.get_xdata()[0] for line in ax.lines if line.get_linestyle() in ("--", ":"))
            assert refs == pytest.approx(sorted([base["vda"], 0.5]))  # the no-persona VDA and no discernment
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert len(re.findall(r"data:image/png;base64,", html)) == 4
    for caption in captions:
        assert caption.split(":")[0] in html
    assert "rr_noise_floor" in html and "vda_noise_floor" in html


def test_with_no_effect_the_ci_covers_one_and_the_verdict_finds_nothing() -> None:
    resolved = resolve_spec(spec())
    study = BiasStudy(resolved)
    outcome = run_study(resolved, backends={"fake/x": FakeBackend("fake/x", responder=responder(study, 0.7, 0.7))})
    for pid in ("democrat", "republican"):
        r = rows(outcome.summary)[pid]
        assert r["rr_ci"][0] < 1 < r["rr_ci"][1]
        assert r["rr_noise_floor"] is not None and not congruence_effect(r)
    assert "none of the 2 identity personas shows an identity-congruence effect" in outcome.summary.verdict


def test_failed_requests_are_counted_not_scored() -> None:
    resolved = resolve_spec(spec(replicates=3))
    study = BiasStudy(resolved)
    swapped = "| Cities that passed the ban | 88 | 212 |"  # the identity frame's swapped framing (2 items of 8)
    backend = FakeBackend("fake/x", FakeOptions(fail_when=swapped), responder=responder(study, 0.7, 0.7))
    outcome = run_study(resolved, backends={"fake/x": backend})
    assert outcome.summary.counts["errors"] == 7 * 2 * 3
    r = rows(outcome.summary)["democrat"]
    assert r["errors"] == 3 * 2 * 3 and r["answers"] == 3 * 8 * 3
    # the swapped framing is where the truth fits a Democrat: the congruent side is empty, not scored wrong
    assert r["n_congruent"] == 0 and r["n_incongruent"] == 3 * 3 * 2 and r["rr"] is None
    assert rows(outcome.summary)["republican"]["n_incongruent"] == 0
    assert outcome.summary.verdict.startswith("42 of 168 requests failed (counted, not scored).")


@pytest.mark.slow  # make test runs it; the pre-stop check's 60 s does not
def test_debiasing_arms_change_the_prompt_and_are_compared_with_none() -> None:
    resolved = resolve_spec(spec(arms=["none", "step-by-step", "accuracy-prime"], replicates=10))
    study = BiasStudy(resolved)

    def respond(request: Request) -> str:  # the prime removes the bias and lowers nothing; step-by-step does nothing
        primed = any("strives for accuracy" in m.content for m in request.messages)
        return responder(study, 0.7 if primed else 0.95, 0.7 if primed else 0.4)(request)

    backend = FakeBackend("fake/x", responder=respond)
    outcome = run_study(resolved, backends={"fake/x": backend})
    users = [r.last_user() for r in backend.history]
    assert sum(u.endswith("Think step by step.\nAnswer:") for u in users) == len(users) // 3
    systems = [next((m.content for m in r.messages if m.role == "system"), "") for r in backend.history]
    assert any(s.startswith("Take the role of a Democrat who has a skeptical attitude and strives for accuracy. ")
               for s in systems)
    assert "You are a person who has a skeptical attitude and strives for accuracy." in systems  # no persona, primed
    debias = {d["arm"]: d for d in outcome.summary.stats["debias"]}
    assert debias["accuracy-prime"]["gap"]["ci"][1] < 0 and debias["step-by-step"]["gap"]["ci"][0] < 0 < \
        debias["step-by-step"]["gap"]["ci"][1]
    assert "Arm accuracy-prime shrinks the congruence gap" in outcome.summary.verdict
    assert "Arm step-by-step does not shrink the congruence gap" in outcome.summary.verdict


@pytest.mark.slow  # make test runs it; the pre-stop check's 60 s does not
def test_logprob_mode_scores_each_option_once_and_participants_draw_from_it(tmp_path: Path) -> None:
    resolved = resolve_spec(spec(mode="logprob", replicates=30))
    study = BiasStudy(resolved)

    def scorer(request: Request) -> float:  # p(correct) = 0.8 everywhere
        return 0.0 if request.continuation == item_of(study, request).answer else -1.3862943611198906

    backend = FakeBackend("fake/x", scorer=scorer)
    outcome = run_study(resolved, tmp_path / "run", backends={"fake/x": backend})
    assert {r.kind for r in backend.history} == {"score"}
    assert len(backend.history) == 7 * 8 * 2  # conditions x items x options, not x participants
    r = rows(outcome.summary)["democrat"]
    assert r["answers"] == 3 * 8 * 30 and r["accuracy_identity"] == pytest.approx(0.8, abs=0.07)
    again_backend = FakeBackend("fake/x", scorer=scorer)
    again = run_study(resolved, tmp_path / "run2", backends={"fake/x": again_backend})
    assert again_backend.history == [] and again.summary.table == outcome.summary.table


def test_option_draws_follow_the_probabilities() -> None:
    probs = option_probabilities({"A": 0.0, "B": -1.3862943611198906})  # 0.8 / 0.2
    assert probs == pytest.approx({"A": 0.8, "B": 0.2})
    assert [draw(probs, u) for u in (0.0, 0.79, 0.81, 0.999)] == ["A", "A", "B", "B"]


def test_in_logprob_mode_a_failed_score_makes_every_participant_of_the_item_an_error() -> None:
    resolved = resolve_spec(spec(mode="logprob", replicates=5, templates=["you-are"]))
    swapped = "| Cities that passed the ban | 88 | 212 |"
    backend = FakeBackend("fake/x", FakeOptions(fail_when=swapped), scorer=lambda r: -1.0 if r.continuation == "A"
                          else -2.0)
    outcome = run_study(resolved, backends={"fake/x": backend})
    r = rows(outcome.summary)["democrat"]
    assert r["errors"] == 2 * 5 and r["parse_failures"] == 0  # 2 failed items x 5 participants, none unparsed
    assert outcome.summary.counts["parse_failures"] == 0
