"""The study's recovery-data variants and presets (study.py, study_variants.py): configuration only, no training."""

import pytest

from lprecover.config import ConfigError, load_config
from lprecover.study import StudyConfig, preset_args, variant_config, variant_runs
from lprecover.study_variants import side_by_side


def test_the_default_study_runs_sft_longcot_with_replay_beside_its_own_data(tmp_path):
    cfg = load_config(StudyConfig, [f"output_dir={tmp_path}"])
    assert variant_runs(cfg) == [("replay", "sft_longcot")]
    replay = variant_config(cfg, "replay")
    assert replay.data.replay == 0.2 and replay.data.replay_knowledge() == "organism_facts"
    assert cfg.data.replay is None  # the study's own recipes replay nothing
    assert cfg.evaluate_at == [1 / 32, 3 / 64, 1 / 16, 3 / 32, 1 / 8, 1 / 4, 1 / 2]


def test_trace_length_preset_varies_the_longest_chain_for_every_recipe(tmp_path):
    cfg = load_config(StudyConfig, preset_args(["study=trace_length", f"output_dir={tmp_path}"]))
    assert sorted(cfg.variants) == ["chains4", "chains6"] and cfg.replay_recipes == []
    assert len(variant_runs(cfg)) == 2 * len(cfg.recipes)
    assert variant_config(cfg, "chains4").data.options["max_chain"] == 4
    chains6 = variant_config(cfg, "chains6").data  # only the longest chain changes; the rest of the data is kept
    assert chains6.options == {"max_chain": 6} and chains6.source == "organism" and chains6.split == "longcot"
    # Arguments after the preset override it.
    cfg = load_config(
        StudyConfig, preset_args(["study=trace_length", "variant_recipes=[distill]", f"output_dir={tmp_path}"])
    )
    assert variant_runs(cfg) == [("chains4", "distill"), ("chains6", "distill")]


def test_bad_presets_and_variants_are_refused_naming_them(tmp_path):
    with pytest.raises(ConfigError, match="Unknown study preset 'nope'.*trace_length"):
        preset_args(["study=nope"])
    with pytest.raises(ConfigError, match="variants.v: .*train.max_steps"):
        load_config(StudyConfig, ['variants={"v": ["train.max_steps=3"]}', f"output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=r"variants.v: data.options.max_chain must lie in \[1, 8\], got 99"):
        load_config(StudyConfig, ['variants={"v": ["data.options.max_chain=99"]}', f"output_dir={tmp_path}"])


def test_side_by_side_puts_each_recipe_under_each_variant():
    def summary(share):
        cells = {"area_recovered_share": {"value": share}, "verdict": "returned", "control_accuracy": 0.5}
        run = {"run": "distill", "recipe": "distill", "kind": "recovered", "tasks": {"long": cells}}
        return {"tasks": ["long"], "runs": [run, {"run": "teacher", "recipe": None, "kind": "teacher", "tasks": {}}]}

    table = side_by_side({"study_data": summary(0.9), "chains4": summary(0.2)})
    assert table["long"]["distill"]["study_data"]["area_recovered_share"]["value"] == 0.9
    assert table["long"]["distill"]["chains4"]["area_recovered_share"]["value"] == 0.2
    assert table["long"]["distill"]["chains4"]["tokens_to_50"] is None
