"""Supervised fine-tuning on the messages schema, through TRL's SFTTrainer.

The SFT recovery recipes train here, and so does any plugin's model built by SFT (the organism's teacher), so every
model in a study has been through the same data path: the chat template, assistant-only loss, and packing.
"""

from trl import SFTConfig, SFTTrainer

from lprecover.launch import training_device_kwargs
from lprecover.log import get_logger
from lprecover.recovery.train_config import TrainConfig

logger = get_logger(__name__)


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
