"""``lprecover study``: the paper's question end to end, on the organism by default (minutes on a laptop CPU).

    lprecover study                                   # organism: prune 1 and 2 layers, six recoveries, compare
    lprecover study recipes=[sft_short,distill] steps=500
    accelerate launch --config_file accelerate_configs/zero3.yaml --num_processes 8 -m lprecover.study \\
        model=qwen3_8b data=s1k eval=real_math steps=500 max_length=16384 batch_size=1 \\
        overrides=[train.learning_rate=1e-5,train.grad_accum=16]

1. the teacher (built or reused); 2. ``prune.method`` removes each of ``prune_layers`` layers, scores kept;
3. every recipe recovers the model pruned by ``recover_from`` layers, all with the same steps, batch and packed
row length (so the same training-token budget), on ``data`` (the organism's chains of at most 4 steps:
shorter than the 5-8 step chains it is evaluated on); 4. the teacher, every pruned model and every recovery is
evaluated with ``eval``; 5. ``lprecover compare`` writes ``comparison/report.md``, ``comparison.png`` and
``summary.json``. A rerun reuses every finished stage.
"""

import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from lprecover.config import load_config, recipe_choices, save_config, valid_keys
from lprecover.evaluation.run import EvalConfig
from lprecover.log import get_logger
from lprecover.modeling import ModelConfig
from lprecover.pruning.prune import PruneConfig
from lprecover.recovery.recipe import RecoveryConfig, TrainData
from lprecover.tracking import WandbSettings

logger = get_logger(__name__)

DEFAULT_RECIPES = ["sft_short", "sft_longcot", "lora_longcot", "distill", "partial", "distill_onpolicy"]


def _study_data() -> TrainData:
    data = TrainData()
    data.organism.max_chain = 4  # recovery sees shorter chains than the 5-8 step chains of evaluation
    return data


@dataclass
class StudyConfig:
    """The study: which model and pruning, which recipes on what budget, how to evaluate, where to write.

    Budget: every recipe trains ``steps`` optimizer steps of ``batch_size`` packed rows of ``max_length`` tokens.
    ``overrides`` (dotted ``key=value``) apply to every recipe, e.g. ``[train.learning_rate=1e-5]``.
    """

    model: ModelConfig = field(default_factory=ModelConfig)
    prune: PruneConfig = field(default_factory=PruneConfig)
    prune_layers: list[int] = field(default_factory=lambda: [1, 2], metadata={"help": "Layer counts to remove."})
    recover_from: int = field(default=2, metadata={"help": "The pruned model (layers removed) the recipes recover."})
    recipes: list[str] = field(default_factory=lambda: list(DEFAULT_RECIPES), metadata={"help": "Recipes to run."})
    data: TrainData = field(default_factory=_study_data)
    steps: int = field(default=250, metadata={"help": "Optimizer steps per recipe."})
    batch_size: int = field(default=8, metadata={"help": "Rows per step."})
    max_length: int = field(default=256, metadata={"help": "Packed row length (tokens)."})
    overrides: list[str] = field(default_factory=list, metadata={"help": "key=value applied to every recipe."})
    eval: EvalConfig = field(default_factory=EvalConfig)
    report_to: str = field(default="auto", metadata={"help": "wandb, none, or auto."})
    wandb: WandbSettings = field(default_factory=WandbSettings)
    output_dir: str = field(default="", metadata={"help": "Study folder (default runs/study-MODEL-METHOD)."})

    def __post_init__(self):
        unknown = [r for r in self.recipes if r not in recipe_choices()]
        if unknown:
            raise ValueError(f"Unknown recipes {unknown}. Recipes: {', '.join(recipe_choices())}.")
        if self.recover_from not in self.prune_layers:
            raise ValueError(f"recover_from={self.recover_from} must be one of prune_layers={self.prune_layers}.")
        if min(self.steps, self.batch_size, self.max_length) < 1:
            raise ValueError("steps, batch_size and max_length must be at least 1.")
        if not self.output_dir:
            self.output_dir = f"runs/study-{Path(self.model.name_or_path.rstrip('/')).name}-{self.prune.method}"

    def group(self) -> str:
        return self.wandb.group or Path(self.output_dir).name


def prune_stage(cfg: StudyConfig, n: int, out: Path) -> Path:
    """The source pruned by ``n`` layers in ``out`` (reused when already there)."""
    from lprecover.train import prune_source

    return Path(prune_source(cfg.model, replace(cfg.prune, n_layers=n), out))


def eval_stage(cfg: StudyConfig, model_dir: str, name: str, out: Path) -> None:
    """Evaluate one base model (teacher or pruned) into ``out``; resumes a partial evaluation."""
    from lprecover.evaluation.cli import EvalCommand, evaluate

    if (out / "summary.json").exists():
        return
    wandb = replace(cfg.wandb, name=f"{cfg.group()}-{name}", group=cfg.group())
    command = EvalCommand(
        model=replace(cfg.model, name_or_path=model_dir),
        eval=cfg.eval,
        output_dir=str(out),
        report_to=cfg.report_to,
        wandb=wandb,
    )
    evaluate(command)


def recover_stage(cfg: StudyConfig, recipe: str, student: Path, out: Path) -> None:
    from lprecover.recovery.outputs import EVAL_DIR, is_finished
    from lprecover.train import recover

    if is_finished(out) and (out / EVAL_DIR / "summary.json").exists():
        return
    budget = [f"train.max_steps={cfg.steps}", f"train.per_device_batch_size={cfg.batch_size}"]
    budget += [f"train.max_length={cfg.max_length}", f"train.save_steps={max(1, cfg.steps // 2)}"]
    run = load_config(RecoveryConfig, [f"recipe={recipe}", *budget, *cfg.overrides], recipe_key="recipe")
    # The study's data, model and evaluation; the recipe keeps its split (short answers or long traces).
    run.model, run.data = cfg.model, replace(cfg.data, split=run.data.split)
    run.eval, run.student = cfg.eval, str(student)
    run.evaluate, run.report_to, run.output_dir = True, cfg.report_to, str(out)
    run.wandb = replace(cfg.wandb, name=f"{cfg.group()}-{recipe}", group=cfg.group())
    recover(run)


def run_study(cfg: StudyConfig) -> dict:
    """Every stage in order, each skipped when its output is already complete; returns the comparison summary."""
    from lprecover.compare import compare, discover
    from lprecover.modeling import resolve_model_path

    out = Path(cfg.output_dir)
    start = time.time()
    resolve_model_path(cfg.model.name_or_path)  # builds the organism teacher on first use
    save_config(cfg, out)
    logger.info("[study] teacher ready (%.0f s)", time.time() - start)
    pruned = {n: prune_stage(cfg, n, out / f"pruned-{n}") for n in cfg.prune_layers}
    eval_stage(cfg, cfg.model.name_or_path, "teacher", out / "eval-teacher")
    for n, path in pruned.items():
        eval_stage(cfg, str(path), f"pruned-{n}", out / f"eval-pruned-{n}")
    logger.info("[study] pruned and evaluated %s (%.0f s)", cfg.prune_layers, time.time() - start)
    for recipe in cfg.recipes:
        recover_stage(cfg, recipe, pruned[cfg.recover_from], out / f"recover-{recipe}")
        logger.info("[study] %s recovered and evaluated (%.0f s)", recipe, time.time() - start)
    folders = [out / "eval-teacher", *(out / f"eval-pruned-{n}" for n in cfg.prune_layers)]
    folders += [out / f"recover-{r}" for r in cfg.recipes]
    title = f"{Path(cfg.model.name_or_path).name}: {cfg.prune.method} pruning and recovery"
    summary = compare([discover(p) for p in folders], out / "comparison", title)
    logger.info("[study] done in %.0f s: %s", time.time() - start, out / "comparison" / "report.md")
    return summary


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__ + "\nkeys: " + ", ".join(valid_keys(StudyConfig)))
        return 0
    cfg = load_config(StudyConfig, argv)
    run_study(cfg)
    print((Path(cfg.output_dir) / "comparison" / "report.md").read_text())
    return 0


if __name__ == "__main__":
    from lprecover.cli import main as cli_main

    sys.exit(cli_main(["study", *sys.argv[1:]]))
