"""Generation mode of the listener study: greedy S0 vs S1 replies to the same prompts.

For each unit of the ranking set (its persona, its context) and each model: a greedy reply with
the persona alone (S0) and a reply decoded with the imaginary listener against the unit's world
(S1, `Request.decoding`; backends with `supports_multiseq`). Then every reply is judged against
the persona (the prompt-to-line verdict of the consistency study, `roles.judge`) and scored under
every world (the judge-free listener posterior of the true persona, from the model under study).

Two rows per model, paired over units (a unit enters only if both replies were judged, or
scored): the contradiction rate (lower is better) and the listener posterior (higher is better).
The posterior is what S1 maximises when the scorer is the decoding model itself, so it is a
check that decoding worked, not independent evidence; the judge's rate is the finding (with a
judge stronger than the model under study).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..backends.base import ListenerDecoding, Message, Request, Sampling, Tags
from ..consistency import judging as J
from ..judge import Judge, JudgeOptions
from ..runner import Result
from ..studies._pairing import pair_units
from ..studies.base import derive_seed
from .analysis import compare_row
from .rsa import GENERATION_ALPHA, GENERATION_BETA, PriorUpdate

if TYPE_CHECKING:
    from ..studies.listener import ListenerStudy

S0, S1 = "gen:s0", "gen:s1"
JUDGED, SCORED = "gen:judge", "gen:score"
ARMS = {S0: "S0", S1: "S1"}


class GenerationOptions(BaseModel):
    """Generation mode: greedy S0 vs S1 replies to the set's prompts, judged and scored."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    limit: int = Field(default=20, ge=2, le=1000)
    """Units of the set to answer (the first n)."""
    max_tokens: int = Field(default=40, ge=4, le=1024)
    """Longest reply."""
    alpha: float = Field(default=GENERATION_ALPHA, ge=0.0, le=100.0)
    beta: float = Field(default=GENERATION_BETA, ge=0.0, le=100.0)
    prior_update: PriorUpdate = "l0"
    judge: JudgeOptions = JudgeOptions(repeats=1, max_tokens=64)
    """Verdicts per reply (>= 2 reports the judge's self-agreement)."""


def _judge(options: GenerationOptions) -> Judge[J.PromptToLine]:
    return Judge.from_options(J.PromptToLine, J.PROMPT_TO_LINE, options.judge)


def _head(system: str, sheet: str) -> Message:
    return Message(role="system", content=system.replace("{persona}", sheet))


def generation_requests(study: ListenerStudy, worlds: dict[tuple[str, str], tuple[str, ...]],
                        wave: int) -> list[Request]:
    """Per model and unit: the greedy S0 reply and the S1 reply against the unit's world."""
    g: GenerationOptions = study.options.generation  # type: ignore[assignment]
    units = [u for u in study.units if u.source == "set"][: g.limit]
    sampling = Sampling(temperature=0.0, max_tokens=g.max_tokens)
    reqs = []
    for model in study.spec.model:
        for u in units:
            sheets = worlds.get((u.source, u.id))
            if sheets is None:
                continue
            messages = (_head(study.options.system, sheets[0]), *u.context)
            decoding = ListenerDecoding(distractors=tuple(study.options.system.replace("{persona}", s)
                                                          for s in sheets[1:]),
                                        alpha=g.alpha, beta=g.beta, prior_update=g.prior_update)
            for arm, extra in ((S0, {}), (S1, {"decoding": decoding})):
                reqs.append(Request(model=model, messages=messages, sampling=sampling,
                                    tags=Tags(item=u.id, condition=arm, wave=wave), **extra))
    return reqs


def judging_requests(study: ListenerStudy, done: Sequence[Result], worlds: dict[tuple[str, str], tuple[str, ...]],
                     wave: int) -> list[Request]:
    """Every reply judged against its persona and scored under every world of its unit."""
    g: GenerationOptions = study.options.generation  # type: ignore[assignment]
    judge = _judge(g)
    by_id = {u.id: u for u in study.units if u.source == "set"}
    reqs = []
    for r in done:
        arm = r.request.tags.condition
        if arm not in ARMS or not r.ok or not (r.text or "").strip():
            continue
        u = by_id[r.request.tags.item or ""]
        sheets = worlds[(u.source, u.id)]
        model = r.request.model
        tags = Tags(item=u.id, condition=JUDGED, wave=wave, extra={"arm": arm, "model": model})
        content = J.persona_line_content(sheets[0], r.text or "")
        reqs += judge.requests(study.role_model("judge", model), content, seed=derive_seed(study.spec.seed, content),
                               tags=tags)
        for w, sheet in enumerate(sheets):
            reqs.append(Request(kind="score", model=model, messages=(_head(study.options.system, sheet), *u.context),
                                continuation=r.text,
                                tags=Tags(item=u.id, condition=SCORED, wave=wave,
                                          extra={"arm": arm, "model": model, "world": w})))
    return reqs


def analyze_generation(study: ListenerStudy, results: Sequence[Result]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(table rows, stats['generation'])."""
    g: GenerationOptions = study.options.generation  # type: ignore[assignment]
    judge = _judge(g)
    replies = [r for r in results if r.request.tags.condition in ARMS]
    judged = judge.collect([r for r in results if r.request.tags.condition == JUDGED],
                           key=lambda req: (req.tags.extra["model"], req.tags.item, req.tags.extra["arm"]))
    contradicts: dict[tuple[str, str, str], float] = {}
    for item in judged.items:
        agg = judge.aggregate(item)
        if agg is not None and agg.get("contradicts") is not None:
            contradicts[item.key] = float(bool(agg["contradicts"]))  # type: ignore[index]
    logps: dict[tuple[str, str, str], dict[int, float]] = defaultdict(dict)
    for r in results:
        if r.request.tags.condition == SCORED:
            e = r.request.tags.extra
            logps[(e["model"], r.request.tags.item or "", e["arm"])][int(e["world"])] = \
                r.score.logprob if r.ok and r.score is not None else float("nan")
    posterior: dict[tuple[str, str, str], float] = {}
    worlds = study.worlds(results)
    for key, by_world in logps.items():
        n = len(worlds.get(("set", key[1]), ()))
        lp = np.array([by_world.get(w, np.nan) for w in range(n)])
        if n and np.all(np.isfinite(lp)):
            p = np.exp(lp - lp.max())
            posterior[key] = float(p[0] / p.sum())
    rows: list[dict[str, Any]] = []
    pairing_stats, compute = [], {}
    o = study.options
    for model in study.spec.model:
        units = sorted({r.request.tags.item or "" for r in replies if r.request.model == model})
        for label, better, values in (("contradiction rate (judge)", "lower", contradicts),
                                      ("listener posterior of the true persona", "higher", posterior)):
            have = {ARMS[arm]: {u for u in units if (model, u, arm) in values} for arm in ARMS}
            pairing = pair_units(units, ("S0", "S1"), have)
            p = {"model": model, "source": "generation", "metric": label, **pairing.as_dict()}
            pairing_stats.append(p)
            done = list(pairing.complete)
            rows.append(compare_row(model, "generation", label, better, [values[(model, u, S1)] for u in done],
                                    [values[(model, u, S0)] for u in done], p, seed=study.spec.seed,
                                    n_bootstrap=o.n_bootstrap))
        mine = {arm: [r for r in replies if r.request.model == model and r.request.tags.condition == arm and r.ok]
                for arm in ARMS}
        compute[model] = _compute(mine[S0], mine[S1])
    failed = sum(not r.ok for r in replies)
    stats = {"units": len({r.request.tags.item for r in replies}), "alpha": g.alpha, "beta": g.beta,
             "prior_update": g.prior_update, "pairing": pairing_stats, "compute": compute,
             "judge": {"models": sorted({r.request.model for r in results if r.request.tags.role == "judge"}),
                       **({"agreement": {k: v.as_dict() for k, v in judge.agreement(judged).items()}}
                          if judged.items else {}), "counts": judged.counts()},
             "failed_replies": failed,
             "note": "the listener posterior is scored by the model that decoded S1, which maximises it: a check "
                     "that decoding worked, not independent evidence; the judge's contradiction rate is the finding"}
    return rows, stats


def _compute(s0: Sequence[Result], s1: Sequence[Result]) -> dict[str, Any]:
    """Forward passes and seconds per reply and per token of S1 vs S0 (as first answered; a cached
    rerun reports the first run's)."""
    def per(rs: Sequence[Result], attr: str) -> float | None:
        vals = [getattr(r.generation, attr) for r in rs if r.generation is not None
                and getattr(r.generation, attr) is not None]
        return float(np.mean(vals)) if vals else None

    out: dict[str, Any] = {}
    for name, rs in (("S0", s0), ("S1", s1)):
        tokens = per(rs, "completion_tokens")
        secs = per(rs, "latency_s")
        passes = per(rs, "forward_passes")
        out[name] = {"seconds_per_reply": None if secs is None else round(secs, 4),
                     "tokens_per_reply": None if tokens is None else round(tokens, 2),
                     "forward_passes_per_reply": None if passes is None else round(passes, 2)}
    a, b = out["S1"]["seconds_per_reply"], out["S0"]["seconds_per_reply"]
    out["seconds_ratio"] = round(a / b, 2) if a and b else None
    return out


__all__ = ["GenerationOptions", "analyze_generation", "generation_requests", "judging_requests"]
