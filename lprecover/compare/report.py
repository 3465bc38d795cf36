"""``report.md``: the tables and sentences of a comparison, each number with its interval."""

from lprecover.compare.discovery import Run
from lprecover.compare.reach import reach_lines, seconds_row
from lprecover.log import get_logger
from lprecover.verdict import measure_text

logger = get_logger(__name__)


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
