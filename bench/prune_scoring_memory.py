"""Bench: peak memory of block-influence scoring, ours (streaming hooks) vs the seed's pairwise similarity.

The seed keeps every layer's hidden states and builds a T x T cosine-similarity matrix per layer between the
layer's input and output tokens, reading its diagonal. Ours computes per-token cosines in forward hooks and keeps
only running sums. Each approach runs in a fresh subprocess that first does a plain forward pass over the same
calibration tokens; the number reported is the peak RSS *above* that forward's own peak, i.e. what scoring adds.
Workers run single-threaded with one malloc arena, so the RSS delta reflects tensors rather than per-thread
allocator arenas (with two threads, arena growth alone moves it by ~100 MB from run to run).

    python bench/prune_scoring_memory.py [--tokens 4096] [--model PATH]
"""

import argparse
import json
import os
import resource
import subprocess
import sys

import torch


def _rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker(path, tokens, approach):
    from transformers import AutoModelForCausalLM

    from lprecover.pruning.criteria import Calibration, boundary_distances

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    ids = torch.randint(100, model.config.vocab_size - 100, (1, tokens))
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    with torch.no_grad():
        model(**batch, use_cache=False)
    base = _rss_mb()
    with torch.no_grad():
        if approach == "ours":
            scores = boundary_distances(model, Calibration([batch]))
        else:
            hidden = model(**batch, use_cache=False, output_hidden_states=True).hidden_states
            scores = []
            for h_in, h_out in zip(hidden[:-1], hidden[1:]):
                a = torch.nn.functional.normalize(h_in[0].float(), dim=-1)
                b = torch.nn.functional.normalize(h_out[0].float(), dim=-1)
                sim = a @ b.T  # T x T, of which only the diagonal is used
                scores.append(float(1 - sim.diagonal().mean()))
    print(json.dumps({"extra_mb": _rss_mb() - base, "scores": scores[:3]}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None)
    parser.add_argument("--tokens", type=int, default=4096)
    parser.add_argument("--worker", choices=["ours", "seed"])
    args = parser.parse_args()
    if args.worker:
        return worker(args.model, args.tokens, args.worker)
    from lprecover.smollm2 import ensure_smollm2

    path = str(args.model or ensure_smollm2())
    results = {}
    for approach in ("ours", "seed"):
        cmd = [sys.executable, __file__, "--worker", approach, "--model", path, "--tokens", str(args.tokens)]
        env = dict(os.environ, OMP_NUM_THREADS="1", MALLOC_ARENA_MAX="1")
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout.strip().splitlines()[-1]
        results[approach] = json.loads(out)
    ours, seed = max(results["ours"]["extra_mb"], 1.0), results["seed"]["extra_mb"]
    print(f"model: {path}; {args.tokens} calibration tokens in one sequence")
    print(f"ours (streaming hooks):       +{results['ours']['extra_mb']:8.1f} MB above the plain forward")
    print(f"seed (hidden states + T x T): +{seed:8.1f} MB above the plain forward")
    print(f"memory ratio: {seed / ours:.1f}x less (target >= 10x); first scores ours {results['ours']['scores']}")


if __name__ == "__main__":
    main()
