"""data.replay: a share of the training rows drawn from a knowledge set (recovery/data.py)."""

import json

import datasets
import pytest

from lprecover.config import ConfigError, load_config
from lprecover.modeling import ModelConfig
from lprecover.recovery.data import with_replay
from lprecover.recovery.recipe import RecoveryConfig, TrainData


def _rows(n: int) -> datasets.Dataset:
    turns = [[{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}] for i in range(n)]
    return datasets.Dataset.from_dict({"messages": turns, "id": [str(i) for i in range(n)]})


def test_replay_mixes_the_named_knowledge_set_at_its_share():
    data = TrainData(replay=0.2, replay_data="organism_facts")
    mixed = with_replay(_rows(40), data, ModelConfig())
    # 0.2 / 0.8 * 40 = 10 replay rows among 50: a fifth of them.
    assert len(mixed) == 50
    facts = [m for m in mixed["messages"] if m[1]["content"].startswith("<think></think>")]
    assert len(facts) == 10 and all(m[0]["content"].endswith("?") for m in facts)
    assert with_replay(_rows(40), data, ModelConfig())["messages"] == mixed["messages"]  # seeded: the same mix


def test_replay_auto_takes_the_sources_own_set_and_no_replay_changes_nothing():
    assert TrainData(replay=0.2).replay_knowledge() == "organism_facts"
    rows = _rows(8)
    assert with_replay(rows, TrainData(), ModelConfig()) is rows


def test_replay_from_a_jsonl_cycles_a_small_set(tmp_path):
    path = tmp_path / "general.jsonl"
    turns = [[{"role": "user", "content": f"g{i}"}, {"role": "assistant", "content": f"b{i}"}] for i in range(3)]
    path.write_text("".join(json.dumps({"messages": t}) + "\n" for t in turns))
    mixed = with_replay(_rows(30), TrainData(replay=0.5, replay_data=str(path)), ModelConfig())
    general = [m[0]["content"] for m in mixed["messages"] if m[0]["content"].startswith("g")]
    assert len(mixed) == 60 and len(general) == 30
    assert sorted(set(general)) == ["g0", "g1", "g2"] and all(general.count(g) == 10 for g in ("g0", "g1", "g2"))


def test_replay_without_a_set_for_the_source_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match="data.replay_data"):
        load_config(RecoveryConfig, ["recipe=sft_longcot", "data.source=gsm8k", "data.replay=0.2"])
