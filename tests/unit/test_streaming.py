"""Streaming studies (issue 12, flat memory): a grid run holds no Result objects; its analysis is a
running tally that must say exactly what the analysis of the full list says, and its results are
read back from the store in plan order, across chunks, budget stops and a closed store."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import personae.api as api
from personae.api import run_study
from personae.executors import Budget
from personae.runs import StoredResults
from personae.spec import load_spec
from personae.store import Store
from personae.studies import get_study
from personae.studies.grid import CHART_ENDS, chart_rows

from .helpers import grid_spec, key, read_jsonl, write_spec

PERSONAS = ["builtin:pirate-captain", "builtin:toddler", "builtin:grumpy-farmer"]
QUESTIONS = ["How far is the moon?", "Name a fruit. FAILME", "What is rain?", "Why is the sky blue?"]


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 5 requests, so that a 48-request wave crosses chunk boundaries (4,096 in use)."""
    monkeypatch.setattr(api, "WAVE_CHUNK", 5)


def _spec(tmp_path: Path, questions: list[str] = QUESTIONS, fail_when: str | None = "FAILME") -> Any:
    backend = {"fail_when": fail_when} if fail_when else {}
    data = grid_spec(questions, personas=PERSONAS, replicates=3, backend=backend)
    return load_spec(write_spec(tmp_path, data))


def test_streamed_summary_equals_the_analysis_of_the_full_list(tmp_path: Path) -> None:
    resolved = _spec(tmp_path)
    with Store(tmp_path / "s.sqlite") as st:
        out = run_study(resolved, tmp_path / "run", store=st)
        held = list(out.results)
    assert out.status == "complete_with_errors"
    assert len(held) == 4 * 4 * 3  # baseline + 3 personas, 4 questions, 3 replicates
    assert sum(not r.ok for r in held) == 4 * 3  # the FAILME question, counted not dropped
    again = get_study("grid")(resolved).analyze(held)
    assert out.summary is not None
    assert out.summary.table == again.table
    assert out.summary.verdict == again.verdict
    assert out.summary.counts == again.counts == {"requests": 48, "ok": 36, "errors": 12, "cached": 0}
    assert out.summary.stats == again.stats


def test_a_streaming_run_hands_back_the_store_in_plan_order(tmp_path: Path) -> None:
    resolved = _spec(tmp_path)
    plan = list(get_study("grid")(resolved).plan([]))
    with Store(tmp_path / "s.sqlite") as st:
        first = run_study(resolved, tmp_path / "run", store=st)
        assert isinstance(first.results, StoredResults)  # not a list of every Result
        assert [r.key for r in first.results] == [key(r) for r in plan]
        assert len(first.results) == len(plan)
        assert first.results[0].key == key(plan[0]) and first.results[-1].key == key(plan[-1])
        assert [r.key for r in first.results[6:13]] == [key(r) for r in plan[6:13]]
        with pytest.raises(IndexError):
            first.results[len(plan)]
        assert not any(r.cached for r in first.results)
        fixed = _spec(tmp_path, fail_when=None)  # the same keys (fail_when is not in the fingerprint)
        second = run_study(fixed, tmp_path / "run2", store=st)
        assert second.stats.backend_calls == 4 * 3  # only the failed requests are asked again
        assert [r.cached for r in second.results] == [r.ok for r in first.results]
    rows = read_jsonl(tmp_path / "run2" / "results.jsonl")
    assert sorted(r["key"] for r in rows) == sorted(key(r) for r in plan)  # every row (as they finished), flushed


def test_results_are_readable_after_the_store_is_closed(tmp_path: Path) -> None:
    resolved = _spec(tmp_path)
    with Store(tmp_path / "s.sqlite") as st:
        out = run_study(resolved, store=st)
    assert st.closed
    got = list(out.results)  # reopened from its file
    assert len(got) == 48 and Counter(r.ok for r in got) == {True: 36, False: 12}
    assert got[5].request.tags.condition == "baseline"


def test_origin_counts_agree_with_result_origins(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite") as st:
        small = run_study(_spec(tmp_path, QUESTIONS[:2]), store=st)
        big = run_study(_spec(tmp_path, QUESTIONS), store=st)
        ok_keys = sorted({r.key for r in big.results if r.ok})
        origins = Counter(st.result_origins(ok_keys).values())
        assert st.run_origin_counts(big.run["run_id"]) == dict(origins)
        # the first run computed the first question's 12 answers; the second the two new questions' 24
        assert origins == {small.run["run_id"]: 12, big.run["run_id"]: 24}
        assert big.run["totals"]["computed_by_run"] == {small.run["run_id"]: 12, big.run["run_id"]: 24}


def test_a_budget_stop_mid_chunk_resumes_in_plan_order(tmp_path: Path) -> None:
    resolved = _spec(tmp_path, QUESTIONS[:1] + QUESTIONS[2:])  # no failures
    plan = list(get_study("grid")(resolved).plan([]))
    with Store(tmp_path / "s.sqlite") as st:
        stopped = run_study(resolved, store=st, budget=Budget(max_requests=7))
        assert stopped.status == "stopped" and stopped.summary is None
        assert len(stopped.results) == 7  # a chunk of 5, then 2 of the next: the rest not sent
        assert {r.key for r in stopped.results} <= {key(r) for r in plan}
        resumed = run_study(resolved, store=st)
    assert resumed.status == "complete"
    assert resumed.stats.backend_calls == len(plan) - 7 and resumed.stats.cache_hits == 7
    assert [r.key for r in resumed.results] == [key(r) for r in plan]


def _row(condition: str, mean: float, n: int = 5) -> dict[str, Any]:
    return {"model": "fake/m", "condition": condition, "n": n, "mean_words": mean, "ci_low": mean - 1,
            "ci_high": mean + 1}


def test_a_large_grid_charts_the_baseline_and_both_ends() -> None:
    small = [_row("baseline", 3.0)] + [_row(f"p{i}", float(i)) for i in range(2 * CHART_ENDS - 1)]
    assert chart_rows(small)[0] == small
    big = [_row("baseline", 50.0)] + [_row(f"p{i}", float((i * 37) % 101)) for i in range(101)] + [_row("none", 0, 0)]
    rows, title = chart_rows(big)
    means = sorted(r["mean_words"] for r in big[1:-1])
    assert rows[0]["condition"] == "baseline"
    assert [r["mean_words"] for r in rows[1:]] == means[:CHART_ENDS] + means[-CHART_ENDS:]
    assert all(r["n"] for r in rows)  # a condition with no answers has no point to draw
    assert f"of {len(big)}" in title and "table" in title


def test_the_fake_backend_can_keep_no_history(tmp_path: Path) -> None:
    from personae.backends.fake import FakeBackend, FakeOptions

    from .helpers import FAST_RETRY, request, run_requests

    lean = FakeBackend("fake/test", FakeOptions(keep_history=False, transient_failures=1))
    with Store(tmp_path / "s.sqlite") as st:
        from personae.runner import RetryPolicy

        results, _ = run_requests(lean, st, [request("a"), request("b")], retry=RetryPolicy(**FAST_RETRY))
    assert all(r.ok and r.attempts == 2 for r in results)  # the scripted transient failure still happens
    assert lean.history == [] and lean.calls == 4
