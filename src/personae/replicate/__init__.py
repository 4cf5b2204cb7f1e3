"""replicate: published human experiments run on synthetic participants (METHODS.md section 9)."""

from .experiment import Experiment, builtin_ids, load_experiment, parse_experiment, resolve_experiments
from .planned import Observation, TestResult, run_test

__all__ = ["Experiment", "Observation", "TestResult", "builtin_ids", "load_experiment", "parse_experiment",
           "resolve_experiments", "run_test"]
