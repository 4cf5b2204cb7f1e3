"""Power and sample size for a paired item design with K replicates per (item, condition).

Model. Each item q has a true accuracy under baseline (mean p0) and under the condition (mean
p1 = p0 + delta); each is observed through K Bernoulli replicates and the analysis compares the
per-item accuracies a(q, c) - a(q, baseline) with a paired test. With v = p (1 - p),

    Var(d_q) = icc * (v0 + v1 - 2 r sqrt(v0 v1)) + (1 - icc) * (v0 + v1) / K

where ``icc`` is the correlation of two replicates of the same item in the same condition (the
share of Bernoulli variance that lies between items) and ``r`` = ``item_corr`` is the correlation
of an item's true accuracies across the two conditions. The first term is the item-level
heterogeneity that replicates cannot average away: more replicates help only until it dominates
(the design effect 1 + (K - 1) icc per condition). r = 0 (the default) is conservative; a pilot
run's correlation of per-item accuracies across conditions gives a better r.

Power is that of the paired (one-sample) t test on d_q with effect size delta / sd(d_q), from the
noncentral t by statsmodels' ``TTestPower.power``; the sample size is the smallest whole number of
items reaching the target. The variance model above is own code: statsmodels' power classes take
an effect size, and none models replicates nested in items. With K = 1 and r = 0, Var(d_q) = v0 + v1 and the result
matches two independent proportions (statsmodels NormalIndPower with effect size
delta / sqrt((v0 + v1) / 2)) up to the t-vs-normal difference. The Wilcoxon test and bootstrap
CI used in the analysis have close to the t test's power for such data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize
from scipy import stats as sps

from .results import record_dict


@dataclass(frozen=True)
class PowerResult:
    """Design inputs with the number of items and the power it gives."""

    n_items: int
    power: float
    p0: float
    delta: float
    k: int
    icc: float
    item_corr: float
    alpha: float
    alternative: str
    sd_diff: float
    """SD of a per-item accuracy difference under the model."""
    effect_size: float
    """|delta| / sd_diff (Cohen's d_z of the per-item differences)."""
    method: str = "paired t test on per-item accuracy differences (noncentral t)"

    def as_dict(self) -> dict[str, Any]:
        return record_dict(self)


def paired_sd_diff(p0: float, delta: float, *, k: int = 1, icc: float = 0.0, item_corr: float = 0.0) -> float:
    """SD of the per-item accuracy difference under the model in the module docstring."""
    if not 0 < p0 < 1 or not 0 < p0 + delta < 1:
        raise ValueError(f"p0 and p0 + delta must lie in (0, 1), got p0={p0}, delta={delta}")
    if isinstance(k, bool) or int(k) != k or k < 1:
        raise ValueError(f"k (replicates per item and condition) must be a positive integer, got {k!r}")
    if not 0 <= icc <= 1:
        raise ValueError(f"icc must lie in [0, 1], got {icc}")
    if not -1 <= item_corr <= 1:
        raise ValueError(f"item_corr must lie in [-1, 1], got {item_corr}")
    v0, v1 = p0 * (1 - p0), (p0 + delta) * (1 - p0 - delta)
    var = icc * (v0 + v1 - 2 * item_corr * np.sqrt(v0 * v1)) + (1 - icc) * (v0 + v1) / k
    return float(np.sqrt(max(var, 0.0)))


def _t_power(effect_size: float, n: float, alpha: float, alternative: str) -> float:
    """Power of the one-sample t test: ``statsmodels.stats.power.TTestPower().power``.

    Where statsmodels returns NaN (scipy.special's noncentral t fails for noncentrality
    effect_size * sqrt(n) above ~8 at large n, where the power exceeds 0.9999), the normal
    approximation of the same test is used instead (own code).
    """
    from statsmodels.stats.power import TTestPower  # noqa: PLC0415

    power = float(TTestPower().power(effect_size=effect_size, nobs=n, alpha=alpha,
                                     alternative="two-sided" if alternative == "two-sided" else "larger"))
    if np.isfinite(power):
        return power
    nc = effect_size * np.sqrt(n)
    if alternative == "two-sided":
        crit = sps.norm.isf(alpha / 2)
        return float(sps.norm.sf(crit - nc) + sps.norm.cdf(-crit - nc))
    return float(sps.norm.sf(sps.norm.isf(alpha) - nc))


def _check(alpha: float, alternative: str) -> None:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if alternative not in ("two-sided", "one-sided"):
        raise ValueError(f"alternative must be 'two-sided' or 'one-sided', got {alternative!r}")


def paired_power(n_items: int, p0: float, delta: float, *, k: int = 1, icc: float = 0.0,
                 item_corr: float = 0.0, alpha: float = 0.05, alternative: str = "two-sided") -> PowerResult:
    """Power of the paired item design with ``n_items`` items (module docstring has the model)."""
    _check(alpha, alternative)
    if isinstance(n_items, bool) or int(n_items) != n_items or n_items < 2:
        raise ValueError(f"n_items must be an integer >= 2, got {n_items!r}")
    if delta == 0:
        raise ValueError("delta must be non-zero")
    sd = paired_sd_diff(p0, delta, k=k, icc=icc, item_corr=item_corr)
    es = abs(delta) / sd if sd > 0 else float("inf")
    power = 1.0 if sd == 0 else _t_power(es, int(n_items), alpha, alternative)
    return PowerResult(int(n_items), power, p0, delta, int(k), icc, item_corr, alpha, alternative, sd, es)


def paired_items_needed(p0: float, delta: float, *, k: int = 1, icc: float = 0.0, item_corr: float = 0.0,
                        alpha: float = 0.05, power: float = 0.8, alternative: str = "two-sided") -> PowerResult:
    """Smallest number of items giving ``power`` to detect ``delta`` in a paired design.

    Example: p0 = 0.7, delta = 0.03, K = 5, icc = 0.5 -> ``paired_items_needed(0.7, 0.03, k=5,
    icc=0.5).n_items``. Solves the t-test power equation (statsmodels' ``TTestPower.power``) for
    continuous n and rounds up. The root finding is own code (scipy's brentq in a bracket from the
    normal approximation): ``TTestPower.solve_power`` gives the same n to 1e-6 from 4 items on,
    but in a grid check of effect sizes 0.005-5 it warned of non-convergence five times, and it
    would stop at the NaN powers that ``_t_power`` guards against.
    """
    _check(alpha, alternative)
    if not 0 < power < 1:
        raise ValueError(f"power must lie in (0, 1), got {power}")
    if delta == 0:
        raise ValueError("delta must be non-zero")
    sd = paired_sd_diff(p0, delta, k=k, icc=icc, item_corr=item_corr)
    if sd == 0:
        return paired_power(2, p0, delta, k=k, icc=icc, item_corr=item_corr, alpha=alpha, alternative=alternative)
    es = abs(delta) / sd
    if _t_power(es, 2, alpha, alternative) >= power:
        n = 2
    else:
        a = alpha / 2 if alternative == "two-sided" else alpha
        upper = 2 * ((sps.norm.isf(a) + sps.norm.ppf(power)) / es) ** 2 + 20  # normal-approx bracket
        n_cont = optimize.brentq(lambda m: _t_power(es, m, alpha, alternative) - power, 2, upper, xtol=1e-10)
        n = max(int(np.ceil(n_cont - 1e-9)), 2)
    return paired_power(n, p0, delta, k=k, icc=icc, item_corr=item_corr, alpha=alpha, alternative=alternative)
