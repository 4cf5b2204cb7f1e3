"""Participant transcripts in the Psych-201 layout, and synthetic ones with known answers.

A record is one participant in one experiment: `text` with the participant's responses marked
`<<...>>`, `experiment`, `participant`, and any profile fields (age, gender, education,
questionnaire scores...). Everything else in the record is a profile field.

The synthetic generator writes experiments from explicit rules, so a test knows whether the
profile should help: in `informative` experiments the response is a function of a profile
field; in `uninformative` ones it is a seeded coin flip whatever the profile says.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._loading import read_documents
from .errors import ConfigError

MARK = re.compile(r"<<(.*?)>>", re.DOTALL)
RESERVED = ("text", "experiment", "participant")


@dataclass(frozen=True, eq=False)
class Transcript:
    experiment: str
    participant: str
    text: str
    profile: dict[str, Any]

    def responses(self) -> Iterator[tuple[int, str, str]]:
        """(index, prefix, response): the text before each marked response (earlier responses
        unmarked) and the response itself."""
        pos, prefix = 0, ""
        for j, m in enumerate(MARK.finditer(self.text)):
            prefix += self.text[pos : m.start()]
            yield j, prefix, m.group(1)
            prefix += m.group(1)
            pos = m.end()


def parse_transcript(record: Any, *, file: str | None = None, line: int | None = None) -> Transcript:
    if not isinstance(record, Mapping):
        raise ConfigError(f"a transcript must be a JSON object, got {type(record).__name__}.", file=file, line=line,
                          fix="write one object per line with 'text', 'experiment' and 'participant'.")
    missing = [k for k in RESERVED if k not in record]
    if missing:
        raise ConfigError(f"missing {', '.join(missing)}.", file=file, line=line,
                          fix="each record needs 'text' (responses marked <<...>>), 'experiment', 'participant'.")
    text = str(record["text"])
    if not MARK.search(text):
        raise ConfigError("the text has no response marked <<...>>.", file=file, line=line, field="text",
                          fix="mark each participant response as <<response>>.")
    profile = {k: v for k, v in record.items() if k not in RESERVED}
    return Transcript(str(record["experiment"]), str(record["participant"]), text, profile)


def load_transcripts(path: str | Path) -> tuple[Transcript, ...]:
    path = Path(path)
    out = []
    for data, lines in read_documents(path):
        records = data if isinstance(data, list) else [data]
        for i, rec in enumerate(records):
            out.append(parse_transcript(rec, file=str(path), line=lines.get((i,), lines.get(()))))
    return tuple(out)


# ---------------------------------------------------------------- synthetic data with known answers

_STATEMENTS = ("Taxes on the rich should rise.", "The government should fund public transport.",
               "Unions make workplaces better.", "Immigration helps the economy.",
               "Public schools need more money.", "Healthcare should be free for everyone.")


def _politics(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """Response = agree if the participant's politics is 'liberal', else disagree (profile decides)."""
    recs = []
    for p in range(n):
        politics = rng.choice(["liberal", "conservative"])
        age = rng.randint(18, 80)
        lines = ["You will read statements. Say whether you agree or disagree."]
        for s in rng.sample(_STATEMENTS, 4):
            answer = "agree" if politics == "liberal" else "disagree"
            lines.append(f"Statement: {s}\nYou say: <<{answer}>>")
        recs.append({"text": "\n".join(lines), "experiment": "politics-agreement", "participant": f"p{p:03d}",
                     "age": age, "politics": politics})
    return recs


def _coin(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """Response = a seeded coin flip: the profile carries no information."""
    recs = []
    for p in range(n):
        lines = ["A coin is tossed out of sight. Guess the side."]
        for t in range(4):
            lines.append(f"Toss {t + 1}. Your guess: <<{rng.choice(['heads', 'tails'])}>>")
        recs.append({"text": "\n".join(lines), "experiment": "coin-guess", "participant": f"c{p:03d}",
                     "age": rng.randint(18, 80), "politics": rng.choice(["liberal", "conservative"])})
    return recs


def _age(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """Response = 'yes' to owning a smartphone-era habit if age < 40 (profile decides)."""
    recs = []
    for p in range(n):
        age = rng.randint(18, 80)
        young = age < 40
        qs = [("Do you use video chat every week?", young), ("Do you read a printed newspaper daily?", not young),
              ("Do you stream music?", young)]
        lines = ["Answer each question with yes or no."]
        for q, yes in qs:
            lines.append(f"Q: {q}\nA: <<{'yes' if yes else 'no'}>>")
        recs.append({"text": "\n".join(lines), "experiment": "age-habits", "participant": f"a{p:03d}", "age": age})
    return recs


SYNTHETIC_EXPERIMENTS = {"politics-agreement": True, "age-habits": True, "coin-guess": False}
"""experiment -> whether the profile carries the information that decides the response."""


def synthetic_transcripts(n_participants: int = 12, *, seed: int = 0) -> tuple[Transcript, ...]:
    """Three experiments: two where the profile decides the response, one where it cannot help."""
    rng = random.Random(seed)
    recs = _politics(rng, n_participants) + _age(rng, n_participants) + _coin(rng, n_participants)
    return tuple(parse_transcript(r) for r in recs)
