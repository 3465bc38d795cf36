"""How this process was launched (one process, data parallel, DeepSpeed), and accelerate's state to match.

On a machine without GPUs, several processes talk over gloo: plain data parallel runs as accelerate's MULTI_CPU;
a DeepSpeed config runs under DeepSpeed's CPU accelerator. The latter must not be flagged as CPU to accelerate
(``use_cpu`` / ``ACCELERATE_USE_CPU``), or accelerate silently falls back to DDP with DeepSpeed-partitioned weights.

Some work runs on the main process alone while the others wait at a barrier: building the training data, pruning
the source model, and in a study evaluating each model. At real model sizes that outlasts the collective timeout
PyTorch defaults to (30 minutes; 10 for NCCL in some versions), so the process group gets ``launch_timeout_minutes``.
"""

import os
from datetime import timedelta

import torch
from accelerate import PartialState

DEFAULT_TIMEOUT_MINUTES = 180.0
TIMEOUT_HELP = (
    "Minutes a collective (a barrier included) may wait before the launch fails: it must cover the main process's "
    "one-process work while the others wait (data build, pruning; in a study, one evaluation). A real hang is "
    "reported only after this long."
)


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def deepspeed_launched() -> bool:
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"


def cpu_only() -> bool:
    return not torch.cuda.is_available()


def distributed_state(timeout_minutes: float = DEFAULT_TIMEOUT_MINUTES) -> PartialState:
    """Accelerate's process state for this launch (call before any TrainingArguments).

    Args:
        timeout_minutes: the process group's collective timeout; only the first call of a process sets it (later
            TrainingArguments reuse the group, so their ``ddp_timeout`` does not apply).
    """
    if world_size() == 1:
        return PartialState()
    timeout = timedelta(minutes=timeout_minutes)
    if not cpu_only():
        return PartialState(timeout=timeout)
    if deepspeed_launched():
        os.environ.pop("ACCELERATE_USE_CPU", None)  # the launcher needs it; accelerate inside must not see it
        return PartialState(backend="gloo", timeout=timeout)
    return PartialState(cpu=True, backend="gloo", timeout=timeout)


def training_device_kwargs() -> dict:
    """The TrainingArguments fields that pick device, precision and backend for this launch."""
    cuda = not cpu_only()
    return {
        # bf16 where the GPU has it; CPUs train in float32 (their bf16 kernels are slow and tiny models need fp32).
        "bf16": cuda and torch.cuda.is_bf16_supported(),
        "use_cpu": not cuda and not deepspeed_launched(),
        # NCCL needs GPUs; several CPU processes talk over gloo.
        "ddp_backend": "gloo" if world_size() > 1 and not cuda else None,
    }
