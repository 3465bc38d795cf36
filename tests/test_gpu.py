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
