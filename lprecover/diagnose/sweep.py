"""The layer sweep: remove each layer alone and measure what breaks.

Per removed layer i, with the teacher (the unpruned model) and the model without layer i evaluated on the same
problems by ``run_eval`` (the same records as ``lprecover prune prune.method=selection prune.layers=[i]`` followed
by ``lprecover eval``):

- ``reasoning_area_drop = A(teacher) - A(pruned)``, A the normalised area under the sequential curve
  (``metrics.curve_area``: mean accuracy on a log2(1 + budget) axis);
- ``reasoning_slope_drop = S(teacher) - S(pruned)``, S the accuracy gained per doubling of the budget
  (``metrics.scaling_slope``);
- ``knowledge_drop``: the control task's accuracy at its largest budget, teacher minus pruned.

Area and slope are linear in the curve, so each equals the mean over problems of the problem's own difference
(its curve is its 0/1 correctness per budget, averaged over samples): the per-problem differences give the 95%
intervals (``metrics.bootstrap_ci``, resampling problems) and the resamples of the criterion fidelity.
"""

import copy
from pathlib import Path

import numpy as np

from lprecover.diagnose.fidelity import direction
from lprecover.evaluation.config import EvalConfig
from lprecover.evaluation.metrics import bootstrap_ci, curve_area, scaling_slope
from lprecover.evaluation.records import read_samples
from lprecover.evaluation.run import run_eval, saved_results
from lprecover.pruning.criteria import Calibration, decide
from lprecover.surgery import remove_layers


def problem_curves(records: list[dict], task: str, budgets: list[int], samples: int, ids: list[str] | None = None):
    """``(problem ids, [problems, budgets] accuracy)`` of ``task``'s sequential records (mean over samples).

    Args:
        ids: the problems to take, in this order (default: as they first appear).
    """
    rows = [r for r in records if r["task"] == task and r["mode"] == "sequential" and r["sample"] < samples]
    ids = ids or list(dict.fromkeys(r["problem_id"] for r in rows))
    col = {b: j for j, b in enumerate(budgets)}
    total = np.zeros((len(ids), len(budgets)))
    count = np.zeros((len(ids), len(budgets)))
    row = {p: i for i, p in enumerate(ids)}
    for r in rows:
        if r["problem_id"] in row and r["budget"] in col:
            total[row[r["problem_id"]], col[r["budget"]]] += float(r["correct"])
            count[row[r["problem_id"]], col[r["budget"]]] += 1
    if (count == 0).any():
        raise ValueError(f"The {task} records lack some problems or budgets; finish their evaluation first.")
    return ids, total / count


def interval(per_problem: np.ndarray, n_boot: int, seed: int) -> dict:
    """``{value, ci_low, ci_high}``: the mean of per-problem values and its percentile bootstrap interval."""
    per_problem = np.asarray(per_problem, dtype=float)
    lo, hi = bootstrap_ci(per_problem, n_boot, seed)
    finite = np.isfinite([lo, hi]).all()
    return {"value": float(per_problem.mean()), "ci_low": lo if finite else None, "ci_high": hi if finite else None}


def reasoning_damage(teacher: list[dict], pruned: list[dict], task: str, budgets: list[int], samples: int) -> dict:
    """Per-problem area and slope drops (teacher minus pruned) on ``task``: ``{"ids", "area", "slope"}``."""
    ids, t = problem_curves(teacher, task, budgets, samples)
    _, p = problem_curves(pruned, task, budgets, samples, ids)
    return {
        "ids": ids,
        "area": np.asarray(curve_area(budgets, t)) - np.asarray(curve_area(budgets, p)),
        "slope": np.asarray(scaling_slope(budgets, t)) - np.asarray(scaling_slope(budgets, p)),
    }


def knowledge_damage(teacher: list[dict], pruned: list[dict], task: str, budgets: list[int], samples: int):
    """Per-problem accuracy drop at the control's largest budget (teacher minus pruned)."""
    top = [max(budgets)]
    ids, t = problem_curves(teacher, task, top, samples)
    _, p = problem_curves(pruned, task, top, samples, ids)
    return (t - p)[:, 0]


def evaluate_removed(model, tokenizer, layers: list[int], cfg: EvalConfig, folder: Path, model_cfg) -> list[dict]:
    """The records of ``model`` without ``layers`` (a copy, cut by ``surgery.remove_layers``), evaluated into
    ``folder`` by ``run_eval``; a finished evaluation there is read back, not redone."""
    if saved_results(folder) is None:
        pruned = copy.deepcopy(model)
        remove_layers(pruned, layers, method="selection")
        run_eval(pruned, tokenizer, cfg, folder, model_cfg, title=f"without layers {layers}")
        del pruned
    return read_samples(folder)


def criterion_scores(model, cal: Calibration | None, method: str) -> tuple[list[float], int]:
    """``(score per layer, direction)`` of a criterion on ``model`` (left as it was): ``direction`` is +1 when the
    criterion removes its lowest score first, -1 when its highest (``fidelity.direction``)."""
    decision = decide(model, cal, method, 1, seed=0)
    return [float(s) for s in decision.scores], direction(decision.scores, decision.removed[0])
