"""Evaluation across processes: which share of the generations this process makes, and waiting for the others.

``accelerate launch --num_processes N -m lprecover.cli eval ...`` (or ``torchrun --nproc_per_node N ...``, on one
node or several) starts N processes. Each generates every N-th (problem, sample) job of every task and mode into a
shard of its own; when all have finished, the main process merges the shards into the single-process outputs
(``records.SampleStore.merge``). Jobs are dealt by position, and a record does not depend on the batch it ran in,
so the merged records equal a single-process run's. ``lprecover teacher-logits`` shares its shards the same way.
"""

import os
from dataclasses import dataclass
from typing import Any

from lprecover.config import ConfigError
from lprecover.launch import DEFAULT_TIMEOUT_MINUTES, distributed_state


@dataclass
class Processes:
    """This process's place among the evaluation's processes (one process when ``state`` is None)."""

    index: int = 0
    count: int = 1
    state: Any = None  # accelerate's PartialState when launched with several processes

    @property
    def main(self) -> bool:
        return self.index == 0

    @property
    def shard(self) -> int | None:
        """The shard this process appends to; None when it is alone (it appends to ``samples.jsonl``)."""
        return self.index if self.count > 1 else None

    def share(self, jobs: list) -> list:
        """This process's jobs: every ``count``-th, from its index."""
        return jobs[self.index :: self.count]

    def wait(self) -> None:
        """Wait until every process gets here."""
        if self.state is not None:
            self.state.wait_for_everyone()

    def device(self, default: str) -> str:
        """The device this process generates on: its own GPU under a launcher, else ``default``."""
        return str(self.state.device) if self.state is not None else default


def launched_processes(timeout_minutes: float | None = None) -> Processes:
    """This process's place among those a launcher started (``WORLD_SIZE`` > 1); one process otherwise.

    Accelerate is imported only under a launcher: the vLLM environment on CPU does not have it.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        return Processes()

    state = distributed_state(timeout_minutes or DEFAULT_TIMEOUT_MINUTES)
    return Processes(state.process_index, state.num_processes, state)


def own_gpu(procs: Processes) -> None:
    """Give this process's vLLM engine (an evaluation's, or a teacher-logit store's) the launcher's GPU for it, its
    local rank's, and no other.

    vLLM starts its engine in a child process that takes the first visible GPU: without this, every process of a
    launch would put its engine on the same one.
    """
    import torch

    if not torch.cuda.is_available():
        return
    local = int(os.environ.get("LOCAL_RANK", procs.index))
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = visible.split(",") if visible else [str(i) for i in range(torch.cuda.device_count())]
    if local >= len(ids):
        raise ConfigError(
            f"Process {procs.index} (local rank {local}) has no GPU of its own among {len(ids)} visible; launch at "
            "most one process per GPU, or one per node with tensor parallelism (eval.vllm_tensor_parallel_size; "
            "store.vllm_kwargs.tensor_parallel_size)."
        )
    os.environ["CUDA_VISIBLE_DEVICES"] = ids[local]
