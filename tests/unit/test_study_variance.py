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
