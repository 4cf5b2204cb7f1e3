"""grid: persona x question x replicate, with a no-persona baseline.

The smallest honest study: it asks every persona every question R times and reports, per
persona, how long the answers are, next to the run-to-run noise of the same persona; a
Kruskal-Wallis test says whether answer length differs between personas at all.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy import stats as sps

from ..backends.base import Message, Request
from ..errors import ConfigError
from ..runner import Result
from ..spec_types import ResolvedSpec
from ..stats import mean_ci
from ._cells import Condition, cells
from .base import Prompt, Study, Summary, Wave, prompts_from_strings

BASELINE = "baseline"


Question = Prompt


class GridOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    questions: tuple[Question, ...] = Field(min_length=1)
    """Questions: strings or {id, text} mappings."""
    include_baseline: bool = True
    """Also ask with no persona (condition 'baseline')."""

    _strings_are_questions = field_validator("questions", mode="before")(prompts_from_strings)


def words(text: str | None) -> int:
    return len(text.split()) if text else 0


class GridStudy(Study[GridOptions]):
    name = "grid"
    Options = GridOptions

    @classmethod
    def check(cls, resolved: ResolvedSpec) -> None:
        options = cls(resolved).options
        first: dict[str, int] = {}
        for n, q in enumerate(options.questions):
            if q.id in first:
                raise ConfigError(f"question id '{q.id}' appears twice (questions {first[q.id] + 1} and {n + 1}).",
                                  field=f"options.questions.{n}",
                                  fix="give each question a unique id (plain-string questions get q1, q2, ... "
                                  "by position).")
            first[q.id] = n
        if not resolved.personas and not options.include_baseline:
            raise ConfigError("nothing to run: no personas and include_baseline is false.", field="personas",
                              fix="add personas or set options.include_baseline: true.")

    def conditions(self) -> list[Condition]:
        baseline = [Condition(BASELINE)] if self.options.include_baseline else []
        return baseline + [Condition(p.id, p) for p in self.personas]

    def plan(self, done: Sequence[Result]) -> Wave:
        if done:
            return Wave(list, 0)
        conditions = self.conditions()
        models, items, replicates = self.spec.model, self.options.questions, self.spec.replicates
        asked = {q.id: (Message(role="user", content=q.text),) for q in items}  # one Message per question

        def requests() -> Iterator[Request]:
            for c in cells(models, conditions, items, replicates, seed=self.spec.seed):
                yield self.cell_request(c, asked[c.item.id])

        return Wave(requests, len(models) * len(conditions) * len(items) * replicates)

    def tally(self) -> GridTally:
        return GridTally()

    def analyze(self, results: Sequence[Result]) -> Summary:
        tally = self.tally()
        for r in results:
            tally.add(r)
        return self.analyze_tally(tally)

    def analyze_tally(self, tally: GridTally) -> Summary:
        table = []
        stats: dict[str, Any] = {"per_model": {}}
        verdicts = []
        for model in self.spec.model:
            lengths: dict[str, list[int]] = {}
            for cond in (c.name for c in self.conditions()):
                cell = tally.cells.get((model, cond)) or _GridCell()
                lens = cell.words
                lengths[cond] = lens
                est = mean_ci(lens)
                # run-to-run noise: SD of lengths across replicates of the same question, averaged
                sds = [_sd(v) for v in cell.by_question.values() if len(v) > 1]
                table.append({
                    "model": model, "condition": cond, "n": len(lens), "errors": cell.errors,
                    "mean_words": round(est.estimate, 2), "ci_low": round(est.ci_low, 2),
                    "ci_high": round(est.ci_high, 2),
                    "run_to_run_sd": round(float(np.mean(sds)), 2) if sds else None,
                    "distinct_share": round(len(cell.distinct) / len(lens), 3) if lens else None,
                })
            usable = [v for v in lengths.values() if len(v) > 0]
            test: dict[str, Any] = {"test": "Kruskal-Wallis H on answer length (words) across conditions"}
            if len(usable) >= 2 and len({x for v in usable for x in v}) > 1:
                h, p = sps.kruskal(*usable)
                test.update(statistic=float(h), p_value=float(p), groups=len(usable))
                verdicts.append(f"{model}: answer length {'differs' if p < 0.05 else 'does not differ detectably'} "
                                f"between conditions (H={h:.2f}, p={p:.3g}).")
            else:
                test.update(statistic=None, p_value=None, groups=len(usable))
                verdicts.append(f"{model}: not enough varied answers to test.")
            stats["per_model"][model] = {"length_test": test}
        counts = tally.counts()
        notes = [f"{counts['errors']} failed requests are excluded from the means and counted in 'errors'."] \
            if counts["errors"] else []
        return Summary(study=self.name, verdict=" ".join(verdicts), table=table, stats=stats, counts=counts,
                       notes=notes)

    def figures(self, results: Sequence[Result], summary: Summary) -> list[tuple[str, Any]]:
        from ..report.plots import _plt  # noqa: PLC0415

        plt = _plt()
        rows, title = chart_rows(summary.table)
        fig, ax = plt.subplots(figsize=(6, 0.3 * len(rows) + 1.2))
        labels = [f"{r['condition']} ({r['model'].split('/')[-1]})" for r in rows]
        means = [r["mean_words"] for r in rows]
        err = [[max(0.0, (r["mean_words"] - r["ci_low"]) if r["ci_low"] == r["ci_low"] else 0) for r in rows],
               [max(0.0, (r["ci_high"] - r["mean_words"]) if r["ci_high"] == r["ci_high"] else 0) for r in rows]]
        ys = list(range(len(rows)))[::-1]
        ax.errorbar(means, ys, xerr=err, fmt="o", color="#4c72b0", ecolor="#4c72b0", capsize=0, lw=2)
        ax.set_yticks(ys, labels)
        ax.set_xlabel("mean answer length (words), 95% CI")
        fig.tight_layout()
        return [(title, fig)]


CHART_ENDS = 15
"""A chart of more than 2 x CHART_ENDS conditions shows the baseline and the CHART_ENDS shortest and
longest (a 1,000-persona grid drew 1,000 unreadable rows in 10 s, most of its cached re-run); the
table keeps every condition."""


def chart_rows(table: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """The rows the chart draws and its title: every row of a small table; of a large one, the
    baseline rows and the CHART_ENDS shortest and longest means (rows with no answers left out)."""
    title = "Answer length per condition"
    if len(table) <= 2 * CHART_ENDS:
        return table, title
    measured = sorted((r for r in table if r["n"] and r["condition"] != BASELINE), key=lambda r: r["mean_words"])
    ends = measured if len(measured) <= 2 * CHART_ENDS else measured[:CHART_ENDS] + measured[-CHART_ENDS:]
    shown = [r for r in table if r["condition"] == BASELINE] + ends
    return shown, (f"{title}: the {CHART_ENDS} shortest and {CHART_ENDS} longest of {len(table)} "
                   "(every condition is in the table)")


def _sd(values: list[int]) -> float:
    """Sample SD (``np.std(values, ddof=1)``) of a question's few replicate lengths, in plain Python:
    a 100,000-request grid has 20,000 of these lists, and numpy's per-call cost is 10x the sum's."""
    m = sum(values) / len(values)
    return math.sqrt(sum((x - m) * (x - m) for x in values) / (len(values) - 1))


@dataclass
class _GridCell:
    """One (model, condition): each answer's length in words, per question too, and its distinct texts."""

    words: list[int] = field(default_factory=list)
    by_question: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    distinct: set[int] = field(default_factory=set)
    """hash() of each distinct text (not the texts: memory stays a few bytes per answer; two different
    texts share a 64-bit hash with a chance of about n^2 / 2^65, 1e-10 for 100,000 answers)."""
    errors: int = 0


@dataclass
class GridTally:
    """What grid's analysis needs of each result: its length in words, its question, whether its
    text was seen before (the share of distinct answers), whether it failed."""

    cells: dict[tuple[str, str], _GridCell] = field(default_factory=dict)
    results: int = 0
    cached: int = 0
    errors: int = 0

    def counts(self) -> dict[str, int]:
        """The summary's `counts` block (what `count_results` gives for a list)."""
        return {"requests": self.results, "ok": self.results - self.errors, "errors": self.errors,
                "cached": self.cached}

    def add(self, r: Result) -> None:
        self.results += 1
        self.cached += r.cached
        key = (r.request.model, r.request.tags.condition or "")
        cell = self.cells.get(key)
        if cell is None:
            cell = self.cells[key] = _GridCell()
        if not r.ok:
            cell.errors += 1
            self.errors += 1
            return
        n = words(r.text)
        cell.words.append(n)
        cell.by_question[r.request.tags.item or ""].append(n)
        cell.distinct.add(hash(r.text or ""))


STUDY = GridStudy
