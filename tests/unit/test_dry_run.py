"""`personae run SPEC --dry-run`: requests per model and role (first wave exact, later waves
estimated), what the store answers (the run's own cache keys), tokens and cost; no model call,
nothing written. And the tokens and cost a real run records per model and role."""

from __future__ import annotations

import math
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from personae.api import run_study
from personae.backends.fake import FakeBackend
from personae.cli.main import app
from personae.cost import Price, cost_of, load_prices
from personae.dryrun import estimate_run
from personae.errors import ConfigError
from personae.spec import load_spec, resolve_spec

from .helpers import dialogue_spec, grid_spec, read_json, read_jsonl, write_spec
from .test_roles import judge_says_for, stance_answers, with_judge

runner = CliRunner()
QUESTIONS = ["Hello?", "Why is the sky blue?"]


def _invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_a_grid_is_one_exact_wave_with_chars_over_4_and_max_tokens(tmp_path: Path) -> None:
    resolved = resolve_spec(grid_spec(QUESTIONS, replicates=3))
    est = estimate_run(resolved, store=tmp_path / "store.sqlite")
    from personae.studies import get_study

    study = get_study("grid")(resolved)
    planned = study.plan([])
    (row,) = est.rows
    assert (row.model, row.role) == ("fake/test", "(studied)")
    assert row.first_wave == len(planned) == 2 * 2 * 3  # baseline + persona, 2 questions, 3 replicates
    assert row.later_waves == 0 and row.cached == 0 and row.to_send == len(planned)
    assert est.waves == est.exact_waves == 1 and not est.estimated
    chars = [sum(len(m.content) for m in r.messages) for r in planned]
    assert row.prompt_tokens == sum(math.ceil(c / 4) for c in chars) and row.tokens_counted_by == "chars/4"
    assert row.completion_tokens == 32 * len(planned)  # helpers' max_tokens, an upper bound
    assert row.cost is None and est.cost is None  # no price set


def test_later_waves_are_estimated_then_exact_once_the_store_holds_them(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    resolved = resolve_spec(dialogue_spec(["Hi", "Who are you?", "Bye"], replicates=2))
    est = estimate_run(resolved, store=store)
    (row,) = est.rows
    assert row.first_wave == 2 * 2 and row.later_waves == 2 * 2 * 2  # 2 personas x 2 dialogues, 3 turns
    assert est.waves == 3 and est.exact_waves == 1 and est.estimated
    # placeholder answers are max_tokens long: the estimate of later prompts is not an underestimate
    outcome = run_study(resolved, tmp_path / "run")
    real_prompt_chars = sum(sum(len(m.content) for m in r.request.messages) for r in outcome.results)
    assert row.prompt_tokens >= math.ceil(real_prompt_chars / 4)

    again = estimate_run(resolved, store=store)
    (row,) = again.rows
    assert row.cached == len(outcome.results) == 12 and row.to_send == 0  # the run's own cache keys
    assert again.waves == again.exact_waves == 3 and not again.estimated


def test_a_partly_cached_first_wave_counts_what_is_left(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    spec = write_spec(tmp_path, grid_spec(QUESTIONS, replicates=2))
    assert _invoke("run", str(spec), "--out", str(tmp_path / "run"), "--store", str(store),
                   "--max-requests", "3").exit_code == 3
    (row,) = estimate_run(load_spec(spec), store=store).rows
    assert row.first_wave == 8 and row.cached == 3 and row.to_send == 5


def test_prices_from_the_spec_and_a_file_give_the_cost(tmp_path: Path) -> None:
    data = grid_spec(QUESTIONS, prices={"fake/test": {"input": 2.0, "output": 8.0}})
    (row,) = estimate_run(resolve_spec(data), store=tmp_path / "s.sqlite").rows
    assert row.cost == pytest.approx((row.prompt_tokens * 2.0 + row.completion_tokens * 8.0) / 1e6)
    spec = write_spec(tmp_path, data)
    prices = tmp_path / "prices.yaml"
    prices.write_text("prices:\n  fake/test: {input: 1, output: 0}\n  openai/other: {input: 3, output: 4}\n")
    assert load_prices(prices)["fake/test"] == Price(input=1, output=0)
    result = _invoke("run", str(spec), "--dry-run", "--prices", str(prices))
    assert result.exit_code == 0, result.output
    assert f"{row.prompt_tokens / 1e6:,.4f}" in result.output  # the file's price wins over the spec's
    assert "wave 1 (exact)" in result.output and "characters / 4" in result.output
    assert "upper bound" in result.output and "no model was called" in result.output


def test_no_price_is_said_and_a_bad_price_is_one_teaching_line(tmp_path: Path) -> None:
    result = _invoke("run", str(write_spec(tmp_path, grid_spec(QUESTIONS))), "--dry-run")
    assert result.exit_code == 0 and "no price set for fake/test" in result.output
    with pytest.raises(ConfigError, match=r"field 'prices.fake/test.input'.*>= 0"):
        resolve_spec(grid_spec(QUESTIONS, prices={"fake/test": {"input": -1, "output": 1}}))
    with pytest.raises(ConfigError, match=r"this run does not call.*Did you mean 'fake/test'"):
        resolve_spec(grid_spec(QUESTIONS, prices={"fake/tset": {"input": 1, "output": 1}}))
    # a price for a model the run does not call and is not close to one: fine (e.g. for --model)
    resolve_spec(grid_spec(QUESTIONS, prices={"openai/gpt-4o": {"input": 1, "output": 1}}))


def test_cost_of() -> None:
    assert cost_of(Price(input=0.15, output=0.6), 1_000_000, 500_000) == pytest.approx(0.45)
    assert cost_of(None, 10, 10) is None


class _CountingServer:
    """A TCP listener on 127.0.0.1 that counts the connections made to it."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.connections = 0
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}/v1"

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            conn.close()

    def close(self) -> None:
        self._stop = True
        self.thread.join()
        self.sock.close()


def test_a_dry_run_against_a_server_calls_nothing_and_writes_nothing(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    good = write_spec(tmp_path, grid_spec(QUESTIONS), name="good.yaml")
    assert _invoke("run", str(good), "--out", str(tmp_path / "run"), "--store", str(store)).exit_code == 0
    before = store.read_bytes()
    server = _CountingServer()
    url = server.url
    try:
        spec = write_spec(tmp_path, {**grid_spec(QUESTIONS), "model": "openai/some-model",
                                     "backend": {"base_url": url, "timeout_s": 1}})
        result = _invoke("run", str(spec), "--dry-run", "--store", str(store), "--out", str(tmp_path / "new"))
    finally:
        server.close()
    assert result.exit_code == 0, result.output
    assert server.connections == 0
    assert store.read_bytes() == before  # byte for byte
    assert not (tmp_path / "new").exists()
    assert "openai/some-model" in result.output and "characters / 4" in result.output
    # and an unreachable server (nobody listens) is no obstacle either
    spec = write_spec(tmp_path, {**grid_spec(QUESTIONS), "model": "openai/some-model",
                                 "backend": {"base_url": url}})  # closed now: nobody listens
    assert _invoke("run", str(spec), "--dry-run", "--store", str(store)).exit_code == 0
    assert store.read_bytes() == before


def test_a_dry_run_creates_no_store(tmp_path: Path) -> None:
    store = tmp_path / "nowhere" / "store.sqlite"
    result = _invoke("run", str(write_spec(tmp_path, grid_spec(QUESTIONS))), "--dry-run", "--store", str(store))
    assert result.exit_code == 0 and "not created yet" in result.output
    assert not store.parent.exists()


def test_a_dry_run_checks_what_a_run_checks(tmp_path: Path) -> None:
    # the run folder holds another spec's run: refused, as a run refuses it
    other = write_spec(tmp_path, dialogue_spec(["Hi"]), name="other.yaml")
    assert _invoke("run", str(other), "--out", str(tmp_path / "run")).exit_code == 0
    result = runner.invoke(app, ["run", str(write_spec(tmp_path, grid_spec(QUESTIONS))), "--dry-run",
                                 "--out", str(tmp_path / "run")])
    assert result.exit_code == 2 and "holds a run of another spec" in result.output
    # an openai model with no server URL: the run would stop before any call; so does the dry run
    result = runner.invoke(app, ["run", str(write_spec(tmp_path, {**grid_spec(QUESTIONS),
                                                                  "model": "openai/x"})), "--dry-run"])
    assert result.exit_code == 2 and "no server URL" in result.output
    # without --dry-run, --out is needed
    result = runner.invoke(app, ["run", str(write_spec(tmp_path, grid_spec(QUESTIONS)))])
    assert result.exit_code == 2 and "--out" in result.output and "Fix:" in result.output


def test_roles_get_their_own_rows_and_a_judge_wave_is_estimated(tmp_path: Path) -> None:
    data = with_judge(roles={"judge": {"model": "fake/judge", "backend": {"responder": "always-for"}}},
                      prices={"fake/judge": {"input": 1, "output": 1}})
    est = estimate_run(resolve_spec(data), store=tmp_path / "s.sqlite")
    judge = [r for r in est.rows if r.role == "judge"]
    assert judge and judge[0].model == "fake/judge" and judge[0].first_wave == 0 and judge[0].later_waves > 0
    assert judge[0].cost is not None and est.estimated


def test_a_real_run_records_tokens_and_cost_per_model_and_role(tmp_path: Path) -> None:
    data = with_judge(roles={"judge": {"model": "fake/judge", "backend": {"responder": "always-for"}}},
                      prices={"fake/judge": {"input": 10, "output": 20}}, engine={"name": "vllm", "flags": ["-x"]})
    backends = {"fake/x": FakeBackend("fake/x", responder=stance_answers),
                "fake/judge": FakeBackend("fake/judge", responder=judge_says_for)}
    first = run_study(resolve_spec(data), tmp_path / "one", backends=backends)
    run = read_json(tmp_path / "one" / "run.json")
    assert run["engine"] == {"name": "vllm", "flags": ["-x"]}
    usage = {(u["model"], u["role"]): u for u in run["usage"]}
    for (model, role), u in usage.items():
        mine = [r for r in first.results if r.request.model == model and (r.request.tags.role or "(studied)") == role]
        gens = [r.generation for r in mine if r.generation is not None]
        assert u["requests"] == len(mine)
        assert u["computed_prompt_tokens"] == u["results_prompt_tokens"] == sum(g.prompt_tokens for g in gens)
        assert u["results_completion_tokens"] == sum(g.completion_tokens for g in gens)
    judge = usage[("fake/judge", "judge")]
    assert judge["results_prompt_tokens"] > 0
    assert judge["computed_cost"] == pytest.approx((judge["results_prompt_tokens"] * 10
                                                    + judge["results_completion_tokens"] * 20) / 1e6)
    assert usage[("fake/x", "(studied)")]["computed_cost"] is None  # no price set
    report = (tmp_path / "one" / "report.html").read_text(encoding="utf-8")
    assert "Tokens and cost per model and role" in report and "fake/judge" in report
    # a cached re-run spent nothing itself, and its results still cost what they cost
    run_study(resolve_spec(data), tmp_path / "two", backends=backends)
    again = {(u["model"], u["role"]): u for u in read_json(tmp_path / "two" / "run.json")["usage"]}
    assert again[("fake/judge", "judge")]["computed_cost"] == 0
    assert again[("fake/judge", "judge")]["results_cost"] == pytest.approx(judge["results_cost"])
    assert again[("fake/judge", "judge")]["cached"] == judge["requests"]


def test_engine_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match=r"field 'engine'"):
        resolve_spec(grid_spec(QUESTIONS, engine="vllm --batch-invariant"))


def test_the_usage_in_the_report_is_escaped(tmp_path: Path) -> None:
    model = "fake/<script>x</script>"
    data = {**grid_spec(["Hi?"], replicates=1), "model": model}
    run_study(resolve_spec(data), tmp_path / "run")
    report = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "<script>x</script>" not in report and "&lt;script&gt;" in report
    assert read_jsonl(tmp_path / "run" / "results.jsonl")[0]["model"] == model


EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_dry_runs_and_its_first_wave_is_the_studys_plan(example: Path, tmp_path: Path) -> None:
    from personae.studies import get_study

    resolved = load_spec(example, models=["fake/test"])
    est = estimate_run(resolved, store=tmp_path / "s.sqlite")
    planned = get_study(resolved.spec.study)(resolved).plan([])
    assert est.total("first_wave") == len(planned)
    assert est.total("to_send") <= est.total("first_wave") + est.total("later_waves")
    assert (est.waves > 1) == (est.total("later_waves") > 0)


def test_prices_given_to_a_real_run_are_recorded_with_its_spec(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, grid_spec(QUESTIONS))
    prices = tmp_path / "prices.yaml"
    prices.write_text("prices:\n  fake/test: {input: 1000000, output: 0}\n", encoding="utf-8")
    result = _invoke("run", str(spec), "--out", str(tmp_path / "run"), "--prices", str(prices))
    assert result.exit_code == 0, result.output
    run = read_json(tmp_path / "run" / "run.json")
    assert run["spec"]["prices"] == {"fake/test": {"input": 1000000.0, "output": 0.0}}
    (usage,) = run["usage"]
    assert usage["computed_prompt_tokens"] > 0 and usage["computed_cost"] == usage["computed_prompt_tokens"]


def test_a_price_for_the_model_that_model_option_replaced_is_no_typo(tmp_path: Path) -> None:
    data = {**grid_spec(QUESTIONS), "model": "fake/gpt-4o-mini", "prices": {"fake/gpt-4o-mini": {"input": 1, "output": 1}}}
    spec = write_spec(tmp_path, data)
    assert load_spec(spec, models=["fake/gpt-4o"]).spec.model == ("fake/gpt-4o",)
    with pytest.raises(ConfigError, match="this run does not call"):  # the same key, written by hand: a typo
        resolve_spec({**data, "model": "fake/gpt-4o"})


def test_a_budget_given_to_a_dry_run_says_whether_it_would_stop_the_run(tmp_path: Path) -> None:
    spec = write_spec(tmp_path, grid_spec(QUESTIONS, replicates=2))  # 8 requests
    result = _invoke("run", str(spec), "--dry-run", "--max-requests", "3")
    assert result.exit_code == 0 and "would stop after 3 of the 8 requests to send" in result.output
    result = _invoke("run", str(spec), "--dry-run", "--max-requests", "8", "--max-tokens", "100000")
    assert "enough for the 8 requests" in result.output and "enough even if every reply" in result.output
    result = _invoke("run", str(spec), "--dry-run", "--max-tokens", "1")
    assert "would stop before the end" in result.output
