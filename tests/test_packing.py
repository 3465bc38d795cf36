"""sdpa_varlen against attention computed one sequence at a time: the kernel on random tensors, then whole tiny
models fed TRL's padding-free batches."""

import math

import pytest
import torch
from tiny_models import tiny_model
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

from lprecover.recovery.packing import NAME, sdpa_varlen_forward, use_varlen_attention

# Several length buckets, two sequences padded within one bucket (17 and 20), a single token, and sequences both
# shorter and longer than the window of 6 used below.
LENGTHS = [5, 1, 17, 20, 9, 30, 2]


def reference_attention(q, k, v, scale, window=None):
    """Causal softmax attention of one sequence, ``[heads, length, dim]``, written out; key/value head ``h // g``
    serves query head ``h`` when there are ``g`` times fewer of them."""
    group = q.shape[0] // k.shape[0]
    k, v = k.repeat_interleave(group, 0), v.repeat_interleave(group, 0)
    n = q.shape[1]
    i, j = torch.arange(n)[:, None], torch.arange(n)[None, :]
    allowed = (j <= i) & ((i - j < window) if window else True)
    scores = (q @ k.transpose(1, 2)) * scale
    return scores.masked_fill(~allowed, -math.inf).softmax(-1) @ v


def _module(window=None):
    module = torch.nn.Module().eval()
    if window is not None:
        module.sliding_window = window
    return module


@pytest.mark.parametrize(
    "heads, kv_heads, window, as_argument, scaling",
    [
        (4, 4, None, False, None),
        (4, 2, None, False, None),  # grouped-query attention
        (4, 4, 6, False, None),  # window on the module (Qwen2, Gemma)
        (6, 2, 6, True, 0.3),  # window as an argument (Mistral, Phi3), with GQA and a set scale (Gemma)
    ],
)
def test_varlen_kernel_equals_attention_per_sequence(heads, kv_heads, window, as_argument, scaling):
    g = torch.Generator().manual_seed(0)
    total, dim = sum(LENGTHS), 8
    q = torch.randn(1, heads, total, dim, generator=g, dtype=torch.float64)
    k, v = (torch.randn(1, kv_heads, total, dim, generator=g, dtype=torch.float64) for _ in range(2))
    cu = torch.tensor([0, *torch.tensor(LENGTHS).cumsum(0).tolist()], dtype=torch.int32)
    module = _module(None if as_argument else window)
    extra = {"sliding_window": window} if as_argument else {}

    out, weights = sdpa_varlen_forward(module, q, k, v, None, scaling=scaling, cu_seq_lens_q=cu, **extra)

    assert weights is None and out.shape == (1, total, heads, dim)
    scale = scaling or dim**-0.5
    for a, b in zip(cu[:-1].tolist(), cu[1:].tolist()):
        expected = reference_attention(q[0, :, a:b], k[0, :, a:b], v[0, :, a:b], scale, window)
        torch.testing.assert_close(out[0, a:b].transpose(0, 1), expected, rtol=1e-10, atol=1e-10)


def test_the_window_hides_keys_beyond_it():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 2, 20, 4, generator=g, dtype=torch.float64) for _ in range(3))
    cu = torch.tensor([0, 20], dtype=torch.int32)
    windowed = sdpa_varlen_forward(_module(6), q, k, v, None, cu_seq_lens_q=cu)[0]
    full = sdpa_varlen_forward(_module(), q, k, v, None, cu_seq_lens_q=cu)[0]
    # The first 6 positions see only keys within the window either way; later ones lose keys to it.
    torch.testing.assert_close(windowed[0, :6], full[0, :6])
    assert (windowed[0, 6:] - full[0, 6:]).abs().amax() > 1e-2


def _sequences(lengths, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(3, 100, (n,), generator=g).tolist() for n in lengths]


def _packed(seqs) -> dict:
    """The batch TRL's SFTTrainer feeds a packed run: one row, position ids restarting per sequence, cu_seq_lens."""
    batch = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)([{"input_ids": s} for s in seqs])
    batch.pop("labels")
    assert "attention_mask" not in batch and batch["input_ids"].shape[0] == 1
    return batch


# Llama (full attention), Mistral (every layer windowed, the window passed as an argument), Qwen2 (windowed and full
# layers, the window on the module), Gemma3 (both, with its own attention scale).
@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2", "gemma3"])
def test_packed_forward_equals_forward_per_sequence(family):
    model = tiny_model(family)
    assert model.config._attn_implementation == "sdpa"
    seqs = _sequences([7, 3, 12, 1, 9])  # the tiny models' window is 4
    with torch.no_grad():
        expected = torch.cat([model(input_ids=torch.tensor([s])).logits[0] for s in seqs])
        assert use_varlen_attention(model) and model.config._attn_implementation == NAME
        packed = model(**_packed(seqs)).logits[0]
    torch.testing.assert_close(packed, expected, rtol=1e-5, atol=1e-5)


def test_packed_gradients_equal_gradients_per_sequence():
    # In float64, so that any difference is the kernel's and not float32 rounding in near-zero gradients.
    seqs = _sequences([7, 12, 3, 9], seed=1)
    weights = torch.randn(31, 104, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    def grads(model, logits):
        model.zero_grad()
        (logits * weights).sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    model = tiny_model("mistral").double()
    per_sequence = grads(model, torch.cat([model(input_ids=torch.tensor([s])).logits[0] for s in seqs]))
    use_varlen_attention(model)
    packed = grads(model, model(**_packed(seqs)).logits[0])
    assert per_sequence.keys() == packed.keys()
    for name, grad in per_sequence.items():
        torch.testing.assert_close(packed[name], grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("family", ["mistral", "qwen2"])
def test_unpacked_batches_attend_as_sdpa_does(family):
    # A row longer than the window with no attention mask, and a right-padded batch: not packed, so transformers'
    # SDPA semantics, window included.
    model = tiny_model(family)
    ids = torch.tensor(_sequences([12, 12], seed=3))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    with torch.no_grad():
        plain, padded = model(input_ids=ids).logits, model(input_ids=ids, attention_mask=mask).logits
        use_varlen_attention(model)
        torch.testing.assert_close(model(input_ids=ids).logits, plain, rtol=1e-5, atol=1e-5)
        varlen_padded = model(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(varlen_padded[0], padded[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(varlen_padded[1, :8], padded[1, :8], rtol=1e-5, atol=1e-5)


def test_models_with_a_varlen_kernel_or_without_sdpa_keep_theirs():
    model = tiny_model("llama")
    model.config._attn_implementation = "flash_attention_2"
    assert not use_varlen_attention(model) and model.config._attn_implementation == "flash_attention_2"
    gemma2 = tiny_model("gemma2")  # soft-capped scores: SDPA refused, eager kept
    assert not use_varlen_attention(gemma2) and gemma2.config._attn_implementation == "eager"
    # Eager separates packed rows by their position ids (without a cache, as the trainers call it).
    seqs = _sequences([7, 3, 12, 1, 9])
    with torch.no_grad():
        expected = torch.cat([gemma2(input_ids=torch.tensor([s])).logits[0] for s in seqs])
        packed = gemma2(**_packed(seqs), use_cache=False).logits[0]
    torch.testing.assert_close(packed, expected, rtol=1e-5, atol=1e-5)
