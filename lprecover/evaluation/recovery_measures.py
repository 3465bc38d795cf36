"""Recovery measures: how a recovered model's scaling curve stands against the teacher's and the pruned model's.

Three runs evaluated on the same problems and budgets (teacher t, pruned p, recovered r) give, per task, the
sequential curve (accuracy over thinking budgets) and the parallel curve (pass@k over k). Of each curve:

- area ``A`` (``metrics.curve_area``: the mean height on a log2(1 + x) axis) and, for the sequential curve, slope
  ``S`` (``metrics.scaling_slope``: accuracy gained per doubling of the budget);
- ``area_lost = A_t - A_p`` and ``slope_lost = S_t - S_p``: what pruning cost;
- ``area_recovered_share = clip((A_r - A_p) / (A_t - A_p), 0, 1)``: the share of what pruning lost that recovery
  won back, defined only where the loss is measurable (below); ``slope_recovered_share`` likewise for slopes;
- ``area_ratio_to_teacher = A_r / A_t`` (defined where ``A_t >= MIN_AREA``) and
  ``slope_ratio_to_teacher = S_r / S_t`` (defined where the teacher scales, ``S_t >= MIN_SLOPE``: the same rule as
  ``verdict.slope_share_of_teacher``); both exceed 1 when the recovered model beats the teacher, and the floor keeps
  them below 1 / 0.02 = 50 in size;
- ``area_gap_to_teacher = A_r - A_t`` and ``slope_gap_to_teacher = S_r - S_t``: always defined.

A loss is *measurable* when its point value is at least the stated minimum (``MIN_AREA`` of accuracy for areas,
``MIN_SLOPE`` of accuracy per doubling for slopes) and its paired 95% interval excludes zero. A share of a loss
that is not measurable is undefined (``None``): a pruned model that lost nothing, or 0.0125, has nothing to recover,
and dividing by its loss would print 1267%.

Every interval is a percentile bootstrap over problems, resampled jointly across the three runs (a paired design):
each resample recomputes the three curves and every measure from them. Fewer than two problems give no interval.
"""

import numpy as np

from lprecover.config import ConfigError
from lprecover.evaluation.metrics import curve_area, pass_at_k, scaling_slope
from lprecover.evaluation.records import one_setting, read_samples

MIN_AREA = 0.02  # accuracy: an area loss below this is no measurable loss, and a teacher area below it no base
MIN_SLOPE = 0.02  # accuracy per doubling of the budget: a slope loss (or a teacher's slope) below this is flat


def sequential_matrix(records, task) -> tuple[list[int], dict[str, np.ndarray]]:
    """Per problem, accuracy at each budget (the mean over its sequential samples, as in the curve)."""
    rows = [r for r in records if r["task"] == task and r["mode"] == "sequential"]
    one_setting(rows, f"{task} sequential")
    budgets = sorted({r["budget"] for r in rows})
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, np.ndarray] = {}
    for r in rows:
        j = budgets.index(r["budget"])
        sums.setdefault(r["problem_id"], np.zeros(len(budgets)))[j] += float(r["correct"])
        counts.setdefault(r["problem_id"], np.zeros(len(budgets)))[j] += 1
    with np.errstate(invalid="ignore"):
        return budgets, {p: sums[p] / counts[p] for p in sums}


def _parallel_matrix(records, task) -> tuple[list[int], dict[str, np.ndarray]]:
    """Per problem, unbiased pass@k at k = 1, 2, 4, ... up to its sample count (records of one budget)."""
    rows = [r for r in records if r["task"] == task and r["mode"] == "parallel"]
    budgets = sorted({r["budget"] for r in rows})
    if len(budgets) > 1:
        raise ConfigError(f"The {task} parallel records span budgets {budgets}: evaluate each into its own folder.")
    one_setting(rows, f"{task} parallel")
    by_problem: dict[str, list[bool]] = {}
    for r in rows:
        by_problem.setdefault(r["problem_id"], []).append(r["correct"])
    if not by_problem:
        return [], {}
    n = min(len(v) for v in by_problem.values())
    ks = [2**i for i in range(n.bit_length()) if 2**i <= n]
    return ks, {p: np.array([pass_at_k(len(v), sum(v), k) for k in ks]) for p, v in by_problem.items()}


def _measure(value, draws: np.ndarray | None) -> dict:
    """``{"value", "ci_low", "ci_high"}``; None where undefined, and no interval where too few resamples are defined
    (under 95% of them: an interval over the rest would be cut by the condition that defines the measure)."""
    value = float(value) if value is not None and np.isfinite(value) else None
    lo = hi = None
    if value is not None and draws is not None:
        ok = draws[np.isfinite(draws)]
        if len(ok) >= 0.95 * len(draws) and len(ok) > 0:
            lo, hi = (float(q) for q in np.quantile(ok, [0.025, 0.975]))
    return {"value": value, "ci_low": lo, "ci_high": hi}


def _share(recovered, pruned, teacher):
    """clip((r - p) / (t - p), 0, 1), NaN where t - p <= 0."""
    lost = np.asarray(teacher - pruned, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(lost > 0, (recovered - pruned) / np.where(lost > 0, lost, 1.0), np.nan)
    return np.clip(share, 0.0, 1.0)


def _ratio(recovered, teacher, floor):
    """r / t, NaN where t < floor."""
    teacher = np.asarray(teacher, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(teacher >= floor, recovered / np.where(teacher >= floor, teacher, 1.0), np.nan)


def measurable(loss: dict, minimum: float) -> bool:
    """A loss is measurable when its point value reaches ``minimum`` and its interval, where one exists, excludes 0."""
    if loss["value"] is None or loss["value"] < minimum:
        return False
    return loss["ci_low"] is None or loss["ci_low"] > 0


def _family(name: str, values: tuple, draws: tuple | None, minimum: float, floor: float | None = None) -> dict:
    """The measures of one quantity (area or slope): each run's value, the loss, the shares and ratios."""
    t, p, r = values
    bt, bp, br = draws if draws is not None else (None, None, None)
    out = {f"teacher_{name}": _measure(t, bt), f"pruned_{name}": _measure(p, bp)}
    out[f"recovered_{name}"] = _measure(r, br)
    out[f"{name}_lost"] = _measure(t - p, None if bt is None else bt - bp)
    lost = measurable(out[f"{name}_lost"], minimum)
    share = _share(r, p, t) if lost else np.nan
    out[f"{name}_recovered_share"] = _measure(share, None if bt is None or not lost else _share(br, bp, bt))
    floor = minimum if floor is None else floor
    teacher = out[f"teacher_{name}"]
    base = teacher["value"] is not None and teacher["value"] >= floor
    ratio = _ratio(r, t, floor) if base else np.nan
    out[f"{name}_ratio_to_teacher"] = _measure(ratio, None if bt is None or not base else _ratio(br, bt, floor))
    out[f"{name}_gap_to_teacher"] = _measure(r - t, None if bt is None else br - bt)
    return out


def curve_measures(xs, matrices: list[np.ndarray], n_boot: int, rng, with_slope: bool) -> dict:
    """Every measure of one curve kind, from per-problem matrices (problems x budgets) of teacher, pruned, recovered.

    Args:
        with_slope: also the slope measures (the sequential curve; a pass@k curve's slope is not a scaling claim).
    """
    n = len(matrices[0])
    points = [np.nanmean(m, axis=0) for m in matrices]
    draws = None
    if n >= 2 and n_boot > 0:
        idx = rng.integers(0, n, (n_boot, n))
        draws = [np.nanmean(m[idx], axis=1) for m in matrices]  # n_boot resampled curves per run
    areas = tuple(curve_area(xs, c) for c in points)
    out = {"problems": n}
    out |= _family("area", areas, None if draws is None else tuple(curve_area(xs, d) for d in draws), MIN_AREA)
    if with_slope and len(xs) > 1:
        slopes = tuple(scaling_slope(xs, c) for c in points)
        boot = None if draws is None else tuple(scaling_slope(xs, d) for d in draws)
        out |= _family("slope", slopes, boot, MIN_SLOPE)
    return out


def recovery_measures(teacher_dir, pruned_dir, recovered_dir, n_boot: int = 1000, seed: int = 0) -> dict:
    """The recovery measures (module docstring) of every task the three runs evaluated on the same budgets (or k).

    Returns:
        ``{task: {"sequential": {...}, "parallel": {...}}}``; each measure is ``{"value", "ci_low", "ci_high"}``,
        with ``problems`` the number of problems all three runs answered.
    """
    runs = [read_samples(d) for d in (teacher_dir, pruned_dir, recovered_dir)]
    tasks = set.intersection(*({r["task"] for r in recs} for recs in runs))
    rng = np.random.default_rng(seed)
    out = {}
    for task in sorted(tasks):
        out[task] = {}
        for name, build in (("sequential", sequential_matrix), ("parallel", _parallel_matrix)):
            built = [build(recs, task) for recs in runs]
            xs = built[0][0]
            if not xs or any(b[0] != xs for b in built):
                continue  # the runs did not share budgets (or k): no comparable curve
            problems = sorted(set.intersection(*(set(b[1]) for b in built)))
            if not problems:
                continue
            matrices = [np.array([b[1][p] for p in problems]) for b in built]
            out[task][name] = curve_measures(xs, matrices, n_boot, rng, with_slope=name == "sequential")
    return out
