"""The optimisation settings every recovery method shares (``train.*``): a light module, importable without trl,
deepspeed or datasets, as TRL keeps ``x_config.py`` beside ``x_trainer.py``."""

from dataclasses import dataclass

from lprecover.config import declare


@dataclass
class TrainConfig:
    """Optimisation settings shared by every recovery method.

    Schedule: ``max_steps`` bounds the run; ``learning_rate`` with ``lr_scheduler`` and ``warmup_ratio``.
    Batching: ``per_device_batch_size`` sequences (packed rows when ``packing``), times ``grad_accum``.
    Checkpoints: every ``save_steps``, the newest ``save_total_limit`` kept.
    """

    max_steps: int = declare(200, help="Optimizer steps to run.", ge=1)
    learning_rate: float = declare(1e-5, help="Peak learning rate.", gt=0)
    # The transformers schedulers that run on these settings alone: the others need lr_scheduler_kwargs (min_lr,
    # num_decay_steps) or an evaluation loop (reduce_lr_on_plateau, greedy), which no recipe sets up.
    lr_scheduler: str = declare(
        "cosine",
        help="transformers scheduler name.",
        choices=[
            "linear",
            "cosine",
            "cosine_with_restarts",
            "polynomial",
            "constant",
            "constant_with_warmup",
            "inverse_sqrt",
        ],
    )
    warmup_ratio: float = declare(0.05, help="Fraction of steps spent warming up.", ge=0, lt=1)
    weight_decay: float = declare(0.0, help="AdamW weight decay.", ge=0)
    per_device_batch_size: int = declare(8, help="Rows per device per micro-step.", ge=1)
    grad_accum: int = declare(1, help="Micro-steps per optimizer step.", ge=1)
    max_length: int = declare(4096, help="Longest tokenized row (and packed row length).", ge=1)
    packing: bool = declare(
        True, help="Pack rows into max_length blocks without cross-attention (padding-free); no pad FLOPs."
    )
    gradient_checkpointing: bool = declare(False, help="Trade compute for activation memory.")
    seed: int = declare(0, help="Seed for data order and initialisation.", ge=0)
    logging_steps: int = declare(10, help="Log metrics every N steps.", ge=1)
    save_steps: int = declare(100, help="Checkpoint every N steps (0: only at the end).", ge=0)
    # 0 is the Trainer's own "no limit" (transformers' rotate_checkpoints, outputs.mark_complete_checkpoints).
    save_total_limit: int = declare(2, help="Checkpoints kept on disk (0: every one).", ge=0)
