"""Verdicts on anyone's evaluations: lm-eval logs of a teacher, a pruned model and recovered models, their budgets
set by ``max_gen_toks`` (the main harness, no budget forcing), imported with ``lprecover eval import=`` and compared
with the roles named outright. The curves have the shapes of the paper's one-layer prunes (arXiv 2510.22228,
figs/seq_scaling.png): a prune that loses a little and rises faster than its teacher, a recovery that ends above
the teacher, and a prune that ends above its teacher (GPQA-Diamond's LaCo)."""

import json

import pytest

from lprecover.cli import main

BUDGETS = [512, 1024, 2048, 4096, 8192]
PROBLEMS = 50


def lm_eval_file(folder, budget: int, accuracy: float) -> str:
    """One main-harness ``--log_samples`` file: problem i answered right when i < accuracy * PROBLEMS, two filter
    lines per document as the harness writes them."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(PROBLEMS):
        gold = str(100 + i)
        said = gold if i < round(accuracy * PROBLEMS) else str(200 + i)
        settings = {"until": ["</s>"], "do_sample": False, "temperature": 0.0, "max_gen_toks": budget}
        for filt in ("strict-match", "flexible-extract"):
            record = {
                "doc_id": i,
                "doc": {"problem": f"Problem {i}", "answer": gold},
                "target": gold,
                "arguments": {"gen_args_0": {"arg_0": f"Problem {i}", "arg_1": settings}},
                "resps": [[f"Some working. So the result is \\boxed{{{said}}}."]],
                "filtered_resps": [said],
                "filter": filt,
                "metrics": ["exact_match"],
                "exact_match": float(said == gold),
            }
            lines.append(json.dumps(record))
    path = folder / f"samples_minerva_math500_{budget}.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def imported(tmp_path, name: str, curve: list[float]) -> str:
    files = [lm_eval_file(tmp_path / "logs" / name, b, a) for b, a in zip(BUDGETS, curve)]
    out = tmp_path / name
    assert main(["eval", f"import=[{','.join(files)}]", f"output_dir={out}", "eval.bootstrap=300"]) == 0
    return str(out)


TEACHER = [0.80, 0.84, 0.88, 0.92, 0.96]  # slope 0.04 per doubling


@pytest.fixture(scope="module")
def evaluations(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("imported")
    return {
        "teacher": imported(tmp, "teacher", TEACHER),
        # One layer removed: 0.12 of area lost, and a curve twice as steep as the teacher's.
        "pruned": imported(tmp, "pruned", [0.60, 0.68, 0.76, 0.84, 0.92]),
        "sft_longcot": imported(tmp, "sft_longcot", [0.82, 0.88, 0.92, 0.96, 1.00]),  # ends above the teacher
        "sft_short": imported(tmp, "sft_short", [0.62, 0.68, 0.76, 0.84, 0.92]),  # hardly moved
        # GPQA-like: a pruned model above its teacher, and one that lost 0.02 at one budget only.
        "flat_teacher": imported(tmp, "flat_teacher", [0.50, 0.52, 0.54, 0.56, 0.56]),
        "laco": imported(tmp, "laco", [0.54, 0.56, 0.58, 0.60, 0.62]),
        "laco_sft": imported(tmp, "laco_sft", [0.56, 0.58, 0.60, 0.62, 0.64]),
    }


def test_imported_budgets_become_one_curve(evaluations):
    curve = json.loads(open(f"{evaluations['pruned']}/curves.json").read())["sequential"]["math500"]
    assert curve["budget"] == BUDGETS
    assert curve["accuracy"] == pytest.approx([0.60, 0.68, 0.76, 0.84, 0.92])


def _compare(evaluations, tmp_path, teacher, pruned, runs) -> dict:
    out = tmp_path / "comparison"
    argv = [f"teacher={evaluations[teacher]}", f"pruned={evaluations[pruned]}"]
    argv += [f"runs=[{','.join(evaluations[r] for r in runs)}]", f"output_dir={out}", "bootstrap=400"]
    assert main(["compare", *argv]) == 0
    return json.loads((out / "summary.json").read_text())


def _row(summary, run):
    return next(r for r in summary["runs"] if r["run"] == run)["tasks"]["math500"]


def test_a_prune_that_loses_little_and_recoveries_either_side_of_the_teacher(evaluations, tmp_path):
    summary = _compare(evaluations, tmp_path, "teacher", "pruned", ["sft_longcot", "sft_short"])
    above, flat = _row(summary, "sft_longcot"), _row(summary, "sft_short")
    # Ends above the teacher: all of the loss won back (the share is bounded at 1), the area above the teacher's.
    assert above["verdict"] == "returned"
    assert above["area_recovered_share"]["value"] == 1.0 and above["area_ratio_to_teacher"]["value"] > 1.0
    # Hardly moved from the pruned curve: a small share of the loss, though its slope is steeper than the teacher's.
    assert flat["verdict"] == "not_returned"
    assert flat["area_recovered_share"]["value"] < 0.3 and flat["slope_ratio_to_teacher"]["value"] > 1.0
    sentences = {s.split(" on ")[0]: s for s in summary["verdicts"]}
    assert "(above the teacher)" in sentences["sft_longcot"] and "scaling returned" in sentences["sft_longcot"]
    assert "won back 100% [100, 100] of the" in sentences["sft_longcot"]
    assert summary["ranking"]["math500"][0]["run"] == "sft_longcot"


def test_a_prune_above_its_teacher_has_nothing_to_recover(evaluations, tmp_path):
    summary = _compare(evaluations, tmp_path, "flat_teacher", "laco", ["laco_sft"])
    row = _row(summary, "laco_sft")
    assert row["verdict"] == "nothing_to_recover"
    assert row["area_recovered_share"]["value"] is None and row["area_lost"]["value"] < 0
    (sentence,) = summary["verdicts"]
    assert "pruning lost nothing measurable" in sentence and "(above the teacher)" in sentence


def test_roles_go_together(evaluations, tmp_path, capsys):
    assert main(["compare", f"teacher={evaluations['teacher']}", f"output_dir={tmp_path / 'x'}", "runs=[a]"]) == 2
    assert "teacher= and pruned= go together" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
