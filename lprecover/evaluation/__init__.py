"""Test-time scaling evaluation: budget forcing, scoring, scaling metrics and recovery scores."""

from lprecover.evaluation.metrics import bootstrap_ci, maj_at_k, pass_at_k, recovery_score, scaling_slope
from lprecover.evaluation.recovery import recovery_scores
from lprecover.evaluation.scoring import extract_answer, is_correct

__all__ = [
    "bootstrap_ci",
    "extract_answer",
    "is_correct",
    "maj_at_k",
    "pass_at_k",
    "recovery_score",
    "recovery_scores",
    "scaling_slope",
]
