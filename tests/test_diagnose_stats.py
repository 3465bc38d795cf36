"""The numbers of ``lprecover diagnose`` on hand-computed cases: Spearman with ties, sign conventions, swap shares."""

import math

import numpy as np
import pytest

from lprecover.diagnose.fidelity import average_ranks, direction, fidelity, first_pick_rank, spearman, spearman_ci
from lprecover.diagnose.swap import shares
from lprecover.diagnose.sweep import problem_curves, reasoning_damage


def test_average_ranks_share_the_mean_rank_of_a_tie():
    assert average_ranks([10, 20, 20]).tolist() == [1, 2.5, 2.5]
    assert average_ranks([3, 1, 3, 3]).tolist() == [3, 1, 3, 3]


def test_spearman_by_hand_with_a_tie():
    # ranks of b: [1, 2, 3.5, 5, 3.5]; deviations (-2,-1,0,1,2) and (-2,-1,.5,2,.5): 8 / sqrt(10 * 9.5)
    assert spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(8 / math.sqrt(95), abs=1e-12)
    assert spearman([1, 2, 3, 4], [40, 30, 20, 10]) == pytest.approx(-1.0)
    assert spearman([1, 2, 3], [1, 9, 100]) == pytest.approx(1.0)  # ranks, not values


def test_spearman_is_undefined_for_constant_scores_or_too_few_layers():
    assert spearman([1, 1, 1, 1], [1, 2, 3, 4]) is None
    assert spearman([1, 2], [1, 2]) is None
    ci = spearman_ci([0.5, 0.5, 0.5], np.ones((3, 4)))
    assert ci == {"value": None, "ci_low": None, "ci_high": None, "resamples_defined": None}


def test_spearman_interval_brackets_the_value_and_narrows_with_consistent_problems():
    importance = [0.1, 0.2, 0.3, 0.4]
    rng = np.random.default_rng(0)
    noisy = np.array([[0.0], [1.0], [2.0], [3.0]]) + rng.normal(0, 2, size=(4, 40))
    clean = np.repeat(np.array([[0.0], [1.0], [2.0], [3.0]]), 40, axis=1)
    a, b = spearman_ci(importance, noisy, 500, 0), spearman_ci(importance, clean, 500, 0)
    assert a["ci_low"] <= a["value"] <= a["ci_high"] and a["ci_high"] - a["ci_low"] > 0.1
    assert b == {"value": 1.0, "ci_low": 1.0, "ci_high": 1.0, "resamples_defined": 1.0}
    # the damage rests on one problem of forty: resamples without it tie every layer, and rho is undefined there
    one = np.zeros((4, 40))
    one[:, 0] = [0, 1, 2, 3]
    c = spearman_ci(importance, one, 500, 0)
    assert c["value"] == 1.0 and 0.5 < c["resamples_defined"] < 0.75  # 1 - (39/40)^40 = 0.64


def test_direction_follows_the_criterion_remove_first_end():
    assert direction([0.3, 0.1, 0.9], first=1) == 1  # removes its lowest score (block influence, ppl, magnitude)
    assert direction([0.0, 1.0, 2.0, 3.0], first=3) == -1  # tail: removes the deepest, whose depth is highest
    assert direction([1.0, 1.0, 1.0], first=0) == 1  # constant: no direction to read; Spearman is undefined anyway


def test_fidelity_of_a_depth_criterion_against_damage_that_falls_with_depth():
    damage = np.array([[3.0, 3.0], [2.0, 2.0], [1.0, 1.0], [0.0, 0.0]])  # deeper layers hurt less
    f = fidelity([0.0, 1.0, 2.0, 3.0], -1, {"nll": damage, "knowledge": None}, 200, 0)
    assert f["spearman_nll"]["value"] == pytest.approx(1.0)  # tail removes layer 3 first: the harmless one
    assert f["first_pick_index"] == 3 and f["first_pick_rank"] == {"nll": 1.0, "knowledge": None}
    assert f["spearman_knowledge"] is None
    assert first_pick_rank(0, [0.0, 0.0, 5.0]) == 1.5  # tied least damaging


def test_swap_shares_by_hand():
    areas = {
        ("teacher", "teacher"): np.array([1.0, 1.0]),
        ("other", "other"): np.array([0.0, 0.0]),
        ("other", "teacher"): np.array([0.5, 0.5]),  # the teacher answering from pruned thinking
        ("teacher", "other"): np.array([1.0, 0.5]),  # the pruned model answering from teacher thinking
    }
    s = shares(areas, 200, 0)
    assert s["lost"] == 1.0
    assert s["answerer_share"]["value"] == pytest.approx(0.5) and s["thinker_share"]["value"] == pytest.approx(0.75)
    assert s["thinker_share"]["ci_low"] <= 0.75 <= s["thinker_share"]["ci_high"]


def test_swap_shares_are_undefined_when_nothing_was_lost():
    same = np.array([0.4, 0.6])
    s = shares({("teacher", "teacher"): same, ("other", "other"): same, ("other", "teacher"): same + 0.1,
                ("teacher", "other"): same}, 100, 0)  # fmt: skip
    assert s["lost"] == 0.0
    assert s["answerer_share"] == {"value": None, "ci_low": None, "ci_high": None}


def _records(task, correct_by_problem_budget):
    return [
        {"task": task, "mode": "sequential", "problem_id": p, "budget": b, "sample": 0, "correct": c}
        for p, row in correct_by_problem_budget.items()
        for b, c in row.items()
    ]


def test_reasoning_damage_is_the_mean_of_per_problem_drops_by_hand():
    budgets = [1, 3]  # log2(1 + b): 1 and 2, so a curve's area is the mean of its two ends
    teacher = _records("t", {"a": {1: 0, 3: 1}, "b": {1: 1, 3: 1}})
    pruned = _records("t", {"a": {1: 0, 3: 0}, "b": {1: 1, 3: 0}})
    d = reasoning_damage(teacher, pruned, "t", budgets, 1)
    assert d["ids"] == ["a", "b"]
    assert d["area"].tolist() == [0.5, 0.5]
    # slopes per doubling over log2(b) = 0 .. log2(3): a lost a rise of 1, b gained a fall of 1
    assert d["slope"] == pytest.approx([1 / math.log2(3)] * 2)
    with pytest.raises(ValueError, match="lack some problems"):
        problem_curves(teacher[:3], "t", budgets, 1)
