"""The bias study's instruments: count-table vignettes (Task B) and the items they expand into.

A vignette is a 2x2 table of counts (treated / control x good / bad outcome) shown in an
identity frame (gun control, a minimum wage...) and, with the same numbers, in a neutral frame
(Kahan's skin cream). Each vignette expands into items: frame (identity, neutral) x framing
(original, swapped: the good and bad numbers exchanged, which flips the correct answer) x option
order (good-first, bad-first: so a model that prefers one letter is not read as identity bias).
A persona is *congruent* on an item when the correct reading is the one its identity favours
(favours_good / favours_bad name persona ids); on a neutral item the same mapping is kept as a
pseudo-congruence, so the neutral control measures everything but the identity frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .._loading import check_unique_ids, read_model_file
from ..errors import ConfigError

Frame = Literal["identity", "neutral"]
Framing = Literal["original", "swapped"]
Order = Literal["good-first", "bad-first"]
INSTRUCTION = "Answer with the letter A or B only."


class Wording(BaseModel):
    """The words of one frame of a vignette."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    intro: str = Field(min_length=1)
    """What the study was about (one or two sentences)."""
    treatment: str = Field(min_length=1)
    """The treated row, as a plural noun phrase ('cities that passed the ban')."""
    control: str = Field(min_length=1)
    """The comparison row ('cities that did not pass the ban')."""
    good: str = Field(min_length=1)
    """The outcome the treatment's supporters expect ('crime fell')."""
    bad: str = Field(min_length=1)
    """The other outcome ('crime rose')."""


class Vignette(BaseModel):
    """A Kahan-style count table with an identity frame and, with the same numbers, a neutral one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    """Vignette id (lowercase, digits, '-', '_')."""
    axis: str = Field(min_length=1)
    """The identity dimension it touches (politics, religion, education, gender...)."""
    favours_good: str
    """The persona id whose belief the good reading fits (e.g. democrat for 'crime fell after a ban')."""
    favours_bad: str
    """The persona id whose belief the bad reading fits."""
    counts: tuple[tuple[int, int], tuple[int, int]]
    """[[treated & good, treated & bad], [control & good, control & bad]] in the original framing."""
    identity: Wording
    """The identity frame."""
    neutral: Wording | None = None
    """The neutral frame with the same numbers (the control); None: no control for this vignette."""

    @model_validator(mode="after")
    def _check(self) -> Vignette:
        (a, b), (c, d) = self.counts
        if min(a, b, c, d) < 1:
            raise ValueError("every count must be at least 1")
        if a * (c + d) == c * (a + b):
            raise ValueError("the treated and control rows have the same share of good outcomes, so no answer is "
                             "correct; change a count")
        if self.favours_good == self.favours_bad:
            raise ValueError("favours_good and favours_bad must name two different personas")
        return self


@dataclass(frozen=True)
class NumeracyItem:
    """One question: a vignette in one frame, framing and option order."""

    id: str
    vignette: str
    axis: str
    frame: Frame
    framing: Framing
    order: Order
    text: str
    answer: str
    """The correct letter."""
    favoured: str
    """The persona id whose identity the correct reading fits."""
    disfavoured: str
    """The persona id whose identity the wrong reading fits."""

    letters: str = "AB"

    def congruence(self, persona: str | None) -> bool | None:
        """True when the correct reading fits the persona's identity, False when it goes against it,
        None when the vignette does not touch the persona's identity (or no persona)."""
        if persona == self.favoured:
            return True
        if persona == self.disfavoured:
            return False
        return None


def _cap(s: str) -> str:
    return s[:1].upper() + s[1:]


def render(v: Vignette, frame: Frame, framing: Framing, order: Order) -> tuple[str, str, bool]:
    """The question text, the correct letter, and whether the good reading is the correct one."""
    w = v.identity if frame == "identity" else v.neutral
    if w is None:
        raise ValueError(f"vignette {v.id} has no neutral frame")
    (a, b), (c, d) = v.counts
    if framing == "swapped":
        a, b, c, d = b, a, d, c
    good_correct = a * (c + d) > c * (a + b)
    options = {"good": f"{_cap(w.treatment)} were more likely than {w.control} to see that {w.good}.",
               "bad": f"{_cap(w.treatment)} were more likely than {w.control} to see that {w.bad}."}
    first, second = ("good", "bad") if order == "good-first" else ("bad", "good")
    correct = "good" if good_correct else "bad"
    letter = "A" if first == correct else "B"
    text = (f"{w.intro}\n\n"
            f"| | {w.good} | {w.bad} |\n|---|---|---|\n"
            f"| {_cap(w.treatment)} | {a} | {b} |\n| {_cap(w.control)} | {c} | {d} |\n\n"
            f"Which conclusion do these results support?\nA. {options[first]}\nB. {options[second]}\n{INSTRUCTION}")
    return text, letter, good_correct


def expand(vignettes: Sequence[Vignette], *, neutral: bool = True) -> tuple[NumeracyItem, ...]:
    """Every item of the vignettes, in a fixed order."""
    out = []
    for v in vignettes:
        frames: tuple[Frame, ...] = ("identity", "neutral") if neutral and v.neutral is not None else ("identity",)
        for frame in frames:
            for framing in ("original", "swapped"):
                for order in ("good-first", "bad-first"):
                    text, letter, good = render(v, frame, framing, order)  # type: ignore[arg-type]
                    out.append(NumeracyItem(
                        id=f"{v.id}.{frame}.{framing}.{order}", vignette=v.id, axis=v.axis, frame=frame,
                        framing=framing, order=order, text=text, answer=letter,  # type: ignore[arg-type]
                        favoured=v.favours_good if good else v.favours_bad,
                        disfavoured=v.favours_bad if good else v.favours_good))
    return tuple(out)


class _VignetteFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    vignettes: tuple[Vignette, ...] = Field(min_length=1)


def instrument_path(ref: str, base_dir: Path, builtin: str) -> Path:
    """The file of an instrument option: the built-in data file for 'builtin', else `ref` relative to the spec."""
    if ref == "builtin":
        return Path(str(resources.files("personae") / "data" / "bias" / builtin))
    return Path(ref) if Path(ref).is_absolute() else base_dir / ref


def load_vignettes(ref: str, base_dir: Path, *, field: str = "options.vignettes") -> tuple[Vignette, ...]:
    """'builtin' or a YAML/JSON file in the built-in layout ({vignettes: [...]}), relative to the spec."""
    path = instrument_path(ref, base_dir, "vignettes.yaml")
    if not path.is_file():
        raise ConfigError(f"the vignettes file '{ref}' was not found.", file=str(path), field=field,
                          fix="write 'vignettes: builtin' or give a YAML/JSON file relative to the spec.")
    parsed, lines = read_model_file(path, _VignetteFile, "vignettes")
    check_unique_ids([v.id for v in parsed.vignettes], path, lines, "vignettes", "vignette")
    return parsed.vignettes
