"""``lprecover compare``: the verdict rules at their thresholds, NaN scores, and where a run's model is looked for."""

import json
import math
import shutil

import pytest
import yaml

from lprecover.compare import PARTLY, RETURNED, SLOPE_FLAT, SLOPE_RETURNED, Run, compare, discover, verdict


def _recovered(score: float, slope: float | None = None) -> Run:
    rec = {"sequential": {"score": score, "ci_low": score - 0.1, "ci_high": score + 0.1}}
    if slope is not None:
        rec["slope"] = slope
    return Run(name="r", kind="recovered", path="r", eval_dir=None, curves={}, summary={}, recovery={"t": rec})


def test_thresholds_are_the_documented_ones():
    assert (RETURNED, PARTLY, SLOPE_RETURNED, SLOPE_FLAT) == (0.7, 0.3, 0.5, 0.25)


@pytest.mark.parametrize(
    "score, slope, state",
    [
        (0.70, None, "; scaling returned."),
        (0.6999, None, "; scaling partly returned."),
        (0.30, None, "; scaling partly returned."),
        (0.2999, None, "; scaling did not return."),
        (0.90, 0.50, "; scaling returned."),
        (0.90, 0.4999, "; scaling partly returned."),
        (0.90, 0.25, "; scaling partly returned."),
        (0.90, 0.2499, "; scaling did not return (its curve stays flat)."),
        (0.20, 0.10, "; scaling did not return."),  # flat, but the area already says it: no second reason
        (0.90, float("nan"), "; scaling returned."),  # a slope that could not be computed is no evidence either way
    ],
)
def test_verdict_at_the_thresholds(score, slope, state):
    sentence = verdict(_recovered(score, slope), "t")
    assert sentence.endswith(state)
    assert sentence.startswith(f"r: recovered {100 * score:.0f}% [{100 * score - 10:.0f}, {100 * score + 10:.0f}]")
    assert ("of the teacher's scaling slope" in sentence) == (slope is not None and math.isfinite(slope))


@pytest.mark.parametrize("score", [float("nan"), None])
def test_verdict_without_a_score_says_so_plainly(score):
    run = _recovered(0.5)
    run.recovery["t"]["sequential"]["score"] = score
    sentence = verdict(run, "t")
    assert sentence == (
        "r: no t recovery score could be computed: pruning lost none of the teacher's sequential area (the pruned "
        "curve matches the teacher's), so there was nothing to recover."
    )
    assert "nan" not in sentence and "partly" not in sentence


def _planted(folder, correct: bool, kind: str) -> Run:
    """An evaluated run whose every answer is ``correct``, at budgets 8, 16 and 32."""
    folder.mkdir()
    rows = [
        {"task": "t", "mode": "sequential", "problem_id": f"p{i}", "budget": b, "sample": 0, "correct": correct}
        for i in range(10)
        for b in (8, 16, 32)
    ]
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    acc = [float(correct)] * 3
    curves = {"sequential": {"t": {"budget": [8, 16, 32], "accuracy": acc, "ci_low": acc, "ci_high": acc}}}
    summary = {"t": {"scaling_slope": 0.0, "sequential_area": float(correct)}}
    layers = {"kept_layers": [0, 1, 3], "removed_layers": [2]} if kind != "teacher" else {}
    return Run(name=kind, kind=kind, path=str(folder), eval_dir=str(folder), curves=curves, summary=summary, **layers)


def test_pruning_that_lost_nothing_writes_valid_json_and_a_plain_verdict(tmp_path):
    runs = [
        _planted(tmp_path / "teacher", True, "teacher"),
        _planted(tmp_path / "pruned", True, "pruned"),  # pruning lost nothing: the score is 0/0
        _planted(tmp_path / "recovered", True, "recovered"),
    ]
    compare(runs, tmp_path / "out", n_boot=50)

    def refuse(constant):
        raise AssertionError(f"summary.json holds {constant}, which is not JSON")

    summary = json.loads((tmp_path / "out" / "summary.json").read_text(), parse_constant=refuse)
    row = next(r for r in summary["runs"] if r["kind"] == "recovered")["tasks"]["t"]
    assert row["recovery_score"]["score"] is None
    assert summary["verdicts"] == [
        "recovered: no t recovery score could be computed: pruning lost none of the teacher's sequential area (the "
        "pruned curve matches the teacher's), so there was nothing to recover."
    ]
    report = (tmp_path / "out" / "report.md").read_text()
    assert "nan" not in report.lower() and "partly" not in report


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
    from lprecover.compare import _tasks

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
    """Hand-built scores: a's interval lies above b's; b's overlaps c's. The most slope recovered is b's 0.66, so the
    report says plainly that no recipe reached 70%; with c at 0.8 it names c."""
    from lprecover.compare import ranking, slope_leader

    def row(run, score, lo, hi, slope, kind="recovered"):
        rec = {"score": score, "ci_low": lo, "ci_high": hi}
        task = {
            "run": run,
            "recovery_score": rec,
            "slope_recovered": slope,
            "slope_recovered_ci": slope and [slope - 0.1, slope + 0.1],
        }
        return {"run": run, "kind": kind, "tasks": {"t": {**task, "training_tokens": 100}}}

    runs = [row("c", 0.10, 0.0, 0.2, 0.05), row("a", 0.75, 0.66, 0.84, 0.61), row("b", 0.15, 0.05, 0.25, 0.66)]
    ranked = ranking({"runs": runs + [row("teacher", None, None, None, None, kind="teacher")]}, "t")
    assert [r["run"] for r in ranked] == ["a", "b", "c"]
    assert [r["separated_from_next"] for r in ranked] == [True, False, False]
    assert slope_leader(ranked) == "Most of the slope: b brought back 66% [56, 76]; no recipe reached 70%."
    runs[0]["tasks"]["t"]["slope_recovered"] = 0.8
    assert slope_leader(ranking({"runs": runs}, "t")).endswith("; 1 of 3 recipes reached 70% (c).")
    assert slope_leader([]) is None
