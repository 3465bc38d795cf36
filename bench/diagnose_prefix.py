"""Bench: the NLL sweep with the prefix reused (``diagnose.nll.layer_nll``) vs a whole forward per removed layer.

Removing layer i leaves layers 0..i-1 as they were, so the sweep keeps every block's input from one forward of the
unpruned model and runs only the blocks above each removed layer: ``L + L(L-1)/2`` block passes per batch instead of
``L + L(L-1)`` (the unpruned forward, then ``L - 1`` blocks per removed layer). Every pass still pays the output
head (and its log-softmax) once, which reuse cannot save: with B the parameters of a block and H those of the head,
the predicted ratio is ``(L + 1)(L B + H) / ((L B + H) + L H + B L(L - 1) / 2)`` (1.94 without a head for L = 30;
SmolLM2-135M's tied 28M-parameter head against 3.5M-parameter blocks brings it to about 1.66). Both paths give the
same numbers (the bench prints the largest difference).

    OMP_NUM_THREADS=2 python bench/diagnose_prefix.py [--model smollm2_135m|organism] [--traces 8] [--tokens 128]
"""

import argparse
import time

import torch

from lprecover.diagnose.nll import layer_nll, layer_nll_full, traces_from_file
from lprecover.evaluation.run import think_format
from lprecover.modeling import ModelConfig, load_model_and_tokenizer
from lprecover.pruning.criteria import skipping
from lprecover.pruning.prune import is_organism
from lprecover.surgery import find_blocks


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    ap.add_argument("--traces-file", default="../shared/data/gsm8k/train.jsonl")
    ap.add_argument("--traces", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()
    model, tok = load_model_and_tokenizer(ModelConfig(name_or_path=args.model, dtype="float32"))
    fmt = think_format(tok, organism=is_organism(model))
    traces = traces_from_file(args.traces_file, tok, fmt, args.traces, args.tokens)
    n = len(find_blocks(model)[1])
    layers = list(range(n))
    timings = {}
    results = {}
    for name, fn in (("prefix reused", layer_nll), ("whole forward", None)):
        start = time.perf_counter()
        if fn is None:
            results[name] = layer_nll_full(model, tok, traces, layers, args.batch_size, skip=skipping)
        else:
            results[name] = fn(model, tok, traces, layers, args.batch_size)
        timings[name] = time.perf_counter() - start
    a, b = results.values()
    worst = max(abs(x["total"] - y["total"]) for i in layers for x, y in zip(a[i], b[i]))
    tokens = sum(len(t.ids) for t in traces)
    print(f"model {args.model}: {n} layers, {len(traces)} traces, {tokens} tokens, threads {torch.get_num_threads()}")
    print(f"{'':16}{'seconds':>10}")
    for name, seconds in timings.items():
        print(f"{name:16}{seconds:10.2f}")
    blocks = find_blocks(model)[1]
    b = sum(p.numel() for p in blocks[0].parameters())
    h = model.get_output_embeddings().weight.numel()
    predicted = (n + 1) * (n * b + h) / ((n * b + h) + n * h + b * n * (n - 1) / 2)
    ratio = timings["whole forward"] / timings["prefix reused"]
    print(
        f"ratio (whole / reused): {ratio:.2f}  (parameter passes predict {predicted:.2f}); max |NLL difference| {worst:.1e}"
    )


if __name__ == "__main__":
    main()
