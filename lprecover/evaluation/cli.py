"""``lprecover eval``: test-time scaling curves of one model.

    lprecover eval model.name_or_path=PATH eval=scaling output_dir=OUT
    lprecover eval model=organism eval=sequential eval.tasks=[organism_long] output_dir=OUT
    lprecover eval model=smollm2_135m eval.tasks=[gsm8k] eval.paths={gsm8k:test.jsonl} eval.budgets=[128,256] output_dir=OUT

Relaunching with the same output_dir resumes: finished generations in samples.jsonl are kept, never redone.
"""

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lprecover.config import CONFIG_FILE, ConfigError, atomic_write_text, load_config, to_dict, valid_keys
from lprecover.evaluation.records import read_samples
from lprecover.evaluation.run import EvalConfig, run_eval
from lprecover.log import get_logger
from lprecover.modeling import (
    ModelConfig,
    default_device,
    load_model_and_tokenizer,
    load_tokenizer,
    resolve_model_path,
)
from lprecover.tracking import WandbSettings, finish_run, log_evaluation, resolve_report_to, start_run

logger = get_logger(__name__)


@dataclass
class EvalCommand:
    """``lprecover eval``: the model, the evaluation settings (``eval=`` presets), and the output folder."""

    model: ModelConfig = field(default_factory=ModelConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    output_dir: str = field(
        default="", metadata={"help": "Folder for samples.jsonl, curves.json, summary.json, curves.png."}
    )
    report_to: str = field(
        default="none", metadata={"help": "wandb, none, or auto (wandb; offline unless W&B is configured)."}
    )
    wandb: WandbSettings = field(default_factory=WandbSettings)

    def __post_init__(self):
        if not self.output_dir:
            raise ValueError("output_dir is required, e.g. output_dir=runs/eval-teacher.")


def main(argv: list[str]) -> int:
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__ + "\nkeys: " + ", ".join(valid_keys(EvalCommand)))
        return 0
    result = evaluate(load_config(EvalCommand, argv))
    for task, s in result["summary"].items():
        print(task, " ".join(f"{k}={v:.3f}" for k, v in s.items()))
    return 0


def evaluate(cfg: EvalCommand) -> dict:
    """Evaluate as ``cfg`` says (resuming what ``output_dir`` holds); returns ``{"curves", "summary"}``."""
    out = Path(cfg.output_dir)
    saved = out / CONFIG_FILE
    resolved = to_dict(cfg)

    def what_is_measured(d: dict) -> dict:  # logging settings may change between launches of one evaluation
        return {k: v for k, v in d.items() if k not in ("report_to", "wandb")}

    if saved.exists() and what_is_measured(yaml.safe_load(saved.read_text())) != what_is_measured(resolved):
        raise ConfigError(
            f"{out} holds an evaluation with different settings; resuming it would mix them. Use a new output_dir."
        )
    if cfg.eval.engine == "vllm":
        from lprecover.evaluation.engines import VLLMEngine

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
        model, tokenizer = load_model_and_tokenizer(cfg.model, default_device())
    try:
        result = run_eval(
            model,
            tokenizer,
            cfg.eval,
            out,
            cfg.model,
            title=cfg.model.name_or_path,
            on_start=lambda: atomic_write_text(saved, yaml.safe_dump(resolved, sort_keys=False)),
        )
    except ValueError as e:
        raise ConfigError(str(e)) from None
    if resolve_report_to(cfg.report_to) == "wandb":
        name = cfg.wandb.name or "eval-" + Path(cfg.model.name_or_path.rstrip("/")).name
        config = to_dict(cfg)
        start_run(out, name, cfg.wandb.group, ["eval", *cfg.wandb.tags], config, cfg.wandb.project, cfg.wandb.entity)
        log_evaluation(result["curves"], result["summary"], read_samples(out))
        finish_run()
    return result
