"""A killed run resumes: finished requests come from the store, only the rest reach the backend."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from personae.api import run_study
from personae.backends.base import Request
from personae.backends.fake import FakeBackend
from personae.errors import BackendUnavailableError
from personae.runner import RunAborted
from personae.spec import load_spec
from personae.store import Store
from personae.studies import get_study

from .helpers import grid_spec, key, read_json, run_requests, write_spec

QUESTIONS = ["What do you do on a rainy day?", "What is your favourite food?"]


def spec_file(tmp_path: Path, **kw: object) -> Path:
    data = grid_spec(QUESTIONS, personas=["builtin:pirate-captain", "builtin:young-child"], replicates=2)
    data.update(kw)
    return write_spec(tmp_path, data)


def test_resume_after_a_partial_run_repeats_nothing(tmp_path: Path) -> None:
    resolved = load_spec(spec_file(tmp_path))
    planned = list(get_study("grid")(resolved).plan([]))
    assert len(planned) == 3 * 2 * 2
    half = len(planned) // 2
    done, rest = planned[:half], planned[half:]

    # The "crashed" run got through the first half only.
    first = FakeBackend()
    with Store() as store:
        first_results, _ = run_requests(first, store, done)
    assert len(first.history) == half

    second = FakeBackend()
    outcome = run_study(resolved, tmp_path / "run", backends={"fake/test": second})

    assert outcome.stats.backend_calls == len(rest)
    assert outcome.stats.cache_hits == half
    assert Counter(key(r) for r in second.history) == Counter(key(r) for r in rest)
    assert not {key(r) for r in second.history} & {key(r) for r in done}
    by_key = {r.key: r for r in outcome.results}
    for res in first_results:  # the finished half is replayed exactly
        assert by_key[res.key].cached and by_key[res.key].text == res.text
    run = read_json(tmp_path / "run" / "run.json")
    assert run["counts"]["backend_calls"] == len(rest)
    assert run["counts"]["cache_hits"] == half
    assert len(outcome.results) == len(planned)


def test_resume_after_an_outage(tmp_path: Path) -> None:
    resolved = load_spec(spec_file(tmp_path, concurrency={"requests": 1, "retry": {"base_delay_s": 0}}))
    answered: list[Request] = []

    def goes_down(request: Request) -> str:
        if len(answered) == 5:
            raise BackendUnavailableError("connection refused", backend="fake/test")
        answered.append(request)
        return f"answer {len(answered)}"

    with pytest.raises(RunAborted):
        run_study(resolved, tmp_path / "first", backends={"fake/test": FakeBackend(responder=goes_down)})
    assert read_json(tmp_path / "first" / "run.json")["status"] == "aborted"

    healthy = FakeBackend()
    outcome = run_study(resolved, tmp_path / "second", backends={"fake/test": healthy})
    finished = {key(r) for r in answered}
    assert len(healthy.history) == 12 - 5
    assert not {key(r) for r in healthy.history} & finished
    assert outcome.stats.cache_hits == 5
    texts = {r.key: r.text for r in outcome.results}
    assert sorted(texts[k] for k in finished) == sorted(f"answer {i}" for i in range(1, 6))
