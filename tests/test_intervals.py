"""Accuracy intervals that stay honest where the bootstrap is not: at 0 and 1, and from one problem.

Every expected bound is the Wilson score interval written out by hand, with z = 1.959963984540054 (95%):
center = (p + z²/(2n)) / (1 + z²/n), half = z / (1 + z²/n) · sqrt(p(1 - p)/n + z²/(4n²)).
"""

import json
import math

import numpy as np
import pytest

from lprecover.evaluation.curves import parallel_curve, sequential_curve
from lprecover.evaluation.metrics import accuracy_ci, bootstrap_ci, finite, wilson_interval
from lprecover.evaluation.tasks import Problem

Z = 1.959963984540054
Z2 = Z * Z  # 3.841458820694124


def wilson_by_hand(p, n):
    center = (p + Z2 / (2 * n)) / (1 + Z2 / n)
    half = Z / (1 + Z2 / n) * math.sqrt(p * (1 - p) / n + Z2 / (4 * n * n))
    return center - half, center + half


def test_wilson_interval_matches_hand_values():
    # 100 of 100: at p = 1 the half width equals z²/(2n)/(1 + z²/n), so the lower bound is n/(n + z²).
    lo, hi = wilson_interval(1.0, 100)
    assert lo == pytest.approx(100 / (100 + Z2)) and lo == pytest.approx(0.9630065, abs=1e-7) and hi == 1.0
    # 0 of 10: the mirror image, [0, z²/(n + z²)].
    assert wilson_interval(0.0, 10) == (0.0, pytest.approx(Z2 / (10 + Z2)))
    assert Z2 / (10 + Z2) == pytest.approx(0.277533, abs=1e-6)
    # 7 of 10: the textbook [0.3968, 0.8922], pulled toward 1/2 (p ± z·sqrt(p(1-p)/n) would give [0.416, 0.984]).
    assert wilson_interval(0.7, 10) == pytest.approx(wilson_by_hand(0.7, 10))
    assert wilson_interval(0.7, 10) == pytest.approx((0.3968, 0.8922), abs=1e-4)
    # 1 of 1: [1/(1 + z²), 1] = [0.2065, 1], as wide as one problem deserves.
    assert wilson_interval(1.0, 1) == (pytest.approx(1 / (1 + Z2)), 1.0)
    assert 1 / (1 + Z2) == pytest.approx(0.2065493, abs=1e-7)
    # No trials: undefined, written null.
    assert finite(list(wilson_interval(0.5, 0))) == [None, None]


def test_one_problem_bootstrap_is_missing_not_zero_width():
    assert finite(list(bootstrap_ci(np.array([1.0]), 100))) == [None, None]
    assert finite(list(bootstrap_ci(np.array([]), 100))) == [None, None]
    # Two problems resample: the quantiles of the means {0, 1/2, 1}, drawn with weights 1/4, 1/2, 1/4.
    lo, hi = bootstrap_ci(np.array([0.0, 1.0]), 2000, seed=0)
    assert (lo, hi) == (0.0, 1.0)


def test_accuracy_ci_is_wilson_for_proportions_and_never_collapses():
    # 30 of 100 problems right, one sample each: a proportion, so the Wilson interval exactly.
    values = np.array([1.0] * 30 + [0.0] * 70)
    assert accuracy_ci(values, 200) == (*map(pytest.approx, wilson_by_hand(0.3, 100)), "wilson")
    # Four problems, each right on 1 of its 2 seeds: every bootstrap resample's mean is 1/2, a zero-width [0.5, 0.5];
    # the union with Wilson at p = 1/2, n = 4 keeps its width: 0.5 ± z/(1 + z²/4) · sqrt(1/16 + z²/64).
    lo, hi, method = accuracy_ci(np.full(4, 0.5), 200)
    half = Z / (1 + Z2 / 4) * math.sqrt(0.25 / 4 + Z2 / 64)
    assert (lo, hi) == (pytest.approx(0.5 - half), pytest.approx(0.5 + half)) and method == "wilson+bootstrap"
    assert half == pytest.approx(Z / (2 * math.sqrt(4 + Z2))) == pytest.approx(0.3500, abs=1e-4)  # at p = 1/2
    # One problem with several samples: the bootstrap is undefined, so Wilson alone, at n = 1.
    assert accuracy_ci(np.array([2 / 3]), 200) == (*map(pytest.approx, wilson_by_hand(2 / 3, 1)), "wilson")
    assert finite(list(accuracy_ci(np.array([]), 200))) == [None, None, None]


def record(problem, budget, correct, sample=0):
    return {
        "task": "gsm8k",
        "mode": "sequential",
        "problem_id": problem,
        "budget": budget,
        "sample": sample,
        "correct": correct,
        "sampling": {"temperature": 0.0},
    }


def test_sequential_curve_at_0_and_1_is_not_zero_width():
    problems = [Problem(f"p{i}", "", "") for i in range(20)]
    records = [record(p.id, 8, False) for p in problems] + [record(p.id, 16, True) for p in problems]
    curve = json.loads(json.dumps(finite(sequential_curve(records, problems, [8, 16], 200, 0))))
    assert curve["accuracy"] == [0.0, 1.0] and curve["ci_method"] == ["wilson", "wilson"]
    # 0 of 20: [0, z²/(20 + z²)] = [0, 0.1611]; 20 of 20: [20/(20 + z²), 1] = [0.8389, 1].
    assert curve["ci_low"] == [0.0, pytest.approx(20 / (20 + Z2))]
    assert curve["ci_high"] == [pytest.approx(Z2 / (20 + Z2)), 1.0]
    assert 20 / (20 + Z2) == pytest.approx(0.8389, abs=1e-4)
    # One problem, right: reported, and wide.
    one = sequential_curve(records[-1:], problems[-1:], [16], 200, 0)
    assert (one["ci_low"], one["ci_high"]) == ([pytest.approx(1 / (1 + Z2))], [1.0])


def test_sequential_curve_with_several_samples_per_problem():
    problems = [Problem(f"p{i}", "", "") for i in range(4)]
    # Budget 8: every seed of every problem right (a proportion 4 of 4). Budget 16: each problem right on its first
    # two of three seeds, so every problem scores 2/3 and the bootstrap alone would read [2/3, 2/3].
    records = [record(p.id, 8, True, s) for p in problems for s in range(3)]
    records += [record(p.id, 16, s < 2, s) for p in problems for s in range(3)]
    curve = sequential_curve(records, problems, [8, 16], 200, 0, samples=3)
    assert curve["accuracy"] == pytest.approx([1.0, 2 / 3])
    assert curve["ci_method"] == ["wilson", "wilson+bootstrap"]
    assert curve["ci_low"] == pytest.approx([4 / (4 + Z2), wilson_by_hand(2 / 3, 4)[0]])
    assert curve["ci_high"] == pytest.approx([1.0, wilson_by_hand(2 / 3, 4)[1]])
    # Only the first sample counted: budget 16 is then 4 of 4 right, a proportion again.
    first = sequential_curve(records, problems, [16], 200, 0, samples=1)
    assert (first["ci_low"], first["ci_method"]) == ([pytest.approx(4 / (4 + Z2))], ["wilson"])


def test_parallel_curve_intervals_at_the_boundary():
    problems = [Problem("a", "", ""), Problem("b", "", "")]
    rows = []
    for p, right in (("a", 4), ("b", 2)):  # a: 4 of 4 samples right; b: 2 of 4
        for s in range(4):
            ok = s < right
            rows.append(record(p, 64, ok, s) | {"mode": "parallel", "canonical": "5" if ok else "3", "extracted": "x"})
    curve = parallel_curve(rows, problems, 4, [1, 4], 200, 0)
    # pass@1 per problem: [1, 1/2]; pass@4: [1, 1], both problems at 1, which the bootstrap would read [1, 1].
    assert curve["pass_at_k"] == pytest.approx([0.75, 1.0])
    assert curve["ci_method"] == ["wilson+bootstrap", "wilson"]
    assert curve["ci_low"][1] == pytest.approx(2 / (2 + Z2)) and curve["ci_high"][1] == 1.0
    assert curve["ci_low"][0] <= wilson_by_hand(0.75, 2)[0] and curve["ci_high"][0] >= wilson_by_hand(0.75, 2)[1]
