"""bias: identity-congruent reasoning in persona-assigned models (arXiv 2506.20020; METHODS.md section 8).

Task B, numeracy under identity: Kahan-style count tables (personae.bias.instruments) asked of
identity personas (political, religion, education, gender) and of no persona, each persona
rendered through every template of `options.templates` (the paper's three), with N simulated
participants per (arm, template, persona) = the spec's `replicates`. Debiasing arms: 'step-by-step'
(the question ends with "Think step by step.") and 'accuracy-prime' (the persona becomes "... who
has a skeptical attitude and strives for accuracy").

Answers are read by generating and parsing a letter (mode generate: one seeded request per
participant and item), or (mode logprob) from the two option letters' log-probabilities, scored
once per (arm, template, persona, item); each simulated participant then draws its answer from
those probabilities with its own seed (derived from the spec seed, the cell and the participant),
so N participants cost two scoring requests per item and a re-run draws the same answers.
Statistics and verdict: personae.bias.analysis.

With `options.sequential` the items (numeracy items and headlines) are released in batches and the
study stops once every identity persona's always-valid CS of its difference from no persona is
decided (personae.studies._sequential; the unit values and their bounds: personae.bias.sequential).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..backends.base import Message, Request, Sampling, Tags
from ..bias.analysis import Answer, debias_rows, did_logit, numeracy_table, numeracy_verdict
from ..bias.external import External, load_external
from ..bias.instruments import NumeracyItem, expand, load_vignettes
from ..bias.sequential import BOUNDS, NULL, Comparison, check_units, congruence_sign, numeracy_cells, paired_values, \
    veracity_cells, veracity_sign
from ..bias.veracity import (RATING_PROMPT, RATINGS, Headline, Rating, load_headlines, parse_rating, veracity_table,
                             veracity_verdict)
from ..errors import ConfigError
from ..parsing import letter_grammar, parse_choice
from ..persona import BUILTIN_TEMPLATES, Persona, builtin_personas
from ..runner import Result
from ..spec_types import ResolvedSpec
from ._cells import Condition, cells, derive_seed
from ._pairing import NOT_ENOUGH, Pairing, drop_warnings
from ._sequential import SequentialOptions, Sequencer, UnitValues, check_sequential, next_batch, sequential_report, \
    stop_sentence
from .base import Study, Summary, count_results

Arm = Literal["none", "step-by-step", "accuracy-prime"]
Task = Literal["numeracy", "veracity"]
DEFAULT_PERSONAS = ("democrat", "republican", "religious", "atheist", "high-school", "college-educated", "man",
                    "woman")
STEP_BY_STEP = "Think step by step."
PRIME = " who has a skeptical attitude and strives for accuracy"
NO_PERSONA_PRIME = "You are a person who has a skeptical attitude and strives for accuracy."


class BiasOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    tasks: tuple[Task, ...] = Field(default=("numeracy", "veracity"), min_length=1)
    """numeracy (Task B: count tables under identity) and/or veracity (Task A: headlines rated 1-6, VDA)."""
    vignettes: str = "builtin"
    """Count-table vignettes: 'builtin' (five, written for personae) or a YAML/JSON file relative to the
    spec in the same layout ({vignettes: [{id, axis, favours_good, favours_bad, counts, identity, neutral}]})."""
    only: tuple[str, ...] | None = None
    """Only these vignette ids (e.g. [gun-control])."""
    neutral_control: bool = True
    """Also ask each vignette's neutral frame (same numbers): the control of the difference in differences."""
    headlines: str = "builtin"
    """Veracity headlines: 'builtin' (20, written for personae in the MIST's form) or a YAML/JSON/JSONL/CSV file
    relative to the spec (the MIST-20 layout reads as published: item, headline, veracity real/fake)."""
    headlines_limit: int | None = Field(default=None, ge=1)
    """At most this many real and this many fake headlines (in file order)."""
    veracity_arms: tuple[Arm, ...] | None = None
    """Arms the veracity task runs in (None: the same as `arms`)."""
    identities: tuple[str, ...] = DEFAULT_PERSONAS
    """Identity personas asked (built-in ids or the spec's personas); the spec's personas are added."""
    no_persona: bool = True
    """Also ask with no persona (the baseline)."""
    templates: tuple[str, ...] = ("take-the-role", "you-are", "adopt-identity")
    """Persona templates every persona is rendered through (built-in names or the spec's `templates:`)."""
    arms: tuple[Arm, ...] = ("none", "step-by-step", "accuracy-prime")
    """Debiasing arms: none, step-by-step ('Think step by step.'), accuracy-prime (skeptical, strives for accuracy)."""
    results: str | tuple[str, ...] | None = None
    """Results made elsewhere, analysed instead of asking a model: CSV/JSONL paths or glob patterns relative
    to the spec, one row per outcome (layout: personae.bias.external)."""
    mode: Literal["generate", "logprob", "auto"] = "auto"
    """Read answers by generating and parsing a letter, or from the option letters' log-probabilities
    (participants draw from them); auto: logprob when every model's backend can score text."""
    constrained: bool = False
    """mode generate: constrain replies to one letter with a grammar (llama.cpp backends)."""
    sequential: SequentialOptions | None = None
    """Ask the items (numeracy items and headlines) in batches of look_every and stop once every
    identity persona's always-valid CS of its difference from no persona (per task and arm)
    excludes 0 (stop: decision) or is narrower than ci_width (stop: ci_width); see
    personae.studies._sequential. A numeracy item's value is s (a_persona - a_no_persona), the
    shares of participants correct, s = +1 congruent / -1 incongruent; a headline's is
    s (r_persona - r_no_persona) / 5, the mean 1-6 ratings, s = +1 real / -1 fake: both lie in
    [-1, 1] because shares lie in [0, 1] and two ratings differ by at most 5 (the CS needs known
    bounds; personae.bias.sequential). Needs no_persona; not with results. None: the fixed design."""


class BiasStudy(Study[BiasOptions]):
    name = "bias"
    Options = BiasOptions
    display_columns = ("task", "arm", "persona", "participants", "acc_congruent", "acc_incongruent", "rr", "rr_ci_low",
                       "rr_ci_high", "p_fisher_holm", "rr_noise_floor", "control_rr", "accuracy_neutral", "vda",
                       "vda_ci_low", "vda_ci_high", "vda_diff",
                       "vda_diff_ci_low", "vda_diff_ci_high", "vda_p_holm", "vda_noise_floor", "within_noise_floor",
                       "cs_low", "cs_high", "cs_items", "errors", "parse_failures")

    @classmethod
    def check(cls, resolved: ResolvedSpec) -> None:
        study = cls(resolved)
        o = study.options
        check_sequential(o.sequential)
        if o.sequential is not None and o.results is not None:
            raise ConfigError("options.sequential decides which items to ask, and options.results asks no model.",
                              field="options.sequential", fix="remove one of the two.")
        if study.external is not None:
            return
        if "numeracy" in o.tasks and not study.items:
            raise ConfigError("no vignette is left to ask.", field="options.only",
                              fix="name vignette ids the vignettes file holds.")
        study.headlines  # noqa: B018 (reads and checks the headlines file)
        known = {**BUILTIN_TEMPLATES, **(resolved.spec.templates or {})}
        for t in o.templates:
            if t not in known:
                from .._loading import suggest  # noqa: PLC0415

                raise ConfigError(f"no persona template '{t}'.{suggest(t, known)}", field="options.templates",
                                  fix=f"use {', '.join(sorted(BUILTIN_TEMPLATES))} or one defined under 'templates:'.")
        study.identity_personas  # noqa: B018 (raises on an unknown persona id)
        if o.sequential is not None:
            check_units(o.no_persona, study.comparisons, study.items_by_id, study.headlines_by_id)
        if o.mode == "logprob":
            cls.require_scoring(resolved, "mode 'logprob' (use mode: generate otherwise)", "options.mode")

    # ---------------------------------------------------------------- instruments and conditions
    @cached_property
    def vignettes(self) -> tuple[Any, ...]:
        found = load_vignettes(self.options.vignettes, self.resolved.base_dir)
        if self.options.only:
            ids = {v.id for v in found}
            for v in self.options.only:
                if v not in ids:
                    from .._loading import suggest  # noqa: PLC0415

                    raise ConfigError(f"no vignette '{v}'.{suggest(v, ids)}", field="options.only",
                                      fix=f"use one of {', '.join(sorted(ids))}.")
            found = tuple(v for v in found if v.id in self.options.only)
        return found

    @cached_property
    def items(self) -> tuple[NumeracyItem, ...]:
        if "numeracy" not in self.options.tasks:
            return ()
        return expand(self.vignettes, neutral=self.options.neutral_control)

    @cached_property
    def headlines(self) -> tuple[Headline, ...]:
        if "veracity" not in self.options.tasks:
            return ()
        found = load_headlines(self.options.headlines, self.resolved.base_dir)
        n = self.options.headlines_limit
        if n is None:
            return found
        real = [h for h in found if h.real][:n]
        fake = [h for h in found if not h.real][:n]
        return tuple(h for h in found if h in real or h in fake)

    @cached_property
    def headlines_by_id(self) -> dict[str, Headline]:
        return {h.id: h for h in self.headlines}

    @cached_property
    def items_by_id(self) -> dict[str, NumeracyItem]:
        return {i.id: i for i in self.items}

    @cached_property
    def identity_personas(self) -> tuple[Persona, ...]:
        library = builtin_personas()
        user = {p.id: p for p in self.personas}
        out = []
        for pid in self.options.identities:
            if pid in user:
                out.append(user[pid])
            elif pid in library:
                out.append(library[pid])
            else:
                from .._loading import suggest  # noqa: PLC0415

                raise ConfigError(f"no persona '{pid}'.{suggest(pid, [*library, *user])}", field="options.identities",
                                  fix="use built-in identity ids (democrat, republican, religious, atheist, high-school, "
                                      "college-educated, man, woman) or the id of a persona of the spec.")
        return tuple(out) + tuple(p for p in self.personas if p.id not in self.options.identities)

    @cached_property
    def external(self) -> External | None:
        """options.results read and checked (None without it)."""
        from .._loading import expand_files  # noqa: PLC0415

        ref = self.options.results
        if ref is None:
            return None
        paths = expand_files((ref,) if isinstance(ref, str) else ref, self.resolved.base_dir, field="options.results",
                             example="results/*.csv")
        return load_external(paths)

    @cached_property
    def mode(self) -> str:
        if self.external is not None:
            return "results"
        if self.options.mode != "auto":
            return self.options.mode
        return "generate" if self.models_without_scoring(self.resolved, unknown_can=False) else "logprob"

    def conditions(self, arms: Sequence[str] | None = None) -> list[tuple[Condition, str, str]]:
        """(condition, arm, template) for every arm x template x persona (no persona: once per arm)."""
        out = []
        for arm in arms if arms is not None else self.options.arms:
            if self.options.no_persona:
                out.append((Condition(f"{arm}/none", None), arm, "none"))
            for template in self.options.templates:
                for p in self.identity_personas:
                    variant = p.model_copy(update={"description": p.description + PRIME}) if arm == "accuracy-prime" \
                        else p
                    out.append((Condition(f"{arm}/{template}/{p.id}", variant), arm, template))
        return out

    @property
    def veracity_arms(self) -> tuple[str, ...]:
        return self.options.veracity_arms if self.options.veracity_arms is not None else self.options.arms

    def messages(self, persona: Persona | None, arm: str, template: str, item: NumeracyItem | Headline
                 ) -> list[Message]:
        from ..persona import render_persona  # noqa: PLC0415

        system = (render_persona(persona, template, self.spec.templates) if persona is not None
                  else NO_PERSONA_PRIME if arm == "accuracy-prime" else None)
        text = RATING_PROMPT.format(headline=item.text) if isinstance(item, Headline) else item.text
        user = text + (f"\n{STEP_BY_STEP}" if arm == "step-by-step" else "") + "\nAnswer:"
        return ([Message(role="system", content=system)] if system else []) + [Message(role="user", content=user)]

    # ---------------------------------------------------------------- plan
    def plan(self, done: Sequence[Result]) -> list[Request]:
        if self.external is not None:
            return []
        if self.sequencer is None:
            return [] if done else self.requests_for(self.items, self.headlines)
        return next_batch(self, done)

    def requests_for(self, items: Sequence[NumeracyItem], headlines: Sequence[Headline]) -> list[Request]:
        """Every request of these numeracy items and headlines: each model, arm, template, persona, participant."""
        reqs: list[Request] = []
        for task, arms, units, options in (("numeracy", self.options.arms, items, "AB"),
                                           ("veracity", self.veracity_arms, headlines, RATINGS)):
            if units:
                reqs += self._task_requests(task, arms, units, options)
        return reqs

    def _task_requests(self, task: str, arms: Sequence[str], items: Sequence[Any], options: str) -> list[Request]:
        logprob = self.mode == "logprob"
        reqs: list[Request] = []
        for cond, arm, template in self.conditions(arms):
            for cell in cells(self.spec.model, [cond], items, 1 if logprob else self.spec.replicates,
                              seed=self.spec.seed):
                tags = cell.tags.model_copy(update={"extra": {"task": task, "arm": arm, "template": template}})
                msgs = tuple(self.messages(cell.persona, arm, template, cell.item))
                base = dict(model=cell.model, messages=msgs, replicate=cell.replicate,
                            persona_version=cell.persona.version if cell.persona else None)
                if logprob:
                    for option in options:
                        reqs.append(Request(kind="score", continuation=option, sampling=Sampling(temperature=0.0),
                                            tags=tags.model_copy(update={"extra": {**tags.extra, "option": option}}),
                                            **base))
                    continue
                extra: dict[str, Any] = {"grammar": letter_grammar(options)} if self.options.constrained else {}
                reqs.append(Request(kind="generate", sampling=self.spec.sampling.model_copy(update={"seed": cell.seed}),
                                    tags=tags, **base, **extra))
        return reqs

    # ---------------------------------------------------------------- sequential design
    @cached_property
    def comparisons(self) -> tuple[Comparison, ...]:
        """Each identity persona against no persona: per model and numeracy arm (the personas an
        identity-frame item touches), and per model and veracity arm (every identity persona).
        None without the no-persona arm."""
        if not self.options.no_persona:
            return ()
        touched = {p for i in self.items if i.frame == "identity" for p in (i.favoured, i.disfavoured)}
        ids = [p.id for p in self.identity_personas]
        out = [Comparison("numeracy", m, arm, p) for m in self.spec.model for arm in self.options.arms for p in ids
               if p in touched]
        if self.headlines:
            out += [Comparison("veracity", m, arm, p) for m in self.spec.model for arm in self.veracity_arms
                    for p in ids]
        return tuple(out)

    @cached_property
    def sequencer(self) -> Sequencer | None:
        """The batches and stopping rule of options.sequential (None: the fixed design). Units: every
        numeracy item (neutral-frame ones too: the control of the fixed-sample figures) and headline."""
        o = self.options.sequential
        if o is None or self.external is not None:
            return None
        return Sequencer(o, [i.id for i in self.items] + [h.id for h in self.headlines], self.spec.seed,
                         bounds=BOUNDS, nulls=NULL, comparisons=[c.label for c in self.comparisons])

    def unit_requests(self, item_ids: Sequence[str]) -> list[Request]:
        """Every request of the items and headlines with these ids (a sequential design's batch)."""
        return self.requests_for([self.items_by_id[i] for i in item_ids if i in self.items_by_id],
                                 [self.headlines_by_id[i] for i in item_ids if i in self.headlines_by_id])

    def _weight(self, c: Comparison, unit: str) -> float | None:
        """The signed scale of a unit in a comparison (personae.bias.sequential); None: not one of its units."""
        if c.task == "veracity":
            h = self.headlines_by_id.get(unit)
            return None if h is None else veracity_sign(h.real)
        item = self.items_by_id.get(unit)
        return None if item is None or item.frame != "identity" else congruence_sign(item.congruence(c.persona))

    def paired(self, results: Sequence[Result], item_ids: Sequence[str]
               ) -> tuple[dict[str, dict[str, float]], dict[str, Pairing[str]]]:
        """Per comparison, the paired value of each of these units both arms answered, and the pairing."""
        cells = {**numeracy_cells(self.answers(results)), **veracity_cells(self.ratings(results))}
        return paired_values(self.comparisons, item_ids, cells, self._weight)

    def unit_values(self, results: Sequence[Result], item_ids: Sequence[str]) -> UnitValues:
        """Per comparison, the paired value of each of these units both arms answered (`paired`)."""
        return self.paired(results, item_ids)[0]

    def add_sequential(self, results: Sequence[Result], table: Sequence[dict[str, Any]],
                       vrows: Sequence[dict[str, Any]], vtests: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """The stats.sequential block, with the pairing of each comparison; each numeracy row, veracity
        row and veracity test of a persona against no persona with an estimate gets its final
        always-valid CS (cs_low, cs_high, cs_items), unless the comparison lost more than half its
        units (not enough data: no estimate, as in the fixed design)."""
        block = sequential_report(self, results)  # raises without options.sequential
        released = self.sequencer.released_ids(results) if self.sequencer is not None else ()
        pairings = self.paired(results, released)[1]
        block["pairing"] = {label: p.as_dict() for label, p in pairings.items()}
        final = block["final"]
        for task, rows in (("numeracy", [r for r in table if r.get("rr") is not None]),
                           ("veracity", [r for r in vrows if r.get("vda_diff") is not None]),
                           ("veracity", [t for t in vtests if t.get("against") == "none"])):
            for row in rows:
                label = Comparison(task, row["model"], row["arm"], row["persona"]).label
                cs = final.get(label)
                if cs is not None and pairings[label].status != NOT_ENOUGH:
                    row.update(cs_low=cs["cs_low"], cs_high=cs["cs_high"], cs_items=cs["n"])
        return block

    # ---------------------------------------------------------------- analyze
    def _answer(self, tags: Tags, model: str, participant: int, correct: bool | None, error: bool) -> Answer:
        item = self.items_by_id[tags.item or ""]
        return Answer(model=model, arm=tags.extra["arm"], template=tags.extra["template"], persona=tags.persona,
                      participant=participant, item=item.id, vignette=item.vignette, axis=item.axis, frame=item.frame,
                      congruent=item.congruence(tags.persona), correct=correct, error=error)

    def drawn(self, results: Sequence[Result]) -> list[tuple[Result, int, str | None, bool]]:
        """(a result of the item, participant, the participant's answer or None, failed) for every
        participant: generate mode parses each reply; logprob mode draws from the options' probabilities
        (failed when any option's request failed)."""
        out: list[tuple[Result, int, str | None, bool]] = []
        if self.mode != "logprob":
            for r in results:
                task = r.request.tags.extra.get("task")
                answer = None
                if r.ok and task == "veracity":
                    rating = parse_rating(r.text)
                    answer = None if rating is None else str(rating)
                elif r.ok:
                    answer = parse_choice(r.text, "AB")
                out.append((r, r.request.replicate, answer, not r.ok))
            return out
        groups: dict[tuple[str, str, str], list[Result]] = defaultdict(list)
        for r in results:
            groups[(r.request.model, r.request.tags.condition or "", r.request.tags.item or "")].append(r)
        for (model, cond, iid), rs in groups.items():
            failed = any(not r.ok or r.score is None for r in rs)
            probs = {} if failed else option_probabilities({r.request.tags.extra["option"]: r.score.logprob
                                                            for r in rs if r.score is not None})
            for n in range(self.spec.replicates):
                u = derive_seed(self.spec.seed, model, cond, iid, n) / 2**31
                out.append((rs[0], n, None if failed else draw(probs, u), failed))
        return out

    def answers(self, results: Sequence[Result]) -> list[Answer]:
        """Numeracy answer records, one per participant and item."""
        out = []
        for r, n, letter, failed in self.drawn([r for r in results if r.request.tags.extra.get("task") != "veracity"]):
            tags = r.request.tags
            item = self.items_by_id[tags.item or ""]
            out.append(Answer(model=r.request.model, arm=tags.extra["arm"], template=tags.extra["template"],
                              persona=tags.persona, participant=n, item=item.id, vignette=item.vignette,
                              axis=item.axis, frame=item.frame, congruent=item.congruence(tags.persona),
                              correct=None if letter is None else letter == item.answer, error=failed))
        return out

    def ratings(self, results: Sequence[Result]) -> list[Rating]:
        """Veracity ratings, one per participant and headline."""
        out = []
        for r, n, answer, failed in self.drawn([r for r in results if r.request.tags.extra.get("task") == "veracity"]):
            tags = r.request.tags
            h = self.headlines_by_id[tags.item or ""]
            out.append(Rating(model=r.request.model, arm=tags.extra["arm"], template=tags.extra["template"],
                              persona=tags.persona, participant=n, headline=h.id, real=h.real,
                              rating=None if answer is None else int(answer), error=failed))
        return out

    def analyze(self, results: Sequence[Result]) -> Summary:
        ext = self.external
        answers = list(ext.answers) if ext is not None else self.answers(results)
        ratings = [] if ext is not None else self.ratings(results)
        table = [{"task": "numeracy", **r} for r in numeracy_table(answers, seed=self.spec.seed)]
        vrows, vtests = veracity_table(ratings, ext.vda if ext is not None else None, seed=self.spec.seed)
        debias = debias_rows(answers)
        counts = count_results(results)
        counts["answers"] = len(answers)
        counts["ratings"] = len(ratings)
        counts["parse_failures"] = (sum(a.correct is None and not a.error for a in answers)
                                    + sum(r.rating is None and not r.error for r in ratings))
        pooled = {}
        for model, arm in dict.fromkeys((a.model, a.arm) for a in answers):
            rows = [a for a in answers if a.model == model and a.arm == arm and a.persona is not None and not a.error]
            pooled[f"{model} {arm}"] = did_logit(rows, by_persona=True)
        by_template: dict[str, Any] = {}
        for a in answers:
            if a.correct is not None:
                k = f"{a.model} {a.arm} {a.template}"
                hit = by_template.setdefault(k, [0, 0])
                hit[0] += int(a.correct)
                hit[1] += 1
        stats: dict[str, Any] = {
            "mode": self.mode, "participants_per_cell": self.spec.replicates, "items": len(self.items),
            "vignettes": [v.id for v in self.vignettes] if self.items and ext is None else [], "debias": debias,
            "did_pooled": pooled, "headlines": 0 if ext is not None else len(self.headlines), "veracity_tests": vtests,
            "accuracy_by_template": {k: {"accuracy": c / n, "n": n} for k, (c, n) in by_template.items()},
            "statistics": "RR: statsmodels Table2x2 log-method CI (personae.stats.risk_ratio); OR: Fisher exact, "
                          "conditional MLE and exact CI (scipy); DiD: correct ~ congruent * identity, statsmodels GLM "
                          "binomial logit; Holm over personas and arms per model; debias: Wald CIs; accuracy CIs: "
                          "Wilson; noise floors: split-half (personae.stats.split_half_floor, 200 seeded splits of "
                          "each persona's participants; RR: exp(SD of the log-RR difference between halves), VDA: SD "
                          "of the difference between halves).",
        }
        notes = ["Answers are treated as independent in the 2x2 tables (as arXiv 2506.20020 does); a simulated "
                 "participant answers every item."]
        if self.mode == "logprob":
            notes.append("mode logprob: each option letter is scored once per (arm, template, persona, item) and every "
                         "simulated participant draws its answer from those probabilities with its own seed; the "
                         "step-by-step arm only adds the instruction (no reasoning is generated in this mode).")
        if counts["errors"]:
            notes.append(f"{counts['errors']} failed requests are counted in 'errors' and left out of every accuracy.")
        if counts["parse_failures"]:
            notes.append(f"{counts['parse_failures']} answers could not be parsed; left out (not scored wrong).")
        if ext is not None:
            notes.insert(0, ext.describe())
        block = self.add_sequential(results, table, vrows, vtests) if self.sequencer is not None else None
        lead: list[str] = []
        if block is not None:
            stats["sequential"] = block
            asked = {r.request.tags.item for r in results}  # the released units: items and headlines asked
            stats["items"] = sum(i.id in asked for i in self.items)
            stats["headlines"] = sum(h.id in asked for h in self.headlines)
            lead = [drop_warnings(block["pairing"].items()).strip(), stop_sentence(block)]
            notes.append(stop_sentence(block) + " cs_low/cs_high: the always-valid CS of each identity persona's "
                         "difference from no persona (numeracy: per identity-frame item, the congruence-signed "
                         "difference of the shares correct; veracity: per headline, the veracity-signed difference of "
                         f"the mean ratings / 5; personae.bias.sequential; {block['method']}; "
                         f"{1 - block['alpha']:.0%} for all comparisons at once). A unit with a failed request in "
                         "either arm is left out of both (stats.sequential.pairing counts the units each arm lost). "
                         "The RR, Fisher, Welch and DiD figures are the fixed-sample ones over the items asked, shown "
                         "for comparison: they are not valid after looking at the data, so only the CS decides.")
        seq = block is not None
        verdict = " ".join(v for v in (*lead, numeracy_verdict(table, debias, counts, sequential=seq) if answers else "",
                                       veracity_verdict(vrows, vtests, sequential=seq)) if v)
        for r in vrows:
            ci = r["vda_ci"] or [None, None]
            extra = {}
            if "vda_diff" in r:
                extra = {"vda_diff_ci_low": r["vda_diff_ci"][0], "vda_diff_ci_high": r["vda_diff_ci"][1]}
            table.append({"task": "veracity", **r, "vda_ci_low": ci[0], "vda_ci_high": ci[1], **extra})
        return Summary(study="bias", verdict=verdict, table=table, stats=stats, counts=counts, notes=notes)

    def figures(self, results: Sequence[Result], summary: Summary) -> list[tuple[str, Any]]:
        """Task B per (model, arm): accuracy congruent vs incongruent per persona, on the identity frame
        and the neutral control, and the no persona's accuracy on each frame (Wilson 95% CIs); Task A
        per (model, arm): mean VDA per persona with its t CI beside the no-persona baseline."""
        figs = []
        multi = len({r["model"] for r in summary.table}) > 1
        for task, plot in (("numeracy", numeracy_figure), ("veracity", veracity_figure)):
            rows = [r for r in summary.table if r["task"] == task]
            for model, arm in dict.fromkeys((r["model"], r["arm"]) for r in rows):
                fig = plot([r for r in rows if (r["model"], r["arm"]) == (model, arm)])
                if fig is not None:
                    where = f"arm {arm}" + (f", {model}" if multi else "")
                    figs.append((FIGURE_CAPTIONS[task].format(where=where), fig))
        return figs

    def describe(self) -> list[str]:
        if self.external is not None:
            return [self.external.describe()]
        lines = []
        if self.items:
            lines.append(f"numeracy: {len(self.vignettes)} vignettes -> {len(self.items)} items (frame x framing x option "
                         f"order); {len(self.conditions())} arm x template x persona conditions x "
                         f"{self.spec.replicates} participants; mode {self.mode}.")
        if self.headlines:
            real = sum(h.real for h in self.headlines)
            lines.append(f"veracity: {len(self.headlines)} headlines ({real} real, {len(self.headlines) - real} fake) from "
                         f"{self.options.headlines}, rated 1-6; {len(self.conditions(self.veracity_arms))} conditions x "
                         f"{self.spec.replicates} participants; VDA = 0.5 + (mean real - mean fake) / 10.")
        if self.sequencer is not None:
            lines.append(self.sequencer.describe())
        return lines


FIGURE_CAPTIONS = {
    "numeracy": "Task B ({where}): accuracy when the truth fits the persona's identity (congruent) and when it does "
                "not, on the identity frame and on the neutral control with the same numbers, and the no persona's "
                "accuracy on each frame (Wilson 95% CIs; dashed: chance, 0.5)",
    "veracity": "Task A ({where}): mean VDA per persona beside the no-persona baseline (t 95% CIs; dashed: the "
                "no-persona VDA and 0.5, no discernment)",
}
NUMERACY_SERIES = (("congruent (identity frame)", "acc_congruent"), ("incongruent (identity frame)", "acc_incongruent"),
                   ("control: pseudo-congruent (neutral frame)", "control_acc_congruent"),
                   ("control: pseudo-incongruent (neutral frame)", "control_acc_incongruent"),
                   ("no persona: identity frame", "accuracy_identity"),
                   ("no persona: neutral frame", "accuracy_neutral"))
"""(legend, table column) of each series of the Task B figure; its CI is the column + '_ci'. The
first four are drawn for identity personas, the last two for the no persona."""


def _series(name: str, rows: Sequence[dict[str, Any]], col: str, on: Any) -> tuple[str, list[Any], list[Any],
                                                                                  list[Any]] | None:
    """One plotted series: column `col` and its CI (`col`_ci) on the rows where `on(row)`, None elsewhere
    (None when no row has a value)."""
    est = [r.get(col) if on(r) else None for r in rows]
    cis = [(r.get(col + "_ci") or [None, None]) if v is not None else [None, None] for r, v in zip(rows, est)]
    return (name, est, [c[0] for c in cis], [c[1] for c in cis]) if any(v is not None for v in est) else None


def numeracy_figure(rows: Sequence[dict[str, Any]]) -> Any:
    """The Task B figure of one (model, arm), from its table rows (None when nothing was scored)."""
    from ..report.plots import grouped_forest_plot  # noqa: PLC0415

    shown = [r for r in rows if r.get("rr") is not None or r["persona"] == "none"]
    if not shown:
        return None
    series = [s for k, (name, col) in enumerate(NUMERACY_SERIES)
              if (s := _series(name, shown, col, lambda r, k=k: (k >= 4) == (r["persona"] == "none"))) is not None]
    if not series:
        return None
    return grouped_forest_plot([("no persona" if r["persona"] == "none" else r["persona"]) for r in shown], series,
                               xlabel="accuracy", refs=[(0.5, "chance")])


def veracity_figure(rows: Sequence[dict[str, Any]]) -> Any:
    """The Task A figure of one (model, arm): the no persona first, then each persona (None without a VDA)."""
    from ..report.plots import grouped_forest_plot  # noqa: PLC0415

    shown = sorted((r for r in rows if r.get("vda") is not None), key=lambda r: r["persona"] != "none")
    if not shown:
        return None
    series = [s for name, base in (("no persona (baseline)", True), ("persona", False))
              if (s := _series(name, shown, "vda", lambda r, base=base: (r["persona"] == "none") == base)) is not None]
    refs = [(r["vda"], "no-persona VDA") for r in shown if r["persona"] == "none"] + [(0.5, "no discernment")]
    return grouped_forest_plot([("no persona" if r["persona"] == "none" else r["persona"]) for r in shown], series,
                               xlabel="VDA (0.5 + (mean rating real - mean rating fake) / 10)", refs=refs)


def option_probabilities(logprobs: dict[str, float]) -> dict[str, float]:
    """Softmax over the option letters' log-probabilities (renormalised over the options only)."""
    top = max(logprobs.values())
    w = {k: math.exp(v - top) for k, v in logprobs.items()}
    z = sum(w.values())
    return {k: v / z for k, v in sorted(w.items())}


def draw(probs: dict[str, float], u: float) -> str:
    """The option whose cumulative probability first exceeds u (u uniform in [0, 1))."""
    acc = 0.0
    for k, p in probs.items():
        acc += p
        if u < acc:
            return k
    return next(reversed(probs))


STUDY = BiasStudy
