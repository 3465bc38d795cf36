"""Every command refuses bad input with one line that names the key, file, row or line, exit status 2, nothing written.

And the converse: an error that is not the user's (a bug deep inside) keeps its traceback and is never exit 2.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_models import tiny_model

from lprecover.cli import main
from lprecover.config import ConfigError

REPO = Path(__file__).resolve().parents[1]
GOOD_ROW = {"question": "What is 1 + 1?", "answer": "1 + 1 = 2\n#### 2"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, organism_tokenizer) -> Path:
    """Bad (and a few good) inputs every case reads; the test checks none of them changes."""
    d = tmp_path_factory.mktemp("inputs")
    model = tiny_model("qwen3")
    model.config.eos_token_id = model.generation_config.eos_token_id = organism_tokenizer.eos_token_id
    model.config.pad_token_id = organism_tokenizer.pad_token_id
    model.save_pretrained(d / "tiny")
    organism_tokenizer.save_pretrained(d / "tiny")
    model.save_pretrained(d / "base")  # a base model: its tokenizer has no chat template
    template, organism_tokenizer.chat_template = organism_tokenizer.chat_template, None
    organism_tokenizer.save_pretrained(d / "base")
    organism_tokenizer.chat_template = template
    # A file whose second line is broken: the message must name the file and line 2, not "line 1 column 22".
    (d / "mal.jsonl").write_text(json.dumps(GOOD_ROW) + '\n{"question": "b", "answer" "x"}\n')
    (d / "empty.jsonl").write_text("")
    (d / "wrong.jsonl").write_text('{"a": 1}\n')
    (d / "data.txt").write_text("one line\n")
    (d / "badcfg").mkdir()
    (d / "badcfg" / "config.json").write_text("not json {")
    (d / "unseen_family").mkdir()
    (d / "unseen_family" / "config.json").write_text('{"model_type": "lprecover_unseen_family"}')
    (d / "notarun").mkdir()
    (d / "notarun" / "notes.txt").write_text("not a run")
    (d / "broken_eval").mkdir()
    (d / "broken_eval" / "curves.json").write_text('{"sequential": ')
    (d / "broken_eval" / "summary.json").write_text("{}")
    (d / "fakerun" / "model").mkdir(parents=True)
    record = {"student": "../pruned", "recipe": "sft_short", "method": "sft", "trainable": "full", "steps": 1}
    (d / "fakerun" / "model" / "recovery.json").write_text(json.dumps(record | {"run_name": "fake"}))
    (d / "full").mkdir()
    (d / "full" / "keep.txt").write_text("someone else's output")
    return d


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


TRAIN = ["recipe=sft_short", "student={d}/tiny", "report_to=none", "output_dir={out}"]
EVAL = ["model.name_or_path={d}/tiny", "output_dir={out}"]
ORGANISM_EVAL = ["eval.tasks=[organism]", "eval.num_problems=2", "eval.budgets=[2]", "eval.parallel=false"]
DATA = ["model.name_or_path={d}/tiny", "output_dir={out}"]
PRUNE = ["model.name_or_path={d}/tiny", "output_dir={out}"]
SHORTGPT = ["prune.method=shortgpt", "prune.num_samples=2", "prune.seq_len=16"]

# (command, arguments, a fragment of the one-line message that names the offending key, file, row or line)
CASES = [
    # prune
    ("prune", ["model.name_or_path=/nonexistent", "output_dir={out}"], "model.name_or_path '/nonexistent' does not"),
    ("prune", ["model.name_or_path={d}/badcfg", "output_dir={out}"], "badcfg/config.json' is not a valid JSON"),
    ("prune", ["model.name_or_path={d}/unseen_family", "output_dir={out}"], "model type `lprecover_unseen_family`"),
    (
        "prune",
        [*PRUNE, *SHORTGPT, "prune.calibration=text", "prune.calibration_path=/nonexistent.txt"],
        "prune.calibration_path '/nonexistent.txt' is not a file",
    ),
    ("prune", [*PRUNE, *SHORTGPT, "prune.calibration=text"], "prune.calibration=text needs prune.calibration_path"),
    (
        "prune",
        [*PRUNE, *SHORTGPT, "prune.calibration=text", "prune.calibration_path={d}/mal.jsonl"],
        "Line 2 of prune.calibration_path '{d}/mal.jsonl' is not JSON",
    ),
    (
        "prune",
        [*PRUNE, *SHORTGPT, "prune.calibration=text", "prune.calibration_path={d}/empty.jsonl"],
        "prune.calibration_path '{d}/empty.jsonl' holds no rows",
    ),
    (
        "prune",
        [*PRUNE, *SHORTGPT, "prune.calibration=problems", "prune.calibration_path={d}/wrong.jsonl"],
        "Row 0 of prune.calibration_path '{d}/wrong.jsonl' has no text field 'question'",
    ),
    ("prune", [*PRUNE, "prune.calibration=wiki"], "Unknown prune.calibration source 'wiki'"),
    ("prune", ["model.name_or_path={d}/base", "output_dir={out}", *SHORTGPT], "prune.calibration=problems renders"),
    ("prune", [*PRUNE, "prune.n_layers=abc"], "'prune.n_layers=abc'"),
    ("prune", [*PRUNE, "prune.layers=[1,2"], "Cannot read the value of 'prune.layers'"),
    ("prune", [*PRUNE, "prune.method=selection"], "prune.method=selection needs prune.layers"),
    ("prune", [*PRUNE, "model.dtype=fp8"], "model.dtype must be one of auto, float32"),
    ("prune", ["model.name_or_path={d}/tiny"], "output_dir is required"),
    ("prune", [*PRUNE, "output_dir"], "Cannot read the argument 'output_dir'"),
    # eval
    ("eval", ["model.name_or_path=/nonexistent", "output_dir={out}"], "model.name_or_path '/nonexistent' does not"),
    ("eval", ["model.name_or_path={d}/badcfg", "output_dir={out}"], "badcfg/config.json' is not a valid JSON"),
    ("eval", [*EVAL, "eval.temperature=-1"], "eval.temperature must be at least 0, got -1"),
    ("eval", [*EVAL, "eval.budgets=[40,5,20]"], "eval.budgets must be increasing with no repeats, got [40, 5, 20]"),
    ("eval", [*EVAL, "eval.batch_size=0"], "eval.batch_size"),
    (
        "eval",
        [*EVAL, "eval.tasks=[gsm8k]", "eval.paths={{gsm8k: /nonexistent.jsonl}}"],
        "eval.paths.gsm8k: no such file '/nonexistent.jsonl'",
    ),
    (
        "eval",
        [*EVAL, "eval.tasks=[gsm8k]", "eval.paths={{gsm8k: {d}/mal.jsonl}}"],
        "Line 2 of eval.paths.gsm8k '{d}/mal.jsonl' is not JSON",
    ),
    (
        "eval",
        [*EVAL, "eval.tasks=[gsm8k]", "eval.paths={{gsm8k: {d}/empty.jsonl}}"],
        "eval.paths.gsm8k '{d}/empty.jsonl' holds no rows",
    ),
    (
        "eval",
        [*EVAL, "eval.tasks=[gsm8k]", "eval.paths={{gsm8k: {d}/wrong.jsonl}}"],
        "Row 0 of eval.paths.gsm8k '{d}/wrong.jsonl' has no field 'answer'",
    ),
    ("eval", [*EVAL, *ORGANISM_EVAL, "model.think_close=abc"], "delimiter 'abc' is 3 tokens"),
    ("eval", [*EVAL, "eval.tasks=[organism:x-y]"], "task 'organism:x-y'"),
    ("eval", [*EVAL, "eval.engine=tgi"], "eval.engine must be one of"),
    ("eval", [*EVAL, "import=[/nonexistent.jsonl]"], "import: no such file /nonexistent.jsonl"),
    (
        "eval",
        [*EVAL, "import=[{d}/wrong.jsonl]", "import_task=gsm8k"],
        "Line 1 of {d}/wrong.jsonl: it is not an lm-eval",
    ),
    # train
    ("train", [*TRAIN, "data.dataset={d}/empty.jsonl"], "data.dataset '{d}/empty.jsonl' holds no rows"),
    ("train", [*TRAIN, "data.dataset={d}/mal.jsonl"], "Line 2 of data.dataset '{d}/mal.jsonl' is not JSON"),
    ("train", [*TRAIN, "data.dataset={d}/wrong.jsonl"], "{d}/wrong.jsonl has no 'messages' column"),
    ("train", [*TRAIN, "data.dataset=/nonexistent.jsonl"], "data.dataset '/nonexistent.jsonl' is neither"),
    ("train", ["recipe=sft_short", "model.name_or_path={d}/badcfg", "output_dir={out}"], "badcfg/config.json'"),
    ("train", [*TRAIN, "student=/nonexistent"], "student '/nonexistent' is not a folder"),
    ("train", [*TRAIN, "recipe=distill", "teacher=/nonexistent"], "teacher '/nonexistent' does not exist"),
    ("train", [*TRAIN, "recipe=partial"], "trainable=partial needs a checkpoint pruned by lprecover"),
    ("train", [*TRAIN, "train.learning_rate=-1"], "train.learning_rate must be above 0, got -1"),
    ("train", [*TRAIN, "resume=/nonexistent"], "resume must be auto, never, or an existing checkpoint"),
    ("train", [*TRAIN, "method=ppo"], "method must be one of sft, distill"),
    ("train", [*TRAIN, "distill.use_vllm=true"], "distill.use_vllm is for on-policy distillation"),
    ("train", [*TRAIN, "distill.vllm.mode=server"], "distill.vllm is set but distill.use_vllm is false"),
    (
        "train",
        [*TRAIN, "recipe=distill_onpolicy", "distill.use_vllm=true", "distill.vllm.gpu_util=0.3"],
        "Unknown distill.vllm keys ['gpu_util']; TRL's vLLM options are: ",
    ),
    ("train", [*TRAIN, "recipe=distill_onpolicy", "distill.use_vllm=true"], "vLLM is not installed: pip install"),
    ("train", [*TRAIN, "recipe=distill", "distill.teacher_logits={d}/notarun"], "holds no finished store"),
    (
        "train",
        [*TRAIN, "recipe=distill_hidden", "distill.teacher_logits={d}"],
        "distill_hidden needs the teacher itself",
    ),
    ("train", [*TRAIN, "distill.teacher_logits={d}/notarun"], "method sft needs no teacher: drop the key"),
    # teacher-logits
    ("teacher-logits", ["recipe=distill", "student={d}/tiny"], "store.out is required"),
    ("teacher-logits", ["recipe=sft_short", "store.out={out}"], "recipe sft_short has method sft"),
    ("teacher-logits", ["recipe=distill", "store.out={out}", "store.dtype=int8"], "store.dtype must be one of"),
    ("teacher-logits", ["recipe=distill", "store.out={out}", "store.k=0"], "store.k must be at least 1, got 0"),
    (
        "teacher-logits",
        ["recipe=distill", "store.out={out}", "distill.teacher_logits={d}"],
        "distill.teacher_logits is what training reads",
    ),
    ("teacher-logits", ["recipe=distill", "store.out={out}", "student=/nonexistent"], "student '/nonexistent' is not"),
    ("teacher-logits", ["recipe=distill", "store.out={out}", "store.engine=sglang"], "store.engine must be one of"),
    (
        "teacher-logits",
        ["recipe=distill", "store.out={out}", "store.engine=vllm", "distill.temperature=2.0"],
        "distill.temperature=2.0 needs store.engine=transformers",
    ),
    ("teacher-logits", ["recipe=distill", "store.out={out}", "store.engine=vllm"], "store.engine=vllm needs vLLM"),
    # data
    ("data", [*DATA, "source=gsm8k", "path={d}/mal.jsonl"], "Line 2 of path '{d}/mal.jsonl' is not JSON"),
    ("data", [*DATA, "source=gsm8k", "path={d}/empty.jsonl"], "path '{d}/empty.jsonl' holds no rows"),
    ("data", [*DATA, "source=gsm8k", "path=/nonexistent.jsonl"], "source file /nonexistent.jsonl does not exist"),
    ("data", [*DATA, "source=gsm8k", "path={d}/wrong.jsonl"], "row 0 (id 0) has no question, answer"),
    ("data", [*DATA, "source=gsm8k", "path={d}/data.txt"], "path '{d}/data.txt': cannot read '.txt' files"),
    ("data", [*DATA, "source=jsonl"], "source=jsonl needs path=FILE"),
    ("data", [*DATA, "source=organism", "split=medium"], "split must be one of longcot, short; got 'medium'"),
    ("data", [*DATA, "source=organism", "model.name_or_path={d}/badcfg"], "badcfg/config.json' is not a valid JSON"),
    ("data", ["source=organism", "output_dir={d}/full"], "{d}/full"),
    # analyze
    ("analyze", ["samples={d}/mal.jsonl", "output_dir={out}"], "Line 2 of samples '{d}/mal.jsonl' is not JSON"),
    ("analyze", ["samples={d}/empty.jsonl", "output_dir={out}"], "samples '{d}/empty.jsonl' holds no rows"),
    ("analyze", ["samples={d}/wrong.jsonl", "output_dir={out}"], "Row 0 of samples '{d}/wrong.jsonl' is neither"),
    ("analyze", ["samples=/nonexistent.jsonl", "output_dir={out}"], "samples='/nonexistent.jsonl' is not a file"),
    ("analyze", ["samples={d}/mal.jsonl", "max_traces=x", "output_dir={out}"], "'max_traces=x'"),
    # compare
    ("compare", ["runs=[{d}/notarun]", "output_dir={out}"], "{d}/notarun is neither a recovery run"),
    ("compare", ["runs=[{d}/broken_eval]", "output_dir={out}"], "'{d}/broken_eval/curves.json' is not JSON"),
    ("compare", ["runs={d}/nothing*", "output_dir={out}"], "runs pattern '{d}/nothing*' matches nothing"),
    ("compare", ["output_dir={out}"], "give runs=[DIR,...]"),
    ("compare", ["runs=[{d}/notarun]", "bootstrap=abc", "output_dir={out}"], "'bootstrap=abc'"),
    # export
    ("export", ["run={d}/tiny", "output_dir={out}"], "{d}/tiny holds no recovered weights"),
    ("export", ["run={d}/fakerun", "comparison={d}/notarun", "output_dir={out}"], "comparison '{d}/notarun' holds no"),
    ("export", ["run={d}/fakerun", "output_dir={d}/full"], "{d}/full"),
    ("export", ["run={d}/fakerun", "push_to_hub=true", "output_dir={out}"], "push_to_hub=true needs hub_repo"),
    # study
    ("study", ["recipes=[sft_verylong]", "output_dir={out}"], "every value of recipes must be one of"),
    ("study", ["overrides=[train.lernrate=1]", "output_dir={out}"], "Did you mean 'train.learning_rate'"),
    ("study", ["recover_from=3", "output_dir={out}"], "recover_from=3 must be one of prune_layers"),
    ("study", ["prune_layers=[0,1]", "recover_from=1", "output_dir={out}"], "prune_layers must be at least 1"),
    ("study", ["model.name_or_path=/nonexistent", "output_dir={out}"], "model.name_or_path '/nonexistent' does not"),
    # diagnose
    ("diagnose", ["model.name_or_path={d}/tiny", "layers=[1,9]", "output_dir={out}"], "layers [9] out of range"),
    ("diagnose", ["model.name_or_path={d}/tiny", "criteria=[laco]", "output_dir={out}"], "criteria must be one of"),
    ("diagnose", ["model.name_or_path={d}/tiny", "swap_layers=[0,7]", "output_dir={out}"], "swap_layers [7] out of"),
    ("diagnose", ["model.name_or_path={d}/tiny", "task=gsm9k", "output_dir={out}"], "task: Unknown task 'gsm9k'"),
    # organism
    ("recipes", ["copy"], "lprecover recipes copy NAME [DEST]"),
    ("recipes", ["copy", "lora_longcott"], "Unknown recipe 'lora_longcott'. Recipes: distill"),
    ("recipes", ["copy", "{d}/nothing.yaml"], "nothing.yaml' does not exist"),
    ("organism", ["build", "organism.hiden_size=3"], "Did you mean 'organism.hidden_size'"),
    ("organism", ["build", "organism.num_layers=1"], "num_layers must be at least 2"),
    ("organism", ["build", "organism.hidden_size=30", "organism.num_heads=4"], "hidden_size (30) must be divisible"),
    ("organism", ["build", "organism.fact_layer_drop=1.5"], "organism.fact_layer_drop must lie in [0, 1), got 1.5"),
    ("organism", ["build", "organism.fact_share=1"], "organism.fact_share must lie in [0, 1)"),
    ("organism", ["build", "organism.fact_share=0"], "none of the 100 facts would be trained; set organism.facts=0"),
    ("organism", ["build", "organism.train.packing=true"], "Set organism.train.packing=false or organism."),
    ("organism", ["frobnicate"], "Unknown action 'frobnicate'"),
]


@pytest.mark.parametrize("command, args, fragment", CASES, ids=[f"{c}-{i}" for i, (c, _, _) in enumerate(CASES)])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    command, args, fragment, inputs, tmp_path, capsys, monkeypatch
):
    out, cache = tmp_path / "out", tmp_path / "cache"
    monkeypatch.setenv("LPRECOVER_CACHE", str(cache))  # the organism teacher and built data would land here
    before = _snapshot(inputs)
    code = main([command, *(a.format(d=inputs, out=out) for a in args)])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith(f"lprecover {command}: ")]
    assert code == 2, err
    assert "Traceback" not in err and len(lines) == 1, err
    assert fragment.format(d=inputs) in lines[0]
    assert not out.exists() and not cache.exists()
    assert _snapshot(inputs) == before


def test_the_table_covers_every_command():
    from lprecover.cli import COMMANDS

    assert {c for c, _, _ in CASES} == set(COMMANDS) and len(CASES) >= 45


def _boom(*args, **kwargs):
    raise ValueError("an internal error deep inside")


@pytest.mark.parametrize(
    "command, target, args",
    [
        ("eval", "lprecover.evaluation.engines.generate_at_budgets", [*EVAL, *ORGANISM_EVAL]),
        ("prune", "lprecover.pruning.cli.prune_model", [*PRUNE, "prune.method=tail", "prune.n_layers=1"]),
        ("data", "data_prep.build.near_duplicates", [*DATA, "source=organism", "options.n=20"]),
        ("train", "lprecover.train.build_trainer", [*TRAIN, "data.dataset={t}/train.jsonl"]),
    ],
)
def test_internal_value_error_is_not_a_config_error(command, target, args, inputs, tmp_path, capsys, monkeypatch):
    """A ValueError from deep inside generation, pruning, a build or training is a bug: it propagates unchanged."""
    monkeypatch.setenv("LPRECOVER_CACHE", str(tmp_path / "cache"))
    turns = [{"role": "user", "content": "1a+1"}, {"role": "assistant", "content": "2"}]
    (tmp_path / "train.jsonl").write_text(json.dumps({"messages": turns}) + "\n")
    monkeypatch.setattr(target, _boom)
    argv = [a.format(d=inputs, t=tmp_path, out=tmp_path / "out") for a in args]
    with pytest.raises(ValueError, match="an internal error deep inside") as raised:
        main([command, *argv])
    assert not isinstance(raised.value, ConfigError)
    assert f"lprecover {command}: " not in capsys.readouterr().err


def test_internal_error_exits_1_with_its_traceback(inputs, tmp_path):
    """The same through the real entry point: Python's traceback and exit status 1, never a one-line exit 2."""
    argv = [a.format(d=inputs, out=tmp_path / "out") for a in ["eval", *EVAL, *ORGANISM_EVAL]]
    script = (
        "import sys\n"
        "import lprecover.evaluation.engines as engines\n"
        "from lprecover.cli import main\n"
        "def boom(*a, **k):\n"
        "    raise ValueError('an internal error deep inside')\n"
        "engines.generate_at_budgets = boom\n"
        f"sys.exit(main({argv!r}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "ValueError: an internal error deep inside" in done.stderr
