"""What a recovery recipe can say: the typed schema behind ``recipes/*.yaml`` and ``lprecover/train.py``.

A recipe names the recovery ``method`` (what the loss is) and what is ``trainable`` (all weights, LoRA adapters, or
the layers around the pruned gap). The model and data come from config groups (``model=``, ``data=``); the prune
spec from ``prune.*``, or ``student=PATH`` for a checkpoint that is already pruned.
"""

import importlib.util
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from data_prep.build import OrganismData
from data_prep.sources import SOURCES
from lprecover.evaluation.run import EvalConfig
from lprecover.modeling import ModelConfig
from lprecover.pruning.prune import PruneConfig
from lprecover.recovery.launch import DEFAULT_TIMEOUT_MINUTES, TIMEOUT_HELP
from lprecover.recovery.sft import TrainConfig
from lprecover.tracking import WandbSettings

METHODS = ("sft", "distill", "distill_hidden", "distill_onpolicy")
TRAINABLE = ("full", "lora", "partial")
DIVERGENCES = {"forward_kl": 0.0, "reverse_kl": 1.0, "jsd": None}  # name -> TRL generalized-JSD beta
HIDDEN_LOSSES = ("mse", "cosine")


@dataclass
class TrainData:
    """The training set, in the messages schema of ``lprecover data``.

    Either ``dataset`` (a folder written by ``lprecover data``, or a messages-schema ``.jsonl``), or a build spec:
    ``source`` (+ ``source_path`` / ``hub_id``), ``split``, ``max_length``, ``limit``, ``decontaminate``, which is
    built once with the model's tokenizer and cached.
    """

    dataset: str | None = field(
        default=None, metadata={"help": "Built folder or messages jsonl; when set, the build spec is ignored."}
    )
    source: str = field(default="organism", metadata={"help": f"Build from: {', '.join(SOURCES)}."})
    source_path: str | None = field(default=None, metadata={"help": "Local file of the source instead of the hub."})
    hub_id: str | None = field(default=None, metadata={"help": "Override the source's hub dataset id."})
    split: str = field(default="longcot", metadata={"help": "longcot (trace + answer) or short (answer only)."})
    max_length: int | None = field(default=None, metadata={"help": "Drop rows longer than this many tokens."})
    limit: int | None = field(default=None, metadata={"help": "Use only the first N source rows."})
    decontaminate: list[str] = field(default_factory=list, metadata={"help": "Evaluation tasks to hold out."})
    eval_paths: dict[str, str] = field(
        default_factory=dict, metadata={"help": "Local test files of those tasks, e.g. {gsm8k: test.jsonl}."}
    )
    organism: OrganismData = field(default_factory=OrganismData)

    def __post_init__(self):
        if self.split not in ("longcot", "short"):
            raise ValueError(f"data.split must be 'longcot' or 'short', got '{self.split}'.")
        if self.source not in SOURCES:
            raise ValueError(f"Unknown data.source '{self.source}'. Sources: {', '.join(SOURCES)}.")


@dataclass
class LoraSettings:
    """PEFT LoRA: rank ``r``, ``alpha``, ``dropout`` on ``target_modules`` ('all-linear': every linear but lm_head)."""

    r: int = field(default=16, metadata={"help": "Adapter rank."})
    alpha: int = field(default=32, metadata={"help": "Scaling numerator (scale = alpha / r)."})
    dropout: float = field(default=0.05, metadata={"help": "Dropout on the adapter input."})
    target_modules: list[str] | str = field(
        default="all-linear", metadata={"help": "'all-linear' or module name suffixes, e.g. [q_proj, v_proj]."}
    )

    def __post_init__(self):
        if self.r < 1 or self.alpha <= 0 or not 0 <= self.dropout < 1:
            raise ValueError("lora.r must be >= 1, lora.alpha > 0 and lora.dropout in [0, 1).")


@dataclass
class PartialSettings:
    """Partial-layer recovery: the ``width`` kept layers on each side of every removed gap train, with the final
    norm and ``lm_head``; everything else stays frozen."""

    width: int = field(default=1, metadata={"help": "Kept layers on each side of a gap that train."})

    def __post_init__(self):
        if self.width < 1:
            raise ValueError(f"partial.width must be at least 1, got {self.width}.")


@dataclass
class DistillSettings:
    """Distillation from the unpruned teacher.

    Logits: ``divergence`` (forward_kl, reverse_kl, or jsd with ``beta``) at ``temperature``, weighted ``kd_weight``,
    plus ``ce_weight`` times the cross-entropy on the data. Hidden states (``method=distill_hidden``): every kept
    student layer's output matches its original teacher layer, by ``hidden_loss``, weighted ``hidden_weight``.
    On-policy (``method=distill_onpolicy``): the student samples up to ``max_new_tokens`` at ``temperature`` and the
    teacher scores them (TRL's DistillationTrainer). Stored (``teacher_logits=DIR``, ``method=distill``): the loss
    reads the teacher's top-k log-probabilities from a store instead of running the teacher.
    """

    divergence: str = field(default="forward_kl", metadata={"help": f"One of: {', '.join(DIVERGENCES)}."})
    beta: float = field(default=0.5, metadata={"help": "Generalized JSD mixing weight (divergence=jsd)."})
    temperature: float = field(
        default=1.0, metadata={"help": "Softens both distributions; the loss is scaled by T^2."}
    )
    kd_weight: float = field(default=1.0, metadata={"help": "Weight of the logit divergence."})
    ce_weight: float = field(default=0.0, metadata={"help": "Weight of the cross-entropy on the data's tokens."})
    hidden_loss: str = field(default="mse", metadata={"help": "mse (scaled by the teacher's norm) or cosine."})
    hidden_weight: float = field(default=1.0, metadata={"help": "Weight of the hidden-state loss (distill_hidden)."})
    teacher_logits: str | None = field(
        default=None,
        metadata={
            "help": "method=distill: a store written by `lprecover teacher-logits` with this run's data and train "
            "settings; the loss reads the teacher's top-k log-probabilities from it and no teacher is loaded."
        },
    )
    max_new_tokens: int = field(default=256, metadata={"help": "On-policy: tokens the student generates."})
    use_vllm: bool = field(
        default=False,
        metadata={"help": "On-policy: the student generates with vLLM (TRL's use_vllm; the vllm extra, GPUs)."},
    )
    vllm: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "On-policy with use_vllm: TRL's vllm_* options without the prefix, e.g. {mode: server, "
            "server_base_url: 'http://host:8000'} or {mode: colocate, gpu_memory_utilization: 0.3}."
        },
    )

    def __post_init__(self):
        self._check_vllm()
        if self.divergence not in DIVERGENCES:
            raise ValueError(f"distill.divergence must be one of {', '.join(DIVERGENCES)}, got '{self.divergence}'.")
        if not 0 < self.beta < 1 and self.divergence == "jsd":
            raise ValueError(f"distill.beta must lie strictly between 0 and 1 for jsd, got {self.beta}.")
        if self.temperature <= 0:
            raise ValueError(f"distill.temperature must be positive, got {self.temperature}.")
        if min(self.kd_weight, self.ce_weight, self.hidden_weight) < 0:
            raise ValueError("distill.kd_weight, ce_weight and hidden_weight must not be negative.")
        if self.hidden_loss not in HIDDEN_LOSSES:
            raise ValueError(f"distill.hidden_loss must be one of {', '.join(HIDDEN_LOSSES)}.")

    def _check_vllm(self) -> None:
        if self.vllm and not self.use_vllm:
            raise ValueError("distill.vllm is set but distill.use_vllm is false; set distill.use_vllm=true to use it.")
        if not self.use_vllm:
            return
        from trl import DistillationConfig

        known = sorted(f.name[len("vllm_") :] for f in fields(DistillationConfig) if f.name.startswith("vllm_"))
        unknown = sorted(set(self.vllm) - set(known))
        if unknown:
            raise ValueError(f"Unknown distill.vllm keys {unknown}; TRL's vLLM options are: {', '.join(known)}.")

    def check_vllm_installed(self) -> None:
        """Refuse ``use_vllm`` in colocate mode (vLLM in this process) where vLLM is not installed."""
        if self.use_vllm and self.vllm.get("mode", "colocate") == "colocate" and not importlib.util.find_spec("vllm"):
            raise ValueError(
                "distill.use_vllm=true generates with vLLM in this process, and vLLM is not installed: "
                "pip install -e '.[vllm]' (on a GPU machine), or point distill.vllm.mode=server at a running "
                "`trl vllm-serve`."
            )

    def vllm_args(self) -> dict:
        """TRL's DistillationConfig fields for generation with vLLM (none unless ``use_vllm``)."""
        return {"use_vllm": True, **{f"vllm_{k}": v for k, v in self.vllm.items()}} if self.use_vllm else {}

    @property
    def jsd_beta(self) -> float:
        """TRL's generalized-JSD beta: 0 is forward KL, 1 reverse KL."""
        fixed = DIVERGENCES[self.divergence]
        return self.beta if fixed is None else fixed


@dataclass
class RecoveryConfig:
    """One recovery run.

    What: ``method`` and ``trainable`` (set by ``recipe=NAME``), with ``lora``, ``partial`` and ``distill`` settings.
    On what: ``model`` (the unpruned source), pruned by ``prune`` unless ``student`` is given; ``teacher`` for
    distillation (default: the unpruned source); ``data``.
    How: ``train`` (optimisation, checkpoints); ``report_to`` and ``wandb``; ``resume``; ``launch_timeout_minutes``.
    After: ``evaluate`` with the ``eval`` settings.
    """

    recipe: str | None = field(default=None, metadata={"help": "Recipe file in recipes/ (recipe=NAME)."})
    method: str = field(default="sft", metadata={"help": f"Recovery loss: {', '.join(METHODS)}."})
    trainable: str = field(default="full", metadata={"help": f"What trains: {', '.join(TRAINABLE)}."})
    model: ModelConfig = field(default_factory=ModelConfig)
    student: str | None = field(
        default=None, metadata={"help": "An already pruned checkpoint to recover (prune.* is then ignored)."}
    )
    teacher: str | None = field(
        default=None, metadata={"help": "Distillation teacher (default: the unpruned source model)."}
    )
    prune: PruneConfig = field(default_factory=PruneConfig)
    data: TrainData = field(default_factory=TrainData)
    train: TrainConfig = field(default_factory=TrainConfig)
    lora: LoraSettings = field(default_factory=LoraSettings)
    partial: PartialSettings = field(default_factory=PartialSettings)
    distill: DistillSettings = field(default_factory=DistillSettings)
    evaluate: bool = field(default=False, metadata={"help": "Evaluate the recovered model when training ends."})
    evaluate_at: list[float] = field(
        default_factory=list,
        metadata={
            "help": "Fractions of train.max_steps (e.g. [0.25,0.5]) at which the model is also saved "
            "(model-step-N/) and, with evaluate=true, evaluated (eval-step-N/): recovery against training tokens."
        },
    )
    eval: EvalConfig = field(default_factory=EvalConfig)
    report_to: str = field(
        default="auto",
        metadata={"help": "wandb, none, or auto (wandb; offline unless W&B credentials or WANDB_MODE are set)."},
    )
    wandb: WandbSettings = field(default_factory=WandbSettings)
    output_dir: str = field(default="", metadata={"help": "Run folder (default: runs/<run name>)."})
    resume: str = field(
        default="auto", metadata={"help": "auto (continue from the last checkpoint), never, or a checkpoint path."}
    )
    overwrite: bool = field(default=False, metadata={"help": "Replace an output_dir that holds a different run."})
    launch_timeout_minutes: float = field(default=DEFAULT_TIMEOUT_MINUTES, metadata={"help": TIMEOUT_HELP})

    def __post_init__(self):
        if self.launch_timeout_minutes <= 0:
            raise ValueError(f"launch_timeout_minutes must be positive, got {self.launch_timeout_minutes}.")
        if self.method not in METHODS:
            raise ValueError(f"Unknown method '{self.method}'. Methods: {', '.join(METHODS)}.")
        if self.trainable not in TRAINABLE:
            raise ValueError(f"Unknown trainable '{self.trainable}'. Choose one of: {', '.join(TRAINABLE)}.")
        if self.report_to not in ("auto", "wandb", "none"):
            raise ValueError(f"report_to must be auto, wandb or none, got '{self.report_to}'.")
        if self.resume not in ("auto", "never") and not Path(self.resume).is_dir():
            raise ValueError(f"resume must be auto, never, or an existing checkpoint folder; '{self.resume}' is none.")
        if self.distill.use_vllm and self.method != "distill_onpolicy":
            raise ValueError(
                f"distill.use_vllm is for on-policy distillation (recipe=distill_onpolicy); method {self.method} "
                "generates nothing during training."
            )
        self.distill.check_vllm_installed()
        if self.distill.teacher_logits and self.method != "distill":
            raise ValueError(
                f"distill.teacher_logits holds the teacher's output distributions, which method distill reads; method "
                f"{self.method} needs {'the teacher itself' if self.distills else 'no teacher'}: drop the key."
            )
        bad = [f for f in self.evaluate_at if not 0 < f < 1]
        if bad:
            raise ValueError(f"evaluate_at takes fractions of train.max_steps strictly between 0 and 1; got {bad}.")
        if not self.output_dir:
            self.output_dir = str(Path(os.environ.get("LPRECOVER_RUNS", "runs")) / self.run_name())

    def progress_steps(self) -> list[int]:
        """The optimizer steps ``evaluate_at`` names (each at least 1 and before the last step)."""
        steps = {min(self.train.max_steps - 1, max(1, round(f * self.train.max_steps))) for f in self.evaluate_at}
        return sorted(s for s in steps if s >= 1)

    @property
    def distills(self) -> bool:
        return self.method != "sft"

    def prune_spec(self) -> str:
        """Short name of what was removed, e.g. ``shortgpt2``, ``selection3-4`` or ``student-NAME``."""
        if self.student:
            return "student-" + Path(self.student.rstrip("/")).name
        if self.prune.method == "selection":
            return "selection" + "-".join(map(str, self.prune.layers or []))
        return f"{self.prune.method}{self.prune.n_layers}"

    def model_name(self) -> str:
        return Path(self.model.name_or_path.rstrip("/")).name

    def run_name(self) -> str:
        return self.wandb.name or f"{self.recipe or self.method}-{self.model_name()}-{self.prune_spec()}"

    def run_group(self) -> str:
        return self.wandb.group or f"{self.model_name()}-{self.prune_spec()}"

    def run_tags(self) -> list[str]:
        data = Path(self.data.dataset).name if self.data.dataset else f"{self.data.source}/{self.data.split}"
        return [
            self.method,
            self.trainable,
            f"prune:{self.prune_spec()}",
            f"model:{self.model_name()}",
            f"data:{data}",
            *self.wandb.tags,
        ]
