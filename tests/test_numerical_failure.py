"""A loss or gradient that becomes NaN or infinite fails the run: one sentence, exit 2, nothing saved or evaluated
from it, the run folder marked, and a relaunch of the same settings refused."""

import json
import re

from lprecover.cli import main as cli

# A learning rate of 1e30 blows the weights up in the first update: step 1 logs finite numbers, step 2 does not.
DIVERGING = [
    "recipe=sft_short",
    "train.learning_rate=1e30",
    "train.per_device_batch_size=4",
    "train.logging_steps=1",
    "data.options.n=200",
    "report_to=none",
]


def _failure_line(err: str, command: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith(f"lprecover {command}: ")]
    assert len(lines) == 1, err[-3000:]
    return lines[0]


def test_diverged_training_saves_and_evaluates_nothing(teacher_path, tmp_path, capsys):
    out = tmp_path / "run"
    args = [*DIVERGING, "train.max_steps=5", "train.save_steps=1", "evaluate_at=[0.4]", "evaluate=true"]
    args += ["eval=sequential", "eval.num_problems=4", f"output_dir={out}"]
    assert cli(["train", *args]) == 2
    line = _failure_line(capsys.readouterr().err, "train")
    step = int(re.search(r"training diverged at step (\d+): the (loss|grad_norm) is (nan|inf)", line).group(1))
    assert step == 2, line
    assert "train.learning_rate=1e+30" in line and f"{out / 'failed.json'} records the failure" in line

    failed = json.loads((out / "failed.json").read_text())
    assert failed["step"] == 2 and failed["message"] in line
    assert not (out / "model").exists(), "no final model"
    assert not (out / "model-step-2").exists(), "no model along training from the diverged step (evaluate_at)"
    assert not (out / "eval").exists() and not list(out.glob("eval-step-*")), "nothing evaluated"
    assert not (out / "metrics.json").exists()
    # The checkpoint of step 1, whose numbers were finite, stays; the diverged step left none.
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1"]
    assert failed["last_checkpoint"] == "checkpoint-1"

    # The same command again would diverge again from checkpoint-1: refused before anything is touched.
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert cli(["train", *args]) == 2
    line = _failure_line(capsys.readouterr().err, "train")
    assert "its training diverged at step 2" in line and "overwrite=true" in line
    assert f"resume from checkpoint-1), delete {out / 'failed.json'}" in line
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before

    # Nothing downstream takes it for a finished run.
    assert cli(["export", f"run={out}", f"output_dir={tmp_path / 'export'}"]) == 2
    assert "holds no recovered weights: its training diverged at step 2" in capsys.readouterr().err
    assert cli(["compare", f"runs=[{out}]", f"output_dir={tmp_path / 'comparison'}", "report_to=none"]) == 2
    assert "holds no model to compare: its training diverged at step 2" in capsys.readouterr().err


def test_a_diverged_recipe_stops_the_study(teacher_path, tmp_path, capsys):
    out = tmp_path / "study"
    overrides = "overrides=[train.learning_rate=1e30,train.logging_steps=1]"
    args = ["recipes=[sft_short,lora_longcot]", "prune_layers=[2]", "recover_from=2", "steps=4", "batch_size=4"]
    assert cli(["study", *args, "data.options.n=200", overrides, "report_to=none", f"output_dir={out}"]) == 2
    line = _failure_line(capsys.readouterr().err, "study")
    run = out / "recover-sft_short"
    assert line.startswith("lprecover study: training diverged at step 2: the ")
    assert f"No model was saved from it; {run / 'failed.json'} records the failure." in line
    assert (run / "failed.json").exists() and not (run / "model").exists()
    assert not (out / "recover-lora_longcot").exists(), "the study stopped at the diverged recipe"
    assert not (out / "eval-teacher").exists() and not (out / "comparison").exists()
