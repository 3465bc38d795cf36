"""Acceptance of the whole mission on the organism: the default ``lprecover study``, run for real (slow)."""

import json

import pytest
from report_checks import assert_report_is_the_curves

from lprecover.cli import main as cli


@pytest.fixture(scope="module")
def study(tmp_path_factory, teacher_path):
    out = tmp_path_factory.mktemp("acceptance") / "study"
    assert cli(["study", f"output_dir={out}"]) == 0
    return out


def _curve(out, folder, task="organism_long"):
    return json.loads((out / folder / "curves.json").read_text())["sequential"][task]


@pytest.mark.slow
def test_teacher_scales_with_thinking_budget(study):
    acc = _curve(study, "eval-teacher")["accuracy"]
    assert acc[-1] - acc[0] >= 0.5, acc


@pytest.mark.slow
def test_pruning_two_layers_breaks_long_chains(study):
    assert _curve(study, "eval-teacher")["accuracy"][-1] - _curve(study, "eval-pruned-2")["accuracy"][-1] >= 0.3


@pytest.mark.slow
def test_report_sets_the_knowledge_stand_in_beside_long_reasoning(study):
    summary = json.loads((study / "comparison" / "summary.json").read_text())
    report = (study / "comparison" / "report.md").read_text()
    sentences = summary["knowledge_vs_reasoning"]
    assert {s.split(":")[0] for s in sentences} == {"pruned-1 (shortgpt)", "pruned-2 (shortgpt)"}
    assert all(s in report for s in sentences)
    assert all(("as the paper found" in s) != ("unlike the paper's finding" in s) for s in sentences)
    for row in summary["runs"]:
        assert row["tasks"]["organism_long"]["control_accuracy"] is not None


@pytest.mark.slow
def test_short_answer_sft_does_not_restore_scaling(study):
    summary = json.loads((study / "comparison" / "summary.json").read_text())
    row = next(r for r in summary["runs"] if r["run"] == "sft_short")["tasks"]["organism_long"]
    assert row["slope_recovered"] < 0.25, "sft_short's curve rises with the budget again"
    assert any(v.startswith("sft_short:") and "did not return" in v for v in summary["verdicts"])


@pytest.mark.slow
def test_report_numbers_are_the_curves_numbers(study):
    assert assert_report_is_the_curves(study) == 9 * 5, "nine runs, five budgets each"
