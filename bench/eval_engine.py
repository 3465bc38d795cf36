"""Bench: our evaluation engine vs the seed's pruned-model path, in thinking tokens per second.

Ours: batched budget forcing with the KV cache, left padding and per-sequence stopping. The seed's path: one
problem at a time with the cache disabled (its pruning broke the cache), every token recomputing the prefix.
Both generate the same prompts with greedy decoding at the same thinking budget, side by side in this process.

    python bench/eval_engine.py                     # organism teacher (pruned by 2 layers) and SmolLM2 at 512
    python bench/eval_engine.py --only organism
"""

import argparse
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lprecover.evaluation.budget_forcing import budget_forced_generate, prompt_ids, think_format
from lprecover.registry import model_traits
from lprecover.surgery import remove_layers


def seed_path(model, tok, prompts, lengths):
    """One prompt at a time, no cache: what the seed's pruned models had to do.

    Each problem generates exactly as many tokens as our engine produced for it, so both do the same work.
    """
    tokens = 0
    for p, n in zip(prompts, lengths):
        ids = torch.tensor([p])
        with torch.inference_mode():
            out = model.generate(
                ids,
                max_new_tokens=n,
                min_new_tokens=n,
                do_sample=False,
                use_cache=False,
                pad_token_id=tok.pad_token_id,
            )
        tokens += out.shape[1] - ids.shape[1]
    return tokens


def bench(name, path, problems, budget, n_ours, n_seed, batch_size):
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    n = model.config.num_hidden_layers
    remove_layers(model, [n // 2 - 1, n // 2])
    fmt = think_format(tok, default_answer_prefix=model_traits(model.config).answer_prefix)
    prompts = [prompt_ids(tok, q, fmt) for q in problems]
    start = time.perf_counter()
    gens = budget_forced_generate(
        model, tok, prompts[:n_ours], budget, fmt, answer_max_tokens=8, batch_size=batch_size
    )
    t_ours = time.perf_counter() - start
    ours_tokens = sum(g.thinking_tokens for g in gens)
    lengths = [max(1, g.thinking_tokens) for g in gens[:n_seed]]
    start = time.perf_counter()
    seed_tokens = seed_path(model, tok, prompts[:n_seed], lengths)
    t_seed = time.perf_counter() - start
    ours_rate, seed_rate = ours_tokens / t_ours, seed_tokens / t_seed
    print(f"{name}: pruned to {n - 2} layers, thinking budget {budget}")
    print(
        f"  ours (batched {batch_size}, KV cache): {ours_rate:8.1f} tok/s  ({ours_tokens} tokens, {n_ours} problems, {t_ours:.1f} s)"
    )
    print(
        f"  seed (one at a time, no cache):   {seed_rate:8.1f} tok/s  ({seed_tokens} tokens, {n_seed} problems, {t_seed:.1f} s)"
    )
    print(f"  speed-up: {ours_rate / seed_rate:.1f}x (target >= 10x)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["organism", "smollm2"])
    args = parser.parse_args()
    if args.only in (None, "organism"):
        from lprecover.organism.build import ensure_teacher
        from lprecover.organism.task import make_problems

        problems = [p.problem for p in make_problems(256, 1, 8, seed=99)]
        bench("organism", ensure_teacher(), problems, 40, 256, 32, 256)
    if args.only in (None, "smollm2"):
        from lprecover.smollm2 import ensure_smollm2

        questions = [
            f"A farmer has {i + 3} cows and buys {2 * i + 1} more. Think step by step: how many cows?"
            for i in range(16)
        ]
        bench("SmolLM2-135M-Instruct", ensure_smollm2(), questions, 512, 16, 2, 16)


if __name__ == "__main__":
    main()
