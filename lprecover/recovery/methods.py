"""From a recipe to a ready Trainer: the student with its trainable part, the teacher, and the method's loss.

method            loss                                         trainer
sft               cross-entropy on the assistant turn          TRL SFTTrainer
distill           logit KD (+ CE) from the teacher, online or  DistillTrainer (SFTTrainer subclass)
                  from its stored top-k (distill.teacher_logits)
distill_hidden    logit KD + per-layer hidden-state matching   DistillTrainer
distill_onpolicy  KD on the student's own samples              TRL DistillationTrainer

trainable         full (every weight), lora (PEFT adapters), partial (layers bordering the gap)
"""

from dataclasses import replace
from pathlib import Path

from lprecover.log import get_logger
from lprecover.modeling import load_model, load_tokenizer
from lprecover.recovery.distill import DistillTrainer
from lprecover.recovery.divergence import stop_on_divergence
from lprecover.recovery.logit_store import StoredTeacher
from lprecover.recovery.lora import apply_lora
from lprecover.recovery.models import teacher_model_config
from lprecover.recovery.onpolicy import onpolicy_args, onpolicy_trainer
from lprecover.recovery.packing import NAME as VARLEN
from lprecover.recovery.packing import use_varlen_attention
from lprecover.recovery.partial import freeze_all_but_border
from lprecover.recovery.recipe import RecoveryConfig
from lprecover.recovery.resume import continue_counters
from lprecover.recovery.sft import has_generation_markers, sft_args, sft_trainer

logger = get_logger(__name__)


def build_trainer(cfg: RecoveryConfig, student_dir: str, dataset, output_dir: Path, report_to: str):
    """The Trainer for ``cfg.method`` on the student at ``student_dir``, stopped by a non-finite loss or gradient,
    and keeping its counters (tokens, mean loss, seconds) across a resume."""
    trainer = method_trainer(cfg, student_dir, dataset, output_dir, report_to)
    # Whatever the method: one divergence check and one resume rule for every recipe.
    stop_on_divergence(trainer, cfg)
    continue_counters(trainer)
    return trainer


def method_trainer(cfg: RecoveryConfig, student_dir: str, dataset, output_dir: Path, report_to: str):
    """The Trainer ``cfg.method`` names, with its student, trainable part, teacher and loss.

    The training arguments come first: under ZeRO-3 they switch on sharded loading, so the models that load
    afterwards are partitioned across processes as they are read.
    """
    student_cfg = replace(cfg.model, name_or_path=str(student_dir))
    tokenizer = load_tokenizer(student_cfg)
    if cfg.method == "distill_onpolicy":
        args = onpolicy_args(cfg.train, cfg.distill, str(output_dir), report_to)
    else:
        args = sft_args(cfg.train, str(output_dir), report_to, assistant_masks=has_generation_markers(tokenizer))
    args.run_name = cfg.run_name()

    student = load_model(student_cfg)
    packed = cfg.train.packing and cfg.method != "distill_onpolicy"
    if packed and use_varlen_attention(student):
        logger.info("Packed batches attend per sequence through %s (no flash-attn kernel in use).", VARLEN)
    if cfg.trainable == "lora":
        student = apply_lora(student, cfg.lora)
    elif cfg.trainable == "partial":
        names = freeze_all_but_border(student, cfg.partial.width)
        logger.info("partial: training %d tensors (%s ...)", len(names), ", ".join(names[:4]))
    trainable = sum(getattr(p, "ds_numel", p.numel()) for p in student.parameters() if p.requires_grad)
    logger.info("%s/%s: %d trainable parameters", cfg.method, cfg.trainable, trainable)

    if cfg.method == "sft":
        return sft_trainer(student, tokenizer, dataset, args)
    if cfg.distill.teacher_logits:
        stored = StoredTeacher(cfg.distill.teacher_logits)
        logger.info("distill: the teacher's top %d from %s (no teacher loaded)", stored.manifest["k"], stored.folder)
        return sft_trainer(
            student, tokenizer, dataset, args, trainer_class=DistillTrainer, stored=stored, settings=cfg.distill
        )
    teacher = load_model(teacher_model_config(cfg, student.config))
    if packed:
        use_varlen_attention(teacher)
    if cfg.method == "distill_onpolicy":
        return onpolicy_trainer(student, teacher, tokenizer, dataset, args)
    return sft_trainer(
        student,
        tokenizer,
        dataset,
        args,
        trainer_class=DistillTrainer,
        teacher=teacher,
        settings=cfg.distill,
        hidden=cfg.method == "distill_hidden",
    )
