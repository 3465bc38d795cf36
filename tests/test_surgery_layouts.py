"""Surgery on families whose layers differ by position: a saved pruned model must reload each kept block as itself."""

import math
import re

import pytest
import torch
from tiny_models import LAYOUT_FAMILIES, VOCAB, tiny_model
from transformers import AutoModelForCausalLM

from lprecover.pruning.criteria import skipping
from lprecover.surgery import UnsupportedModelError, find_blocks, remove_layers


def _ffn(block) -> str:
    return "moe" if any(name.endswith("experts") for name, _ in block.named_modules()) else "dense"


def _kv(attn) -> str:
    return "reuse" if attn.is_kv_shared_layer else "store" if attn.store_full_length_kv else "own"


# What each block is, read off the built modules the way the family's code decides it.
KIND = {
    "llama4_text": lambda b: "moe" if b.is_moe_layer else "dense",
    "deepseek_v2": _ffn,
    "ernie4_5_moe": _ffn,
    "qwen3_moe": _ffn,
    "jamba": lambda b: ("attention" if hasattr(b, "self_attn") else "mamba") + "+" + _ffn(b),
    "gpt_neo": lambda b: b.attn.attention_type,
    "gemma3n_text": lambda b: f"{b.self_attn.layer_type.split('_')[0]}:{_kv(b.self_attn)}",
    "gemma4_text": lambda b: f"{b.self_attn.layer_type.split('_')[0]}:{b.self_attn.head_dim}",
    "recurrent_gemma": lambda b: "attention" if "Attention" in type(b.temporal_block).__name__ else "recurrent",
    "zamba": lambda b: "hybrid" if "Hybrid" in type(b).__name__ else "mamba",
    "zamba2": lambda b: "hybrid" if "Hybrid" in type(b).__name__ else "mamba",
    "minicpm3": lambda b: f"residual x {b.residual_scale:.9f}",
}
MA, AM = "mamba+dense", "attention+moe"
BEFORE = {
    "llama4_text": ["dense", "moe", "dense", "moe", "dense", "moe"],
    "deepseek_v2": ["dense", "dense", "moe", "moe", "moe", "moe"],
    "ernie4_5_moe": ["dense", "dense", "dense", "moe", "dense", "moe"],
    "qwen3_moe": ["dense", "moe", "dense", "moe", "dense", "moe"],
    "jamba": [MA, AM, MA, AM, MA, AM],
    "gpt_neo": ["global", "local"] * 3,
    "gemma3n_text": ["sliding:own", "full:own", "sliding:store", "full:store", "sliding:reuse", "full:reuse"],
    "gemma4_text": ["sliding:8", "sliding:8", "full:16"] * 2,
    "recurrent_gemma": ["recurrent", "recurrent", "attention"] * 2,
    "zamba": ["mamba", "mamba", "hybrid", "mamba", "hybrid", "mamba"],
    "zamba2": ["mamba", "hybrid", "mamba", "mamba", "hybrid", "mamba"],
    "minicpm3": [f"residual x {1.4 / math.sqrt(6):.9f}"] * 6,
}
# (family, layers removed, config fields as surgery must save them)
CASES = [
    ("llama4_text", [0, 3], {"moe_layers": [0, 3], "no_rope_layers": [1, 1, 1, 1]}),  # layer 3 was the NoPE one
    ("deepseek_v2", [0, 3], {"first_k_dense_replace": 1}),
    ("qwen3_moe", [1, 2], {"decoder_sparse_step": 2, "mlp_only_layers": []}),  # the step rule still holds
    ("qwen3_moe", [0], {"decoder_sparse_step": 1, "mlp_only_layers": [1, 3]}),  # it does not: explicit list
    ("jamba", [0], {"attn_layer_period": 2, "attn_layer_offset": 0, "expert_layer_offset": 0}),  # refit
    ("jamba", [2, 3], {"attn_layer_period": 2, "attn_layer_offset": 1}),
    ("ernie4_5_moe", [0, 1], {"moe_layer_start_index": 1, "moe_layer_end_index": 3, "moe_layer_interval": 2}),
    ("gpt_neo", [1], {"attention_types": [[["global"], 2], [["local"], 1], [["global"], 1], [["local"], 1]]}),
    ("gemma3n_text", [4], {"num_kv_shared_layers": 1}),
    ("gemma4_text", [0, 3], {"per_layer_config": {"1": {"head_dim": 16}, "3": {"head_dim": 16}}}),
    ("recurrent_gemma", [1], {"block_types": ["recurrent", "attention", "recurrent", "recurrent", "attention"]}),
    (
        "zamba",
        [0],
        {"layers_block_type": ["linear_attention", "hybrid", "linear_attention", "hybrid", "linear_attention"]},
    ),
    ("zamba2", [0], {"hybrid_layer_ids": [0, 3]}),
    ("minicpm3", [1, 2], {"scale_depth": pytest.approx(1.4 * math.sqrt(4 / 6))}),
]


def _structure(block) -> list:
    """Module names and classes, and tensor names and shapes: what ``from_pretrained`` must rebuild."""
    modules = [(name, type(m).__name__) for name, m in block.named_modules()]
    return modules + sorted((name, tuple(t.shape)) for name, t in block.state_dict().items())


@pytest.mark.parametrize("family, drop, fields", CASES, ids=[f"{c[0]}-drop{c[1]}" for c in CASES])
def test_saved_pruned_model_reloads_each_kept_block_as_itself(family, drop, fields, tmp_path):
    model = tiny_model(family)
    blocks = find_blocks(model)[1]
    keep = [i for i in range(len(blocks)) if i not in drop]
    kinds = [KIND[family](b) for b in blocks]
    assert kinds == BEFORE[family]
    structure = [_structure(b) for b in blocks]
    weights = [{k: v.clone() for k, v in b.state_dict().items()} for b in blocks]
    torch.manual_seed(1)
    ids = torch.randint(3, VOCAB, (2, 12))
    with torch.no_grad(), skipping(model, drop):
        skipped = model(ids).logits

    remove_layers(model, drop)
    saved = model.config.to_dict()
    assert {key: saved[key] for key in fields} == fields
    with torch.no_grad():
        pruned = model(ids).logits
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()

    reloaded_blocks = find_blocks(reloaded)[1]
    assert [KIND[family](b) for b in reloaded_blocks] == [kinds[i] for i in keep]
    assert [_structure(b) for b in reloaded_blocks] == [structure[i] for i in keep]
    for block, i in zip(reloaded_blocks, keep):
        state = block.state_dict()
        assert all(torch.equal(state[k], weights[i][k]) for k in weights[i]), f"kept layer {i} changed weights"
    with torch.no_grad():
        assert torch.equal(reloaded(ids).logits, pruned)
    # and the pruned model computes what the full one does with those blocks skipped
    torch.testing.assert_close(pruned, skipped, rtol=1e-5, atol=1e-6)


def test_per_layer_input_embeddings_keep_the_kept_layers_slices():
    model = tiny_model("gemma3n_text")
    table = model.model.embed_tokens_per_layer.weight.detach().clone().view(VOCAB, 6, 8)
    projection = model.model.per_layer_model_projection.weight.detach().clone().view(6, 8, 32)
    remove_layers(model, [4])
    keep = [0, 1, 2, 3, 5]
    assert torch.equal(model.model.embed_tokens_per_layer.weight, table[:, keep].reshape(VOCAB, 40))
    assert torch.equal(model.model.per_layer_model_projection.weight, projection[keep].reshape(40, 32))
    assert model.model.embed_tokens_per_layer.embedding_dim == 40


def test_deepseek_remote_moe_layer_freq_is_refit_or_refused():
    """DeepSeek's own code (hub configs carry ``moe_layer_freq``) puts MoE on layers ``i % moe_layer_freq == 0``."""
    config = LAYOUT_FAMILIES["deepseek_v2"]()
    config.first_k_dense_replace, config.moe_layer_freq = 0, 3  # MoE on layers 0 and 3
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    remove_layers(model, [1, 4])  # kept 0, 2, 3, 5: MoE on 0 and 2, every second layer
    assert model.config.moe_layer_freq == 2
    with pytest.raises(UnsupportedModelError, match="first_k_dense_replace/moe_layer_freq"):
        remove_layers(model, [1])  # MoE on 0 and 1 of 0, 1, 2: no frequency gives that


def _indices(model) -> list[int]:
    return [m.layer_idx for m in model.modules() if isinstance(getattr(m, "layer_idx", None), int)]


@pytest.mark.parametrize(
    "family, drop, named",
    [
        ("jamba", [1], "JambaConfig.attn_layer_period/attn_layer_offset"),
        ("ernie4_5_moe", [2], "moe_layer_start_index/moe_layer_end_index/moe_layer_interval"),
        ("gemma3n_text", [0, 3], "Gemma3nTextConfig.kv_sharing_modes"),  # the full-attention KV producer goes
        ("zamba2", [1], "Zamba2Config.layers_block_type/num_mem_blocks"),  # adapters follow the hybrid rank
        ("diffllama", [0], "self_attn.lambda_init"),  # caught by the rebuild check, after the blocks moved
    ],
)
def test_layouts_no_config_can_describe_are_refused_and_the_model_left_as_it_was(family, drop, named):
    model = tiny_model(family)
    config, indices = model.config.to_dict(), _indices(model)
    ids = torch.randint(3, VOCAB, (2, 12))
    with torch.no_grad():
        logits = model(ids).logits
    with pytest.raises(UnsupportedModelError, match=re.escape(named)):
        remove_layers(model, drop)
    assert model.config.to_dict() == config
    assert len(find_blocks(model)[1]) == 6 and _indices(model) == indices
    with torch.no_grad():
        assert torch.equal(model(ids).logits, logits)
