"""Scoring the runs: each recovered run against the teacher and the pruned base it shares provenance with, its
verdict, the ranking by recovery, the slope leader, and the sentence on knowledge against reasoning."""

from lprecover.compare.discovery import Run
from lprecover.compare.reach import reach_row, score_reach
from lprecover.evaluation.metrics import finite
from lprecover.evaluation.recovery_measures import recovery_measures
from lprecover.evaluation.task_specs import find_spec
from lprecover.log import get_logger
from lprecover.verdict import decide, is_flat, sentence, slope_share_of_teacher

logger = get_logger(__name__)

# The share of the teacher's slope (S_r / S_t) a recipe should reach to count as restoring scaling in full (issue
# #13's aim); stricter than verdict.SLOPE_RETURNED, which with the area share decides "scaling returned".
SLOPE_GOAL = 0.7


def pair_and_score(runs: list[Run], n_boot: int) -> None:
    """Attach each recovered run's recovery measures against the teacher and its own pruned base (the one with its
    kept layers; with ``teacher=``/``pruned=`` named outright, the one pruned run)."""
    teachers = [r for r in runs if r.kind == "teacher"]
    pruned = [p for p in runs if p.kind == "pruned"]
    for run in runs:
        if run.kind != "recovered":
            continue
        bases = pruned if len(pruned) == 1 and run.kept_layers is None else []
        bases = bases or [p for p in pruned if p.kept_layers == run.kept_layers]
        if not teachers or not bases or not all(r.eval_dir for r in (teachers[0], bases[0], run)):
            logger.warning("%s: no evaluated teacher and pruned base to score against.", run.name)
            continue
        run.recovery = _measures(teachers[0], bases[0], run.eval_dir, n_boot)
        for point in run.progress:
            point["recovery"] = _measures(teachers[0], bases[0], point["eval_dir"], n_boot)
        run.reach = finite(score_reach(run, teachers[0], bases[0], n_boot, draws_out=run.reach_draws))


def _measures(teacher: Run, base: Run, eval_dir: str, n_boot: int) -> dict:
    """``evaluation.recovery_measures.recovery_measures`` of one evaluation; a measure that is undefined is None (JSON null),
    never NaN, which would read as a number and, compared with a threshold, as a verdict."""
    return finite(recovery_measures(teacher.eval_dir, base.eval_dir, eval_dir, n_boot=n_boot))


def tasks_of(runs: list[Run]) -> tuple[list[str], str | None]:
    """The reasoning tasks, and the knowledge control if one was evaluated: the first, by name, of the tasks whose
    file says ``control: true`` (the organism's facts, its shallow chains, MMLU)."""
    names = sorted({t for r in runs for t in r.curves.get("sequential", {}) | r.curves.get("parallel", {})})
    control = next((t for t in names if getattr(find_spec(t), "control", False)), None)
    return [t for t in names if t != control], control


# The measures a recovered run's row carries beside its verdict (evaluation.recovery_measures' names); the pass@k curve's
# area measures follow with the prefix ``pass_at_k_``.
ROW_MEASURES = (
    "problems",
    "area_lost",
    "area_recovered_share",
    "area_ratio_to_teacher",
    "area_gap_to_teacher",
    "teacher_slope",
    "recovered_slope",
    "slope_lost",
    "slope_recovered_share",
    "slope_ratio_to_teacher",
    "slope_gap_to_teacher",
)
PARALLEL_MEASURES = ("area_lost", "area_recovered_share", "area_ratio_to_teacher", "area_gap_to_teacher")


def run_row(run: Run, task: str, control: str | None) -> dict:
    seq = run.curves.get("sequential", {}).get(task)
    par = run.curves.get("parallel", {}).get(task)
    s = run.summary.get(task, {})
    ctrl = run.curves.get("sequential", {}).get(control) if control else None
    row = {
        "run": run.name,
        "kind": run.kind,
        "recipe": run.recipe,
        "layers_removed": run.removed_layers,
        "training_tokens": run.training_tokens,
        "accuracy_by_budget": dict(zip(seq["budget"], seq["accuracy"])) if seq else {},
        "pass_at_1": par.get("pass_at_1", par["pass_at_k"][0]) if par else None,
        "pass_at_k_max": par["pass_at_k"][-1] if par else None,
        "k_max": par["k"][-1] if par else None,
        "scaling_slope": s.get("scaling_slope"),
        "sequential_area": s.get("sequential_area"),
    }
    measures = run.recovery.get(task, {})
    if run.kind == "recovered":
        sequential = measures.get("sequential")
        row["verdict"] = decide(sequential) if sequential else None
        row |= {k: (sequential or {}).get(k) for k in ROW_MEASURES}
        row |= {f"pass_at_k_{k}": (measures.get("parallel") or {}).get(k) for k in PARALLEL_MEASURES}
        row |= reach_row(run.reach, task)
    return row | {
        "progress": _progress(run, task),
        "control_accuracy": ctrl["accuracy"][-1] if ctrl else None,
        "analysis": (run.analysis or {}).get("tasks", {}).get(task),
    }


PROGRESS_MEASURES = ("area_recovered_share", "area_ratio_to_teacher", "slope_ratio_to_teacher")


def _progress(run: Run, task: str) -> list[dict]:
    """Recovery along training: one point per ``evaluate_at`` evaluation, then the final model."""
    if run.kind != "recovered":
        return []
    points = [(p["step"], p["tokens"], p.get("recovery", {})) for p in run.progress]
    points.append((None, run.training_tokens, run.recovery))
    out = []
    for step, tokens, rec in points:
        seq = rec.get(task, {}).get("sequential") or {}
        out.append({"step": step, "training_tokens": tokens} | {k: seq.get(k) for k in PROGRESS_MEASURES})
    return out


def verdict(run: Run, task: str) -> str | None:
    """The verdict sentence of a recovered run on ``task`` (``lprecover.verdict``); None where it was not scored."""
    sequential = run.recovery.get(task, {}).get("sequential")
    if run.kind != "recovered" or not sequential:
        return None
    return sentence(run.name, task, sequential, decide(sequential))


KNOWLEDGE_DROP_PER_LAYER = 0.05  # the knowledge control may lose this much per removed layer and still "hold"
LONG_DROP = 0.5  # long chains "collapse": accuracy at the largest budget falls this much, and the curve is flat


def knowledge_sentence(teacher: Run, pruned: Run, task: str, control: str) -> str | None:
    """Does the knowledge control hold while long-chain reasoning collapses, as the paper found?

    Holds: control accuracy at the largest budget within ``KNOWLEDGE_DROP_PER_LAYER`` of the teacher's per removed
    layer (0.05 for one layer, 0.10 for two). Collapses: accuracy at the largest budget falls by ``LONG_DROP`` and
    the curve is flat, ``S_p / S_t < SLOPE_FLAT`` (the verdict's one definition of a quarter of the slope).
    """

    def at_max(run, t):
        c = run.curves.get("sequential", {}).get(t)
        return c["accuracy"][-1] if c else None

    vals = [at_max(teacher, control), at_max(pruned, control), at_max(teacher, task), at_max(pruned, task)]
    if None in vals:
        return None
    c_t, c_p, l_t, l_p = vals
    allowed = KNOWLEDGE_DROP_PER_LAYER * max(1, len(pruned.removed_layers))
    s_t, s_p = (finite(r.summary.get(task, {}).get("scaling_slope")) for r in (teacher, pruned))
    share = slope_share_of_teacher(s_p, s_t)
    holds, collapses = c_t - c_p <= allowed + 1e-9, l_t - l_p >= LONG_DROP and is_flat(share)
    claim = "as the paper found" if holds and collapses else "unlike the paper's finding"
    slope = f", slope {s_t:.3f} -> {s_p:.3f}" if s_t is not None and s_p is not None else ""
    slope += f" ({100 * share:.0f}% of the teacher's)" if share is not None else ""
    return (
        f"{pruned.name}: {control} accuracy {c_t:.2f} -> {c_p:.2f} "
        f"({'holds, within' if holds else 'drops by more than'} {allowed:.2f}), {task} {l_t:.2f} -> {l_p:.2f}"
        f"{slope} ({'collapses' if collapses else 'does not collapse'}); {claim}."
    )


def ranking(summary: dict, task: str) -> list[dict]:
    """Recovered runs on ``task``, best first, by ``area_recovered_share`` where every ranked run has one, else by
    ``area_ratio_to_teacher`` (pruning lost nothing measurable: the teacher is the only yardstick).

    ``separated_from_next``: the run's interval lies wholly above the next one's.
    """
    rows = [r["tasks"][task] for r in summary["runs"] if r["kind"] == "recovered" and task in r["tasks"]]
    key = "area_recovered_share"
    if not rows or any((t.get(key) or {}).get("value") is None for t in rows):
        key = "area_ratio_to_teacher"
    rows = sorted((t for t in rows if (t.get(key) or {}).get("value") is not None), key=lambda t: -t[key]["value"])
    out = []
    for i, t in enumerate(rows):
        m, nxt = t[key], rows[i + 1][key] if i + 1 < len(rows) else None
        above = nxt is not None and None not in (m["ci_low"], nxt["ci_high"]) and m["ci_low"] > nxt["ci_high"]
        out.append(
            {
                "run": t["run"],
                "ranked_by": key,
                key: m,
                "slope_ratio_to_teacher": t.get("slope_ratio_to_teacher"),
                "verdict": t.get("verdict"),
                "training_tokens": t["training_tokens"],
                "separated_from_next": above,
            }
        )
    return out


def slope_leader(ranked: list[dict]) -> str | None:
    """One plain sentence: whose curve has the largest share of the teacher's slope (S_r / S_t), and whether any
    reached ``SLOPE_GOAL`` (70%) of it; None where the teacher's curve is flat (no share is defined)."""
    scored = [r for r in ranked if (r["slope_ratio_to_teacher"] or {}).get("value") is not None]
    if not scored:
        return None
    best = max(scored, key=lambda r: r["slope_ratio_to_teacher"]["value"])
    m = best["slope_ratio_to_teacher"]
    reached = [r["run"] for r in scored if r["slope_ratio_to_teacher"]["value"] >= SLOPE_GOAL]
    ci_text = f" [{100 * m['ci_low']:.0f}, {100 * m['ci_high']:.0f}]" if m["ci_low"] is not None else ""
    tail = (
        f"{len(reached)} of {len(scored)} recipes reached {100 * SLOPE_GOAL:.0f}% of it ({', '.join(reached)})"
        if reached
        else f"no recipe reached {100 * SLOPE_GOAL:.0f}%"
    )
    share = f"{100 * m['value']:.0f}%{ci_text}"
    return f"Steepest recovered curve: {best['run']}'s slope is {share} of the teacher's; {tail}."
