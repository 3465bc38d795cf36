"""A loss or gradient norm that stops being finite ends the run: no model is saved from it, and the folder says so.

Every recovery trainer carries ``StopOnDivergence`` (``methods.build_trainer``). It reads the numbers the Trainer
logs (the loss summed over the steps since the last log, the gradient norm, the final ``train_loss``): under data
parallelism or ZeRO these are already reduced across processes, so every process sees the same value and stops at
the same step (a per-process check could stop one process while the others wait for it at the next collective).
Two things make the logs enough:

- a log is forced at every step that saves something (a checkpoint, the last step), so the numbers are checked
  before anything is written and a diverged run leaves no checkpoint of its diverged weights;
- the Trainer's ``logging_nan_inf_filter`` is switched off: it replaces a non-finite step's loss by the running mean,
  which hides the divergence (a run whose every loss is NaN logs a loss of 0).

On the first non-finite number the callback writes ``failed.json`` in the run folder (step, reason, the last
checkpoint) and raises ``TrainingDiverged``, which ends ``trainer.train`` before anything else is saved or
evaluated. A relaunch of the same settings is then refused (``checks.check_output_dir``): it would diverge again.
"""

import math
from pathlib import Path

from transformers import ProgressCallback, TrainerCallback

from lprecover.config import ConfigError
from lprecover.recovery.outputs import FAILED_FILE, last_checkpoint, write_json

CHECKED = ("loss", "grad_norm", "train_loss")


class TrainingDiverged(ConfigError):
    """Training produced a non-finite loss or gradient norm.

    A ConfigError: the settings that cause it (learning rate, distillation temperature) are the user's to change,
    and the command line reports it, like any other wrong setting, as one sentence with exit code 2.
    """


def likely_causes(cfg) -> str:
    """The settings of ``cfg`` (a RecoveryConfig) that usually make training diverge, with their values."""
    causes = [f"a learning rate too high (train.learning_rate={cfg.train.learning_rate:g})"]
    if cfg.distills:
        causes.append(f"an extreme distill.temperature ({cfg.distill.temperature:g})")
    return ", or ".join(causes)


class StopOnDivergence(TrainerCallback):
    """Raise ``TrainingDiverged`` at the first non-finite loss or gradient norm logged, after recording it.

    Args:
        causes: the likely causes, in words, for the message.
        trainer: the Trainer, whose progress bar is closed before raising (so the message starts its own line).
    """

    def __init__(self, causes: str, trainer):
        self.causes, self.trainer = causes, trainer
        self.last_logged = 0

    def on_train_begin(self, args, state, control, **kwargs):
        self.last_logged = state.global_step  # a resumed run's first log covers the steps after its checkpoint

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save or state.global_step >= state.max_steps:
            control.should_log = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        values = {k: v for k, v in (logs or {}).items() if k in CHECKED and isinstance(v, (int, float))}
        first, step = self.last_logged + 1, state.global_step
        self.last_logged = step
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        # Under fp16 loss scaling an overflowing gradient only skips its step and lowers the scale: not a divergence.
        if not bad or (bad == ["grad_norm"] and self.trainer.accelerator.optimizer_step_was_skipped):
            return
        out = Path(args.output_dir)
        where = f"at step {step}" if first >= step else f"between steps {first} and {step}"
        others = ", ".join(f"{k} {v:.4g}" for k, v in values.items() if k != bad[0])
        reason = f"the {bad[0]} is {values[bad[0]]}" + (f" ({others})" if others else "")
        message = (
            f"training diverged {where}: {reason}. Usual causes: {self.causes}. No model was saved from it; "
            f"{out / FAILED_FILE} records the failure."
        )
        if state.is_world_process_zero:
            checkpoint = last_checkpoint(out)
            record = {
                "step": step,
                "first_step": first,
                "reason": reason,
                "logs": {k: str(v) for k, v in values.items()},  # "nan" and "inf" as text: JSON has neither
                "last_checkpoint": checkpoint.name if checkpoint else None,
                "message": message,
            }
            write_json(out / FAILED_FILE, record)
        for callback in self.trainer.callback_handler.callbacks:  # ProgressCallback closes its bar only at the end
            if isinstance(callback, ProgressCallback) and callback.training_bar is not None:
                callback.training_bar.close()
                callback.training_bar = None
        raise TrainingDiverged(message)


def stop_on_divergence(trainer, cfg) -> None:
    """Make ``trainer`` stop at the first non-finite loss or gradient norm it logs (see the module docstring).

    Args:
        cfg: the run's RecoveryConfig, whose settings the message names as likely causes.
    """
    trainer.args.logging_nan_inf_filter = False
    trainer.add_callback(StopOnDivergence(likely_causes(cfg), trainer))
