"""The comparison: score, tabulate, plot and write ``summary.json``, ``seconds.json``, ``report.md``."""

import json
from pathlib import Path

from lprecover.atomic import write_file
from lprecover.compare.discovery import Run
from lprecover.compare.plots import plot_comparison
from lprecover.compare.reach import add_reach, seconds_row
from lprecover.compare.report import report_markdown
from lprecover.compare.scores import (
    knowledge_sentence,
    pair_and_score,
    ranking,
    run_row,
    slope_leader,
    tasks_of,
    verdict,
)
from lprecover.config import ConfigError
from lprecover.evaluation.metrics import finite
from lprecover.log import get_logger

logger = get_logger(__name__)

# What a comparison writes, versioned: a study's comparison is redone when this changes, even where every input is
# the same (2: pairs_to_reach, settled pairs paired on the same resamples).
SUMMARY_FORMAT = 2


def compare(runs: list[Run], output_dir: Path, title: str = "", n_boot: int = 1000) -> dict:
    """Score, tabulate and plot ``runs`` into ``output_dir``; returns the summary written to summary.json."""
    kinds = [r.kind for r in runs]
    if kinds.count("teacher") > 1:
        raise ConfigError("More than one teacher among the runs; compare one study (one unpruned model) at a time.")
    pair_and_score(runs, n_boot)
    tasks, control = tasks_of(runs)
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
                "tasks": {t: run_row(r, t, control) for t in tasks},
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
    add_reach(summary, {r.name: r.reach_draws for r in runs if r.reach_draws})
    summary = finite(summary)  # valid JSON: a value that could not be computed is null, never NaN
    output_dir.mkdir(parents=True, exist_ok=True)
    plot_tasks = tasks + ([control] if control else [])
    plot_comparison(runs, plot_tasks, output_dir / "comparison.png", title, summary)
    write_file(output_dir / "summary.json", json.dumps(summary, indent=2))
    seconds = {r.name: {t: seconds_row(r, r.reach, t) for t in tasks} for r in runs if r.reach}
    write_file(output_dir / "seconds.json", json.dumps(finite(seconds), indent=2))  # measured: not reproducible
    write_file(output_dir / "report.md", report_markdown(runs, summary, title))
    return summary
