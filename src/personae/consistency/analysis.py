"""The consistency study's summary: per speaker and dialogue, then per (model, persona), with CIs.

Every number of the verdict comes from the table rows built here; a metric a run did not
measure is None in the table and absent from the verdict, never 0.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..dialogue import Dialogue
from ..runner import Result
from ..stats import mean_ci, spearman
from ..stats.drift import drift, pass_hat_k
from ..studies.base import Summary, count_results
from .judging import Answer, usable
from .metrics import line_to_line, parroting

if TYPE_CHECKING:
    from ..studies.consistency import ConsistencyStudy

Unit = tuple[str, str]  # (dialogue id, speaker)


def _nanmean(values: Sequence[float]) -> float | None:
    x = [v for v in values if v is not None and math.isfinite(v)]
    return float(np.mean(x)) if x else None


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None or not math.isfinite(x) else round(float(x), nd)


def _ci(values: Sequence[float]) -> list[float | None] | None:
    x = [v for v in values if v is not None and math.isfinite(v)]
    if len(x) < 2:
        return None
    e = mean_ci(x)
    return [_r(max(0.0, e.ci_low)), _r(min(1.0, e.ci_high))]


class _Collected:
    """Every measured value, keyed by (dialogue, turn) or unit."""

    def __init__(self, study: ConsistencyStudy, results: Sequence[Result]) -> None:
        by_metric: dict[str, list[Result]] = defaultdict(list)
        for r in results:
            by_metric[r.request.tags.condition or ""].append(r)
        self.p2l_set = study.p2l_judge.collect(by_metric["prompt_to_line"])
        self.adherence: dict[tuple[str, int], float] = {}
        for item in self.p2l_set.items:
            parsed = [v for v in item.verdicts if v is not None]
            if parsed:
                self.adherence[(item.tags.extra["dialogue"], item.tags.extra["turn"])] = \
                    float(np.mean([not v.contradicts for v in parsed]))
        self.l2l_set = study.l2l_judge.collect(by_metric["line_to_line"])
        self.flagged: dict[Unit, dict[int, dict[int, list[int]]]] = defaultdict(lambda: defaultdict(dict))
        for item in self.l2l_set.items:
            e = item.tags.extra
            for rep, v in zip(item.replicates, item.verdicts):
                if v is not None:
                    self.flagged[(e["dialogue"], e["speaker"])][rep][e["turn"]] = list(v.conflicts)
        self.p_true: dict[tuple[str, int], float] = {}
        self.top1: dict[tuple[str, int], bool] = {}
        self.n_candidates = 0
        scores: dict[tuple[str, int], dict[int, float]] = defaultdict(dict)
        truth: dict[tuple[str, int], int] = {}
        self.listener_failed = 0
        for r in by_metric["listener"]:
            e = r.request.tags.extra
            key = (e["dialogue"], e["turn"])
            truth[key] = int(e["true"])
            if r.ok and r.score is not None:
                scores[key][int(e["candidate"])] = r.score.logprob
            else:
                self.listener_failed += 1
                scores[key][int(e["candidate"])] = float("nan")
        for key, by_cand in scores.items():
            lp = np.array([by_cand[i] for i in sorted(by_cand)])
            if not np.all(np.isfinite(lp)):
                continue  # a line with a failed candidate leaves the metric (paired: every arm or none)
            post = np.exp(lp - lp.max())
            post /= post.sum()
            self.p_true[key] = float(post[truth[key]])
            self.top1[key] = bool(int(np.argmax(lp)) == truth[key])
            self.n_candidates = max(self.n_candidates, lp.size)
        self.qa: dict[Unit, dict[int, list[bool | None]]] = defaultdict(lambda: defaultdict(list))
        for r in by_metric["qa"]:
            e = r.request.tags.extra
            answer = None
            if r.ok:
                try:
                    answer = Answer.model_validate_json(r.text or "").answer
                except ValueError:
                    answer = None
            self.qa[(e["dialogue"], e["speaker"])][int(e["checkpoint"])].append(
                None if answer is None else answer == e["key"])
        self.validity_set = study.validity_judge.collect(by_metric["validity"])
        self.vectors = {r.request.input: np.asarray(r.embedding.vector) for r in by_metric["parroting"]
                        if r.ok and r.embedding is not None and r.request.input is not None}
        written = [study.qa_writer.parse(r.text)[0] if r.ok else None for r in by_metric["qa_questions"]]
        self.sheets_asked = len(written)
        self.sheets_written = sum(w is not None for w in written)
        self.questions_written = sum(len(w.questions) for w in written if w is not None)
        self.questions_usable = sum(usable(q) for w in written if w is not None for q in w.questions)


def _unit_row(study: ConsistencyStudy, c: _Collected, d: Dialogue, speaker: str) -> dict[str, Any]:
    own = d.lines_of(speaker)
    adh = [c.adherence.get((d.id, x.turn)) for x in own]
    l2l = [line_to_line(d, speaker, flagged).score for flagged in c.flagged.get((d.id, speaker), {}).values()]
    qa_points = c.qa.get((d.id, speaker), {})
    qa_shares = [(_nanmean([float(v) for v in vs if v is not None])) for _, vs in sorted(qa_points.items())]
    p_true = [c.p_true.get((d.id, x.turn)) for x in own]
    row: dict[str, Any] = {
        "dialogue": d.id, "speaker": speaker,
        "model": str(d.metadata["source"]) if study.options.dialogues else study.studied_model(d),
        "persona": str(d.metadata.get("persona") or d.speaker(speaker).name or speaker)
        + (f" ({d.metadata['arm']})" if d.metadata.get("arm") not in (None, "plain") else ""),
        "replicate": d.metadata.get("replicate"), "lines": len(own),
        "stopped_at": d.metadata.get("stopped_at"),
        "prompt_to_line": _nanmean([a for a in adh if a is not None]),
        "line_to_line": _nanmean(l2l),
        "qa": _nanmean([q for q in qa_shares if q is not None]),
        "listener": _nanmean([p for p in p_true if p is not None]),
        "contradicted_turns": [x.turn for x, a in zip(own, adh) if a is not None and a < 0.5],
        "_adherence": adh, "_p_true": p_true, "_qa_curve": qa_shares,
    }
    if "parroting" in study.options.metrics:
        sheet = d.speaker(speaker).persona
        if own and all(x.text in c.vectors for x in d.lines) and all(s in c.vectors for s in sheet):
            vecs = {x.turn: c.vectors[x.text] for x in d.lines}
            sheet_vecs = np.array([c.vectors[s] for s in sheet]) if sheet else None
            adherence = {x.turn: (a if a is not None else 1.0) for x, a in zip(own, adh)}
            par = parroting(d, speaker, vecs, sheet_vecs, adherence)
            row["parroting_rate"], row["joint"] = par.rate, par.mean_joint
    for key, value in d.reference_scores.items():
        who, _, metric = key.partition(".")
        if who == speaker:
            row[f"reference_{metric}"] = value
    return row


def _curve_drift(curves: list[list[float | None]]) -> dict[str, Any] | None:
    rows = [[float("nan") if v is None else float(v) for v in c] for c in curves if c]
    width = max((len(r) for r in rows), default=0)
    window = 3 if width >= 6 else 1
    if len(rows) < 2 or width <= window:
        return None
    result = drift(rows, window=window)
    cis = []
    for t in range(width):
        column = [r[t] for r in rows if t < len(r) and math.isfinite(r[t])]
        cis.append(_ci(column))
    return {"onset": result.onset, "slope": _r(result.slope, 4),
            "slope_ci": [_r(result.slope_ci_low, 4), _r(result.slope_ci_high, 4)], "opening": _r(result.opening),
            "curve": [_r(v) for v in result.curve], "curve_ci": cis, "window": window, "method": result.method, "note": result.note,
            "index": "the speaker's own lines: curve[0] and onset 0 are its first line"}


def _group_rows(study: ConsistencyStudy, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[(row["model"], row["persona"])].append(row)
    table, drift_stats = [], {}
    metrics = [m for m in ("prompt_to_line", "line_to_line", "qa", "listener") if m in study.options.metrics]
    for (model, persona), members in groups.items():
        out: dict[str, Any] = {"model": model, "persona": persona, "dialogues": len(members),
                               "complete": sum(1 for m in members if m["stopped_at"] is None),
                               "lines": sum(m["lines"] for m in members)}
        for metric in metrics:
            values = [m[metric] for m in members if m[metric] is not None]
            out[metric] = _r(_nanmean(values))
            out[f"{metric}_ci"] = _ci(values)
        if "parroting" in study.options.metrics:
            out["parroting_rate"] = _r(_nanmean([m.get("parroting_rate") for m in members]))
            out["joint"] = _r(_nanmean([m.get("joint") for m in members]))
        if "prompt_to_line" in metrics:
            trials = [m["prompt_to_line"] >= study.options.stay_threshold for m in members
                      if m["prompt_to_line"] is not None]
            out["stays_in_character"] = f"{sum(trials)}/{len(trials)}" if trials else None
        drift_stats[f"{model}|{persona}"] = {
            name: _curve_drift([m[key] for m in members])
            for name, key in (("prompt_to_line", "_adherence"), ("listener", "_p_true"), ("qa", "_qa_curve"))
            if name in metrics}
        tested = drift_stats[f"{model}|{persona}"].get("prompt_to_line")
        out["drift_onset"] = tested.get("onset") if tested else None
        out["drift_tested"] = tested is not None
        table.append(out)
    return table, drift_stats


def _validity(study: ConsistencyStudy, c: _Collected) -> dict[str, Any] | None:
    if not c.validity_set.items:
        return None
    right = []
    for item in c.validity_set.items:
        agg = study.validity_judge.aggregate(item)
        if agg is not None and agg.get("speaker") is not None:
            right.append(agg["speaker"] == item.tags.extra["true"])
    n_options = study.options.distractors + 1
    chance = 1.0 / n_options
    if not right:
        return {"lines": len(c.validity_set.items), "answered": 0, "chance": _r(chance), "accuracy": None,
                "warning": "the judge named no speaker (every verdict failed to parse)."}
    from statsmodels.stats.proportion import proportion_confint  # noqa: PLC0415

    lo, hi = proportion_confint(sum(right), len(right), method="wilson")
    out = {"lines": len(c.validity_set.items), "answered": len(right), "accuracy": _r(float(np.mean(right))),
           "ci": [_r(lo), _r(hi)], "chance": _r(chance), "method": "Wilson interval (statsmodels proportion_confint)",
           "reference": "PersonaEval: best LLM judge 69%, humans 91% on human-written lines"}
    if lo <= chance:
        out["warning"] = (f"the judge cannot tell the speakers apart better than chance ({chance:.2f}): its "
                          "character-fidelity verdicts are not evidence.")
    return out


def _agreement_with_reference(rows: list[dict[str, Any]], seed: int) -> dict[str, Any]:
    out = {}
    for metric in ("prompt_to_line", "line_to_line", "qa"):
        pairs = [(r[metric], r[f"reference_{metric}"]) for r in rows
                 if r.get(metric) is not None and r.get(f"reference_{metric}") is not None]
        if len(pairs) < 3 or len({p[0] for p in pairs}) < 2 or len({p[1] for p in pairs}) < 2:
            if pairs:
                out[metric] = {"n": len(pairs), "note": "too few or constant pairs for a rank correlation"}
            continue
        res = spearman([p[0] for p in pairs], [p[1] for p in pairs], seed=seed, n_resamples=2000)
        out[metric] = {"n": len(pairs), "spearman": _r(res.estimate), "ci": [_r(res.ci_low), _r(res.ci_high)]}
    return out


def _models_rank(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per metric with reference scores: do personae's judge and the reference rank the sources
    (models) the same way? Means per source, both orders, Kendall's tau (scipy) from 3 sources."""
    from scipy.stats import kendalltau  # noqa: PLC0415

    out = {}
    for metric in ("prompt_to_line", "line_to_line", "qa"):
        ours: dict[str, list[float]] = defaultdict(list)
        ref: dict[str, list[float]] = defaultdict(list)
        for r in rows:
            if r.get(metric) is not None and r.get(f"reference_{metric}") is not None:
                ours[r["model"]].append(r[metric])
                ref[r["model"]].append(r[f"reference_{metric}"])
        if len(ours) < 2:
            continue
        mine = {m: float(np.mean(v)) for m, v in ours.items()}
        theirs = {m: float(np.mean(v)) for m, v in ref.items()}
        entry: dict[str, Any] = {"ours": {m: _r(v) for m, v in mine.items()},
                                 "reference": {m: _r(v) for m, v in theirs.items()},
                                 "order_ours": sorted(mine, key=lambda m: -mine[m]),
                                 "order_reference": sorted(theirs, key=lambda m: -theirs[m])}
        entry["same_order"] = entry["order_ours"] == entry["order_reference"]
        if len(ours) >= 3:
            names = sorted(mine)
            entry["kendall_tau"] = _r(float(kendalltau([mine[m] for m in names], [theirs[m] for m in names]).statistic))
        out[metric] = entry
    return out


def _listener_vs_judge(c: _Collected, seed: int) -> dict[str, Any] | None:
    keys = [k for k in c.p_true if k in c.adherence]
    x, y = [c.p_true[k] for k in keys], [c.adherence[k] for k in keys]
    if len(keys) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return {"n": len(keys), "note": "too few lines, or a constant verdict, for a rank correlation"} if keys else None
    res = spearman(x, y, seed=seed, n_resamples=2000)
    return {"n": len(keys), "spearman": _r(res.estimate), "ci": [_r(res.ci_low), _r(res.ci_high)]}


def _fingerprint(study: ConsistencyStudy, model: str) -> str | None:
    """The judge's exact identity (model file hash, server and model name...), as the cache key uses it."""
    from ..backends import create_backend  # noqa: PLC0415
    from ..errors import PersonaeError  # noqa: PLC0415
    from ..spec import backend_options_for  # noqa: PLC0415

    bound = study.resolved.roles.get("judge")
    options = bound.options if bound is not None and bound.model == model else backend_options_for(study.spec, model)
    try:
        return create_backend(model, options).fingerprint()
    except PersonaeError:
        return None


def verdict_for(table: Sequence[dict[str, Any]], stats: dict[str, Any]) -> str:
    """The verdict, from the table rows and stats only (tests hold it to them)."""
    parts: list[str] = []
    validity = stats.get("judge_validity") or {}
    if validity.get("warning"):
        parts.append(f"Warning: {validity['warning']}")
    if not table:
        return " ".join(parts + ["No dialogue was scored."])
    for row in table:
        bits, missing = [], []
        for metric, label in (("prompt_to_line", "prompt-to-line"), ("line_to_line", "line-to-line"), ("qa", "Q&A"),
                              ("listener", "listener posterior")):
            if row.get(metric) is not None:
                ci = row.get(f"{metric}_ci")
                bits.append(f"{label} {row[metric]:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""))
            elif metric in stats.get("metrics", ()):
                missing.append(label)
        if missing:
            bits.append(f"no {', '.join(missing)} score (no request of it succeeded and parsed)")
        onset = row.get("drift_onset")
        if row.get("prompt_to_line") is not None and row.get("drift_tested"):
            bits.append(f"prompt-to-line drifts down from its line {onset + 1}" if onset is not None
                        else "no drift detected")
        elif row.get("prompt_to_line") is not None:
            bits.append("drift not tested (it needs 2 or more dialogues longer than the opening window)")
        if row.get("parroting_rate"):
            bits.append(f"{row['parroting_rate']:.0%} of lines restate the sheet")
        parts.append(f"{row['persona']} ({row['model']}, {row['dialogues']} dialogue"
                     f"{'s' if row['dialogues'] != 1 else ''}): " + "; ".join(bits) + ".")
    chance = stats.get("listener_chance")
    if chance is not None and any(r.get("listener") is not None for r in table):
        parts.append(f"The listener posterior's chance level is {chance:.2f}.")
    return " ".join(parts)


def analyze_consistency(study: ConsistencyStudy, results: Sequence[Result]) -> Summary:
    c = _Collected(study, results)
    dialogues = study.dialogues(results)
    rows = [_unit_row(study, c, d, s) for d in dialogues for s in study.evaluated(d)]
    table, drift_stats = _group_rows(study, rows)
    stats: dict[str, Any] = {"metrics": list(study.options.metrics), "drift": drift_stats, "dialogues": [{k: v for k, v in r.items() if not k.startswith("_")}
                                                                for r in rows]}
    if "listener" in study.options.metrics:
        stats["listener_chance"] = _r(1.0 / c.n_candidates) if c.n_candidates else None
        stats["listener_top1"] = _r(_nanmean([float(v) for v in c.top1.values()]))
        stats["listener_vs_judge"] = _listener_vs_judge(c, study.spec.seed)
    stats["judge_validity"] = _validity(study, c)
    stats["judge_agreement"] = {
        "prompt_to_line": {k: v.as_dict() for k, v in study.p2l_judge.agreement(c.p2l_set).items()}
        if c.p2l_set.items else None,
        "counts": {"prompt_to_line": c.p2l_set.counts(), "line_to_line": c.l2l_set.counts(),
                   "validity": c.validity_set.counts()}}
    judges = sorted({r.request.model for r in results if r.request.tags.role == "judge"})
    stats["judge_models"] = [{"model": m, "fingerprint": _fingerprint(study, m)} for m in judges]
    if study.options.dialogues:
        stats["reference_agreement"] = _agreement_with_reference(rows, study.spec.seed)
        stats["models_rank"] = _models_rank(rows)
    if "prompt_to_line" in study.options.metrics and study.slots:
        per_model: dict[str, list[list[bool]]] = defaultdict(list)
        for row in table:
            members = [r for r in rows if r["model"] == row["model"] and r["persona"] == row["persona"]
                       and r["prompt_to_line"] is not None]
            if members:
                per_model[row["model"]].append([r["prompt_to_line"] >= study.options.stay_threshold for r in members])
        stats["pass_k"] = {m: {"k": min(len(t) for t in units), "pass_k": _r(pass_hat_k(units, min(len(t) for t in units))),
                               "pass_1": _r(pass_hat_k(units, 1)), "threshold": study.options.stay_threshold}
                           for m, units in per_model.items()}
    notes = []
    if c.sheets_asked and (c.sheets_written < c.sheets_asked or c.questions_usable < c.questions_written):
        notes.append(f"Q&A: the judge's questions parsed for {c.sheets_written} of {c.sheets_asked} persona sheets, "
                     f"and {c.questions_usable} of {c.questions_written} questions have five different options; "
                     "only those were asked (options shuffled, so the key's letter is random).")
    if c.listener_failed:
        notes.append(f"listener: {c.listener_failed} scoring requests failed; their lines left the metric.")
    stopped = sum(1 for r in rows if r["stopped_at"] is not None)
    if stopped:
        notes.append(f"{stopped} of {len(rows)} dialogues stopped early at a failed line; they are scored on the "
                     "lines they have.")
    return Summary(study=study.name, verdict=verdict_for(table, stats), table=table, stats=stats,
                   counts=count_results(results), notes=notes)
