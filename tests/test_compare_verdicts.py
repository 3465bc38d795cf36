"""Recovery measures and verdicts across regimes: every expected number is computed here by hand, from the
definitions in ``evaluation/recovery_measures.py`` written out in plain arithmetic, not by calling the code under test."""

import json
import math
import shutil

import pytest
import yaml

from lprecover.compare.discovery import Run, discover
from lprecover.compare.run import compare
from lprecover.evaluation.recovery_measures import MIN_AREA, MIN_SLOPE, recovery_measures
from lprecover.verdict import PARTLY_SHARE, RETURNED_SHARE, SLOPE_FLAT, SLOPE_RETURNED, decide

BUDGETS = [8, 16, 32, 64]
PROBLEMS = 20


def hand_area(acc: list[float]) -> float:
    """Trapezoid area on u = log2(1 + budget), over the width of u: the mean height of the curve."""
    u = [math.log2(1 + b) for b in BUDGETS]
    total = sum((u[i + 1] - u[i]) * (acc[i] + acc[i + 1]) / 2 for i in range(len(u) - 1))
    return total / (u[-1] - u[0])


def hand_slope(acc: list[float]) -> float:
    """Least squares on x = log2(budget) = 3, 4, 5, 6: deviations -1.5, -0.5, 0.5, 1.5, squares summing to 5."""
    return (-1.5 * acc[0] - 0.5 * acc[1] + 0.5 * acc[2] + 1.5 * acc[3]) / 5


def plant(folder, acc: list[float], problems: int = PROBLEMS) -> None:
    """An evaluation whose problem i is correct at budget b when i < accuracy(b) * problems."""
    folder.mkdir(parents=True)
    rows = [
        {
            "task": "t",
            "mode": "sequential",
            "problem_id": f"p{i}",
            "budget": b,
            "sample": 0,
            "correct": i < a * problems,
        }
        for i in range(problems)
        for b, a in zip(BUDGETS, acc)
    ]
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def measures(tmp_path, t, p, r, problems=PROBLEMS) -> dict:
    for name, acc in (("t", t), ("p", p), ("r", r)):
        plant(tmp_path / name, acc, problems)
    return recovery_measures(tmp_path / "t", tmp_path / "p", tmp_path / "r", n_boot=400)["t"]["sequential"]


FLAT_HALF = [0.5] * 4
RISING = [0.2, 0.4, 0.6, 0.8]  # slope (-0.3 - 0.2 + 0.3 + 1.2) / 5 = 0.2 per doubling

# (regime, teacher, pruned, recovered, expected verdict)
REGIMES = [
    ("ordinary partial recovery", RISING, [0.1] * 4, [0.15, 0.25, 0.35, 0.45], "partly"),
    ("pruned better than the teacher", FLAT_HALF, [0.6] * 4, [0.7] * 4, "nothing_to_recover"),
    ("a tiny loss", FLAT_HALF, [0.5, 0.5, 0.5, 0.45], [0.6] * 4, "nothing_to_recover"),
    ("pruned steeper than the teacher", [0.5, 0.55, 0.6, 0.65], [0.1, 0.2, 0.3, 0.4], [0.3, 0.3, 0.4, 0.4], "partly"),
    ("equal slopes", [0.5, 0.6, 0.7, 0.8], [0.1, 0.2, 0.3, 0.45], [0.2, 0.3, 0.5, 0.65], "partly"),
    ("a flat teacher", [0.6] * 4, [0.2] * 4, [0.5] * 4, "returned"),
    ("recovery beyond the teacher", RISING, [0.1] * 4, [0.4, 0.6, 0.8, 1.0], "returned"),
    ("a non-monotonic teacher", [0.3, 0.5, 0.4, 0.6], [0.1, 0.15, 0.1, 0.15], [0.25, 0.45, 0.35, 0.55], "returned"),
    ("recovered = teacher", RISING, [0.1] * 4, RISING, "returned"),
    ("recovered = pruned", RISING, [0.1] * 4, [0.1] * 4, "not_returned"),
    ("a flat recovered curve above the pruned one", RISING, [0.1] * 4, [0.45] * 4, "not_returned"),
    ("recovery below the pruned model", RISING, [0.3] * 4, [0.1] * 4, "not_returned"),
    ("a teacher that declines with budget", [0.6, 0.55, 0.5, 0.45], [0.3] * 4, [0.5] * 4, "returned"),
]


@pytest.mark.parametrize("regime, t, p, r, expected", REGIMES, ids=[r[0] for r in REGIMES])
def test_every_measure_and_verdict_by_regime(tmp_path, regime, t, p, r, expected):
    m = measures(tmp_path, t, p, r)
    area = {k: hand_area(v) for k, v in (("t", t), ("p", p), ("r", r))}
    slope = {k: hand_slope(v) for k, v in (("t", t), ("p", p), ("r", r))}
    assert m["problems"] == PROBLEMS
    for run, key in (("t", "teacher"), ("p", "pruned"), ("r", "recovered")):
        assert m[f"{key}_area"]["value"] == pytest.approx(area[run])
        assert m[f"{key}_slope"]["value"] == pytest.approx(slope[run])
    assert m["area_lost"]["value"] == pytest.approx(area["t"] - area["p"])
    assert m["area_gap_to_teacher"]["value"] == pytest.approx(area["r"] - area["t"])
    assert m["slope_gap_to_teacher"]["value"] == pytest.approx(slope["r"] - slope["t"])
    assert m["area_ratio_to_teacher"]["value"] == pytest.approx(area["r"] / area["t"])

    area_loss_big = area["t"] - area["p"] >= MIN_AREA
    if area_loss_big:  # every regime here with a loss this big has it in every resample: its interval excludes 0
        share = min(1.0, max(0.0, (area["r"] - area["p"]) / (area["t"] - area["p"])))
        assert m["area_recovered_share"]["value"] == pytest.approx(share)
        assert 0 <= m["area_recovered_share"]["ci_low"] <= share + 1e-9 <= m["area_recovered_share"]["ci_high"] + 2e-9
    else:
        assert m["area_recovered_share"] == {"value": None, "ci_low": None, "ci_high": None}
    if slope["t"] >= MIN_SLOPE:
        assert m["slope_ratio_to_teacher"]["value"] == pytest.approx(slope["r"] / slope["t"])
    else:
        assert m["slope_ratio_to_teacher"]["value"] is None
    if slope["t"] - slope["p"] < MIN_SLOPE:
        assert m["slope_recovered_share"]["value"] is None
    assert decide(m) == expected


def test_hand_values_of_the_regimes_that_reports_got_wrong(tmp_path):
    """The numbers the issue's readers computed, stated outright."""
    ordinary = measures(tmp_path / "a", RISING, [0.1] * 4, [0.15, 0.25, 0.35, 0.45])
    assert ordinary["area_recovered_share"]["value"] == pytest.approx(0.5)  # r = (t + p) / 2 at every budget
    assert ordinary["slope_ratio_to_teacher"]["value"] == pytest.approx(0.5)  # 0.1 of 0.2, not the 37% of old
    assert ordinary["slope_recovered_share"]["value"] == pytest.approx((0.1 - 0.0) / (0.2 - 0.0))
    beyond = measures(tmp_path / "b", RISING, [0.1] * 4, [0.4, 0.6, 0.8, 1.0])
    assert beyond["area_recovered_share"]["value"] == 1.0  # clipped: the recovered curve is above the teacher
    assert beyond["area_ratio_to_teacher"]["ci_low"] > 1.0
    tiny = measures(tmp_path / "c", FLAT_HALF, [0.5, 0.5, 0.5, 0.45], [0.6] * 4)
    # One problem lost at one budget: the loss is 0.05 * (u4 - u3) / 2 / (u4 - u1), about 0.009, under MIN_AREA.
    u = [math.log2(1 + b) for b in BUDGETS]
    assert tiny["area_lost"]["value"] == pytest.approx(0.05 * (u[3] - u[2]) / 2 / (u[3] - u[0]))
    assert tiny["slope_lost"]["value"] == pytest.approx(0.015)  # 0 - (1.5 * -0.05) / 5... the pruned slope is -0.015


def test_one_problem_gives_numbers_without_intervals(tmp_path):
    m = measures(tmp_path, [0, 1, 1, 1], [0, 0, 0, 0], [0, 0, 1, 1], problems=1)
    assert m["problems"] == 1
    share = hand_area([0, 0, 1, 1]) / hand_area([0, 1, 1, 1])
    assert m["area_recovered_share"]["value"] == pytest.approx(share)
    for measure in m.values():
        if isinstance(measure, dict):
            assert measure["ci_low"] is None and measure["ci_high"] is None, measure
    assert decide(m) == ("returned" if share >= 0.7 else "partly" if share >= 0.3 else "not_returned")


def test_thresholds_are_the_documented_ones():
    assert (RETURNED_SHARE, PARTLY_SHARE, SLOPE_RETURNED, SLOPE_FLAT, MIN_AREA, MIN_SLOPE) == (
        0.7,
        0.3,
        0.5,
        0.25,
        0.02,
        0.02,
    )


def _m(value, lo=None, hi=None):
    return {"value": value, "ci_low": lo, "ci_high": hi}


@pytest.mark.parametrize(
    "share, rho, expected",
    [
        (0.70, None, "returned"),
        (0.6999, None, "partly"),
        (0.30, None, "partly"),
        (0.2999, None, "not_returned"),
        (0.90, 0.50, "returned"),
        (0.90, 0.4999, "partly"),
        (0.90, 0.25, "partly"),
        (0.90, 0.2499, "not_returned"),  # flat: under a quarter of the teacher's slope, whatever the area
    ],
)
def test_verdict_at_the_thresholds(share, rho, expected):
    m = {"area_lost": _m(0.3, 0.2, 0.4), "area_recovered_share": _m(share), "slope_ratio_to_teacher": _m(rho)}
    assert decide(m) == expected


def test_a_loss_whose_interval_reaches_zero_is_nothing_to_recover():
    m = {"area_lost": _m(0.05, 0.0, 0.1), "area_recovered_share": _m(None), "slope_ratio_to_teacher": _m(None)}
    assert decide(m) == "nothing_to_recover"
    m["slope_lost"], m["slope_recovered_share"] = _m(0.1, 0.05, 0.15), _m(0.2, 0.1, 0.3)
    assert decide(m) == "not_returned"  # only the slope was lost, and a fifth of it came back


def _run(folder, acc, kind) -> Run:
    plant(folder, acc)
    curves = {"sequential": {"t": {"budget": BUDGETS, "accuracy": acc, "ci_low": acc, "ci_high": acc}}}
    summary = {"t": {"scaling_slope": hand_slope(acc), "sequential_area": hand_area(acc)}}
    layers = {"kept_layers": [0, 1, 3], "removed_layers": [2]} if kind != "teacher" else {}
    return Run(name=kind, kind=kind, path=str(folder), eval_dir=str(folder), curves=curves, summary=summary, **layers)


def test_summary_carries_the_verdict_and_its_numbers_and_valid_json(tmp_path):
    runs = [
        _run(tmp_path / "teacher", FLAT_HALF, "teacher"),
        _run(tmp_path / "pruned", [0.6] * 4, "pruned"),  # pruned better than the teacher
        _run(tmp_path / "recovered", [0.7] * 4, "recovered"),
    ]
    compare(runs, tmp_path / "out", n_boot=50)

    def refuse(constant):
        raise AssertionError(f"summary.json holds {constant}, which is not JSON")

    summary = json.loads((tmp_path / "out" / "summary.json").read_text(), parse_constant=refuse)
    row = next(r for r in summary["runs"] if r["kind"] == "recovered")["tasks"]["t"]
    assert row["verdict"] == "nothing_to_recover"
    assert row["area_recovered_share"]["value"] is None
    assert row["area_ratio_to_teacher"]["value"] == pytest.approx(0.7 / 0.5)
    assert row["area_lost"]["value"] == pytest.approx(-0.1)
    (sentence,) = summary["verdicts"]
    assert sentence.startswith("recovered on t (20 problems): pruning lost nothing measurable")
    assert "1.40" in sentence and "(above the teacher)" in sentence
    report = (tmp_path / "out" / "report.md").read_text()
    assert "nan" not in report.lower() and "nothing_to_recover" in report
    assert summary["ranking"]["t"][0]["ranked_by"] == "area_ratio_to_teacher"


def _eval_folder(folder, name_or_path: str, output_dir: str) -> None:
    folder.mkdir(parents=True)
    saved = {"model": {"name_or_path": name_or_path}, "output_dir": output_dir}
    (folder / "config.yaml").write_text(yaml.safe_dump(saved))
    curves = {"sequential": {"t": {"budget": [8, 16], "accuracy": [0.1, 0.2], "ci_low": [0, 0], "ci_high": [1, 1]}}}
    (folder / "curves.json").write_text(json.dumps(curves))
    (folder / "summary.json").write_text(json.dumps({"t": {"scaling_slope": 0.1}}))


def _pruned_model(folder) -> None:
    folder.mkdir(parents=True)
    prov = {"method": "shortgpt", "removed_layers": [2], "kept_layers": [0, 1, 3], "source_model": "organism"}
    (folder / "config.json").write_text(json.dumps({"lprecover_pruning": prov}))


def test_relative_model_path_is_found_from_the_evaluation_folder_not_the_current_directory(tmp_path, monkeypatch):
    launch = tmp_path / "launch"  # where `lprecover eval model.name_or_path=runs/s/pruned-2 ...` ran
    _pruned_model(launch / "runs" / "s" / "pruned-2")
    _eval_folder(launch / "runs" / "s" / "eval-pruned-2", "runs/s/pruned-2", "runs/s/eval-pruned-2")
    _eval_folder(launch / "runs" / "s" / "eval-teacher", "owner/hub-model", "runs/s/eval-teacher")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")

    pruned = discover(launch / "runs" / "s" / "eval-pruned-2")
    assert pruned.kind == "pruned" and pruned.removed_layers == [2]
    assert discover(launch / "runs" / "s" / "eval-teacher").kind == "teacher"

    shutil.move(launch / "runs" / "s", tmp_path / "moved")  # the study folder copied to another machine
    assert discover(tmp_path / "moved" / "eval-pruned-2").kind == "pruned"


def test_absolute_model_path_is_used_as_saved(tmp_path, monkeypatch):
    _pruned_model(tmp_path / "pruned-1")
    _eval_folder(tmp_path / "eval", str(tmp_path / "pruned-1"), "eval")
    monkeypatch.chdir(tmp_path / "eval")
    assert discover(tmp_path / "eval").kind == "pruned"


def test_the_knowledge_control_is_the_facts_task_else_the_shallow_task_or_mmlu():
    from lprecover.compare.scores import tasks_of as _tasks

    def run(*tasks):
        curves = {"sequential": {t: {} for t in tasks}}
        return Run(name="r", kind="teacher", path="r", eval_dir=None, curves=curves, summary={})

    assert _tasks([run("organism_long", "organism_shallow")]) == (["organism_long"], "organism_shallow")
    both = run("organism_facts", "organism_long", "organism_shallow")
    assert _tasks([both]) == (["organism_long", "organism_shallow"], "organism_facts")
    assert _tasks([run("gsm8k", "mmlu"), run("aime24")]) == (["aime24", "gsm8k"], "mmlu")
    # A chain range named by its steps is reasoning like the long chains, never the control.
    assert _tasks([run("organism_long", "organism:1-2")]) == (["organism:1-2", "organism_long"], None)


def test_ranking_marks_separated_intervals_and_names_the_slope_leader():
    """Hand-built measures: a's interval lies above b's; b's overlaps c's. The steepest curve is b's at 66% of the
    teacher's slope, so the report says plainly that no recipe reached 70%; with c at 0.8 it names c."""
    from lprecover.compare.scores import ranking, slope_leader

    def row(run, share, lo, hi, rho, kind="recovered"):
        task = {
            "run": run,
            "area_recovered_share": _m(share, lo, hi),
            "slope_ratio_to_teacher": _m(rho, rho and rho - 0.1, rho and rho + 0.1),
            "verdict": "partly",
            "training_tokens": 100,
        }
        return {"run": run, "kind": kind, "tasks": {"t": task}}

    runs = [row("c", 0.10, 0.0, 0.2, 0.05), row("a", 0.75, 0.66, 0.84, 0.61), row("b", 0.15, 0.05, 0.25, 0.66)]
    ranked = ranking({"runs": runs + [row("teacher", None, None, None, None, kind="teacher")]}, "t")
    assert [r["run"] for r in ranked] == ["a", "b", "c"]
    assert [r["separated_from_next"] for r in ranked] == [True, False, False]
    assert {r["ranked_by"] for r in ranked} == {"area_recovered_share"}
    expected = "Steepest recovered curve: b's slope is 66% [56, 76] of the teacher's; no recipe reached 70%."
    assert slope_leader(ranked) == expected
    runs[0]["tasks"]["t"]["slope_ratio_to_teacher"] = _m(0.8, 0.7, 0.9)
    assert slope_leader(ranking({"runs": runs}, "t")).endswith("; 1 of 3 recipes reached 70% of it (c).")
    assert slope_leader([]) is None
