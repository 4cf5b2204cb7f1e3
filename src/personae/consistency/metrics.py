"""Scores of character consistency, as pure functions of verdicts, lines and vectors.

- prompt-to-line: share of a speaker's lines the judge found consistent with the persona sheet;
- line-to-line (arXiv 2511.00222): 1 - conflicts / pairs, over each line and the same speaker's
  earlier lines, from the indices a judge lists (indices that are not earlier own lines are
  counted and ignored, never scored);
- Q&A: share of persona questions answered with the key;
- parroting (MUDI's trap: restating the persona sheet scores as "consistent"): per line the copy
  score (max over persona sentences of ROUGE-L F1, Google's `rouge-score` package, and of the
  embedding cosine) and the relevance to the partner's last line (embedding cosine). The joint
  score multiplies adherence by relevance and by a copy penalty, so restating the sheet cannot
  score high: joint = adherence * max(relevance, 0) * (1 - max(0, copy - tau) / (1 - tau)).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike

from ..dialogue import Dialogue
from ..stats.results import NAN, record_dict


def share_consistent(verdicts: Sequence[bool | None]) -> tuple[float, int]:
    """(share of True among the verdicts that parsed, number that did not parse); NaN if none parsed."""
    known = [v for v in verdicts if v is not None]
    return (float(np.mean(known)) if known else NAN), len(verdicts) - len(known)


@dataclass(frozen=True)
class LineToLine:
    """Line-to-line consistency of one speaker in one dialogue."""

    score: float
    """1 - conflicts / pairs (NaN when the speaker has fewer than two lines)."""
    conflicts: int
    """(line, earlier own line) pairs the judge flagged."""
    pairs: int
    """(line, earlier own line) pairs judged."""
    ignored: int
    """Indices the judge gave that are not an earlier line of this speaker."""

    def as_dict(self) -> dict[str, object]:
        return record_dict(self)


def line_to_line(dialogue: Dialogue, speaker: str, flagged: Mapping[int, Sequence[int]]) -> LineToLine:
    """Score the judge's conflict lists: `flagged[turn]` = turns of earlier lines that line contradicts.

    Only turns of the speaker's own earlier lines count; a line absent from `flagged` was not
    judged (a failed request) and adds no pairs.
    """
    own = [line.turn for line in dialogue.lines_of(speaker)]
    conflicts = pairs = ignored = 0
    for k, turn in enumerate(own):
        if k == 0 or turn not in flagged:
            continue
        earlier = set(own[:k])
        given = set(flagged[turn])
        conflicts += len(given & earlier)
        ignored += len(given - earlier)
        pairs += len(earlier)
    return LineToLine(score=1.0 - conflicts / pairs if pairs else NAN, conflicts=conflicts, pairs=pairs,
                      ignored=ignored)


def qa_score(answers: Sequence[str | None], keys: Sequence[str]) -> tuple[float, int]:
    """(share of answers equal to their key, answers missing or unparsed); letters compared case-blind."""
    if len(answers) != len(keys):
        raise ValueError(f"{len(answers)} answers for {len(keys)} keys")
    known = [(a, k) for a, k in zip(answers, keys) if a is not None]
    if not known:
        return NAN, len(answers)
    return float(np.mean([a.strip().upper() == k.strip().upper() for a, k in known])), len(answers) - len(known)


@lru_cache(maxsize=1)
def _scorer():  # type: ignore[no-untyped-def]
    from rouge_score import rouge_scorer  # noqa: PLC0415

    return rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge_l(candidate: str, reference: str) -> float:
    """ROUGE-L F1 of a line against one persona sentence (Google's rouge-score package)."""
    return float(_scorer().score(reference, candidate)["rougeL"].fmeasure)


def _unit(v: ArrayLike) -> np.ndarray:
    x = np.asarray(v, dtype=float)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def copy_scores(lines: Sequence[str], persona: Sequence[str], line_vectors: ArrayLike | None = None,
                persona_vectors: ArrayLike | None = None) -> np.ndarray:
    """Per line: max over persona sentences of ROUGE-L F1 and (with vectors) of the cosine."""
    if not persona:
        return np.zeros(len(lines))
    lexical = np.array([max(rouge_l(line, s) for s in persona) for line in lines])
    if line_vectors is None or persona_vectors is None:
        return lexical
    cosine = (_unit(line_vectors) @ _unit(persona_vectors).T).max(axis=1)
    return np.maximum(lexical, cosine)


def joint_scores(adherence: ArrayLike, relevance: ArrayLike, copy: ArrayLike, *, tau: float = 0.5) -> np.ndarray:
    """Per line: adherence * max(relevance, 0) * (1 - copy penalty above tau); restating scores low."""
    if not 0 <= tau < 1:
        raise ValueError(f"tau must be in [0, 1), got {tau}")
    a, r, c = (np.asarray(x, dtype=float) for x in (adherence, relevance, copy))
    penalty = np.clip((c - tau) / (1 - tau), 0.0, 1.0)
    return a * np.clip(r, 0.0, 1.0) * (1.0 - penalty)


@dataclass(frozen=True)
class Parroting:
    """Copy, relevance and the joint score of one speaker's lines."""

    copy: tuple[float, ...]
    relevance: tuple[float, ...]
    joint: tuple[float, ...]
    flagged: tuple[int, ...]
    """Turns of lines with copy >= copy_threshold and relevance < relevance_threshold."""
    rate: float
    """Share of the speaker's lines flagged."""
    mean_joint: float

    def as_dict(self) -> dict[str, object]:
        return record_dict(self)


def parroting(dialogue: Dialogue, speaker: str, vectors: Mapping[int, ArrayLike],
              persona_vectors: ArrayLike | None, adherence: Mapping[int, float], *,
              copy_threshold: float = 0.5, relevance_threshold: float = 0.3, tau: float = 0.5) -> Parroting:
    """Parroting of one speaker: `vectors[turn]` embeds each line, `adherence[turn]` in [0, 1] per line.

    Relevance of a line is its cosine with the previous line of another speaker (a line with no
    such line before it, an opening, has relevance 1: nothing to answer).
    """
    own = dialogue.lines_of(speaker)
    sheet = dialogue.speaker(speaker).persona
    lines = [line.text for line in own]
    line_vecs = np.array([vectors[line.turn] for line in own]) if own else None
    copy = copy_scores(lines, sheet, line_vecs, persona_vectors) if own else np.zeros(0)
    relevance = []
    for line in own:
        prev = next((p for p in reversed(dialogue.before(line.turn)) if p.speaker != speaker), None)
        relevance.append(1.0 if prev is None else float(_unit(vectors[line.turn]) @ _unit(vectors[prev.turn])))
    rel = np.array(relevance)
    adh = np.array([adherence.get(line.turn, np.nan) for line in own], dtype=float)
    joint = joint_scores(adh, rel, copy, tau=tau)
    flags = tuple(line.turn for line, c, r in zip(own, copy, rel) if c >= copy_threshold and r < relevance_threshold)
    with np.errstate(all="ignore"):
        mean_joint = float(np.nanmean(joint)) if np.isfinite(joint).any() else NAN
    return Parroting(copy=tuple(map(float, copy)), relevance=tuple(map(float, rel)), joint=tuple(map(float, joint)),
                     flagged=flags, rate=len(flags) / len(own) if own else NAN, mean_joint=mean_joint)
