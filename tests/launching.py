"""Launching an ``lprecover.cli`` command in one process, or in several CPU processes on gloo, as users launch it
on GPUs: ``accelerate launch --multi_gpu --num_processes N -m lprecover.cli ...`` with ``ACCELERATE_USE_CPU``."""

import os
import subprocess
import sys
from pathlib import Path

ACCELERATE = str(Path(sys.executable).parent / "accelerate")


def cpu_env() -> dict:
    """This environment without accelerate's or W&B's settings, one thread a process (two processes, two cores)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "WANDB_"))}
    return env | {"OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "true", "TOKENIZERS_PARALLELISM": "false"}


def cli_command(args: list[str], processes: int) -> list[str]:
    """``python -m lprecover.cli ARGS`` for one process, else the same under ``accelerate launch``."""
    if processes == 1:
        return [sys.executable, "-m", "lprecover.cli", *args]
    launch = [ACCELERATE, "launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1"]
    return [*launch, "-m", "lprecover.cli", *args]


def run_cli(args: list[str], processes: int) -> str:
    """Run ``cli_command`` to the end; returns its stderr (the log), failing the test on a non-zero exit."""
    done = subprocess.run(cli_command(args, processes), env=cpu_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr
