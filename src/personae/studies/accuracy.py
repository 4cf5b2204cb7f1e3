"""accuracy: do personas change correctness? (arXiv 2512.05858, "Playing Pretend")

Conditions: no persona (baseline), an expert in the item's own domain (in-domain), an expert in
another domain of the bank (off-domain), low-knowledge personas (layperson, young child,
toddler) and any personas of the spec. K samples per (item, condition) = the spec's
`replicates`. Answers are read by generating and parsing a letter (parse failures counted,
never scored wrong), or from the log-probabilities of the option letters (mode: logprob).

Per condition: Acc(c) (mean over items of per-item accuracy) with a bootstrap CI, threshold
accuracies, and against the baseline a paired bootstrap CI of the difference, a Wilcoxon
signed-rank test on per-item accuracies and McNemar on majority-correct, Holm-adjusted across
conditions and models. Each difference sits next to the run-to-run noise floor. An item
enters a comparison only if both arms answered it (`_pairing.pair_units`); the items each arm
lost are counted, the verdict leads with drops past 5%, and past 50% gives no estimate.

Predictions made elsewhere (`options.predictions`, a JSONL of item id -> predicted letter per
condition; layout in `_predictions`) take the place of the model: no request is planned, each
row becomes the per-sample answer record a generated reply would have given, and the same
analysis runs on them.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from functools import cached_property, lru_cache
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..backends.base import Message, Request, Sampling
from ..errors import ConfigError
from ..items import ItemFormat, MCItem, normalize_domain, resolve_items
from ..parsing import letter_grammar, parse_choice
from ..persona import Persona, builtin_personas
from ..runner import Result
from ..spec_types import ResolvedSpec
from ..stats import bootstrap_ci, holm, mcnemar, paired_difference_ci, wilcoxon_signed_rank
from ._cells import Condition, cells
from ._answers import accuracy_parse_wrong, bias_note, letter_distribution, point_ci_notes, sample_answer
from ._pairing import NOT_ENOUGH, Pairing, drop_warnings, pair_units
from ._predictions import Predictions, load_predictions
from ._sequential import SequentialOptions, Sequencer, UnitValues, check_sequential, next_batch, sequential_report, \
    stop_sentence
from .base import Study, Summary, count_results

BASELINE = "baseline"
SPECIAL = ("baseline", "in-domain", "off-domain")
DEFAULT_CONDITIONS = ("baseline", "in-domain", "off-domain", "layperson", "young-child", "toddler")
INSTRUCTION = ("Answer the following multiple-choice question. Reply with the letter of the correct option only.")


class AccuracyOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    items: str = "builtin:general"
    """'builtin:general', a file path (relative to the spec), or 'hf:DATASET' (needs a network)."""
    items_format: ItemFormat = "auto"
    """Layout of the items file: auto (by extension, then by the first record's fields: MMLU-Pro,
    ChaosNLI and GPQA rows are recognised), jsonl, csv, mmlu-pro, gpqa, chaosnli..."""
    hf_split: str = "test"
    """Split for hf: datasets."""
    domains: tuple[str, ...] | None = None
    """Only items of these domains."""
    limit: int | None = Field(default=None, ge=1)
    """At most this many items per domain (in file order)."""
    conditions: tuple[str, ...] = DEFAULT_CONDITIONS
    """baseline, in-domain, off-domain, and built-in persona ids; the spec's personas are added."""
    mode: Literal["generate", "logprob", "auto"] = "generate"
    """Read the answer by generating and parsing a letter, or from the option letters' log-probs;
    'auto': logprob when every model's backend can score text, generate otherwise (a note says which)."""
    instruction: str = INSTRUCTION
    """What the user message says before the question."""
    constrained: bool = False
    """mode generate: constrain replies to one option letter with a grammar (llama.cpp backends)."""
    thresholds: tuple[float, ...] = (1.0, 0.9, 0.51)
    """Per-item accuracy thresholds tau: share of items with a(q, c) >= tau."""
    n_bootstrap: int = Field(default=10_000, ge=1000)
    """Bootstrap resamples for CIs."""
    mixed_model: bool = False
    """Also fit the mixed-effects logistic regression correct ~ condition + (1|item) (statsmodels'
    BinomialBayesMixedGLM, variational Bayes) and, as a check, a GEE logit with items as clusters."""
    predictions: str | tuple[str, ...] | None = None
    """Predictions made elsewhere, analysed instead of asking a model: JSONL paths or glob patterns,
    relative to the spec (layout: personae.studies._predictions). Conditions are the rows' own unless
    `conditions` is set; items no row names are left out."""
    sequential: SequentialOptions | None = None
    """Ask the items in batches of look_every and stop once every condition's always-valid CS of the
    difference from the baseline excludes 0 (stop: decision) or is narrower than ci_width (stop:
    ci_width); see personae.studies._sequential. None: the fixed design, every item at once."""


NO_EXPERT = frozenset({"other", "others", "unknown", "misc", "miscellaneous", "general"})
"""Domain labels that name no field (MMLU-Pro's "other"): no expert is in-domain for their items."""


@lru_cache(maxsize=1024)
def expert_for(domain: str) -> Persona | None:
    """The built-in expert (with facts) for a domain label, or None when there is none.

    The label is put in the items' vocabulary first (`normalize_domain`: "computer science" ->
    "computer-science", "health" -> "medicine"); then `expert-{domain}` is looked up, then any
    built-in expert whose `expertise_domain` is the domain. No expert is written on the fly: an
    invented "an expert in other" without facts is not the condition its name says.
    """
    slug = normalize_domain(domain)
    if slug in NO_EXPERT:
        return None
    library = builtin_personas()
    if f"expert-{slug}" in library:
        return library[f"expert-{slug}"]
    return next((p for p in library.values() if p.attributes.knowledge_level == "expert"
                 and p.attributes.expertise_domain == slug), None)


class AccuracyStudy(Study[AccuracyOptions]):
    name = "accuracy"
    display_columns = ("condition", "items", "accuracy", "ci_low", "ci_high", "diff", "diff_ci_low", "diff_ci_high",
                       "cs_low", "cs_high", "p_wilcoxon_holm",
                       "run_to_run_sd", "parse_failure_rate", "errors",
                       "dropped_condition", "dropped_baseline")
    Options = AccuracyOptions

    @classmethod
    def check(cls, resolved: ResolvedSpec) -> None:
        study = cls(resolved)
        check_sequential(study.options.sequential)
        if study.options.sequential is not None:
            if study.options.predictions is not None:
                raise ConfigError("options.sequential decides which items to ask, and options.predictions asks no "
                                  "model.", field="options.sequential", fix="remove one of the two.")
            if BASELINE not in study.options.conditions or len(study.condition_names) < 2:
                raise ConfigError("options.sequential stops when the conditions' differences from the baseline are "
                                  "decided, and there is no such comparison.", field="options.sequential",
                                  fix="list baseline and at least one other condition, or remove sequential.")
        if study.predictions is not None:  # read and checked here, before anything runs
            if study.options.mode == "logprob":
                raise ConfigError("mode 'logprob' reads answers from a model's scores, and options.predictions "
                                  "asks no model.", field="options.mode",
                                  fix="remove mode (or options.predictions to run a model).")
            _require_keys(study.items)
            return
        items = study.items
        domains = study.domains
        conds = study.condition_names
        if "off-domain" in conds and len(domains) < 2:
            raise ConfigError(f"'off-domain' needs items of at least two domains; the bank has {domains}.",
                              field="options.conditions", fix="drop 'off-domain' or add items of another domain.")
        _require_keys(items)
        library = builtin_personas()
        user = {p.id for p in resolved.personas}
        for c in study.options.conditions:
            if c not in SPECIAL and c not in library and c not in user:
                from .._loading import suggest  # noqa: PLC0415

                raise ConfigError(f"unknown condition '{c}'.{suggest(c, [*SPECIAL, *library])}",
                                  field="options.conditions",
                                  fix="use baseline, in-domain, off-domain or a built-in persona id.")
        if study.options.mode == "logprob":
            cls.require_scoring(resolved, "mode 'logprob' (use mode: generate otherwise)", "options.mode")

    @cached_property
    def items_by_id(self) -> dict[str, MCItem]:
        return {i.id: i for i in self.items}

    @cached_property
    def mode(self) -> str:
        """The mode the run uses ('auto' resolved from the backends' capabilities, asked of backends
        created without contacting any server)."""
        if self.predictions is not None:
            return "predictions"
        if self.options.mode != "auto":
            return self.options.mode
        return "logprob" if not self.cannot_score else "generate"

    @cached_property
    def cannot_score(self) -> tuple[str, ...]:
        """The models whose backend cannot score text (one with no server to ask counts as unable:
        generation works on any server)."""
        return self.models_without_scoring(self.resolved, unknown_can=False)

    # ---------------------------------------------------------------- items and conditions
    @cached_property
    def items(self) -> tuple[MCItem, ...]:
        """The items analysed: the bank, or with predictions the bank's items that some row names."""
        if self.predictions is None:
            return self.bank
        named = set(self.predictions.items)
        return tuple(i for i in self.bank if i.id in named)

    @cached_property
    def all_items(self) -> tuple[MCItem, ...]:
        """Every item of options.items."""
        o = self.options
        return resolve_items(o.items, self.resolved.base_dir, o.items_format, seed=self.spec.seed, hf_split=o.hf_split)

    @cached_property
    def bank(self) -> tuple[MCItem, ...]:
        """The items of options.items that options.domains and options.limit keep."""
        o = self.options
        items = self.all_items
        if o.domains:
            wanted = {normalize_domain(d) for d in o.domains}
            items = tuple(i for i in items if normalize_domain(i.domain) in wanted)
            if not items:
                raise ConfigError(f"no items in domains {list(o.domains)}.", field="options.domains",
                                  fix="check the domain labels of the item file.")
        if o.limit:
            seen: dict[str, int] = defaultdict(int)
            kept = []
            for i in items:
                if seen[i.domain] < o.limit:
                    kept.append(i)
                    seen[i.domain] += 1
            items = tuple(kept)
        return items

    @cached_property
    def domains(self) -> list[str]:
        """The item bank's domains, sorted."""
        return sorted({i.domain for i in self.items})

    @cached_property
    def predictions(self) -> Predictions | None:
        """options.predictions read and checked (None without it)."""
        o = self.options
        if o.predictions is None:
            return None
        return load_predictions((o.predictions,) if isinstance(o.predictions, str) else o.predictions,
                                self.resolved.base_dir, items=self.all_items, kept=self.bank, models=self.spec.model,
                                conditions=o.conditions if "conditions" in o.model_fields_set else None,
                                items_ref=o.items)

    @property
    def replicates(self) -> int:
        """Samples per (model, condition, item) in generate mode: the predictions' replicates, or the spec's."""
        return self.predictions.replicates if self.predictions is not None else self.spec.replicates

    @property
    def condition_names(self) -> list[str]:
        if self.predictions is not None:
            return list(self.predictions.conditions)
        names = list(self.options.conditions)
        return names + [p.id for p in self.personas if p.id not in names]

    def expert(self, domain: str) -> Persona | None:
        """The in-domain expert of a domain: the built-in one (`expert_for`), else a persona of the
        spec whose `attributes.expertise_domain` is the domain, else None (no in-domain condition)."""
        found = expert_for(domain)
        if found is None and normalize_domain(domain) not in NO_EXPERT:
            found = next((p for p in self.personas if p.attributes.expertise_domain is not None
                          and normalize_domain(p.attributes.expertise_domain) == normalize_domain(domain)), None)
        return found

    def persona_for(self, condition: str, item: MCItem) -> Persona | None:
        """The persona of a condition for an item; None for the baseline, and for in-domain and
        off-domain when no expert fits (those cells are not asked: see `without_expert`)."""
        if condition == BASELINE:
            return None
        if condition == "in-domain":
            return self.expert(item.domain)
        if condition == "off-domain":
            # the next domain of the bank (in sorted order, wrapping round) that has an expert
            domains = self.domains
            start = domains.index(item.domain)
            others = (domains[(start + k) % len(domains)] for k in range(1, len(domains)))
            return next((e for e in map(self.expert, others) if e is not None), None)
        for p in self.personas:
            if p.id == condition:
                return p
        return builtin_personas()[condition]

    def without_expert(self) -> dict[str, list[str]]:
        """in-domain / off-domain -> ids of the items that condition has no expert for (not asked)."""
        return {c: [i.id for i in self.items if self.persona_for(c, i) is None]
                for c in ("in-domain", "off-domain") if c in self.condition_names}

    def describe(self) -> list[str]:
        """Which expert plays in-domain for each domain, and the domains that have none (or what the
        predictions hold); the sequential design, if any."""
        if self.predictions is not None:
            return [self.predictions.describe(), *self.predictions.notes]
        return self._describe_experts() + ([self.sequencer.describe()] if self.sequencer is not None else [])

    def _describe_experts(self) -> list[str]:
        if "in-domain" not in self.condition_names:
            return []
        counts: dict[str, int] = defaultdict(int)
        for i in self.items:
            counts[i.domain] += 1
        lines = []
        for d in self.domains:
            e, n = self.expert(d), counts[d]
            items = f"{n} item{'s' if n != 1 else ''}"
            lines.append(f"in-domain {d}: {e.id} ({items})" if e else
                         f"in-domain {d}: no expert, so its {items} {'have' if n != 1 else 'has'} no in-domain condition")
        return lines

    # ---------------------------------------------------------------- plan
    def question_messages(self, item: MCItem) -> list[Message]:
        return [Message(role="user", content=f"{self.options.instruction}\n\n{item.render()}\nAnswer:")]

    def plan(self, done: Sequence[Result]) -> list[Request]:
        if self.predictions is not None:
            return []
        if self.sequencer is None:
            return [] if done else self.requests_for(self.items)
        return next_batch(self, done)

    def unit_requests(self, item_ids: Sequence[str]) -> list[Request]:
        """Every request of the items with these ids (a sequential design's batch)."""
        return self.requests_for([self.items_by_id[i] for i in item_ids])

    def requests_for(self, items: Sequence[MCItem]) -> list[Request]:
        """Every request of these items: each model, condition and replicate (or option letter)."""
        logprob = self.mode == "logprob"
        plan = cells(self.spec.model, [Condition(c) for c in self.condition_names], items,
                     1 if logprob else self.spec.replicates, seed=self.spec.seed, persona_for=self.persona_for)
        reqs: list[Request] = []
        for cell in plan:
            item = cell.item
            if cell.persona is None and cell.condition in ("in-domain", "off-domain"):
                continue  # no expert for the item's domain: no condition of that name to ask
            if logprob:  # deterministic: one sample, one score per option letter
                base = self.cell_request(cell, self.question_messages(item), sampling=Sampling(temperature=0.0))
                reqs.extend(base.model_copy(update={"kind": "score", "continuation": letter,
                                                    "tags": cell.tags.model_copy(update={"extra": {"option": letter}})})
                            for letter in item.letters)
                continue
            extra: dict[str, Any] = {"grammar": letter_grammar(item.letters)} if self.options.constrained else {}
            reqs.append(self.cell_request(cell, self.question_messages(item), **extra))
        return reqs

    # ---------------------------------------------------------------- sequential design
    @cached_property
    def comparisons(self) -> list[tuple[str, str, str]]:
        """(label, model, condition) of every condition compared with the baseline."""
        return [(f"{m}: {c}", m, c) for m in self.spec.model for c in self.condition_names if c != BASELINE]

    @cached_property
    def sequencer(self) -> Sequencer | None:
        """The batches and stopping rule of options.sequential (None: the fixed design)."""
        o = self.options.sequential
        if o is None:
            return None
        return Sequencer(o, [i.id for i in self.items], self.spec.seed, bounds=(-1.0, 1.0), nulls=0.0,
                         comparisons=[label for label, _, _ in self.comparisons])

    def unit_values(self, results: Sequence[Result], item_ids: Sequence[str]) -> UnitValues:
        """Per comparison, a(q, condition) - a(q, baseline) of each item both arms answered."""
        answers = self.answers(results)
        out: dict[str, dict[str, float]] = {}
        for label, model, cond in self.comparisons:
            base = per_item_accuracy(answers, model, BASELINE, item_ids)
            acc = per_item_accuracy(answers, model, cond, item_ids)
            out[label] = {i: float(a - b) for i, a, b in zip(item_ids, acc, base) if not (np.isnan(a) or np.isnan(b))}
        return out

    def released_items(self, results: Sequence[Result]) -> tuple[MCItem, ...]:
        """The items asked: every item in the fixed design, the released ones in a sequential one."""
        if self.sequencer is None:
            return self.items
        return tuple(self.items_by_id[i] for i in self.sequencer.released_ids(results))

    # ---------------------------------------------------------------- analyze
    def answers(self, results: Sequence[Result]) -> list[dict[str, Any]]:
        """One record per sample: model, condition, item, replicate, answer letter or None, correct, error."""
        by_id = self.items_by_id
        if self.predictions is not None:  # each row is the answer record a reply with its text would give
            return [sample_answer(p.model, p.condition, by_id[p.item], p.replicate, p.text, ok=True)
                    for p in self.predictions.rows]
        out: list[dict[str, Any]] = []
        if self.mode == "logprob":
            groups: dict[tuple[str, str, str], list[Result]] = defaultdict(list)
            for r in results:
                groups[(r.request.model, r.request.tags.condition or "", r.request.tags.item or "")].append(r)
            for (model, cond, iid), rs in groups.items():
                item = by_id[iid]
                if any(not r.ok for r in rs):
                    out.append(dict(model=model, condition=cond, item=iid, replicate=0, answer=None, correct=None,
                                    error=True))
                    continue
                best = max(rs, key=lambda r: r.score.logprob if r.score else -np.inf)
                letter = best.request.tags.extra["option"]
                out.append(dict(model=model, condition=cond, item=iid, replicate=0, answer=letter,
                                correct=letter == item.answer_letter, error=False))
            return out
        return [sample_answer(r.request.model, r.request.tags.condition or "", by_id[r.request.tags.item or ""],
                              r.request.replicate, r.text, ok=r.ok) for r in results]

    def analyze(self, results: Sequence[Result]) -> Summary:
        summary = analyze_accuracy(self, results, self.released_items(results))
        if self.sequencer is not None:
            add_sequential(self, results, summary)
        if self.predictions is not None:
            return self.predictions.annotate(summary, personas_unused=bool(self.personas))
        if self.options.mode == "auto":
            summary.notes.append(
                "mode auto: answers read from the option letters' log-probabilities (logprob)." if self.mode == "logprob"
                else f"mode auto: answers generated and parsed (generate), as {', '.join(self.cannot_score)} cannot "
                     "score text; log-probabilities need local/... or a vLLM server (backend.scoring: prompt_logprobs).")
        for cond, ids in self.without_expert().items():
            if ids:
                missing = set(ids)
                domains = sorted({i.domain for i in self.items if i.id in missing})
                summary.notes.append(f"{len(ids)} of {len(self.items)} items had no {cond} condition (not asked, "
                                     f"left out of its accuracy): no expert persona fits {', '.join(domains)}.")
        return summary

    def row_features(self, result: Result) -> dict[str, Any]:
        """The parsed answer letter and whether it is correct (generation mode)."""
        item = self.items_by_id.get(result.request.tags.item or "")
        if item is None or result.request.kind != "generate":
            return {}
        letter = parse_choice(result.text, item.letters, item.choices)
        return {"answer": letter, "correct": None if letter is None else letter == item.answer_letter}

    def figures(self, results: Sequence[Result], summary: Summary) -> list[tuple[str, Any]]:
        from ..report.plots import forest_plot  # noqa: PLC0415

        rows = [r for r in summary.table if r["condition"] != BASELINE and r.get("diff") is not None]
        if not rows:
            return []
        return [("Accuracy difference from the no-persona baseline (points, 95% paired bootstrap CI)",
                 forest_plot([f"{r['condition']} ({r['model'].split('/')[-1]})" for r in rows],
                             [100 * r["diff"] for r in rows], [100 * r["diff_ci_low"] for r in rows],
                             [100 * r["diff_ci_high"] for r in rows], xlabel="accuracy change (points)"))]


def _require_keys(items: Sequence[MCItem]) -> None:
    unkeyed = [i.id for i in items if i.answer is None]
    if unkeyed:
        raise ConfigError(f"{len(unkeyed)} items have no answer key (e.g. '{unkeyed[0]}').",
                          field="options.items", fix="give every item an 'answer'.")


def per_item_accuracy(answers: Sequence[dict[str, Any]], model: str, cond: str, item_ids: Sequence[str]
                      ) -> np.ndarray:
    """a(q, c) for each item in order: share correct among parsed samples (NaN if none parsed)."""
    correct: dict[str, list[bool]] = defaultdict(list)
    for a in answers:
        if a["model"] == model and a["condition"] == cond and a["correct"] is not None:
            correct[a["item"]].append(bool(a["correct"]))
    return np.array([np.mean(correct[i]) if correct[i] else np.nan for i in item_ids])


def run_to_run_sd(answers: Sequence[dict[str, Any]], model: str, cond: str, replicates: int) -> float | None:
    """SD across replicate runs of the whole-bank accuracy of one condition: the noise floor."""
    if replicates < 2:
        return None
    accs = []
    for r in range(replicates):
        xs = [a["correct"] for a in answers if a["model"] == model and a["condition"] == cond
              and a["replicate"] == r and a["correct"] is not None]
        if xs:
            accs.append(float(np.mean(xs)))
    return float(np.std(accs, ddof=1)) if len(accs) > 1 else None


def _cond_row(study: AccuracyStudy, answers: list[dict[str, Any]], model: str, cond: str, acc: np.ndarray,
              seed: int) -> dict[str, Any]:
    mine = [a for a in answers if a["model"] == model and a["condition"] == cond]
    ok = ~np.isnan(acc)
    ci = bootstrap_ci(acc[ok], seed=seed, n_resamples=study.options.n_bootstrap) if ok.sum() >= 2 else None
    samples = [a for a in mine if not a["error"]]
    row: dict[str, Any] = {
        "model": model, "condition": cond, "items": int(ok.sum()),
        "accuracy": float(np.mean(acc[ok])) if ok.any() else None,
        "ci_low": ci.ci_low if ci else None, "ci_high": ci.ci_high if ci else None,
        "run_to_run_sd": run_to_run_sd(answers, model, cond, study.replicates),
        "parse_failure_rate": (sum(a["answer"] is None for a in samples) / len(samples)) if samples else None,
        "accuracy_parse_wrong": accuracy_parse_wrong(mine),
        "errors": sum(a["error"] for a in mine),
    }
    for tau in study.options.thresholds:
        row[f"acc_tau_{tau:g}"] = float(np.mean(acc[ok] >= tau - 1e-12)) if ok.any() else None
    return row


def _compare(study: AccuracyStudy, cond: str, acc: np.ndarray, base: np.ndarray, item_ids: Sequence[str],
             seed: int) -> tuple[Pairing[str], dict[str, Any]]:
    """The condition against the baseline over the items answered in both (`pair_units`)."""
    answered = {arm: {i for i, v in zip(item_ids, values) if not np.isnan(v)} for arm, values in
                ((cond, acc), (BASELINE, base))}
    pairing = pair_units(item_ids, (cond, BASELINE), answered)
    both = np.array([i in set(pairing.complete) for i in item_ids], bool)
    a, b = acc[both], base[both]
    out: dict[str, Any] = {"paired_items": len(pairing.complete), "dropped_condition": pairing.dropped[cond],
                           "dropped_baseline": pairing.dropped[BASELINE], "share_dropped": pairing.share_dropped,
                           "status": pairing.status}
    if both.sum() < 2 or pairing.status == NOT_ENOUGH:
        return pairing, out
    ci = paired_difference_ci(a, b, seed=seed, n_resamples=study.options.n_bootstrap)
    wil = wilcoxon_signed_rank(a, b)
    mc = mcnemar(a > 0.5, b > 0.5)
    return pairing, {**out, "diff": float(np.mean(a - b)), "diff_ci_low": ci.ci_low, "diff_ci_high": ci.ci_high,
                     "diff_ci_method": ci.method, "p_wilcoxon": wil.p_value, "p_mcnemar": mc.p_value,
                     "wilcoxon": wil.as_dict(), "mcnemar": mc.as_dict()}


def analyze_accuracy(study: AccuracyStudy, results: Sequence[Result], items: Sequence[MCItem] | None = None) -> Summary:
    """The summary over `items` (default: every item of the study; a sequential design's released ones)."""
    items = study.items if items is None else items
    answers = study.answers(results)
    item_ids = [i.id for i in items]
    table: list[dict[str, Any]] = []
    tests: list[dict[str, Any]] = []
    pairings: dict[str, dict[str, Any]] = {}
    for m_i, model in enumerate(study.spec.model):
        base = per_item_accuracy(answers, model, BASELINE, item_ids)
        for c_i, cond in enumerate(study.condition_names):
            acc = base if cond == BASELINE else per_item_accuracy(answers, model, cond, item_ids)
            seed = study.spec.seed + 1000 * m_i + c_i
            row = _cond_row(study, answers, model, cond, acc, seed)
            if cond != BASELINE and BASELINE in study.condition_names:
                pairing, cmp = _compare(study, cond, acc, base, item_ids, seed)
                pairings.setdefault(model, {})[cond] = pairing.as_dict()
                if "wilcoxon" in cmp:
                        tests.append({"model": model, "condition": cond, **{k: cmp.pop(k) for k in ("wilcoxon", "mcnemar")}})
                row.update(cmp)
            table.append(row)
    _holm(table)
    stats: dict[str, Any] = {"tests": tests, "chance": float(np.mean([1 / len(i.choices) for i in items])) if items else 0.0,
                             "items": len(item_ids), "samples_per_cell": 1 if study.mode == "logprob"
                             else study.replicates, "mode": study.mode, "pairing": pairings}
    keys = {i.id: str(i.answer_letter) for i in items}
    stats["answer_letters"] = {m: letter_distribution(answers, keys, m) for m in study.spec.model}
    if study.options.mixed_model:
        stats["mixed_model"] = _mixed(answers, study.spec.seed)
    counts = count_results(results)
    counts["parse_failures"] = sum(a["answer"] is None and not a["error"] for a in answers)
    notes = []
    if counts["errors"]:
        notes.append(f"{counts['errors']} failed requests are counted in 'errors' and left out of accuracy.")
    if counts["parse_failures"]:
        notes.append(f"{counts['parse_failures']} answers could not be parsed; they are left out of accuracy "
                     "(not scored wrong) and counted in parse_failure_rate; accuracy_parse_wrong scores them wrong, "
                     "as the MMLU-Pro authors do, for comparison with published numbers.")
    notes += [bias_note(m, d) for m, d in stats["answer_letters"].items() if d and d["position_bias"]]
    notes += point_ci_notes(table)
    if pairings:
        notes.append("An item enters a condition's comparison with the baseline only if both arms gave it a usable "
                     "answer; dropped_condition and dropped_baseline count the items each arm lost.")
    return Summary(study="accuracy", verdict=_verdict(table, stats["chance"], pairings), table=table, stats=stats,
                   counts=counts, notes=notes)


def add_sequential(study: AccuracyStudy, results: Sequence[Result], summary: Summary) -> None:
    """The sequential design's looks, calls and always-valid CSs into the summary; the verdict re-read."""
    block = sequential_report(study, results)
    summary.stats["sequential"] = block
    labels = {(m, c): label for label, m, c in study.comparisons}
    for row in summary.table:
        cs = block["final"].get(labels.get((row["model"], row["condition"]), ""))
        if cs is not None and row.get("diff") is not None:  # a comparison with no estimate gets no CS either
            row.update(cs_low=cs["cs_low"], cs_high=cs["cs_high"], cs_items=cs["n"])
    summary.notes.append(stop_sentence(block) + " cs_low/cs_high: the always-valid CS of the difference from the "
                         f"baseline ({block['method']}; {1 - block['alpha']:.0%} for all comparisons at once); "
                         "diff_ci_low/diff_ci_high and the p-values are the fixed-sample ones, shown for comparison: "
                         "they are not valid after looking at the data, so only the CS decides.")
    summary.verdict = _verdict(summary.table, summary.stats["chance"], summary.stats.get("pairing"), block)


def _holm(table: list[dict[str, Any]]) -> None:
    for key in ("p_wilcoxon", "p_mcnemar"):
        rows = [r for r in table if r.get(key) is not None and r[key] == r[key]]
        if rows:
            for r, adj in zip(rows, holm([r[key] for r in rows])):
                r[key + "_holm"] = float(adj)


def _mixed(answers: Sequence[dict[str, Any]], seed: int) -> dict[str, Any]:
    """correct ~ condition + (1|item): the mixed logit, and a GEE fit beside it.

    statsmodels has no maximum-likelihood GLMM; its variational Bayes fit gives intervals that
    are too narrow (about 30% smaller SEs than the conditional logit in our tests), so the GEE
    (population-averaged, robust SEs) is reported next to it: trust a condition effect when both agree.
    """
    from ..stats import item_logit  # noqa: PLC0415

    rows = [a for a in answers if a["correct"] is not None]
    args = ([int(a["correct"]) for a in rows], [a["condition"] for a in rows], [a["item"] for a in rows])
    out: dict[str, Any] = {"formula": "correct ~ condition + (1|item)", "baseline": BASELINE}
    for name, method, kw in (("mixed", "bayes", {"seed": seed}), ("gee", "gee", {})):
        try:
            out[name] = item_logit(*args, baseline=BASELINE, method=method, **kw).as_dict()
        except Exception as exc:  # statsmodels fails on degenerate data (all correct...); say so
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def _points(r: dict[str, Any]) -> str:
    return f"{r['condition']} {100 * r['diff']:+.1f} points [{100 * r['diff_ci_low']:+.1f}, {100 * r['diff_ci_high']:+.1f}]"


def _cs_points(r: dict[str, Any]) -> str:
    return (f"{r['condition']} {100 * r['diff']:+.1f} points (always-valid CS [{100 * r['cs_low']:+.1f}, "
            f"{100 * r['cs_high']:+.1f}]; fixed-sample CI [{100 * r['diff_ci_low']:+.1f}, {100 * r['diff_ci_high']:+.1f}])")


def _conds(rows: list[dict[str, Any]]) -> str:
    return ", ".join(r["condition"] for r in rows)


def _significant(r: dict[str, Any]) -> bool:
    p = r.get("p_wilcoxon_holm")
    return p is not None and not math.isnan(p) and p < 0.05


def _away_from_zero(r: dict[str, Any]) -> bool:
    return (r.get("diff_ci_low") is not None and r["diff_ci_low"] > 0) or \
        (r.get("diff_ci_high") is not None and r["diff_ci_high"] < 0)


def _cs_away(r: dict[str, Any]) -> bool:
    """The always-valid CS of the difference excludes 0, on the side of the difference."""
    lo, hi, d = r.get("cs_low"), r.get("cs_high"), r.get("diff")
    return lo is not None and hi is not None and d is not None and ((lo > 0 and d > 0) or (hi < 0 and d < 0))


def _verdict(table: list[dict[str, Any]], chance: float, pairing: dict[str, dict[str, Any]] | None = None,
             sequential: dict[str, Any] | None = None) -> str:
    """The verdict, from the table's rows, the pairing counts and the sequential block only.

    Leads with any comparison that lost more than 5% of its items. A condition 'changed accuracy'
    only when its Holm-adjusted Wilcoxon p < 0.05 AND the 95% paired bootstrap CI of the
    difference is away from 0 AND the difference is larger than the run-to-run SD; the chance
    check names the number it compares (the lower end of the baseline's CI). With a sequential
    design (`sequential`, stats.sequential) the fixed-sample tests are not valid after looking, so
    a condition changed accuracy only when its always-valid CS (cs_low, cs_high) excludes 0 on the
    side of the difference AND the fixed-sample CI does too AND the difference exceeds the noise floor.
    """
    lead = drop_warnings((f"{model} {cond} vs baseline", p) for model, conds in (pairing or {}).items()
                         for cond, p in conds.items())
    parts = [lead.strip()] if lead else []
    if sequential is not None:
        parts.append(stop_sentence(sequential))
        return " ".join(parts + _said_per_model(table, chance, sequential=True))
    return " ".join(parts + _said_per_model(table, chance, sequential=False))


def _said_per_model(table: list[dict[str, Any]], chance: float, *, sequential: bool) -> list[str]:
    parts: list[str] = []
    for model in dict.fromkeys(r["model"] for r in table):
        rows = [r for r in table if r["model"] == model]
        base = next((r for r in rows if r["condition"] == BASELINE), None)
        others = [r for r in rows if r["condition"] != BASELINE]
        said: list[str] = []
        rates = [r["parse_failure_rate"] for r in rows if r.get("parse_failure_rate") is not None]
        if not any(r.get("accuracy") is not None for r in rows):
            why = ("no answer could be parsed (the model never gave an option letter), so there is nothing to compare; "
                   "use mode: logprob, constrained: true, or a stronger model." if rates and min(rates) >= 1.0 else
                   "no request gave a usable answer (see the errors column), so there is nothing to report.")
            parts.append(f"{model}: {why}")
            continue
        if rates and max(rates) > 0.5:
            said.append(f"Up to {max(rates):.0%} of answers could not be parsed in a condition (counted, not scored "
                        "wrong); read the accuracies with that in mind.")
        elif rates and max(rates) > 0:
            said.append(f"Up to {max(rates):.0%} of answers could not be parsed in a condition (left out; "
                        "accuracy_parse_wrong scores them wrong).")
        if base and base.get("accuracy") is not None and base.get("ci_low") is not None and base["ci_low"] <= chance:
            said.append(f"Baseline accuracy is {base['accuracy']:.2f}, but the lower end of its 95% CI "
                        f"({base['ci_low']:.2f}) is at or below chance ({chance:.2f}), so effects on correctness "
                        "cannot show here.")
        if not others:
            acc = f" (accuracy {base['accuracy']:.2f})" if base and base.get("accuracy") is not None else ""
            said.append(f"Only the no-persona baseline was run{acc}: there is nothing to compare it with.")
        elif base is None:
            said.append("There is no baseline condition, so no condition is compared with one.")
        else:
            compared = [r for r in others if r.get("diff") is not None]
            scant = [r for r in others if r.get("status") == NOT_ENOUGH]
            if sequential:
                sig = [r for r in compared if _cs_away(r) and _away_from_zero(r)]
                unsure, ci_only = [], []
                fixed_only = [r for r in compared if not _cs_away(r) and (_away_from_zero(r) or _significant(r))]
                cs_only = [r for r in compared if _cs_away(r) and not _away_from_zero(r)]
            else:
                sig = [r for r in compared if _significant(r) and _away_from_zero(r)]
                unsure = [r for r in compared if _significant(r) and not _away_from_zero(r)]
                ci_only = [r for r in compared if not _significant(r) and _away_from_zero(r)]
                fixed_only, cs_only = [], []
            noise = [r for r in sig if r.get("run_to_run_sd") and abs(r["diff"]) <= r["run_to_run_sd"]]
            changed = [r for r in sig if r not in noise]
            if not compared:
                few = [r for r in others if r not in scant]
                said.append("No condition could be compared with the baseline" + (
                    f" ({_conds(few)}: fewer than 2 items answered in both arms)" if few else "") + ".")
            elif changed and sequential:
                said.append(f"Accuracy changed for {len(changed)} of {len(compared)} compared conditions, the "
                            "always-valid CS of the difference away from 0: " + ", ".join(_cs_points(r) for r in changed)
                            + "; the others did not.")
            elif sequential:
                said.append(f"None of the {len(compared)} compared conditions changed accuracy (the always-valid CS "
                            "of every difference includes 0, or the difference is within the noise floor).")
            elif changed:
                said.append(f"Accuracy changed for {len(changed)} of {len(compared)} compared conditions: "
                            + ", ".join(_points(r) for r in changed) + " (Holm-adjusted Wilcoxon p < 0.05, 95% paired "
                            "bootstrap CI of the difference away from 0); the others did not.")
            else:
                said.append(f"None of the {len(compared)} compared conditions changed accuracy (Holm-adjusted "
                            "Wilcoxon, alpha 0.05, with the 95% CI of the difference away from 0).")
            if noise:
                said.append(f"{_conds(noise)} differ{'s' if len(noise) == 1 else ''} significantly but by no more than "
                            "the run-to-run SD: not distinguishable from noise.")
            if unsure:
                said.append(f"For {_conds(unsure)} the Wilcoxon test is significant but the 95% CI of the difference "
                            "includes 0: not counted as a change.")
            if ci_only:
                said.append(f"For {_conds(ci_only)} the 95% CI of the difference excludes 0 but the Holm-adjusted "
                            "Wilcoxon test does not pass (several conditions are compared): not counted as a change.")
            if fixed_only:
                said.append(f"For {_conds(fixed_only)} the fixed-sample test or CI points to a change but the "
                            "always-valid CS includes 0 (fixed-sample figures are not valid after looking at the "
                            "data): not counted as a change.")
            if cs_only:
                said.append(f"For {_conds(cs_only)} the always-valid CS excludes 0 but the fixed-sample CI does not: "
                            "not counted as a change.")
            if scant:
                said.append(f"Not enough data (over half the items dropped) for {_conds(scant)}.")
        parts.append(f"{model}: " + " ".join(said))
    return parts


STUDY = AccuracyStudy
