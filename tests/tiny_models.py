"""Tiny random decoders of every family surgery must handle, built from configs (no downloads)."""

import torch
from transformers import (
    AutoModelForCausalLM,
    Gemma2Config,
    Gemma3TextConfig,
    GPT2Config,
    LlamaConfig,
    MistralConfig,
    Olmo2Config,
    Phi3Config,
    Qwen2Config,
    Qwen3Config,
    Qwen3MoeConfig,
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


def tiny_model(family: str, seed: int = 0):
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(FAMILIES[family]()).eval()
