"""Tiny random decoders of every family surgery must handle, built from configs (no downloads)."""

import torch
from transformers import (
    AutoModelForCausalLM,
    DeepseekV2Config,
    DiffLlamaConfig,
    Ernie4_5_MoeConfig,
    Gemma2Config,
    Gemma3nTextConfig,
    Gemma3TextConfig,
    Gemma4TextConfig,
    GPT2Config,
    GPTNeoConfig,
    JambaConfig,
    Llama4TextConfig,
    LlamaConfig,
    MiniCPM3Config,
    MistralConfig,
    Olmo2Config,
    Phi3Config,
    Qwen2Config,
    Qwen3Config,
    Qwen3MoeConfig,
    RecurrentGemmaConfig,
    Zamba2Config,
    ZambaConfig,
)

VOCAB = 104  # the organism tokenizer's size, so its tokenizer can drive these models too
COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=6,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    pad_token_id=0,
    eos_token_id=2,
    bos_token_id=None,
)
FAMILIES = {
    "llama": lambda: LlamaConfig(**COMMON),
    "qwen2": lambda: Qwen2Config(**COMMON, use_sliding_window=True, sliding_window=4, max_window_layers=3),
    "qwen3": lambda: Qwen3Config(**COMMON, head_dim=8),
    "mistral": lambda: MistralConfig(**COMMON, sliding_window=4),
    "gemma2": lambda: Gemma2Config(**COMMON, head_dim=8, sliding_window=4),
    "gemma3": lambda: Gemma3TextConfig(**COMMON, head_dim=8, sliding_window=4),
    "phi3": lambda: Phi3Config(**COMMON),
    "olmo2": lambda: Olmo2Config(**COMMON),
    "qwen3_moe": lambda: Qwen3MoeConfig(
        **COMMON, head_dim=8, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16, decoder_sparse_step=2
    ),
    "gpt2": lambda: GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=6, n_head=4, n_positions=256, eos_token_id=2),
}

# Families whose layers differ by position under a rule (MoE every k layers, attention or mamba, KV sharing, ...).
# Each comment gives the six layers' layout.
TOKENS = dict(pad_token_id=0, eos_token_id=2, bos_token_id=2, vocab_size=VOCAB, max_position_embeddings=256)
LAYOUT_FAMILIES = {
    # dense, moe, dense, moe, dense, moe (interleave_moe_layer_step=2 fills moe_layers=[1, 3, 5])
    "llama4_text": lambda: Llama4TextConfig(
        **{**COMMON, "intermediate_size": 16},
        intermediate_size_mlp=64,
        head_dim=8,
        num_local_experts=4,
        num_experts_per_tok=1,
        interleave_moe_layer_step=2,
        attention_chunk_size=8,
    ),
    # dense, dense, moe, moe, moe, moe (first_k_dense_replace=2)
    "deepseek_v2": lambda: DeepseekV2Config(
        **{**COMMON, "num_key_value_heads": 4},
        moe_intermediate_size=16,
        n_routed_experts=4,
        n_shared_experts=1,
        num_experts_per_tok=2,
        first_k_dense_replace=2,
        kv_lora_rank=16,
        q_lora_rank=None,
        qk_nope_head_dim=8,
        qk_rope_head_dim=8,
        v_head_dim=8,
    ),
    # mamba, attention+moe, mamba, attention+moe, ... (period 2, offset 1 for both)
    "jamba": lambda: JambaConfig(
        **COMMON,
        num_experts=4,
        num_experts_per_tok=2,
        attn_layer_period=2,
        attn_layer_offset=1,
        expert_layer_period=2,
        expert_layer_offset=1,
        mamba_d_state=8,
    ),
    # dense, dense, dense, moe, dense, moe ((i + 1) % 2 == 0 from layer 2 on)
    "ernie4_5_moe": lambda: Ernie4_5_MoeConfig(
        **COMMON, moe_intermediate_size=16, moe_num_experts=4, moe_k=2, moe_layer_start_index=2, moe_layer_interval=2
    ),
    # global, local, global, local, global, local (attention_types as one run)
    "gpt_neo": lambda: GPTNeoConfig(
        **TOKENS, hidden_size=32, num_layers=6, num_heads=4, attention_types=[[["global", "local"], 3]], window_size=4
    ),
    # sliding, full, sliding, full, sliding, full; the last two reuse layer 2's and 3's KV cache; per-layer inputs
    "gemma3n_text": lambda: Gemma3nTextConfig(
        **COMMON,
        head_dim=8,
        sliding_window=4,
        layer_types=["sliding_attention", "full_attention"] * 3,
        num_kv_shared_layers=2,
        hidden_size_per_layer_input=8,
        vocab_size_per_layer_input=VOCAB,
        laurel_rank=4,
        altup_num_inputs=2,
        activation_sparsity_pattern=[0.0] * 6,
    ),
    # sliding, sliding, full, repeated; full layers have a wider head_dim (a heterogeneous per_layer_config)
    "gemma4_text": lambda: Gemma4TextConfig(
        **COMMON,
        head_dim=8,
        global_head_dim=16,
        sliding_window=4,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"] * 2,
        hidden_size_per_layer_input=8,
        vocab_size_per_layer_input=VOCAB,
    ),
    # every residual branch scaled by scale_depth / sqrt(num_hidden_layers)
    "minicpm3": lambda: MiniCPM3Config(
        **{**COMMON, "num_key_value_heads": 4},
        qk_nope_head_dim=8,
        qk_rope_head_dim=8,
        v_head_dim=8,
        kv_lora_rank=16,
        q_lora_rank=16,
    ),
    # recurrent, recurrent, attention, repeated (block_types is a cycle)
    "recurrent_gemma": lambda: RecurrentGemmaConfig(
        **TOKENS,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=6,
        num_attention_heads=4,
        lru_width=32,
        attention_window_size=8,
        block_types=["recurrent", "recurrent", "attention"],
    ),
    # mamba, mamba, hybrid, mamba, hybrid, mamba; the hybrid layers share one transformer, tied by layer index
    "zamba": lambda: ZambaConfig(
        **TOKENS,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=6,
        num_attention_heads=4,
        num_key_value_heads=4,
        layers_block_type=["mamba", "mamba", "hybrid", "mamba", "hybrid", "mamba"],
        mamba_d_state=8,
        n_mamba_heads=2,
    ),
    # mamba, hybrid, mamba, mamba, hybrid, mamba; shared transformer adapters picked by rank among hybrid layers
    "zamba2": lambda: Zamba2Config(
        **TOKENS,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=6,
        num_attention_heads=4,
        num_key_value_heads=4,
        layers_block_type=["mamba", "hybrid", "mamba", "mamba", "hybrid", "mamba"],
        mamba_d_state=8,
        n_mamba_heads=4,
        num_mem_blocks=1,
        adapter_rank=4,
    ),
    # each layer's differential-attention lambda_init depends on its index, and no config field can carry it
    "diffllama": lambda: DiffLlamaConfig(**COMMON),
}


def tiny_model(family: str, seed: int = 0, dtype: torch.dtype = torch.float32):
    torch.manual_seed(seed)
    config = {**FAMILIES, **LAYOUT_FAMILIES}[family]()
    return AutoModelForCausalLM.from_config(config, dtype=dtype).eval()


def save_organism_tiny(path, tokenizer):
    """A tiny random Qwen3 with the organism's tokenizer, saved as a checkpoint at ``path`` (returned)."""
    model = tiny_model("qwen3")
    model.config.eos_token_id = tokenizer.eos_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
