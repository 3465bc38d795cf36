"""Tokens and compute to recover (``evaluation/to_reach.py``) on hand-made recovery curves with known crossings."""

import numpy as np
import pytest

from lprecover.compare.reach import add_reach, ranked_pairs, reach_ranking, reach_text
from lprecover.evaluation.to_reach import (
    at_crossing,
    crossing_index,
    crossings,
    paired_difference,
    percentile,
    reach_from_matrices,
    signed_percentile,
)
from lprecover.recovery.compute import flops_per_token, generated_tokens, training_flops

TOKENS = [0, 1000, 2000, 4000, 8000]


def test_first_crossing_interpolates_linearly_between_points():
    shares = [0.0, 0.2, 0.6, 0.95, 1.0]
    # 0.5 lies 3/4 of the way from 0.2 (1000 tokens) to 0.6 (2000 tokens): 1750.
    assert at_crossing(TOKENS, crossing_index(shares, 0.5)) == pytest.approx(1750.0)
    # 0.9 lies 6/7 of the way from 0.6 (2000) to 0.95 (4000): 2000 + 2000 * 0.3 / 0.35.
    assert at_crossing(TOKENS, crossing_index(shares, 0.9)) == pytest.approx(2000 + 2000 * 0.3 / 0.35)
    # A point exactly at the level is its own crossing.
    assert at_crossing(TOKENS, crossing_index([0.0, 0.5, 0.7, 0.8, 1.0], 0.5)) == pytest.approx(1000.0)


def test_not_reached_is_none():
    shares = [0.0, 0.1, 0.2, 0.4, 0.45]
    assert crossing_index(shares, 0.5) is None
    assert at_crossing(TOKENS, crossing_index(shares, 0.5)) is None


def test_cross_fall_cross_reports_the_first_crossing():
    # Up through 0.5 between 1000 and 2000 tokens, back down to 0.3 at 4000, up again by 8000.
    shares = [0.0, 0.4, 0.8, 0.3, 0.9]
    # First: 1000 + 1000 * (0.5 - 0.4) / (0.8 - 0.4) = 1250, not the second crossing (4000 + 4000 * 0.2 / 0.6).
    assert at_crossing(TOKENS, crossing_index(shares, 0.5)) == pytest.approx(1250.0)
    assert at_crossing(TOKENS, crossing_index(shares, 0.9)) == pytest.approx(8000.0)


def test_vectorised_crossings_match_the_scalar_rule():
    rows = np.array([[0.0, 0.2, 0.6, 0.95, 1.0], [0.0, 0.1, 0.2, 0.4, 0.45], [0.0, 0.4, 0.8, 0.3, 0.9], [np.nan] * 5])
    got = crossings(rows, TOKENS, 0.5)
    assert got[0] == pytest.approx(1750.0) and got[2] == pytest.approx(1250.0)
    assert np.isinf(got[1]) and np.isnan(got[3])


def test_percentile_with_unreached_resamples_is_infinite_at_the_top():
    draws = np.array([1.0, 2.0, 3.0, np.inf])
    assert percentile(draws, 0.5) == pytest.approx(2.5)
    assert np.isinf(percentile(draws, 0.975))
    assert percentile(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), 0.25) == pytest.approx(2.0)


def _matrices(shares_by_point, n=40):
    """Per-problem matrices whose area share at each point is exactly ``shares_by_point`` (two budgets; every
    problem's accuracy at each budget is the same, so every resample gives the same curves)."""
    budgets = [8, 16]
    teacher = np.ones((n, 2))
    pruned = np.zeros((n, 2))
    points = [np.full((n, 2), s) for s in shares_by_point]
    return budgets, teacher, pruned, points


def test_reach_from_matrices_gives_tokens_compute_and_intervals():
    budgets, t, p, points = _matrices([0.2, 0.6, 0.95, 1.0])
    axes = {"tokens": [1000, 2000, 4000, 8000], "compute": [6e3, 12e3, 24e3, 48e3]}
    out = reach_from_matrices(budgets, t, p, points, axes, n_boot=200)
    assert out["tokens_to_50"]["value"] == pytest.approx(1750.0)
    assert out["compute_to_50"]["value"] == pytest.approx(6 * 1750.0)
    assert out["tokens_to_90"]["value"] == pytest.approx(2000 + 2000 * 0.3 / 0.35)
    # Every problem alike: every resample gives the same crossing, so the interval is the point.
    assert out["tokens_to_50"]["ci_low"] == pytest.approx(1750.0)
    assert out["tokens_to_50"]["ci_high"] == pytest.approx(1750.0)
    assert out["tokens_to_50"]["resamples_reached"] == 1.0
    # The slope: teacher and pruned curves are both flat (slope 0), so no slope was lost and no slope crossing.
    assert out["tokens_to_50_slope"]["value"] is None
    assert out["tokens_to_50_slope"]["reason"] == "pruning lost no measurable slope"


def test_the_first_point_is_the_pruned_model_at_zero_tokens():
    budgets, t, p, points = _matrices([0.8, 1.0])
    out = reach_from_matrices(budgets, t, p, points, {"tokens": [1000, 2000]}, n_boot=0)
    # From (0, 0) to (1000, 0.8): 0.5 at 625 tokens.
    assert out["tokens_to_50"]["value"] == pytest.approx(625.0)
    assert out["tokens_to_50"]["ci_low"] is None  # no resamples, no interval
    assert out["tokens_to_50"]["resamples_reached"] is None


def test_not_reached_has_a_reason_and_no_upper_bound():
    budgets, t, p, points = _matrices([0.1, 0.3, 0.45])
    out = reach_from_matrices(budgets, t, p, points, {"tokens": [1000, 2000, 4000]}, n_boot=100)
    m = out["tokens_to_50"]
    assert m["value"] is None
    assert m["reason"] == "not reached by the last evaluation (4000 tokens)"
    assert m["ci_low"] is None and m["ci_high"] is None and m["resamples_reached"] == 0.0


def test_half_the_problems_reach_so_the_upper_bound_is_not_reached():
    # 20 problems recovered fully at the last point, 20 not at all: share 0.5 exactly at 4000 tokens. A resample
    # with fewer recovered problems than unrecovered never reaches 0.5, and so about half of them never reach.
    n = 40
    t, p = np.ones((n, 2)), np.zeros((n, 2))
    last = np.zeros((n, 2))
    last[:20] = 1.0
    points = [np.full((n, 2), 0.1), np.full((n, 2), 0.2), last]
    out = reach_from_matrices([8, 16], t, p, points, {"tokens": [1000, 2000, 4000]}, n_boot=400)
    m = out["tokens_to_50"]
    assert m["value"] == pytest.approx(4000.0)
    assert m["ci_high"] is None  # "not reached": the 97.5% percentile touches a resample that never reached
    assert 0.3 < m["resamples_reached"] < 0.7
    assert m["ci_low"] is not None and 2000 < m["ci_low"] <= 4000


def test_nothing_lost_gives_no_crossing():
    n = 10
    same = np.full((n, 2), 0.5)
    out = reach_from_matrices([8, 16], same, same, [same], {"tokens": [1000]}, n_boot=50)
    assert out["tokens_to_50"]["value"] is None
    assert out["tokens_to_50"]["reason"] == "pruning lost no measurable area"


def test_compute_formula_per_recipe_kind():
    n, n_t = 1_000_000, 1_500_000
    full = {"n_student": n, "n_trainable": n, "n_teacher": 0, "teacher_online": False, "generates": False}
    assert flops_per_token(full) == 6 * n
    lora = full | {"n_trainable": 10_000}
    assert flops_per_token(lora) == 4 * n + 2 * 10_000
    distill = full | {"n_teacher": n_t, "teacher_online": True}
    assert flops_per_token(distill) == 6 * n + 2 * n_t
    stored = distill | {"teacher_online": False}  # logits read from a store: no teacher pass during training
    assert flops_per_token(stored) == 6 * n
    onpolicy = distill | {"generates": True}
    assert training_flops(onpolicy, tokens=100, generated=40) == 100 * (6 * n + 2 * n_t) + 40 * 2 * n


def _m(value, lo, hi, reached=1.0, reason=None):
    return {"value": value, "ci_low": lo, "ci_high": hi, "resamples_reached": reached, "reason": reason}


def _summary(measures: dict) -> dict:
    runs = [
        {"run": name, "kind": "recovered", "tasks": {"chains": {"run": name, "tokens_to_50": m}}}
        for name, m in measures.items()
    ]
    return {"tasks": ["chains"], "runs": runs}


def test_ranking_by_tokens_to_50_marks_settled_pairs():
    not_reached = _m(None, None, None, 0.0, "not reached by the last evaluation (4000 tokens)")
    summary = _summary(
        {
            "slow": _m(3000.0, 2500.0, None, 0.9),  # its upper bound is not reached
            "fast": _m(1000.0, 800.0, 1200.0),
            "mid": _m(1500.0, 1100.0, 2000.0),
            "never": not_reached,
            "nothing_lost": _m(None, None, None, None, "pruning lost no measurable area"),
        }
    )
    ranked = reach_ranking(summary, "chains", "tokens_to_50")
    assert [r["run"] for r in ranked] == ["fast", "mid", "slow", "never"]  # nothing_lost is not ranked
    # fast [800, 1200] overlaps mid [1100, 2000]; mid lies below slow [2500, not reached]; slow's open upper bound
    # cannot lie below anything.
    assert [r["separated_from_next"] for r in ranked] == [False, True, False, False]
    pairs = ranked_pairs(summary, "chains", "tokens_to_50")  # no resamples to pair: by separate intervals
    assert [[p["faster"], p["slower"]] for p in pairs if p["settled"]] == [
        ["fast", "slow"],
        ["fast", "never"],
        ["mid", "slow"],
        ["mid", "never"],
    ]
    assert not any(p["paired"] for p in pairs) and len(pairs) == 6
    assert reach_text(summary["runs"][0]["tasks"]["chains"]["tokens_to_50"]) == "3.0k [2.5k, not reached]"
    assert reach_text(not_reached) == "not reached"
    assert reach_text(_m(None, 3500.0, None, 0.3, "not reached by the last evaluation (4000 tokens)")) == (
        "not reached [3.5k, not reached]"
    )


def test_generated_tokens_sum_each_logs_mean_length_over_its_steps():
    logs = [
        {"step": 10, "completions/mean_length": 30.0, "loss": 1.0},
        {"step": 20, "completions/mean_length": 20.0, "loss": 0.5},
        {"step": 25, "completions/mean_length": 10.0},
    ]
    # 8 rows a step: 10 steps of 30 tokens, 10 of 20, then (up to step 20 only) nothing more.
    assert generated_tokens(logs, 20, rows_per_step=8) == 8 * (10 * 30 + 10 * 20)
    assert generated_tokens(logs, 25, rows_per_step=8) == 8 * (10 * 30 + 10 * 20 + 5 * 10)
    assert generated_tokens([{"step": 10, "loss": 1.0}], 10, rows_per_step=8) is None


def test_signed_percentile_keeps_the_side_of_an_infinite_draw():
    d = np.array([-np.inf, -np.inf, -3.0, -1.0, 2.0, np.inf])
    assert signed_percentile(d, 0.5) == pytest.approx(-2.0)  # between -3 and -1
    assert signed_percentile(d, 0.1) == -np.inf  # between the two -inf
    assert signed_percentile(d, 0.3) == -np.inf  # between -inf and -3, below the median: the -inf
    assert signed_percentile(d, 0.9) == np.inf  # between 2 and +inf, above the median: the +inf
    assert signed_percentile(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), 0.975) == pytest.approx(4.9)


@pytest.mark.parametrize(
    "first, second, low, high, share, settled",
    [
        # The same shift on every resample: the difference is that shift, whatever the spread of each run.
        ([100, 900, 300, 700], [150, 950, 350, 750], -50.0, -50.0, 1.0, True),
        # The first reaches, the second never does: D = -inf throughout; settled, its bounds infinite.
        ([100, 200, 300, 400], [np.inf] * 4, None, None, 1.0, True),
        # Neither reaches in one of four resamples: a tie (D = 0) there, so the first is first in 3 of 4; the 97.5%
        # percentile is 0 (the tie) and the pair is not settled.
        ([100, 200, 300, np.inf], [np.inf] * 4, None, 0.0, 0.75, False),
        # Each first in two of four: not settled, D from -100 to 100.
        ([100, 300, 200, 400], [200, 200, 300, 300], -100.0, 100.0, 0.5, False),
        # One resample undefined in the second run of four (25% > 5%): no interval, not settled.
        ([100, 200, 300, 400], [200, 300, np.nan, 500], None, None, None, False),
    ],
)
def test_paired_difference_by_hand(first, second, low, high, share, settled):
    out = paired_difference(np.array(first, dtype=float), np.array(second, dtype=float))
    assert out["ci_low"] == (pytest.approx(low) if low is not None else None)
    assert out["ci_high"] == (pytest.approx(high) if high is not None else None)
    assert out["first_share"] == share and out["settled"] is settled


def test_pairing_settles_two_recipes_whose_separate_intervals_overlap():
    """Two recipes with the same per-problem recovery, one on twice the tokens per evaluation: every resample
    crosses 50% at twice the tokens, so the pair is settled paired while the separate intervals overlap."""
    rng = np.random.default_rng(3)
    n, budgets = 60, [8, 16]
    t, p = np.ones((n, 2)), np.zeros((n, 2))
    # Problems recover at different points, so the crossing varies a lot from resample to resample.
    recovered_at = rng.integers(1, 5, n)
    points = [np.repeat((recovered_at <= i)[:, None], 2, axis=1).astype(float) for i in range(1, 5)]
    draws, measures = {}, {}
    for name, tokens in (("lean", [1000, 2000, 3000, 4000]), ("costly", [1300, 2600, 3900, 5200])):
        draws[name] = {}
        out = reach_from_matrices(
            budgets, t, p, points, {"tokens": tokens}, 400, np.random.default_rng(0), draws_out=draws[name]
        )
        measures[name] = out["tokens_to_50"]
    lean, costly = measures["lean"], measures["costly"]
    assert costly["value"] == pytest.approx(1.3 * lean["value"])
    assert lean["ci_high"] > costly["ci_low"]  # the separate intervals overlap
    np.testing.assert_allclose(draws["costly"]["tokens_to_50"], 1.3 * draws["lean"]["tokens_to_50"])

    summary = {
        "tasks": ["chains"],
        "runs": [
            {"run": name, "kind": "recovered", "tasks": {"chains": {"run": name, "tokens_to_50": m}}}
            for name, m in measures.items()
        ],
    }
    key = ("seed", 400, (("chains", tuple(range(n))),))
    paired = {name: {"chains": {"resamples": key, "draws": draws[name]}} for name in draws}
    add_reach(summary, paired)
    (entry,) = summary["pairs_to_reach"]["chains"]["tokens_to_50"]
    assert entry["faster"] == "lean" and entry["paired"] and entry["settled"] and entry["first_share"] == 1.0
    assert entry["difference"]["value"] == pytest.approx(lean["value"] - costly["value"])
    assert entry["difference"]["ci_high"] < 0
    assert summary["settled_pairs"]["chains"]["tokens_to_50"] == [["lean", "costly"]]
    # Resampled on other problems, the two do not pair, and their separate intervals overlap: not settled.
    paired["costly"]["chains"]["resamples"] = ("seed", 400, (("chains", tuple(range(1, n + 1))),))
    add_reach(summary, paired)
    (entry,) = summary["pairs_to_reach"]["chains"]["tokens_to_50"]
    assert not entry["paired"] and not entry["settled"]
