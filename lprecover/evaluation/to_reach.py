"""Tokens and compute to recover: where along training a recovery curve first wins back 50% (and 90%) of what
pruning lost.

A recovery run evaluated at points along its training (``evaluate_at``, then the final model) gives, per point i,
the training tokens ``x_i`` it had consumed (and its compute and wall-clock seconds) and a sequential curve per
problem. Against the teacher t and the pruned base p (the same problems and budgets), each point has a share of the
loss won back (``evaluation.recovery``):

    area share  s_i = clip((A_i - A_p) / (A_t - A_p), 0, 1)      slope share  clip((S_i - S_p) / (S_t - S_p), 0, 1)

The curve starts at the pruned model itself, ``(x_0, s_0) = (0, 0)``: before any training the student is the pruned
base. ``tokens_to_L`` is the FIRST crossing of level L (0.5 or 0.9): the smallest i with ``s_i >= L``, interpolated
linearly in tokens between points i-1 and i,

    x_L = x_{i-1} + (L - s_{i-1}) / (s_i - s_{i-1}) * (x_i - x_{i-1}).

A curve that crosses, falls back and crosses again reports its first crossing (where the level was first reached,
whether or not it held). Compute and seconds are interpolated the same way between the same two points (their
axes start at 0 too). A curve that never reaches L by its last point is "not reached": ``value`` is None and
``reason`` says so. Where pruning lost no measurable area (or slope; ``recovery.measurable``), the share is
undefined and so is every crossing, again None with the reason.

Intervals: a percentile bootstrap over problems, paired as in ``evaluation.recovery``: each resample draws problems
with replacement once, and recomputes from them the teacher's, the pruned base's and every point's curve, every
share, and the crossing. A resample that never reaches L counts as +infinity; the bounds are the 2.5% and 97.5%
percentiles over the resamples (linear interpolation between order statistics, as for the other intervals). A bound
that touches an infinite resample is infinite: it is reported as None, and ``resamples_reached`` (the share of
resamples that reached L) tells it apart from "no interval". So ``ci_high`` is None with ``value`` set when more than
about 2.5% of the resamples never reach (the upper bound is "not reached"), and both bounds are None when about
97.5% never reach. A resample whose share is undefined (its pruned base lost nothing) is left out; where more than
5% are, there is no interval (``resamples_reached`` None), as in ``recovery._measure``. Fewer than two problems
give no interval.

Which of two runs reaches a level first (:func:`paired_difference`): both runs' crossings on the same resamples
(the same problems, seed and number of resamples draw the same problems in every run), their difference per
resample, and the share of resamples in which the first reaches strictly before the second. Paired, the difference
of two recipes that move together over problems is far tighter than the gap between their separate intervals.
"""

import numpy as np

from lprecover.evaluation.metrics import curve_area, scaling_slope
from lprecover.evaluation.records import read_samples
from lprecover.evaluation.recovery_measures import MIN_AREA, MIN_SLOPE, measurable, sequential_matrix

LEVELS = (0.5, 0.9)
AXES = ("tokens", "compute", "seconds")
CI = (0.025, 0.975)


def crossing_index(shares, level: float) -> tuple[int, float] | None:
    """The first crossing of ``level`` by the piecewise-linear curve through ``shares``: ``(i, f)`` with the
    crossing at fraction ``f`` of the way from point i-1 to point i (``(0, 0.0)`` when the first point already
    reaches it), or None where no point reaches it. NaN shares never reach."""
    shares = np.asarray(shares, dtype=float)
    for i, s in enumerate(shares):
        if s >= level:
            if i == 0:
                return 0, 0.0
            before = shares[i - 1]
            return i, float((level - before) / (s - before))
    return None


def at_crossing(axis, crossing: tuple[int, float] | None) -> float | None:
    """The value of ``axis`` (tokens, compute, ...) at ``crossing``, interpolated linearly; None if not reached."""
    if crossing is None:
        return None
    i, f = crossing
    if i == 0:
        return float(axis[0])
    return float(axis[i - 1] + f * (axis[i] - axis[i - 1]))


def crossings(shares: np.ndarray, axis, level: float) -> np.ndarray:
    """Vectorised ``at_crossing(axis, crossing_index(row, level))`` for every row of ``shares`` (resamples x
    points): +inf where a row never reaches ``level``, NaN where its shares are undefined (all NaN)."""
    shares = np.asarray(shares, dtype=float)
    axis = np.asarray(axis, dtype=float)
    reached = shares >= level  # NaN compares False
    first = np.argmax(reached, axis=1)
    rows = np.arange(len(shares))
    prev = np.maximum(first - 1, 0)
    s1, s0 = shares[rows, first], shares[rows, prev]
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(first > 0, (level - s0) / (s1 - s0), 0.0)
    value = np.where(first > 0, axis[prev] + frac * (axis[first] - axis[prev]), axis[0])
    value = np.where(reached.any(axis=1), value, np.inf)
    return np.where(np.isnan(shares).all(axis=1), np.nan, value)


def percentile(draws: np.ndarray, q: float) -> float:
    """The ``q`` percentile of ``draws`` (linear between order statistics); +inf where it touches an infinite draw."""
    ordered = np.sort(draws)
    pos = q * (len(ordered) - 1)
    lo, hi = int(np.floor(pos)), int(np.ceil(pos))
    if np.isinf(ordered[lo]) or np.isinf(ordered[hi]):
        return float("inf")
    return float(ordered[lo] + (pos - lo) * (ordered[hi] - ordered[lo]))


def signed_percentile(draws: np.ndarray, q: float) -> float:
    """The ``q`` percentile of ``draws`` that may hold -inf and +inf (linear between order statistics): where it
    falls between an infinite and another order statistic, the infinite one on its side (-inf below the median, +inf
    above), so that neither bound claims more than the draws show."""
    ordered = np.sort(draws)
    pos = q * (len(ordered) - 1)
    lo, hi = int(np.floor(pos)), int(np.ceil(pos))
    a, b = ordered[lo], ordered[hi]
    if a == b or lo == hi:
        return float(a)
    if np.isinf(a) or np.isinf(b):
        return float(b if q >= 0.5 else a)
    return float(a + (pos - lo) * (b - a))


def paired_difference(first: np.ndarray, second: np.ndarray) -> dict:
    """Whether ``first`` reaches a level before ``second``, on the same resamples of problems.

    ``first`` and ``second`` are two runs' crossings on the SAME resamples (``draws_out`` of
    :func:`reach_from_matrices` with the same seed and problems): +inf where a resample never reaches, NaN where its
    share is undefined. Per resample b,

        D_b = first_b - second_b,  -inf where only second never reaches, +inf where only first never reaches,
              0 where neither reaches (a tie: neither did by its last evaluation).

    Resamples undefined in either run are left out; where more than 5% are (or none are left) there is no interval.

    Returns:
        ``ci_low``, ``ci_high``: the 2.5% and 97.5% percentiles of D (:func:`signed_percentile`; None where infinite
        or where there is no interval); ``first_share``: the share of kept resamples with D < 0 (first strictly
        before); ``settled``: the 97.5% percentile of D is below 0, i.e. first reaches before second in at least
        97.5% of the resamples.
    """
    first, second = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    kept = ~(np.isnan(first) | np.isnan(second))
    out = {"ci_low": None, "ci_high": None, "first_share": None, "settled": False}
    if not kept.any() or kept.sum() < 0.95 * len(first):
        return out
    a, b = first[kept], second[kept]
    neither = np.isinf(a) & np.isinf(b)
    with np.errstate(invalid="ignore"):
        d = np.where(neither, 0.0, a - b)
    lo, hi = signed_percentile(d, CI[0]), signed_percentile(d, CI[1])
    out["ci_low"] = lo if np.isfinite(lo) else None
    out["ci_high"] = hi if np.isfinite(hi) else None
    out["first_share"] = float((d < 0).mean())
    out["settled"] = bool(hi < 0)
    return out


def _shares(run_values: np.ndarray, pruned: np.ndarray, teacher: np.ndarray) -> np.ndarray:
    """clip((r - p) / (t - p), 0, 1) for every point (last axis), NaN where t - p <= 0."""
    lost = (teacher - pruned)[..., None]
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(lost > 0, (run_values - pruned[..., None]) / np.where(lost > 0, lost, 1.0), np.nan)
    return np.clip(share, 0.0, 1.0)


def _loss_measurable(t, p, bt, bp, minimum: float) -> bool:
    lo = None if bt is None else float(np.quantile(bt - bp, CI[0]))
    return measurable({"value": float(t - p), "ci_low": lo}, minimum)


def _reach(value: float, draws: np.ndarray | None, reason: str | None) -> dict:
    out = {"value": None if not np.isfinite(value) else float(value), "ci_low": None, "ci_high": None}
    out |= {"resamples_reached": None, "reason": reason}
    if draws is not None:
        ok = draws[~np.isnan(draws)]
        if len(ok) >= 0.95 * len(draws) and len(ok) > 0:
            lo, hi = (percentile(ok, q) for q in CI)
            out["ci_low"] = lo if np.isfinite(lo) else None
            out["ci_high"] = hi if np.isfinite(hi) else None
            out["resamples_reached"] = float(np.isfinite(ok).mean())
    return out


def reach_from_matrices(
    budgets,
    teacher: np.ndarray,
    pruned: np.ndarray,
    points: list[np.ndarray],
    axes: dict[str, list[float]],
    n_boot: int = 1000,
    rng=None,
    levels=LEVELS,
    draws_out: dict | None = None,
) -> dict:
    """Tokens (and every other axis in ``axes``) to reach each level of the area and slope shares.

    Args:
        budgets: the sequential curve's thinking budgets (columns of every matrix).
        teacher, pruned: per-problem accuracy (problems x budgets).
        points: one such matrix per evaluation along training, in training order (rows: the same problems).
        axes: ``{"tokens": [...], "compute": [...], ...}``, each the point's value (same order as ``points``); the
            curve starts at 0 on every axis with the pruned model.

    Returns:
        ``{"AXIS_to_NN": {...}, "AXIS_to_NN_slope": {...}}`` for NN in 50, 90: ``value``, ``ci_low``, ``ci_high``,
        ``resamples_reached`` and ``reason`` (module docstring).
    """
    rng = np.random.default_rng(0) if rng is None else rng
    runs = [teacher, pruned, *points]
    n = len(teacher)
    idx = rng.integers(0, n, (n_boot, n)) if n >= 2 and n_boot > 0 else None
    means = [np.nanmean(m, axis=0) for m in runs]
    boots = None if idx is None else [np.nanmean(m[idx], axis=1) for m in runs]
    out = {}
    measures = [("", curve_area, MIN_AREA, "area")]
    if len([b for b in budgets if b > 0]) >= 2:
        measures.append(("_slope", scaling_slope, MIN_SLOPE, "slope"))
    for suffix, measure, minimum, what in measures:
        t, p, *r = (measure(budgets, c) for c in means)
        bt, bp, br = (None, None, None)
        if boots is not None:
            bt, bp, *rest = (measure(budgets, d) for d in boots)
            br = np.stack(rest, axis=1)  # resamples x points
        lost = _loss_measurable(t, p, bt, bp, minimum)
        shares = np.concatenate([[0.0], _shares(np.array(r), np.array(p), np.array(t))])
        draws = None
        if br is not None:
            draws = np.concatenate([np.zeros((len(br), 1)), _shares(br, bp, bt)], axis=1)
            draws[np.isnan(draws[:, 1:]).all(axis=1), 0] = np.nan  # an undefined resample is undefined throughout
        for level in levels:
            name = f"{round(100 * level)}{suffix}"
            for axis_name, values in axes.items():
                axis = np.concatenate([[0.0], np.asarray(values, dtype=float)])
                key = f"{axis_name}_to_{name}"
                if not lost:
                    out[key] = _reach(np.nan, None, f"pruning lost no measurable {what}")
                    continue
                if np.isnan(axis).any():
                    out[key] = _reach(np.nan, None, f"a point has no recorded {axis_name}")
                    continue
                value = at_crossing(axis, crossing_index(shares, level))
                reason = None
                if value is None:
                    value = np.inf
                    reason = f"not reached by the last evaluation ({axis[-1]:.4g} {axis_name})"
                per_resample = None if draws is None else crossings(draws, axis, level)
                if draws_out is not None and per_resample is not None:
                    draws_out[key] = per_resample
                out[key] = _reach(value, per_resample, reason)
    return out


def reach_measures(
    teacher_dir, pruned_dir, points: list[dict], n_boot: int = 1000, seed: int = 0, draws_out: dict | None = None
) -> dict:
    """Tokens, compute and seconds to 50% and 90% of the loss, for every task the runs share (module docstring).

    Args:
        points: in training order, ``{"eval_dir", "tokens", "compute", "seconds"}`` each (the final model last);
            a missing value on an axis makes that axis's crossings None.
        draws_out: where given, ``{task: {"resamples": KEY, "draws": {measure: crossings per resample}}}``; two
            runs whose KEYs are equal were resampled on the same problems, so their draws pair.

    Returns:
        ``{task: {"tokens_to_50": {...}, ...}}``, over the problems every run answered.
    """
    runs = [read_samples(d) for d in (teacher_dir, pruned_dir, *(p["eval_dir"] for p in points))]
    tasks = set.intersection(*({r["task"] for r in recs if r["mode"] == "sequential"} for recs in runs))
    axes = {a: [np.nan if p.get(a) is None else float(p[a]) for p in points] for a in AXES}
    rng = np.random.default_rng(seed)
    out = {}
    drawn = []  # what decided the resamples so far: the stream of one seed, drawn task by task
    for task in sorted(tasks):
        built = [sequential_matrix(recs, task) for recs in runs]
        budgets = built[0][0]
        if any(b[0] != budgets for b in built):
            continue  # not evaluated on the same budgets: no comparable curves
        problems = sorted(set.intersection(*(set(b[1]) for b in built)))
        if not problems:
            continue
        t, p, *r = (np.array([b[1][q] for q in problems]) for b in built)
        task_draws: dict = {}
        out[task] = {"problems": len(problems)} | reach_from_matrices(
            budgets, t, p, r, axes, n_boot, rng, draws_out=task_draws
        )
        drawn.append((task, tuple(problems)))
        if draws_out is not None:
            draws_out[task] = {"resamples": (seed, n_boot, tuple(drawn)), "draws": task_draws}
    return out
