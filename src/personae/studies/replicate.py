"""replicate: published human experiments run on synthetic participants (METHODS.md section 9).

Hewitt, Ashokkumar, Ghezae & Willer (2024, arXiv 2408.16073) ran 70 survey experiments on
GPT-4-simulated participants: 76% of 111 main effects replicated (p < .05 in the original
direction), and success tracked the original p. This study does the same on any model.

Each experiment (personae.replicate.experiment: a YAML file, or one of the built-in suite) draws
its participants from the original sample's marginals; each is a persona rendered by the spec's
template and sees one condition (between) or all (within). Answers are asked for as JSON
{"answer": ...}; on a backend with `supports_json` (and `constrained` not false) the reply is
constrained to the measure's schema. One wave: every (participant, condition) once.

Per experiment: the planned test (scipy/statsmodels), the synthetic effect with CI and p beside
the original's and the large replication's, success, the ratio of the effects and a
distribution check. Over the suite: success rate, false-positive rate on nulls, marginal
originals, coverage, inflation and success ~ -log10(original p) (personae.replicate.analysis).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..backends.base import Message, Request, Tags
from ..replicate.analysis import experiment_row, suite_stats, verdict
from ..replicate.experiment import Experiment, resolve_experiments
from ..replicate.participants import Participant, answer_schema, parse_answer, question_text, sample_participants
from ..replicate.planned import Observation, run_test
from ..runner import Result
from ..spec_types import ResolvedSpec
from .base import Study, Summary, count_results


class ReplicateOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    experiments: tuple[str, ...] = ("builtin",)
    """'builtin' (the whole built-in suite), 'builtin:ID', or experiment files (relative to the spec)."""
    n: int | None = Field(default=None, ge=4, le=100_000)
    """Participants per experiment, instead of each experiment's own sample.n (a quicker run)."""
    constrained: bool | Literal["auto"] = "auto"
    """Constrain replies to the measure's JSON schema: 'auto' where the backend supports JSON output."""
    n_bootstrap: int = Field(default=2000, ge=200)
    """Bootstrap resamples for the CIs of eta^2, phi and Cramer's V."""

    @field_validator("experiments", mode="before")
    @classmethod
    def _one_is_a_list(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value


class ReplicateStudy(Study[ReplicateOptions]):
    name = "replicate"
    Options = ReplicateOptions
    display_columns = ("experiment", "test", "test_used", "metric", "answered", "effect", "ci_low", "ci_high", "p",
                       "reference_effect", "status", "ratio", "distribution_warning", "errors", "parse_failures",
                       "dropped")

    @classmethod
    def check(cls, resolved: ResolvedSpec) -> None:
        study = cls(resolved)
        study.experiments  # noqa: B018 - read and checked now, before anything runs
        if study.options.constrained is True:
            from ..errors import ConfigError  # noqa: PLC0415

            for model in resolved.spec.model:
                if not study.constrained(model, unknown=True):
                    raise ConfigError(f"constrained: true needs a backend with JSON output, and {model} has none.",
                                      field="options.constrained",
                                      fix="use constrained: auto (unconstrained there), or local/... or openai/....")

    @cached_property
    def experiments(self) -> tuple[Experiment, ...]:
        return resolve_experiments(self.options.experiments, self.resolved.base_dir)

    @cached_property
    def participants(self) -> dict[str, tuple[Participant, ...]]:
        return {e.id: sample_participants(e, self.options.n or e.sample.n, self.spec.seed) for e in self.experiments}

    def describe(self) -> list[str]:
        return [f"{e.id}: {e.design}, {len(self.participants[e.id])} participants, {e.test.kind} "
                f"({'null' if e.original_is_null else 'effect'} reference)" for e in self.experiments]

    def constrained(self, model: str, *, unknown: bool = False) -> bool:
        """Whether replies of `model` are held to the measure's JSON schema (`options.constrained`;
        'auto' and the check ask the backend, created without contacting any server; `unknown` is
        the answer for a backend that cannot be created yet)."""
        if self.options.constrained is False:
            return False
        if self.options.constrained is True and not unknown:
            return True
        from ..backends import create_backend  # noqa: PLC0415
        from ..errors import BackendUnavailableError  # noqa: PLC0415
        from ..spec import backend_options_for  # noqa: PLC0415

        try:
            return create_backend(model, backend_options_for(self.spec, model)).supports_json
        except BackendUnavailableError:
            return unknown

    def plan(self, done: Sequence[Result]) -> list[Request]:
        if done:
            return []
        reqs = []
        for model in self.spec.model:
            constrained = self.constrained(model)
            for exp in self.experiments:
                schema = answer_schema(exp) if constrained else None
                for person in self.participants[exp.id]:
                    for cond in person.conditions:
                        tags = Tags(persona=person.persona.id, item=exp.id, condition=cond,
                                    extra={"participant": person.index})
                        reqs.append(self.chat_request(model, person.persona,
                                                      [Message(role="user", content=question_text(exp, cond))],
                                                      replicate=0, tags=tags, json_schema=schema))
        return reqs

    def row_features(self, result: Result) -> dict[str, Any]:
        exp = self.by_id.get(result.request.tags.item or "")
        if exp is None or not result.ok:
            return {}
        return {"answer": parse_answer(exp, result.text)}

    @cached_property
    def by_id(self) -> dict[str, Experiment]:
        return {e.id: e for e in self.experiments}

    def observations(self, results: Sequence[Result]) -> dict[tuple[str, str], dict[str, Any]]:
        """(model, experiment) -> its observations and the counts of errors and parse failures."""
        ages = {p.persona.id: p.persona.attributes.demographics.age for ps in self.participants.values() for p in ps}
        out: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: {"obs": [], "errors": 0, "parse_failures": 0})
        for r in results:
            t = r.request.tags
            exp = self.by_id.get(t.item or "")
            if exp is None:
                continue
            slot = out[(r.request.model, exp.id)]
            if not r.ok:
                slot["errors"] += 1
                continue
            answer = parse_answer(exp, r.text)
            if answer is None:
                slot["parse_failures"] += 1
                continue
            slot["obs"].append(Observation(int(t.extra["participant"]), str(t.condition), answer, ages.get(t.persona or "")))
        return out

    def analyze(self, results: Sequence[Result]) -> Summary:
        data = self.observations(results)
        table = []
        for m_i, model in enumerate(self.spec.model):
            for e_i, exp in enumerate(self.experiments):
                slot = data[(model, exp.id)]
                res = run_test(exp, slot["obs"], seed=self.spec.seed + 1000 * m_i + e_i, n_boot=self.options.n_bootstrap)
                table.append(experiment_row(exp, res, slot["obs"], model=model, planned=len(self.participants[exp.id]),
                                            errors=slot["errors"], parse_failures=slot["parse_failures"]))
        suites = {m: suite_stats([r for r in table if r["model"] == m]) for m in self.spec.model}
        counts = count_results(results)
        counts["parse_failures"] = sum(r["parse_failures"] for r in table)
        notes = [("success = the planned test is significant (p < .05) in the original direction (Hewitt et al. 2024); "
                  "the reference effect (for coverage, ratio and null status) is the large replication's where one "
                  "exists."),
                 ("Failed requests and unparsable answers are counted (errors, parse_failures) and left out of the "
                  "tests, never scored; within subjects a participant missing any condition is left out of the test "
                  "(dropped).")]
        notes.extend(f"{r['model']} {r['experiment']}: {r['test_note']}." for r in table if r["test_note"])
        return Summary(study="replicate", verdict=verdict(table, suites), table=table,
                       stats={"suite": suites, "experiments": [e.id for e in self.experiments],
                              "constrained": {m: self.constrained(m) for m in self.spec.model}},
                       counts=counts, notes=notes)

    def figures(self, results: Sequence[Result], summary: Summary) -> list[tuple[str, Any]]:
        from ..report.plots import scatter_with_errors  # noqa: PLC0415

        rows = [r for r in summary.table if r["effect"] is not None and r["ci_low"] is not None
                and r["reference_effect"] is not None  # a reference known only by its conclusion: no point
                and r["metric"] == r["reference_metric"]]  # a fallback test's effect is in another metric
        if not rows:
            return []
        return [("Synthetic vs reference effect sizes (each in its test's metric; 95% CI of the synthetic effect)",
                 scatter_with_errors([r["reference_effect"] for r in rows], [r["effect"] for r in rows],
                                     labels=[r["experiment"] for r in rows],
                                     yerr=[[r["effect"] - r["ci_low"] for r in rows],
                                           [r["ci_high"] - r["effect"] for r in rows]],
                                     xlabel="reference (original or large replication)", ylabel="synthetic",
                                     diagonal=True))]


STUDY = ReplicateStudy
