"""Rerunning ``lprecover study`` (one rule for reuse): the same settings reuse every stage without rewriting a byte;
other settings are refused, naming the keys; ``overwrite=true`` redoes exactly the stages those settings change."""

import json

import yaml

from lprecover.cli import main as cli
from lprecover.compare.run import SUMMARY_FORMAT

SMALL = [
    "recipes=[sft_short]",
    "prune_layers=[2]",
    "recover_from=2",
    "steps=2",
    "batch_size=4",
    "eval.num_problems=4",
    "eval.n_samples=2",
    "eval.budgets=[5,20]",
    "eval.bootstrap=20",
    "report_to=none",
]


def _files(folder):
    """Every file under ``folder`` with its modification time and bytes."""
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.rglob("*") if p.is_file()
    }


def _stage(files, stage):
    return {k: v for k, v in files.items() if k.startswith(stage + "/")}


def test_study_rerun_reuses_refuses_or_redoes_by_its_settings(teacher_path, tmp_path, capsys):
    out = tmp_path / "study"
    base = [*SMALL, f"output_dir={out}"]
    assert cli(["study", *base]) == 0
    first = _files(out)
    assert cli(["study", *base]) == 0
    assert _files(out) == first, "an unchanged rerun rewrites nothing"
    capsys.readouterr()

    # A comparison written by an older lprecover (another format, the same inputs) is redone, and nothing else.
    settings = yaml.safe_load((out / "comparison" / "config.yaml").read_text())
    (out / "comparison" / "config.yaml").write_text(yaml.safe_dump(settings | {"format": 1}, sort_keys=False))
    assert cli(["study", *base]) == 0
    redone = _files(out)
    assert {k for k in redone if redone[k] != first.get(k)} >= {"comparison/summary.json", "comparison/config.yaml"}
    assert all(redone[k] == first[k] for k in first if not k.startswith("comparison/")), "only the comparison"
    assert yaml.safe_load((out / "comparison" / "config.yaml").read_text())["format"] == SUMMARY_FORMAT
    first = redone

    for change, named in (
        (["steps=3"], ["steps: 2 -> 3"]),
        (
            ["prune.method=selection", "prune.layers=[1,2]"],
            ["prune.method: 'shortgpt' -> 'selection'", "prune.layers"],
        ),
    ):
        assert cli(["study", *base, *change]) == 2
        err = capsys.readouterr().err
        assert all(key in err for key in named) and "overwrite=true" in err, err
        assert _files(out) == first, "a refused rerun writes nothing"

    # Another budget: only the recovery (and the comparison) start over.
    assert cli(["study", *base, "steps=3", "overwrite=true"]) == 0
    second = _files(out)
    for stage in ("pruned-2", "eval-teacher", "eval-pruned-2"):
        assert _stage(second, stage) == _stage(first, stage), f"{stage} does not depend on steps"
    record = json.loads((out / "recover-sft_short" / "model" / "recovery.json").read_text())
    assert record["steps"] == 3
    assert _stage(second, "comparison") != _stage(first, "comparison")
    assert yaml.safe_load((out / "config.yaml").read_text())["steps"] == 3

    # Another pruning: the pruned model and everything made from it start over; the teacher's evaluation is kept.
    assert cli(["study", *base, "steps=3", "prune.method=selection", "prune.layers=[1,2]", "overwrite=true"]) == 0
    third = _files(out)
    assert _stage(third, "eval-teacher") == _stage(first, "eval-teacher")
    pruned = json.loads((out / "pruned-2" / "prune_scores.json").read_text())
    assert pruned["removed_layers"] == [1, 2]
    for stage in ("eval-pruned-2", "recover-sft_short"):
        assert _stage(third, stage)[f"{stage}/config.yaml"] != _stage(second, stage)[f"{stage}/config.yaml"]
    samples = (out / "eval-pruned-2" / "samples.jsonl").read_text().splitlines()
    assert len(samples) == len(_stage(second, "eval-pruned-2")["eval-pruned-2/samples.jsonl"][1].splitlines())
    saved = yaml.safe_load((out / "recover-sft_short" / "config.yaml").read_text())
    assert saved["prune"]["layers"] == [1, 2], "the recovery records the pruning its student came from"
