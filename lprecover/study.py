"""``lprecover study``: the paper's question end to end, on the organism by default (minutes on a laptop CPU).

    lprecover study                                   # organism: prune 1 and 2 layers, six recoveries, compare
    lprecover study recipes=[sft_short,distill] steps=500
    lprecover study study=trace_length                # a preset (configs/study/): recovery-data variants side by side
    accelerate launch --config_file accelerate_configs/zero3.yaml --num_processes 8 -m lprecover.study \\
        model=qwen3_8b data=s1k eval=real_math steps=500 max_length=16384 batch_size=1 \\
        overrides=[train.learning_rate=1e-5,train.grad_accum=16]

1. the teacher (built or reused); 2. ``prune.method`` removes each of ``prune_layers`` layers, scores kept;
3. every recipe recovers the model pruned by ``recover_from`` layers, all with the same steps, batch and packed
row length (so the same training-token budget), on ``data`` (for the organism: long-CoT traces of 1-8 step
chains, none of them an evaluation problem), each also evaluated at the ``evaluate_at`` fractions of the
budget; 4. the teacher, every pruned model and every recovery is evaluated with ``eval``; 5. ``lprecover compare``
writes ``comparison/report.md``, ``comparison.png`` and ``summary.json``.

A rerun reuses every finished stage and rewrites nothing. A rerun with other settings (``steps``, ``prune.*``,
``eval.*``, ...) is refused, naming the keys that differ; with ``overwrite=true`` every stage whose own settings
changed starts over and the others are kept. Under ``accelerate launch`` the main process prunes and evaluates while
the others wait (``launch_timeout_minutes`` must cover pruning, and one evaluation while they wait for the next
recipe); all processes train.
"""

import hashlib
import json
import re
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import yaml

from lprecover.atomic import exclusive_output
from lprecover.command import run
from lprecover.compare.discovery import discover
from lprecover.compare.run import SUMMARY_FORMAT, compare
from lprecover.config import (
    ConfigError,
    declare,
    load_config,
    recipe_choices,
    reuse_or_refuse,
    save_config,
    save_settings,
    to_dict,
    valid_keys,
)
from lprecover.evaluation.cli import EvalCommand, evaluate
from lprecover.evaluation.config import GENERATION_ONLY, EvalConfig
from lprecover.launch import DEFAULT_TIMEOUT_MINUTES, TIMEOUT_HELP, distributed_state
from lprecover.log import get_logger
from lprecover.modeling import ModelConfig, read_model_config, resolve_model_path
from lprecover.pruning.config import PruneConfig
from lprecover.pruning.prune import prune_source
from lprecover.recovery.outputs import EVAL_DIR
from lprecover.recovery.recipe import RecoveryConfig, TrainData
from lprecover.registry import model_source
from lprecover.study_variants import write_variants
from lprecover.surgery import layer_count
from lprecover.tracking import WandbSettings
from lprecover.train import recover

logger = get_logger(__name__)

STUDY_PRESETS = Path(__file__).parent / "configs" / "study"  # study=NAME: a preset of the study's own keys

DEFAULT_RECIPES = ["sft_short", "sft_longcot", "lora_longcot", "distill", "partial", "distill_onpolicy"]
# Settings that may change between launches of one study: they do not change any stage's output.
RELAUNCH_FREE = (
    "report_to",
    "wandb",
    "output_dir",
    "overwrite",
    "launch_timeout_minutes",
    # Variants add recoveries beside the study's own and change none of its stages (study=trace_length reuses them).
    "variants",
    "variant_recipes",
    "replay_recipes",
    "replay_share",
    *(f"eval.{k}" for k in GENERATION_ONLY),
)


@dataclass
class StudyConfig:
    """The study: which model and pruning, which recipes on what budget, how to evaluate, where to write.

    Budget: every recipe trains ``steps`` optimizer steps of ``batch_size`` packed rows of ``max_length`` tokens.
    ``overrides`` (dotted ``key=value``) apply to every recipe, e.g. ``[train.learning_rate=1e-5]``.
    """

    model: ModelConfig = declare(help="The source model (model=NAME picks a preset).", default_factory=ModelConfig)
    prune: PruneConfig = declare(
        help="The pruning criterion and its calibration (prune_layers says how many layers).",
        default_factory=PruneConfig,
    )
    prune_layers: list[int] = declare(
        help="Layer counts to remove.", default_factory=lambda: [1, 2], ge=1, nonempty=True, unique=True
    )
    recover_from: int = declare(2, help="The pruned model (layers removed) the recipes recover.", ge=1)
    recipes: list[str] = declare(
        help="Recipes to run.",
        default_factory=lambda: list(DEFAULT_RECIPES),
        choices=recipe_choices(),
        nonempty=True,
        unique=True,
    )
    data: TrainData = declare(
        help="Every recipe's training data (data=NAME picks a preset).", default_factory=TrainData
    )
    steps: int = declare(250, help="Optimizer steps per recipe.", ge=1)
    batch_size: int = declare(8, help="Rows per step.", ge=1)
    max_length: int = declare(256, help="Packed row length (tokens).", ge=1)
    overrides: list[str] = declare(help="key=value applied to every recipe.", default_factory=list)
    evaluate_at: list[float] = declare(
        help="Fractions of the budget at which each recipe is also evaluated (recovery vs tokens).",
        # From 1/32 of the budget, doubling, with half-doublings where the long-trace curves rise (3/64, 3/32): with
        # the final model eight points, so that every curve's rise is seen and tokens_to_50 falls between two.
        default_factory=lambda: [1 / 32, 3 / 64, 1 / 16, 3 / 32, 1 / 8, 1 / 4, 1 / 2],
        gt=0,
        lt=1,
        unique=True,
    )
    eval: EvalConfig = declare(help="How every model is evaluated.", default_factory=EvalConfig)
    variants: dict[str, list[str]] = declare(
        help="Recovery-data variants: {NAME: [data.KEY=VALUE, ...]}; each recipe of variant_recipes also recovers on "
        "each (recover-RECIPE-NAME/), compared on its own (comparison-NAME/) and side by side (variants/).",
        default_factory=dict,
    )
    variant_recipes: list[str] = declare(
        help="The recipes (of recipes) each variant runs (empty: all).",
        default_factory=list,
        choices=recipe_choices(),
        unique=True,
    )
    replay_recipes: list[str] = declare(
        help="Recipes (of recipes) also run with data.replay=replay_share (the variant 'replay', "
        "recover-RECIPE-replay/), so that "
        "the knowledge kept with and without replay shows side by side (variants/).",
        default_factory=lambda: ["sft_longcot"],
        choices=recipe_choices(),
        unique=True,
    )
    replay_share: float = declare(0.2, help="data.replay of the replay_recipes' second run.", gt=0, lt=1)
    report_to: str = declare("auto", help="wandb, none, or auto.", choices=["auto", "wandb", "none"])
    wandb: WandbSettings = declare(help="The W&B group and tags of the study's runs.", default_factory=WandbSettings)
    output_dir: str = declare("", help="Study folder (default runs/study-MODEL-METHOD).", output_dir=True)
    overwrite: bool = declare(False, help="Rerun with other settings: redo the stages whose settings changed.")
    launch_timeout_minutes: float = declare(
        DEFAULT_TIMEOUT_MINUTES, help=TIMEOUT_HELP + " Raise it for long evaluations.", ge=1
    )

    def __post_init__(self):
        if self.recover_from not in self.prune_layers:
            raise ValueError(f"recover_from={self.recover_from} must be one of prune_layers={self.prune_layers}.")
        if not self.output_dir:
            self.output_dir = f"runs/study-{Path(self.model.name_or_path.rstrip('/')).name}-{self.prune.method}"
        # Every recipe's run is built now, through the same checks as `lprecover train`, so a bad override, or a
        # setting a recipe refuses, fails here and not after the teacher, pruning and evaluations.
        out = Path(self.output_dir)
        for recipe in self.recipes:
            try:
                recipe_run(self, recipe, out / f"pruned-{self.recover_from}", out / f"recover-{recipe}")
            except ConfigError as e:
                raise ConfigError(f"recipe {recipe}: {e}") from None
        if REPLAY in self.variants:
            raise ConfigError(f"variants: the name '{REPLAY}' is the replay_recipes' variant; choose another name.")
        for name in all_variants(self):
            if not re.fullmatch(r"[a-z0-9_]+", name):
                raise ConfigError(f"variants: the name '{name}' names folders; use lowercase letters, digits and _.")
            variant = variant_config(self, name)
            for recipe in variant_recipes(self, name):
                try:
                    recipe_run(variant, recipe, out / f"pruned-{self.recover_from}", out / f"recover-{recipe}-{name}")
                except ConfigError as e:
                    raise ConfigError(f"variants.{name}, recipe {recipe}: {e}") from None

    def group(self) -> str:
        return self.wandb.group or Path(self.output_dir).name


def variant_config(cfg: StudyConfig, name: str) -> StudyConfig:
    """The study with variant ``name``'s recovery data (its ``data.*`` overrides over the study's data).

    Raises:
        ConfigError: naming the variant, for an override outside ``data.`` or one ``data`` refuses.
    """
    overrides = all_variants(cfg)[name]
    outside = [o for o in overrides if not o.startswith("data.")]
    if outside:
        raise ConfigError(f"variants.{name}: {outside} do not set data.*; a variant changes only the recovery data.")
    args = [f"{k}={json.dumps(v)}" for k, v in to_dict(cfg.data).items()]
    try:
        data = load_config(TrainData, args + [o.removeprefix("data.") for o in overrides])
    except ConfigError as e:
        raise ConfigError(f"variants.{name}: {e}") from None
    return replace(cfg, data=data, variants={}, replay_recipes=[])


REPLAY = "replay"  # the variant of replay_recipes


def all_variants(cfg: StudyConfig) -> dict[str, list[str]]:
    """``variants`` and, where ``replay_recipes`` names any, the replay variant: ``{NAME: [data.KEY=VALUE, ...]}``."""
    replay = {REPLAY: [f"data.replay={cfg.replay_share}"]} if cfg.replay_recipes else {}
    return dict(cfg.variants) | replay


def variant_recipes(cfg: StudyConfig, name: str) -> list[str]:
    """The recipes variant ``name`` runs: those of ``replay_recipes`` or ``variant_recipes`` (all when empty) that
    the study runs (``recipes=[sft_short]`` adds no replay run of sft_longcot)."""
    named = cfg.replay_recipes if name == REPLAY else cfg.variant_recipes or cfg.recipes
    return [r for r in named if r in cfg.recipes]


def variant_runs(cfg: StudyConfig) -> list[tuple[str, str]]:
    """``(variant, recipe)`` for every recovery the variants add."""
    return [(name, recipe) for name in all_variants(cfg) for recipe in variant_recipes(cfg, name)]


def prune_spec(cfg: StudyConfig, n: int) -> PruneConfig:
    return replace(cfg.prune, n_layers=n)


def source_layer_count(model: ModelConfig) -> int | None:
    """The source model's decoder layers where known without building or downloading anything: a registered
    model's own count, or a local checkpoint's config (None for a hub id)."""
    source = model_source(model.name_or_path)
    if source is not None and source.num_layers is not None:
        return source.num_layers()
    if not Path(model.name_or_path).expanduser().is_dir():
        return None
    return layer_count(read_model_config(model), required=False)


def check_against_model(cfg: StudyConfig) -> None:
    """Refuse layer counts the source model cannot lose, before the teacher is built or anything is written.

    Raises:
        ConfigError: naming ``prune_layers`` (or the ``prune.*`` key) and the model's layer count.
    """
    n = source_layer_count(cfg.model)
    if n is None:
        return
    too_many = [k for k in cfg.prune_layers if k >= n]
    if too_many:
        raise ConfigError(
            f"prune_layers {too_many} would remove every layer: {cfg.model.name_or_path} has {n}. Use counts of at "
            f"most {n - 1}."
        )
    for k in cfg.prune_layers:
        try:
            prune_spec(cfg, k).check_against(n)
        except ValueError as e:  # the prune.* settings judged against this model (LaCo's merges, selection's layers)
            raise ConfigError(str(e)) from None


def prune_stage(cfg: StudyConfig, n: int, out: Path) -> Path:
    """The source pruned by ``n`` layers in ``out`` (reused when made with the same settings)."""
    return Path(prune_source(cfg.model, prune_spec(cfg, n), out, cfg.overwrite))


def eval_stage(cfg: StudyConfig, model_dir: str, name: str, out: Path) -> None:
    """Evaluate one base model (teacher or pruned) into ``out``; resumes a partial one, reuses a finished one."""
    wandb = replace(cfg.wandb, name=f"{cfg.group()}-{name}", group=cfg.group())
    command = EvalCommand(
        model=replace(cfg.model, name_or_path=model_dir),
        eval=cfg.eval,
        output_dir=str(out),
        report_to=cfg.report_to,
        wandb=wandb,
        overwrite=cfg.overwrite,
    )
    evaluate(command)


def recipe_run(cfg: StudyConfig, recipe: str, student: Path, out: Path) -> RecoveryConfig:
    """The recovery run the study makes of ``recipe``: its settings on the study's budget, data, model and evaluation."""
    budget = [f"train.max_steps={cfg.steps}", f"train.per_device_batch_size={cfg.batch_size}"]
    budget += [f"train.max_length={cfg.max_length}", f"train.save_steps={max(1, cfg.steps // 2)}"]
    # The study's own settings, last so that they win over the overrides, and judged as if typed (JSON is YAML).
    study = {"student": str(student), "output_dir": str(out), "evaluate": True, "evaluate_at": list(cfg.evaluate_at)}
    study |= {"report_to": cfg.report_to, "overwrite": cfg.overwrite}
    study |= {"launch_timeout_minutes": cfg.launch_timeout_minutes}
    args = [f"recipe={recipe}", *budget, *cfg.overrides, *(f"{k}={json.dumps(v)}" for k, v in study.items())]
    run = load_config(RecoveryConfig, args, recipe_key="recipe")
    # The study's data, model and evaluation; the recipe keeps its split (short answers or long traces).
    run.model, run.data, run.eval = cfg.model, replace(cfg.data, split=run.data.split), cfg.eval
    # Recorded, not applied (the student is given): another pruning at the same path makes this another run.
    run.prune = prune_spec(cfg, cfg.recover_from)
    run.wandb = replace(cfg.wandb, name=f"{cfg.group()}-{recipe}", group=cfg.group())
    return run


def recover_stage(cfg: StudyConfig, recipe: str, student: Path, out: Path) -> None:
    """Recover ``student`` with ``recipe`` into ``out`` and evaluate it; a finished run with these settings is kept."""
    recover(recipe_run(cfg, recipe, student, out))


def _digest(folder: Path) -> dict[str, str]:
    """Content digests of what ``lprecover compare`` reads from an evaluation or recovery-run folder."""
    names = ("summary.json", "curves.json", f"{EVAL_DIR}/summary.json", f"{EVAL_DIR}/curves.json")
    names += ("model/recovery.json", "metrics.json")
    return {n: hashlib.sha256((folder / n).read_bytes()).hexdigest()[:16] for n in names if (folder / n).is_file()}


def compare_stage(folders: list[Path], out: Path, title: str) -> dict:
    """Compare ``folders`` into ``out``; kept while every input is byte for byte what it compared last time and
    the comparison's format is the same."""
    settings = {"title": title, "format": SUMMARY_FORMAT, "inputs": {p.name: _digest(p) for p in folders}}
    # Derived output: whatever changed upstream, redoing it is always allowed (overwrite=True).
    if reuse_or_refuse(out, settings, "a comparison", overwrite=True) == "reuse" and (out / "report.md").exists():
        return json.loads((out / "summary.json").read_text())
    summary = compare([discover(p) for p in folders], out, title)
    save_settings(out, settings)  # last: a comparison cut short is redone
    return summary


def run_study(cfg: StudyConfig) -> dict | None:
    """Every stage in order, each reused when finished with the same settings; returns the comparison summary.

    Under ``accelerate launch`` every process trains; the main process alone prunes, evaluates the base models and
    compares (after the recoveries, so the others never wait for more than one evaluation), and only it returns the
    summary (the others return None).
    """
    check_against_model(cfg)
    out = Path(cfg.output_dir)
    # Refused here, before any work, when the folder holds a study with other settings (unless overwrite=true).
    verdict = reuse_or_refuse(out, to_dict(cfg), "a study", cfg.overwrite, ignore=RELAUNCH_FREE)
    state = distributed_state(cfg.launch_timeout_minutes)
    start = time.time()
    pruned = {n: out / f"pruned-{n}" for n in cfg.prune_layers}
    if state.is_main_process:
        resolve_model_path(cfg.model.name_or_path)  # a registered model's source may build or copy it first
        if verdict == "fresh":
            save_config(cfg, out)
        logger.info("[study] teacher ready (%.0f s)", time.time() - start)
        for n, path in pruned.items():
            prune_stage(cfg, n, path)
        logger.info("[study] pruned %s (%.0f s)", cfg.prune_layers, time.time() - start)
    state.wait_for_everyone()
    for recipe in cfg.recipes:
        recover_stage(cfg, recipe, pruned[cfg.recover_from], out / f"recover-{recipe}")
        logger.info("[study] %s recovered and evaluated (%.0f s)", recipe, time.time() - start)
    for name, recipe in variant_runs(cfg):
        recover_stage(variant_config(cfg, name), recipe, pruned[cfg.recover_from], out / f"recover-{recipe}-{name}")
        logger.info("[study] %s on variant %s recovered and evaluated (%.0f s)", recipe, name, time.time() - start)
    if not state.is_main_process:
        return None
    eval_stage(cfg, cfg.model.name_or_path, "teacher", out / "eval-teacher")
    for n, path in pruned.items():
        eval_stage(cfg, str(path), f"pruned-{n}", out / f"eval-pruned-{n}")
    logger.info("[study] teacher and pruned models evaluated (%.0f s)", time.time() - start)
    folders = [out / "eval-teacher", *(out / f"eval-pruned-{n}" for n in cfg.prune_layers)]
    folders += [out / f"recover-{r}" for r in cfg.recipes]
    title = f"{Path(cfg.model.name_or_path).name}: {cfg.prune.method} pruning and recovery"
    summary = compare_stage(folders, out / "comparison", title)
    if all_variants(cfg):
        compare_variants(cfg, out, folders[: 1 + len(cfg.prune_layers)], summary, title)
    logger.info("[study] done in %.0f s: %s", time.time() - start, out / "comparison" / "report.md")
    return summary


def compare_variants(cfg: StudyConfig, out: Path, bases: list[Path], summary: dict, title: str) -> None:
    """Compare each variant's runs (``comparison-NAME/``) and write them side by side with the study's own
    (``variants/``)."""
    summaries, labels = {"study_data": summary}, {"study_data": f"the study's own data ({data_label(cfg.data)})"}
    for name, overrides in all_variants(cfg).items():
        runs = [out / f"recover-{r}-{name}" for v, r in variant_runs(cfg) if v == name]
        summaries[name] = compare_stage(bases + runs, out / f"comparison-{name}", f"{title} ({name})")
        labels[name] = f"{', '.join(overrides)} ({data_label(variant_config(cfg, name).data)})"
    write_variants(out / "variants", summaries, labels, title)
    logger.info("[study] variants side by side: %s", out / "variants" / "report.md")


def data_label(data: TrainData) -> str:
    """A few words on what recovery data a study trains on (its source or dataset, and its replay)."""
    text = data.dataset or f"source {data.source}"
    return text + (f", {100 * data.replay:.0f}% replay of {data.replay_knowledge()}" if data.replay else "")


def preset_args(argv: list[str]) -> list[str]:
    """``study=NAME`` expanded into the keys of ``lprecover/configs/study/NAME.yaml`` (before the other arguments,
    which override them).

    Raises:
        ConfigError: for a preset that does not exist, naming the ones that do.
    """
    names = [a.split("=", 1)[1] for a in argv if a.startswith("study=")]
    rest = [a for a in argv if not a.startswith("study=")]
    if not names:
        return argv
    path = STUDY_PRESETS / f"{names[-1]}.yaml"
    if not path.is_file():
        choices = ", ".join(sorted(p.stem for p in STUDY_PRESETS.glob("*.yaml")))
        raise ConfigError(f"Unknown study preset '{names[-1]}' (study=NAME). Presets: {choices}.")
    preset = yaml.safe_load(path.read_text()) or {}
    return [f"{k}={json.dumps(v)}" for k, v in preset.items()] + rest


CONFIG = StudyConfig  # the keys `--help` lists


def help_text() -> str:
    return __doc__ + "\nkeys: " + ", ".join(valid_keys(StudyConfig)) + ", study (a preset: study=trace_length)"


def main(argv: list[str]) -> int:
    """Run the command on its ``key=value`` arguments (``lprecover.command.run`` adds ``--help`` and error lines)."""
    cfg = load_config(StudyConfig, preset_args(argv))
    with exclusive_output(cfg.output_dir):  # a second study into the same folder is refused, not interleaved
        done = run_study(cfg)
    if done is not None:  # the main process; the others only trained
        print((Path(cfg.output_dir) / "comparison" / "report.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(run("study", sys.modules[__name__]))
