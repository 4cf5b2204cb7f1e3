"""variance: are persona differences larger than run-to-run noise?

Items x personas x R runs at temperature > 0 (seeds differ per run). Per item: D_within (how
much one persona's runs disagree), D_between (how far apart personas' answer distributions
are), their ratio and a permutation p-value that shuffles persona labels (the ratio under the
shuffle is reported too: that is what 'no persona effect' looks like). Pooled: the ratio with
a bootstrap CI over items, the share of answer variance between personas (eta^2, ICC(1)), and
for numeric answers a mixed model answer ~ 1 + (1|persona) + (1|item). With human label
distributions (ChaosNLI layout): JSD of the persona panel to humans vs a no-persona panel of
the same size.

Which items enter (issue 7, `_pairing.pair_units`, one rule per statistic):
- the dispersion test (persona differences vs run-to-run noise): an item enters only if every
  persona of the panel answered at least 2 of its runs (D_within needs two runs of a persona, and
  D_between is over the whole panel, so that items compare like with like); a persona whose runs
  failed drops the item, counted against that persona.
- the JSD-to-humans comparison (persona panel vs no-persona panel): an item enters only if every
  request of it succeeded in both panels. The plug-in JSD of a sample to the humans grows as the
  sample shrinks, so a panel that lost answers would look further from the humans for that
  reason alone; the two panels are the same size by design and stay so.
Failed requests decide, not parse failures (those are answers, counted per item). Past 5% of a
comparison's items dropped the verdict leads with it; past 50% that comparison gives no estimate.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from functools import cached_property
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy import stats as sps

from ..backends.base import Message, Request
from ..errors import ConfigError
from ..items import ItemFormat, MCItem, resolve_items
from ..parsing import letter_grammar, parse_choice
from ..persona import Persona
from ..runner import Result
from ..spec_types import ResolvedSpec
from ..stats import paired_difference_ci, bootstrap_ci, holm, jensen_shannon, wilcoxon_signed_rank
from ..stats.dispersion import dispersion_test, variance_shares
from ._cells import Condition, cells
from ._pairing import NOT_ENOUGH, Pairing, drop_warnings, pair_units
from ._sequential import SequentialOptions, Sequencer, UnitValues, check_sequential, next_batch, sequential_report, \
    stop_sentence
from .base import Study, Summary, count_results

BASELINE = "baseline"
PANEL = "persona panel"
NO_PERSONA = "no-persona panel"
DISPERSION = "dispersion"
"""The key of the dispersion test's pairing in `stats['pairing'][model]` (arms: the personas)."""
JSD = "jsd_to_humans"
"""The key of the JSD comparison's pairing in `stats['pairing'][model]` (arms: PANEL, NO_PERSONA)."""
DEFAULT_PERSONAS = ("expert-physics", "expert-history", "layperson", "young-child", "democrat", "republican",
                    "religious", "atheist")
Codes = dict[tuple[str, str], list[tuple[str, int | None]]]
"""(model, item) -> [(condition, answer code or None)] over the successful requests."""
INSTRUCTION = "Answer the following question. Reply with the letter of one option only."
SIGNIFICANT = 0.05
"""An item 'shows a persona effect' when its permutation p-value is below this; under no persona
effect at most this share of items does (the permutation p-value is valid), the null of the
sequential design's CS of the share."""


class VarianceOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    items: str = "builtin:opinions"
    """'builtin:opinions', 'builtin:general', a file path (relative to the spec), or 'hf:DATASET'."""
    items_format: ItemFormat = "auto"
    """Layout of the items file; auto recognises ChaosNLI's files (SNLI/MNLI: 3 options; alphaNLI:
    2 options, which hypothesis explains the observations), each with its human label counts."""
    limit: int | None = Field(default=None, ge=1)
    """Use only the first N items."""
    answer_type: Literal["auto", "labels", "numeric"] = "auto"
    """numeric: the option's position (a Likert scale); labels: categories. auto: numeric for
    items without a key (opinion scales), labels otherwise."""
    baseline: bool = True
    """Also run a no-persona panel of the same size (needed for the JSD-to-humans comparison)."""
    instruction: str = INSTRUCTION
    """What the user message says before the item."""
    constrained: bool = False
    """Constrain replies to one option letter with a grammar (llama.cpp backends): no parse failures."""
    n_permutations: int = Field(default=2000, ge=100)
    """Label shuffles per item."""
    n_bootstrap: int = Field(default=5000, ge=1000)
    """Bootstrap resamples over items."""
    sequential: SequentialOptions | None = None
    """Ask the items in batches of look_every and stop once the always-valid CS of the share of items
    with a significant persona effect (permutation p < 0.05) excludes 0.05, the share expected with no
    persona effect (stop: decision), or is narrower than ci_width (stop: ci_width); see
    personae.studies._sequential. None: the fixed design, every item at once."""


class VarianceStudy(Study[VarianceOptions]):
    name = "variance"
    display_columns = ("item", "answers", "d_within", "d_between", "ratio", "null_ratio", "p_value", "p_holm", "share_persona",
                       "jsd_panel_human", "jsd_baseline_human", "parse_failures", "failed_panel",
                       "failed_baseline")
    Options = VarianceOptions

    @classmethod
    def check(cls, resolved: ResolvedSpec) -> None:
        if resolved.spec.replicates < 2:
            raise ConfigError("the variance study needs replicates >= 2 (runs per persona and item).",
                              field="replicates", fix="set e.g. 'replicates: 5'.")
        if resolved.spec.sampling.temperature <= 0:
            raise ConfigError("at temperature 0 every run gives the same answer: there is no noise to compare with.",
                              field="sampling.temperature", fix="set e.g. 'sampling: {temperature: 1.0}'.")
        study = cls(resolved)
        check_sequential(study.options.sequential)
        if len(study.panel) < 2:
            raise ConfigError("the variance study needs at least two personas.", field="personas",
                              fix="list two or more personas, or none for the default panel of eight.")
        _ = study.items

    @cached_property
    def panel(self) -> tuple[Persona, ...]:
        return self.persona_panel(DEFAULT_PERSONAS)

    @cached_property
    def items(self) -> tuple[MCItem, ...]:
        o = self.options
        items = resolve_items(o.items, self.resolved.base_dir, o.items_format, seed=self.spec.seed)
        return items[: o.limit] if o.limit else items

    @cached_property
    def kind(self) -> Literal["labels", "numeric"]:
        if self.options.answer_type != "auto":
            return self.options.answer_type
        return "numeric" if all(i.answer is None for i in self.items) else "labels"

    def plan(self, done: Sequence[Result]) -> list[Request]:
        if self.sequencer is None:
            return [] if done else self.requests_for(self.items)
        return next_batch(self, done)

    def unit_requests(self, item_ids: Sequence[str]) -> list[Request]:
        """Every request of the items with these ids (a sequential design's batch)."""
        return self.requests_for([self.items_by_id[i] for i in item_ids])

    def requests_for(self, items: Sequence[MCItem]) -> list[Request]:
        """Every request of these items: each model, persona (and the no-persona panel) and run."""
        runs = self.spec.replicates
        conditions = [Condition(p.id, p) for p in self.panel]
        if self.options.baseline:  # a no-persona panel of the same size
            conditions.append(Condition(BASELINE, replicates=runs * len(self.panel)))
        reqs = []
        for cell in cells(self.spec.model, conditions, items, runs, seed=self.spec.seed, outer="item"):
            item = cell.item
            msg = [Message(role="user", content=f"{self.options.instruction}\n\n{item.render()}\nAnswer:")]
            extra: dict[str, Any] = {"grammar": letter_grammar(item.letters)} if self.options.constrained else {}
            reqs.append(self.cell_request(cell, msg, **extra))
        return reqs

    # ---------------------------------------------------------------- sequential design
    @cached_property
    def item_index(self) -> dict[str, int]:
        """Item id -> its position in the bank (seeds the item's permutation test, whichever items are asked)."""
        return {i.id: n for n, i in enumerate(self.items)}

    @cached_property
    def sequencer(self) -> Sequencer | None:
        """The batches and stopping rule of options.sequential (None: the fixed design)."""
        o = self.options.sequential
        if o is None:
            return None
        return Sequencer(o, [i.id for i in self.items], self.spec.seed, bounds=(0.0, 1.0), nulls=SIGNIFICANT,
                         comparisons=[f"{m}: {DISPERSION}" for m in self.spec.model])

    def unit_values(self, results: Sequence[Result], item_ids: Sequence[str]) -> UnitValues:
        """Per model, 1 for each item of `item_ids` that entered the dispersion test with p < 0.05, else 0."""
        codes = _codes(self, results)
        items = [self.items_by_id[i] for i in item_ids]
        out: dict[str, dict[str, float]] = {}
        for m_i, model in enumerate(self.spec.model):
            pairing = _pairings(self, codes, model, items)[DISPERSION]
            entered = set(pairing.complete) if pairing.status != NOT_ENOUGH else set()
            flags: dict[str, float] = {}
            for item in items:
                if item.id in entered:
                    row = _item_row(self, model, item, codes.get((model, item.id), []), self.item_seed(m_i, item),
                                    dispersion=True, jsd=False)
                    if row.get("p_value") is not None:
                        flags[item.id] = float(row["p_value"] < SIGNIFICANT)
            out[f"{model}: {DISPERSION}"] = flags
        return out

    def item_seed(self, model_index: int, item: MCItem) -> int:
        return self.spec.seed + 7919 * model_index + self.item_index[item.id]

    def released_items(self, results: Sequence[Result]) -> tuple[MCItem, ...]:
        """The items asked: every item in the fixed design, the released ones in a sequential one."""
        if self.sequencer is None:
            return self.items
        return tuple(self.items_by_id[i] for i in self.sequencer.released_ids(results))

    def describe(self) -> list[str]:
        """The sequential design, if any."""
        return [self.sequencer.describe()] if self.sequencer is not None else []

    def analyze(self, results: Sequence[Result]) -> Summary:
        summary = analyze_variance(self, results, self.released_items(results))
        if self.sequencer is not None:
            block = sequential_report(self, results)
            summary.stats["sequential"] = block
            summary.notes.append(stop_sentence(block) + " The always-valid CS is of the share of items with a "
                                 f"significant persona effect (permutation p < {SIGNIFICANT}; {block['method']}); "
                                 "the binomial test next to it is the fixed-sample one, not valid after looking.")
            summary.verdict = _verdict(summary.stats["pooled"], summary.stats["pairing"], block)
        return summary

    @cached_property
    def items_by_id(self) -> dict[str, MCItem]:
        return {i.id: i for i in self.items}

    def row_features(self, result: Result) -> dict[str, Any]:
        """The parsed answer letter and its code (the option's position, 0-based)."""
        item = self.items_by_id.get(result.request.tags.item or "")
        if item is None:
            return {}
        letter = parse_choice(result.text, item.letters, item.choices)
        return {"answer": letter, "answer_code": item.letters.index(letter) if letter else None}

    def figures(self, results: Sequence[Result], summary: Summary) -> list[tuple[str, Any]]:
        from ..report.plots import scatter_with_errors  # noqa: PLC0415

        rows = [r for r in summary.table if r.get("d_within") is not None and r.get("d_between") is not None]
        if not rows:
            return []
        return [("Per item: distance between personas vs between runs of one persona",
                 scatter_with_errors([r["d_within"] for r in rows], [r["d_between"] for r in rows],
                                     labels=[r["item"] for r in rows], xlabel="D_within (run-to-run)",
                                     ylabel="D_between (persona-to-persona)",
                                     ref_slope=float(np.nanmean([r["null_ratio"] for r in rows])),
                                     ref_label="no persona effect (mean ratio under shuffled persona labels)"))]


def _codes(study: VarianceStudy, results: Sequence[Result]) -> Codes:
    """(model, item) -> [(condition, answer code or None)], errors excluded."""
    by_id = {i.id: i for i in study.items}
    out: Codes = defaultdict(list)
    for r in results:
        if not r.ok:
            continue
        item = by_id[r.request.tags.item or ""]
        letter = parse_choice(r.text, item.letters, item.choices)
        out[(r.request.model, item.id)].append((r.request.tags.condition or "", item.letters.index(letter)
                                                if letter else None))
    return out


def _pairings(study: VarianceStudy, codes: Codes, model: str, items: Sequence[MCItem]) -> dict[str, Pairing[str]]:
    """The items of `model` that enter the dispersion test and the JSD comparison (module docstring)."""
    runs, personas = study.spec.replicates, [p.id for p in study.panel]
    answered = {i.id: Counter(c for c, _ in codes.get((model, i.id), [])) for i in items}
    ids = list(answered)
    out = {DISPERSION: pair_units(ids, personas, {p: {i for i in ids if answered[i][p] >= 2} for p in personas})}
    human = [i.id for i in items if i.human_distribution() is not None]
    if study.options.baseline and human:
        out[JSD] = pair_units(human, (PANEL, NO_PERSONA), {
            PANEL: {i for i in human if all(answered[i][p] >= runs for p in personas)},
            NO_PERSONA: {i for i in human if answered[i][BASELINE] >= runs * len(personas)}})
    return out


def _item_row(study: VarianceStudy, model: str, item: MCItem, answers: list[tuple[str, int | None]],
              seed: int, *, dispersion: bool, jsd: bool) -> dict[str, Any]:
    """One item's row; the dispersion test only if the item entered it, the JSD only if it entered that."""
    persona_ans = [(c, a) for c, a in answers if c != BASELINE and a is not None]
    row: dict[str, Any] = {"model": model, "item": item.id, "answers": len(persona_ans),
                           "parse_failures": sum(a is None for _, a in answers)}
    planned = study.spec.replicates * len(study.panel)
    failed = {"failed_panel": planned - sum(c != BASELINE for c, _ in answers),
              "failed_baseline": planned - sum(c == BASELINE for c, _ in answers) if study.options.baseline else 0}
    row.update({k: n for k, n in failed.items() if n})
    x = np.array([a for _, a in persona_ans], dtype=int)
    g = np.array([c for c, _ in persona_ans])
    counts = {c: int(np.sum(g == c)) for c in set(g.tolist())}
    if dispersion and sum(n >= 2 for n in counts.values()) >= 2:
        t = dispersion_test(x, g, kind=study.kind, seed=seed, n_permutations=study.options.n_permutations,
                            n_categories=len(item.choices))
        shares = variance_shares(x, g, kind=study.kind, n_categories=len(item.choices))
        row.update(d_within=t.d_within, d_between=t.d_between, ratio=t.ratio, null_ratio=t.null_ratio_mean,
                   p_value=t.p_value, eta_squared=shares["eta_squared"], share_persona=shares["share_between"])
    human = item.human_distribution()
    base = [a for c, a in answers if c == BASELINE and a is not None]
    if jsd and human is not None and len(x) and base:
        k = len(item.choices)
        row["jsd_panel_human"] = jensen_shannon(np.bincount(x, minlength=k) / len(x), human)
        row["jsd_baseline_human"] = jensen_shannon(np.bincount(base, minlength=k) / len(base), human)
    return row


def analyze_variance(study: VarianceStudy, results: Sequence[Result], items: Sequence[MCItem] | None = None) -> Summary:
    """The summary over `items` (default: every item of the study; a sequential design's released ones)."""
    items = study.items if items is None else items
    codes = _codes(study, results)
    table: list[dict[str, Any]] = []
    pooled: dict[str, Any] = {}
    pairing: dict[str, dict[str, Any]] = {}
    for m_i, model in enumerate(study.spec.model):
        pairs = _pairings(study, codes, model, items)
        pairing[model] = {key: p.as_dict() for key, p in pairs.items()}
        entered = {key: set(p.complete) if p.status != NOT_ENOUGH else set() for key, p in pairs.items()}
        rows = [_item_row(study, model, item, codes.get((model, item.id), []), study.item_seed(m_i, item),
                          dispersion=item.id in entered[DISPERSION], jsd=item.id in entered.get(JSD, ()))
                for item in items]
        tested = [r for r in rows if r.get("p_value") is not None]
        if tested:
            for r, adj in zip(tested, holm([r["p_value"] for r in tested])):
                r["p_holm"] = float(adj)
        table.extend(rows)
        pooled[model] = {**_pooled(study, tested, codes, model, entered[DISPERSION], items),
                         **_jsd_pooled(study, rows)}
    counts = count_results(results)
    counts["parse_failures"] = sum(r["parse_failures"] for r in table)
    notes = [f"answers read as {study.kind}; {len(study.panel)} personas x {study.spec.replicates} runs per item."]
    if counts["parse_failures"]:
        notes.append(f"{counts['parse_failures']} answers could not be parsed and are left out (counted per item).")
    if counts["errors"]:
        notes.append(f"{counts['errors']} failed requests are left out and counted in 'errors' (per item: failed_panel, "
                     "failed_baseline); an item enters the dispersion test only if every persona answered it at least "
                     "twice, and the JSD comparison only if every request of it succeeded in both panels "
                     "(stats.pairing).")
    return Summary(study="variance", verdict=_verdict(pooled, pairing), table=table,
                   stats={"pooled": pooled, "pairing": pairing}, counts=counts, notes=notes)


def _pooled(study: VarianceStudy, tested: list[dict[str, Any]], codes: Codes, model: str,
            entered: set[str], items: Sequence[MCItem]) -> dict[str, Any]:
    """The dispersion test pooled over the tested items (`items`: those that entered it, for the mixed model)."""
    if not tested:
        return {"items_tested": 0}
    seed = study.spec.seed
    b = np.array([r["d_between"] for r in tested])
    w = np.array([r["d_within"] for r in tested])
    null = np.array([r["null_ratio"] for r in tested])
    ok = w > 0
    ratio_fn = lambda bb, ww, axis=-1: np.mean(bb, axis=axis) / np.mean(ww, axis=axis)  # noqa: E731
    from ..stats import bootstrap_pairs  # noqa: PLC0415

    ratio = bootstrap_pairs(ratio_fn, b[ok], w[ok], seed=seed, n_resamples=study.options.n_bootstrap) \
        if ok.sum() >= 2 else None
    sig = sum(r["p_value"] < SIGNIFICANT for r in tested)
    binom = sps.binomtest(sig, len(tested), 0.05, alternative="greater")
    # an item where every answer is the same has no variance to share out: its share is NaN, left out
    shares = [r["share_persona"] for r in tested if np.isfinite(r["share_persona"])]
    share = bootstrap_ci(shares, seed=seed, n_resamples=study.options.n_bootstrap) if len(shares) >= 2 else None
    out: dict[str, Any] = {
        "items_tested": len(tested),
        "ratio": ratio.as_dict() if ratio else None,
        "null_ratio_mean": float(np.nanmean(null)),
        "ratio_over_null": (ratio.estimate / float(np.nanmean(null))) if ratio and np.nanmean(null) > 0 else None,
        "share_items_significant": sig / len(tested),
        "items_significant_holm": sum(r.get("p_holm", 1) < 0.05 for r in tested),
        "more_items_than_chance": {"test": "one-sided binomial test of the significant share against 0.05",
                                   "p_value": float(binom.pvalue)},
        "share_persona": share.as_dict() if share else None,
        "share_run_to_run": (1 - share.estimate) if share else None,
        "eta_squared_mean": _finite_mean([r["eta_squared"] for r in tested]),
    }
    if study.kind == "numeric":
        out["mixed_model"] = _mixed(study, codes, model, entered, items)
    return out


def _jsd_pooled(study: VarianceStudy, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Persona panel vs no-persona panel in JSD to the humans, paired over the items that entered."""
    human = [r for r in rows if r.get("jsd_panel_human") is not None and r.get("jsd_baseline_human") is not None]
    if not human:
        return {}
    panel = np.array([r["jsd_panel_human"] for r in human])
    base = np.array([r["jsd_baseline_human"] for r in human])
    diff = panel - base
    ci = paired_difference_ci(panel, base, seed=study.spec.seed, n_resamples=study.options.n_bootstrap) \
        if len(human) >= 2 else None
    return {"jsd_to_humans": {
        "persona_panel": float(panel.mean()), "no_persona_panel": float(base.mean()), "items": len(human),
        "difference": float(diff.mean()),
        "difference_ci": [ci.ci_low, ci.ci_high] if ci else None,
        "difference_median": float(np.median(diff)),
        "wilcoxon": wilcoxon_signed_rank(panel, base).as_dict() if len(human) >= 2 else None,
        "note": "difference is the mean paired difference (persona panel minus no-persona panel) over items, "
                "with its 95% CI; difference_median is the median of the same differences"}}


def _finite_mean(values: Sequence[float]) -> float | None:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def _mixed(study: VarianceStudy, codes: Codes, model: str, entered: set[str], items: Sequence[MCItem]
           ) -> dict[str, Any]:
    from ..stats import variance_components  # noqa: PLC0415

    rows = [(item.id, c, a) for item in items if item.id in entered for c, a in codes.get((model, item.id), [])
            if c != BASELINE and a is not None]
    if len({r[0] for r in rows}) < 2:
        return {"error": "needs answers on at least two items"}
    try:
        return variance_components([r[2] for r in rows], [r[1] for r in rows], [r[0] for r in rows]).as_dict()
    except Exception as exc:  # statsmodels can fail to converge on tiny or degenerate data
        return {"error": f"{type(exc).__name__}: {exc}"}


def _jsd_sentence(jsd: dict[str, Any]) -> str:
    """Against the human label distributions: which panel is closer, from the CI of the mean difference."""
    ci = jsd.get("difference_ci")
    head = (f"Against the human label distributions ({jsd['items']} items), the persona panel's mean JSD is "
            f"{jsd['persona_panel']:.3f} and the no-persona panel's {jsd['no_persona_panel']:.3f} (mean paired "
            f"difference {jsd['difference']:+.3f}")
    if not ci or ci[0] is None:
        return head + "; too few items for a CI)."
    where = (" the persona panel is closer to the humans" if ci[1] < 0 else
             " the persona panel is further from the humans" if ci[0] > 0 else
             " the CI includes 0: neither panel is detectably closer to the humans")
    return head + f", 95% CI [{ci[0]:+.3f}, {ci[1]:+.3f}]):{where}."


LABELS = {DISPERSION: "personas vs run-to-run noise", JSD: "persona panel vs no-persona panel (JSD to humans)"}


def _verdict(pooled: dict[str, Any], pairing: dict[str, dict[str, Any]] | None = None,
             sequential: dict[str, Any] | None = None) -> str:
    """The verdict, from the pooled figures, the pairing counts and the sequential block only
    (`stats['pooled']`, `stats['pairing']`, `stats['sequential']`).

    Persona differences are 'larger than run-to-run noise' when the one-sided binomial test of the
    share of significant items passes; with a sequential design only when, besides, the always-valid
    CS of that share lies above 0.05 (the fixed-sample test is not valid after looking).
    """
    pairing = pairing or {}
    lead = drop_warnings((f"{model} {LABELS.get(key, key)}", p) for model, comps in pairing.items()
                         for key, p in comps.items())
    parts = [lead.strip()] if lead else []
    if sequential is not None:
        parts.append(stop_sentence(sequential))
    for model, p in pooled.items():
        comps = pairing.get(model, {})
        disp = comps.get(DISPERSION)
        if disp is not None and disp["status"] == NOT_ENOUGH:
            parts.append(f"{model}: not enough data to compare personas with run-to-run noise ({disp['paired']} of "
                         f"{disp['units']} items answered at least twice by every persona), no estimate.")
        elif not p.get("items_tested"):
            parts.append(f"{model}: too few parsed answers to compare personas with run-to-run noise.")
        else:
            larger = p["more_items_than_chance"]["p_value"] < SIGNIFICANT
            cs = (sequential or {}).get("final", {}).get(f"{model}: {DISPERSION}")
            share = (p.get("share_persona") or {}).get("estimate")
            explained = ("the persona's share of answer variance could not be estimated" if share is None else
                         f"persona explains {100 * share:.0f}% of answer variance, the rest is run-to-run")
            if sequential is None:
                are = "are" if larger else "are not"
            elif cs is None:
                are, larger = "are not shown to be", False
            else:
                above = cs["cs_low"] > SIGNIFICANT
                are = "are" if larger and above else "are not shown to be"
                explained += (f"; always-valid CS of the share of items significant [{cs['cs_low']:.2f}, "
                              f"{cs['cs_high']:.2f}] {'lies above' if above else 'includes or lies below'} "
                              f"{SIGNIFICANT:g}, the share with no persona effect")
                if larger and not above:
                    explained += " (the fixed-sample binomial test passes, but it is not valid after looking)"
            parts.append(
                f"{model}: persona differences {are} larger than run-to-run noise "
                f"({p['share_items_significant']:.0%} of {p['items_tested']} items significant at 0.05, "
                f"{p['items_significant_holm']} after Holm; {explained}).")
        human = comps.get(JSD)
        if human is not None and human["status"] == NOT_ENOUGH:
            parts.append(f"Against the human label distributions: not enough data ({human['paired']} of "
                         f"{human['units']} items answered in full by both panels), no estimate.")
        elif p.get("jsd_to_humans"):
            parts.append(_jsd_sentence(p["jsd_to_humans"]))
    return " ".join(parts)


STUDY = VarianceStudy
