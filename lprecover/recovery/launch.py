"""How this process was launched (one process, data parallel, DeepSpeed), and accelerate's state to match.

On a machine without GPUs, several processes talk over gloo: plain data parallel runs as accelerate's MULTI_CPU;
a DeepSpeed config runs under DeepSpeed's CPU accelerator. The latter must not be flagged as CPU to accelerate
(``use_cpu`` / ``ACCELERATE_USE_CPU``), or accelerate silently falls back to DDP with DeepSpeed-partitioned weights.
"""

import os

import torch
from accelerate import PartialState


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def deepspeed_launched() -> bool:
    return os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"


def cpu_only() -> bool:
    return not torch.cuda.is_available()


def distributed_state() -> PartialState:
    """Accelerate's process state for this launch (call before any TrainingArguments)."""
    if not cpu_only() or world_size() == 1:
        return PartialState()
    if deepspeed_launched():
        os.environ.pop("ACCELERATE_USE_CPU", None)  # the launcher needs it; accelerate inside must not see it
        return PartialState(backend="gloo")
    return PartialState(cpu=True, backend="gloo")


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
