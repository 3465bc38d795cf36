import json
import subprocess
import sys

import pytest
import torch
import yaml
from tiny_models import tiny_model
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PretrainedConfig, PreTrainedModel

from lprecover.cli import main
from lprecover.surgery import PROVENANCE_KEY


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, organism_tokenizer):
    path = tmp_path_factory.mktemp("tiny_llama")
    tiny_model("llama").save_pretrained(path)
    organism_tokenizer.save_pretrained(path)
    return path


def _run(args, capsys):
    code = main(["prune", *args])
    return code, capsys.readouterr().err


def test_selection_invocation_writes_a_whole_model(tiny_dir, tmp_path):
    out = tmp_path / "pruned"
    cmd = [sys.executable, "-m", "lprecover.cli", "prune", f"model.name_or_path={tiny_dir}"]
    cmd += ["prune.method=selection", "prune.layers=[3,4]", f"output_dir={out}"]
    subprocess.run(cmd, check=True, capture_output=True)
    config = AutoConfig.from_pretrained(out)
    assert config.num_hidden_layers == 4
    assert getattr(config, PROVENANCE_KEY)["removed_layers"] == [3, 4]
    scores = json.loads((out / "prune_scores.json").read_text())
    assert scores["removed_layers"] == [3, 4] and len(scores["scores"]) == 6
    assert (out / "prune_scores.png").stat().st_size > 1000
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["prune"]["method"] == "selection" and resolved["prune"]["layers"] == [3, 4]
    assert (out / "tokenizer.json").exists() and (out / "generation_config.json").exists()
    model = AutoModelForCausalLM.from_pretrained(out)
    ids = torch.tensor([[5, 6, 7, 8]])
    assert torch.equal(
        model.generate(ids, max_new_tokens=8, do_sample=False),
        model.generate(ids, max_new_tokens=8, do_sample=False, use_cache=False),
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["prune.n_layers=6"], "would remove every layer"),
        (["prune.method=selection", "prune.layers=[2,2]"], "more than once"),
        (["prune.method=selection", "prune.layers=[1,9]"], "out of range"),
        (["prune.method=shortgpt2"], "prune.method must be one of shortgpt"),
        (["prune.n_layer=2"], "Did you mean 'prune.n_layers'"),
    ],
)
def test_bad_input_fails_before_writing(args, message, tiny_dir, tmp_path, capsys):
    out = tmp_path / "out"
    code, err = _run([f"model.name_or_path={tiny_dir}", f"output_dir={out}", "prune.method=tail", *args], capsys)
    assert code == 2 and message in err
    assert not out.exists()


def test_existing_different_output_is_refused_unless_overwrite(tiny_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.safetensors").write_text("another model")
    base = [f"model.name_or_path={tiny_dir}", f"output_dir={out}", "prune.method=tail", "prune.n_layers=1"]
    code, err = _run(base, capsys)
    assert code == 2 and "overwrite=true" in err
    assert (out / "model.safetensors").read_text() == "another model"
    assert _run([*base, "overwrite=true"], capsys)[0] == 0
    assert AutoConfig.from_pretrained(out).num_hidden_layers == 5
    assert _run([*base, "overwrite=true"], capsys)[0] == 0  # same settings again: recognised, nothing redone


class _FlatConfig(PretrainedConfig):
    model_type = "lprecover_flat_test"


class _FlatModel(PreTrainedModel):
    config_class = _FlatConfig

    def __init__(self, config):
        super().__init__(config)
        self.proj = torch.nn.Linear(4, 4)


def test_model_without_block_list_is_refused(tmp_path, capsys):
    AutoConfig.register("lprecover_flat_test", _FlatConfig)
    AutoModelForCausalLM.register(_FlatConfig, _FlatModel)
    _FlatModel(_FlatConfig()).save_pretrained(tmp_path / "flat")
    code, err = _run([f"model.name_or_path={tmp_path / 'flat'}", f"output_dir={tmp_path / 'out'}"], capsys)
    assert code == 2 and "_FlatModel has no decoder block list" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_organism_shortgpt_invocation_calibrates_on_its_own_traces(teacher_path, tmp_path, capsys):
    from lprecover.organism.check import sequential_curve

    out = tmp_path / "organism-sg2"
    code, _ = _run(["model=organism", "prune.method=shortgpt", "prune.n_layers=2", f"output_dir={out}"], capsys)
    assert code == 0
    scores = json.loads((out / "prune_scores.json").read_text())
    assert scores["provenance"]["calibration"]["source"] == "traces"
    assert scores["provenance"]["source_model"] == "organism"
    assert len(scores["scores"]) == 6 and len(scores["removed_layers"]) == 2
    tok = AutoTokenizer.from_pretrained(out)
    pruned = sequential_curve(AutoModelForCausalLM.from_pretrained(out).eval(), tok, n=160, budgets=[40])
    teacher = sequential_curve(AutoModelForCausalLM.from_pretrained(teacher_path).eval(), tok, n=160, budgets=[40])
    assert pruned["accuracy"][0] < teacher["accuracy"][0]


def test_an_unreachable_laco_threshold_is_one_sentence_and_no_output(tiny_dir, tmp_path, capsys):
    """Whether LaCo can merge enough layers is known only once the merges are scored; then it says so in one line
    that names the key to change, and writes nothing."""
    out = tmp_path / "out"
    args = [f"model.name_or_path={tiny_dir}", f"output_dir={out}", "prune.method=laco", "prune.n_layers=2"]
    text = tmp_path / "calibration.txt"
    text.write_text("a+3=Bb+4=Fc-4=B\n" * 8)
    code, err = _run(
        [*args, "prune.laco_threshold=1", "prune.calibration=text", f"prune.calibration_path={text}"], capsys
    )
    lines = err.strip().splitlines()
    assert code == 2 and "Traceback" not in err, err
    assert lines[-1].startswith("lprecover prune: LaCo merged away only ")
    assert lines[-1].endswith("at similarity threshold 1.0; lower prune.laco_threshold or prune.n_layers.")
    assert not out.exists()
