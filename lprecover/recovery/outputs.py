"""The layout of a recovery run folder, and writing it whole or not at all.

OUT/config.yaml       the resolved config (a relaunch with another config is refused)
OUT/pruned/           the pruned starting point (when the run pruned), with prune_scores.json
OUT/checkpoint-N/     Trainer checkpoints on the train.save_steps schedule; resume=auto continues the last complete
                      one (checkpoint_complete.json, written once every process has saved it)
OUT/model/            final weights: full safetensors, or LoRA adapters over pruned/; recovery.json
OUT/model-step-N/     the model at step N of training, for each step ``evaluate_at`` names (same layout as model/)
OUT/eval-step-N/      its evaluation
OUT/metrics.json      the training log history
OUT/eval/             post-training evaluation (evaluate=true)
OUT/failed.json       only when training diverged (a non-finite loss or gradient): the step and the reason; no
                      model/ is written, and a relaunch with the same settings is refused
"""

import json
import os
import re
import shutil
from pathlib import Path

from lprecover.atomic import publish_folder, sync_tree, write_file
from lprecover.log import get_logger
from lprecover.modeling import ModelConfig, load_model, load_tokenizer

logger = get_logger(__name__)

PRUNED_DIR, MODEL_DIR, EVAL_DIR = "pruned", "model", "eval"
METRICS_FILE, RECOVERY_FILE, WANDB_FILE = "metrics.json", "recovery.json", "wandb_run.json"
TRAINER_STATE, FAILED_FILE = "trainer_state.json", "failed.json"
COMPLETE_FILE = "checkpoint_complete.json"  # ours: every file of the checkpoint, with its size
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def write_json(path: Path, obj) -> None:
    write_file(path, json.dumps(obj, indent=2, default=str))


def _checkpoints(out: Path) -> list[tuple[int, Path]]:
    found = [(int(m.group(1)), p) for p in out.glob("checkpoint-*") if (m := _CHECKPOINT.match(p.name))]
    return sorted(found)


def mark_complete(checkpoint: Path, step: int) -> None:
    """Flush ``checkpoint`` to disk and record every file in it with its size, as ``checkpoint_complete.json``."""
    sync_tree(checkpoint)
    found = [p for p in sorted(checkpoint.rglob("*")) if p.is_file() and p.name != COMPLETE_FILE]
    files = {str(p.relative_to(checkpoint)): p.stat().st_size for p in found}
    write_json(checkpoint / COMPLETE_FILE, {"global_step": step, "files": files})


def is_complete(checkpoint: Path) -> bool:
    """Whether ``checkpoint`` was marked complete and every file the mark lists is still there, at its size."""
    try:
        files = json.loads((checkpoint / COMPLETE_FILE).read_text())["files"]
        return bool(files) and all((checkpoint / name).stat().st_size == size for name, size in files.items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def last_checkpoint(out: Path) -> Path | None:
    """The newest checkpoint that is complete (``is_complete``), if any."""
    complete = [p for _, p in _checkpoints(out) if is_complete(p)]
    return complete[-1] if complete else None


def _remove_checkpoint(path: Path) -> None:
    # Unmarked first: a crash halfway through the removal leaves nothing that looks complete.
    (path / COMPLETE_FILE).unlink(missing_ok=True)
    shutil.rmtree(path, ignore_errors=True)


def remove_partial_checkpoints(out: Path) -> None:
    """Delete checkpoints that are not complete (a crash mid-save, a truncated file), so nothing resumes from one."""
    for _, p in _checkpoints(out):
        if not is_complete(p):
            logger.warning("Removing %s: it was interrupted while being written, or a file in it has changed.", p)
            _remove_checkpoint(p)


def mark_complete_checkpoints(trainer) -> None:
    """Make ``trainer`` mark each checkpoint complete once every process has saved it (``resume=auto`` trusts only
    marked ones), and delete old checkpoints beyond ``save_total_limit`` only after a newer one is marked.

    The Trainer's own rotation is switched off: it runs before ``on_save``, so it could delete the last complete
    checkpoint while the new one is still unmarked.
    """
    # Imported here: compare and export read this module's folder layout, and need not load transformers for it.
    from accelerate import PartialState
    from transformers import TrainerCallback

    keep = trainer.args.save_total_limit

    class MarkCompleteCheckpoints(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            PartialState().wait_for_everyone()  # every process has written its shards, optimizer and RNG states
            if state.is_world_process_zero:
                out = Path(args.output_dir)
                mark_complete(out / f"checkpoint-{state.global_step}", state.global_step)
                complete = [p for _, p in _checkpoints(out) if is_complete(p)]
                for old in complete[:-keep] if keep else []:
                    _remove_checkpoint(old)

    trainer.add_callback(MarkCompleteCheckpoints())
    trainer.args.save_total_limit = None


def is_finished(out: Path) -> bool:
    return (out / MODEL_DIR / RECOVERY_FILE).exists()


def failure(out: Path) -> dict | None:
    """What ``failed.json`` says about a run whose training diverged (step, reason, message); None for any other."""
    try:
        return json.loads((Path(out) / FAILED_FILE).read_text())
    except (OSError, ValueError):
        return None


def start_fresh(out: Path, keep: bool) -> None:
    """Empty ``out`` unless it holds this same run (``keep``), which is then resumed."""
    if out.exists() and not keep:
        for p in out.iterdir():
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    out.mkdir(parents=True, exist_ok=True)


def recovery_record(cfg, student_dir: str, state, out: Path) -> dict:
    """What ``model/recovery.json`` says about how the model was made (no secrets: settings and paths only)."""
    student = Path(student_dir).resolve()
    inside = student.is_relative_to(out.resolve())
    losses = [h["loss"] for h in state.log_history if "loss" in h]
    return {
        "recipe": cfg.recipe,
        "method": cfg.method,
        "trainable": cfg.trainable,
        # Relative to the run folder when it lives there, so a moved run folder still loads.
        "student": os.path.relpath(student, out.resolve()) if inside else str(student),
        "source_model": cfg.model.name_or_path,
        "prune": cfg.prune_spec(),
        "run_name": cfg.run_name(),
        "group": cfg.run_group(),
        "steps": state.global_step,
        "final_loss": losses[-1] if losses else None,
    }


def progress_model_dir(step: int) -> str:
    return f"{MODEL_DIR}-step-{step}"


def progress_eval_dir(step: int) -> str:
    return f"{EVAL_DIR}-step-{step}"


def progress_steps_saved(out: Path) -> list[int]:
    """The steps of the complete ``model-step-N`` folders in a run folder."""
    found = [p.name.rsplit("-", 1)[-1] for p in Path(out).glob(f"{MODEL_DIR}-step-*")]
    return sorted(
        int(n) for n in found if n.isdigit() and (Path(out) / progress_model_dir(int(n)) / RECOVERY_FILE).exists()
    )


def save_progress_models(trainer, out: Path, steps: list[int], record) -> None:
    """Make ``trainer`` save its model to ``out/model-step-N`` (as ``save_final`` does) at each of ``steps``.

    ``record(state)`` gives the ``recovery.json`` of that model. A step whose folder is already complete (a resumed
    run) is not saved again; a crash while saving leaves only the temporary folder, which the next save replaces.
    The model is saved when that step's numbers are logged, after ``StopOnDivergence`` (added before this callback)
    has checked them: a diverged model is never saved.
    """
    from transformers import TrainerCallback

    wanted = set(steps)

    class SaveProgress(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step in wanted:
                control.should_log = True

        def on_log(self, args, state, control, logs=None, **kwargs):
            step = state.global_step
            if step in wanted and not (out / progress_model_dir(step) / RECOVERY_FILE).exists():
                rec = record(state)
                rec["num_tokens"] = getattr(trainer, "_total_train_tokens", None)
                save_final(trainer, out, rec, progress_model_dir(step))

    trainer.add_callback(SaveProgress())


def save_final(trainer, out: Path, record: dict, name: str = MODEL_DIR) -> Path:
    """Save the trained weights (and tokenizer) to ``out/NAME`` (default ``model``), whole or not at all.

    Every process calls this: under ZeRO-3 the weights are gathered from all of them.
    """
    final, tmp = out / name, out / f".{name}.tmp"  # one name every process agrees on
    accelerator = trainer.accelerator
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
    accelerator.wait_for_everyone()
    trainer.save_model(str(tmp))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json(tmp / RECOVERY_FILE, record)
        publish_folder(tmp, final)
        logger.info("Saved the recovered model to %s", final)
    accelerator.wait_for_everyone()
    return final


def load_recovered(out: Path, device: str | None = None, name: str = MODEL_DIR):
    """Load a run's final model (or ``name``, e.g. ``model-step-N``) as a plain transformers model (LoRA adapters
    merged in), with its tokenizer."""
    model_dir = Path(out) / name
    record = json.loads((model_dir / RECOVERY_FILE).read_text())
    tokenizer = load_tokenizer(ModelConfig(name_or_path=str(model_dir)))
    if (model_dir / "adapter_config.json").exists():
        from peft import PeftModel

        base = load_model(ModelConfig(name_or_path=str(Path(out) / record["student"])))
        model = PeftModel.from_pretrained(base, model_dir).merge_and_unload()
    else:
        model = load_model(ModelConfig(name_or_path=str(model_dir)))
    if device:
        model.to(device)
    return model.eval(), tokenizer
