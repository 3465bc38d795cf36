"""Post-training evaluation of a recovery run: the same scaling curves as ``lprecover eval``, on the final model."""

import shutil
from pathlib import Path

from lprecover.config import reuse_or_refuse, save_settings, to_dict
from lprecover.evaluation.config import GENERATION_ONLY
from lprecover.evaluation.run import run_eval, saved_results
from lprecover.modeling import default_device
from lprecover.recovery.models import student_model_config
from lprecover.recovery.outputs import MODEL_DIR, load_recovered
from lprecover.recovery.recipe import RecoveryConfig


def evaluation_done(cfg: RecoveryConfig, eval_dir: Path) -> bool:
    """Whether ``eval_dir`` holds the finished evaluation ``cfg`` asks for (True when it asks for none)."""
    if not cfg.evaluate:
        return True
    verdict = reuse_or_refuse(eval_dir, to_dict(cfg.eval), "an evaluation", cfg.overwrite, ignore=GENERATION_ONLY)
    return verdict == "reuse" and saved_results(eval_dir) is not None


def evaluate_run(cfg: RecoveryConfig, out: Path, eval_dir: Path, model_name: str = MODEL_DIR) -> dict:
    """Evaluate ``out``'s recovered model (or ``out/model_name``) into ``eval_dir`` (resuming what is there);
    returns curves and summary.

    A finished evaluation with the same ``eval`` settings is returned as saved; other settings are refused, or with
    ``overwrite=true`` evaluated afresh.
    """
    settings = to_dict(cfg.eval)
    verdict = reuse_or_refuse(eval_dir, settings, "an evaluation", cfg.overwrite, ignore=GENERATION_ONLY)
    if verdict == "reuse" and (done := saved_results(eval_dir)):
        return done
    if verdict == "fresh" and eval_dir.exists():  # overwrite=true: old records must not mix into the new curves
        shutil.rmtree(eval_dir)
    model, tokenizer = load_recovered(out, default_device(), model_name)
    result = run_eval(
        model,
        tokenizer,
        cfg.eval,
        eval_dir,
        student_model_config(cfg),
        title=cfg.run_name(),
        on_start=lambda: save_settings(eval_dir, settings),
    )
    return result
