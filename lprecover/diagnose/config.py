"""``lprecover diagnose``'s settings: one dataclass, every field declaring what it accepts."""

from dataclasses import dataclass
from pathlib import Path

from lprecover.config import declare
from lprecover.evaluation.config import EvalConfig
from lprecover.evaluation.tasks import check_task
from lprecover.modeling import ModelConfig
from lprecover.pruning.config import SOURCES, check_source

# Criteria whose per-layer scores need no training and leave the model as it was. Not ``selection`` (it scores
# the layers it is told), not ``laco`` (it merges layers in place and scores merges, not layers), and not ``sleb``
# by default: with one layer removed, its first round ranks the layers exactly as ``ppl`` does (it may be asked for).
FIDELITY_CRITERIA = ("shortgpt", "angular", "magnitude_l1", "magnitude_l2", "taylor", "ppl", "sleb", "tail", "random")
DEFAULT_CRITERIA = [c for c in FIDELITY_CRITERIA if c != "sleb"]


@dataclass
class DiagnoseCommand:
    """``lprecover diagnose``: which model, what to measure, and where.

    Model and tasks: ``model``, the reasoning ``task`` and knowledge ``control`` (None: the model's default
    evaluation tasks, first and second), ``eval.*`` as ``lprecover eval`` (only its sequential curve is run).
    Sweep: ``layers`` (None: all) every ``stride``-th, and with ``pairs`` each swept layer with the next;
    ``generation`` false measures the NLL damage alone.
    NLL damage: ``traces`` (None: the model's own records at the largest budget), ``num_traces``,
    ``trace_max_tokens``, ``nll_batch_size``. Fidelity: ``criteria`` scored on ``calibration`` data.
    Swap: the model against ``swap_layers`` (itself with those layers removed) or the checkpoint ``swap_with``.
    """

    model: ModelConfig = declare(
        help="The model to diagnose (model=NAME picks a preset).", default_factory=ModelConfig
    )
    eval: EvalConfig = declare(
        help="Generation settings, as lprecover eval's eval.* keys.", default_factory=EvalConfig
    )
    task: str | None = declare(None, help="Reasoning task; None: the model's first default evaluation task.")
    control: str | None = declare(
        None, help="Knowledge control task; None: the model's second default task (none: no knowledge measure)."
    )
    layers: list[int] | None = declare(
        None, help="Layers to remove one at a time; None: all.", ge=0, nonempty=True, unique=True
    )
    stride: int = declare(1, help="Sweep every stride-th of the layers (from the first).", ge=1)
    pairs: bool = declare(False, help="Also remove each contiguous pair (i, i+1) of swept layers i, all measures.")
    generation: bool = declare(True, help="Measure reasoning and knowledge damage (false: the NLL damage only).")
    traces: str | None = declare(
        None, help="jsonl of reference traces; None: the model's own sequential records at its largest budget."
    )
    num_traces: int = declare(64, help="Reference traces scored.", ge=1)
    trace_max_tokens: int = declare(512, help="Tokens per trace (thinking cut from its end to fit).", ge=8)
    nll_batch_size: int = declare(8, help="Traces per forward pass of the NLL sweep.", ge=1)
    criteria: list[str] = declare(
        default_factory=lambda: list(DEFAULT_CRITERIA),
        help=f"Pruning criteria whose scores are compared with the damage: {', '.join(FIDELITY_CRITERIA)}.",
        choices=list(FIDELITY_CRITERIA),
        unique=True,
    )
    calibration: str = declare("auto", help=f"Calibration data of the criteria: {', '.join(SOURCES)} or hf:DATASET.")
    calibration_path: str | None = declare(None, help="Local file for the calibration source.")
    calibration_samples: int = declare(32, help="Calibration texts.", ge=1)
    calibration_seq_len: int = declare(256, help="Tokens per calibration text.", ge=8)
    swap_layers: list[int] | None = declare(
        None, help="Think/answer swap against the model with these layers removed.", ge=0, nonempty=True, unique=True
    )
    swap_with: str | None = declare(None, help="Think/answer swap against this checkpoint (same tokenizer).")
    output_dir: str = declare(
        "", help="Folder for diagnosis.json, report.md, figures and per-layer results.", output_dir=True
    )
    overwrite: bool = declare(False, help="Start over in an output_dir that holds a diagnosis with other settings.")

    def __post_init__(self):
        if not self.output_dir:
            raise ValueError("output_dir is required, e.g. output_dir=runs/diagnose.")
        for key in ("task", "control"):
            if getattr(self, key) is not None:
                check_task(getattr(self, key), key)
        if self.eval.tasks is not None or self.eval.parallel_tasks is not None:
            raise ValueError("diagnose reads its tasks from task= and control=, not eval.tasks; unset eval.tasks.")
        if self.eval.engine != "hf":
            raise ValueError(
                "diagnose generates with the transformers model it prunes in memory; eval.engine=vllm is not "
                "supported here (set eval.engine=hf)."
            )
        if self.task is not None and self.task == self.control:
            raise ValueError(f"task and control are both '{self.task}'; the control must be another task.")
        check_source(self.calibration)
        for key in ("traces", "calibration_path"):
            value = getattr(self, key)
            if value and not Path(value).is_file():
                raise ValueError(f"{key} '{value}' is not a file.")
        if self.swap_layers and self.swap_with:
            raise ValueError("Give swap_layers or swap_with, not both: the swap compares the model with one other.")
        if self.swap_with and not self.generation:
            raise ValueError("The swap generates; it needs generation=true.")
