"""Ranking mode on any backend that scores text: the best of N given replies under S1.

Each candidate is scored under every persona of the world (true first) with per-token
log-probabilities; S1 (`rsa.sequence_score`) ranks them, S0 (the true persona's length-normalised
log-likelihood) is returned beside it. `score_requests` builds the requests (the listener study
sends them through the cached runner); `rank_scores` ranks from their results; `rank_replies`
does both against one backend directly (for a chat or a script).

    >>> import asyncio
    >>> from personae.backends.fake import FakeBackend
    >>> r = asyncio.run(rank_replies(FakeBackend(), ["I am a baker.", "I am a pilot."],
    ...                              [Message(role="user", content="Hi!")], ["Bread!", "Hello."]))
    >>> r.best in (0, 1) and abs(sum(r.posterior) - 1) < 1e-9
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..backends.base import Backend, Message, Request, Tags
from ..errors import BackendError
from .rsa import RANKING_ALPHA, RANKING_BETA, PriorUpdate, rank, sequence_score

SYSTEM = "Your persona: {persona}"
"""The default system prompt of a world ('{persona}': the persona's sentences)."""


@dataclass(frozen=True)
class Ranking:
    """N candidates ranked by S1 and by S0."""

    best: int
    """S1's pick."""
    s0_best: int
    """S0's pick (the true persona's length-normalised log-likelihood)."""
    s1: tuple[float, ...]
    """Per candidate: the S1 score."""
    s0: tuple[float, ...]
    """Per candidate: the S0 score."""
    posterior: tuple[float, ...]
    """The listener's posterior over the world (true first) given S1's pick."""
    p_true: tuple[float, ...]
    """Per candidate: the listener's posterior of the true persona given it."""


def score_requests(model: str, sheets: Sequence[str], context: Sequence[Message], candidates: Sequence[str], *,
                   system: str = SYSTEM, tags: Tags = Tags()) -> list[Request]:
    """One per-token score request per (world, candidate), world-major (a local backend then reuses
    each world's prompt across its candidates); tags.extra gets 'world' and 'candidate'."""
    out = []
    for w, sheet in enumerate(sheets):
        head = Message(role="system", content=system.replace("{persona}", sheet))
        for c, text in enumerate(candidates):
            out.append(Request(kind="score", model=model, messages=(head, *context), continuation=text, per_token=True,
                               tags=tags.model_copy(update={"extra": {**tags.extra, "world": w, "candidate": c}})))
    return out


def rank_scores(token_logprobs: Sequence[Sequence[Sequence[float]]], *, alpha: float = RANKING_ALPHA,
                beta: float = RANKING_BETA, prior_update: PriorUpdate = "l0") -> Ranking:
    """Rank from `token_logprobs[candidate][world]` (each the candidate's per-token log S0 under that
    world; world 0 is the true persona). Every world must give a candidate the same number of tokens."""
    if not token_logprobs:
        raise ValueError("no candidates to rank")
    seqs = []
    for c, rows in enumerate(token_logprobs):
        if len({len(t) for t in rows}) != 1:
            raise ValueError(f"candidate {c} has different token counts across worlds ({[len(t) for t in rows]}); "
                             "the listener needs one tokenisation")
        seqs.append(sequence_score(np.array(rows, dtype=float), alpha=alpha, beta=beta, prior_update=prior_update))
    best = rank([s.s1 for s in seqs])
    return Ranking(best=best, s0_best=rank([s.s0 for s in seqs]), s1=tuple(s.s1 for s in seqs),
                   s0=tuple(s.s0 for s in seqs), posterior=tuple(float(p) for p in seqs[best].posterior),
                   p_true=tuple(float(s.posterior[0]) for s in seqs))


async def rank_replies(backend: Backend, sheets: Sequence[str], context: Sequence[Message],
                       candidates: Sequence[str], *, alpha: float = RANKING_ALPHA, beta: float = RANKING_BETA,
                       prior_update: PriorUpdate = "l0", system: str = SYSTEM) -> Ranking:
    """Score every candidate under every world on `backend` (uncached) and rank them."""
    if not backend.supports_scoring:
        raise BackendError(f"backend '{backend.model_id}' cannot score text; ranking mode needs log-probabilities.",
                           backend=backend.model_id, fix="use local/..., or openai/... with scoring: prompt_logprobs.")
    reqs = score_requests(backend.model_id, sheets, context, candidates, system=system)
    scores = [await backend.score(r) for r in reqs]
    n = len(candidates)
    per = [[list(scores[w * n + c].token_logprobs or ()) for w in range(len(sheets))] for c in range(n)]
    return rank_scores(per, alpha=alpha, beta=beta, prior_update=prior_update)


__all__ = ["SYSTEM", "Ranking", "rank_replies", "rank_scores", "score_requests"]
