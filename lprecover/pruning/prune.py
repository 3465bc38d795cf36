"""The pruning API: choose layers by a criterion, cut them out, and save the result whole.

    from lprecover.pruning.config import PruneConfig
    from lprecover.pruning.prune import prune_model, save_pruned
    decision, provenance = prune_model(model, tokenizer, PruneConfig(method="shortgpt", n_layers=2))
    save_pruned(model, tokenizer, "out/pruned", decision, provenance)

Recipes call ``prune_model`` when they prune before recovering; ``lprecover prune`` wraps the same calls.
"""

import json
from pathlib import Path

import yaml

from lprecover.atomic import folder_written_whole
from lprecover.config import CONFIG_FILE, reuse_or_refuse, to_dict
from lprecover.log import get_logger
from lprecover.modeling import ModelConfig, load_model_and_tokenizer
from lprecover.pruning.calibration import build_calibration
from lprecover.pruning.config import PruneConfig
from lprecover.pruning.criteria import NEEDS_CALIBRATION, Decision, apply, decide
from lprecover.surgery import find_blocks

logger = get_logger(__name__)

SCORES_FILE = "prune_scores.json"
PLOT_FILE = "prune_scores.png"


def prune_model(model, tokenizer, cfg: PruneConfig, source: str | None = None) -> tuple[Decision, dict]:
    """Score layers with ``cfg.method``, remove the chosen ones in place, and return (decision, provenance)."""
    cfg.check_against(len(find_blocks(model)[1]))
    cal = None
    if cfg.method in NEEDS_CALIBRATION:
        cal = build_calibration(
            model,
            tokenizer,
            cfg.calibration,
            cfg.calibration_path,
            cfg.num_samples,
            cfg.seq_len,
            cfg.batch_size,
            cfg.seed,
        )
    decision = decide(
        model,
        cal,
        cfg.method,
        cfg.n_layers,
        layers=cfg.layers,
        seed=cfg.seed,
        merge_count=cfg.laco_merge_count,
        threshold=cfg.laco_threshold,
        min_layer=cfg.laco_min_layer,
        interval=cfg.laco_interval,
    )
    provenance = apply(model, decision, cfg.method, source=source)
    provenance["calibration"] = None if cal is None else {"source": cal.source, "tokens": cal.num_tokens}
    model.config.lprecover_pruning = provenance
    return decision, provenance


def plot_scores(decision: Decision, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5, 0.3 * len(decision.scores)), 3.2))
    colors = ["tab:red" if i in decision.removed else "tab:blue" for i in range(len(decision.scores))]
    ax.bar(range(len(decision.scores)), decision.scores, color=colors)
    ax.set_xlabel("layer (red: removed)")
    ax.set_ylabel(decision.score_name)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def save_pruned(model, tokenizer, output_dir, decision: Decision, provenance: dict, extra_files=None) -> Path:
    """Write the pruned model, tokenizer, generation config, scores and plot to ``output_dir``, whole or not at all.

    Args:
        extra_files: ``{name: text}`` written beside the model (e.g. the resolved ``config.yaml``).
    """
    out = Path(output_dir)
    with folder_written_whole(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        scores = {
            "method": provenance["method"],
            "score_name": decision.score_name,
            "scores": decision.scores,
            "removed_layers": decision.removed,
            "merged_layers": {str(k): v for k, v in decision.merged.items()},
            "provenance": provenance,
        }
        (tmp / SCORES_FILE).write_text(json.dumps(scores, indent=2))
        plot_scores(decision, tmp / PLOT_FILE, f"{provenance['method']}: removed {decision.removed}")
        for name, text in (extra_files or {}).items():
            (tmp / name).write_text(text)
    logger.info("Saved the pruned model to %s", out)
    return out


def prune_source(model_cfg: ModelConfig, prune: PruneConfig, pruned_dir: Path, overwrite: bool = False) -> str:
    """The source model pruned as ``prune`` says, in ``pruned_dir``: made once, then reused while the settings match.

    Raises:
        ConfigError: ``pruned_dir`` holds a model pruned with other settings (unless ``overwrite``).
    """
    settings = {"model": to_dict(model_cfg), "prune": to_dict(prune)}
    if reuse_or_refuse(pruned_dir, settings, "a pruned model", overwrite) == "fresh":
        model, tokenizer = load_model_and_tokenizer(model_cfg)
        decision, provenance = prune_model(model, tokenizer, prune, source=model_cfg.name_or_path)
        saved = {CONFIG_FILE: yaml.safe_dump(settings, sort_keys=False)}
        save_pruned(model, tokenizer, pruned_dir, decision, provenance, extra_files=saved)
        logger.info("Pruned %s: removed layers %s (%s)", model_cfg.name_or_path, decision.removed, prune.method)
    return str(pruned_dir)
