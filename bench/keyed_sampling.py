"""Keyed sampling: its cost against transformers' own sampler, and how batch-independent generation is.

    python bench/keyed_sampling.py            # a Qwen3-0.6B-shaped random model on CUDA, a small one on CPU

Two measurements, side by side in one run:
1. Throughput of sampling with ``KeyedSampling`` (a random stream per sample and position: batch-independent)
   against ``generate(do_sample=True)`` (one generator for the batch), same shapes, same number of new tokens.
2. Batch independence: the share of sequences whose tokens are identical when generated alone and in a batch of
   mixed-length prompts, greedy and keyed-sampled, in float32 and bfloat16. The algorithm is batch-independent;
   what remains is the forward pass's numerics, which on a GPU change with the batch shape (different kernels).
   The random model's logits are sharpened so that near-ties are about as rare as in a trained model.
"""

import time

import torch
from transformers import AutoModelForCausalLM, Qwen3Config

from lprecover.evaluation.budget_forcing import KeyedSampling, _left_pad, sampling_key


def model_for(device: str, dtype) -> torch.nn.Module:
    if device == "cuda":  # Qwen3-0.6B's shape: 28 layers, hidden 1024, vocabulary 151936
        cfg = Qwen3Config(
            vocab_size=151936,
            hidden_size=1024,
            intermediate_size=3072,
            num_hidden_layers=28,
            num_attention_heads=16,
            num_key_value_heads=8,
            head_dim=128,
            tie_word_embeddings=True,
        )
    else:
        cfg = Qwen3Config(
            vocab_size=4096,
            hidden_size=128,
            intermediate_size=256,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            head_dim=32,
        )
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg).to(device, dtype).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(8.0)  # sharpen the random model's next-token distributions
    return model


def prompts_for(n: int, vocab: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(1)
    return [
        torch.randint(10, vocab, (int(torch.randint(8, 64, (1,), generator=g)),), generator=g).tolist()
        for _ in range(n)
    ]


@torch.inference_mode()
def generate(model, seqs, new_tokens, keyed: bool | None, keys=None):
    """keyed None: greedy; True: KeyedSampling; False: transformers' sampler."""
    ids, mask = _left_pad(seqs, 0, model.device)
    kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, pad_token_id=0, eos_token_id=None)
    if keyed:
        pads = [ids.shape[1] - len(s) for s in seqs]
        kwargs |= dict(do_sample=False, logits_processor=[KeyedSampling(keys, pads, 1.0, 0.95)])
    elif keyed is False:
        kwargs |= dict(do_sample=True, temperature=1.0, top_p=0.95, top_k=0)
    else:
        kwargs |= dict(do_sample=False)
    out = model.generate(input_ids=ids, attention_mask=mask, **kwargs)
    return out[:, ids.shape[1] :].tolist()


def timed(fn, device):
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main():
    device = "cuda" if torch.cuda.is_available() else "cpu"
    batch, new_tokens = (32, 128) if device == "cuda" else (16, 64)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    model = model_for(device, dtype)
    seqs = prompts_for(batch, model.config.vocab_size)
    keys = [sampling_key(0, "bench", i, 0) for i in range(batch)]
    generate(model, seqs[:4], 8, True, keys[:4])  # warm-up
    times = {"keyed": [], "hf": []}
    for _ in range(3):  # interleaved, median of three
        times["keyed"].append(timed(lambda: generate(model, seqs, new_tokens, True, keys), device))
        times["hf"].append(timed(lambda: generate(model, seqs, new_tokens, False), device))
    med = {k: sorted(v)[1] for k, v in times.items()}
    tokens = batch * new_tokens
    print(f"device {device} {torch.cuda.get_device_name() if device == 'cuda' else ''} dtype {dtype}")
    print(
        f"sampling throughput, batch {batch} x {new_tokens} new tokens: keyed {tokens / med['keyed']:.0f} tok/s, "
        f"transformers' sampler {tokens / med['hf']:.0f} tok/s, ratio {med['hf'] / med['keyed']:.2f}x (goal >= 0.9x)"
    )
    for dt in (torch.float32, dtype) if dtype != torch.float32 else (torch.float32,):
        model = model_for(device, dt)
        n = 8
        for mode, keyed in (("greedy", None), ("keyed sampling", True)):
            batched = generate(model, seqs[:n], new_tokens, keyed, keys[:n])
            alone = [generate(model, [s], new_tokens, keyed, [k])[0] for s, k in zip(seqs[:n], keys[:n])]
            same = sum(a == b for a, b in zip(alone, batched))
            first = [
                next((j for j, (x, y) in enumerate(zip(a, b)) if x != y), new_tokens) for a, b in zip(alone, batched)
            ]
            print(
                f"batch independence, {dt}, {mode}: {same}/{n} sequences identical alone and in a batch of {n} "
                f"({new_tokens} tokens; first difference at median token {sorted(first)[n // 2]})"
            )


if __name__ == "__main__":
    main()
