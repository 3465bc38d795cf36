"""Recovery scores: how much of the scaling curve that pruning lost a recovered model wins back.

For runs that share a teacher, the score is ``(area(recovered) - area(pruned)) / (area(teacher) - area(pruned))``
for the sequential curve (accuracy over thinking budgets) and the parallel curve (pass@k over k). The interval
resamples problems jointly across the three runs, so it reflects the paired design.
"""

import numpy as np

from lprecover.config import ConfigError
from lprecover.evaluation.metrics import curve_area, pass_at_k, recovery_score, scaling_slope
from lprecover.evaluation.records import one_setting, read_samples


def _sequential_matrix(records, task) -> tuple[list[int], dict[str, np.ndarray]]:
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


def _score(xs, teacher, pruned, recovered, problems, idx, measure=curve_area):
    values = [measure(xs, np.nanmean([m[problems[i]] for i in idx], axis=0)) for m in (teacher, pruned, recovered)]
    return recovery_score(*values)


def _interval(xs, matrices, problems, draws, measure) -> dict:
    point = _score(xs, *matrices, problems, range(len(problems)), measure)
    boots = [b for idx in draws if np.isfinite(b := _score(xs, *matrices, problems, idx, measure))]
    lo, hi = np.quantile(boots, [0.025, 0.975]) if boots else (np.nan, np.nan)
    return {"score": point, "ci_low": float(lo), "ci_high": float(hi), "problems": len(problems)}


def recovery_scores(teacher_dir, pruned_dir, recovered_dir, n_boot: int = 1000, seed: int = 0) -> dict:
    """Sequential and parallel recovery scores per task, each with a 95% bootstrap interval over problems.

    The sequential entry also carries ``slope``: the fraction of the scaling slope (accuracy per doubling of the
    budget, ``metrics.scaling_slope``) lost to pruning that recovery won back, with an interval from the same
    resamples.

    Returns:
        ``{task: {"sequential": {"score", "ci_low", "ci_high", "problems", "slope": {...}}, "parallel": {...}}}``
        for the tasks all three runs evaluated on the same problems and budgets.
    """
    runs = [read_samples(d) for d in (teacher_dir, pruned_dir, recovered_dir)]
    tasks = set.intersection(*({r["task"] for r in recs} for recs in runs))
    rng = np.random.default_rng(seed)
    out = {}
    for task in sorted(tasks):
        out[task] = {}
        for name, build in (("sequential", _sequential_matrix), ("parallel", _parallel_matrix)):
            built = [build(recs, task) for recs in runs]
            xs = built[0][0]
            if not xs or any(b[0] != xs for b in built):
                continue  # the runs did not share budgets (or k): no comparable curve
            problems = sorted(set.intersection(*(set(b[1]) for b in built)))
            if not problems:
                continue
            matrices = [b[1] for b in built]
            draws = [rng.integers(0, len(problems), len(problems)) for _ in range(n_boot)]
            out[task][name] = _interval(xs, matrices, problems, draws, curve_area)
            if name == "sequential" and len(xs) > 1:
                out[task][name]["slope"] = _interval(xs, matrices, problems, draws, scaling_slope)
    return out
