from dataclasses import dataclass, field

import pytest
import yaml

from lprecover.cli import main
from lprecover.config import ConfigError, group_choices, load_config, reuse_or_refuse, save_config, save_settings
from lprecover.modeling import ModelConfig
from lprecover.pruning.config import PruneConfig


@dataclass
class Schema:
    model: ModelConfig = field(default_factory=ModelConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    output_dir: str = "out"


def test_overrides_are_typed_and_ordered():
    cfg = load_config(Schema, ["prune.n_layers=3", "prune.method=selection", "prune.layers=[1,2]", "prune.n_layers=5"])
    assert cfg.prune.layers == [1, 2]
    assert cfg.prune.n_layers == 2  # selection derives the count from the list


def test_unknown_key_names_the_nearest_valid_key():
    with pytest.raises(ConfigError, match=r"Unknown config key 'prune.n_layer'.*Did you mean 'prune.n_layers'"):
        load_config(Schema, ["prune.n_layer=2"])
    with pytest.raises(ConfigError, match=r"'outptu_dir'.*Did you mean 'output_dir'"):
        load_config(Schema, ["outptu_dir=x"])


def test_model_group_fills_fields_and_fields_still_override():
    cfg = load_config(Schema, ["model=qwen3_8b", "model.dtype=float32"])
    assert cfg.model.name_or_path == "Qwen/Qwen3-8B"
    assert cfg.model.dtype == "float32" and cfg.model.think_close == "</think>"
    cfg = load_config(Schema, ["model.name_or_path=/some/local/path"])
    assert cfg.model.name_or_path == "/some/local/path"


def test_unknown_group_choice_lists_the_choices():
    assert {"organism", "smollm2_135m", "qwen3_8b"} <= set(group_choices("model"))
    with pytest.raises(ConfigError, match="Unknown model 'qwen9'.*organism"):
        load_config(Schema, ["model=qwen9"])


def test_validation_errors_are_sentences():
    with pytest.raises(ConfigError, match="prune.method must be one of shortgpt"):
        load_config(Schema, ["prune.method=nope"])
    with pytest.raises(ConfigError, match="prune.n_layers"):
        load_config(Schema, ["prune.n_layers=abc"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(Schema, ["prune.n_layers"])


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(Schema, ["model=smollm2_135m", "prune.n_layers=4"])
    path = save_config(cfg, tmp_path)
    assert load_config(Schema, [f"{k}={v}" for k, v in _flatten(yaml.safe_load(path.read_text()))]) == cfg


def _flatten(tree, prefix=""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def test_cli_lists_commands_and_rejects_unknown(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "prune" in out and "organism" in out
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_reuse_rule_compares_saved_settings_and_names_what_differs(tmp_path):
    settings = {"steps": 20, "prune": {"method": "shortgpt", "layers": None}, "eval": {"budgets": [5, 20]}}
    folder = tmp_path / "stage"
    assert reuse_or_refuse(folder, settings, "a stage") == "fresh"  # nothing there
    folder.mkdir()
    assert reuse_or_refuse(folder, settings, "a stage") == "fresh"  # an empty folder
    save_settings(folder, settings)
    (folder / "out.bin").write_bytes(b"x")
    assert reuse_or_refuse(folder, settings, "a stage") == "reuse"

    changed = {"steps": 10, "prune": {"method": "angular", "layers": None}, "eval": {"budgets": [5, 20]}}
    with pytest.raises(ConfigError) as e:
        reuse_or_refuse(folder, changed, "a stage")
    assert "steps: 20 -> 10" in str(e.value) and "prune.method: 'shortgpt' -> 'angular'" in str(e.value)
    assert "eval" not in str(e.value) and "overwrite=true" in str(e.value)
    assert reuse_or_refuse(folder, changed, "a stage", overwrite=True) == "fresh"
    assert reuse_or_refuse(folder, changed | {"prune": settings["prune"]}, "a stage", ignore=("steps",)) == "reuse"
    with pytest.raises(ConfigError, match=r"eval.seed: \(absent\) -> 3"):  # a key only one side has
        reuse_or_refuse(folder, settings | {"eval": {"budgets": [5, 20], "seed": 3}}, "a stage")
    # An option added since, left off (None, false, empty), is how the saved run ran: it is reused.
    for off in (None, False, "", [], {}):
        assert (
            reuse_or_refuse(folder, settings | {"store": off, "eval": {"budgets": [5, 20], "k": off}}, "") == "reuse"
        )
    with pytest.raises(ConfigError, match=r"eval.k: \(absent\) -> 0"):  # 0 is a value, not "off"
        reuse_or_refuse(folder, settings | {"eval": {"budgets": [5, 20], "k": 0}}, "a stage")
    # A saved key the current settings lack still differs (an option removed since).
    save_settings(folder, settings | {"old": None})
    with pytest.raises(ConfigError, match=r"old: None -> \(absent\)"):
        reuse_or_refuse(folder, settings, "a stage")
    save_settings(folder, settings)

    (folder / "config.yaml").unlink()  # files, but no record of what made them
    with pytest.raises(ConfigError, match="records no settings"):
        reuse_or_refuse(folder, settings, "a stage")
    assert reuse_or_refuse(folder, settings, "a stage", overwrite=True) == "fresh"
