"""``comparison.png``: every run's curves, and recovery along training where it was measured."""

from pathlib import Path

from lprecover.atomic import write_figure
from lprecover.compare.discovery import Run
from lprecover.log import get_logger

logger = get_logger(__name__)


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
