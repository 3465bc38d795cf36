"""The scaling curves and their summary, computed from the records of an evaluation: the sequential curve
(accuracy against the thinking budget), the parallel curve (pass@k, maj@k, cov@k against k), the summary numbers
of each (area, slope, accuracy at each end, failure rates), and their figure."""

from pathlib import Path

import numpy as np

from lprecover.atomic import write_figure
from lprecover.evaluation.metrics import (
    accuracy_ci,
    answered_at_k,
    cov_at_k,
    curve_area,
    maj_at_k,
    maj_at_k_first,
    pass_at_k,
    scaling_slope,
)
from lprecover.evaluation.records import one_setting
from lprecover.evaluation.scoring import vote_keys


def _mean(values) -> float:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else float("nan")


def sequential_curve(records: list[dict], problems, budgets, n_boot, seed, samples: int = 1) -> dict:
    """Accuracy at each budget (increasing), with a 95% interval over problems that stays honest at 0 and 1.

    A problem's accuracy is the mean over its first ``samples`` samples (one per seed in the seed repository's
    protocol). ``ci_low``/``ci_high`` come from ``metrics.accuracy_ci`` over the n problems, and ``ci_method`` names
    how: ``"wilson"`` where every problem scores 0 or 1 (the Wilson score interval of the proportion, so 100 of 100
    correct reads [0.963, 1], never [1, 1]); ``"wilson+bootstrap"`` where samples disagree within a problem (the
    union of Wilson at the mean and the bootstrap resampling problems, each problem's samples kept together).
    """
    budgets = sorted(budgets)
    wanted = {p.id for p in problems}
    rows_all = [r for r in records if r["budget"] in budgets and r["sample"] < samples and r["problem_id"] in wanted]
    one_setting(rows_all, "sequential")
    out = {"budget": [], "accuracy": [], "ci_low": [], "ci_high": [], "ci_method": [], "thinking_tokens": []}
    out |= {"truncated": [], "answer_tokens": [], "answer_truncated": []}
    for b in budgets:
        rows = [r for r in rows_all if r["budget"] == b]
        by_problem: dict[str, list[float]] = {}
        for r in rows:
            by_problem.setdefault(r["problem_id"], []).append(float(r["correct"]))
        per_problem = np.array([np.mean(by_problem[p.id]) for p in problems if p.id in by_problem])
        lo, hi, method = accuracy_ci(per_problem, n_boot, seed)
        out["budget"].append(b)
        out["accuracy"].append(float(per_problem.mean()) if len(per_problem) else float("nan"))
        out["ci_low"].append(lo)
        out["ci_high"].append(hi)
        out["ci_method"].append(method)
        for name in ("thinking_tokens", "truncated", "answer_tokens", "answer_truncated"):
            out[name].append(_mean(r.get(name) for r in rows))
    return out


def parallel_curve(records: list[dict], problems, n: int, ks: list[int], n_boot, seed) -> dict:
    """pass@k, maj@k, cov@k and answered@k over each problem's first ``n`` samples at one budget.

    - ``pass_at_k``: unbiased pass@k over all n samples (Chen et al. 2021), as lm-eval and the seed repository.
    - ``maj_at_k``: majority vote averaged over subsets of k samples; answers math-verify holds equal vote together
      (``scoring.vote_keys``), a failed extraction votes "no answer", and the value ignores sample order.
    - ``maj_first_at_k``: the references' maj@k, the vote of the first k samples (lm-eval ``take_first_k``).
    - ``cov_at_k``: s1's cov@k, whether any of the first k samples is correct.
    - ``answered_at_k``: the chance that k samples include an extractable answer.
    - ``pass_at_1``: mean per-sample correctness, whatever ``ks`` holds.
    - ``ci_low``/``ci_high`` (pass@k) and ``maj_ci_low``/``maj_ci_high`` (maj@k): 95% intervals over problems from
      ``metrics.accuracy_ci``, named by ``ci_method``/``maj_ci_method``: Wilson where every problem scores 0 or 1
      (pass@n always does), else the union of Wilson and the bootstrap, so all problems at 1 never read [1, 1].
    """
    if len({r["budget"] for r in records}) > 1:
        raise ValueError("parallel_curve was given records of several budgets; pass the records of one.")
    by_problem = {p.id: [] for p in problems}
    for r in records:
        if r["problem_id"] in by_problem and r["sample"] < n:
            by_problem[r["problem_id"]].append(r)
    one_setting([r for rows in by_problem.values() for r in rows], "parallel")
    by_problem = {p: sorted(rows, key=lambda r: r["sample"]) for p, rows in by_problem.items() if rows}
    short = {p: len(rows) for p, rows in by_problem.items() if len(rows) < max(ks)}
    if short:
        raise ValueError(f"Problems {sorted(short)[:5]} have fewer samples than k={max(ks)}; finish the evaluation.")
    names = ("pass_at_k", "maj_at_k", "maj_first_at_k", "cov_at_k", "answered_at_k", "ci_low", "ci_high")
    names += ("maj_ci_low", "maj_ci_high", "ci_method", "maj_ci_method")
    out = {"k": list(ks), **{name: [] for name in names}}
    correct = {p: [bool(r["correct"]) for r in rows] for p, rows in by_problem.items()}
    # Clustered once per problem, not per k: "x = 5", "5" and "5.0" are one vote.
    keys = {
        p: vote_keys([r["extracted"] for r in rows], rows[0]["task"], [r.get("canonical") for r in rows])
        for p, rows in by_problem.items()
    }
    for k in ks:
        passes, majs, firsts, covs, answered = [], [], [], [], []
        for p, rows in by_problem.items():
            c, votes = correct[p], keys[p]
            passes.append(pass_at_k(len(c), sum(c), k))
            majs.append(maj_at_k(votes, c, k, seed=seed))
            firsts.append(maj_at_k_first(votes, c, k))
            covs.append(cov_at_k(c, k))
            answered.append(answered_at_k(len(rows), sum(r["extracted"] is not None for r in rows), k))
        lo, hi, method = accuracy_ci(np.array(passes), n_boot, seed)
        mlo, mhi, maj_method = accuracy_ci(np.array(majs), n_boot, seed)
        values = (np.mean(passes), np.mean(majs), np.mean(firsts), np.mean(covs), np.mean(answered), lo, hi)
        for name, value in zip(names, values):
            out[name].append(float(value))
        out["maj_ci_low"].append(mlo)
        out["maj_ci_high"].append(mhi)
        out["ci_method"].append(method)
        out["maj_ci_method"].append(maj_method)
    out["pass_at_1"] = _mean(np.mean(c) for c in correct.values())
    return out


def summarize(curves: dict, records: list[dict]) -> dict:
    summary = {}
    for task in sorted(set(curves["sequential"]) | set(curves["parallel"])):
        s = {}
        seq = curves["sequential"].get(task)
        if seq:
            s["sequential_area"] = curve_area(seq["budget"], seq["accuracy"])
            s["accuracy_at_max_budget"] = seq["accuracy"][int(np.argmax(seq["budget"]))]
            s["accuracy_at_min_budget"] = seq["accuracy"][int(np.argmin(seq["budget"]))]
            s["scaling_slope"] = scaling_slope(seq["budget"], seq["accuracy"])
        par = curves["parallel"].get(task)
        if par:
            s["pass_at_1"] = par["pass_at_1"]
            s["pass_at_k_max"] = par["pass_at_k"][-1]
            s["maj_at_k_max"] = par["maj_at_k"][-1]
            s["parallel_area"] = curve_area(par["k"], par["pass_at_k"])
        rows = [r for r in records if r["task"] == task]
        s["extraction_failure_rate"] = _mean(r["extracted"] is None for r in rows)
        # An answer cut by its cap is scored on what it wrote so far: report how often, beside extraction failures.
        s["answer_truncation_rate"] = _mean(r.get("answer_truncated") for r in rows)
        summary[task] = s
    return summary


def plot_curves(curves: dict, path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted(set(curves["sequential"]) | set(curves["parallel"]))
    fig, axes = plt.subplots(len(tasks), 2, figsize=(10, 3.2 * len(tasks)), squeeze=False)
    for row, task in zip(axes, tasks):
        seq, par = curves["sequential"].get(task), curves["parallel"].get(task)
        if seq:
            row[0].plot(seq["budget"], seq["accuracy"], marker="o")
            row[0].fill_between(seq["budget"], seq["ci_low"], seq["ci_high"], alpha=0.2)
            row[0].set_xscale("log", base=2)
        row[0].set(title=f"{task}: sequential", xlabel="thinking budget (tokens)", ylabel="accuracy", ylim=(0, 1.02))
        if par:
            row[1].plot(par["k"], par["pass_at_k"], marker="o", label="pass@k")
            row[1].fill_between(par["k"], par["ci_low"], par["ci_high"], alpha=0.2)
            row[1].plot(par["k"], par["maj_at_k"], marker="s", label="maj@k")
            row[1].set_xscale("log", base=2)
            row[1].legend()
        row[1].set(title=f"{task}: parallel", xlabel="samples k", ylabel="accuracy", ylim=(0, 1.02))
    fig.suptitle(title)
    fig.tight_layout()
    write_figure(path, fig, dpi=110)
    plt.close(fig)
