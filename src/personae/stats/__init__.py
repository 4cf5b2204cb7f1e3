"""Pure statistics: arrays in, small typed results out. Every random procedure takes a seed."""

from .descriptive import Estimate, mean_ci

__all__ = ["Estimate", "mean_ci"]
