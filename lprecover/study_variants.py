"""A study's recovery-data variants side by side: per recipe, what each variant of the recovery data brought back.

``lprecover study`` with ``variants`` (e.g. ``study=trace_length``: traces of chains up to 4 and 6 steps beside the
study's own data, up to 8) runs the recipes of ``variant_recipes`` on each variant and compares each variant's runs
on its own (``comparison-NAME/``); this module writes ``variants/report.md`` and ``variants/summary.json`` from
those comparisons: per recipe and variant, the final area share and slope / teacher with their intervals, the
verdict, tokens to 50% of the loss, and the knowledge control after recovery.
"""

import json
from pathlib import Path

from lprecover.atomic import write_file
from lprecover.compare.reach import reach_text
from lprecover.verdict import measure_text

CELL_KEYS = (
    "area_recovered_share",
    "slope_ratio_to_teacher",
    "verdict",
    "tokens_to_50",
    "tokens_to_50_slope",
    "control_accuracy",
)


def recipe_cells(summary: dict, task: str) -> dict[str, dict]:
    """``{recipe: {key: value}}`` of the recovered runs of one comparison on ``task``."""
    out = {}
    for r in summary["runs"]:
        if r["kind"] == "recovered" and task in r["tasks"]:
            out[r["recipe"] or r["run"]] = {k: r["tasks"][task].get(k) for k in CELL_KEYS}
    return out


def side_by_side(summaries: dict[str, dict]) -> dict:
    """``{task: {recipe: {variant: cells}}}`` over the comparisons ``summaries`` (``{variant: summary}``)."""
    tasks = sorted({t for s in summaries.values() for t in s["tasks"]})
    table: dict = {}
    for task in tasks:
        for variant, summary in summaries.items():
            for recipe, cells in recipe_cells(summary, task).items():
                table.setdefault(task, {}).setdefault(recipe, {})[variant] = cells
    return table


def _cell(c: dict | None) -> str:
    if not c:
        return "-"
    facts = c["control_accuracy"]
    return (
        f"{measure_text(c['area_recovered_share'], missing='-')}; "
        f"slope {measure_text(c['slope_ratio_to_teacher'], missing='-')}; "
        f"{c['verdict'] or '-'}; 50% at {reach_text(c['tokens_to_50'])}"
        + (f"; control {facts:.2f}" if facts is not None else "")
    )


def write_variants(out: Path, summaries: dict[str, dict], labels: dict[str, str], title: str) -> dict:
    """Write ``out/summary.json`` and ``out/report.md``; returns the table."""
    table = side_by_side(summaries)
    names = list(summaries)
    lines = [f"# {title}: recovery data variants side by side", ""]
    lines += [f"- `{n}`: {labels.get(n, n)}" for n in names] + [""]
    lines += [
        "Each cell: area share [95% CI]; slope / teacher [95% CI]; verdict; training tokens to 50% of the lost area "
        "(`not reached` where the last evaluation is below it); the knowledge control's accuracy after recovery.",
        "",
    ]
    for task, recipes in table.items():
        lines += [f"## {task}", "", "| recipe | " + " | ".join(names) + " |", "|" + " --- |" * (len(names) + 1)]
        for recipe, by_variant in recipes.items():
            lines.append("| " + " | ".join([recipe] + [_cell(by_variant.get(n)) for n in names]) + " |")
        lines.append("")
    out.mkdir(parents=True, exist_ok=True)
    _write_changed(out / "summary.json", json.dumps({"labels": labels, "table": table}, indent=2))
    _write_changed(out / "report.md", "\n".join(lines))
    return table


def _write_changed(path: Path, text: str) -> None:
    """Write ``path`` whole, unless it already holds ``text``: a study rerun with nothing changed rewrites nothing."""
    if not path.is_file() or path.read_text() != text:
        write_file(path, text)
