"""The evaluation's settings (``eval.*``): a light module, read by every command that evaluates, that imports no
model code (tasks are checked against their YAML files, ``lprecover.evaluation.task_specs``)."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lprecover.config import declare
from lprecover.evaluation.task_specs import add_task_files, get_spec

ENGINES = ("hf", "vllm")


@dataclass
class EvalConfig:
    """What to evaluate and how.

    Tasks: ``tasks`` (None: the model's registered defaults, GSM8K for a model no plugin knows), ``num_problems``
    each, local files in ``paths``, more tasks from the YAML ``task_files`` (``lprecover.evaluation.task_specs``). Sequential: thinking ``budgets`` (None: each task's defaults), greedy unless ``seq_temperature``,
    ``num_waits`` extensions. Parallel: ``n_samples`` per problem at ``temperature``/``top_p`` within
    ``parallel_budget`` thinking tokens, reported at ``k``. Statistics: ``bootstrap`` resamples over problems.
    """

    tasks: list[str] | None = declare(
        None, help="Task names; None picks by model (an empty list is refused).", nonempty=True, unique=True
    )
    num_problems: int = declare(100, help="Problems per task.", ge=1)
    paths: dict[str, str] = declare(default_factory=dict, help="Local jsonl per task, e.g. {gsm8k: FILE}.")
    task_files: list[str] = declare(
        default_factory=list, help="Task YAML files to add (name, kind, path or hub, fields); eval.tasks names them."
    )
    sequential: bool = declare(True, help="Run the budget-forced sequential curve.")
    budgets: list[int] | None = declare(
        None,
        help="Thinking budgets in tokens, increasing (a task with fixed_budgets, e.g. facts, keeps its own).",
        ge=1,
        nonempty=True,
        unique=True,
    )
    seq_temperature: float = declare(0.0, help="Sampling temperature of the sequential curve (0 = greedy).", ge=0)
    seq_samples: int = declare(
        1, help="Sequential samples per problem and budget, averaged (the seed repository's 3 seeds: 3).", ge=1
    )
    num_waits: int = declare(0, help="Times an early end of thinking is replaced by wait_text.", ge=0)
    wait_text: Any = declare("Wait", help="Text (or a list, used in turn) that asks the model to keep thinking.")
    answer_max_tokens: int | None = declare(
        None, help="Cap on the answer phase after thinking; None: the task's (1024+ on real tasks).", ge=1
    )
    parallel: bool = declare(True, help="Run the parallel (pass@k / maj@k) curve.")
    parallel_tasks: list[str] | None = declare(
        None, help="Tasks of the parallel curve; None: the same as tasks.", nonempty=True, unique=True
    )
    n_samples: int = declare(8, help="Samples per problem for the parallel curve.", ge=1)
    k: list[int] | None = declare(
        None,
        help="k values, increasing, each at most n_samples; None: powers of two up to n_samples.",
        ge=1,
        nonempty=True,
        unique=True,
    )
    parallel_budget: int | None = declare(
        None, help="Thinking budget when sampling, in tokens; None: the largest budget.", ge=1
    )
    temperature: float = declare(0.8, help="Temperature of the parallel samples (0 = greedy).", ge=0)
    top_p: float = declare(0.95, help="Nucleus sampling of the parallel samples.", gt=0, le=1)
    system_prompt: str | None = declare(None, help="Optional system message, the same for every model.")
    batch_size: int = declare(64, help="Sequences generated together.", ge=1)
    one_pass: bool = declare(
        True,
        help="Generate the sequential curve's thinking once, to the largest budget, and take each smaller "
        "budget's as its prefix (the same records as generating each budget on its own, in fewer tokens).",
    )
    reuse_cache: bool = declare(
        True,
        help="transformers engine, without num_waits: each answer phase continues its thinking pass's KV "
        "cache instead of re-reading its prompt and thinking (the same records up to floating-point ties; "
        "false is the check).",
    )
    engine: str = declare("hf", help="hf (transformers, CPU/GPU) or vllm (the vllm extra).", choices=ENGINES)
    vllm_tensor_parallel_size: int = declare(1, help="vLLM: GPUs one model is sharded over.", ge=1)
    vllm_kwargs: dict[str, Any] = declare(
        default_factory=dict, help="vLLM: extra LLM(...) arguments, e.g. {enforce_eager: true}."
    )
    seed: int = declare(0, help="Sampling and bootstrap seed.", ge=0)
    bootstrap: int = declare(1000, help="Bootstrap resamples for confidence intervals.", ge=1)

    def __post_init__(self):
        add_task_files(self.task_files)  # before the names are checked: they may name these files' tasks
        for task in self.tasks or []:
            get_spec(task, "eval.tasks")
        for task in self.parallel_tasks or []:
            get_spec(task, "eval.parallel_tasks")
        if self.budgets is not None:
            _check_increasing("eval.budgets", self.budgets, "positive token counts")
        if self.seq_samples > 1 and self.seq_temperature == 0:
            raise ValueError("eval.seq_samples > 1 repeats greedy decoding; set eval.seq_temperature above 0.")
        if self.k is not None:
            _check_increasing("eval.k", self.k, "sample counts")
            too_big = [k for k in self.k if k > self.n_samples]
            if too_big:
                raise ValueError(
                    f"eval.k {too_big} must lie in 1..n_samples ({self.n_samples}); raise eval.n_samples."
                )
        waits = self.waits()
        if not waits or not all(isinstance(w, str) and w for w in waits):
            raise ValueError(f"eval.wait_text must be a non-empty string or a list of them, got {self.wait_text!r}.")
        if not (self.sequential or self.parallel):
            raise ValueError("Nothing to do: eval.sequential and eval.parallel are both false.")
        for task, path in self.paths.items():
            get_spec(task, f"eval.paths.{task}")
            if not Path(path).is_file():
                raise ValueError(f"eval.paths.{task}: no such file '{path}'.")

    def ks(self) -> list[int]:
        return self.k or [2**i for i in range(self.n_samples.bit_length()) if 2**i <= self.n_samples]

    def waits(self) -> list[str]:
        return [self.wait_text] if isinstance(self.wait_text, str) else list(self.wait_text or [])


# Settings of how records are generated that do not change them: a relaunch may change these and still resume.
GENERATION_ONLY = ("one_pass", "reuse_cache")


def _check_increasing(name: str, values, what: str) -> None:
    """Refuse a list that is empty, holds a non-positive or non-integer value, or is not strictly increasing."""
    if not values or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in values):
        raise ValueError(f"{name} must be positive {what}, got {list(values or [])}.")
    if list(values) != sorted(set(values)):
        raise ValueError(
            f"{name} must be increasing with no repeats, got {list(values)}; write {sorted(set(values))}."
        )
