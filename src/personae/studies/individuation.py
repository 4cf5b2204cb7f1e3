"""individuation: does a person's profile help predict that person? (arXiv 2605.07632, Psych-201)

For each participant's marked response, the teacher-forced negative log-likelihood (sum over
the response's tokens) is computed twice: after the transcript so far, and after an interview
block with the participant's profile followed by the transcript. Per experiment, Cohen's d =
(mean NLL without - mean NLL with) / sqrt((sd_with^2 + sd_without^2) / 2) over participants
(each participant's mean NLL over responses); positive d means the profile helps. The same
participants are scored both ways, so the CI is paired: the Student-t CI of the mean paired
difference divided by the same SD as d (it excludes 0 exactly when a paired t-test rejects; a
percentile bootstrap of d covered only ~92% at 12 participants). The summary gives d per
experiment with its CI and the distribution of d over experiments.
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
from ..spec_types import ResolvedSpec
from ..stats import bootstrap_ci, cohens_d, mean_ci
from .._loading import suggest
from ..transcripts import (
    SYNTHETIC_EXPERIMENTS,
    Transcript,
    load_transcript_files,
    not_profile_reason,
    synthetic_transcripts,
    transcript_files,
)
from .base import Study, Summary, count_results


MAX_DESCRIBED = 20
"""Experiments `personae validate` describes one by one (Psych-201 has many)."""


class IndividuationOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    data: str | tuple[str, ...] = "builtin:synthetic"
    """'builtin:synthetic' (generated from known rules), or files in the Psych-201 layout: one path,
    a glob pattern ('psych201/*.jsonl'), or a list of paths and patterns, relative to the spec
    (one experiment per file, or several)."""
    participants: int = Field(default=12, ge=2, le=10_000)
    """Participants per experiment for the synthetic data."""
    profile_fields: tuple[str, ...] | None = None
    """Exactly these fields go into the interview block. Default: the profile fields by rule
    (personae.transcripts: not per-trial lists, not design variables such as condition or RTs)."""
    shuffled_control: bool = True
    """Also score with another participant's profile (same experiment): d_content = NLL(shuffled) vs
    NLL(with) isolates what the profile's content adds beyond having an interview block at all."""
    n_bootstrap: int = Field(default=5000, ge=1000)
    """Bootstrap resamples (over experiments) for the CI of the mean d."""


def move_space(prompt: str, response: str) -> tuple[str, str]:
    """Move the space before a response into the response ("A: " + "yes" -> "A:" + " yes").

    Tokenizers attach a leading space to the word ("Ġyes"); a prompt ending in a bare space
    would make the model score an unnatural token split of every response.
    """
    stripped = prompt.rstrip(" ")
    return stripped, prompt[len(stripped):] + response


class IndividuationStudy(Study[IndividuationOptions]):
    name = "individuation"
    display_columns = ("experiment", "participants", "nll_without", "nll_with", "nll_shuffled", "d", "d_ci_low",
                       "d_ci_high", "d_content", "d_content_ci_low", "d_content_ci_high", "profile_informative")
    Options = IndividuationOptions

    @classmethod
    def check(cls, resolved: ResolvedSpec) -> None:
        cls.require_scoring(resolved, "the individuation study (teacher-forced log-likelihoods)", "model")
        study = cls(resolved)
        if not study.transcripts:
            raise ConfigError("no transcripts.", field="options.data", fix="give a file with at least one record.")
        wanted = study.options.profile_fields
        if wanted is not None:
            known = {k for t in study.transcripts for k in t.fields()}
            unknown = [k for k in wanted if k not in known]
            if unknown:
                raise ConfigError(f"no transcript has the field '{unknown[0]}'.{suggest(unknown[0], known)}",
                                  field="options.profile_fields",
                                  fix=f"use fields of the records: {', '.join(sorted(known)) or '(none)'}.")
        if not any(study.interview(t) for t in study.transcripts):
            left_out = sorted({k for t in study.transcripts for k in t.other})
            why = (f" ({', '.join(left_out)}: per-trial lists, design variables or empty, not profile fields)"
                   if left_out else "")
            raise ConfigError(f"no transcript has profile fields{why}, so there is nothing to condition on.",
                              field="options.data", fix="add fields such as age or gender to the records, or "
                              "name the fields to use in options.profile_fields.")

    @cached_property
    def transcripts(self) -> tuple[Transcript, ...]:
        d = self.options.data
        if d == "builtin:synthetic":
            return synthetic_transcripts(self.options.participants, seed=self.spec.seed)
        entries = (d,) if isinstance(d, str) else d
        if "builtin:synthetic" in entries:
            raise ConfigError("'builtin:synthetic' cannot be listed with files.", field="options.data",
                              fix="use either 'data: builtin:synthetic' or a list of files.")
        return load_transcript_files(transcript_files(entries, self.resolved.base_dir))

    def profile(self, t: Transcript) -> dict[str, Any]:
        """The fields of the interview block: `options.profile_fields` if given, else the profile by rule."""
        if self.options.profile_fields is None:
            return t.profile
        fields = t.fields()
        return {k: fields.get(k) for k in self.options.profile_fields}

    def interview(self, t: Transcript) -> str:
        return format_interview(profile_interview(self.profile(t)))

    def describe(self) -> list[str]:
        """Per experiment: which fields form the profile, and which are left out and why."""
        by_exp: dict[str, list[Transcript]] = defaultdict(list)
        for t in self.transcripts:
            by_exp[t.experiment].append(t)
        lines = []
        for exp, group in by_exp.items():
            used = list(dict.fromkeys(k for t in group for k, v in self.profile(t).items() if v is not None))
            reasons: dict[str, str] = {}
            for t in group:
                for k, v in t.fields().items():
                    reason = not_profile_reason(k, v) if self.options.profile_fields is None else "not listed"
                    if k not in used and reason:
                        reasons.setdefault(k, reason)
            line = (f"experiment {exp} ({len(group)} participants): profile fields "
                    f"{', '.join(used) if used else '(none)'}")
            if reasons:
                line += "; not in the profile: " + ", ".join(f"{k} ({r})" for k, r in reasons.items())
            lines.append(line)
        if len(lines) > MAX_DESCRIBED:
            lines = lines[:MAX_DESCRIBED] + [f"... and {len(lines) - MAX_DESCRIBED} more experiments"]
        return lines

    def shuffled_profiles(self) -> dict[Transcript, Transcript]:
        """Each transcript -> another participant of the same experiment (a fixed rotation)."""
        by_exp: dict[str, list[Transcript]] = defaultdict(list)
        for t in self.transcripts:
            by_exp[t.experiment].append(t)
        out: dict[Transcript, Transcript] = {}
        for group in by_exp.values():
            if len(group) >= 2:
                for i, t in enumerate(group):
                    out[t] = group[(i + 1) % len(group)]
        return out

    def plan(self, done: Sequence[Result]) -> list[Request]:
        if done:
            return []
        reqs = []
        others = self.shuffled_profiles()
        for model in self.spec.model:
            for t in self.transcripts:
                blocks = {"without": "", "with": self.interview(t)}
                if self.options.shuffled_control and t in others:
                    blocks["shuffled"] = self.interview(others[t])
                # one condition at a time: each prompt extends the previous one, so backends that re-use
                # a prompt prefix (local) evaluate every transcript once per condition
                for cond, block in blocks.items():
                    for j, prefix, response in t.responses():
                        extra = {"experiment": t.experiment, "participant": t.participant, "response": j}
                        prompt = f"{block}\n\n{prefix}" if block else prefix
                        prompt, continuation = move_space(prompt, response)
                        reqs.append(Request(kind="score", model=model, prompt=prompt, continuation=continuation,
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
            for exp in sorted({t.experiment for t in self.transcripts}):
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
                    row.update(_paired_d(without, with_))
                    if row["d"] is not None:
                        ds.append(row["d"])
                trio = [p for p in both if nll.get((model, exp, p, "shuffled"))]
                if len(trio) >= 2:
                    shuffled = np.array([np.mean(nll[(model, exp, p, "shuffled")]) for p in trio])
                    mine = np.array([np.mean(nll[(model, exp, p, "with")]) for p in trio])
                    content = _paired_d(shuffled, mine)
                    row.update(nll_shuffled=float(shuffled.mean()), d_content=content["d"],
                               d_content_ci_low=content["d_ci_low"], d_content_ci_high=content["d_ci_high"])
                table.append(row)
            per_model[model] = _distribution(ds, self.spec.seed + 101 * m_i, self.options.n_bootstrap)
        counts = count_results(results)
        notes = [f"{counts['errors']} failed scoring requests are left out and counted."] if counts["errors"] else []
        return Summary(study=self.name, verdict=_verdict(per_model, table), table=table,
                       stats={"d_over_experiments": per_model}, counts=counts, notes=notes)

    def figures(self, results: Sequence[Result], summary: Summary) -> list[tuple[str, Any]]:
        from ..report.plots import forest_plot  # noqa: PLC0415

        rows = [r for r in summary.table if r.get("d") is not None]
        if not rows:
            return []
        return [("Cohen's d per experiment (positive: the profile helps), 95% CI (paired)",
                 forest_plot([f"{r['experiment']} ({r['model'].split('/')[-1]})" for r in rows],
                             [r["d"] for r in rows], [r["d_ci_low"] for r in rows], [r["d_ci_high"] for r in rows],
                             xlabel="Cohen's d"))]


def _paired_d(without: np.ndarray, with_: np.ndarray) -> dict[str, Any]:
    """Cohen's d (average-SD standardiser, METHODS section 2) with a paired CI: each participant is
    scored with and without the profile, so the t-interval of the mean difference is divided by
    the same SD."""
    d = cohens_d(without, with_, paired=True, denominator="average", ci="normal")
    scale = float(np.sqrt((np.var(without, ddof=1) + np.var(with_, ddof=1)) / 2))
    if not np.isfinite(d.estimate) or scale == 0:
        return {"d": None, "d_ci_low": None, "d_ci_high": None}
    diff = mean_ci(without - with_)
    return {"d": d.estimate, "d_ci_low": diff.ci_low / scale, "d_ci_high": diff.ci_high / scale}


def _distribution(ds: list[float], seed: int, n_bootstrap: int = 2000) -> dict[str, Any]:
    if not ds:
        return {"experiments": 0}
    arr = np.array(ds)
    ci = mean_ci(arr) if len(arr) >= 2 else None
    return {"experiments": len(ds), "mean_d": float(arr.mean()), "ci_low": ci.ci_low if ci else None,
            "ci_high": ci.ci_high if ci else None, "min_d": float(arr.min()), "max_d": float(arr.max()),
            "share_abs_d_below_0.1": float(np.mean(np.abs(arr) < 0.1)),
            "bootstrap_mean": bootstrap_ci(arr, seed=seed, n_resamples=n_bootstrap).as_dict()
            if len(arr) >= 3 else None}


def _verdict(per_model: dict[str, Any], table: list[dict[str, Any]]) -> str:
    """Per model: how many experiments the profile helps or hurts (CI of d), then the mean d."""
    parts = []
    for model, d in per_model.items():
        if not d.get("experiments"):
            parts.append(f"{model}: no experiment had enough scored participants.")
            continue
        rows = [r for r in table if r["model"] == model and r.get("d") is not None]
        helps = [r["experiment"] for r in rows if r.get("d_ci_low") is not None and r["d_ci_low"] > 0]
        hurts = [r["experiment"] for r in rows if r.get("d_ci_high") is not None and r["d_ci_high"] < 0]
        lo, hi = d.get("ci_low"), d.get("ci_high")
        overall = "helps" if lo is not None and lo > 0 else "hurts" if hi is not None and hi < 0 else \
            "does not reliably help"
        ci = f" (95% CI {lo:+.3f} to {hi:+.3f})" if lo is not None else ""
        detail = [f"helps in {len(helps)} ({', '.join(helps)})" if helps else "helps in none",
                  f"hurts in {len(hurts)} ({', '.join(hurts)})" if hurts else "hurts in none"]
        text = (f"{model}: across {d['experiments']} experiments the profile {overall} predict responses: "
                f"mean d = {d['mean_d']:+.3f}{ci}; it {detail[0]} and {detail[1]} (CI of d excludes 0).")
        content = [r["experiment"] for r in rows if (r.get("d_content_ci_low") or 0) > 0]
        if any(r.get("d_content") is not None for r in rows):
            text += (f" Against another participant's profile (d_content), the participant's own profile helps in "
                     f"{len(content)} of {len(rows)}" + (f" ({', '.join(content)})" if content else "")
                     + ": the rest of any gain comes from the interview block itself, not from the person.")
        parts.append(text)
    return " ".join(parts)


STUDY = IndividuationStudy
