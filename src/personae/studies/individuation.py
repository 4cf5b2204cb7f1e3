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

A response enters a comparison only if every arm of it was scored (`_pairing.pair_units`):
each participant's NLL is the mean over the same responses in both arms, and the responses
each arm lost are counted; past 5% dropped the verdict leads with it, past 50% no d.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
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
from ._pairing import NOT_ENOUGH, Pairing, drop_warnings, pair_units
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
                       "d_ci_high", "d_content", "d_content_ci_low", "d_content_ci_high", "dropped_with", "dropped_without", "dropped_shuffled",
                       "profile_informative")
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
            unknown = [(i, k) for i, k in enumerate(wanted) if k not in known]
            if unknown:
                i, name = unknown[0]
                raise ConfigError(f"lists '{name}', which is not a field of the transcripts in options.data."
                                  f"{suggest(name, known)}", field=f"options.profile_fields.{i}",
                                  fix=f"list fields the records have: {', '.join(sorted(known)) or '(none)'}; or "
                                  "leave profile_fields out to use the profile fields by rule.")
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
        # NLL of each scored response, by (model, arm) -> {(experiment, participant, response): nll}
        scored: dict[tuple[str, str], dict[tuple[str, str, int], float]] = defaultdict(dict)
        for r in results:
            if r.ok and r.score is not None:
                e = r.request.tags.extra
                scored[(r.request.model, r.request.tags.condition or "")][
                    (e["experiment"], e["participant"], int(e["response"]))] = -r.score.logprob
        others = self.shuffled_profiles() if self.options.shuffled_control else {}
        table = []
        per_model: dict[str, Any] = {}
        pairing_stats: dict[str, dict[str, Any]] = {}
        for m_i, model in enumerate(self.spec.model):
            ds = []
            arms = {arm: scored.get((model, arm), {}) for arm in ("with", "without", "shuffled")}
            for exp in sorted({t.experiment for t in self.transcripts}):
                group = [t for t in self.transcripts if t.experiment == exp]
                units = [(exp, t.participant, j) for t in group for j, _, _ in t.responses()]
                main = pair_units(units, ("with", "without"), arms)
                nll = _paired_nll(main, arms, "without", "with")
                row: dict[str, Any] = {"model": model, "experiment": exp, "participants": nll.participants,
                                       "responses": len(main.complete), "nll_without": nll.mean_a,
                                       "nll_with": nll.mean_b, "dropped_with": main.dropped["with"],
                                       "dropped_without": main.dropped["without"],
                                       "share_dropped": main.share_dropped, "d_status": main.status}
                if exp in SYNTHETIC_EXPERIMENTS and self.options.data == "builtin:synthetic":
                    row["profile_informative"] = SYNTHETIC_EXPERIMENTS[exp]
                if main.status != NOT_ENOUGH and nll.participants >= 2:
                    row.update(_paired_d(nll.a, nll.b))
                    if row["d"] is not None:
                        ds.append(row["d"])
                exp_stats: dict[str, Any] = {"d": main.as_dict()}
                partnered = {t.participant for t in group if t in others}
                trio_units = [u for u in units if u[1] in partnered]
                if trio_units:
                    content = pair_units(trio_units, ("shuffled", "with"), arms)
                    exp_stats["d_content"] = content.as_dict()
                    c = _paired_nll(content, arms, "shuffled", "with")
                    row.update(dropped_shuffled=content.dropped["shuffled"], d_content_status=content.status)
                    if content.status != NOT_ENOUGH and c.participants >= 2:
                        d_c = _paired_d(c.a, c.b)
                        row.update(nll_shuffled=c.mean_a, d_content=d_c["d"], d_content_ci_low=d_c["d_ci_low"],
                                   d_content_ci_high=d_c["d_ci_high"])
                pairing_stats.setdefault(model, {})[exp] = exp_stats
                table.append(row)
            per_model[model] = _distribution(ds, self.spec.seed + 101 * m_i, self.options.n_bootstrap)
        counts = count_results(results)
        notes = [f"{counts['errors']} failed scoring requests are left out and counted."] if counts["errors"] else []
        notes.append("A response enters a comparison only if it was scored in both arms (with and without the profile; "
                     "own and shuffled profile for d_content); dropped_* count the responses each arm lost.")
        stats = {"d_over_experiments": per_model, "pairing": pairing_stats}
        return Summary(study=self.name, verdict=_verdict(per_model, table, pairing_stats), table=table,
                       stats=stats, counts=counts, notes=notes)

    def figures(self, results: Sequence[Result], summary: Summary) -> list[tuple[str, Any]]:
        from ..report.plots import forest_plot  # noqa: PLC0415

        rows = [r for r in summary.table if r.get("d") is not None]
        if not rows:
            return []
        return [("Cohen's d per experiment (positive: the profile helps), 95% CI (paired)",
                 forest_plot([f"{r['experiment']} ({r['model'].split('/')[-1]})" for r in rows],
                             [r["d"] for r in rows], [r["d_ci_low"] for r in rows], [r["d_ci_high"] for r in rows],
                             xlabel="Cohen's d"))]


@dataclass(frozen=True)
class _ArmMeans:
    """Per participant, the mean NLL over the same complete responses in two arms."""

    participants: int
    a: np.ndarray
    b: np.ndarray

    @property
    def mean_a(self) -> float | None:
        return float(self.a.mean()) if self.participants else None

    @property
    def mean_b(self) -> float | None:
        return float(self.b.mean()) if self.participants else None


def _paired_nll(pairing: Pairing[tuple[str, str, int]], arms: dict[str, dict[tuple[str, str, int], float]],
                a: str, b: str) -> _ArmMeans:
    """Each participant's mean NLL in arms `a` and `b` over their complete responses only."""
    by_person: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    for unit in pairing.complete:
        by_person[unit[1]].append(unit)
    people = sorted(by_person)
    return _ArmMeans(len(people), np.array([np.mean([arms[a][u] for u in by_person[p]]) for p in people]),
                     np.array([np.mean([arms[b][u] for u in by_person[p]]) for p in people]))


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


def _names(rows: list[dict[str, Any]]) -> str:
    return f" ({', '.join(r['experiment'] for r in rows)})" if rows else ""


def _verdict(per_model: dict[str, Any], table: list[dict[str, Any]],
             pairing: dict[str, dict[str, Any]] | None = None) -> str:
    """The verdict, from the summary's own numbers only (a pure function of its stats and rows).

    Leads with any comparison that lost more than 5% of its responses to failed requests. Then,
    per model: the mean d over experiments with its CI ('helps' only when the CI is above 0,
    'hurts' only when below); how many experiments' CI of d is above 0, below 0, or includes 0;
    the experiments with not enough data; and, against a shuffled profile, where the gain over no
    profile is the person's (d_content's CI above 0) or only the interview block's.
    """
    pairing = pairing or {}
    lead = drop_warnings((f"{model} {exp} ({label})", comps.get(key))
                         for model, exps in pairing.items() for exp, comps in exps.items()
                         for key, label in (("d", "with vs without profile"),
                                            ("d_content", "own vs another participant's profile")))
    parts = [lead.strip()] if lead else []
    for model, dist in per_model.items():
        rows = [r for r in table if r["model"] == model]
        scant = [r for r in rows if r.get("d_status") == NOT_ENOUGH]
        scant_txt = (f" Not enough data (over half the responses dropped) in {len(scant)}{_names(scant)}."
                     if scant else "")
        if not dist.get("experiments"):
            parts.append(f"{model}: no experiment had enough scored participants for an estimate of d.{scant_txt}")
            continue
        with_d = [r for r in rows if r.get("d") is not None]
        above = [r for r in with_d if r.get("d_ci_low") is not None and r["d_ci_low"] > 0]
        below = [r for r in with_d if r.get("d_ci_high") is not None and r["d_ci_high"] < 0]
        spans = len(with_d) - len(above) - len(below)
        lo, hi = dist.get("ci_low"), dist.get("ci_high")
        if lo is not None and hi is not None:
            overall = "helps" if lo > 0 else "hurts" if hi < 0 else "does not reliably help"
            ci = f" (95% CI {lo:+.3f} to {hi:+.3f}" + (", includes 0)" if lo <= 0 <= hi else ")")
        else:
            overall, ci = "does not reliably help", " (one experiment: no CI over experiments)"
        text = (f"{model}: across {dist['experiments']} experiment{'s' if dist['experiments'] != 1 else ''} the "
                f"profile {overall} predict responses: mean d = {dist['mean_d']:+.3f}{ci}. The 95% CI of d is "
                f"above 0 in {len(above)}{_names(above)}, below 0 in {len(below)}{_names(below)} and includes 0 in "
                f"{spans}.{scant_txt}")
        controlled = [r for r in with_d if r.get("d_content") is not None]
        if controlled:
            own = [r for r in controlled if r.get("d_content_ci_low") is not None and r["d_content_ci_low"] > 0]
            block = [r for r in above if r in controlled and r not in own]
            text += (f" Against another participant's profile (d_content), the participant's own profile predicts "
                     f"better (CI above 0) in {len(own)} of {len(controlled)}{_names(own)}.")
            if block:
                text += (f" In {len(block)}{_names(block)} the profile beats no profile but the participant's own "
                         "profile does no better than another's: that gain comes from the interview block, not the "
                         "person.")
        parts.append(text)
    return " ".join(parts)


STUDY = IndividuationStudy
