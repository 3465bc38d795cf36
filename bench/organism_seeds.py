"""Does the organism teacher train every time? Builds it at several training seeds and thread counts.

    python bench/organism_seeds.py                          # seeds 0-4 x threads 1 and 2 (about 10 builds)
    python bench/organism_seeds.py seeds=[0] threads=[2] out=bench-out/organism.json

Each build runs in a process of its own with ``OMP_NUM_THREADS`` and torch's thread count set to ``t`` (CPU
training is bit-reproducible only at a fixed thread count, so each count is a different run). Each teacher is trained
into a temporary folder (never the cache) and measured: accuracy per budget (chains 1-8), whether it reaches the
build's acceptance bar, and what ShortGPT pruning of one and two layers leaves of long (5-8) and shallow (1-2)
chains at full budget.
Prints one row per build and the share that reached the bar (goal: all).
"""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def one(seed: int, threads: int) -> dict:
    """Train and measure one teacher in this process (the thread count is the caller's)."""
    import copy
    from dataclasses import replace

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lprecover.organism.build import OrganismConfig, accepted, build_teacher
    from lprecover.organism.check import facts_accuracy, sequential_curve
    from lprecover.pruning.config import PruneConfig
    from lprecover.pruning.prune import prune_model

    torch.set_num_threads(threads)
    cfg = OrganismConfig()
    cfg = replace(cfg, train=replace(cfg.train, seed=seed))
    with tempfile.TemporaryDirectory() as tmp:
        start = time.time()
        card = build_teacher(cfg, Path(tmp))
        row = {
            "seed": seed,
            "threads": threads,
            "seconds": round(time.time() - start),
            "loss": round(card["train_loss"], 4),
            "accuracy": card["curve"]["accuracy"],
            "facts": card["facts_accuracy"],
            "accepted": accepted(card["curve"], card["facts_accuracy"]),
        }
        model = AutoModelForCausalLM.from_pretrained(tmp).eval()
        tok = AutoTokenizer.from_pretrained(tmp)
        for n in (1, 2):
            pruned = copy.deepcopy(model)
            decision, _ = prune_model(pruned, tok, PruneConfig(method="shortgpt", n_layers=n))
            by = sequential_curve(pruned, tok)["by_chain"]
            long, shallow = (sum(by[k][-1] for k in ks) / len(ks) for ks in ((5, 6, 7, 8), (1, 2)))
            known = facts_accuracy(pruned, tok, cfg.facts) if cfg.facts else None
            row[f"shortgpt{n}"] = {"removed": decision.removed, "long": long, "shallow": shallow, "facts": known}
    return row


def _facts_text(result: dict) -> str:
    return "" if result["facts"] is None else f" facts {result['facts']:.2f}"


def _line(row: dict) -> str:
    acc = " ".join(f"{a:.2f}" for a in row["accuracy"])
    pruned = "; ".join(
        f"shortgpt{n} {p['removed']} long {p['long']:.2f} shallow {p['shallow']:.2f}{_facts_text(p)}"
        for n, p in ((1, row["shortgpt1"]), (2, row["shortgpt2"]))
    )
    return (
        f"seed {row['seed']} threads {row['threads']}: {row['seconds']} s, loss {row['loss']:.3f}, accuracy [{acc}]"
        f"{_facts_text(row)}, accepted {row['accepted']}; {pruned}"
    )


def main(argv: list[str]) -> int:
    opts = dict(a.split("=", 1) for a in argv)
    if "child" in opts:
        seed, threads = map(int, opts["child"].split(","))
        print("ROW " + json.dumps(one(seed, threads)), flush=True)
        return 0
    seeds = json.loads(opts.get("seeds", "[0,1,2,3,4]"))
    thread_counts = json.loads(opts.get("threads", "[1,2]"))
    rows = []
    for threads in thread_counts:
        for seed in seeds:
            env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
            done = subprocess.run(
                [sys.executable, __file__, f"child={seed},{threads}"], env=env, capture_output=True, text=True
            )
            line = next((x for x in done.stdout.splitlines() if x.startswith("ROW ")), None)
            if line is None:
                print(done.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"build seed={seed} threads={threads} failed")
            row = json.loads(line[4:])
            rows.append(row)
            print(_line(row), flush=True)
    ok = sum(r["accepted"] for r in rows)
    print(f"reached the bar: {ok}/{len(rows)} (goal: {len(rows)}/{len(rows)})")
    if "out" in opts:
        Path(opts["out"]).parent.mkdir(parents=True, exist_ok=True)
        Path(opts["out"]).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
