"""Supervised fine-tuning on the messages schema, through TRL's SFTTrainer.

The organism teacher is trained here, and the SFT recovery recipes reuse it, so every model in a study has been
through the same data path: the chat template, assistant-only loss, and packing.
"""

from dataclasses import dataclass

from trl import SFTConfig, SFTTrainer

from lprecover.config import declare
from lprecover.log import get_logger
from lprecover.recovery.launch import training_device_kwargs

logger = get_logger(__name__)


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


def trainer_kwargs(train: TrainConfig, output_dir: str, report_to: list[str] | str = "none") -> dict:
    """The TrainingArguments every recovery trainer shares (TRL's SFT and distillation configs both extend it)."""
    return dict(
        **training_device_kwargs(),
        output_dir=output_dir,
        max_steps=train.max_steps,
        learning_rate=train.learning_rate,
        lr_scheduler_type=train.lr_scheduler,
        warmup_steps=int(train.warmup_ratio * train.max_steps),
        weight_decay=train.weight_decay,
        per_device_train_batch_size=train.per_device_batch_size,
        gradient_accumulation_steps=train.grad_accum,
        gradient_checkpointing=train.gradient_checkpointing,
        seed=train.seed,
        data_seed=train.seed,
        logging_steps=train.logging_steps,
        save_strategy="steps" if train.save_steps else "no",
        save_steps=train.save_steps or 500,
        save_total_limit=train.save_total_limit,
        save_only_model=False,
        report_to=report_to,
    )


def has_generation_markers(tokenizer) -> bool:
    """Whether the chat template marks assistant spans with ``{% generation %}`` (TRL's assistant-only masks)."""
    template = tokenizer.chat_template or ""
    return "{% generation %}" in template or "{%- generation %}" in template


def sft_args(
    train: TrainConfig, output_dir: str, report_to: list[str] | str = "none", assistant_masks: bool = True, **extra
) -> SFTConfig:
    """TRL's SFTConfig for ``train``, with the loss on the assistant's answer only.

    Args:
        assistant_masks: the template has ``{% generation %}`` markers; otherwise ``sft_trainer`` feeds TRL
            prompt/completion pairs, whose loss covers the completion alone, so templates without markers (Llama,
            SmolLM, Mistral) train on the same tokens.
    """
    return SFTConfig(
        **trainer_kwargs(train, output_dir, report_to),
        max_length=train.max_length,
        packing=train.packing,
        assistant_only_loss=assistant_masks,
        completion_only_loss=True,
        dataset_num_proc=None,
        **extra,
    )


def as_prompt_completion(dataset):
    """Messages rows as TRL prompt/completion pairs: the turns before the last assistant turn, and that turn."""

    def split(row):
        last = max(i for i, m in enumerate(row["messages"]) if m["role"] == "assistant")
        return {"prompt": row["messages"][:last], "completion": [row["messages"][last]]}

    return dataset.map(split, remove_columns=dataset.column_names, load_from_cache_file=False)


def training_rows(dataset, args: SFTConfig):
    """The columns TRL reads: ``messages`` with assistant masks, else prompt/completion pairs."""
    return dataset.select_columns(["messages"]) if args.assistant_only_loss else as_prompt_completion(dataset)


def sft_trainer(model, tokenizer, dataset, args: SFTConfig, trainer_class=SFTTrainer, **kwargs) -> SFTTrainer:
    """An SFTTrainer (or subclass) on a messages dataset (extra columns are dropped before tokenizing)."""
    rows = training_rows(dataset, args)
    return trainer_class(model=model, args=args, train_dataset=rows, processing_class=tokenizer, **kwargs)
