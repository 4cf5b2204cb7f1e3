"""The declarative experiment format of the replicate study (METHODS.md section 9).

One YAML (or JSON) file per published experiment:

    id: anchoring-everest
    title: Anchoring on a high or low number (height of Mount Everest)
    citation: "Jacowitz & Kahneman (1995); Many Labs 1, Klein et al. (2014)"
    design: between                   # each participant sees one condition; within: all of them
    conditions:
      - {name: high, text: "Is it taller or shorter than 45,500 feet?"}
      - {name: low, text: "Is it taller or shorter than 2,000 feet?"}
    measure: {kind: numeric, question: "How tall is Mount Everest, in feet?", min: 0, max: 100000}
    test: {kind: welch_t, a: high, b: low}   # the effect is a minus b (Cohen's d)
    original: {n: 1321, effect: 0.93, ci: [0.8, 1.06], p: 1.0e-10, metric: d}
    sample: {n: 100, age: {mean: 21, sd: 4}, gender: {female: 0.6, male: 0.4}}

The original effect is signed in the test's own orientation (for welch_t, positive: a > b), so
"the original direction" is the sign of `original.effect`. Everything is checked at load time
(`load_experiment`): a typo names the file, line, field and fix.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .._loading import line_for, read_documents, suggest, validation_to_config_error
from ..errors import ConfigError

BUILTIN_DIR = Path(__file__).resolve().parents[1] / "data" / "replicate"

TestKind = Literal["welch_t", "paired_t", "anova", "chi_square", "logistic", "linear", "correlation"]
Metric = Literal["d", "dz", "eta2", "partial_eta2", "phi", "cramers_v", "log_odds", "slope", "r"]
METRIC_OF: dict[str, str] = {"welch_t": "d", "paired_t": "dz", "anova": "eta2", "logistic": "log_odds",
                             "linear": "slope", "correlation": "r"}
"""The effect metric each planned test reports (chi_square: phi for a 2 x 2 table, else Cramer's V;
anova within subjects: partial eta squared)."""
UNSIGNED_METRICS = ("eta2", "partial_eta2", "cramers_v")
"""Metrics without a direction: success is any p < .05 (with an anova `order`, the order)."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExpCondition(_Frozen):
    """One condition (arm) of the experiment."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=40)
    """Its label, used by the test (a, b, order)."""
    text: str = Field(min_length=1)
    """The stimulus the participant reads before the question."""
    value: float | None = None
    """A number for the condition (an anchor's size), the x of linear / logistic / correlation with x: value."""


class Measure(_Frozen):
    """The dependent measure: what is asked after the stimulus, and how the answer is read."""

    kind: Literal["likert", "choice", "numeric"]
    """likert: an integer on `scale`; choice: one of `options`; numeric: a number within min..max."""
    question: str = Field(min_length=1)
    """The question asked after the stimulus."""
    scale: tuple[int, int] | None = None
    """likert: the lowest and highest points, e.g. [1, 7]."""
    labels: tuple[str, str] | None = None
    """likert: what the two ends mean, e.g. ['not at all', 'very much'] (shown to the participant)."""
    options: tuple[str, ...] | None = None
    """choice: the answers allowed (at least two, distinct)."""
    min: float | None = None
    """numeric: the smallest answer accepted (smaller ones are parse failures)."""
    max: float | None = None
    """numeric: the largest answer accepted."""

    @model_validator(mode="after")
    def _fits_kind(self) -> Measure:
        if self.kind == "likert":
            if self.scale is None or self.scale[1] - self.scale[0] < 1:
                raise ValueError("a likert measure needs 'scale: [low, high]' with high > low")
        if self.kind == "choice" and (self.options is None or len(set(self.options)) < 2
                                      or len(set(self.options)) != len(self.options)):
            raise ValueError("a choice measure needs at least two distinct 'options'")
        if self.kind == "numeric" and self.min is not None and self.max is not None and self.max <= self.min:
            raise ValueError("a numeric measure needs max > min")
        wrong = [f for f, kinds in (("scale", "likert"), ("labels", "likert"), ("options", "choice"),
                                    ("min", "numeric"), ("max", "numeric"))
                 if getattr(self, f) is not None and self.kind != kinds]
        if wrong:
            raise ValueError(f"'{wrong[0]}' belongs to a {dict(scale='likert', labels='likert', options='choice', min='numeric', max='numeric')[wrong[0]]} measure, not {self.kind}")
        return self


class PlannedTest(_Frozen):
    """The planned test and the comparison it makes."""

    kind: TestKind
    """welch_t / paired_t (a vs b), anova (all conditions), chi_square (condition x answer),
    logistic (answer == target ~ x), linear (answer ~ x), correlation (answer with x)."""
    a: str | None = None
    """welch_t, paired_t, chi_square, logistic, linear: the condition whose effect is positive when higher."""
    b: str | None = None
    """... the condition it is compared with."""
    target: str | None = None
    """chi_square and logistic: the option whose share is compared (a 2 x 2 table of target vs the rest)."""
    x: Literal["condition", "value", "age"] = "condition"
    """linear, logistic, correlation: the predictor; 'condition' (1 for a, 0 for b), the conditions'
    'value', or the participant's age."""
    order: tuple[str, ...] | None = None
    """anova: the conditions from the highest mean to the lowest in the original; the synthetic
    highest and lowest must match for success (none: any significant difference counts)."""


class Reported(_Frozen):
    """A published result: the original study or a large replication."""

    n: int | None = Field(default=None, ge=2)
    """Participants analysed."""
    effect: float | None = None
    """The effect size in `metric`, signed in the test's orientation (welch_t: positive means a > b)."""
    ci: tuple[float, float] | None = None
    """Its 95% CI, if reported."""
    p: float | None = Field(default=None, gt=0, le=1)
    """The p-value of the planned test."""
    metric: Metric
    """The effect size's metric; it must be the one the planned test reports (`METRIC_OF`)."""
    source: str | None = None
    """Where the number comes from (for a replication: 'Many Labs 1, Klein et al. 2014')."""
    found_effect: bool | None = None
    """For a replication whose numbers are not at hand: what its source concluded (false: no
    effect). With it, effect, p and n may be left out; the experiment then counts as a null (or
    not) by this, and has no reference effect to cover or compare with."""

    @model_validator(mode="after")
    def _numbers_or_a_conclusion(self) -> Reported:
        if self.found_effect is None and (self.effect is None or self.p is None or self.n is None):
            raise ValueError("give n, effect and p, or (for a replication whose numbers you do not have) "
                             "found_effect: true/false with its source")
        if self.found_effect is not None and self.source is None:
            raise ValueError("found_effect needs the source that concluded it")
        return self

    @property
    def is_null(self) -> bool:
        """No effect: as the source concluded, else p >= .05."""
        if self.found_effect is not None:
            return not self.found_effect
        return self.p is not None and self.p >= 0.05


class Marginal(_Frozen):
    """A numeric marginal: a normal distribution cut to [min, max], rounded."""

    mean: float
    """Mean."""
    sd: float = Field(gt=0)
    """Standard deviation."""
    min: float = 18
    """Smallest value drawn."""
    max: float = 90
    """Largest value drawn."""


class Sample(_Frozen):
    """The original sample's demographic marginals; participants are drawn from them independently."""

    n: int = Field(default=100, ge=4, le=100_000)
    """Participants simulated (spec option `n` overrides it for a quicker run)."""
    age: Marginal | None = None
    """Age in years."""
    gender: dict[str, float] | None = None
    """Shares of each gender ('woman': 0.6, 'man': 0.4); normalised."""
    education: dict[str, float] | None = None
    """Shares of the highest education reached."""
    nationality: dict[str, float] | None = None
    """Shares of nationalities."""
    occupation: dict[str, float] | None = None
    """Shares of occupations ('student': 1.0 for a student sample)."""
    politics: dict[str, float] | None = None
    """Shares of political identities."""

    @model_validator(mode="after")
    def _shares(self) -> Sample:
        for name in ("gender", "education", "nationality", "occupation", "politics"):
            shares = getattr(self, name)
            if shares is not None and (not shares or any(v < 0 for v in shares.values()) or sum(shares.values()) <= 0):
                raise ValueError(f"'{name}' needs non-negative shares that add up to more than 0")
        return self


class Experiment(_Frozen):
    """One published experiment, as the replicate study runs and scores it."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=60)
    """Unique id (lowercase letters, digits, '-', '_', '.')."""
    title: str = Field(min_length=1)
    """What the experiment shows, in a line."""
    citation: str = Field(min_length=1)
    """The original paper (and the replication, if any)."""
    design: Literal["between", "within"] = "between"
    """between: each participant sees one condition (assigned in turn, shuffled); within: all, in a seeded order."""
    instructions: str = "You are taking part in a short study. Read the text and answer the question."
    """What the participant is told before the stimulus."""
    conditions: tuple[ExpCondition, ...] = Field(min_length=2)
    """The conditions, at least two."""
    measure: Measure
    """The dependent measure."""
    test: PlannedTest
    """The planned test."""
    original: Reported
    """The original result."""
    replication: Reported | None = None
    """A large replication's result, where one exists (Many Labs, Registered Replication Reports)."""
    sample: Sample = Sample()
    """The original sample's marginals."""
    notes: str | None = None
    """Anything a reader should know (how the stimulus differs from the original's)."""

    @cached_property
    def condition_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.conditions)

    @property
    def metric(self) -> str:
        """The metric the planned test reports for this experiment."""
        if self.test.kind == "chi_square":
            return "phi" if self.test.target is not None else "cramers_v"
        if self.test.kind == "anova" and self.design == "within":
            return "partial_eta2"
        return METRIC_OF[self.test.kind]

    @property
    def signed(self) -> bool:
        """Whether the effect has a direction (eta2, partial eta2 and Cramer's V do not)."""
        return self.metric not in UNSIGNED_METRICS

    @property
    def original_is_null(self) -> bool:
        """The original (or, where one exists, the large replication) found no effect (p >= .05)."""
        return (self.replication or self.original).is_null

    @property
    def reference(self) -> Reported:
        """The result the synthetic one is compared with: the large replication where one exists."""
        return self.replication or self.original


def _problem(exp: Experiment) -> tuple[str, str, str] | None:
    """(field, message, fix) of the first inconsistency between the parts of an experiment."""
    t, names = exp.test, exp.condition_names
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        return "conditions", f"condition '{dup}' appears twice", "give each condition its own name."
    for field in ("a", "b"):
        value = getattr(t, field)
        if value is not None and value not in names:
            return (f"test.{field}", f"'{value}' is not a condition.{suggest(value, names)}",
                    f"use one of {', '.join(names)}.")
    needs_ab = t.kind in ("welch_t", "paired_t") or (t.kind in ("logistic", "linear", "correlation")
                                                      and t.x == "condition")
    if needs_ab and (t.a is None or t.b is None or t.a == t.b):
        return "test", f"{t.kind} compares two conditions, 'a' and 'b'", "name two different conditions as a and b."
    if t.kind == "chi_square" and t.target is not None and (t.a is None or t.b is None):
        return "test", "a chi_square with a target compares two conditions", "name them as a and b, or drop target."
    if t.kind == "paired_t" and exp.design != "within":
        return "test.kind", "paired_t needs a within-subjects design", "write 'design: within', or use welch_t."
    if exp.design == "within" and t.kind not in ("paired_t", "correlation", "anova"):
        return ("test.kind", f"a within-subjects design is tested with paired_t, anova or correlation, not {t.kind}",
                "use paired_t (two conditions), anova (three or more), or 'design: between'.")
    if t.kind in ("chi_square", "logistic") and exp.measure.kind != "choice":
        return "measure.kind", f"{t.kind} needs a choice measure", "use 'kind: choice' with options."
    if t.kind in ("welch_t", "paired_t", "anova", "linear", "correlation") and exp.measure.kind == "choice":
        return "measure.kind", f"{t.kind} needs a likert or numeric measure", "use chi_square or logistic for a choice."
    if t.kind == "logistic" and t.target is None:
        return "test.target", "logistic needs the option it predicts", "add 'target: OPTION'."
    if t.target is not None and t.target not in (exp.measure.options or ()):
        return ("test.target", f"'{t.target}' is not an option.{suggest(t.target, exp.measure.options or ())}",
                f"use one of {', '.join(exp.measure.options or ())}.")
    if t.x == "value" and any(c.value is None for c in exp.conditions):
        return "test.x", "x: value needs a 'value' on every condition", "give each condition a value."
    if t.order is not None and sorted(t.order) != sorted(names):
        return "test.order", "order must name every condition once", f"list {', '.join(names)} in some order."
    if exp.original.found_effect is not None or exp.original.effect is None:
        return ("original", "the original study needs its own numbers (n, effect, p); found_effect is for a "
                "replication whose numbers are not at hand", "give the original's n, effect and p.")
    for field in ("original", "replication"):
        rep = getattr(exp, field)
        if rep is not None and rep.metric != exp.metric:
            return (f"{field}.metric", f"{t.kind} reports '{exp.metric}', and the {field} effect is in '{rep.metric}'",
                    f"convert the published effect to {exp.metric} (and name the conversion in notes).")
        if rep is not None and rep.ci is not None and rep.effect is not None and not rep.ci[0] <= rep.effect <= rep.ci[1]:
            return f"{field}.ci", f"the CI {list(rep.ci)} does not contain the effect {rep.effect}", "check the numbers."
    return None


def parse_experiment(data: object, *, file: str, lines: dict | None = None) -> Experiment:
    """An Experiment from one parsed document, or a ConfigError naming the file, line, field and fix."""
    try:
        exp = Experiment.model_validate(data)
    except ValidationError as exc:
        raise validation_to_config_error(exc, Experiment, file=file, lines=lines) from None
    problem = _problem(exp)
    if problem is not None:
        field, message, fix = problem
        loc = tuple(int(p) if p.isdigit() else p for p in field.split("."))
        raise ConfigError(message if message.endswith(("?", ".")) else message + ".", file=file, line=line_for(lines or {}, loc), field=field, fix=fix)
    return exp


def load_experiment(path: str | Path) -> Experiment:
    """Read one experiment file (YAML or JSON)."""
    path = Path(path)
    docs = read_documents(path)
    data, lines = docs[0]
    return parse_experiment(data, file=str(path), lines=lines)


def builtin_ids() -> tuple[str, ...]:
    """The ids of the built-in suite (one file each under data/replicate)."""
    return tuple(sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml")))


def resolve_experiments(refs: tuple[str, ...], base_dir: Path, *, field: str = "options.experiments"
                        ) -> tuple[Experiment, ...]:
    """'builtin' (the whole suite), 'builtin:ID' or a file path (relative to the spec) -> experiments."""
    out: list[Experiment] = []
    for ref in refs:
        if ref == "builtin":
            out.extend(load_experiment(BUILTIN_DIR / f"{i}.yaml") for i in builtin_ids())
        elif ref.startswith("builtin:"):
            name = ref.split(":", 1)[1]
            if name not in builtin_ids():
                raise ConfigError(f"no built-in experiment '{name}'.{suggest(name, builtin_ids())}", field=field,
                                  fix=f"use one of {', '.join(builtin_ids())}.")
            out.append(load_experiment(BUILTIN_DIR / f"{name}.yaml"))
        else:
            path = (base_dir / ref) if not Path(ref).is_absolute() else Path(ref)
            if not path.is_file():
                raise ConfigError(f"the experiment file '{ref}' was not found.", field=field,
                                  fix="give paths relative to the spec, or 'builtin:ID'.")
            out.append(load_experiment(path))
    ids = [e.id for e in out]
    dup = next((i for i in ids if ids.count(i) > 1), None)
    if dup is not None:
        raise ConfigError(f"experiment '{dup}' is listed twice.", field=field, fix="list each experiment once.")
    return tuple(out)
