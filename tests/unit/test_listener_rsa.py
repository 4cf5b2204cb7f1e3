"""The imaginary listener's math (personae.listener.rsa) on toy distributions, and distractor choice.

Properties from METHODS.md section 5 (hypothesis, derandomised). Worked example pinned by hand:
two worlds, vocabulary {a, b}; S0(.|true) = (0.5, 0.5), S0(.|distractor) = (0.9, 0.1), uniform
prior, beta = 1: L0(true | a) = 0.5 / 1.4 = 5/14, L0(true | b) = 0.5 / 0.6 = 5/6. With alpha = 1,
S1(a) is proportional to 0.5 * 5/14 and S1(b) to 0.5 * 5/6, so S1(b) = (5/6) / (5/14 + 5/6) = 0.7.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.special import log_softmax, logsumexp

from personae.listener.distractors import choose_distractors, world
from personae.listener.rsa import listener, next_prior, sequence_score, token_step

FAST = settings(max_examples=60, deadline=None, derandomize=True)
logits = st.floats(-8, 8, allow_nan=False, allow_infinity=False)


@st.composite
def worlds(draw: st.DrawFn, min_worlds: int = 1) -> np.ndarray:
    """[n_worlds, vocab] next-token log S0, each row a distribution."""
    n = draw(st.integers(min_worlds, 4))
    v = draw(st.integers(2, 6))
    return log_softmax(draw(arrays(float, (n, v), elements=logits)), axis=1)


alphas = st.floats(0.0, 10.0, allow_nan=False)
betas = st.floats(0.0, 3.0, allow_nan=False)


def test_worked_example() -> None:
    s0 = np.log([[0.5, 0.5], [0.9, 0.1]])
    step = token_step(s0, alpha=1.0, beta=1.0)
    assert np.exp(step.log_l0[0]) == pytest.approx([5 / 14, 5 / 6])
    assert np.exp(step.log_s1) == pytest.approx([0.3, 0.7])
    assert np.exp(next_prior(step, 1)) == pytest.approx([5 / 6, 1 / 6])
    assert np.exp(next_prior(step, 1, prior_update="uniform")) == pytest.approx([0.5, 0.5])


@FAST
@given(worlds(), betas)
def test_alpha_zero_gives_s0_exactly(s0: np.ndarray, beta: float) -> None:
    step = token_step(s0, alpha=0.0, beta=beta)
    np.testing.assert_allclose(step.log_s1, s0[0], atol=1e-12)


@FAST
@given(worlds(), alphas, betas)
def test_posteriors_and_s1_sum_to_one(s0: np.ndarray, alpha: float, beta: float) -> None:
    step = token_step(s0, alpha=alpha, beta=beta)
    assert math.isclose(float(np.exp(step.log_s1).sum()), 1.0, rel_tol=1e-9)
    np.testing.assert_allclose(np.exp(step.log_l0).sum(axis=0), 1.0, rtol=1e-9)
    for token in range(s0.shape[1]):
        assert math.isclose(float(np.exp(next_prior(step, token)).sum()), 1.0, rel_tol=1e-9)
    seq = sequence_score(s0, alpha=alpha, beta=beta)
    assert math.isclose(float(seq.posterior.sum()), 1.0, rel_tol=1e-9)


@FAST
@given(worlds(), alphas, betas, st.integers(1, 4))
def test_identical_personas_under_a_uniform_prior_leave_s0_unchanged(s0: np.ndarray, alpha: float, beta: float,
                                                                      n: int) -> None:
    same = np.repeat(s0[:1], n, axis=0)
    np.testing.assert_allclose(token_step(same, alpha=alpha, beta=beta).log_s1, s0[0], atol=1e-9)


@FAST
@given(worlds(min_worlds=2), st.floats(0.1, 10.0), st.floats(0.1, 3.0), st.floats(0.5, 4.0))
def test_a_token_only_the_true_persona_favours_gains_probability(s0: np.ndarray, alpha: float, beta: float,
                                                                 boost: float) -> None:
    """Every world shares row 0's distribution except that the true one also boosts token 0."""
    base = np.repeat(s0[:1], s0.shape[0], axis=0)
    raw = base.copy()
    raw[0, 0] += boost
    worlds_ = raw - logsumexp(raw, axis=1, keepdims=True)
    step = token_step(worlds_, alpha=alpha, beta=beta)
    assert step.log_s1[0] > worlds_[0, 0]


@FAST
@given(worlds(min_worlds=2), alphas, betas)
def test_sequence_posterior_under_l0_is_the_last_listener(s0: np.ndarray, alpha: float, beta: float) -> None:
    seq = sequence_score(s0, alpha=alpha, beta=beta, prior_update="l0")
    prior = None
    for t in range(s0.shape[1]):
        prior = listener(s0[:, t], prior, beta=beta)
    np.testing.assert_allclose(seq.posterior, np.exp(prior), atol=1e-9)
    assert seq.s0 == pytest.approx(float(s0[0].mean()))


def test_sequence_score_by_hand() -> None:
    """Two tokens, two worlds, beta = 1, alpha = 2. Token 1: L0(true) = 0.5/(0.5+0.25) = 2/3;
    token 2 with prior (2/3, 1/3): L0(true) = (2/3 * 0.1)/(2/3 * 0.1 + 1/3 * 0.4) = 1/3.
    S1 = mean(2 log 2/3 + log 0.5, 2 log 1/3 + log 0.1); uniform update: token 2's L0 = 0.1/0.5 = 0.2."""
    s0 = np.log([[0.5, 0.1], [0.25, 0.4]])
    seq = sequence_score(s0, alpha=2.0, beta=1.0)
    assert seq.s1 == pytest.approx((2 * math.log(2 / 3) + math.log(0.5) + 2 * math.log(1 / 3) + math.log(0.1)) / 2)
    assert seq.posterior == pytest.approx([1 / 3, 2 / 3])
    flat = sequence_score(s0, alpha=2.0, beta=1.0, prior_update="uniform")
    assert flat.s1 == pytest.approx((2 * math.log(2 / 3) + math.log(0.5) + 2 * math.log(0.2) + math.log(0.1)) / 2)
    assert sequence_score(s0, alpha=0.0).s1 == pytest.approx(seq.s0)


@pytest.mark.parametrize(("call", "message"), [
    (lambda: token_step(np.zeros((2, 3)), alpha=-1.0), "alpha"),
    (lambda: token_step(np.zeros((2, 3)), true=2), "true must index"),
    (lambda: token_step(np.zeros(3)), "n_worlds, vocab"),
    (lambda: sequence_score(np.zeros((2, 0))), "T >= 1"),
    (lambda: sequence_score(np.array([[0.0, -np.inf]])), "non-finite"),
    (lambda: sequence_score(np.zeros((2, 2)), prior_update="l1"), "prior_update"),  # type: ignore[arg-type]
])
def test_bad_arguments_say_what_is_wrong(call, message: str) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match=message):
        call()


# ---------------------------------------------------------------- distractors
def test_random_distractors_are_seeded_and_exclude_the_true_persona() -> None:
    picks = {choose_distractors(3, 10, 2, seed=s) for s in range(30)}
    assert all(3 not in p and len(set(p)) == 2 for p in picks)
    assert choose_distractors(3, 10, 2, seed=7) == choose_distractors(3, 10, 2, seed=7)
    assert len(picks) > 5  # different seeds, different draws
    assert choose_distractors(0, 2, 5) == (1,)  # a small pool gives what it has


def test_nearest_and_farthest_by_cosine() -> None:
    vecs = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [-1.0, 0.0], [2.0, 0.1]])
    # cosine to row 0: row 4 ~0.9988, row 1 ~0.9939, row 2 0, row 3 -1
    assert choose_distractors(0, 5, 2, mode="nearest", vectors=vecs) == (4, 1)
    assert choose_distractors(0, 5, 2, mode="farthest", vectors=vecs) == (3, 2)
    assert world("a", ["b", "a", "c"], 1, mode="nearest", vectors=[[0, 1], [1, 0], [1, 0.1]]) == ("a", "c")
    with pytest.raises(ValueError, match="needs the pool's embedding"):
        choose_distractors(0, 5, 2, mode="nearest")
    with pytest.raises(ValueError, match="all zeros"):
        choose_distractors(0, 2, 1, mode="farthest", vectors=[[0, 0], [1, 0]])


def test_own_logsumexp_equals_scipy_including_empty_columns() -> None:
    """rsa.logsumexp (own code for speed, see its docstring) against scipy.special.logsumexp."""
    from scipy.special import logsumexp as scipy_lse

    from personae.listener.rsa import logsumexp

    rng = np.random.default_rng(3)
    x = rng.normal(scale=8.0, size=(3, 500))
    x[:, 7] = -np.inf  # a token no world can say
    x[1, 9] = -np.inf
    for axis in (0, 1, None):
        np.testing.assert_allclose(logsumexp(x, axis=axis), scipy_lse(x, axis=axis), rtol=0, atol=1e-12)
    np.testing.assert_allclose(logsumexp(x, axis=0, keepdims=True), scipy_lse(x, axis=0, keepdims=True), atol=1e-12)
    assert logsumexp(x.astype(np.float32), axis=0).dtype == np.float32  # the decoder's rows stay float32
    np.testing.assert_allclose(logsumexp(x.astype(np.float32), axis=0), scipy_lse(x, axis=0), atol=1e-4)


def test_token_step_in_float32_matches_float64() -> None:
    rng = np.random.default_rng(4)
    logits = rng.normal(scale=4.0, size=(3, 1000))
    log_s0 = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    a = token_step(log_s0, alpha=2.0, beta=0.5)
    b = token_step(log_s0.astype(np.float32), alpha=2.0, beta=0.5)
    np.testing.assert_allclose(b.log_s1, a.log_s1, atol=1e-4)
    np.testing.assert_allclose(b.log_l0, a.log_l0, atol=1e-4)
    assert int(np.argmax(b.log_s1)) == int(np.argmax(a.log_s1))
