import json

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from lprecover.evaluation import recovery_measures
from lprecover.evaluation.config import EvalConfig
from lprecover.evaluation.run import run_eval
from lprecover.surgery import remove_layers


def _write(run_dir, correct_at):
    """Plant a run: problem i is correct at budget b when correct_at(i, b); 4 parallel samples, i % 5 of them right."""
    run_dir.mkdir()
    rows = []
    for i in range(20):
        for b in (8, 16, 32):
            rows.append(
                {
                    "task": "t",
                    "mode": "sequential",
                    "problem_id": f"p{i}",
                    "budget": b,
                    "sample": 0,
                    "correct": correct_at(i, b),
                }
            )
        for s in range(4):
            rows.append(
                {
                    "task": "t",
                    "mode": "parallel",
                    "problem_id": f"p{i}",
                    "budget": 32,
                    "sample": s,
                    "correct": correct_at(i, 32) and s < 3,
                }
            )
    (run_dir / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_area_shares_of_the_sequential_and_pass_at_k_curves_on_planted_runs(tmp_path):
    """Every problem right for the teacher, wrong for the pruned model, right on even problems for the recovered
    one: half of the loss won back on both curves (pass@k of an even problem is 1 at every k: 3 of 4 samples are
    right)."""
    _write(tmp_path / "teacher", lambda i, b: True)
    _write(tmp_path / "pruned", lambda i, b: False)
    _write(tmp_path / "half", lambda i, b: i % 2 == 0)
    measures = recovery_measures(tmp_path / "teacher", tmp_path / "pruned", tmp_path / "half", n_boot=300)["t"]
    share = measures["sequential"]["area_recovered_share"]
    assert share["value"] == pytest.approx(0.5)
    assert measures["parallel"]["area_recovered_share"]["value"] == pytest.approx(0.5)
    assert "slope_lost" not in measures["parallel"]  # a pass@k curve's slope is no scaling claim here
    assert share["ci_low"] < 0.5 < share["ci_high"]
    same = recovery_measures(tmp_path / "teacher", tmp_path / "pruned", tmp_path / "teacher")["t"]["sequential"]
    assert same["area_recovered_share"]["value"] == 1.0 and same["area_ratio_to_teacher"]["value"] == 1.0


def test_recovery_measures_need_evaluated_runs(tmp_path):
    with pytest.raises(FileNotFoundError, match="evaluate it first"):
        recovery_measures(tmp_path, tmp_path, tmp_path)


@pytest.mark.slow
def test_budget_forced_curve_of_teacher_rises_and_pruned_is_lower(teacher_path, tmp_path):
    tok = AutoTokenizer.from_pretrained(teacher_path)
    cfg = EvalConfig(tasks=["organism"], num_problems=120, n_samples=4, temperature=0.7, bootstrap=200)
    teacher = AutoModelForCausalLM.from_pretrained(teacher_path).eval()
    t = run_eval(teacher, tok, cfg, tmp_path / "teacher")
    remove_layers(teacher, [2, 3])
    p = run_eval(teacher, tok, cfg, tmp_path / "pruned")
    seq_t, seq_p = t["curves"]["sequential"]["organism"], p["curves"]["sequential"]["organism"]
    assert seq_t["accuracy"][-1] - seq_t["accuracy"][0] >= 0.5
    assert seq_t["accuracy"][-1] - seq_p["accuracy"][-1] >= 0.3
    assert t["summary"]["organism"]["scaling_slope"] > p["summary"]["organism"]["scaling_slope"]
    assert t["summary"]["organism"]["pass_at_k_max"] > p["summary"]["organism"]["pass_at_k_max"]
    same = recovery_measures(tmp_path / "teacher", tmp_path / "pruned", tmp_path / "pruned", n_boot=100)["organism"]
    assert same["sequential"]["area_recovered_share"]["value"] == pytest.approx(0.0)
    assert same["parallel"]["area_recovered_share"]["value"] is not None
