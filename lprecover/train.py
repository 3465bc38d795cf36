"""Recover a layer-pruned model, then (optionally) measure whether its test-time scaling came back.

    accelerate launch lprecover/train.py recipe=lora_longcot
    accelerate launch --config_file accelerate_configs/zero3.yaml lprecover/train.py recipe=distill model=qwen3_8b \\
        data=s1k prune.method=shortgpt prune.n_layers=2
    lprecover train recipe=sft_longcot student=runs/pruned evaluate=true     (the same, in one process)

Recipes live in recipes/; any key can be overridden as key=value. Relaunching the same command with the same
output_dir continues from the last complete checkpoint (resume=auto).
"""

import os
import sys
from dataclasses import replace

if __package__ in (None, ""):  # run as a script (accelerate launch): keep lprecover/ itself off the import path
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _here]

import json
from pathlib import Path

from transformers import set_seed

from lprecover.atomic import exclusive_output
from lprecover.command import run
from lprecover.config import load_config, recipe_choices, save_config, to_dict, valid_keys
from lprecover.evaluation.records import read_samples
from lprecover.launch import distributed_state
from lprecover.log import get_logger
from lprecover.pruning.prune import prune_source
from lprecover.recovery.checks import check_models, check_output_dir, check_strategy
from lprecover.recovery.compute import compute_record, profile
from lprecover.recovery.data import check_rows, load_training_data
from lprecover.recovery.evaluate import evaluate_run, evaluation_done
from lprecover.recovery.methods import build_trainer
from lprecover.recovery.models import student_model_config
from lprecover.recovery.outputs import (
    EVAL_DIR,
    METRICS_FILE,
    PRUNED_DIR,
    TRAINER_STATE,
    is_finished,
    last_checkpoint,
    mark_complete_checkpoints,
    progress_eval_dir,
    progress_model_dir,
    recovery_record,
    remove_partial_checkpoints,
    save_final,
    save_progress_models,
    start_fresh,
    write_json,
)
from lprecover.recovery.recipe import RecoveryConfig
from lprecover.tracking import finish_run, log_evaluation, resolve_report_to, start_run

logger = get_logger(__name__)


CONFIG = RecoveryConfig  # the keys `--help` lists


def help_text() -> str:
    return f"{__doc__}\nrecipes: {', '.join(recipe_choices())}\nkeys: {', '.join(valid_keys(RecoveryConfig))}"


def main(argv: list[str]) -> int:
    """Run the command on its ``key=value`` arguments (``lprecover.command.run`` adds ``--help`` and error lines)."""
    cfg = load_config(RecoveryConfig, argv, recipe_key="recipe")
    with exclusive_output(cfg.output_dir):  # a second launch into the same run folder is refused, not interleaved
        return recover(cfg)


def recover(cfg: RecoveryConfig) -> int:
    """Run one recovery as ``cfg`` says, from the checks to the evaluation; ``lprecover study`` calls it per recipe."""
    # Every check that needs no weights: nothing is written before these pass.
    check_strategy(cfg)
    check_models(cfg)
    same_run = check_output_dir(cfg)
    out = Path(cfg.output_dir)
    # Points along training (evaluate_at) evaluate the sequential curves, which the recovery score reads.
    along = replace(cfg, eval=replace(cfg.eval, parallel=False))
    evals = [(cfg, out / EVAL_DIR)] + [(along, out / progress_eval_dir(s)) for s in cfg.progress_steps()]
    if same_run and is_finished(out) and all(evaluation_done(c, e) for c, e in evals):
        logger.info("%s already holds this run, finished; skipping training (and evaluation).", out)
        return 0
    state = distributed_state(cfg.launch_timeout_minutes)
    set_seed(cfg.train.seed)

    # Data: built once per spec and cached; every row checked for what the method reads.
    with state.main_process_first():
        dataset = load_training_data(cfg.data, student_model_config(cfg))
    check_rows(dataset, cfg.method, cfg.data.dataset or f"the built {cfg.data.source} data")

    # The student: an already pruned checkpoint, or the source pruned here (once, by the main process).
    with state.main_process_first():
        if state.is_main_process:
            start_fresh(out, keep=same_run)
            save_config(cfg, out)
        student_dir = cfg.student or prune_source(cfg.model, cfg.prune, out / PRUNED_DIR, cfg.overwrite)

    report_to = resolve_report_to(cfg.report_to)
    if report_to == "wandb" and state.is_main_process:
        start_run(
            out, cfg.run_name(), cfg.run_group(), cfg.run_tags(), to_dict(cfg), cfg.wandb.project, cfg.wandb.entity
        )
    if not is_finished(out):
        trainer = build_trainer(cfg, student_dir, dataset, out, report_to)
        mark_complete_checkpoints(trainer)
        spent = profile(trainer, cfg.method, bool(cfg.distill.teacher_logits))  # what compute_record counts

        def record(st):
            return recovery_record(cfg, student_dir, st, out) | {"compute": compute_record(trainer, spent, st)}

        save_progress_models(trainer, out, cfg.progress_steps(), record)
        if state.is_main_process:
            remove_partial_checkpoints(out)
        state.wait_for_everyone()
        resume = {"auto": last_checkpoint(out), "never": None}.get(cfg.resume, cfg.resume)
        if resume:
            step = json.loads((Path(resume) / TRAINER_STATE).read_text())["global_step"]
            logger.info("Resuming from %s at step %d of %d", resume, step, cfg.train.max_steps)
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        save_final(trainer, out, record(trainer.state))
        if state.is_main_process:
            write_json(out / METRICS_FILE, trainer.state.log_history)
    else:
        logger.info("%s already holds the recovered model; skipping training.", out)

    if not state.is_main_process:
        return 0  # the evaluation runs on the main process alone; the others hold no barrier open for its hours
    if cfg.evaluate:
        result = evaluate_run(cfg, out, out / EVAL_DIR)
        if report_to == "wandb":
            log_evaluation(result["curves"], result["summary"], read_samples(out / EVAL_DIR))
        for step in cfg.progress_steps():
            evaluate_run(along, out, out / progress_eval_dir(step), progress_model_dir(step))
    finish_run()
    return 0


if __name__ == "__main__":
    sys.exit(run("train", sys.modules[__name__]))
