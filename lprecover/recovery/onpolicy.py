"""On-policy distillation: the student writes, the teacher scores every token it wrote (TRL's DistillationTrainer).

The student samples up to ``distill.max_new_tokens`` tokens for each prompt at ``distill.temperature``; the loss is
TRL's generalized JSD between teacher and student on those tokens (``distill.divergence`` picks beta). Offline
data only supplies the prompts. With ``distill.use_vllm=true`` the student generates with vLLM through TRL (its
``vllm_*`` options as ``distill.vllm.KEY``: ``mode=colocate`` shares the training GPUs, ``mode=server`` talks to a
``trl vllm-serve`` started beside the run); the transformers path stays the default.
"""

from trl import DistillationConfig, DistillationTrainer

from lprecover.recovery.data import prompts_only
from lprecover.recovery.recipe import DistillSettings
from lprecover.recovery.sft import trainer_kwargs
from lprecover.recovery.train_config import TrainConfig


def onpolicy_args(train: TrainConfig, settings: DistillSettings, output_dir: str, report_to) -> DistillationConfig:
    return DistillationConfig(
        **trainer_kwargs(train, output_dir, report_to),
        beta=settings.jsd_beta,
        temperature=settings.temperature,
        max_completion_length=settings.max_new_tokens,
        **settings.vllm_args(),
    )


def onpolicy_trainer(student, teacher, tokenizer, dataset, args: DistillationConfig) -> DistillationTrainer:
    teacher.requires_grad_(False)
    return DistillationTrainer(
        model=student,
        teacher_model=teacher.eval(),
        args=args,
        train_dataset=prompts_only(dataset),
        processing_class=tokenizer,
    )
