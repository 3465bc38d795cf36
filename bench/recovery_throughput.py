"""Bench: recovery training speed and memory, each case in a fresh process, ratios printed side by side.

1. Long-CoT SFT, real (non-pad) tokens per second on the organism's mixed-length traces: our default path
   (TRL's bfd packing, padding-free, attended per sequence by ``sdpa_varlen``) against TRL's padded defaults
   (packing off, 8 rows a step, padded to the longest), and against padding at the same tokens per step.
2. Distillation step time over SFT step time, with the teacher running online beside the student, and with the
   teacher's top-k log-probabilities read from a store (``lprecover teacher-logits``, written once before the
   rounds: its bytes per token and teacher-pass time are printed).
3. Peak memory of each case: GPU max allocated, or on CPU the growth of the process's resident high-water mark
   while training.

    python bench/recovery_throughput.py                  # the organism, ~3 minutes on 2 cores
    python bench/recovery_throughput.py --steps 40
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

CASES = {
    # name: (recipe, overrides)
    "trl_padded_default": ("sft_longcot", ["train.packing=false", "train.max_length=1024"]),
    "trl_padded_same_tokens": ("sft_longcot", ["train.packing=false", "train.max_length=1024"]),
    "ours_packed": ("sft_longcot", []),
    "distill": ("distill", []),
    "distill_hidden": ("distill_hidden", []),
    "distill_stored": ("distill", ["distill.teacher_logits={store}"]),
}


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def run_case(name: str, steps: int, rows: int, work: Path) -> dict:
    """Train ``steps`` steps of one case in this process and return its timings and memory."""
    from transformers import TrainerCallback

    from lprecover.config import load_config
    from lprecover.recovery.data import load_training_data
    from lprecover.recovery.methods import build_trainer
    from lprecover.recovery.recipe import RecoveryConfig
    from lprecover.train import prune_source

    recipe, overrides = CASES[name]
    batch = rows if name == "trl_padded_same_tokens" else 8
    args = [f"recipe={recipe}", f"train.max_steps={steps}", f"train.per_device_batch_size={batch}"]
    args += ["train.save_steps=0", "train.logging_steps=1000", "report_to=none", f"output_dir={work / name}"]
    overrides = [o.format(store=work / "store") for o in overrides]
    cfg = load_config(RecoveryConfig, [*args, *overrides], recipe_key="recipe")
    dataset = load_training_data(cfg.data, cfg.model)
    trainer = build_trainer(cfg, prune_source(cfg.model, cfg.prune, work / "pruned"), dataset, work / name, "none")

    marks = []

    class Clock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            marks.append((time.perf_counter(), getattr(trainer, "_total_train_tokens", 0)))

    trainer.add_callback(Clock())
    rss_before = _rss_kib("VmRSS")
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    warm = 3  # the first steps pay for allocator warm-up and lazy initialisation
    (t0, tok0), (t1, tok1) = marks[warm], marks[-1]
    if torch.cuda.is_available():
        peak_mib = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mib = (_rss_kib("VmHWM") - rss_before) / 1024
    return {
        "case": name,
        "seconds_per_step": (t1 - t0) / (len(marks) - 1 - warm),
        "tokens_per_second": (tok1 - tok0) / (t1 - t0) if tok1 > tok0 else None,
        "peak_mib": peak_mib,
        "rows_per_step": batch,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--rows", type=int, default=48, help="Padded rows a step that match our packed tokens.")
    parser.add_argument("--repeats", type=int, default=3, help="Runs of each case; medians are reported.")
    parser.add_argument("--k", type=int, default=32, help="Top tokens stored per position (the organism has 104).")
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--work", default="/tmp/lprecover-bench-recovery")
    args = parser.parse_args()
    work = Path(args.work)
    if args.case:
        print("RESULT " + json.dumps(run_case(args.case, args.steps, args.rows, work)), flush=True)
        return

    store = work / "store"
    command = [sys.executable, "-m", "lprecover.cli", "teacher-logits", "recipe=distill", f"store.out={store}"]
    subprocess.run([*command, f"store.k={args.k}", "overwrite=true"], check=True, capture_output=True)
    manifest = json.loads((store / "manifest.json").read_text())

    # Cases run round-robin, `repeats` times each, and report their medians: this machine's step times drift by
    # tens of percent between minutes, which would otherwise land on whichever case ran then.
    runs: dict[str, list[dict]] = {name: [] for name in CASES}
    for _ in range(args.repeats):
        for name in CASES:
            out = subprocess.run(
                [sys.executable, __file__, "--case", name, "--steps", str(args.steps), "--rows", str(args.rows)]
                + ["--work", str(work)],
                capture_output=True,
                text=True,
                env=os.environ | {"TOKENIZERS_PARALLELISM": "false"},
            )
            line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
            if line is None:
                sys.exit(f"case {name} failed:\n{out.stderr[-3000:]}")
            runs[name].append(json.loads(line[len("RESULT ") :]))
    results = {}
    for name, rs in runs.items():
        r = results[name] = {
            key: statistics.median(x[key] for x in rs) if rs[0][key] is not None else None
            for key in ("seconds_per_step", "tokens_per_second", "peak_mib")
        }
        tps = f"{r['tokens_per_second']:9.0f} tok/s" if r["tokens_per_second"] else " " * 15
        print(f"{name:24s} {r['seconds_per_step'] * 1000:7.1f} ms/step {tps}  peak {r['peak_mib']:7.1f} MiB")

    ours = results["ours_packed"]["tokens_per_second"]
    print()
    print(
        f"SFT tokens/s, ours vs TRL padded defaults:       {ours / results['trl_padded_default']['tokens_per_second']:.2f}x (target >= 1.5x)"
    )
    print(
        f"SFT tokens/s, ours vs padded at same tokens/step: {ours / results['trl_padded_same_tokens']['tokens_per_second']:.2f}x"
    )
    sft = results["ours_packed"]["seconds_per_step"]
    print(f"distill step / SFT step:        {results['distill']['seconds_per_step'] / sft:.2f}x (target <= 1.3x)")
    print(f"distill_hidden step / SFT step: {results['distill_hidden']['seconds_per_step'] / sft:.2f}x")
    stored = results["distill_stored"]["seconds_per_step"] / sft
    print(f"distill from stored logits step / SFT step: {stored:.2f}x (target <= 1.1x)")
    print(
        f"store (k={manifest['k']}, {manifest['dtype']}): {manifest['bytes_per_position']:.1f} bytes per distilled "
        f"token, {manifest['positions']} tokens, teacher pass {manifest['teacher_seconds']:.1f} s "
        f"({manifest['positions'] / manifest['teacher_seconds']:.0f} tokens/s)"
    )
    # A teacher forward costs about a third of a student step per layer: 1 + L_teacher / (3 L_student).
    print("compute floor of the distillation ratio for the organism (6-layer teacher, 4-layer student): 1.50x")


if __name__ == "__main__":
    main()
