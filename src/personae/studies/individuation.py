"""individuation: does a person's profile help predict that person? (arXiv 2605.07632, Psych-201)

For each participant's marked response, the teacher-forced negative log-likelihood (sum over
the response's tokens) is computed twice: after the transcript so far, and after an interview
block with the participant's profile followed by the transcript. Per experiment, Cohen's d =
(mean NLL without - mean NLL with) / sqrt((sd_with^2 + sd_without^2) / 2) over participants
(each participant's mean NLL over responses); positive d means the profile helps. The summary
gives d per experiment with a bootstrap CI and the distribution of d over experiments.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..backends.base import Request, Tags
from ..errors import ConfigError
from ..persona import format_interview, profile_interview
from ..runner import Result
from ..stats import bootstrap_ci, cohens_d, mean_ci
from ..transcripts import SYNTHETIC_EXPERIMENTS, Transcript, load_transcripts, synthetic_transcripts
from .base import Study, Summary, count_results


class IndividuationOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    data: str = "builtin:synthetic"
    """'builtin:synthetic' (generated from known rules) or a JSONL file in the Psych-201 layout."""
    participants: int = Field(default=12, ge=2, le=10_000)
    """Participants per experiment for the synthetic data."""
    profile_fields: tuple[str, ...] | None = None
    """Only these profile fields go into the interview block (default: all)."""
    n_bootstrap: int = Field(default=5000, ge=1000)
    """Bootstrap resamples (over participants) for the CI of d."""


class IndividuationStudy(Study):
    name = "individuation"
    Options = IndividuationOptions

    @classmethod
    def check(cls, resolved: Any) -> None:
        study = cls(resolved)
        if not study.transcripts:
            raise ConfigError("no transcripts.", field="options.data", fix="give a file with at least one record.")
        if not any(study.interview(t) for t in study.transcripts):
            raise ConfigError("no transcript has profile fields, so there is nothing to condition on.",
                              field="options.data", fix="add fields such as age or gender to the records.")

    @cached_property
    def transcripts(self) -> tuple[Transcript, ...]:
        d = self.options.data
        if d == "builtin:synthetic":
            return synthetic_transcripts(self.options.participants, seed=self.spec.seed)
        return load_transcripts(self.resolved.base_dir / d)

    def interview(self, t: Transcript) -> str:
        fields = t.profile if self.options.profile_fields is None else \
            {k: t.profile.get(k) for k in self.options.profile_fields}
        return format_interview(profile_interview(fields))

    def plan(self, done: Sequence[Result]) -> list[Request]:
        if done:
            return []
        reqs = []
        for model in self.spec.model:
            for t in self.transcripts:
                block = self.interview(t)
                # all responses without the profile, then all with it: each prompt extends the previous
                # one, so backends that re-use a prompt prefix (local) evaluate every transcript once
                for cond in ("without", "with"):
                    for j, prefix, response in t.responses():
                        extra = {"experiment": t.experiment, "participant": t.participant, "response": j}
                        prompt = f"{block}\n\n{prefix}" if cond == "with" and block else prefix
                        reqs.append(Request(kind="score", model=model, prompt=prompt, continuation=response,
                                            tags=Tags(item=f"{t.experiment}/{t.participant}/{j}", condition=cond,
                                                      extra=extra)))
        return reqs

    def analyze(self, results: Sequence[Result]) -> Summary:
        nll: dict[tuple[str, str, str, str], list[float]] = defaultdict(list)
        for r in results:
            if r.ok and r.score is not None:
                e = r.request.tags.extra
                nll[(r.request.model, e["experiment"], e["participant"], r.request.tags.condition or "")].append(
                    -r.score.logprob)
        table = []
        per_model: dict[str, Any] = {}
        for m_i, model in enumerate(self.spec.model):
            ds = []
            for e_i, exp in enumerate(sorted({t.experiment for t in self.transcripts})):
                parts = sorted({t.participant for t in self.transcripts if t.experiment == exp})
                both = [p for p in parts if nll.get((model, exp, p, "with")) and nll.get((model, exp, p, "without"))]
                with_ = np.array([np.mean(nll[(model, exp, p, "with")]) for p in both])
                without = np.array([np.mean(nll[(model, exp, p, "without")]) for p in both])
                row: dict[str, Any] = {"model": model, "experiment": exp, "participants": len(both),
                                       "nll_without": float(without.mean()) if both else None,
                                       "nll_with": float(with_.mean()) if both else None}
                if exp in SYNTHETIC_EXPERIMENTS and self.options.data == "builtin:synthetic":
                    row["profile_informative"] = SYNTHETIC_EXPERIMENTS[exp]
                if len(both) >= 2:
                    d = cohens_d(without, with_, paired=False, denominator="average", ci="bootstrap",
                                 seed=self.spec.seed + 101 * m_i + e_i, n_resamples=self.options.n_bootstrap)
                    row.update(d=d.estimate, d_ci_low=d.ci_low, d_ci_high=d.ci_high)
                    ds.append(d.estimate)
                table.append(row)
            per_model[model] = _distribution(ds, self.spec.seed)
        counts = count_results(results)
        notes = [f"{counts['errors']} failed scoring requests are left out and counted."] if counts["errors"] else []
        return Summary(study=self.name, verdict=_verdict(per_model), table=table,
                       stats={"d_over_experiments": per_model}, counts=counts, notes=notes)

    def figures(self, results: Sequence[Result], summary: Summary) -> list[tuple[str, Any]]:
        from ..report.plots import forest_plot  # noqa: PLC0415

        rows = [r for r in summary.table if r.get("d") is not None]
        if not rows:
            return []
        return [("Cohen's d per experiment (positive: the profile helps), 95% bootstrap CI",
                 forest_plot([f"{r['experiment']} ({r['model'].split('/')[-1]})" for r in rows],
                             [r["d"] for r in rows], [r["d_ci_low"] for r in rows], [r["d_ci_high"] for r in rows],
                             xlabel="Cohen's d"))]


def _distribution(ds: list[float], seed: int) -> dict[str, Any]:
    if not ds:
        return {"experiments": 0}
    arr = np.array(ds)
    ci = mean_ci(arr) if len(arr) >= 2 else None
    return {"experiments": len(ds), "mean_d": float(arr.mean()), "ci_low": ci.ci_low if ci else None,
            "ci_high": ci.ci_high if ci else None, "min_d": float(arr.min()), "max_d": float(arr.max()),
            "share_abs_d_below_0.1": float(np.mean(np.abs(arr) < 0.1)),
            "bootstrap_mean": bootstrap_ci(arr, seed=seed, n_resamples=2000).as_dict() if len(arr) >= 3 else None}


def _verdict(per_model: dict[str, Any]) -> str:
    parts = []
    for model, d in per_model.items():
        if not d.get("experiments"):
            parts.append(f"{model}: no experiment had enough scored participants.")
            continue
        lo, hi = d.get("ci_low"), d.get("ci_high")
        helps = lo is not None and lo > 0
        parts.append(f"{model}: mean d = {d['mean_d']:+.3f} over {d['experiments']} experiments"
                     + (f" (95% CI {lo:+.3f} to {hi:+.3f})" if lo is not None else "")
                     + ("; the profile helps predict responses." if helps else
                        "; the profile does not reliably help predict responses."))
    return " ".join(parts)


STUDY = IndividuationStudy
