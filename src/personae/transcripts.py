"""Participant transcripts in the Psych-201 layout, and synthetic ones with known answers.

A record is one participant in one experiment: `text` with the participant's responses marked
`<<...>>`, `experiment`, `participant`, and fields about the participant or the experiment.

Which fields form the profile (the interview block), by rule:
- a field whose value is a list or a mapping is per-trial data (Psych-201's `RTs`, one reaction
  time per trial), not a profile field;
- a field named in `DESIGN_FIELDS` (case and `-`/`_`/spaces ignored: `condition`, `RTs`, `rt`,
  `trial`, `block`, `session`...) is a design variable of the experiment, not a profile field;
- an empty value (null or "") says nothing and is left out;
- every other field (age, gender, education, questionnaire scores...) is a profile field.
`options.profile_fields` in the individuation study names the fields explicitly instead.

The synthetic generator writes experiments from explicit rules, so a test knows whether the
profile should help: in `informative` experiments the response is a function of a profile
field; in `uninformative` ones it is a seeded coin flip whatever the profile says.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._loading import expand_files, read_documents
from .errors import ConfigError

MARK = re.compile(r"<<(.*?)>>", re.DOTALL)
RESERVED = ("text", "experiment", "participant")
DESIGN_FIELDS = frozenset({
    "condition", "conditions", "cond", "treatment", "group", "arm", "counterbalance", "order",
    "trial", "trials", "trial_index", "trial_number", "block", "blocks", "session", "sessions", "round", "rounds",
    "run", "wave", "task", "version", "stimulus", "stimuli", "item", "items",
    "rt", "rts", "reaction_time", "reaction_times", "response_time", "response_times", "duration", "time",
    "choice", "choices", "response", "responses", "reward", "rewards", "outcome", "outcomes", "feedback",
    "accuracy", "correct", "score", "points", "payoff", "seed", "date", "timestamp", "source", "dataset", "study",
})
"""Field names (normalised: lower case, '_' for '-' and spaces) that are design variables or
per-trial measures of an experiment, never profile fields. `score` here is a task score; a
questionnaire score has its own name (`bdi_score`, `stai`)."""


def _normalised(name: str) -> str:
    return re.sub(r"[\s-]+", "_", name.strip().lower())


def not_profile_reason(name: str, value: Any) -> str | None:
    """Why a field is not a profile field ('per-trial list', 'design variable', 'empty'), or None if it is one."""
    if isinstance(value, (list, tuple, Mapping)):
        return "per-trial list" if not isinstance(value, Mapping) else "nested record"
    if _normalised(name) in DESIGN_FIELDS:
        return "design variable"
    if value is None or (isinstance(value, str) and not value.strip()):
        return "empty"
    return None


@dataclass(frozen=True, eq=False)
class Transcript:
    experiment: str
    participant: str
    text: str
    profile: dict[str, Any]
    """The profile fields, by the rule in this module's documentation."""
    other: dict[str, Any] = field(default_factory=dict)
    """The record's other fields (per-trial lists, design variables, empty values)."""
    file: str | None = None
    """The file the record was read from."""
    line: int | None = None
    """The line the record starts on."""

    def fields(self) -> dict[str, Any]:
        """Every field besides text, experiment and participant, in the record's order."""
        return {**self.profile, **self.other}

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
        raise ConfigError(f"missing {', '.join(missing)}.", file=file, line=line, field=missing[0],
                          fix="each record needs 'text' (responses marked <<...>>), 'experiment', 'participant'.")
    text = str(record["text"])
    if not MARK.search(text):
        raise ConfigError("the text has no response marked <<...>>.", file=file, line=line, field="text",
                          fix="mark each participant response as <<response>>.")
    rest = {str(k): v for k, v in record.items() if k not in RESERVED}
    profile = {k: v for k, v in rest.items() if not_profile_reason(k, v) is None}
    other = {k: v for k, v in rest.items() if k not in profile}
    return Transcript(str(record["experiment"]), str(record["participant"]), text, profile, other, file, line)


def load_transcripts(path: str | Path) -> tuple[Transcript, ...]:
    path = Path(path)
    out = []
    for data, lines in read_documents(path):
        records = data if isinstance(data, list) else [data]
        for i, rec in enumerate(records):
            out.append(parse_transcript(rec, file=str(path), line=lines.get((i,), lines.get(()))))
    return tuple(out)


def transcript_files(entries: Sequence[str], base_dir: Path) -> list[Path]:
    """The files named by a list of paths and glob patterns (`*`, `?`, `[...]`, `**`), relative to
    `base_dir`, in the order given (each pattern's matches sorted), each file once."""
    return expand_files(entries, base_dir, field="options.data", example="psych201/*.jsonl")


def load_transcript_files(files: Sequence[Path]) -> tuple[Transcript, ...]:
    """Transcripts of several files (one experiment per file, or several); a participant of an
    experiment may appear only once across them."""
    out: list[Transcript] = []
    seen: dict[tuple[str, str], Transcript] = {}
    for path in files:
        for t in load_transcripts(path):
            first = seen.setdefault((t.experiment, t.participant), t)
            if first is not t:
                raise ConfigError(f"participant '{t.participant}' of experiment '{t.experiment}' appears twice "
                                  f"(first at {first.file}:{first.line}).", file=t.file, line=t.line,
                                  fix="give each participant of an experiment one record, with a unique id.")
            out.append(t)
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
