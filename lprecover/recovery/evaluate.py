"""Post-training evaluation of a recovery run: the same scaling curves as ``lprecover eval``, on the final model."""

from pathlib import Path

import yaml

from lprecover.config import CONFIG_FILE, atomic_write_text, to_dict
from lprecover.evaluation.run import run_eval
from lprecover.modeling import default_device
from lprecover.recovery.checks import student_model_config
from lprecover.recovery.outputs import load_recovered
from lprecover.recovery.recipe import RecoveryConfig


def evaluate_run(cfg: RecoveryConfig, out: Path, eval_dir: Path) -> dict:
    """Evaluate ``out``'s recovered model into ``eval_dir`` (resuming what is there); returns curves and summary."""
    model, tokenizer = load_recovered(out, default_device())
    saved = eval_dir / CONFIG_FILE
    result = run_eval(
        model,
        tokenizer,
        cfg.eval,
        eval_dir,
        student_model_config(cfg),
        title=cfg.run_name(),
        on_start=lambda: atomic_write_text(saved, yaml.safe_dump(to_dict(cfg.eval), sort_keys=False)),
    )
    return result
