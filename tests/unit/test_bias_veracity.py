"""Task A, veracity discernment: VDA, Welch's test by hand, headline files, and the study on the fake backend."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import pytest
from scipy import stats as sps

from personae.api import run_study
from personae.backends.base import Request
from personae.backends.fake import FakeBackend
from personae.bias.veracity import Rating, load_headlines, parse_rating, vda, veracity_table, welch
from personae.errors import ConfigError
from personae.spec import resolve_spec
from personae.studies.bias import BiasStudy

from .helpers import FAST_RETRY

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "bias"


def rating(persona: str | None, participant: int, headline: str, real: bool, value: int | None) -> Rating:
    return Rating(model="m", arm="none", template="you-are", persona=persona, participant=participant,
                  headline=headline, real=real, rating=value)


def test_vda_worked_example() -> None:
    # real rated 5 and 6 (mean 5.5), fake rated 2 and 1 (mean 1.5): 0.5 + 4 / 10 = 0.9
    rs = [rating("x", 0, "r1", True, 5), rating("x", 0, "r2", True, 6), rating("x", 0, "f1", False, 2),
          rating("x", 0, "f2", False, 1)]
    assert vda(rs) == pytest.approx(0.9)
    assert vda([rating("x", 0, "r1", True, 3), rating("x", 0, "f1", False, 3)]) == pytest.approx(0.5)
    assert vda([rating("x", 0, "r1", True, 1), rating("x", 0, "f1", False, 6)]) == pytest.approx(0.0)


def test_welch_equals_the_textbook_formula() -> None:
    a, b = [0.6, 0.7, 0.65, 0.8, 0.75], [0.5, 0.55, 0.45, 0.6]
    w = welch(a, b)
    ma, mb = sum(a) / 5, sum(b) / 4
    va, vb = sps.tvar(a), sps.tvar(b)
    se = math.sqrt(va / 5 + vb / 4)
    df = (va / 5 + vb / 4) ** 2 / ((va / 5) ** 2 / 4 + (vb / 4) ** 2 / 3)  # Welch-Satterthwaite
    assert w["t"] == pytest.approx((ma - mb) / se)
    assert w["df"] == pytest.approx(df)
    assert w["p"] == pytest.approx(2 * sps.t.sf(abs((ma - mb) / se), df))
    q = sps.t.ppf(0.975, df)
    assert w["ci"] == pytest.approx([ma - mb - q * se, ma - mb + q * se])


def test_a_participant_with_an_unparsed_rating_is_dropped_and_counted() -> None:
    rs = []
    for p in range(3):
        rs += [rating(None, p, "r1", True, 5), rating(None, p, "f1", False, 2 if p else None)]
    rows, _ = veracity_table(rs)
    assert rows[0]["participants"] == 2 and rows[0]["dropped_participants"] == 1 and rows[0]["parse_failures"] == 1
    assert rows[0]["vda"] == pytest.approx(0.8)


def test_ratings_are_parsed_from_replies() -> None:
    assert [parse_rating(t) for t in ("4", "I'd say 5.", "Rating: 2/6", "10", "3.5", "none", None)] == \
        [4, 5, 2, None, None, None, None]


def test_headline_files_in_the_mist_layout_jsonl_and_yaml() -> None:
    mist = load_headlines("mist_layout.csv", DATA)
    assert [(h.id, h.real) for h in mist] == [("1", True), ("2", False), ("3", True), ("4", False)]
    assert mist[1].text == "Lawmakers Secretly Voted to Ban Home Gardens"
    assert [(h.id, h.real) for h in load_headlines("headlines.jsonl", DATA)] == [("a", True), ("b", False)]
    assert [(h.id, h.real) for h in load_headlines("headlines.yaml", DATA)] == [("x1", True), ("x2", False)]
    builtin = load_headlines("builtin", DATA)
    assert len(builtin) == 20 and sum(h.real for h in builtin) == 10
    with pytest.raises(ConfigError, match=r"bad_veracity.csv:3: field 'veracity': veracity 'maybe' is neither"):
        load_headlines("bad_veracity.csv", DATA)


def uniform(request: Request) -> float:
    return int.from_bytes(hashlib.sha256(request.model_dump_json(exclude={"tags"}).encode()).digest()[:8], "big") / 2**64


def spec(**options: Any) -> dict[str, Any]:
    return {"study": "bias", "model": "fake/x", "replicates": options.pop("replicates", 15), "seed": 5,
            "sampling": {"temperature": 0.7, "max_tokens": 8},
            "concurrency": {"requests": 8, "retry": dict(FAST_RETRY)},
            "options": {"tasks": ["veracity"], "identities": ["democrat", "republican"], "arms": ["none"],
                        "mode": "generate", "headlines_limit": 4, **options}}


def test_a_persona_that_believes_fake_headlines_is_found_and_no_effect_is_not() -> None:
    resolved = resolve_spec(spec())
    study = BiasStudy(resolved)
    assert len(study.headlines) == 8 and study.items == ()

    def respond(gullible: bool):
        def answer(request: Request) -> str:
            h = next(h for h in study.headlines if h.text in request.last_user())
            system = next((m.content for m in request.messages if m.role == "system"), "")
            u = uniform(request)
            if h.real:
                return str(4 + int(u * 3))  # 4-6
            if gullible and "a Republican" in system:
                return str(3 + int(u * 4))  # 3-6: poor discernment
            return str(1 + int(u * 3))  # 1-3
        return answer

    backend = FakeBackend("fake/x", responder=respond(True))
    outcome = run_study(resolved, backends={"fake/x": backend})
    assert len(backend.history) == 7 * 8 * 15
    tests = {t["comparison"]: t for t in outcome.summary.stats["veracity_tests"]}
    assert set(tests) == {"democrat vs no persona", "republican vs no persona", "democrat vs republican"}
    assert tests["republican vs no persona"]["ci"][1] < 0 and tests["republican vs no persona"]["p_holm"] < 0.05
    assert tests["democrat vs republican"]["ci"][0] > 0
    assert tests["democrat vs no persona"]["ci"][0] < 0 < tests["democrat vs no persona"]["ci"][1]
    rows = {r["persona"]: r for r in outcome.summary.table if r["task"] == "veracity"}
    assert rows["none"]["participants"] == 15 and rows["democrat"]["participants"] == 45  # 3 templates x 15
    # true VDA of the plain persona: 0.5 + (5 - 2) / 10 = 0.8
    assert rows["none"]["vda_ci_low"] < 0.8 < rows["none"]["vda_ci_high"]
    assert "2 of 3 comparisons differ" in outcome.summary.verdict
    # each difference sits next to its split-half noise floor; the planted one is far outside it
    planted = tests["republican vs no persona"]
    assert planted["noise_floor"] is not None and abs(planted["diff"]) > 2 * planted["noise_floor"]
    assert planted["within_noise_floor"] is False and rows["republican"]["vda_noise_floor"] == planted["noise_floor"]
    assert rows["republican"]["vda_diff"] == planted["diff"] and "vda_diff" not in rows["none"]

    # a null run is a false positive with probability up to alpha (seed 6 is one: p 0.003); the rate is
    # checked over 200 simulations below, so this run only shows the verdict's null wording
    null = run_study(resolve_spec({**spec(), "seed": 7}), backends={"fake/x": FakeBackend("fake/x",
                                                                                          responder=respond(False))})
    assert "none of the 3 comparisons" in null.summary.verdict


def test_logprob_mode_scores_six_ratings_per_headline() -> None:
    resolved = resolve_spec(spec(mode="logprob", replicates=10, identities=["democrat"], templates=["you-are"]))
    study = BiasStudy(resolved)

    def scorer(request: Request) -> float:
        h = next(h for h in study.headlines if h.text in request.last_user())
        return 0.0 if request.continuation == ("6" if h.real else "1") else -20.0

    backend = FakeBackend("fake/x", scorer=scorer)
    outcome = run_study(resolved, backends={"fake/x": backend})
    assert len(backend.history) == 2 * 8 * 6
    rows = {r["persona"]: r for r in outcome.summary.table}
    assert rows["democrat"]["vda"] == pytest.approx(1.0) and rows["democrat"]["participants"] == 10


@pytest.mark.slow  # make test runs it; the pre-stop check's 60 s does not
def test_the_vda_false_positive_rate_under_no_effect_is_nominal() -> None:
    """1,000 null simulations: two personas' participants with the same VDA distribution, Welch at 0.05.
    Welch's test is exact-in-size, not conservative, so the observed rate scatters around 5%: it must
    not exceed 5% by more than binomial noise (one-sided exact binomial test at 0.01)."""
    import numpy as np  # noqa: PLC0415

    rng = np.random.default_rng(2026)
    hits, sims = 0, 1000
    for _ in range(sims):
        a, b = rng.normal(0.75, 0.06, 45), rng.normal(0.75, 0.06, 15)
        w = welch(list(a), list(b))
        hits += w["p"] < 0.05 and (w["ci"][0] > 0 or w["ci"][1] < 0)
    assert sps.binomtest(hits, sims, 0.05, alternative="greater").pvalue > 0.01, hits
    assert hits / sims < 0.065
