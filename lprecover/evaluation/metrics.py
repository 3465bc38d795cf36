"""Scaling metrics: pass@k, maj@k, answered@k, cov@k, bootstrap and Wilson intervals, the scaling slope, areas."""

import itertools
import math
import random
from collections import Counter
from statistics import NormalDist

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

    With S the subsets, L_s the answers with the most votes in subset s and w(a) the worth of answer a:

        maj@k = (1/|S|) * sum_{s in S} (1/|L_s|) * sum_{a in L_s} w(a),   w(a) = (samples voting a marked correct)
                                                                                 / (samples voting a), over all n

    A sample whose answer could not be extracted (``None``) votes for "no answer", worth 0, as in
    lm-evaluation-harness's ``majority_vote`` filter (failed extractions all read ``[invalid]`` and vote together):
    a model that often fails to answer loses votes rather than having them ignored. A tie earns the mean worth of
    the tied answers: a fair coin flip, in expectation. An answer's samples normally agree on correctness; where
    they do not, its worth is their share, so that no sample's position decides (the last sample's flag used to).
    The value depends only on the multiset of (answer, correct) pairs: sampled subsets are drawn from the samples
    in a sorted order. Averaging over subsets makes this an estimate of the expected maj@k of k fresh samples;
    ``maj_at_k_first`` is the reference's first-k form.

    Args:
        answers: each sample's vote key (``scoring.vote_keys``: answers math-verify holds equal share one), or
            ``None`` for a failed extraction.
        correct: whether each sample's answer is correct.
    """
    n = len(answers)
    if not 1 <= k <= n:
        raise ValueError(f"maj_at_k needs 1 <= k <= n, got k={k}, n={n}.")
    # Sorted, so that a sampled set of subsets (and with it the value) is the same for any order of the samples.
    pairs = sorted(
        ((NO_ANSWER if a is None else a, bool(c)) for a, c in zip(answers, correct)),
        key=lambda p: (p[0] is not NO_ANSWER, type(p[0]).__name__, str(p[0]) if p[0] is not NO_ANSWER else "", p[1]),
    )
    votes_of = [a for a, _ in pairs]
    worth = _worth(pairs)
    rng = random.Random(seed)
    wins = []
    for subset in _subsets(n, k, max_subsets, rng):
        votes = Counter(votes_of[i] for i in subset)
        top = max(votes.values())
        leaders = [a for a, v in votes.items() if v == top]
        wins.append(sum(worth[a] for a in leaders) / len(leaders))
    return float(np.mean(wins))


def _worth(pairs) -> dict:
    """Each vote's share of its samples marked correct; "no answer" is worth 0."""
    marks: dict = {}
    for a, c in pairs:
        marks.setdefault(a, []).append(c and a is not NO_ANSWER)
    return {a: sum(m) / len(m) for a, m in marks.items()}


def maj_at_k_first(answers: list, correct: list[bool], k: int) -> float:
    """Majority vote of the first k samples, ties to the answer seen first (``Counter.most_common``).

    This is how lm-evaluation-harness's self-consistency tasks score maj@k (``take_first_k`` then
    ``majority_vote``; a failed extraction votes as ``[invalid]``). It depends on sample order by design;
    ``maj_at_k`` averages over subsets instead and is the one lprecover's curves use. The winner is worth the share
    of its first-k samples marked correct (``maj_at_k``'s rule, over the first k).
    """
    if not 1 <= k <= len(answers):
        raise ValueError(f"maj_at_k_first needs 1 <= k <= n, got k={k}, n={len(answers)}.")
    pairs = [(NO_ANSWER if a is None else a, bool(c)) for a, c in zip(answers[:k], correct)]
    winner = Counter(a for a, _ in pairs).most_common(1)[0][0]
    return float(_worth(pairs)[winner])


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
    """Percentile bootstrap interval of the mean, resampling problems; (nan, nan) from fewer than two problems.

    One problem resamples only to itself, so its "interval" would be zero width: it is undefined, not certain.
    At the boundary the bootstrap also collapses (ten problems all correct resample to [1, 1]): for accuracies use
    ``accuracy_ci``, which stays honest there.
    """
    values = np.asarray(per_problem, dtype=float)
    if len(values) < 2:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n_boot, len(values)))].mean(axis=1)
    return float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))


def wilson_interval(p: float, n: int, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval of a proportion ``p`` observed over ``n`` trials; (nan, nan) when n < 1.

    With z = Φ⁻¹(1 - alpha/2) (1.959964 at 95%), the interval is every q with |p - q| <= z·sqrt(q(1 - q)/n):

        center = (p + z²/(2n)) / (1 + z²/n),   half = z/(1 + z²/n) · sqrt(p(1 - p)/n + z²/(4n²))

    Unlike p ± z·sqrt(p(1 - p)/n) it keeps its width at p = 0 or 1: 100 of 100 correct gives [n/(n + z²), 1] =
    [0.963, 1]. It also holds for a ``p`` that is the mean of values in [0, 1] rather than of 0/1 outcomes, and is
    then conservative: no variable in [0, 1] with mean q has a variance above q(1 - q), the 0/1 one's.
    """
    if n < 1:
        return (float("nan"), float("nan"))
    z = NormalDist().inv_cdf(1 - alpha / 2)
    center = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    # Mathematically lo <= p <= hi and [lo, hi] lies in [0, 1]; rounding at p = 0 or 1 must not cut p out.
    return max(0.0, min(center - half, p)), min(1.0, max(center + half, p))


WILSON, WILSON_AND_BOOTSTRAP = "wilson", "wilson+bootstrap"  # ``accuracy_ci``'s methods, as curves.json names them


def accuracy_ci(
    per_problem: np.ndarray, n_boot: int = 1000, seed: int = 0, alpha: float = 0.05
) -> tuple[float, float, str | None]:
    """An accuracy's interval over problems, honest at 0 and 1: ``(low, high, method)``.

    ``per_problem`` holds each problem's score in [0, 1] (its correctness, or the mean over its samples); with
    n problems and mean p:

    - every score 0 or 1 (a proportion: one sample per problem, or samples that all agree): the Wilson interval
      ``wilson_interval(p, n)``, method ``"wilson"``. One problem gives a wide interval (1 of 1: [1/(1 + z²), 1] =
      [0.21, 1]), which is what one problem tells.
    - otherwise the union of that Wilson interval and the percentile bootstrap resampling problems
      (``bootstrap_ci``): [min(lo_W, lo_B), max(hi_W, hi_B)], method ``"wilson+bootstrap"``. The bootstrap reads the
      spread between problems; the Wilson bound keeps the interval from collapsing when every problem sits at the
      boundary. With one problem the bootstrap is undefined and Wilson alone is reported (method ``"wilson"``).
    - no problems: (nan, nan, None).
    """
    values = np.asarray(per_problem, dtype=float)
    if len(values) == 0:
        return (float("nan"), float("nan"), None)
    p = float(values.mean())
    lo, hi = wilson_interval(p, len(values), alpha)
    if np.isin(values, (0.0, 1.0)).all():
        return (lo, hi, WILSON)
    b_lo, b_hi = bootstrap_ci(values, n_boot, seed, alpha)
    if not math.isfinite(b_lo):
        return (lo, hi, WILSON)
    return (min(lo, b_lo), max(hi, b_hi), WILSON_AND_BOOTSTRAP)


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


def scaling_slope(budgets: list[float], accuracy) -> float | np.ndarray:
    """Accuracy gained per doubling of the budget: the least-squares slope of accuracy against log2(budget).

    ``S = sum_i (x_i - mean(x)) (a_i - mean(a)) / sum_i (x_i - mean(x))^2`` with ``x_i = log2(b_i)`` over budgets
    ``b_i > 0``; NaN (undefined) with fewer than two such budgets. A curve rising evenly from 0 to 1 over budgets
    8..64 (three doublings) has S = 1/3. ``accuracy`` may hold many curves (one per row): one slope each.
    """
    keep = [i for i, b in enumerate(budgets) if b > 0]
    y = np.asarray(accuracy, dtype=float)[..., keep]
    if len(keep) < 2:
        return float("nan") if y.ndim == 1 else np.full(y.shape[0], np.nan)
    x = np.log2(np.asarray(budgets, dtype=float)[keep])
    dx = x - x.mean()
    slope = (y - y.mean(axis=-1, keepdims=True)) @ dx / (dx @ dx)
    return float(slope) if y.ndim == 1 else slope


def curve_area(xs: list[float], ys, log: bool = True) -> float | np.ndarray:
    """Normalised area under a curve: its mean height, on a log2(1 + x) axis by default since budgets double.

    ``A = trapezoid(y, u) / (u_max - u_min)`` with ``u = log2(1 + x)``; a curve of one point is its height. For
    accuracies in [0, 1] the area is in [0, 1]. ``ys`` may hold many curves (one per row): one area each.
    """
    y = np.asarray(ys, dtype=float)
    if len(xs) == 1:
        return float(y[0]) if y.ndim == 1 else y[:, 0]
    x = np.log2(1 + np.asarray(xs, dtype=float)) if log else np.asarray(xs, dtype=float)
    area = np.trapezoid(y, x, axis=-1) / (x[-1] - x[0])
    return float(area) if y.ndim == 1 else area
