"""The listener study's summary: S0 vs S1 per model and source, with CIs, compute and a verdict.

Per unit, S0's pick (the true world's length-normalised log-likelihood) and S1's pick
(`rsa.sequence_score`) from the same per-token log-probabilities. A unit enters the S0 vs S1
comparison only if every one of its score requests succeeded (S0's N and S1's (k+1) x N:
`_pairing.pair_units`). Table rows are (model, source, metric); the verdict is written from
them and nothing else (`verdict_for`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..runner import Result
from ..stats import bootstrap_ci, paired_difference_ci
from ..studies._pairing import NOT_ENOUGH, drop_warnings, pair_units
from ..studies.base import Summary, count_results
from .ranking import rank_scores
from .units import Unit

if TYPE_CHECKING:
    from ..studies.listener import ListenerStudy

METRICS: dict[str, tuple[str, str]] = {
    "hits@1": ("Hits@1", "higher"),
    "contradict@1": ("Contradict@1", "lower"),
    "entail@1": ("Entail@1", "higher"),
}
"""metric -> (label, which direction is better)."""


@dataclass(frozen=True)
class Ranked:
    """One unit ranked by S0 and S1."""

    unit: Unit
    s0_pick: int
    s1_pick: int
    posterior: tuple[float, ...]
    """Listener posterior over the world (true first) given S1's pick."""
    p_true: tuple[float, ...]
    """Per candidate: the listener's posterior of the true persona given the whole candidate."""
    seconds: tuple[float, float]
    """Scoring seconds: the true world's requests (S0), every world's (S1)."""
    requests: tuple[int, int]
    """Score requests: S0's, S1's."""


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), nd)


def rank_unit(unit: Unit, scores: Mapping[tuple[int, int], Result], n_worlds: int, *, alpha: float, beta: float,
              prior_update: str) -> tuple[Ranked | None, bool]:
    """(the unit ranked, whether S0's requests all succeeded); None when some request of S1 failed."""
    n = len(unit.choices)

    def per_token(w: int, c: int) -> tuple[float, ...] | None:
        r = scores.get((w, c))
        if r is None or not r.ok or r.score is None or not r.score.token_logprobs:
            return None
        return r.score.token_logprobs

    true_rows = [per_token(0, c) for c in range(n)]
    s0_ok = all(t is not None for t in true_rows)
    rows = [[per_token(w, c) for w in range(n_worlds)] for c in range(n)]
    if n_worlds < 2 or any(t is None for row in rows for t in row):
        return None, s0_ok
    if any(len({len(t) for t in row if t is not None}) != 1 for row in rows):
        return None, s0_ok  # worlds tokenised a candidate differently: no per-token listener
    ranking = rank_scores(rows, alpha=alpha, beta=beta, prior_update=prior_update)  # type: ignore[arg-type]
    seconds_all = [scores[(w, c)].score.latency_s for w in range(n_worlds) for c in range(n)]  # type: ignore[union-attr]
    seconds_true = [scores[(0, c)].score.latency_s for c in range(n)]  # type: ignore[union-attr]
    return Ranked(unit=unit, s0_pick=ranking.s0_best, s1_pick=ranking.best, posterior=ranking.posterior,
                  p_true=ranking.p_true,
                  seconds=(float(sum(seconds_true)), float(sum(seconds_all))), requests=(n, n * n_worlds)), s0_ok


def outcome(unit: Unit, pick: int, metric: str) -> float:
    choice = unit.choices[pick]
    if metric == "hits@1":
        return float(choice.gold)
    return float(choice.label == metric.split("@")[0])


def metric_row(model: str, source: str, metric: str, ranked: Sequence[Ranked], pairing: dict[str, Any],
               *, seed: int, n_bootstrap: int) -> dict[str, Any]:
    label, better = METRICS[metric]
    a = [outcome(r.unit, r.s1_pick, metric) for r in ranked]
    b = [outcome(r.unit, r.s0_pick, metric) for r in ranked]
    return compare_row(model, source, label, better, a, b, pairing, seed=seed, n_bootstrap=n_bootstrap)


def compare_row(model: str, source: str, label: str, better: str, s1: Sequence[float], s0: Sequence[float],
                pairing: dict[str, Any], *, seed: int, n_bootstrap: int) -> dict[str, Any]:
    """One table row: a share (or mean in [0, 1]) under S0 and S1 over the same units, each with a
    bootstrap CI, and the paired difference S1 - S0 with its CI."""
    row: dict[str, Any] = {"model": model, "source": source, "metric": label, "items": len(s1), "better": better,
                           "status": pairing["status"], "S0": None, "S0_ci": None, "S1": None, "S1_ci": None,
                           "diff": None, "diff_ci": None}
    if pairing["status"] == NOT_ENOUGH or len(s1) < 2:
        row["status"] = NOT_ENOUGH
        return row
    a, b = np.asarray(s1, dtype=float), np.asarray(s0, dtype=float)
    for name, x in (("S0", b), ("S1", a)):
        ci = bootstrap_ci(x, seed=seed, n_resamples=n_bootstrap)
        row[name], row[f"{name}_ci"] = _r(float(x.mean())), [_r(max(0.0, ci.ci_low)), _r(min(1.0, ci.ci_high))]
    d = paired_difference_ci(a, b, seed=seed, n_resamples=n_bootstrap)
    # a difference of two shares lies in [-1, 1]; the t interval of few units can reach past it
    row["diff"], row["diff_ci"] = _r(d.estimate), [_r(max(-1.0, d.ci_low)), _r(min(1.0, d.ci_high))]
    row["diff_method"] = d.method
    return row


def verdict_for(table: Sequence[Mapping[str, Any]], stats: Mapping[str, Any]) -> str:
    """The verdict, from the table rows and stats only (tests hold it to them)."""
    lead = drop_warnings((f"{p['model']} {p['source']}", p) for p in stats.get("pairing", ()))
    if not table:
        return lead + "No unit was ranked."
    parts = []
    for row in table:
        where = f"{row['model']}, {row['source']}"
        if row["status"] == NOT_ENOUGH or row["diff"] is None:
            parts.append(f"{row['metric']} ({where}): {NOT_ENOUGH}, no estimate.")
            continue
        lo, hi = row["diff_ci"]
        numbers = (f"{row['S0']:.2f} (S0) vs {row['S1']:.2f} (S1), difference {row['diff']:+.2f} "
                   f"[95% CI {lo:+.2f}, {hi:+.2f}], {row['items']} items")
        if hi < 0 or lo > 0:
            moved = "lowers" if hi < 0 else "raises"
            good = (moved == "lowers") == (row["better"] == "lower")
            parts.append(f"S1 {moved} {row['metric']} ({where}; {'better' if good else 'worse'}): {numbers}.")
        else:
            parts.append(f"S1 does not change {row['metric']} distinguishably ({where}; the CI of the "
                         f"difference includes 0): {numbers}.")
    compute = stats.get("compute") or {}
    for model_source, c in compute.items():
        if c.get("request_ratio") is not None:
            parts.append(f"S1 costs {c['request_ratio']:.1f}x the score requests of S0 ({model_source}).")
    return lead + " ".join(parts)


def analyze_listener(study: ListenerStudy, results: Sequence[Result]) -> Summary:
    o = study.options
    worlds = study.worlds(results)
    by_unit: dict[tuple[str, str, str], dict[tuple[int, int], Result]] = defaultdict(dict)
    for r in results:
        if r.request.kind == "score" and r.request.tags.condition in ("set", "dialogues"):
            t = r.request.tags
            by_unit[(r.request.model, t.condition or "", t.item or "")][(t.extra["world"], t.extra["candidate"])] = r
    table: list[dict[str, Any]] = []
    pairing_stats: list[dict[str, Any]] = []
    compute: dict[str, Any] = {}
    diagnostics: dict[str, Any] = {}
    failed = 0
    for model in study.spec.model:
        for source in ("set", "dialogues"):
            units = [u for u in study.units if u.source == source]
            if not units:
                continue
            ranked: dict[str, Ranked] = {}
            s0_ok, s1_ok = set(), set()
            for u in units:
                sheets = worlds.get((u.source, u.id))
                got = by_unit.get((model, source, u.id), {})
                failed += sum(not r.ok for r in got.values())
                if sheets is None:
                    continue
                res, ok0 = rank_unit(u, got, len(sheets), alpha=o.alpha, beta=o.beta, prior_update=o.prior_update)
                if ok0:
                    s0_ok.add(u.id)
                if res is not None:
                    s1_ok.add(u.id)
                    ranked[u.id] = res
            pairing = pair_units([u.id for u in units], ("S0", "S1"), {"S0": s0_ok, "S1": s1_ok})
            p = {"model": model, "source": source, **pairing.as_dict()}
            pairing_stats.append(p)
            paired = [ranked[i] for i in pairing.complete]
            metrics = ("hits@1", "contradict@1", "entail@1") if source == "set" else ("hits@1",)
            for metric in metrics:
                table.append(metric_row(model, source, metric, paired, p, seed=study.spec.seed,
                                        n_bootstrap=o.n_bootstrap))
            if paired:
                req0, req1 = (float(np.mean([r.requests[i] for r in paired])) for i in (0, 1))
                sec0, sec1 = (float(np.mean([r.seconds[i] for r in paired])) for i in (0, 1))
                compute[f"{model}, {source}"] = {
                    "score_requests_per_item": {"S0": _r(req0, 2), "S1": _r(req1, 2)},
                    "request_ratio": _r(req1 / req0, 2),
                    "seconds_per_item": {"S0": _r(sec0, 4), "S1": _r(sec1, 4)},
                    "seconds_ratio": _r(sec1 / sec0, 2) if sec0 > 0 else None,
                    "note": "seconds are each request's own scoring time as recorded when it was first answered "
                            "(a cached rerun reports the first run's)"}
                diagnostics[f"{model}, {source}"] = _diagnostics(paired)
    stats: dict[str, Any] = {
        "alpha": o.alpha, "beta": o.beta, "prior_update": o.prior_update,
        "distractors": o.distractors.model_dump(), "chance_hits@1": _chance(study.units),
        "pairing": pairing_stats, "compute": compute, "diagnostics": diagnostics,
        "generation": None,  # generation mode adds its own (personae.listener.generation)
    }
    notes = []
    if failed:
        notes.append(f"{failed} score requests failed; their units left the S0 vs S1 comparison.")
    missing = sum(1 for u in study.units if (u.source, u.id) not in worlds)
    if missing:
        notes.append(f"{missing} units had no embedding of their persona (nearest/farthest): not ranked.")
    notes.append("Ranking mode cannot normalise S1 over the vocabulary (only the candidates' own tokens are "
                 "scored); each token's term is alpha * log L0 + log S0, the same for every candidate.")
    return Summary(study=study.name, verdict=verdict_for(table, stats), table=table, stats=stats,
                   counts=count_results(results), notes=notes)


def _chance(units: Sequence[Unit]) -> float | None:
    return _r(float(np.mean([1.0 / len(u.choices) for u in units]))) if units else None


def _diagnostics(ranked: Sequence[Ranked]) -> dict[str, Any]:
    """Why S1 moves (or not): how often it changes S0's pick, the listener's posterior of the true
    persona per label of candidate, and how often the listener puts the true persona first."""
    by_label: dict[str, list[float]] = defaultdict(list)
    for r in ranked:
        for choice, p in zip(r.unit.choices, r.p_true):
            by_label[choice.label or ("true line" if choice.gold else "other line")].append(p)
    return {
        "changed_pick": _r(float(np.mean([r.s0_pick != r.s1_pick for r in ranked]))),
        "p_true_by_label": {k: _r(float(np.mean(v))) for k, v in sorted(by_label.items())},
        "p_true_of_s1_pick": _r(float(np.mean([r.posterior[0] for r in ranked]))),
        "world_size": len(ranked[0].posterior),
    }


__all__ = ["METRICS", "Ranked", "analyze_listener", "compare_row", "metric_row", "outcome", "rank_unit",
           "verdict_for"]
