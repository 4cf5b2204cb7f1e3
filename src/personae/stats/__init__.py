"""Pure statistics: arrays in, small typed results out. Every random procedure takes a seed.

Conventions: two-sample quantities are ``a`` minus ``b`` (or ``a`` over ``b``); results are frozen
dataclasses with ``as_dict()`` for JSON; bad arguments raise ``ValueError`` naming the problem.
"""

from .agreement import category_counts, fleiss_kappa, krippendorff_alpha, unanimous_share
from .anova import AnovaComponents, icc1, one_way_anova_components
from .bootstrap import SMALL_SAMPLE, bootstrap_ci, bootstrap_pairs, paired_bootstrap, paired_difference_ci
from .contingency import fisher_exact, odds_ratio_ci, risk_ratio, two_by_two
from .correlation import correlation, kendall, pearson, spearman
from .descriptive import Estimate, mean_ci
from .divergence import jensen_shannon, label_distribution
from .effect_size import cohens_d
from .mixed import LogitResult, ModelTerm, VarianceComponents, item_logit, variance_components
from .multiple import holm
from .noise import beyond_floor, split_half_floor
from .paired import mcnemar, mcnemar_counts, wilcoxon_signed_rank
from .permutation import label_permutation_test, permutation_test
from .power import PowerResult, paired_items_needed, paired_power, paired_sd_diff
from .results import StatResult

__all__ = [
    "AnovaComponents",
    "Estimate",
    "LogitResult",
    "ModelTerm",
    "PowerResult",
    "StatResult",
    "VarianceComponents",
    "SMALL_SAMPLE",
    "beyond_floor",
    "bootstrap_ci",
    "paired_difference_ci",
    "bootstrap_pairs",
    "category_counts",
    "cohens_d",
    "correlation",
    "fisher_exact",
    "fleiss_kappa",
    "holm",
    "icc1",
    "item_logit",
    "jensen_shannon",
    "kendall",
    "krippendorff_alpha",
    "label_distribution",
    "label_permutation_test",
    "mcnemar",
    "mcnemar_counts",
    "mean_ci",
    "odds_ratio_ci",
    "one_way_anova_components",
    "paired_bootstrap",
    "paired_items_needed",
    "paired_power",
    "paired_sd_diff",
    "pearson",
    "permutation_test",
    "risk_ratio",
    "spearman",
    "split_half_floor",
    "two_by_two",
    "unanimous_share",
    "variance_components",
    "wilcoxon_signed_rank",
]
