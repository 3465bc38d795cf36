"""What a recovery recipe can say: the typed schema behind ``recipes/*.yaml`` and ``lprecover/train.py``.

A recipe names the recovery ``method`` (what the loss is) and what is ``trainable`` (all weights, LoRA adapters, or
the layers around the pruned gap). The model and data come from config groups (``model=``, ``data=``); the prune
spec from ``prune.*``, or ``student=PATH`` for a checkpoint that is already pruned.
"""

import importlib.util
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from data_prep.config import OPTIONS_HELP, SOURCE_HELP, check_source, source_options
from lprecover.config import declare
from lprecover.evaluation.config import EvalConfig
from lprecover.launch import DEFAULT_TIMEOUT_MINUTES, TIMEOUT_HELP
from lprecover.modeling import ModelConfig
from lprecover.pruning.config import PruneConfig
from lprecover.recovery.train_config import TrainConfig
from lprecover.registry import data_source, default
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

    dataset: str | None = declare(None, help="Built folder or messages jsonl; when set, the build spec is ignored.")
    source: str = declare(help=SOURCE_HELP, default_factory=lambda: default("data_source"))
    source_path: str | None = declare(None, help="Local file of the source instead of the hub.")
    hub_id: str | None = declare(None, help="Override the source's hub dataset id.")
    split: str = declare(
        "longcot", help="longcot (trace + answer) or short (answer only).", choices=["longcot", "short"]
    )
    max_length: int | None = declare(None, help="Drop rows longer than this many tokens.", ge=1)
    limit: int | None = declare(None, help="Use only the first N source rows.", ge=1)
    decontaminate: list[str] = declare(help="Evaluation tasks to hold out.", default_factory=list, unique=True)
    eval_paths: dict[str, str] = declare(
        help="Local test files of those tasks, e.g. {gsm8k: test.jsonl}.", default_factory=dict
    )
    options: dict[str, Any] = declare(default_factory=dict, help=OPTIONS_HELP)
    # None, not 0, by default, and None for auto: a run saved before these keys existed is the same run.
    replay: float | None = declare(
        None,
        help="Share of the training rows (so of each batch, in expectation) drawn from replay_data, so that "
        "recovery keeps the knowledge it would otherwise forget; None or 0 replays nothing.",
        ge=0,
        lt=1,
    )
    replay_data: str | None = declare(
        None,
        help="The replay rows: a messages-schema .jsonl or a folder written by `lprecover data`, a registered "
        "knowledge set (organism_facts), or None (auto: the data source's own knowledge set, where it has one).",
    )

    def __post_init__(self):
        check_source(self.source, "data.source")
        # Checked, not filled: a recipe's default section would otherwise carry the default source's options into
        # a run that switches data.source.
        source_options(self.source, self.options, "data.options.")
        if self.replay and self.replay_knowledge() is None:
            raise ValueError(
                f"data.replay={self.replay} needs rows to replay, and source {self.source} has no knowledge set of "
                "its own: set data.replay_data to a messages .jsonl or a folder built by `lprecover data`."
            )

    def replay_knowledge(self) -> str | None:
        """The replay set: a named knowledge set or a path; None where the source has no set of its own."""
        if self.replay_data is None:
            source = data_source(self.source)  # a plugin's source names its own set (the organism: its facts)
            return source.knowledge if source is not None else None
        return self.replay_data


@dataclass
class LoraSettings:
    """PEFT LoRA: rank ``r``, ``alpha``, ``dropout`` on ``target_modules`` ('all-linear': every linear but lm_head)."""

    r: int = declare(16, help="Adapter rank.", ge=1)
    alpha: int = declare(32, help="Scaling numerator (scale = alpha / r).", gt=0)
    dropout: float = declare(0.05, help="Dropout on the adapter input.", ge=0, lt=1)
    target_modules: list[str] | str = declare(
        "all-linear", help="'all-linear' or module name suffixes, e.g. [q_proj, v_proj].", nonempty=True, unique=True
    )


@dataclass
class PartialSettings:
    """Partial-layer recovery: the ``width`` kept layers on each side of every removed gap train, with the final
    norm and ``lm_head``; everything else stays frozen."""

    width: int = declare(1, help="Kept layers on each side of a gap that train.", ge=1)


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

    divergence: str = declare("forward_kl", help=f"One of: {', '.join(DIVERGENCES)}.", choices=list(DIVERGENCES))
    # Read only for jsd, whose generalized JSD is a mixture strictly inside (0, 1); its ends are the two KLs, which
    # divergence=forward_kl and reverse_kl name.
    beta: float = declare(0.5, help="Generalized JSD mixing weight (divergence=jsd).", gt=0, lt=1)
    temperature: float = declare(1.0, help="Softens both distributions; the loss is scaled by T^2.", gt=0)
    kd_weight: float = declare(1.0, help="Weight of the logit divergence.", ge=0)
    ce_weight: float = declare(0.0, help="Weight of the cross-entropy on the data's tokens.", ge=0)
    hidden_loss: str = declare(
        "mse", help="mse (scaled by the teacher's norm) or cosine.", choices=list(HIDDEN_LOSSES)
    )
    hidden_weight: float = declare(1.0, help="Weight of the hidden-state loss (distill_hidden).", ge=0)
    teacher_logits: str | None = declare(
        None,
        help="method=distill: a store written by `lprecover teacher-logits` with this run's data and train "
        "settings; the loss reads the teacher's top-k log-probabilities from it and no teacher is loaded.",
    )
    max_new_tokens: int = declare(256, help="On-policy: tokens the student generates.", ge=1)
    use_vllm: bool = declare(
        False, help="On-policy: the student generates with vLLM (TRL's use_vllm; the vllm extra, GPUs)."
    )
    vllm: dict[str, Any] = declare(
        help="On-policy with use_vllm: TRL's vllm_* options without the prefix, e.g. {mode: server, "
        "server_base_url: 'http://host:8000'} or {mode: colocate, gpu_memory_utilization: 0.3}.",
        default_factory=dict,
    )

    def __post_init__(self):
        self._check_vllm()

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

    # Not a fixed set: a path to an edited copy (`lprecover recipes copy NAME`) is a recipe too; load_config checks it.
    recipe: str | None = declare(None, help="A shipped recipe's name (`lprecover recipes`) or a recipe .yaml path.")
    method: str = declare("sft", help=f"Recovery loss: {', '.join(METHODS)}.", choices=list(METHODS))
    trainable: str = declare("full", help=f"What trains: {', '.join(TRAINABLE)}.", choices=list(TRAINABLE))
    model: ModelConfig = declare(
        help="The unpruned source model (model=NAME picks a preset).", default_factory=ModelConfig
    )
    student: str | None = declare(None, help="An already pruned checkpoint to recover (prune.* is then ignored).")
    teacher: str | None = declare(None, help="Distillation teacher (default: the unpruned source model).")
    prune: PruneConfig = declare(
        help="How the source is pruned before recovery (unless student is given).", default_factory=PruneConfig
    )
    data: TrainData = declare(help="The training set (data=NAME picks a preset).", default_factory=TrainData)
    train: TrainConfig = declare(help="Optimisation and checkpoints.", default_factory=TrainConfig)
    lora: LoraSettings = declare(help="LoRA adapters (trainable=lora).", default_factory=LoraSettings)
    partial: PartialSettings = declare(
        help="The layers that train (trainable=partial).", default_factory=PartialSettings
    )
    distill: DistillSettings = declare(
        help="The distillation loss (the distill* methods).", default_factory=DistillSettings
    )
    evaluate: bool = declare(False, help="Evaluate the recovered model when training ends.")
    evaluate_at: list[float] = declare(
        help="Fractions of train.max_steps (e.g. [0.25,0.5]) at which the model is also saved "
        "(model-step-N/) and, with evaluate=true, evaluated (eval-step-N/): recovery against training tokens.",
        default_factory=list,
        gt=0,
        lt=1,
        unique=True,
    )
    eval: EvalConfig = declare(help="Evaluation settings (evaluate=true, evaluate_at).", default_factory=EvalConfig)
    report_to: str = declare(
        "auto",
        help="wandb, none, or auto (wandb; offline unless W&B credentials or WANDB_MODE are set).",
        choices=["auto", "wandb", "none"],
    )
    wandb: WandbSettings = declare(help="The W&B run's name, group and tags.", default_factory=WandbSettings)
    output_dir: str = declare("", help="Run folder (default: runs/<run name>).", output_dir=True)
    # Not choices: besides auto and never it takes any checkpoint folder, checked in __post_init__.
    resume: str = declare("auto", help="auto (continue from the last checkpoint), never, or a checkpoint path.")
    overwrite: bool = declare(False, help="Replace an output_dir that holds a different run.")
    launch_timeout_minutes: float = declare(DEFAULT_TIMEOUT_MINUTES, help=TIMEOUT_HELP, ge=1)

    def __post_init__(self):
        if self.resume not in ("auto", "never") and not Path(self.resume).is_dir():
            raise ValueError(f"resume must be auto, never, or an existing checkpoint folder; '{self.resume}' is none.")
        # The loss terms each method sums (recovery/distill.py); with every weight 0 the loss is no tensor at all.
        weights = {
            "distill": ("kd_weight", "ce_weight"),
            "distill_hidden": ("kd_weight", "ce_weight", "hidden_weight"),
        }
        terms = weights.get(self.method, ())
        if terms and not any(getattr(self.distill, w) for w in terms):
            raise ValueError(
                f"method {self.method} trains on {' + '.join(f'distill.{w}' for w in terms)}, and all are 0, so "
                "there is no loss to train on; set one of them above 0."
            )
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
