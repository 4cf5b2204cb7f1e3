"""The imaginary listener (METHODS.md section 5; Kim et al. 2020, arXiv 2004.05816), as pure numpy.

A world is the true persona (row 0 by convention of the callers, but any `true` index works) and
k distractor personas. S0 is the model's distribution with a persona in the prompt:

    log L0(i | h, u<=t) = beta * log S0(u_t | i, h, u<t) + log p_t(i) - logsumexp_i' (same)
    log S1(u_t | i0)    = alpha * log L0(i0 | h, u<=t) + log S0(u_t | i0, h, u<t), normalised over u_t

with the prior update p_{t+1}(i) = L0(i | h, u<=t) ('l0', the default) or uniform ('uniform').

`token_step` is one step of token-level decoding ([n_worlds, vocab] next-token log S0 in, log S1
over the vocabulary and the posterior after the chosen token out). `sequence_score` is ranking
mode: a candidate's per-token log S0 under every world ([n_worlds, T]) in, its length-normalised
S1 score and its listener posterior out. Ranking mode cannot normalise over the vocabulary (only
the candidate's own tokens are scored), so its per-token term is the unnormalised
alpha * log L0 + log S0; every candidate gets the same treatment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

PriorUpdate = Literal["l0", "uniform"]

GENERATION_ALPHA, GENERATION_BETA = 2.0, 0.5
"""METHODS.md defaults for token-level decoding."""
RANKING_ALPHA, RANKING_BETA = 8.0, 1.0
"""METHODS.md defaults for ranking mode."""


def logsumexp(x: np.ndarray, axis: int | None = None, keepdims: bool = False) -> np.ndarray:
    """log(sum(exp(x))) along an axis, in x's own float type.

    Own code rather than scipy.special.logsumexp: that one is 4x slower on the decoder's
    [n_worlds, vocab] array along the worlds (6.6 ms against 1.6 ms in float64, 0.2 ms in float32,
    measured here), and it runs at every generated token. Equal to scipy's to 1e-12 (tested).
    """
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)  # a slice of all -inf gives -inf, not nan
    with np.errstate(divide="ignore"):  # log(0) = -inf for a slice of all -inf, as scipy's
        out = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _floats(x: ArrayLike) -> np.ndarray:
    """x as a float array, keeping float32 (the decoder's) rather than copying it to float64."""
    a = np.asarray(x)
    return a if a.dtype in (np.float32, np.float64) else a.astype(np.float64)


def _check(alpha: float, beta: float, prior_update: str) -> None:
    if not (np.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
    if not (np.isfinite(beta) and beta >= 0):
        raise ValueError(f"beta must be a finite number >= 0, got {beta!r}")
    if prior_update not in ("l0", "uniform"):
        raise ValueError(f"prior_update must be 'l0' or 'uniform', got {prior_update!r}")


def uniform_prior(n_worlds: int) -> np.ndarray:
    """log(1/n) for each of n worlds."""
    if n_worlds < 1:
        raise ValueError(f"a world needs at least one persona, got {n_worlds}")
    return np.full(n_worlds, -np.log(n_worlds))


def _log_prior(log_prior: ArrayLike | None, n_worlds: int) -> np.ndarray:
    if log_prior is None:
        return uniform_prior(n_worlds)
    p = _floats(log_prior)
    if p.shape != (n_worlds,):
        raise ValueError(f"log_prior must have shape ({n_worlds},), got {p.shape}")
    return p - logsumexp(p)


def listener(log_s0: ArrayLike, log_prior: ArrayLike | None = None, *, beta: float = GENERATION_BETA) -> np.ndarray:
    """log L0(i | ..., u) for every world i (axis 0) and every token u (the other axes).

    `log_s0`: [n_worlds] (one token) or [n_worlds, vocab]. The result has the same shape and
    each column is a log posterior over the worlds (it sums to 1 in probability).
    """
    s0 = _floats(log_s0)
    if s0.ndim not in (1, 2) or s0.shape[0] < 1:
        raise ValueError(f"log_s0 must be [n_worlds] or [n_worlds, vocab], got shape {s0.shape}")
    prior = _log_prior(log_prior, s0.shape[0])
    joint = beta * s0 + (prior if s0.ndim == 1 else prior[:, None]).astype(s0.dtype)
    return joint - logsumexp(joint, axis=0, keepdims=True)


@dataclass(frozen=True)
class TokenStep:
    """One step of token-level S1 decoding."""

    log_s1: np.ndarray
    """[vocab] log S1(u | i0, ...), normalised over the vocabulary."""
    log_l0: np.ndarray
    """[n_worlds, vocab] log L0(i | ..., u) for every candidate next token u."""


def token_step(log_s0: ArrayLike, log_prior: ArrayLike | None = None, *, true: int = 0,
               alpha: float = GENERATION_ALPHA, beta: float = GENERATION_BETA) -> TokenStep:
    """S1's next-token distribution for the true world `true` from every world's next-token log S0
    ([n_worlds, vocab]) and the current log prior over the worlds ([n_worlds], default uniform)."""
    _check(alpha, beta, "l0")
    s0 = _floats(log_s0)
    if s0.ndim != 2:
        raise ValueError(f"log_s0 must be [n_worlds, vocab], got shape {s0.shape}")
    if not 0 <= true < s0.shape[0]:
        raise ValueError(f"true must index a world (0..{s0.shape[0] - 1}), got {true}")
    l0 = listener(s0, log_prior, beta=beta)
    raw = alpha * l0[true] + s0[true]
    return TokenStep(log_s1=raw - logsumexp(raw), log_l0=l0)


def next_prior(step: TokenStep, token: int, *, prior_update: PriorUpdate = "l0") -> np.ndarray:
    """The log prior of the next step after `token` was chosen: L0 after it ('l0') or uniform."""
    _check(0.0, 0.0, prior_update)
    n = step.log_l0.shape[0]
    if prior_update == "uniform":
        return uniform_prior(n)
    if not 0 <= token < step.log_l0.shape[1]:
        raise ValueError(f"token must index the vocabulary (0..{step.log_l0.shape[1] - 1}), got {token}")
    return step.log_l0[:, token].copy()


@dataclass(frozen=True)
class SequenceScore:
    """Ranking mode: one candidate scored by S1 (and by S0 for comparison)."""

    s1: float
    """Length-normalised S1 score: mean over tokens of alpha * log L0_t(true) + log S0_t(true)."""
    s0: float
    """Length-normalised S0 score: mean over tokens of log S0_t(true)."""
    posterior: np.ndarray
    """[n_worlds] the listener's posterior given the whole candidate (sums to 1)."""
    n_tokens: int
    """Tokens of the candidate."""


def sequence_score(token_log_s0: ArrayLike, *, true: int = 0, alpha: float = RANKING_ALPHA,
                   beta: float = RANKING_BETA, prior_update: PriorUpdate = "l0",
                   log_prior: ArrayLike | None = None) -> SequenceScore:
    """The S1 score of a candidate from its per-token log S0 under each world ([n_worlds, T]).

    Token t's listener uses the prior p_t (the posterior after token t-1 with 'l0', uniform with
    'uniform'). The posterior returned is the listener's given the whole candidate,
    softmax_i(beta * sum_t log S0_t(i) + log p_0(i)): under 'l0' it is L0 after the last token.
    """
    _check(alpha, beta, prior_update)
    s0 = np.asarray(token_log_s0, dtype=float)
    if s0.ndim != 2 or s0.shape[0] < 1 or s0.shape[1] < 1:
        raise ValueError(f"token_log_s0 must be [n_worlds, T] with T >= 1, got shape {s0.shape}")
    if not np.all(np.isfinite(s0)):
        raise ValueError("token_log_s0 holds a non-finite log-probability")
    if not 0 <= true < s0.shape[0]:
        raise ValueError(f"true must index a world (0..{s0.shape[0] - 1}), got {true}")
    prior = start = _log_prior(log_prior, s0.shape[0])
    total = 0.0
    for t in range(s0.shape[1]):
        l0 = listener(s0[:, t], prior, beta=beta)
        total += alpha * l0[true] + s0[true, t]
        prior = l0 if prior_update == "l0" else uniform_prior(s0.shape[0])
    T = s0.shape[1]
    whole = listener(s0.sum(axis=1), start, beta=beta)  # equals the last L0 under 'l0'
    return SequenceScore(s1=float(total / T), s0=float(s0[true].sum() / T), posterior=np.exp(whole), n_tokens=T)


def rank(scores: ArrayLike) -> int:
    """The index of the best candidate (the first of ties)."""
    x = np.asarray(scores, dtype=float)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"scores must be a non-empty 1-D array, got shape {x.shape}")
    return int(np.argmax(x))


__all__ = ["GENERATION_ALPHA", "GENERATION_BETA", "RANKING_ALPHA", "RANKING_BETA", "PriorUpdate", "SequenceScore",
           "TokenStep", "listener", "next_prior", "rank", "sequence_score", "token_step", "uniform_prior"]
