"""One check shared by the study tests: every accuracy in report.md is the summary's and the run's curves.json's."""

import json
from pathlib import Path


def assert_report_is_the_curves(study: Path, task: str = "organism_long") -> int:
    """Compare each ``acc@B`` cell of ``task``'s table with summary.json and the run's own curves; return the count."""
    summary = json.loads((study / "comparison" / "summary.json").read_text())
    report = (study / "comparison" / "report.md").read_text()
    table = [line for line in report.split(f"## {task}")[1].split("\n## ")[0].splitlines() if line.startswith("| ")]
    header = [c.strip() for c in table[0].strip("|").split("|")]
    rows = {r["run"]: r for r in summary["runs"]}
    checked = 0
    for line in table[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        run = rows[cells[0]]
        folder = Path(run["path"])
        curve = json.loads(((folder / "eval" if run["kind"] == "recovered" else folder) / "curves.json").read_text())
        curve = curve["sequential"][task]
        by_budget = dict(zip(curve["budget"], curve["accuracy"]))
        for col, name in enumerate(header):
            if name.startswith("acc@"):
                budget = int(name[4:])
                reported = float(cells[col])
                assert reported == round(run["tasks"][task]["accuracy_by_budget"][str(budget)], 3)
                assert reported == round(by_budget[budget], 3)
                checked += 1
    return checked
