"""Bench: generating from a pruned model with the KV cache (our surgery) vs with the cache off (the seed's path).

The seed deletes layers without renumbering them, so the cache is indexed wrongly and has to be switched off:
every new token recomputes the whole prefix. Our surgery renumbers ``layer_idx`` and keeps the cache exact.
Both runs use the same pruned model, prompt and greedy decoding, side by side in this process.

    python bench/prune_generation_cache.py [--new-tokens 512] [--model PATH]
"""

import argparse
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lprecover.smollm2 import ensure_smollm2
from lprecover.surgery import remove_layers


def timed_generate(model, ids, new_tokens, use_cache):
    start = time.perf_counter()
    out = model.generate(
        **ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, use_cache=use_cache
    )
    return out, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="model folder (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--new-tokens", type=int, default=512)
    args = parser.parse_args()
    path = args.model or ensure_smollm2()
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    n = model.config.num_hidden_layers
    remove_layers(model, [n // 2 - 1, n // 2])
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "Explain step by step how to add 347 and 589."}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.inference_mode():
        cached, t_cache = timed_generate(model, ids, args.new_tokens, True)
        uncached, t_nocache = timed_generate(model, ids, args.new_tokens, False)
    same = torch.equal(cached, uncached)
    print(
        f"model: {path} pruned to {n - 2} layers; {args.new_tokens} new tokens, batch 1, greedy, torch threads {torch.get_num_threads()}"
    )
    print(f"KV cache on  (lprecover surgery): {args.new_tokens / t_cache:8.1f} tok/s  ({t_cache:.1f} s)")
    print(f"KV cache off (seed's path):       {args.new_tokens / t_nocache:8.1f} tok/s  ({t_nocache:.1f} s)")
    print(f"speed-up: {t_nocache / t_cache:.1f}x (target >= 10x); identical tokens: {same}")


if __name__ == "__main__":
    main()
