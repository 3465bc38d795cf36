"""Everything a recovery run can get wrong that is knowable before weights load or anything is written.

Models are checked as meta-device skeletons built from their configs, so a bad prune spec, LoRA target, teacher
or launch strategy fails in seconds with a sentence, not after minutes of loading.
"""

import os
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lprecover.config import ConfigError, load_settings, reuse_or_refuse, settings_diff, to_dict
from lprecover.evaluation.config import GENERATION_ONLY
from lprecover.modeling import ModelConfig, read_model_config, resolve_model_path
from lprecover.recovery.logit_store import StoredTeacher
from lprecover.recovery.lora import check_targets
from lprecover.recovery.models import teacher_model_config
from lprecover.recovery.outputs import EVAL_DIR, FAILED_FILE, failure
from lprecover.recovery.partial import border_layers, final_norm
from lprecover.recovery.recipe import RecoveryConfig
from lprecover.surgery import find_blocks, layer_count

# Sections that may change between launches of one run: they do not change what is trained.
RELAUNCH_FREE = ("resume", "report_to", "wandb", "evaluate", "eval", "overwrite", "launch_timeout_minutes")


def _skeleton(path: str, model: ModelConfig, what: str):
    config = read_model_config(model, path, what)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, trust_remote_code=model.trust_remote_code)


def check_models(cfg: RecoveryConfig) -> None:
    """The source or student has a layer list, the prune spec fits it, LoRA targets exist, teacher vocab matches."""
    if cfg.student:
        if not Path(cfg.student).is_dir():
            raise ConfigError(f"student '{cfg.student}' is not a folder; give a checkpoint written by a prune.")
        student = _skeleton(cfg.student, cfg.model, "student")
    else:
        student = _skeleton(resolve_model_path(cfg.model.name_or_path), cfg.model, "model.name_or_path")
    # Each call below judges the user's model against the recipe (layer list, prune spec, LoRA targets, partial
    # borders) and says what is wrong in a ValueError; errors from building the skeleton above are not caught.
    try:
        find_blocks(student)
        if not cfg.student:
            cfg.prune.check_against(layer_count(student.config))
        if cfg.trainable == "lora":
            check_targets(student, cfg.lora)
        if cfg.trainable == "partial":
            final_norm(student)
            if cfg.student:
                border_layers(student.config, cfg.partial.width)
    except ValueError as e:  # UnsupportedModelError included
        raise ConfigError(str(e)) from None
    if cfg.distill.teacher_logits:
        check_store(cfg, student.config)
    elif cfg.distills:
        check_teacher(cfg, student.config)


def _rows_spec(data: dict, max_length, packing) -> dict:
    """What decides the rows a run trains on: a built dataset's path alone (its build spec is then ignored), or the
    build spec; and the trainer's cut and packing."""
    if data.get("dataset"):
        rows = {"dataset": str(Path(data["dataset"]).resolve())}
    else:
        rows = {**data, "source_path": data.get("source_path") and str(Path(data["source_path"]).resolve())}
    return {"data": rows, "train": {"max_length": max_length, "packing": packing}}


def check_store(cfg: RecoveryConfig, student_config) -> None:
    """A finished teacher-logit store, at the recipe's temperature, for the student's vocabulary, written from the
    recipe's data settings. Whether it holds every training sequence is checked again, exactly, once the data are
    prepared (``StoredTeacher.check_covers``): the same settings over an edited data file pass here."""
    store = StoredTeacher(cfg.distill.teacher_logits)
    store.check(cfg.distill.temperature, student_config.get_text_config().vocab_size)
    saved = load_settings(store.folder)
    if "data" not in saved:
        return  # a store from before its settings were saved: check_covers decides
    written = _rows_spec(saved["data"], saved.get("max_length"), saved.get("packing"))
    differs = settings_diff(written, _rows_spec(to_dict(cfg.data), cfg.train.max_length, cfg.train.packing))
    if differs:
        raise ConfigError(
            f"The store '{store.folder}' was written from other training data than this run's ({differs}), so it "
            "lacks this run's sequences. Run with the store's settings, or write a store for these with "
            "`lprecover teacher-logits` and this run's overrides plus store.out=DIR."
        )


def check_teacher(cfg: RecoveryConfig, student_config) -> None:
    """Teacher and student must share a tokenizer: distillation compares their distributions token by token."""
    teacher_cfg = teacher_model_config(cfg, student_config)
    teacher_path = resolve_model_path(teacher_cfg.name_or_path, "teacher")
    teacher_config = read_model_config(teacher_cfg, teacher_path, "teacher")
    t_vocab = teacher_config.get_text_config().vocab_size
    s_vocab = student_config.get_text_config().vocab_size
    if t_vocab != s_vocab:
        raise ConfigError(
            f"Teacher '{teacher_cfg.name_or_path}' has a vocabulary of {t_vocab} tokens, the student {s_vocab}: "
            "logit distillation needs one tokenizer. Choose a teacher from the student's model family."
        )
    student_path = cfg.student or resolve_model_path(cfg.model.name_or_path)
    if Path(student_path).resolve() != Path(teacher_path).resolve():
        t_tok = AutoTokenizer.from_pretrained(teacher_path, trust_remote_code=teacher_cfg.trust_remote_code)
        s_tok = AutoTokenizer.from_pretrained(student_path, trust_remote_code=cfg.model.trust_remote_code)
        if t_tok.get_vocab() != s_tok.get_vocab():
            raise ConfigError(
                f"Teacher '{teacher_cfg.name_or_path}' and student '{student_path}' tokenize differently (their "
                "vocabularies differ): logit distillation needs one tokenizer."
            )


def check_strategy(cfg: RecoveryConfig) -> None:
    """Refuse launch strategies the hardware cannot run; make GPU-written configs run in float32 on CPU."""
    cuda = torch.cuda.is_available()
    offload = {
        os.environ.get("ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE"),
        os.environ.get("ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE"),
    }
    if not cuda and ("cpu" in offload or "nvme" in offload):
        raise ConfigError(
            "zero3_offload moves GPU weights into CPU memory, and this machine has no GPU. Launch with "
            "accelerate_configs/cpu.yaml, or zero2/zero3 with --multi_gpu --num_processes N and ACCELERATE_USE_CPU=true."
        )
    if not cuda and os.environ.get("ACCELERATE_MIXED_PRECISION", "no") != "no":
        # The shipped accelerate configs ask for bf16, which CPUs run slowly and tiny models badly.
        os.environ["ACCELERATE_MIXED_PRECISION"] = "no"


def check_output_dir(cfg: RecoveryConfig) -> bool:
    """True when ``output_dir`` holds this same run (resume it); refuse one that holds a different run or evaluation,
    or this same run, diverged.

    With ``overwrite=true`` a different run is started over (False), and a different evaluation re-evaluated.
    """
    out = Path(cfg.output_dir)
    same_run = reuse_or_refuse(out, to_dict(cfg), "a recovery run", cfg.overwrite, ignore=RELAUNCH_FREE) == "reuse"
    failed = failure(out) if same_run else None
    if failed:
        # Refused, not resumed: the same settings from its last checkpoint would most likely diverge again.
        resume = f"resume from {failed['last_checkpoint']}" if failed.get("last_checkpoint") else "start over"
        raise ConfigError(
            f"{out} holds this run, and its training diverged at step {failed['step']}: {failed['reason']}. "
            "Change the setting that caused it and pass overwrite=true to start over; to retry these same settings "
            f"(and {resume}), delete {out / FAILED_FILE}."
        )
    if same_run and cfg.evaluate:
        reuse_or_refuse(out / EVAL_DIR, to_dict(cfg.eval), "an evaluation", cfg.overwrite, ignore=GENERATION_ONLY)
    return same_run
