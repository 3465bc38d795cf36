"""What the eval, data, analyze and export fields declare they accept is refused, through the real CLI, before any
work: exit status 2, one line on stderr that names the key, no traceback, and no output folder.

One test per kind of refusal: a number outside its declared range, a float that is not finite, an empty list, a
repeated entry, a value outside its choices, a relation between two fields, an organism task the organism cannot
draw, a shard size transformers cannot read, and an analysed row with no generated text.
"""

import json

import pytest

from lprecover.cli import main


def _refused(command: str, args: list[str], tmp_path, capsys, monkeypatch) -> str:
    """Run ``lprecover command args output_dir=OUT``; check the refusal and return its one line."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    monkeypatch.setenv("LPRECOVER_CACHE", str(cache))  # the organism teacher would be built here
    code = main([command, *args, f"output_dir={out}"])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith(f"lprecover {command}: ")
    assert not out.exists() and not cache.exists()
    return lines[0]


@pytest.mark.parametrize(
    "command, args, message",
    [
        ("data", ["ngram=-3"], "ngram must be at least 1, got -3."),
        ("data", ["ngram=0"], "ngram must be at least 1, got 0."),
        ("data", ["near_dup_threshold=2"], "near_dup_threshold must lie in (0, 1], got 2.0."),
        ("data", ["max_length=0"], "max_length must be at least 1, got 0."),
        ("data", ["limit=-1"], "limit must be at least 1, got -1."),
        ("data", ["teacher.top_p=0"], "teacher.top_p must lie in (0, 1], got 0.0."),
        ("eval", ["eval.budgets=[0,4]"], "every value of eval.budgets must be at least 1, got 0."),
        ("eval", ["import_budget=0"], "import_budget must be at least 1, got 0."),
        ("analyze", ["max_traces=0"], "max_traces must be at least 1, got 0."),
        ("export", ["run=RUN", "verify_prompts=0"], "verify_prompts must be at least 1, got 0."),
    ],
)
def test_a_number_outside_its_declared_range(command, args, message, tmp_path, capsys, monkeypatch):
    if command == "analyze":  # a good samples file: only max_traces is wrong (it gave self_bleu: null)
        (tmp_path / "samples.jsonl").write_text(json.dumps({"task": "t", "output": "a. b.", "correct": True}) + "\n")
        args = [f"samples={tmp_path / 'samples.jsonl'}", *args]
    line = _refused(command, [a.replace("RUN", str(tmp_path)) for a in args], tmp_path, capsys, monkeypatch)
    assert line.endswith(message)


def test_a_float_that_is_not_finite(tmp_path, capsys, monkeypatch):
    line = _refused("eval", ["eval.seq_temperature=nan", "eval.seq_samples=2"], tmp_path, capsys, monkeypatch)
    assert line.endswith("eval.seq_temperature must be a finite number, got nan.")


def test_an_empty_list_is_not_the_default(tmp_path, capsys, monkeypatch):
    line = _refused("eval", ["eval.tasks=[]"], tmp_path, capsys, monkeypatch)
    assert line.endswith("eval.tasks must not be empty; leave it unset for the default.")


def test_an_entry_named_twice(tmp_path, capsys, monkeypatch):
    line = _refused("data", ["decontaminate=[gsm8k,gsm8k]"], tmp_path, capsys, monkeypatch)
    assert line.endswith("decontaminate names 'gsm8k' more than once; list each once.")


@pytest.mark.parametrize(
    "command, arg, key",
    [
        ("data", "split=medium", "split"),
        ("eval", "eval.engine=tgi", "eval.engine"),
        ("eval", "report_to=x", "report_to"),
    ],
)
def test_a_value_outside_its_choices(command, arg, key, tmp_path, capsys, monkeypatch):
    line = _refused(command, [arg], tmp_path, capsys, monkeypatch)
    assert f": {key} must be one of " in line


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["source=wikipedia"],
            "source must be one of gsm8k, math, numina, s1k, openr1, openthoughts, jsonl, teacher, "
            "organism; got 'wikipedia'.",
        ),
        (["options.max_chan=4"], "Unknown key 'options.max_chan' in options. Did you mean 'options.max_chain'?"),
        (["options.n=0"], "options.n must be at least 1, got 0."),
        (
            ["source=gsm8k", "options.n=10"],
            "options sets n, but the data source 'gsm8k' takes no options: drop them, "
            "or pick a data source that declares them.",
        ),
        (
            ["source=teacher", "teacher.problems=organism", "options.seed=-1"],
            "options.seed must be at least 0, got -1.",
        ),
        (
            ["source=teacher", "teacher.problems=wiki"],
            "teacher.problems must be one of gsm8k, math, numina, s1k, openr1, openthoughts, organism; got 'wiki'.",
        ),
    ],
)
def test_a_data_source_and_the_options_it_declares(args, message, tmp_path, capsys, monkeypatch):
    """A plugin's data source declares its options (the organism's: ChainData); they are checked like any key."""
    assert _refused("data", args, tmp_path, capsys, monkeypatch).endswith(message)


def test_two_fields_out_of_order(tmp_path, capsys, monkeypatch):
    line = _refused("data", ["options.min_chain=5", "options.max_chain=3"], tmp_path, capsys, monkeypatch)
    assert "options.min_chain (5) must be at most options.max_chain (3)" in line


@pytest.mark.parametrize(
    "task, why",
    [
        ("organism:8-5", "its LO (8) is above its HI (5)"),
        ("organism:1-99", "the organism's chains have 1 to 8 steps, not 1 to 99"),
    ],
)
def test_an_organism_task_the_organism_cannot_draw(task, why, tmp_path, capsys, monkeypatch):
    line = _refused("eval", [f"eval.tasks=[{task}]"], tmp_path, capsys, monkeypatch)
    assert f"lprecover eval: eval.tasks: task '{task}' cannot be drawn: {why};" in line
    assert "1 <= LO <= HI <= 8" in line


def test_a_shard_size_transformers_cannot_read(tmp_path, capsys, monkeypatch):
    line = _refused("export", [f"run={tmp_path}", "max_shard_size=abc"], tmp_path, capsys, monkeypatch)
    assert "max_shard_size must be a whole number of KB, MB, GB, KiB, MiB or GiB, e.g. 5GB; got 'abc'." in line


def test_an_analysed_row_without_generated_text(tmp_path, capsys, monkeypatch):
    samples = tmp_path / "samples.jsonl"
    rows = [{"task": "t", "output": "a. b.", "correct": True}, {"task": "t", "output": None, "correct": False}]
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    line = _refused("analyze", [f"samples={samples}"], tmp_path, capsys, monkeypatch)
    assert f"Row 1 of samples '{samples}' has output null, not the generated text" in line
