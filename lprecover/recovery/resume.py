"""What a run resumed from a checkpoint carries over, so its record reads as one uninterrupted run.

The Trainer restores the optimizer, schedule, data position and log history from a checkpoint, but three counters
start again from zero in the resumed process, and the run's record would describe only the part after the resume:

- training tokens (``num_tokens``, the budget ``lprecover compare`` reports): TRL counts them in the trainer,
  not in the saved state;
- the mean training loss (``train_loss``): the Trainer averages the steps of this launch only;
- the wall-clock seconds (``train_runtime``): the Trainer times this launch only.

``ContinueCounters`` takes the first two from the checkpoint's log history, whose last entry is at the checkpoint's
step (a log is forced at every step that saves a checkpoint), and the seconds from what it stores in the
checkpoint's trainer state. The seconds count the training of the launches up to their last checkpoint: what a
killed launch spent after it is not in the model.
"""

import time

from transformers import TrainerCallback

STATE_KEY = "lprecover_counters"  # an entry of the trainer state's ``stateful_callbacks``, saved in each checkpoint


def history_totals(log_history: list[dict], step: int) -> tuple[float | None, float]:
    """The training tokens and the summed per-step loss logged up to ``step``.

    Each logged ``loss`` is the mean over the steps since the previous log, so it counts that many times.

    Returns:
        ``(tokens, loss_sum)``; tokens is None when no log counted them.
    """
    tokens, loss_sum, previous = None, 0.0, 0
    for entry in log_history:
        if entry.get("step", 0) > step:
            break
        if "num_tokens" in entry:
            tokens = entry["num_tokens"]
        if "loss" in entry:
            loss_sum += entry["loss"] * (entry["step"] - previous)
            previous = entry["step"]
    return tokens, loss_sum


class ContinueCounters(TrainerCallback):
    """Continue the token count, the mean training loss and the training seconds across a resume.

    Args:
        trainer: the Trainer (TRL's counts its tokens in ``_total_train_tokens``).
    """

    def __init__(self, trainer):
        self.trainer = trainer
        self.resumed_at, self.loss_sum, self.seconds, self.start = 0, 0.0, 0.0, time.time()

    def on_train_begin(self, args, state, control, **kwargs):
        self.start, self.resumed_at = time.time(), state.global_step
        if not state.global_step:
            return
        tokens, self.loss_sum = history_totals(state.log_history, state.global_step)
        self.seconds = (state.stateful_callbacks or {}).get(STATE_KEY, {}).get("train_seconds", 0.0)
        if tokens is not None and hasattr(self.trainer, "_total_train_tokens"):
            self.trainer._total_train_tokens = int(tokens)

    def elapsed(self) -> float:
        """The training seconds so far, the launches before this resume included."""
        return self.seconds + time.time() - self.start

    def on_step_end(self, args, state, control, **kwargs):
        if control.should_save:
            control.should_log = True  # the checkpoint's log history then ends at its step: tokens and loss to there
            state.stateful_callbacks[STATE_KEY] = {"train_seconds": self.seconds + time.time() - self.start}

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not self.resumed_at or not logs or "train_loss" not in logs:
            return
        # The final log: the Trainer's figures cover the steps since the resume only.
        steps, this_launch = state.global_step, state.global_step - self.resumed_at
        total = self.seconds + logs.get("train_runtime", 0.0)
        fixed = {"train_loss": (self.loss_sum + logs["train_loss"] * this_launch) / max(steps, 1)}
        if total > 0:
            samples = args.train_batch_size * args.gradient_accumulation_steps * args.world_size * steps
            fixed |= {
                "train_runtime": round(total, 4),
                "train_samples_per_second": round(samples / total, 3),
                "train_steps_per_second": round(steps / total, 3),
            }
        fixed = {k: v for k, v in fixed.items() if k in logs}
        logs.update(fixed)
        if state.log_history and "train_loss" in state.log_history[-1]:
            state.log_history[-1].update(fixed)


def train_seconds(trainer) -> float | None:
    """The wall-clock training seconds so far (across resumes), or None without ``continue_counters``."""
    found = [c for c in trainer.callback_handler.callbacks if isinstance(c, ContinueCounters)]
    return found[0].elapsed() if found else None


def continue_counters(trainer) -> None:
    """Make ``trainer``'s record continue its checkpoint's counters when it resumes (see the module docstring)."""
    trainer.add_callback(ContinueCounters(trainer))
