"""``lprecover export``: a recovered checkpoint you can ship.

    lprecover export run=runs/study-organism-shortgpt/recover-distill output_dir=exports/organism-distill
    lprecover export run=RUN output_dir=OUT push_to_hub=true hub_repo=me/qwen3-8b-pruned2-distill

LoRA adapters are merged into the pruned base. The export holds safetensors weights (sharded above
``max_shard_size``), the tokenizer with its chat template, the generation config, a config that transformers and
vLLM load (renumbered layers, consistent per-layer lists) carrying the provenance (``lprecover_pruning``:
source, removed layers; ``lprecover_recovery``: recipe, method, data), and a model card. It is reloaded and its
logits compared with the in-memory model before it appears, whole, at ``output_dir``.
"""

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from transformers import AutoModelForCausalLM

from lprecover.atomic import folder_written_whole
from lprecover.config import ConfigError, declare, load_config, load_settings
from lprecover.log import get_logger
from lprecover.readers import read_json
from lprecover.recovery.outputs import EVAL_DIR, MODEL_DIR, RECOVERY_FILE, failure, load_recovered
from lprecover.registry import model_traits
from lprecover.verdict import measure_text

logger = get_logger(__name__)

CARD_FILE, CURVES_IMAGE = "README.md", "scaling_curves.png"
TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 2e-2, torch.float16: 5e-3}  # max |logit difference| on reload


@dataclass
class ExportCommand:
    """``lprecover export``: which run, where to, how to shard, and whether to push."""

    run: str = declare("", help="A recovery run folder (written by lprecover/train.py).")
    output_dir: str = declare("", help="Export folder; must not exist or be empty.", output_dir=True)
    max_shard_size: str = declare(
        "5GB", help="Largest safetensors shard: a whole number and a unit (KB, MB, GB, KiB, MiB, GiB), e.g. 5GB."
    )
    comparison: str | None = declare(None, help="A compare/study comparison folder to take the recovery score from.")
    verify_prompts: int = declare(4, help="Prompts whose logits must match after reload.", ge=1)
    push_to_hub: bool = declare(False, help="Upload the export to hub_repo.")
    hub_repo: str | None = declare(None, help="Hub repo id, e.g. me/model-pruned2-distill.")
    private: bool = declare(True, help="Create the hub repo private.")

    def __post_init__(self):
        if not self.run or not self.output_dir:
            raise ValueError("run=RUN_DIR and output_dir=OUT are both required.")
        # The sizes transformers' save_pretrained reads (convert_file_size_to_int): a whole number, no decimals.
        if not re.fullmatch(r"[1-9][0-9]*[KMG]i?B", self.max_shard_size, re.IGNORECASE):
            raise ValueError(
                f"max_shard_size must be a whole number of KB, MB, GB, KiB, MiB or GiB, e.g. 5GB; got "
                f"'{self.max_shard_size}'."
            )
        if self.push_to_hub and not self.hub_repo:
            raise ValueError("push_to_hub=true needs hub_repo=OWNER/NAME.")


def check_inputs(cfg: ExportCommand) -> dict:
    """The run's recovery record; refuses a run without weights, a lost adapter base, or a non-empty output."""
    run, out = Path(cfg.run), Path(cfg.output_dir)
    record_path = run / MODEL_DIR / RECOVERY_FILE
    if not record_path.exists() and (failed := failure(run)):
        raise ConfigError(
            f"{run} holds no recovered weights: its training diverged at step {failed['step']}: {failed['reason']}."
        )
    if not record_path.exists():
        raise ConfigError(
            f"{run} holds no recovered weights ({MODEL_DIR}/{RECOVERY_FILE} is missing): train it to the end first."
        )
    record = read_json(record_path)
    if cfg.comparison and not (Path(cfg.comparison) / "summary.json").is_file():
        raise ConfigError(
            f"comparison '{cfg.comparison}' holds no summary.json; give a folder written by lprecover compare or study."
        )
    if (run / MODEL_DIR / "adapter_config.json").exists():
        base = run / record["student"]
        if not (base / "config.json").exists():
            raise ConfigError(
                f"The LoRA adapters in {run / MODEL_DIR} need their base model at {base}, which is missing."
            )
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"output_dir '{out}' is not empty; choose a new folder for the export.")
    return record


def _recovery_verdicts(cfg: ExportCommand) -> dict | None:
    """The run's rows of a comparison's summary.json (verdict and recovery measures per task), if one holds it."""
    run = Path(cfg.run).resolve()
    candidates = [Path(cfg.comparison)] if cfg.comparison else [run.parent / "comparison"]
    for folder in candidates:
        summary = folder / "summary.json"
        if summary.exists():
            for row in read_json(summary)["runs"]:
                if Path(row["path"]).resolve() == run:
                    return {task: t for task, t in row["tasks"].items() if t.get("verdict")}
    return None


def _verify_prompts(tokenizer, config, n: int) -> list[list[int]]:
    registered = model_traits(config).verify_prompts
    if registered is not None:
        texts = registered(n)
    else:
        texts = [
            "What is 17 + 25?",
            "Name the capital of France.",
            "Solve for x: 3x - 7 = 11.",
            "Why is the sky blue?",
        ]
        texts = (texts * n)[:n]
    return [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": t}], tokenize=True, add_generation_prompt=True, return_dict=True
        )["input_ids"]
        for t in texts
    ]


def verify(model, path: Path, prompts: list[list[int]]) -> float:
    """Reload ``path`` and return the largest logit difference to ``model``; raise if beyond the dtype's tolerance."""
    reloaded = AutoModelForCausalLM.from_pretrained(path, dtype=model.dtype).to(model.device).eval()
    tolerance = TOLERANCE.get(model.dtype, 1e-2)
    worst = 0.0
    with torch.no_grad():
        for ids in prompts:
            x = torch.tensor([ids], device=model.device)
            worst = max(worst, (model(x).logits.float() - reloaded(x).logits.float()).abs().max().item())
    if worst > tolerance:
        raise RuntimeError(
            f"Export verification failed: the reloaded model's logits differ by up to {worst:.3g} (tolerance "
            f"{tolerance:g} for {model.dtype}). Nothing was exported."
        )
    return worst


def model_card(record: dict, run_cfg: dict, config, eval_dir: Path, verdicts: dict | None, name: str) -> str:
    prune = getattr(config, "lprecover_pruning", None) or {}
    source = prune.get("source_model") or record.get("source_model")
    hub_base = source if source and "/" in source and not Path(source).exists() else None
    removed, n_source = prune.get("removed_layers", []), prune.get("source_num_layers")
    data = run_cfg.get("data", {})
    data_desc = data.get("dataset") or f"{data.get('source')} ({data.get('split')})"
    meta = {
        "library_name": "transformers",
        "pipeline_tag": "text-generation",
        "tags": [
            "lprecover",
            "layer-pruning",
            f"pruning-{prune.get('method', 'unknown')}",
            f"recovery-{record['recipe']}",
        ],
    }
    if hub_base:
        meta["base_model"] = hub_base
    lines = ["---", yaml.safe_dump(meta, sort_keys=False).strip(), "---", "", f"# {name}", ""]
    lines += [
        f"`{source}` with {len(removed)} of its {n_source} decoder layers removed by `{prune.get('method')}` "
        f"(original layers {removed}), then recovered with the lprecover recipe `{record['recipe']}` "
        f"(method `{record['method']}`, trained: `{record['trainable']}`) for {record['steps']} steps on {data_desc}.",
        "",
        "## Test-time scaling",
        "",
    ]
    curves = json.loads((eval_dir / "curves.json").read_text()) if (eval_dir / "curves.json").exists() else None
    if curves:
        lines += [f"![scaling curves]({CURVES_IMAGE})", ""]
        for task, c in curves.get("sequential", {}).items():
            lines += [f"Accuracy by thinking budget on `{task}`:", ""]
            lines += ["| budget | " + " | ".join(map(str, c["budget"])) + " |", "|---" * (len(c["budget"]) + 1) + "|"]
            lines += ["| accuracy | " + " | ".join(f"{a:.3f}" for a in c["accuracy"]) + " |", ""]
    else:
        lines += ["Not evaluated: run `lprecover eval model.name_or_path=THIS_FOLDER output_dir=...`.", ""]
    if verdicts:
        for task, s in verdicts.items():
            lines.append(
                f"Recovery on `{task}`: verdict `{s['verdict']}`; area share {measure_text(s.get('area_recovered_share'))} "
                "(the share of the sequential-curve area pruning lost that recovery won back, 1 = all of it); area "
                f"{measure_text(s.get('area_ratio_to_teacher'))} times the unpruned teacher's; slope "
                f"{measure_text(s.get('slope_ratio_to_teacher'))} times the teacher's (accuracy per doubling of the budget)."
            )
        lines.append("")
    else:
        lines += ["Recovery: not measured (run `lprecover compare` with the teacher and pruned base).", ""]
    lines += [
        "## How to load",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "",
        'model = AutoModelForCausalLM.from_pretrained("PATH_OR_REPO")',
        'tokenizer = AutoTokenizer.from_pretrained("PATH_OR_REPO")',
        "```",
        "",
        "vLLM: `vllm serve PATH_OR_REPO`. The config is a standard one with fewer layers; `lprecover_pruning` and "
        "`lprecover_recovery` in `config.json` record how it was made.",
        "",
    ]
    return "\n".join(lines)


def export(cfg: ExportCommand) -> Path:
    """Merge, write, card, verify, then rename into place; returns the export folder."""
    record = check_inputs(cfg)
    run, out = Path(cfg.run), Path(cfg.output_dir)
    run_cfg = load_settings(run)
    model, tokenizer = load_recovered(run)
    model.config.lprecover_recovery = {k: record.get(k) for k in ("recipe", "method", "trainable", "steps")} | {
        "data": run_cfg.get("data")
    }
    with folder_written_whole(out) as tmp:  # verified before it is published: a failed check leaves nothing
        model.save_pretrained(tmp, safe_serialization=True, max_shard_size=cfg.max_shard_size)
        tokenizer.save_pretrained(tmp)
        if (run / EVAL_DIR / "curves.png").exists():
            shutil.copy(run / EVAL_DIR / "curves.png", tmp / CURVES_IMAGE)
        card = model_card(record, run_cfg, model.config, run / EVAL_DIR, _recovery_verdicts(cfg), out.name)
        (tmp / CARD_FILE).write_text(card)
        worst = verify(model, tmp, _verify_prompts(tokenizer, model.config, cfg.verify_prompts))
    logger.info("Exported %s to %s (reload verified: max logit difference %.2g)", run, out, worst)
    if cfg.push_to_hub:
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(cfg.hub_repo, private=cfg.private, exist_ok=True)
        api.upload_folder(folder_path=str(out), repo_id=cfg.hub_repo)
        logger.info("Pushed %s to the hub as %s", out, cfg.hub_repo)
    return out


CONFIG = ExportCommand  # the keys `--help` lists


def main(argv: list[str]) -> int:
    """Run the command on its ``key=value`` arguments (``lprecover.command.run`` adds ``--help`` and error lines)."""
    cfg = load_config(ExportCommand, argv)
    out = export(cfg)
    print(f"exported {cfg.run} to {out}: {', '.join(sorted(p.name for p in out.iterdir()))}")
    return 0
