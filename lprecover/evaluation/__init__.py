"""Test-time scaling evaluation: budget forcing, scoring, scaling metrics and recovery measures."""

from lprecover.evaluation.metrics import (
    answered_at_k,
    bootstrap_ci,
    cov_at_k,
    maj_at_k,
    maj_at_k_first,
    pass_at_k,
    scaling_slope,
)
from lprecover.evaluation.recovery_measures import recovery_measures
from lprecover.evaluation.scoring import extract_answer, is_correct

__all__ = [
    "answered_at_k",
    "bootstrap_ci",
    "cov_at_k",
    "extract_answer",
    "is_correct",
    "maj_at_k",
    "maj_at_k_first",
    "pass_at_k",
    "recovery_measures",
    "scaling_slope",
]
