"""``lprecover compare``: which recovery brought test-time scaling back, at a glance.

    lprecover compare runs=[runs/eval-teacher,runs/eval-pruned2,runs/sft_short-organism-shortgpt2] output_dir=OUT
    lprecover compare runs='runs/study/*' output_dir=OUT report_to=wandb
    lprecover compare wandb_group=organism-shortgpt2 wandb.project=lprecover output_dir=OUT     (online)

A run is recognised by what it saved: a recovery run folder (``model/recovery.json``, evaluated into ``eval/``), or
an evaluation folder (``curves.json``) of a model whose config carries lprecover's pruning provenance (a pruned
base) or none (the teacher). Each recovered run is scored against the teacher and the pruned base it shares
provenance with (same source, same kept layers). Writes ``comparison.png``, ``report.md`` and ``summary.json``.
"""

import glob
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from lprecover.analysis import ANALYSIS_FILE
from lprecover.atomic import write_figure, write_file
from lprecover.config import ConfigError, load_config, load_settings, save_config, to_dict, valid_keys
from lprecover.evaluation.metrics import finite
from lprecover.evaluation.recovery import recovery_scores
from lprecover.log import get_logger
from lprecover.readers import read_json
from lprecover.recovery.outputs import (
    EVAL_DIR,
    METRICS_FILE,
    MODEL_DIR,
    RECOVERY_FILE,
    progress_eval_dir,
    progress_model_dir,
    progress_steps_saved,
)
from lprecover.tracking import WandbSettings, finish_run, resolve_report_to, start_run

logger = get_logger(__name__)

RETURNED, PARTLY = 0.7, 0.3  # recovery-score thresholds of the verdict sentences
SLOPE_RETURNED, SLOPE_FLAT = 0.5, 0.25  # fractions of the teacher's scaling slope: needed to return; below: flat
# The share of the teacher's slope a recipe should win back to count as restoring scaling in full (issue #13's aim);
# stricter than SLOPE_RETURNED, which with the area decides "scaling returned".
SLOPE_GOAL = 0.7


@dataclass
class CompareCommand:
    """``lprecover compare``: the runs (folders or globs, or a W&B group), and where the comparison goes."""

    runs: list[str] | str = field(
        default_factory=list,
        metadata={"help": "Run or evaluation folders, or a glob (non-run folders it matches are skipped)."},
    )
    wandb_group: str | None = field(default=None, metadata={"help": "Pull the runs of this W&B group (online)."})
    output_dir: str = field(default="", metadata={"help": "Folder for comparison.png, report.md, summary.json."})
    title: str = field(default="", metadata={"help": "Figure and report title."})
    report_to: str = field(default="none", metadata={"help": "wandb: log the figure and table to a run of its own."})
    wandb: WandbSettings = field(default_factory=WandbSettings)
    bootstrap: int = field(default=1000, metadata={"help": "Bootstrap resamples of the recovery-score interval."})

    def __post_init__(self):
        if not self.output_dir:
            raise ValueError("output_dir is required, e.g. output_dir=runs/comparison.")
        if not self.runs and not self.wandb_group:
            raise ValueError("Nothing to compare: give runs=[DIR,...] (or a glob) or wandb_group=NAME.")


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
        at = json.loads((path / progress_model_dir(step) / RECOVERY_FILE).read_text()).get("num_tokens")
        if not at:  # a trainer that does not count its tokens (on-policy distillation): the training log's count
            logged = [h["num_tokens"] for h in history if "num_tokens" in h and h.get("step", 0) <= step]
            at = int(max(logged)) if logged else None
        progress.append({"step": step, "tokens": at, "eval_dir": str(eval_dir), "summary": summary})
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
    )


def evaluated_model_dir(eval_dir: Path, saved: dict) -> Path:
    """Where the model an evaluation folder measured lies, whatever directory compare runs in.

    A relative ``model.name_or_path`` was relative to the directory ``lprecover eval`` ran in, and so was its
    relative ``output_dir``: the model therefore lies at the same relative place from the evaluation folder (which
    also holds when the whole study folder has been moved). Only when ``output_dir`` was absolute is the launch
    directory unknown, and the current one is tried.
    """
    name_or_path = (saved.get("model") or {}).get("name_or_path") or ""
    if name_or_path == "organism":
        from lprecover.modeling import resolve_model_path

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


def pair_and_score(runs: list[Run], n_boot: int) -> None:
    """Attach each recovered run's recovery scores against the teacher and its own pruned base."""
    teachers = [r for r in runs if r.kind == "teacher"]
    for run in runs:
        if run.kind != "recovered":
            continue
        bases = [p for p in runs if p.kind == "pruned" and p.kept_layers == run.kept_layers]
        if not teachers or not bases or not all(r.eval_dir for r in (teachers[0], bases[0], run)):
            logger.warning("%s: no evaluated teacher and pruned base to score against.", run.name)
            continue
        # A score is None where none can be computed (pruning lost no area, or a curve has one budget): NaN in
        # JSON is invalid, and a NaN compared with the verdict thresholds would read as "partly returned".
        run.recovery = _scores(teachers[0], bases[0], run.eval_dir, run.summary, n_boot)
        for point in run.progress:
            point["recovery"] = _scores(teachers[0], bases[0], point["eval_dir"], point["summary"], n_boot)


def _scores(teacher: Run, base: Run, eval_dir: str, summary: dict, n_boot: int) -> dict:
    """Recovery scores of one evaluation against the teacher and pruned base; ``slope`` is the share of the scaling
    slope won back (with ``slope_ci`` from the same bootstrap as the area's interval)."""
    # A score is None where none can be computed (pruning lost no area, or a curve has one budget): NaN in JSON is
    # invalid, and a NaN compared with the verdict thresholds would read as "partly returned".
    scores = finite(recovery_scores(teacher.eval_dir, base.eval_dir, eval_dir, n_boot=n_boot))
    for task, entry in scores.items():
        slope = (entry.get("sequential") or {}).pop("slope", None)
        if slope is not None:
            entry["slope"], entry["slope_ci"] = slope["score"], [slope["ci_low"], slope["ci_high"]]
            continue
        slopes = [finite(r.get(task, {}).get("scaling_slope")) for r in (teacher.summary, base.summary, summary)]
        if None not in slopes and abs(slopes[0] - slopes[1]) > 1e-9:
            entry["slope"] = (slopes[2] - slopes[1]) / (slopes[0] - slopes[1])
    return scores


def _tasks(runs: list[Run]) -> tuple[list[str], str | None]:
    """The reasoning tasks, and the knowledge control (the organism's facts, else its shallow chains, or MMLU) if one
    was evaluated."""
    names = sorted({t for r in runs for t in r.curves.get("sequential", {}) | r.curves.get("parallel", {})})
    control = next((t for t in names if t == "organism_facts"), None) or next(
        (t for t in names if t.endswith("_shallow") or t == "mmlu"), None
    )
    return [t for t in names if t != control], control


def _row(run: Run, task: str, control: str | None) -> dict:
    seq = run.curves.get("sequential", {}).get(task)
    par = run.curves.get("parallel", {}).get(task)
    s = run.summary.get(task, {})
    rec = run.recovery.get(task, {}).get("sequential")
    ctrl = run.curves.get("sequential", {}).get(control) if control else None
    return {
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
        "recovery_score": rec,
        "parallel_recovery_score": run.recovery.get(task, {}).get("parallel"),
        "slope_recovered": run.recovery.get(task, {}).get("slope"),
        "slope_recovered_ci": run.recovery.get(task, {}).get("slope_ci"),
        "progress": _progress(run, task),
        "control_accuracy": ctrl["accuracy"][-1] if ctrl else None,
        "analysis": (run.analysis or {}).get("tasks", {}).get(task),
    }


def _progress(run: Run, task: str) -> list[dict]:
    """Recovery along training: one point per ``evaluate_at`` evaluation, then the final model."""
    if run.kind != "recovered":
        return []
    points = [(p["step"], p["tokens"], p.get("recovery", {})) for p in run.progress]
    points.append((None, run.training_tokens, run.recovery))
    out = []
    for step, tokens, rec in points:
        entry = rec.get(task, {})
        seq = entry.get("sequential") or {}
        out.append(
            {
                "step": step,
                "training_tokens": tokens,
                "recovery_score": seq.get("score"),
                "ci_low": seq.get("ci_low"),
                "ci_high": seq.get("ci_high"),
                "slope_recovered": entry.get("slope"),
                "slope_recovered_ci": entry.get("slope_ci"),
            }
        )
    return out


def verdict(run: Run, task: str) -> str | None:
    """One sentence: did scaling return, by the area pruning lost and by the teacher's scaling slope.

    The area alone can mislead: a flat curve that sits above a pruned model answering below chance wins back area
    without any test-time scaling. So "returned" needs both, and a curve that regains under a quarter of the slope
    did not return, whatever its area.
    """
    rec = run.recovery.get(task, {}).get("sequential")
    if not rec:
        return None
    score = rec.get("score")
    if score is None or not math.isfinite(score):
        return (
            f"{run.name}: no {task} recovery score could be computed: pruning lost none of the teacher's sequential "
            "area (the pruned curve matches the teacher's), so there was nothing to recover."
        )
    area = 100 * score
    interval = (
        f" [{100 * rec['ci_low']:.0f}, {100 * rec['ci_high']:.0f}]"
        if finite(rec.get("ci_low")) is not None and finite(rec.get("ci_high")) is not None
        else ""
    )
    slope = finite(run.recovery[task].get("slope"))
    flat = slope is not None and slope < SLOPE_FLAT
    if score >= RETURNED and not flat and (slope is None or slope >= SLOPE_RETURNED):
        state = "scaling returned"
    elif score < PARTLY or flat:
        state = "scaling did not return" + (" (its curve stays flat)" if flat and score >= PARTLY else "")
    else:
        state = "scaling partly returned"
    slope_text = f" and {100 * slope:.0f}% of the teacher's scaling slope" if slope is not None else ""
    return f"{run.name}: recovered {area:.0f}%{interval} of the {task} sequential area lost to pruning{slope_text}; {state}."


KNOWLEDGE_DROP_PER_LAYER = 0.05  # the knowledge control may lose this much per removed layer and still "hold"
LONG_DROP, FLAT_SLOPE = 0.5, 0.25  # long chains "collapse": accuracy falls this much and the slope below this share


def knowledge_sentence(teacher: Run, pruned: Run, task: str, control: str) -> str | None:
    """Does the knowledge control hold while long-chain reasoning collapses, as the paper found?

    Holds: control accuracy at the largest budget within ``KNOWLEDGE_DROP_PER_LAYER`` of the teacher's per removed
    layer (0.05 for one layer, 0.10 for two). Collapses: accuracy at the largest budget falls by ``LONG_DROP`` and
    the scaling slope falls below ``FLAT_SLOPE`` of the teacher's.
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
    flat = s_t is not None and s_p is not None and s_t > 0 and s_p < FLAT_SLOPE * s_t
    holds, collapses = c_t - c_p <= allowed + 1e-9, l_t - l_p >= LONG_DROP and flat
    claim = "as the paper found" if holds and collapses else "unlike the paper's finding"
    slope = f", slope {s_t:.3f} -> {s_p:.3f}" if s_t is not None and s_p is not None else ""
    return (
        f"{pruned.name}: {control} accuracy {c_t:.2f} -> {c_p:.2f} "
        f"({'holds, within' if holds else 'drops by more than'} {allowed:.2f}), {task} {l_t:.2f} -> {l_p:.2f}{slope} ({'collapses' if collapses else 'does not collapse'}); "
        f"{claim}."
    )


def _fmt(v, digits=3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def report_markdown(runs: list[Run], summary: dict, title: str) -> str:
    lines = [f"# {title or 'Recovery comparison'}", ""]
    for task in summary["tasks"]:
        rows = [r for r in summary["runs"] if task in r["tasks"]]
        budgets = sorted({b for r in rows for b in r["tasks"][task]["accuracy_by_budget"]}, key=int)
        has_analysis = any(r["tasks"][task]["analysis"] for r in rows)
        head = ["run", "recipe", "layers removed", "training tokens"] + [f"acc@{b}" for b in budgets]
        head += ["pass@1", "pass@k max", "scaling slope", "recovery score [95% CI]", "slope recovered"]
        head += [f"{summary['control_task']} acc"]
        if has_analysis:
            head += ["self-BLEU", "repetition", "reflection markers/trace"]
        lines += [f"## {task}", "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        for r in rows:
            t = r["tasks"][task]
            rec = t["recovery_score"]
            cells = [r["run"], _fmt(r["recipe"]), _fmt(r["layers_removed"] or "none"), _fmt(r["training_tokens"])]
            cells += [_fmt(t["accuracy_by_budget"].get(b, t["accuracy_by_budget"].get(str(b)))) for b in budgets]
            cells += [_fmt(t["pass_at_1"]), _fmt(t["pass_at_k_max"]), _fmt(t["scaling_slope"])]
            scored = rec and rec["score"] is not None
            cells += [f"{rec['score']:.3f} [{_fmt(rec['ci_low'])}, {_fmt(rec['ci_high'])}]" if scored else "-"]
            cells += [_fmt(t["slope_recovered"])]
            cells += [_fmt(t["control_accuracy"])]
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
    if summary["knowledge_vs_reasoning"]:
        lines += ["## Knowledge stand-in vs long reasoning", ""]
        lines += [f"- {v}" for v in summary["knowledge_vs_reasoning"]] + [""]
    return "\n".join(lines)


def _interval_text(score, ci) -> str:
    if score is None:
        return "-"
    return f"{score:.2f} [{_fmt(ci[0], 2)}, {_fmt(ci[1], 2)}]" if ci and None not in ci else f"{score:.2f}"


def ranking(summary: dict, task: str) -> list[dict]:
    """Recovered runs on ``task``, best recovery score first; ``separated``: its interval lies above the next's."""
    rows = [r["tasks"][task] for r in summary["runs"] if r["kind"] == "recovered" and task in r["tasks"]]
    rows = sorted(
        (t for t in rows if t["recovery_score"] and finite(t["recovery_score"]["score"]) is not None),
        key=lambda t: -t["recovery_score"]["score"],
    )
    out = []
    for i, t in enumerate(rows):
        rec, nxt = t["recovery_score"], rows[i + 1]["recovery_score"] if i + 1 < len(rows) else None
        above = nxt is not None and None not in (rec["ci_low"], nxt["ci_high"]) and rec["ci_low"] > nxt["ci_high"]
        out.append(
            {
                "run": t["run"],
                "recovery_score": rec,
                "slope_recovered": t["slope_recovered"],
                "slope_recovered_ci": t["slope_recovered_ci"],
                "training_tokens": t["training_tokens"],
                "separated_from_next": above,
            }
        )
    return out


def slope_leader(ranked: list[dict]) -> str | None:
    """One plain sentence: which recipe brought back the most of the teacher's scaling slope, and whether any reached
    ``SLOPE_GOAL`` (70%) of it."""
    scored = [r for r in ranked if finite(r["slope_recovered"]) is not None]
    if not scored:
        return None
    best = max(scored, key=lambda r: r["slope_recovered"])
    reached = [r["run"] for r in scored if r["slope_recovered"] >= SLOPE_GOAL]
    ci = best["slope_recovered_ci"]
    ci_text = f" [{100 * ci[0]:.0f}, {100 * ci[1]:.0f}]" if ci and None not in ci else ""
    tail = (
        f"{len(reached)} of {len(scored)} recipes reached {100 * SLOPE_GOAL:.0f}% ({', '.join(reached)})"
        if reached
        else f"no recipe reached {100 * SLOPE_GOAL:.0f}%"
    )
    return f"Most of the slope: {best['run']} brought back {100 * best['slope_recovered']:.0f}%{ci_text}; {tail}."


def _ranking_lines(summary: dict) -> list[str]:
    lines = []
    for task in summary["tasks"]:
        ranked = summary.get("ranking", {}).get(task) or []
        if not ranked:
            continue
        lines += [f"## Recipes ranked by {task} recovery score", ""]
        lines += [
            "| rank | run | recovery score [95% CI] | slope recovered [95% CI] | training tokens | "
            "interval above the next |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for i, r in enumerate(ranked, 1):
            rec = r["recovery_score"]
            cells = [str(i), r["run"], _interval_text(rec["score"], [rec["ci_low"], rec["ci_high"]])]
            cells += [_interval_text(r["slope_recovered"], r["slope_recovered_ci"]), _fmt(r["training_tokens"])]
            cells += ["yes" if r["separated_from_next"] else "-"]
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
            "Recovery score [95% CI] and share of the teacher's slope recovered, at each evaluated point of "
            "training (the last is the final model).",
            "",
        ]
        width = max(len(r["tasks"][task]["progress"]) for r in rows)
        lines += ["| run | " + " | ".join(f"point {i + 1}" for i in range(width)) + " |", "|" + " --- |" * (width + 1)]
        for r in rows:
            cells = [r["run"]]
            for p in r["tasks"][task]["progress"]:
                area = _interval_text(p["recovery_score"], [p["ci_low"], p["ci_high"]])
                cells.append(f"{_fmt(p['training_tokens'])} tokens: {area}; slope {_fmt(p['slope_recovered'], 2)}")
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
    """Recovery score and slope recovered against training tokens, one line per recovered run, with intervals."""
    panels = (
        ("recovery_score", lambda p: (p["ci_low"], p["ci_high"]), "recovery score (area)"),
        (
            "slope_recovered",
            lambda p: p.get("slope_recovered_ci") or (None, None),
            "share of the teacher's slope recovered",
        ),
    )
    for col, (key, interval, label) in enumerate(panels):
        ax = axes[col]
        for r in summary["runs"]:
            points = [p for p in r["tasks"].get(task, {}).get("progress") or [] if p["training_tokens"] is not None]
            points = [p for p in points if p[key] is not None]
            if len(points) < 2:
                continue
            xs, ys = [p["training_tokens"] for p in points], [p[key] for p in points]
            bounds = [interval(p) for p in points]
            lo = [y - b[0] if b[0] is not None else 0 for y, b in zip(ys, bounds)]
            hi = [b[1] - y if b[1] is not None else 0 for y, b in zip(ys, bounds)]
            color = style.get(r["run"], {}).get("color")
            ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", ms=3, capsize=2, label=r["run"], color=color)
        ax.axhline(1.0, color="black", lw=0.8, ls=":")
        ax.axhline(0.0, color="0.55", lw=0.8, ls="--")
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
    summary = finite(summary)  # valid JSON: a value that could not be computed is null, never NaN
    output_dir.mkdir(parents=True, exist_ok=True)
    plot_tasks = tasks + ([control] if control else [])
    plot_comparison(runs, plot_tasks, output_dir / "comparison.png", title, summary)
    write_file(output_dir / "summary.json", json.dumps(summary, indent=2))
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


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__ + "\nkeys: " + ", ".join(valid_keys(CompareCommand)))
        return 0
    cfg = load_config(CompareCommand, argv)
    out = Path(cfg.output_dir)
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
