"""Tasks are data: a YAML file written by hand evaluates a user's own jsonl, with its own field names."""

import json

import pandas as pd
import pytest

from lprecover.cli import main
from lprecover.config import ConfigError
from lprecover.evaluation.task_specs import add_task_files, known_names, read_task_file, task_kind
from lprecover.evaluation.tasks import load_task
from lprecover.organism.task import make_problems


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_hand_written_task_file_evaluates_a_jsonl_with_unusual_fields(tmp_path, teacher_path, capsys):
    """The same problems under other field names score exactly as the built-in task scores them."""
    chains = make_problems(6, 5, 8, seed=12345, split="eval")
    _write(tmp_path / "chains.jsonl", [{"Aufgabe": p.problem, "Loesung": p.answer, "uid": p.id} for p in chains])
    (tmp_path / "my_chains.yaml").write_text(
        "name: my_chains\nkind: exact\npath: chains.jsonl\nquestion_field: Aufgabe\nanswer_field: Loesung\n"
        "id_field: uid\ninstruction: ''\nbudgets: [10, 40]\nanswer_max_tokens: 4\n"
    )
    common = ["model=organism", "eval.parallel=false", "eval.budgets=[10,40]", "eval.num_problems=6"]
    mine, builtin = tmp_path / "mine", tmp_path / "builtin"
    assert (
        main(
            [
                "eval",
                *common,
                f"eval.task_files=[{tmp_path / 'my_chains.yaml'}]",
                "eval.tasks=[my_chains]",
                f"output_dir={mine}",
            ]
        )
        == 0
    )
    assert main(["eval", *common, "eval.tasks=[organism_long]", f"output_dir={builtin}"]) == 0

    def outputs(folder, task):  # by prompt and budget: the same prompt text is the same prompt, whatever its id
        rows = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
        return {(r["prompt_hash"], r["budget"]): (r["output"], r["correct"]) for r in rows if r["task"] == task}

    ours = outputs(mine, "my_chains")
    assert len(ours) == 12 and ours == outputs(builtin, "organism_long")
    summary = json.loads((mine / "summary.json").read_text())
    assert set(summary) == {"my_chains"}
    built = json.loads((builtin / "summary.json").read_text())["organism_long"]
    assert summary["my_chains"] == built  # area, slope, accuracy at each end, failure rates: all the same


def test_math_and_choice_files_read_golds_and_prompts_by_hand(tmp_path):
    _write(tmp_path / "m.jsonl", [{"q": "2+2?", "sol": "so 4\n#### 1,004"}, {"q": "3*3?", "sol": "#### 9"}])
    (tmp_path / "m.yaml").write_text(
        "name: m_task\nkind: math\npath: m.jsonl\nquestion_field: q\nanswer_field: sol\nanswer_after: '####'\n"
        "instruction: Box it.\n"
    )
    pd.DataFrame({"stem": ["Sky?"], "opts": [["red", "blue", "green"]], "key": [1]}).to_parquet(tmp_path / "c.parquet")
    (tmp_path / "c.yaml").write_text(
        "name: c_task\nkind: choice\npath: c.parquet\nquestion_field: stem\nanswer_field: key\nchoices_field: opts\n"
        "instruction: Pick.\n"
    )
    add_task_files([str(tmp_path / "m.yaml"), str(tmp_path / "c.yaml")])
    assert {"m_task", "c_task"} <= set(known_names()) and task_kind("c_task") == "choice"
    m = load_task("m_task")
    assert [(p.id, p.prompt, p.gold) for p in m.problems] == [
        ("m_task-0", "2+2?\n\nBox it.", "1004"),
        ("m_task-1", "3*3?\n\nBox it.", "9"),
    ]
    assert m.default_budgets == [512, 1024, 2048, 4096, 8192] and m.answer_max_tokens == 2048
    (c,) = load_task("c_task").problems
    assert c.prompt == "Sky?\n\n(A) red\n(B) blue\n(C) green\n\nPick." and c.gold == "B"


@pytest.mark.parametrize(
    "text, field, words",
    [
        ("name: t\nkind: math\npath: d.jsonl\nquestion: q\n", "question", "unknown field"),
        ("name: t\npath: d.jsonl\n", "kind", "missing"),
        ("name: t\nkind: essay\npath: d.jsonl\n", "kind", "'essay' is not one of math, choice, exact"),
        ("name: t\nkind: math\npath: nowhere.jsonl\n", "path", "no such file"),
        ("name: t\nkind: math\npath: d.jsonl\nhub: {id: a/b}\n", "path", "exactly one of path, hub or source"),
        ("name: t\nkind: math\n", "path", "got none"),
        ("name: t\nkind: choice\npath: d.jsonl\n", "choices_field", "names its options"),
        ("name: t\nkind: math\npath: d.jsonl\nbudgets: [40, 10]\n", "budgets", "increasing"),
        ("name: t\nkind: math\npath: d.jsonl\nanswer_max_tokens: '5'\n", "answer_max_tokens", "must be a int"),
        ("name: t\nkind: exact\nsource: nobody\n", "source", "no registered source 'nobody'"),
    ],
)
def test_a_bad_task_file_is_refused_before_any_model_loads(tmp_path, capsys, text, field, words):
    _write(tmp_path / "d.jsonl", [{"question": "q", "answer": "a"}])
    (tmp_path / "t.yaml").write_text(text)
    with pytest.raises(ConfigError, match=f"'{tmp_path / 't.yaml'}', field '{field}': .*{words}"):
        read_task_file(tmp_path / "t.yaml")
    args = ["eval", "model.name_or_path=/no/such/model", f"eval.task_files=[{tmp_path / 't.yaml'}]"]
    assert main([*args, f"output_dir={tmp_path / 'out'}"]) == 2
    err = capsys.readouterr().err
    assert f"field '{field}'" in err and "/no/such/model" not in err and not (tmp_path / "out").exists()


def test_a_row_without_the_named_field_is_named(tmp_path):
    _write(tmp_path / "d.jsonl", [{"q": "a?", "a": "1"}, {"q": "b?"}])
    (tmp_path / "t.yaml").write_text("name: rowy\nkind: math\npath: d.jsonl\nquestion_field: q\nanswer_field: a\n")
    add_task_files([str(tmp_path / "t.yaml")])
    with pytest.raises(ConfigError, match="Row 1 of .* has no field 'a'"):
        load_task("rowy")
