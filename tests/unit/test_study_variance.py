"""The variance study on the fake backend: persona differences vs run-to-run noise."""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from personae.api import run_study
from personae.backends.base import Generation, Request
from personae.backends.fake import FakeBackend
from personae.errors import BackendError
from personae.items import load_items
from personae.parsing import parse_choice
from personae.runner import Result
from personae.spec import resolve_spec
from personae.stats.dispersion import between_within
from personae.studies.variance import VarianceStudy, analyze_variance

from .helpers import FAST_RETRY, read_json

ROOT = Path(__file__).resolve().parents[2]
CHAOS = ROOT / "tests" / "data" / "chaosnli_sample.jsonl"
PANEL = ["builtin:democrat", "builtin:republican", "builtin:religious", "builtin:atheist"]


def uniform(request: Request, salt: str = "") -> float:
    digest = hashlib.sha256((salt + request.cache_key()).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def system_of(request: Request) -> str:
    return next((m.content for m in request.messages if m.role == "system"), "")


def sample(request: Request, probs: Sequence[float], letters: str = "ABCDE") -> str:
    u, acc = uniform(request), 0.0
    for letter, p in zip(letters, probs):
        acc += p
        if u < acc:
            return letter
    return letters[len(probs) - 1]


def leaning(request: Request) -> str:
    """Democrats lean to 'disagree', Republicans to 'agree'; the other personas answer at random."""
    system = system_of(request)
    if "a Democrat" in system:
        return sample(request, [0.6, 0.3, 0.1, 0.0, 0.0])
    if "a Republican" in system:
        return sample(request, [0.0, 0.0, 0.1, 0.3, 0.6])
    return sample(request, [0.2] * 5)


def spec(*, personas: Sequence[str] = PANEL, replicates: int = 5, **options: Any) -> dict[str, Any]:
    return {"study": "variance", "model": "fake/x", "personas": list(personas), "replicates": replicates,
            "seed": 3, "sampling": {"temperature": 1.0, "max_tokens": 4},
            "concurrency": {"requests": 8, "retry": dict(FAST_RETRY)},
            "options": {"limit": 8, "n_permutations": 500, "n_bootstrap": 1000, **options}}


def run(data: dict[str, Any], responder: Callable[[Request], str], out: Path | None = None) -> Any:
    return run_study(resolve_spec(data), out_dir=out, backends={"fake/x": FakeBackend("fake/x", responder=responder)})


def test_personas_with_different_answer_distributions_are_detected(tmp_path: Path) -> None:
    outcome = run(spec(), leaning, tmp_path / "run")
    pooled = outcome.summary.stats["pooled"]["fake/x"]
    rows = outcome.summary.table
    assert len(rows) == 8 and all(r["answers"] == 4 * 5 for r in rows)
    assert pooled["items_tested"] == 8
    assert pooled["share_items_significant"] >= 0.75
    assert pooled["more_items_than_chance"]["p_value"] < 0.05
    assert pooled["ratio"]["estimate"] > pooled["null_ratio_mean"]
    assert pooled["ratio"]["ci_low"] > pooled["null_ratio_mean"]
    assert pooled["share_persona"]["estimate"] > 0.3
    assert pooled["share_run_to_run"] == pytest.approx(1 - pooled["share_persona"]["estimate"])
    assert "components" in pooled["mixed_model"]  # opinion items: numeric answers, mixed model fitted
    assert "fake/x: persona differences are larger than run-to-run noise" in outcome.summary.verdict
    # the no-persona panel has the same size as the persona panel, and is left out of the dispersion
    per_item = defaultdict(lambda: defaultdict(int))
    for r in outcome.results:
        per_item[r.request.tags.item][r.request.tags.condition == "baseline"] += 1
    assert all(v[True] == v[False] == 20 for v in per_item.values())
    # D_between / D_within of one item recomputed from the raw answers (numeric: option position)
    study = VarianceStudy(resolve_spec(spec()))
    item = study.items[0]
    mine = [r for r in outcome.results if r.request.tags.item == item.id and r.request.tags.condition != "baseline"]
    codes = [item.letters.index(parse_choice(r.text, item.letters, item.choices) or "") for r in mine]
    b, w = between_within(codes, [r.request.tags.condition for r in mine], kind="numeric")
    assert rows[0]["d_between"] == pytest.approx(b) and rows[0]["d_within"] == pytest.approx(w)
    assert read_json(tmp_path / "run" / "summary.json")["verdict"] == outcome.summary.verdict


@pytest.mark.slow  # a simulation of hundreds of studies: runs in make test, not in test-fast
def test_identical_persona_distributions_false_positive_rate_over_200_simulated_nulls() -> None:
    # 200 null datasets x 8 items: every persona samples from the same (item-specific) answer
    # distribution. Per-item rate of p < 0.05 must be <= 0.05 + a Monte Carlo tolerance of 2.5
    # binomial SEs over the 1600 tests (0.05 + 2.5 * 0.0054 = 0.064); the verdict must say
    # "are not larger" in at least 90% of simulations (its binomial test rejects ~5% by design).
    study = VarianceStudy(resolve_spec(spec(answer_type="labels", baseline=False, n_permutations=200)))
    requests = study.plan([])
    keys = [r.cache_key() for r in requests]
    sims, significant, tests, not_larger = 200, 0, 0, 0
    for sim in range(sims):
        rng = np.random.default_rng(20_000 + sim)
        probs = {i.id: rng.dirichlet(np.ones(5)) for i in study.items}
        results = [Result(q, k, generation=Generation(text="ABCDE"[rng.choice(5, p=probs[q.tags.item or ""])]))
                   for q, k in zip(requests, keys)]
        summary = analyze_variance(study, results)
        ps = [r["p_value"] for r in summary.table if r.get("p_value") is not None]
        significant += sum(p < 0.05 for p in ps)
        tests += len(ps)
        not_larger += "persona differences are not larger than run-to-run noise" in summary.verdict
    assert tests == 8 * sims
    assert significant / tests <= 0.05 + 2.5 * math.sqrt(0.05 * 0.95 / tests)
    assert not_larger / sims >= 0.9


def test_an_item_everyone_answers_alike_does_not_break_the_pooled_figures() -> None:
    # regression: an item with one answer from everybody has no variance (share NaN); the pooled
    # bootstrap used to raise on the NaN
    def respond(request: Request) -> str:
        return "C" if "Social media" in request.last_user() else leaning(request)

    outcome = run(spec(limit=4, replicates=3, answer_type="labels"), respond)
    rows = {r["item"]: r for r in outcome.summary.table}
    flat = rows["opinion-01"]
    assert flat["d_within"] == 0 and flat["d_between"] == 0 and flat["p_value"] == 1.0
    assert math.isnan(flat["share_persona"])
    pooled = outcome.summary.stats["pooled"]["fake/x"]
    others = [r["share_persona"] for i, r in rows.items() if i != "opinion-01"]
    assert pooled["share_persona"]["estimate"] == pytest.approx(np.mean(others))
    assert pooled["share_persona"]["n"] == 3


def test_chaosnli_items_report_jsd_to_humans_for_panel_and_baseline() -> None:
    items = {i.id: i for i in load_items(CHAOS, "chaosnli")}
    premise = {i.id: i.question.split("\n")[0] for i in items.values()}

    def respond(request: Request) -> str:  # personas sample from the human labels; no persona: majority
        item = next(items[k] for k, p in premise.items() if p in request.last_user())
        human = item.human_distribution()
        assert human is not None
        if not system_of(request):
            return "ABC"[int(np.argmax(human))]
        return sample(request, human, "ABC")

    outcome = run(spec(items=str(CHAOS), items_format="chaosnli", answer_type="labels"), respond)
    rows = outcome.summary.table
    assert {r["item"] for r in rows} == set(items)
    for row in rows:
        human = np.array(items[row["item"]].human_distribution())
        mine = [r for r in outcome.results if r.request.tags.item == row["item"]]
        panel = [parse_choice(r.text, "ABC") for r in mine if r.request.tags.condition != "baseline"]
        base = [parse_choice(r.text, "ABC") for r in mine if r.request.tags.condition == "baseline"]
        assert len(panel) == len(base) == 20
        p = np.array([panel.count(x) for x in "ABC"]) / len(panel)
        q = np.array([base.count(x) for x in "ABC"]) / len(base)
        # reference: scipy's Jensen-Shannon distance, squared, base 2
        assert row["jsd_panel_human"] == pytest.approx(jensenshannon(p, human, base=2) ** 2)
        assert row["jsd_baseline_human"] == pytest.approx(jensenshannon(q, human, base=2) ** 2)
        assert row["jsd_panel_human"] < row["jsd_baseline_human"]
    jsd = outcome.summary.stats["pooled"]["fake/x"]["jsd_to_humans"]
    assert jsd["items"] == 3
    assert jsd["persona_panel"] == pytest.approx(np.mean([r["jsd_panel_human"] for r in rows]))
    assert jsd["no_persona_panel"] == pytest.approx(np.mean([r["jsd_baseline_human"] for r in rows]))
    diffs = np.array([r["jsd_panel_human"] - r["jsd_baseline_human"] for r in rows])
    assert jsd["difference"] == pytest.approx(diffs.mean()) and jsd["difference_median"] == pytest.approx(np.median(diffs))
    assert jsd["difference_ci"][0] <= jsd["difference"] <= jsd["difference_ci"][1]
    assert "p_value" in jsd["wilcoxon"]
    # the verdict carries the JSD comparison, and says what the CI says
    assert "Against the human label distributions (3 items)" in outcome.summary.verdict
    closer = jsd["difference_ci"][1] < 0
    assert ("the persona panel is closer to the humans" in outcome.summary.verdict) == closer




def test_chaosnli_alphanli_file_runs_as_two_option_items_against_its_human_labels() -> None:
    path = ROOT / "tests" / "data" / "chaosnli_alphanli_sample.jsonl"
    items = {i.id: i for i in load_items(path)}

    def respond(request: Request) -> str:  # every persona and the baseline sample from the human labels
        item = next(i for i in items.values() if i.question.split("\n")[0] in request.last_user())
        assert "A. " + item.choices[0] in request.last_user() and "C. " not in request.last_user()
        human = item.human_distribution()
        assert human is not None
        return sample(request, human, "AB")

    outcome = run(spec(items=str(path)), respond)  # items_format: auto
    rows = outcome.summary.table
    assert {r["item"] for r in rows} == set(items)
    assert all(r.get("jsd_panel_human") is not None for r in rows)
    assert outcome.summary.stats["pooled"]["fake/x"]["jsd_to_humans"]["items"] == 3


# ---------------------------------------------------------------- failed requests in one arm only (issue 7)


def failing(respond: Callable[[Request], str], when: Callable[[Request], bool]) -> Callable[[Request], str]:
    """`respond`, except that the requests `when` picks fail permanently (a 400: no retry)."""
    def reply(request: Request) -> str:
        if when(request):
            raise BackendError("scripted failure of one arm", backend="fake/x", status=400)
        return respond(request)
    return reply


def item_of(study: VarianceStudy, request: Request) -> str:
    return next(i.id for i in study.items if i.question in request.last_user())


def test_items_a_persona_failed_are_dropped_from_the_dispersion_test_and_counted_against_it() -> None:
    data = spec()
    study = VarianceStudy(resolve_spec(data))
    ids = [i.id for i in study.items]
    lost = {ids[1]: 5, ids[4]: 4, ids[6]: 3}  # failed runs of the Democrat: 5 and 4 of 5 drop the item, 3 do not

    def democrat_fails(request: Request) -> bool:
        return "a Democrat" in system_of(request) and request.replicate < lost.get(item_of(study, request), 0)

    broken = run(data, failing(leaning, democrat_fails))
    full = run(data, leaning)  # the same answers where the broken run had them (cache)
    pairing = broken.summary.stats["pairing"]["fake/x"]
    assert set(pairing) == {"dispersion"}  # no human labels: no JSD comparison
    assert pairing["dispersion"] == {"units": 8, "paired": 6, "dropped": {"democrat": 2, "republican": 0,
                                     "religious": 0, "atheist": 0}, "share_dropped": 0.25, "status": "dropped"}
    rows = {r["item"]: r for r in broken.summary.table}
    full_rows = {r["item"]: r for r in full.summary.table}
    assert {i for i, r in rows.items() if r.get("p_value") is None} == {ids[1], ids[4]}
    assert [rows[i].get("failed_panel") for i in ids] == [lost.get(i) for i in ids]
    assert not any("failed_baseline" in r for r in rows.values())  # the no-persona panel lost nothing
    for i in set(ids) - {ids[1], ids[4], ids[6]}:  # untouched items: the same test as in the full run
        assert (rows[i]["d_between"], rows[i]["p_value"]) == (full_rows[i]["d_between"], full_rows[i]["p_value"])
    assert rows[ids[6]]["answers"] == 4 * 5 - 3
    pooled = broken.summary.stats["pooled"]["fake/x"]
    assert pooled["items_tested"] == 6
    # the mixed model sees only the items that entered: 6 items' persona answers
    assert pooled["mixed_model"]["n"] == sum(rows[i]["answers"] for i in ids if i not in (ids[1], ids[4]))
    verdict = broken.summary.verdict
    assert verdict.startswith("Failed requests broke the pairing in 1 comparison (more than 5% of units dropped): "
                              "fake/x personas vs run-to-run noise: 2 of 8 units (25%) dropped because an arm "
                              "failed (democrat 2, republican 0, religious 0, atheist 0).")
    assert "of 6 items significant at 0.05" in verdict
    assert not full.summary.verdict.startswith("Failed") and full.summary.stats["pairing"]["fake/x"]["dispersion"][
        "status"] == "ok"


def test_a_persona_failing_most_items_leaves_not_enough_data_rather_than_an_estimate() -> None:
    data = spec()
    study = VarianceStudy(resolve_spec(data))
    gone = {i.id for i in study.items[:5]}  # 5 of 8 items: 62% dropped

    outcome = run(data, failing(leaning, lambda r: "a Republican" in system_of(r) and item_of(study, r) in gone))
    pairing = outcome.summary.stats["pairing"]["fake/x"]["dispersion"]
    assert (pairing["paired"], pairing["dropped"]["republican"], pairing["status"]) == (3, 5, "not enough data")
    pooled = outcome.summary.stats["pooled"]["fake/x"]
    assert pooled == {"items_tested": 0}
    assert all(r.get("p_value") is None for r in outcome.summary.table)
    verdict = outcome.summary.verdict
    assert verdict.startswith("Failed requests broke the pairing in 1 comparison")
    assert "5 of 8 units (62%) dropped because an arm failed (democrat 0, republican 5" in verdict
    assert "not enough data, no estimate" in verdict
    assert ("fake/x: not enough data to compare personas with run-to-run noise (3 of 8 items answered at least "
            "twice by every persona), no estimate.") in verdict
    assert "persona differences are" not in verdict


def chaos_respond(items: dict[str, Any]) -> Callable[[Request], str]:
    def respond(request: Request) -> str:  # everybody samples from the human labels
        item = next(i for i in items.values() if i.question.split("\n")[0] in request.last_user())
        return sample(request, item.human_distribution(), "ABC")
    return respond


def test_one_failed_no_persona_request_drops_its_item_from_the_jsd_comparison_only() -> None:
    items = {i.id: i for i in load_items(CHAOS, "chaosnli")}
    data = spec(items=str(CHAOS), items_format="chaosnli", answer_type="labels")
    study = VarianceStudy(resolve_spec(data))
    first = study.items[0]

    def baseline_fails(request: Request) -> bool:  # 1 of the 20 no-persona answers to the first item
        return not system_of(request) and item_of(study, request) == first.id and request.replicate == 7

    broken = run(data, failing(chaos_respond(items), baseline_fails))
    full = run(data, chaos_respond(items))
    pairing = broken.summary.stats["pairing"]["fake/x"]
    assert pairing["jsd_to_humans"] == {"units": 3, "paired": 2, "dropped": {"persona panel": 0,
                                        "no-persona panel": 1}, "share_dropped": pytest.approx(1 / 3),
                                        "status": "dropped"}
    assert pairing["dispersion"]["status"] == "ok"  # the persona panel lost nothing: every item tested
    rows = {r["item"]: r for r in broken.summary.table}
    assert rows[first.id]["failed_baseline"] == 1 and "failed_panel" not in rows[first.id]
    assert "jsd_baseline_human" not in rows[first.id] and "jsd_panel_human" not in rows[first.id]
    assert all(r.get("p_value") is not None for r in rows.values())
    jsd = broken.summary.stats["pooled"]["fake/x"]["jsd_to_humans"]
    kept = [r for r in full.summary.table if r["item"] != first.id]
    assert jsd["items"] == 2
    assert jsd["persona_panel"] == pytest.approx(np.mean([r["jsd_panel_human"] for r in kept]))
    assert jsd["no_persona_panel"] == pytest.approx(np.mean([r["jsd_baseline_human"] for r in kept]))
    verdict = broken.summary.verdict
    assert verdict.startswith("Failed requests broke the pairing in 1 comparison (more than 5% of units dropped): "
                              "fake/x persona panel vs no-persona panel (JSD to humans): 1 of 3 units (33%) dropped "
                              "because an arm failed (persona panel 0, no-persona panel 1).")
    assert "Against the human label distributions (2 items)" in verdict
    assert "Against the human label distributions (3 items)" in full.summary.verdict


def test_the_no_persona_panel_failing_on_most_items_gives_no_jsd_estimate() -> None:
    items = {i.id: i for i in load_items(CHAOS, "chaosnli")}
    data = spec(items=str(CHAOS), items_format="chaosnli", answer_type="labels")
    study = VarianceStudy(resolve_spec(data))
    gone = {i.id for i in study.items[1:]}

    outcome = run(data, failing(chaos_respond(items), lambda r: not system_of(r) and item_of(study, r) in gone))
    pairing = outcome.summary.stats["pairing"]["fake/x"]["jsd_to_humans"]
    assert (pairing["paired"], pairing["dropped"], pairing["status"]) == (
        1, {"persona panel": 0, "no-persona panel": 2}, "not enough data")
    pooled = outcome.summary.stats["pooled"]["fake/x"]
    assert "jsd_to_humans" not in pooled and pooled["items_tested"] == 3  # the dispersion test is unaffected
    assert not any("jsd_panel_human" in r for r in outcome.summary.table)
    verdict = outcome.summary.verdict
    assert verdict.startswith("Failed requests broke the pairing in 1 comparison")
    assert ("Against the human label distributions: not enough data (1 of 3 items answered in full by both panels), "
            "no estimate.") in verdict
    assert "mean JSD" not in verdict and "closer to the humans" not in verdict
