"""``lprecover compare``: which recovery brought test-time scaling back, at a glance.

    lprecover compare runs=[runs/eval-teacher,runs/eval-pruned2,runs/sft_short-organism-shortgpt2] output_dir=OUT
    lprecover compare teacher=evals/qwen3-8b pruned=evals/qwen3-8b-minus1 runs=[evals/sft,evals/kd] output_dir=OUT
    lprecover compare runs='runs/study/*' output_dir=OUT report_to=wandb
    lprecover compare wandb_group=organism-shortgpt2 wandb.project=lprecover output_dir=OUT     (online)

A run is recognised by what it saved: a recovery run folder (``model/recovery.json``, evaluated into ``eval/``), or
an evaluation folder (``curves.json``) of a model whose config carries lprecover's pruning provenance (a pruned
base) or none (the teacher). Each recovered run is scored against the teacher and the pruned base it shares
provenance with (same source, same kept layers). ``teacher=`` and ``pruned=`` name the roles outright instead
(evaluations made elsewhere and imported with ``lprecover eval import=...`` carry no provenance): every folder of
``runs`` is then a recovered model scored against them. Writes ``comparison.png``, ``report.md`` and
``summary.json``; the measures and verdicts are those of ``evaluation.recovery_measures`` and ``lprecover.verdict``.
"""

import glob
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from lprecover.analysis import ANALYSIS_FILE
from lprecover.atomic import write_figure, write_file
from lprecover.compare_reach import add_reach, reach_lines, reach_row, score_reach, seconds_row
from lprecover.config import ConfigError, declare, load_config, load_settings, save_config, to_dict
from lprecover.evaluation.metrics import finite
from lprecover.evaluation.recovery_measures import recovery_measures
from lprecover.evaluation.task_specs import find_spec
from lprecover.log import get_logger
from lprecover.modeling import resolve_model_path
from lprecover.readers import read_json
from lprecover.recovery.outputs import (
    EVAL_DIR,
    METRICS_FILE,
    MODEL_DIR,
    RECOVERY_FILE,
    failure,
    progress_eval_dir,
    progress_model_dir,
    progress_steps_saved,
)
from lprecover.registry import model_source
from lprecover.tracking import WandbSettings, finish_run, resolve_report_to, start_run
from lprecover.verdict import decide, is_flat, measure_text, sentence, slope_share_of_teacher

logger = get_logger(__name__)

# The share of the teacher's slope (S_r / S_t) a recipe should reach to count as restoring scaling in full (issue
# #13's aim); stricter than verdict.SLOPE_RETURNED, which with the area share decides "scaling returned".
SLOPE_GOAL = 0.7


@dataclass
class CompareCommand:
    """``lprecover compare``: the runs (folders or globs, or a W&B group), and where the comparison goes."""

    runs: list[str] | str = declare(
        default_factory=list,
        help="Run or evaluation folders, or a glob (non-run folders it matches are skipped).",
    )
    teacher: str | None = declare(None, help="The teacher's evaluation folder, named outright (with pruned=).")
    pruned: str | None = declare(
        None, help="The pruned base's evaluation folder; with teacher=, every folder of runs is a recovery."
    )
    wandb_group: str | None = declare(None, help="Pull the runs of this W&B group (online).")
    output_dir: str = declare("", help="Folder for comparison.png, report.md, summary.json.", output_dir=True)
    title: str = declare("", help="Figure and report title.")
    report_to: str = declare(
        "none",
        help="wandb (or auto: offline unless W&B is configured): log the figure and table to a run of its own.",
        choices=("wandb", "none", "auto"),
    )
    wandb: WandbSettings = field(default_factory=WandbSettings)
    bootstrap: int = declare(1000, help="Bootstrap resamples of the recovery measures' intervals.", ge=1)

    def __post_init__(self):
        if not self.output_dir:
            raise ValueError("output_dir is required, e.g. output_dir=runs/comparison.")
        if not self.runs and not self.wandb_group:
            raise ValueError("Nothing to compare: give runs=[DIR,...] (or a glob) or wandb_group=NAME.")
        if (self.teacher is None) != (self.pruned is None):
            raise ValueError("teacher= and pruned= go together: name both evaluation folders, or neither.")


@dataclass
class Run:
    """One evaluated model and what it is: the teacher, a pruned base, or a recovered model."""

    name: str
    kind: str  # teacher | pruned | recovered
    path: str
    eval_dir: str | None
    curves: dict
    summary: dict
    source: str | None = None
    kept_layers: list[int] | None = None
    removed_layers: list[int] = field(default_factory=list)
    recipe: str | None = None
    training_tokens: int | None = None
    analysis: dict | None = None
    recovery: dict = field(default_factory=dict)
    # Evaluations along training (``evaluate_at``): {"step", "tokens", "eval_dir", "summary", "recovery"} each.
    progress: list[dict] = field(default_factory=list)
    compute: dict | None = None  # recovery.json's compute record of the final model (recovery/compute.py)
    reach: dict = field(default_factory=dict)  # tokens and compute to recover, per task (compare_reach)


def _read_json(path: Path):
    return read_json(path) if path.exists() else None


def _provenance(model_dir: Path) -> dict | None:
    config = _read_json(model_dir / "config.json") or {}
    return config.get("lprecover_pruning")


def _eval_run(eval_dir: Path, **fields) -> Run:
    curves, summary = _read_json(eval_dir / "curves.json"), _read_json(eval_dir / "summary.json")
    if curves is None or summary is None:
        raise ConfigError(f"{eval_dir} holds no finished evaluation (curves.json and summary.json).")
    return Run(
        eval_dir=str(eval_dir), curves=curves, summary=summary, analysis=_read_json(eval_dir / ANALYSIS_FILE), **fields
    )


def _recovered(path: Path) -> Run:
    record = json.loads((path / MODEL_DIR / RECOVERY_FILE).read_text())
    if not (path / EVAL_DIR / "curves.json").exists():
        raise ConfigError(f"Recovery run {path} was not evaluated: relaunch it with evaluate=true.")
    student = path / record["student"] if not Path(record["student"]).is_absolute() else Path(record["student"])
    prov = _provenance(path / MODEL_DIR) or _provenance(student) or {}
    history = _read_json(path / METRICS_FILE) or []
    tokens = [h["num_tokens"] for h in history if "num_tokens" in h]
    final_tokens = int(max(tokens)) if tokens else None
    progress = []
    for step in progress_steps_saved(path):
        eval_dir = path / progress_eval_dir(step)
        summary = _read_json(eval_dir / "summary.json")
        if summary is None or not (eval_dir / "curves.json").exists():
            continue  # saved but not evaluated (evaluate=false, or cut short): nothing to plot
        saved = json.loads((path / progress_model_dir(step) / RECOVERY_FILE).read_text())
        at = saved.get("num_tokens")
        if not at:  # a trainer that does not count its tokens (on-policy distillation): the training log's count
            logged = [h["num_tokens"] for h in history if "num_tokens" in h and h.get("step", 0) <= step]
            at = int(max(logged)) if logged else None
        progress.append(
            {
                "step": step,
                "tokens": at,
                "eval_dir": str(eval_dir),
                "summary": summary,
                "compute": saved.get("compute"),
            }
        )
    return _eval_run(
        path / EVAL_DIR,
        name=record.get("recipe") or record["run_name"],
        kind="recovered",
        path=str(path),
        source=prov.get("source_model") or record.get("source_model"),
        kept_layers=prov.get("kept_layers"),
        removed_layers=prov.get("removed_layers", []),
        recipe=record.get("recipe"),
        training_tokens=final_tokens,
        progress=progress,
        compute=record.get("compute"),
    )


def evaluated_model_dir(eval_dir: Path, saved: dict) -> Path:
    """Where the model an evaluation folder measured lies, whatever directory compare runs in.

    A relative ``model.name_or_path`` was relative to the directory ``lprecover eval`` ran in, and so was its
    relative ``output_dir``: the model therefore lies at the same relative place from the evaluation folder (which
    also holds when the whole study folder has been moved). Only when ``output_dir`` was absolute is the launch
    directory unknown, and the current one is tried.
    """
    name_or_path = (saved.get("model") or {}).get("name_or_path") or ""
    if model_source(name_or_path) is not None:  # a registered name (the organism): its source knows the folder
        return Path(resolve_model_path(name_or_path))
    model, out = Path(name_or_path), Path(saved.get("output_dir") or "")
    if model.is_absolute() or not name_or_path or out.is_absolute() or not saved.get("output_dir"):
        return model
    return eval_dir / os.path.relpath(model, out)


def _evaluated_model(path: Path) -> Run:
    saved = load_settings(path)
    name_or_path = (saved.get("model") or {}).get("name_or_path", "")
    model_dir = evaluated_model_dir(path, saved)
    prov = _provenance(model_dir) if model_dir.is_dir() else None
    if prov:
        n = len(prov["removed_layers"])
        return _eval_run(
            path,
            name=f"pruned-{n} ({prov['method']})",
            kind="pruned",
            path=str(path),
            source=prov.get("source_model"),
            kept_layers=prov["kept_layers"],
            removed_layers=prov["removed_layers"],
        )
    return _eval_run(path, name="teacher", kind="teacher", path=str(path), source=name_or_path or None)


def discover(path: str | Path) -> Run:
    """Recognise one folder from what it saved."""
    path = Path(path)
    if path.name == EVAL_DIR and (path.parent / MODEL_DIR / RECOVERY_FILE).exists():
        path = path.parent
    if (path / MODEL_DIR / RECOVERY_FILE).exists():
        return _recovered(path)
    if (path / "curves.json").exists():
        return _evaluated_model(path)
    if failed := failure(path):
        raise ConfigError(
            f"{path} holds no model to compare: its training diverged at step {failed['step']}: {failed['reason']}."
        )
    raise ConfigError(
        f"{path} is neither a recovery run (with {MODEL_DIR}/{RECOVERY_FILE}) nor an evaluation folder (with "
        "curves.json). Evaluate it first with `lprecover eval ... output_dir=DIR`."
    )


def collect(patterns: list[str] | str) -> list[Run]:
    """The runs named by folders and globs: a folder named outright must be a run; a glob skips what is not."""
    runs = []
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        if not any(c in pattern for c in "*?["):
            runs.append(discover(pattern))
            continue
        found = [Path(p) for p in sorted(glob.glob(pattern)) if Path(p).is_dir()]
        for path in found:
            try:
                runs.append(discover(path))
            except ConfigError:
                logger.info("Skipping %s: not an evaluated run.", path)
        if not found:
            raise ConfigError(f"runs pattern '{pattern}' matches nothing.")
    return runs


def with_roles(teacher: str, pruned: str, recovered: list[str] | str) -> list[Run]:
    """Runs whose roles are named outright: the teacher's and the pruned base's evaluation folders, and recovered
    models (evaluation folders, e.g. imported lm-eval logs, or recovery run folders), each named by its folder."""
    paths = [recovered] if isinstance(recovered, str) else list(recovered)
    found = [
        p for pattern in paths for p in (sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern])
    ]
    runs = [_eval_run(Path(teacher), name="teacher", kind="teacher", path=teacher)]
    runs.append(_eval_run(Path(pruned), name="pruned", kind="pruned", path=pruned))
    for path in found:
        path = Path(path)
        if (path / MODEL_DIR / RECOVERY_FILE).exists() or (
            path.name == EVAL_DIR and (path.parent / MODEL_DIR).is_dir()
        ):
            run = discover(path)
            run.kept_layers = None  # scored against the pruned base named outright
        else:
            run = _eval_run(path, name=path.name, kind="recovered", path=str(path))
        runs.append(run)
    names = [r.name for r in runs]
    if len(set(names)) < len(names):
        raise ConfigError(f"Two compared runs share a name ({sorted(names)}); give each its own folder name.")
    if not found:
        raise ConfigError("runs= names no recovered evaluation to score against teacher= and pruned=.")
    return runs


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
        run.reach = finite(score_reach(run, teachers[0], bases[0], n_boot))


def _measures(teacher: Run, base: Run, eval_dir: str, n_boot: int) -> dict:
    """``evaluation.recovery_measures.recovery_measures`` of one evaluation; a measure that is undefined is None (JSON null),
    never NaN, which would read as a number and, compared with a threshold, as a verdict."""
    return finite(recovery_measures(teacher.eval_dir, base.eval_dir, eval_dir, n_boot=n_boot))


def _tasks(runs: list[Run]) -> tuple[list[str], str | None]:
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


def _row(run: Run, task: str, control: str | None) -> dict:
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


def _fmt(v, digits=3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


MEASURE_LEGEND = (
    "Measures (`evaluation/recovery_measures.py`), with 95% paired bootstrap intervals over problems: **area share** = "
    "clip((A_r - A_p) / (A_t - A_p), 0, 1), the share of the sequential area pruning lost that recovery won back, "
    "`-` where pruning lost no measurable area; **area / teacher** = A_r / A_t; **slope / teacher** = S_r / S_t, "
    "the recovered slope (accuracy per doubling of the budget) as a share of the teacher's, `-` where the teacher's "
    "curve is flat. Verdicts: `lprecover/verdict.py`."
)


def report_markdown(runs: list[Run], summary: dict, title: str) -> str:
    lines = [f"# {title or 'Recovery comparison'}", "", MEASURE_LEGEND, ""]
    for task in summary["tasks"]:
        rows = [r for r in summary["runs"] if task in r["tasks"]]
        budgets = sorted({b for r in rows for b in r["tasks"][task]["accuracy_by_budget"]}, key=int)
        has_analysis = any(r["tasks"][task]["analysis"] for r in rows)
        head = ["run", "recipe", "layers removed", "training tokens"] + [f"acc@{b}" for b in budgets]
        head += ["pass@1", "pass@k max", "scaling slope", "area share [95% CI]", "area / teacher"]
        head += ["slope / teacher", "verdict"] + (
            [f"{summary['control_task']} acc"] if summary["control_task"] else []
        )
        if has_analysis:
            head += ["self-BLEU", "repetition", "reflection markers/trace"]
        lines += [f"## {task}", "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for r in rows:
            t = r["tasks"][task]
            removed = r["layers_removed"] or ("none" if r["kind"] == "teacher" else None)  # None: not recorded
            cells = [r["run"], _fmt(r["recipe"]), _fmt(removed), _fmt(r["training_tokens"])]
            cells += [_fmt(t["accuracy_by_budget"].get(b, t["accuracy_by_budget"].get(str(b)))) for b in budgets]
            cells += [_fmt(t["pass_at_1"]), _fmt(t["pass_at_k_max"]), _fmt(t["scaling_slope"])]
            cells += [
                measure_text(t.get("area_recovered_share"), missing="-"),
                measure_text(t.get("area_ratio_to_teacher"), missing="-"),
            ]
            cells += [measure_text(t.get("slope_ratio_to_teacher"), missing="-"), _fmt(t.get("verdict"))]
            cells += [_fmt(t["control_accuracy"])] if summary["control_task"] else []
            if has_analysis:
                a = t["analysis"] or {}
                cells += [
                    _fmt(a.get("self_bleu")),
                    _fmt(a.get("repetition_rate")),
                    _fmt(a.get("reflection_per_trace")),
                ]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    if summary["verdicts"]:
        lines += ["## Did test-time scaling return?", ""] + [f"- {v}" for v in summary["verdicts"]] + [""]
    lines += _ranking_lines(summary) + _progress_lines(summary)
    seconds = {r.name: {t: seconds_row(r, r.reach, t) for t in summary["tasks"]} for r in runs if r.reach}
    lines += reach_lines(summary, seconds, summary["control_task"])
    if summary["knowledge_vs_reasoning"]:
        lines += ["## Knowledge stand-in vs long reasoning", ""]
        lines += [f"- {v}" for v in summary["knowledge_vs_reasoning"]] + [""]
    return "\n".join(lines)


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


def _ranking_lines(summary: dict) -> list[str]:
    lines = []
    for task in summary["tasks"]:
        ranked = summary.get("ranking", {}).get(task) or []
        if not ranked:
            continue
        key = ranked[0]["ranked_by"]
        label = "area share" if key == "area_recovered_share" else "area / teacher"
        lines += [f"## Recipes ranked by {task} {label}", ""]
        lines += [
            f"| rank | run | {label} [95% CI] | slope / teacher [95% CI] | verdict | training tokens | "
            "interval above the next |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        for i, r in enumerate(ranked, 1):
            cells = [
                str(i),
                r["run"],
                measure_text(r[key], missing="-"),
                measure_text(r["slope_ratio_to_teacher"], missing="-"),
            ]
            cells += [_fmt(r["verdict"]), _fmt(r["training_tokens"]), "yes" if r["separated_from_next"] else "-"]
            lines.append("| " + " | ".join(cells) + " |")
        leader = summary.get("slope_leader", {}).get(task)
        lines += ["", leader] if leader else []
        lines.append("")
    return lines


def _progress_lines(summary: dict) -> list[str]:
    lines = []
    for task in summary["tasks"]:
        rows = [r for r in summary["runs"] if len(r["tasks"].get(task, {}).get("progress") or []) > 1]
        if not rows:
            continue
        lines += [
            f"## {task}: recovery against training tokens",
            "",
            "Area share [95% CI] and slope / teacher at each evaluated point of training (the last is the final "
            "model).",
            "",
        ]
        width = max(len(r["tasks"][task]["progress"]) for r in rows)
        lines += ["| run | " + " | ".join(f"point {i + 1}" for i in range(width)) + " |", "|" + " --- |" * (width + 1)]
        for r in rows:
            cells = [r["run"]]
            for p in r["tasks"][task]["progress"]:
                area = measure_text(p["area_recovered_share"], missing="-")
                slope = measure_text(p["slope_ratio_to_teacher"], missing="-")
                cells.append(f"{_fmt(p['training_tokens'])} tokens: {area}; slope {slope}")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def plot_comparison(runs: list[Run], tasks: list[str], path: Path, title: str, summary: dict | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    reasoning = [t for t in (summary or {}).get("tasks", []) if _has_progress(summary, t)]
    rows = len(tasks) + len(reasoning)
    fig, axes = plt.subplots(rows, 2, figsize=(11, 3.6 * rows), squeeze=False)
    colors = iter(plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4)
    style = {}
    for run in runs:
        if run.kind == "teacher":
            style[run.name] = {"color": "black", "lw": 2.5, "ls": "-"}
        elif run.kind == "pruned":
            style[run.name] = {"color": "0.55", "lw": 2.0, "ls": "--"}
        else:
            style[run.name] = {"color": next(colors), "lw": 1.5, "ls": "-"}
    for row, task in enumerate(tasks):
        for col, (mode, x, y, label) in enumerate(
            (("sequential", "budget", "accuracy", "thinking budget (tokens)"), ("parallel", "k", "pass_at_k", "k"))
        ):
            ax = axes[row][col]
            if not any(run.curves.get(mode, {}).get(task) for run in runs):
                ax.set_axis_off()  # e.g. no parallel curve of the knowledge control
                continue
            for run in runs:
                c = run.curves.get(mode, {}).get(task)
                if not c:
                    continue
                ax.plot(c[x], c[y], marker="o", ms=3, label=run.name, **style[run.name])
                if "ci_low" in c:
                    ax.fill_between(c[x], c["ci_low"], c["ci_high"], color=style[run.name]["color"], alpha=0.12)
            ax.set_xscale("log", base=2)
            ax.set_xlabel(label)
            ax.set_ylabel("accuracy" if mode == "sequential" else "pass@k")
            ax.set_ylim(-0.02, 1.02)
            ax.set_title(f"{task}: {mode}")
            ax.grid(alpha=0.3)
    for i, task in enumerate(reasoning):
        _plot_progress(axes[len(tasks) + i], summary, task, style)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title or "Recovery comparison")
    fig.tight_layout()
    write_figure(path, fig, dpi=120)
    plt.close(fig)


def _has_progress(summary: dict, task: str) -> bool:
    return any(len(r["tasks"].get(task, {}).get("progress") or []) > 1 for r in summary["runs"])


def _plot_progress(axes, summary: dict, task: str, style: dict) -> None:
    """Area share and slope / teacher against training tokens, one line per recovered run, with intervals."""
    panels = (
        ("area_recovered_share", "share of the lost area won back"),
        ("slope_ratio_to_teacher", "slope / teacher's slope"),
    )
    for col, (key, label) in enumerate(panels):
        ax = axes[col]
        for r in summary["runs"]:
            points = [p for p in r["tasks"].get(task, {}).get("progress") or [] if p["training_tokens"] is not None]
            points = [p for p in points if (p[key] or {}).get("value") is not None]
            if len(points) < 2:
                continue
            xs, ys = [p["training_tokens"] for p in points], [p[key]["value"] for p in points]
            bounds = [(p[key]["ci_low"], p[key]["ci_high"]) for p in points]
            lo = [b[0] if b[0] is not None else y for y, b in zip(ys, bounds)]
            hi = [b[1] if b[1] is not None else y for y, b in zip(ys, bounds)]
            color = style.get(r["run"], {}).get("color")
            ax.plot(xs, ys, marker="o", ms=3, label=r["run"], color=color)
            ax.fill_between(xs, lo, hi, color=color, alpha=0.15)  # the 95% band over problems
        ax.axhline(1.0, color="black", lw=0.8, ls=":")
        ax.axhline(0.0, color="0.55", lw=0.8, ls="--")
        if key == "area_recovered_share":
            for level in (0.5, 0.9):  # the levels of tokens_to_50 and tokens_to_90
                ax.axhline(level, color="0.7", lw=0.6, ls="-.")
        ax.set_xscale("log")  # evaluate_at is log-spaced
        ax.set_xlabel("training tokens")
        ax.set_ylabel(label)
        ax.set_title(f"{task}: recovery against training tokens")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)


def compare(runs: list[Run], output_dir: Path, title: str = "", n_boot: int = 1000) -> dict:
    """Score, tabulate and plot ``runs`` into ``output_dir``; returns the summary written to summary.json."""
    kinds = [r.kind for r in runs]
    if kinds.count("teacher") > 1:
        raise ConfigError("More than one teacher among the runs; compare one study (one unpruned model) at a time.")
    pair_and_score(runs, n_boot)
    tasks, control = _tasks(runs)
    order = {"teacher": 0, "pruned": 1, "recovered": 2}
    runs = sorted(runs, key=lambda r: (order[r.kind], len(r.removed_layers), r.name))
    summary = {
        "tasks": tasks,
        "control_task": control,
        "runs": [
            {
                "run": r.name,
                "kind": r.kind,
                "path": r.path,
                "recipe": r.recipe,
                "layers_removed": r.removed_layers,
                "training_tokens": r.training_tokens,
                "tasks": {t: _row(r, t, control) for t in tasks},
            }
            for r in runs
        ],
        "verdicts": [v for r in runs for t in tasks if (v := verdict(r, t))],
        "knowledge_vs_reasoning": [],
    }
    teacher = next((r for r in runs if r.kind == "teacher"), None)
    if teacher and control:
        summary["knowledge_vs_reasoning"] = [
            s for p in runs if p.kind == "pruned" for t in tasks if (s := knowledge_sentence(teacher, p, t, control))
        ]
    summary["ranking"] = {t: ranking(summary, t) for t in tasks}
    summary["slope_leader"] = {t: slope_leader(summary["ranking"][t]) for t in tasks}
    add_reach(summary)
    summary = finite(summary)  # valid JSON: a value that could not be computed is null, never NaN
    output_dir.mkdir(parents=True, exist_ok=True)
    plot_tasks = tasks + ([control] if control else [])
    plot_comparison(runs, plot_tasks, output_dir / "comparison.png", title, summary)
    write_file(output_dir / "summary.json", json.dumps(summary, indent=2))
    seconds = {r.name: {t: seconds_row(r, r.reach, t) for t in tasks} for r in runs if r.reach}
    write_file(output_dir / "seconds.json", json.dumps(finite(seconds), indent=2))  # measured: not reproducible
    write_file(output_dir / "report.md", report_markdown(runs, summary, title))
    return summary


def _runs_from_wandb(cfg: CompareCommand) -> list[Run]:
    """Runs of a W&B group, rebuilt from their logged curves and config (no per-sample data: no score intervals)."""
    import wandb

    api = wandb.Api()
    path = f"{cfg.wandb.entity}/{cfg.wandb.project}" if cfg.wandb.entity else cfg.wandb.project
    out = []
    for r in api.runs(path, filters={"group": cfg.wandb_group}):
        if r.job_type == "compare":
            continue
        curves = {"sequential": {}, "parallel": {}}
        for row in r.scan_history():
            for key, value in row.items():
                parts = key.split("/")
                if len(parts) == 3 and parts[0] == "eval" and parts[2] in ("accuracy", "pass_at_k", "maj_at_k"):
                    mode, x = ("sequential", "budget") if parts[2] == "accuracy" else ("parallel", "k")
                    c = curves[mode].setdefault(parts[1], {x: [], parts[2]: []})
                    if row.get(f"eval/{parts[1]}/{x}") is not None and value is not None:
                        c.setdefault(parts[2], []).append(value)
                        if parts[2] != "maj_at_k":
                            c[x].append(row[f"eval/{parts[1]}/{x}"])
        summary = {}
        for key, value in r.summary.items():
            parts = key.split("/")
            if len(parts) == 3 and parts[0] == "eval":
                summary.setdefault(parts[1], {})[parts[2]] = value
        config = r.config or {}
        kind = "recovered" if config.get("method") else "teacher"
        out.append(
            Run(
                name=r.name,
                kind=kind,
                path=r.url,
                eval_dir=None,
                curves=curves,
                summary=summary,
                recipe=config.get("recipe"),
            )
        )
    if not out:
        raise ConfigError(f"W&B group '{cfg.wandb_group}' in project '{path}' holds no runs.")
    return out


CONFIG = CompareCommand  # the keys `--help` lists


def main(argv: list[str]) -> int:
    """Run the command on its ``key=value`` arguments (``lprecover.command.run`` adds ``--help`` and error lines)."""
    cfg = load_config(CompareCommand, argv)
    out = Path(cfg.output_dir)
    if cfg.teacher is not None:
        runs = with_roles(cfg.teacher, cfg.pruned, cfg.runs)
    else:
        runs = collect(cfg.runs) if cfg.runs else []
    if cfg.wandb_group:
        runs += _runs_from_wandb(cfg)
    summary = compare(runs, out, cfg.title, cfg.bootstrap)
    save_config(cfg, out)
    if resolve_report_to(cfg.report_to) == "wandb":
        import wandb

        group = cfg.wandb.group or cfg.wandb_group or Path(cfg.output_dir).name
        start_run(
            out,
            cfg.wandb.name or f"compare-{group}",
            group,
            ["compare"],
            to_dict(cfg),
            cfg.wandb.project,
            cfg.wandb.entity,
            job_type="compare",
        )
        rows = [[r["run"], r["kind"], json.dumps(r["tasks"])] for r in summary["runs"]]
        wandb.log(
            {
                "comparison": wandb.Image(str(out / "comparison.png")),
                "report": wandb.Table(columns=["run", "kind", "tasks"], data=rows),
            }
        )
        finish_run()
    print((out / "report.md").read_text())
    return 0
