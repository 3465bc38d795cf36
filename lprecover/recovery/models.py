"""Which models a recovery run uses: the student's (tokenizer, chat template) and the distillation teacher's, as
model configs derived from the recipe, without loading anything."""

from dataclasses import replace

from lprecover.config import ConfigError
from lprecover.modeling import ModelConfig
from lprecover.recovery.recipe import RecoveryConfig
from lprecover.surgery import get_provenance


def student_model_config(cfg: RecoveryConfig) -> ModelConfig:
    """Where the student's tokenizer and chat template come from: ``student`` if given, else the source model."""
    return replace(cfg.model, name_or_path=cfg.student) if cfg.student else cfg.model


def teacher_model_config(cfg: RecoveryConfig, student_config=None) -> ModelConfig:
    """The distillation teacher: ``teacher`` if given, else the model the student was pruned from."""
    source = cfg.teacher
    if source is None and cfg.student:
        source = (get_provenance(student_config) or {}).get("source_model")
        if source is None:
            raise ConfigError(
                f"student '{cfg.student}' records no source model, so the teacher is unknown; pass teacher=PATH."
            )
    return replace(cfg.model, name_or_path=source or cfg.model.name_or_path)
