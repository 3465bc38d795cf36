"""``lprecover eval``: test-time scaling curves of one model.

    lprecover eval model.name_or_path=PATH eval=scaling output_dir=OUT
    lprecover eval model=organism eval=sequential eval.tasks=[organism_long] output_dir=OUT
    lprecover eval model=smollm2_135m eval.tasks=[gsm8k] eval.paths={gsm8k:test.jsonl} eval.budgets=[128,256] output_dir=OUT
    lprecover eval import=[lm_eval_out/MODEL/samples_aime24_nofigures_2025-01-01T00-00-00.jsonl,...] output_dir=OUT

Relaunching with the same output_dir resumes: finished generations in samples.jsonl are kept, never redone, and a
finished evaluation is not touched. Other settings in the same output_dir are refused; overwrite=true starts over.
``import=`` reads lm-eval --log_samples files instead of generating (import_task=, import_budget= where the files
do not say), rescores them with lprecover's scorer, and writes the same outputs as a native run.
"""

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from lprecover.atomic import exclusive_output
from lprecover.config import ConfigError, declare, load_config, reuse_or_refuse, save_settings, to_dict, valid_keys
from lprecover.evaluation.config import GENERATION_ONLY, EvalConfig
from lprecover.evaluation.engines import VLLMEngine
from lprecover.evaluation.importer import LogSamplesError, curves_from_records, import_records, model_name, read_files
from lprecover.evaluation.processes import Processes, launched_processes, own_gpu
from lprecover.evaluation.records import read_samples
from lprecover.evaluation.run import run_eval, saved_results, write_results
from lprecover.evaluation.tasks import check_task
from lprecover.log import get_logger
from lprecover.modeling import (
    ModelConfig,
    default_device,
    load_model_and_tokenizer,
    load_tokenizer,
    read_model_config,
    resolve_model_path,
)
from lprecover.tracking import WandbSettings, finish_run, log_evaluation, resolve_report_to, start_run

logger = get_logger(__name__)


@dataclass
class EvalCommand:
    """``lprecover eval``: the model, the evaluation settings (``eval=`` presets), and the output folder."""

    model: ModelConfig = field(default_factory=ModelConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    output_dir: str = declare(
        "", help="Folder for samples.jsonl, curves.json, summary.json, curves.png.", output_dir=True
    )
    report_to: str = declare(
        "none",
        help="wandb, none, or auto (wandb; offline unless W&B is configured).",
        choices=("wandb", "none", "auto"),
    )
    wandb: WandbSettings = field(default_factory=WandbSettings)
    # Each file once, checked in __post_init__ rather than declared unique: that message would name "imports", a
    # key the user never types (the command line says import=).
    imports: list[str] = declare(
        default_factory=list, help="lm-eval --log_samples jsonl files to import (written import=[...]), each once."
    )
    import_task: str | None = declare(None, help="Task of imported files that do not name one.")
    import_budget: int | None = declare(
        None, help="Thinking budget (tokens) of imported files that do not record one.", ge=1
    )
    overwrite: bool = declare(False, help="Start over in an output_dir that holds an evaluation with other settings.")

    def __post_init__(self):
        if not self.output_dir:
            raise ValueError("output_dir is required, e.g. output_dir=runs/eval-teacher.")
        missing = [f for f in self.imports if not Path(f).is_file()]
        if missing:
            raise ValueError(f"import: no such file {missing[0]}.")
        twice = sorted({f for f in self.imports if self.imports.count(f) > 1})
        if twice:
            raise ValueError(f"import names {', '.join(twice)} more than once; list each file once.")
        if self.import_task is not None:
            check_task(self.import_task, "import_task")


CONFIG = EvalCommand  # the keys `--help` lists


def help_text() -> str:
    return __doc__ + "\nkeys: " + ", ".join(valid_keys(EvalCommand)).replace("imports", "import")


def main(argv: list[str]) -> int:
    """Run the command on its ``key=value`` arguments (``lprecover.command.run`` adds ``--help`` and error lines)."""
    # ``import`` is a Python keyword, so the field is ``imports``; the command line says ``import=``.
    argv = ["imports=" + a.split("=", 1)[1] if a.startswith("import=") else a for a in argv]
    cfg = load_config(EvalCommand, argv)
    with exclusive_output(cfg.output_dir):  # a second evaluation into the same folder is refused, not interleaved
        result = evaluate(cfg)
    for task, s in result["summary"].items():
        print(task, " ".join(f"{k}={'-' if v is None else format(v, '.3f')}" for k, v in s.items()))
    return 0


def import_evaluation(cfg: EvalCommand, out: Path, resolved: dict) -> dict:
    """``import=``: rescore lm-eval log_samples files into ``out`` as a native evaluation."""
    try:
        read_files(cfg.imports, cfg.import_task, cfg.import_budget)  # every file is checked before anything is written
        save_settings(out, resolved)
        records, agreement = import_records(cfg.imports, out, cfg.import_task, cfg.import_budget)
        curves = curves_from_records(records, cfg.eval.k, cfg.eval.bootstrap, cfg.eval.seed)
    except LogSamplesError as e:
        raise ConfigError(str(e)) from None
    title = f"{resolved['model']['name_or_path']} (lm-eval log_samples)"
    return write_results(out, curves, records, title, agreement)


def generate(cfg: EvalCommand, out: Path, resolved: dict, procs: Processes) -> dict:
    """Load the model (or a vLLM engine) and run the evaluation into ``out``, this process's share of it."""
    read_model_config(cfg.model)  # a missing or unreadable checkpoint fails with its name, before any loading
    if cfg.eval.engine == "vllm":
        if procs.count > 1 and cfg.eval.vllm_tensor_parallel_size == 1:
            own_gpu(procs)

        tokenizer = load_tokenizer(cfg.model)
        model = VLLMEngine(
            resolve_model_path(cfg.model.name_or_path),
            tokenizer,
            dtype=cfg.model.dtype,
            tensor_parallel_size=cfg.eval.vllm_tensor_parallel_size,
            seed=cfg.eval.seed,
            **cfg.eval.vllm_kwargs,
        )
    else:
        model, tokenizer = load_model_and_tokenizer(cfg.model, procs.device(default_device()))
    # Inputs are judged where they are read (ConfigError); any other error here is a bug and keeps its traceback.
    return run_eval(
        model,
        tokenizer,
        cfg.eval,
        out,
        cfg.model,
        title=cfg.model.name_or_path,
        on_start=lambda: save_settings(out, resolved),
        processes=procs,
    )


def model_fingerprint(name_or_path: str) -> str | None:
    """A digest of a local checkpoint's ``config.json`` (which carries lprecover's pruning provenance); None for a hub
    id, whose ``model.revision`` names it."""
    config = Path(resolve_model_path(name_or_path)) / "config.json"
    return hashlib.sha256(config.read_bytes()).hexdigest()[:16] if config.is_file() else None


def evaluate(cfg: EvalCommand) -> dict:
    """Evaluate as ``cfg`` says (resuming what ``output_dir`` holds); returns ``{"curves", "summary"}``."""
    out = Path(cfg.output_dir)
    resolved = to_dict(cfg)

    if cfg.imports:  # an import is of the model lm-eval ran, when its results file says which
        resolved["model"]["name_or_path"] = model_name(cfg.imports) or resolved["model"]["name_or_path"]
    else:  # another model saved at the same path (e.g. pruned again) must not pass for the one evaluated before
        resolved["model_fingerprint"] = model_fingerprint(cfg.model.name_or_path)

    # Logging settings may change between launches of one evaluation, and so may how its thinking is generated
    # (one pass or per budget: the same records); what is measured may not.
    ignore = ("report_to", "wandb", "overwrite", *(f"eval.{k}" for k in GENERATION_ONLY))
    verdict = reuse_or_refuse(out, resolved, "an evaluation", cfg.overwrite, ignore=ignore)
    if verdict == "reuse" and (done := saved_results(out)):
        logger.info("%s already holds this evaluation, finished; nothing to do.", out)
        return done
    # Under a launcher with several processes each generates a share (``processes``); an import is one process's.
    procs = Processes() if cfg.imports else launched_processes()
    if verdict == "fresh" and out.exists() and procs.main:  # overwrite=true: old records must not mix into new curves
        shutil.rmtree(out)
    procs.wait()
    result = import_evaluation(cfg, out, resolved) if cfg.imports else generate(cfg, out, resolved, procs)
    if resolve_report_to(cfg.report_to) == "wandb" and procs.main:
        name = cfg.wandb.name or "eval-" + Path(cfg.model.name_or_path.rstrip("/")).name
        config = to_dict(cfg)
        start_run(out, name, cfg.wandb.group, ["eval", *cfg.wandb.tags], config, cfg.wandb.project, cfg.wandb.entity)
        log_evaluation(result["curves"], result["summary"], read_samples(out))
        finish_run()
    return result
