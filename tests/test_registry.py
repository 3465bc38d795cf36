"""The registries plugins fill: names clash loudly, a broken plugin is named, the build of a registered model loads
only when it is first resolved, and with no plugin naming a default the configs ask for a model and a data source."""

import importlib.metadata
import sys

import pytest

from lprecover import registry
from lprecover.config import ConfigError, load_config
from lprecover.modeling import ModelConfig
from lprecover.recovery.recipe import TrainData


def test_two_plugins_registering_one_name_are_refused():
    registry.load_plugins()
    with pytest.raises(ValueError, match="Two plugins register the data source 'organism'; rename one of them."):
        registry.register_data_source("organism", registry.DataSource(examples=lambda options, split: []))


def test_a_broken_plugin_is_named(monkeypatch):
    broken = importlib.metadata.EntryPoint("mine", "no_such_module_xyz:register", registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(registry.importlib.metadata, "entry_points", lambda group: [broken])
    monkeypatch.setattr(registry, "_loaded", False)
    with pytest.raises(RuntimeError, match=r"The lprecover plugin 'mine' \(no_such_module_xyz:register\) failed"):
        registry.load_plugins()


def test_lazy_imports_its_target_on_the_first_call_only(tmp_path, monkeypatch):
    (tmp_path / "heavy_mod_for_lazy.py").write_text(
        "CALLS = []\ndef build(x):\n    CALLS.append(x)\n    return x * 2\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    build = registry.lazy("heavy_mod_for_lazy:build")
    assert "heavy_mod_for_lazy" not in sys.modules and build.__name__ == "build"
    assert build(3) == 6 and build(4) == 8
    assert sys.modules["heavy_mod_for_lazy"].CALLS == [3, 4]


def test_the_organism_build_is_not_imported_by_naming_the_organism():
    """Reading a config that names the organism checks its name and options without importing its training code."""
    import subprocess

    code = (
        "import sys\n"
        "from lprecover.config import load_config\n"
        "from data_prep.config import DataConfig\n"
        "cfg = load_config(DataConfig, ['source=organism', 'options.max_chain=4', 'output_dir=/tmp/unused-x'])\n"
        "print(cfg.model.name_or_path, 'lprecover.organism.build' in sys.modules, 'trl' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-3:] == ["organism", "False", "False"]


def test_defaults_come_from_a_plugin_and_without_one_the_config_asks(monkeypatch):
    registry.load_plugins()
    assert registry.DEFAULTS == {"model": "organism", "data_source": "organism"}
    with pytest.raises(ValueError, match="Unknown default kind 'tokenizer'"):
        registry.register_default("tokenizer", "x")
    monkeypatch.setattr(registry, "DEFAULTS", {})
    with pytest.raises(ConfigError, match="model.name_or_path is empty; give a local path, a hub id, or a registered"):
        load_config(ModelConfig, [])
    with pytest.raises(ConfigError, match=r"data.source must be one of gsm8k, .*; got ''"):
        TrainData()
    assert load_config(ModelConfig, ["name_or_path=some/model"]).name_or_path == "some/model"
