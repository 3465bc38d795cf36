"""Scaling metrics: pass@k, maj@k, answered@k, cov@k, bootstrap intervals, the scaling slope, areas, recovery scores."""

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


NO_ANSWER = object()  # the vote of a sample whose answer could not be extracted: it can never be correct


def maj_at_k(answers: list, correct: list[bool], k: int, max_subsets: int = 256, seed: int = 0) -> float:
    """Majority-vote accuracy over subsets of size k, averaged (all subsets when few, else a seeded sample).

    A sample whose answer could not be extracted (``None``) votes for "no answer", which is never correct, as in
    lm-evaluation-harness's ``majority_vote`` filter (failed extractions all read ``[invalid]`` and vote together):
    a model that often fails to answer loses votes rather than having them ignored. A tie between answers earns
    the fraction of tied answers that are correct: a fair coin flip, in expectation. Averaging over subsets makes
    this an estimate of the expected maj@k of k fresh samples; ``maj_at_k_first`` is the reference's first-k form.

    Args:
        answers: the canonical extracted answer of each sample (``None`` for a failed extraction).
        correct: whether each sample's answer is correct.
    """
    n = len(answers)
    if not 1 <= k <= n:
        raise ValueError(f"maj_at_k needs 1 <= k <= n, got k={k}, n={n}.")
    votes_of = [NO_ANSWER if a is None else a for a in answers]
    truth = {a: bool(c) and a is not NO_ANSWER for a, c in zip(votes_of, correct)}
    rng = random.Random(seed)
    wins = []
    for subset in _subsets(n, k, max_subsets, rng):
        votes = Counter(votes_of[i] for i in subset)
        top = max(votes.values())
        leaders = [a for a, v in votes.items() if v == top]
        wins.append(sum(truth[a] for a in leaders) / len(leaders))
    return float(np.mean(wins))


def maj_at_k_first(answers: list, correct: list[bool], k: int) -> float:
    """Majority vote of the first k samples, ties to the answer seen first (``Counter.most_common``).

    This is how lm-evaluation-harness's self-consistency tasks score maj@k (``take_first_k`` then
    ``majority_vote``; a failed extraction votes as ``[invalid]``). It depends on sample order; ``maj_at_k``
    averages over subsets instead and is the one lprecover's curves use.
    """
    if not 1 <= k <= len(answers):
        raise ValueError(f"maj_at_k_first needs 1 <= k <= n, got k={k}, n={len(answers)}.")
    votes_of = [NO_ANSWER if a is None else a for a in answers[:k]]
    winner = Counter(votes_of).most_common(1)[0][0]
    return float(winner is not NO_ANSWER and any(c for a, c in zip(votes_of, correct) if a == winner))


def answered_at_k(n: int, answered: int, k: int) -> float:
    """The chance that k of n samples include at least one extractable final answer (unbiased, like pass@k).

    It separates "never commits to an answer" (rambling, cut-off traces) from "commits to a wrong one". Named for
    what it is: in the repeated-sampling literature coverage (cov@k) means a *correct* answer among k samples.
    """
    return pass_at_k(n, answered, k)


def cov_at_k(correct: list[bool], k: int) -> float:
    """Coverage of the first k samples: 1 if any of them is correct, else 0 (s1's lm-eval fork, ``cov@k``).

    The first-k estimate of what ``pass_at_k`` estimates without bias from all n samples (Brown et al. 2024,
    "Large Language Monkeys", call pass@k coverage).
    """
    if not 1 <= k <= len(correct):
        raise ValueError(f"cov_at_k needs 1 <= k <= n, got k={k}, n={len(correct)}.")
    return float(any(correct[:k]))


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


def finite(value):
    """``value`` with every NaN or infinity replaced by None, so that it is valid JSON (``null``): a number that
    could not be computed (a slope from one budget, an interval from one problem) must not read as a number."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


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
