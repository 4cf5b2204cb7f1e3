"""Within-persona vs between-persona dispersion of answers to one item, and its permutation test.

For one item, answers come from several personas, several runs each.
- labels (categorical codes 0..K-1): D_within = mean over personas of the share of run pairs that
  disagree; D_between = mean over persona pairs of the Jensen-Shannon divergence (base 2) of
  their answer distributions.
- numeric: D_within = mean over personas of the mean pairwise |a_r - a_s|; D_between = mean over
  persona pairs of |mean_p - mean_q|.
The permutation test shuffles persona labels among an item's answers (seeded) and recomputes
the ratio D_between / D_within; the null mean of the ratio is reported too, because the two
distances are on different scales and the ratio is not 1 under the null.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike

from ._common import rng_from
from .results import record_dict

Kind = Literal["labels", "numeric"]


def _xlogx_ratio(p: np.ndarray, m: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(p > 0, p * np.log2(np.where(p > 0, p, 1) / np.where(m > 0, m, 1)), 0.0)
    return t.sum(axis=-1)


def _labels_bw(codes: np.ndarray, groups: np.ndarray, n_groups: int, n_cat: int) -> tuple[np.ndarray, np.ndarray]:
    """codes [N]; groups [B, N] -> (between [B], within [B]) for B labellings at once."""
    g = np.eye(n_groups)[groups]                      # [B, N, G]
    a = np.eye(n_cat)[codes]                          # [N, K]
    counts = np.einsum("bng,nk->bgk", g, a)           # [B, G, K]
    n = counts.sum(axis=2)                            # [B, G]
    dist = counts / np.where(n > 0, n, 1)[..., None]
    same = (counts * (counts - 1)).sum(axis=2)
    pairs = n * (n - 1)
    within = np.where(pairs > 0, 1.0 - same / np.where(pairs > 0, pairs, 1), np.nan)
    iu = np.triu_indices(n_groups, 1)
    p, q = dist[:, iu[0]], dist[:, iu[1]]             # [B, P, K]
    m = (p + q) / 2
    jsd = 0.5 * _xlogx_ratio(p, m) + 0.5 * _xlogx_ratio(q, m)
    return jsd.mean(axis=1), np.nanmean(within, axis=1)


def _numeric_bw(x: np.ndarray, groups: np.ndarray, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    b, n_obs = groups.shape
    order = np.lexsort((np.broadcast_to(x, groups.shape), groups), axis=1)   # by group, then value
    gs = np.take_along_axis(groups, order, axis=1)
    xs = x[order]
    counts = np.stack([np.bincount(row, minlength=n_groups) for row in groups])   # [B, G]
    starts = np.cumsum(counts, axis=1) - counts
    rank = np.arange(n_obs)[None, :] - np.take_along_axis(starts, gs, axis=1)
    n_of = np.take_along_axis(counts, gs, axis=1)
    contrib = (2 * rank - n_of + 1) * xs              # sum_i (2i - n + 1) x_(i) = sum_{i<j} |x_i - x_j|
    sums = np.zeros((b, n_groups))
    np.add.at(sums, (np.repeat(np.arange(b), n_obs), gs.ravel()), contrib.ravel())
    pairs = counts * (counts - 1) / 2
    within = np.where(pairs > 0, sums / np.where(pairs > 0, pairs, 1), np.nan)
    totals = np.zeros((b, n_groups))
    np.add.at(totals, (np.repeat(np.arange(b), n_obs), groups.ravel()), np.broadcast_to(x, groups.shape).ravel())
    means = totals / np.where(counts > 0, counts, 1)
    iu = np.triu_indices(n_groups, 1)
    between = np.abs(means[:, iu[0]] - means[:, iu[1]]).mean(axis=1)
    return between, np.nanmean(within, axis=1)


def between_within(answers: ArrayLike, groups: ArrayLike, *, kind: Kind, n_categories: int | None = None
                   ) -> tuple[float, float]:
    """(D_between, D_within) for one item's answers and their persona labels."""
    _, codes = np.unique(np.asarray(groups), return_inverse=True)
    b, w = _batch(np.asarray(answers), codes[None, :], int(codes.max()) + 1, kind, n_categories)
    return float(b[0]), float(w[0])


def _batch(answers: np.ndarray, groups: np.ndarray, n_groups: int, kind: Kind, n_categories: int | None
           ) -> tuple[np.ndarray, np.ndarray]:
    """groups: [B, N] integer codes 0..n_groups-1, one row per labelling."""
    if kind == "labels":
        k = int(n_categories or (int(answers.max()) + 1))
        return _labels_bw(answers.astype(int), groups, n_groups, k)
    return _numeric_bw(answers.astype(float), groups, n_groups)


@dataclass(frozen=True)
class DispersionTest:
    """Between vs within dispersion for one item, with a permutation test."""

    d_between: float
    d_within: float
    ratio: float
    """D_between / D_within (NaN when D_within is 0)."""
    null_ratio_mean: float
    """Mean ratio under shuffled persona labels: what 'no persona effect' looks like."""
    p_value: float
    """Share of shuffles with a ratio at least as large, (1 + k) / (1 + n_permutations)."""
    n: int
    n_groups: int
    n_permutations: int

    def as_dict(self) -> dict[str, Any]:
        return record_dict(self)


def _ratio(b: np.ndarray, w: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(w > 0, b / np.where(w > 0, w, 1), np.where(b > 0, np.inf, np.nan))


def dispersion_test(answers: ArrayLike, groups: ArrayLike, *, kind: Kind, seed: int | np.random.Generator,
                    n_permutations: int = 2000, n_categories: int | None = None) -> DispersionTest:
    """Permutation test of D_between / D_within: are personas further apart than runs of one persona?

    Own code rather than ``scipy.stats.permutation_test``: the ratio is infinite when no persona's
    runs differ, and scipy's relative tie tolerance makes an infinite observed statistic count as
    more extreme than every null value (p = 1 / (n + 1) even when half the null is infinite).
    """
    x = np.asarray(answers)
    g = np.asarray(groups)
    if x.ndim != 1 or g.shape != x.shape:
        raise ValueError("answers and groups must be 1-D arrays of the same length")
    if len(np.unique(g)) < 2:
        raise ValueError("need answers from at least two personas")
    if n_permutations < 1:
        raise ValueError("n_permutations must be >= 1")
    _, gcodes = np.unique(g, return_inverse=True)
    n_groups = int(gcodes.max()) + 1
    b, w = _batch(x, gcodes[None, :], n_groups, kind, n_categories)
    observed = float(_ratio(b, w)[0])
    rng = rng_from(seed)
    perms = rng.permuted(np.broadcast_to(gcodes, (n_permutations, gcodes.size)), axis=1)
    nb, nw = _batch(x, perms, n_groups, kind, n_categories)
    null = _ratio(nb, nw)
    finite = null[np.isfinite(null)]
    if np.isnan(observed):
        p = 1.0
    else:
        p = float((1 + np.sum(null >= observed - 1e-12)) / (1 + n_permutations))
    return DispersionTest(d_between=float(b[0]), d_within=float(w[0]), ratio=observed,
                          null_ratio_mean=float(finite.mean()) if finite.size else float("nan"), p_value=p,
                          n=int(x.size), n_groups=n_groups, n_permutations=n_permutations)


def variance_shares(answers: ArrayLike, groups: ArrayLike, *, kind: Kind, n_categories: int | None = None
                    ) -> dict[str, float]:
    """Share of answer variance between personas: eta^2 and the one-way random-effects share (ICC(1)).

    Numeric answers: the one-way ANOVA on the values. Labels: the same sums of squares added over
    the one-hot indicator columns (CATANOVA, Light & Margolin 1971), so the total is the Gini
    variation of the labels.
    """
    x = np.asarray(answers)
    _, g = np.unique(np.asarray(groups), return_inverse=True)
    n, k = x.size, int(g.max()) + 1
    if n <= k or k < 2:
        raise ValueError("need at least two personas and more answers than personas")
    cols = np.eye(int(n_categories or x.max() + 1))[x.astype(int)] if kind == "labels" else x.astype(float)[:, None]
    sizes = np.bincount(g, minlength=k).astype(float)
    means = np.stack([np.bincount(g, weights=cols[:, j], minlength=k) for j in range(cols.shape[1])], 1) / sizes[:, None]
    grand = cols.mean(axis=0)
    ss_between = float((sizes[:, None] * (means - grand) ** 2).sum())
    ss_total = float(((cols - grand) ** 2).sum())
    ss_within = ss_total - ss_between
    ms_b, ms_w = ss_between / (k - 1), ss_within / (n - k)
    n0 = (n - (sizes**2).sum() / n) / (k - 1)
    s2_b = max(0.0, (ms_b - ms_w) / n0)
    return {"eta_squared": ss_between / ss_total if ss_total > 0 else float("nan"),
            "share_between": s2_b / (s2_b + ms_w) if (s2_b + ms_w) > 0 else float("nan"),
            "icc1": (ms_b - ms_w) / (ms_b + (n0 - 1) * ms_w) if (ms_b + (n0 - 1) * ms_w) > 0 else float("nan")}


@dataclass(frozen=True)
class DistanceRatioTest:
    """Mean distance between groups over mean distance within groups, pooled over strata."""

    between: float
    within: float
    ratio: float
    null_ratio_mean: float
    p_value: float
    strata: int
    n_permutations: int

    def as_dict(self) -> dict[str, Any]:
        return record_dict(self)


def _between_within_sums(d: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """d [n, n]; labels [B, n] -> per labelling (mean between-group distance, mean within-group distance)."""
    same = labels[:, :, None] == labels[:, None, :]
    off = ~np.eye(d.shape[0], dtype=bool)[None]
    w_mask, b_mask = same & off, ~same
    w = (d[None] * w_mask).sum(axis=(1, 2)) / np.maximum(w_mask.sum(axis=(1, 2)), 1)
    b = (d[None] * b_mask).sum(axis=(1, 2)) / np.maximum(b_mask.sum(axis=(1, 2)), 1)
    return b, w


def distance_ratio_test(distances: list[np.ndarray], labels: list[ArrayLike], *, seed: int | np.random.Generator,
                        n_permutations: int = 2000) -> DistanceRatioTest:
    """Are answers of different groups (personas) further apart than answers within a group (runs)?

    One distance matrix per stratum (e.g. per prompt) with the group label of each row. The
    statistic is sum_s between_s / sum_s within_s; labels are shuffled within each stratum (own
    code: scipy.stats.permutation_test cannot restrict a permutation to strata).
    """
    if len(distances) != len(labels) or not distances:
        raise ValueError("give one label array per distance matrix, and at least one stratum")
    rng = rng_from(seed)
    obs_b = obs_w = 0.0
    null_b = np.zeros(n_permutations)
    null_w = np.zeros(n_permutations)
    for d, lab in zip(distances, labels):
        d = np.asarray(d, dtype=float)
        _, codes = np.unique(np.asarray(lab), return_inverse=True)
        if d.shape != (codes.size, codes.size):
            raise ValueError("each distance matrix must be n x n for its n labels")
        b, w = _between_within_sums(d, codes[None, :])
        obs_b, obs_w = obs_b + b[0], obs_w + w[0]
        perms = rng.permuted(np.broadcast_to(codes, (n_permutations, codes.size)), axis=1)
        pb, pw = _between_within_sums(d, perms)
        null_b += pb
        null_w += pw
    ratio = obs_b / obs_w if obs_w > 0 else float("nan")
    null = np.where(null_w > 0, null_b / np.where(null_w > 0, null_w, 1), np.nan)
    p = float((1 + np.sum(null >= ratio - 1e-12)) / (1 + n_permutations)) if np.isfinite(ratio) else 1.0
    return DistanceRatioTest(between=float(obs_b) / len(distances), within=float(obs_w) / len(distances),
                             ratio=float(ratio),
                             null_ratio_mean=float(np.nanmean(null)), p_value=p, strata=len(distances),
                             n_permutations=n_permutations)
