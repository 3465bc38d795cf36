"""Criterion fidelity: does a pruning criterion's per-layer score predict the damage the sweep measured?

Sign convention. Every criterion has a "remove first" end: ``pruning.criteria`` removes the lowest scores for all
but ``tail`` (which removes the deepest layers, whose score, the depth, is highest). A criterion's *importance* of
layer l is ``direction * score_l``, with ``direction = +1`` when the layer it removes first (``decide`` with one
layer) has the lowest score and ``-1`` when it has the highest. So importance is high where the criterion keeps.

Fidelity to a damage D (one number per layer, higher = worse to remove):

    rho = Spearman(importance, D) = Pearson(rank(importance), rank(D)), ties given their average rank.

rho = 1: the criterion orders the layers exactly as the damage does (what it removes first hurts least); 0: no
relation; -1: it removes the most damaging layers first. rho is undefined (None) with fewer than three layers or
when either side is constant (every rank tied). Its 95% interval resamples problems (traces, for the NLL damage):
each resample recomputes every layer's damage as the mean over the resampled problems, then rho; the criterion's
scores are held fixed (they come from calibration data, not from the problems). The interval is the 2.5 and 97.5
percentiles over resamples where rho is defined; ``resamples_defined`` is their share (below 1 when the damage
rests on a few problems: a resample without them leaves every layer's damage tied, and rho undefined).

``first_pick``: the layer the criterion removes first; ``first_pick_rank``: that layer's rank in the sweep's order
from least to most damaging (1 = the least damaging layer, ties averaged), per damage.
"""

import math

import numpy as np

MIN_LAYERS = 3


def average_ranks(values) -> np.ndarray:
    """Ranks 1..n of ``values``, tied values sharing the mean of the ranks they span (``[10, 20, 20]`` -> 1, 2.5,
    2.5)."""
    x = np.asarray(values, dtype=float)
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x), dtype=float)
    sorted_x = x[order]
    start = 0
    while start < len(x):
        end = start
        while end + 1 < len(x) and sorted_x[end + 1] == sorted_x[start]:
            end += 1
        ranks[order[start : end + 1]] = (start + end) / 2 + 1
        start = end + 1
    return ranks


def spearman(a, b) -> float | None:
    """Spearman's rank correlation with average ranks for ties; None where undefined (see the module docstring)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if len(a) < MIN_LAYERS:
        return None
    ra, rb = average_ranks(a), average_ranks(b)
    da, db = ra - ra.mean(), rb - rb.mean()
    den = math.sqrt(float(da @ da) * float(db @ db))
    if den == 0:
        return None
    return float(da @ db) / den


def spearman_ci(importance, per_problem: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict:
    """``{value, ci_low, ci_high, resamples_defined}`` of Spearman(importance, damage), damage =
    ``per_problem.mean(axis=1)``.

    Args:
        per_problem: ``[layers, problems]``, each problem's damage when each layer is removed.
    """
    per_problem = np.asarray(per_problem, dtype=float)
    value = spearman(importance, per_problem.mean(axis=1))
    lo = hi = defined = None
    n = per_problem.shape[1]
    if value is not None and n >= 2:
        rng = np.random.default_rng(seed)
        draws = rng.integers(0, n, size=(n_boot, n))
        rhos = [spearman(importance, per_problem[:, d].mean(axis=1)) for d in draws]
        rhos = [r for r in rhos if r is not None]
        defined = len(rhos) / n_boot
        if rhos:
            lo, hi = float(np.quantile(rhos, 0.025)), float(np.quantile(rhos, 0.975))
    return {"value": value, "ci_low": lo, "ci_high": hi, "resamples_defined": defined}


def direction(scores: list[float], first: int) -> int:
    """+1 when the criterion's first removal is its lowest score (importance = score), -1 when its highest."""
    finite = [s for s in scores if math.isfinite(s)]
    return -1 if scores[first] == max(finite) and scores[first] != min(finite) else 1


def first_pick_rank(first: int, damage: list[float]) -> float | None:
    """Rank of layer ``first`` among the layers ordered from least to most damaging (1 = least), ties averaged."""
    d = np.asarray(damage, dtype=float)
    if not np.isfinite(d).all():
        return None
    return float(average_ranks(d)[first])


def fidelity(scores: list[float], sign: int, damages: dict[str, np.ndarray | None], n_boot: int, seed: int) -> dict:
    """One criterion's fidelity to each damage.

    Args:
        scores: the criterion's score per swept layer.
        sign: its ``direction`` (importance = sign * score).
        damages: name -> ``[layers, problems]`` per-problem damage, or None when not measured.

    Returns:
        ``{"direction", "importance", "first_pick_index", "spearman_<name>": {value, ci_low, ci_high} or None,
        "first_pick_rank": {name: rank or None}}``; the first pick is the swept layer of lowest importance (the
        lowest index among ties, as ``pruning.criteria`` breaks them).
    """
    importance = [sign * s for s in scores]
    first = int(np.nanargmin(importance))
    out = {"direction": sign, "importance": importance, "first_pick_index": first, "first_pick_rank": {}}
    for name, per_problem in damages.items():
        if per_problem is None:
            out[f"spearman_{name}"] = None
            out["first_pick_rank"][name] = None
            continue
        out[f"spearman_{name}"] = spearman_ci(importance, per_problem, n_boot, seed)
        out["first_pick_rank"][name] = first_pick_rank(first, per_problem.mean(axis=1))
    return out
