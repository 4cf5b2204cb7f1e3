"""What the consistency judge is asked, and the verdict models its JSON answers must fit.

Every verdict is structured (a JSON schema the backend constrains where it can), never a
substring match of YES/NO: the consistency paper's reference code reads "YES" in two opposite
senses across its prompts; here the field says which sense it has (`contradicts: true`).
"""

from __future__ import annotations

import random
import string
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from ..dialogue import Dialogue, Line

LETTERS = tuple(string.ascii_uppercase)


class _Verdict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True)


class PromptToLine(_Verdict):
    contradicts: bool
    """true if the line contradicts the speaker's persona, false if it does not."""


class LineToLine(_Verdict):
    conflicts: list[int] = Field(max_length=60)
    """the numbers of the speaker's earlier lines that this line contradicts; [] if none."""


class Question(_Verdict):
    question: str = Field(min_length=3, max_length=300)
    """a question about the persona, asked in the second person."""
    options: list[str] = Field(min_length=5, max_length=5)
    """five answer options."""
    key: Literal["A", "B", "C", "D", "E"]
    """the letter of the correct option."""


class Questions(_Verdict):
    questions: list[Question] = Field(min_length=5, max_length=5)
    """five multiple-choice questions whose answers follow from the persona."""


class Answer(_Verdict):
    answer: Literal["A", "B", "C", "D", "E"]
    """the letter of your answer."""


PROMPT_TO_LINE = ("You check role-play. Given a speaker's persona and one line the speaker said, decide whether "
                  "the line contradicts the persona. A line that says nothing about the persona does not "
                  "contradict it.")
LINE_TO_LINE = ("You check role-play. Given a numbered conversation and a new line by one speaker, list the "
                "numbers of that speaker's earlier lines which the new line contradicts.")
WRITE_QUESTIONS = ("You write tests of role-play. From a persona, write five multiple-choice questions, asked in "
                   "the second person ('Where do you live?'), each with five options and the letter of the "
                   "option the persona implies.")
WHO_SPEAKS = ("You check role-play. Given several personas, each with a letter, and one line, name the letter of "
              "the persona who said the line.")


def numbered(lines: Sequence[Line], names: dict[str, str]) -> str:
    return "\n".join(f"[{x.turn}] {names.get(x.speaker, x.speaker)}: {x.text}" for x in lines)


def names_of(d: Dialogue) -> dict[str, str]:
    return {s.id: s.name or s.id for s in d.speakers}


def persona_line_content(sheet: str, line: str, name: str = "the speaker") -> str:
    """What the prompt-to-line judge reads: the persona sheet and one line said by its speaker."""
    return f"Persona of {name}:\n{sheet}\n\nLine said by {name}:\n{line}\n\nDoes the line contradict the persona?"


def prompt_to_line_content(d: Dialogue, line: Line) -> str:
    return persona_line_content(d.speaker(line.speaker).sheet, line.text, names_of(d)[line.speaker])


def line_to_line_content(d: Dialogue, line: Line) -> str:
    names = names_of(d)
    return (f"Conversation so far:\n{numbered(d.before(line.turn), names)}\n\nNew line by {names[line.speaker]}:\n"
            f"[{line.turn}] {line.text}\n\nWhich earlier lines of {names[line.speaker]} does it contradict?")


def questions_content(sheet: str) -> str:
    return f"Persona:\n{sheet}\n\nWrite the five questions."


def usable(question: Question) -> bool:
    """Five different options (a small judge often repeats one option five times)."""
    return len({o.strip().lower() for o in question.options}) == len(question.options)


def shuffled(question: Question, seed: int) -> Question:
    """The question with its options in a seeded order and the key moved with its option, so the
    key's letter carries no position an answerer could exploit (judges put the key at 'A')."""
    rng = random.Random(seed)
    order = list(range(len(question.options)))
    rng.shuffle(order)
    key = order.index(LETTERS.index(question.key))
    return Question(question=question.question, options=[question.options[i] for i in order],
                    key=LETTERS[key])  # type: ignore[arg-type]


def answer_prompt(question: Question) -> str:
    opts = "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(question.options))
    return (f"A quick question about yourself; answer in character.\n{question.question}\n{opts}\n"
            "Reply with the letter of your answer.")


def who_speaks_content(sheets: Sequence[str], line: str) -> str:
    listed = "\n".join(f"{LETTERS[i]}. {s}" for i, s in enumerate(sheets))
    return f"Personas:\n{listed}\n\nLine:\n{line}\n\nWhich persona said it?"


def who_speaks_verdict(n: int) -> type[_Verdict]:
    """A verdict model whose one field takes the first n letters."""
    letters = LETTERS[:n]
    return type(f"WhoSpeaks{n}", (_Verdict,), {"__annotations__": {"speaker": Literal[letters]},  # type: ignore[valid-type]
                                                 "__doc__": "Which persona said the line."})
