import pytest
import torch
from tiny_models import FAMILIES, VOCAB, tiny_model
from transformers import AutoModelForCausalLM

from lprecover.surgery import (
    PROVENANCE_KEY,
    UnsupportedModelError,
    find_blocks,
    kept_to_original,
    merge_layers,
    remove_layers,
)


def _generate(model, use_cache):
    torch.manual_seed(0)
    ids = torch.randint(3, VOCAB, (2, 10))
    return model.generate(ids, max_new_tokens=16, do_sample=False, use_cache=use_cache, pad_token_id=0)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_removal_keeps_cached_generation_exact(family):
    model = tiny_model(family)
    types_before = list(getattr(model.config, "layer_types", None) or [])
    remove_layers(model, [1, 3])
    _, blocks = find_blocks(model)
    assert len(blocks) == 4
    layer_idx = [m.layer_idx for b in blocks for m in b.modules() if isinstance(getattr(m, "layer_idx", None), int)]
    assert sorted(set(layer_idx)) == [0, 1, 2, 3]
    if types_before:
        assert model.config.layer_types == [types_before[i] for i in (0, 2, 4, 5)]
    assert torch.equal(_generate(model, True), _generate(model, False))


@pytest.mark.parametrize("family", ["gemma2", "qwen2"])
def test_sliding_window_layers_follow_their_blocks(family):
    model = tiny_model(family)
    before = [getattr(b.self_attn, "sliding_window", None) for b in find_blocks(model)[1]]
    remove_layers(model, [0, 4])
    after = [getattr(b.self_attn, "sliding_window", None) for b in find_blocks(model)[1]]
    assert after == [before[i] for i in (1, 2, 3, 5)]
    for window, kind in zip(after, model.config.layer_types):
        assert (window is not None) == (kind == "sliding_attention")
    if family == "qwen2":  # layers below max_window_layers=3 are full attention: originals 1 and 2 remain below it
        assert model.config.max_window_layers == 2


def test_lists_that_only_happen_to_have_one_entry_per_layer_are_left_alone():
    config = tiny_model("llama").config
    config.eos_token_id = [2, 3, 4, 5, 6, 7]  # six stop tokens on a six-layer model
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    remove_layers(model, [0])
    assert model.config.eos_token_id == [2, 3, 4, 5, 6, 7]


def _with_config(family, **fields):
    config = tiny_model(family).config
    for key, value in fields.items():
        setattr(config, key, value)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config)


def test_layers_that_reuse_another_layers_state_keep_their_source():
    # Mistral Large 4 names each layer's KV source; DSA's "shared" layers reuse the previous "full" layer's top-k.
    model = _with_config("llama", kv_source_layers=[0, 0, 2, 2, 4, 4], indexer_types=["full", "shared"] * 3)
    remove_layers(model, [1])
    assert model.config.kv_source_layers == [0, 1, 1, 3, 3]
    assert model.config.indexer_types == ["full", "full", "shared", "full", "shared"]
    with pytest.raises(UnsupportedModelError, match=r"kv_source_layers: kept layer\(s\) \[3\] reuse .* \[2\]"):
        remove_layers(_with_config("llama", kv_source_layers=[0, 0, 2, 2, 4, 4]), [2])
    with pytest.raises(UnsupportedModelError, match=r"indexer_types: kept layer\(s\) \[3\] reuse .* \[2\]"):
        remove_layers(_with_config("llama", indexer_types=["full", "shared"] * 3), [2])


def test_provenance_composes_across_prunings():
    model = tiny_model("llama")
    remove_layers(model, [1], method="shortgpt", source="tiny")
    prov = remove_layers(model, [2], method="tail")
    assert prov["removed_layers"] == [1, 3]
    assert prov["kept_layers"] == [0, 2, 4, 5]
    assert prov["method"] == "shortgpt+tail" and prov["source_model"] == "tiny"
    assert kept_to_original(model.config) == [0, 2, 4, 5]


def test_saved_pruned_model_reloads_with_identical_logits(tmp_path):
    model = tiny_model("qwen3")
    remove_layers(model, [2, 3], source="tiny-qwen3")
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert reloaded.config.num_hidden_layers == 4
    assert getattr(reloaded.config, PROVENANCE_KEY)["kept_layers"] == [0, 1, 4, 5]
    ids = torch.randint(3, VOCAB, (2, 12))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reloaded(ids).logits)
    assert (tmp_path / "model.safetensors").exists()


@pytest.mark.parametrize(
    "layers, message",
    [([1, 1], "more than once"), ([6], "out of range"), ([-1], "out of range"), (list(range(6)), "at least one")],
)
def test_bad_layer_sets_are_refused(layers, message):
    with pytest.raises(ValueError, match=message):
        remove_layers(tiny_model("llama"), layers)


def test_model_without_block_list_is_named():
    class NoBlocks(torch.nn.Module):
        config = tiny_model("llama").config

    with pytest.raises(UnsupportedModelError, match="NoBlocks has no decoder block list"):
        find_blocks(NoBlocks())


def test_merge_reserves_differences():
    model = tiny_model("llama")
    blocks = find_blocks(model)[1]
    w = [b.mlp.up_proj.weight.detach().clone() for b in blocks]
    merge_layers(model, 2, [3, 4])
    assert torch.allclose(blocks[2].mlp.up_proj.weight, w[2] + (w[3] - w[2]) + (w[4] - w[2]))
