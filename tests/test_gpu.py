"""GPU paths: skipped without CUDA (see conftest)."""

import pytest
import torch
from tiny_models import VOCAB, tiny_model
from transformers import DynamicCache

from lprecover.surgery import remove_layers

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("family", ["qwen3", "gemma2"])
@pytest.mark.parametrize("dtype, atol", [(torch.float32, 1e-4), (torch.bfloat16, 5e-2)])
def test_pruned_model_decodes_with_the_cache_on_gpu(family, dtype, atol):
    model = tiny_model(family).to("cuda", dtype)
    remove_layers(model, [1, 2])
    ids = torch.randint(3, VOCAB, (4, 16), device="cuda")
    with torch.no_grad():
        full = model(ids).logits[:, -1].float()
        cache = DynamicCache(config=model.config)
        model(ids[:, :-1], past_key_values=cache, use_cache=True)
        step = model(ids[:, -1:], past_key_values=cache, use_cache=True).logits[:, -1].float()
    assert torch.allclose(full, step, atol=atol)


@pytest.mark.parametrize("recipe", ["distill_hidden", "lora_longcot"])
def test_recovery_trains_in_bf16_with_varlen_packing_on_gpu(recipe, teacher_path, tmp_path):
    """bf16 mixed precision on the GPU, packed batches through sdpa_varlen, the teacher on the same device."""
    from lprecover.config import load_config
    from lprecover.recovery.data import load_training_data
    from lprecover.recovery.methods import build_trainer
    from lprecover.recovery.recipe import RecoveryConfig
    from lprecover.train import prune_source

    args = [
        f"recipe={recipe}",
        "train.max_steps=4",
        "train.logging_steps=1",
        "report_to=none",
        f"output_dir={tmp_path}",
    ]
    cfg = load_config(RecoveryConfig, args, recipe_key="recipe")
    trainer = build_trainer(
        cfg,
        prune_source(cfg.model, cfg.prune, tmp_path / "pruned"),
        load_training_data(cfg.data, cfg.model),
        tmp_path,
        "none",
    )
    assert trainer.args.bf16 and trainer.model.config._attn_implementation == "sdpa_varlen"
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    if hasattr(trainer, "teacher"):
        assert next(trainer.teacher.parameters()).device.type == "cuda"
