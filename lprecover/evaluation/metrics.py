"""Scaling metrics: pass@k, maj@k, cov@k, bootstrap intervals, the scaling slope, areas and the recovery score."""

import itertools
import math
import random
from collections import Counter

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k (Chen et al. 2021): the chance that k of n samples, c of them correct, include a correct one."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}.")
    if n - c < k:
        return 1.0
    # 1 - C(n-c, k) / C(n, k), as a product so large n does not overflow.
    return 1.0 - float(np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def _subsets(n: int, k: int, max_subsets: int, rng: random.Random):
    if math.comb(n, k) <= max_subsets:
        return list(itertools.combinations(range(n), k))
    return [tuple(rng.sample(range(n), k)) for _ in range(max_subsets)]


def maj_at_k(answers: list, correct: list[bool], k: int, max_subsets: int = 256, seed: int = 0) -> float:
    """Majority-vote accuracy over subsets of size k, averaged (all subsets when few, else a seeded sample).

    Args:
        answers: the canonical extracted answer of each sample (``None`` for a failed extraction, which never wins).
        correct: whether each sample's answer is correct.
    A tie between answers earns the fraction of tied answers that are correct: a fair coin flip, in expectation.
    """
    n = len(answers)
    if not 1 <= k <= n:
        raise ValueError(f"maj_at_k needs 1 <= k <= n, got k={k}, n={n}.")
    truth = {a: c for a, c in zip(answers, correct) if a is not None}
    rng = random.Random(seed)
    wins = []
    for subset in _subsets(n, k, max_subsets, rng):
        votes = Counter(answers[i] for i in subset if answers[i] is not None)
        if not votes:
            wins.append(0.0)
            continue
        top = max(votes.values())
        leaders = [a for a, v in votes.items() if v == top]
        wins.append(sum(truth[a] for a in leaders) / len(leaders))
    return float(np.mean(wins))


def cov_at_k(n: int, extracted: int, k: int) -> float:
    """Answer coverage: the chance that k of n samples include at least one extractable final answer.

    It separates "never commits to an answer" (rambling, cut-off traces) from "commits to a wrong one".
    """
    return pass_at_k(n, extracted, k)


def bootstrap_ci(
    per_problem: np.ndarray, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean, resampling problems."""
    values = np.asarray(per_problem, dtype=float)
    if len(values) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(axis=1)
    return float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))


def scaling_slope(budgets: list[float], accuracy: list[float]) -> float:
    """Accuracy gained per doubling of the budget: the least-squares slope against log2(budget), budgets > 0."""
    pts = [(math.log2(b), a) for b, a in zip(budgets, accuracy) if b > 0]
    if len(pts) < 2:
        return float("nan")
    x, y = np.array(pts).T
    return float(np.polyfit(x, y, 1)[0])


def curve_area(xs: list[float], ys: list[float], log: bool = True) -> float:
    """Normalised area under a curve (the mean height), on a log2(1 + x) axis by default since budgets double."""
    if len(xs) == 1:
        return float(ys[0])
    x = np.log2(1 + np.asarray(xs, dtype=float)) if log else np.asarray(xs, dtype=float)
    y = np.asarray(ys, dtype=float)
    return float(np.trapezoid(y, x) / (x[-1] - x[0]))


def recovery_score(teacher: float, pruned: float, recovered: float) -> float:
    """The fraction of the area lost to pruning that recovery won back: 0 = none, 1 = all (can leave [0, 1])."""
    lost = teacher - pruned
    if abs(lost) < 1e-9:
        return float("nan")
    return (recovered - pruned) / lost
