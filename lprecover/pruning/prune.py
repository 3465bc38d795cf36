"""The pruning API: choose layers by a criterion, cut them out, and save the result whole.

    from lprecover.pruning import PruneConfig, prune_model, save_pruned
    decision, provenance = prune_model(model, tokenizer, PruneConfig(method="shortgpt", n_layers=2))
    save_pruned(model, tokenizer, "out/pruned", decision, provenance)

Recipes call ``prune_model`` when they prune before recovering; ``lprecover prune`` wraps the same calls.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from lprecover.atomic import folder_written_whole
from lprecover.config import CONFIG_FILE, declare, reuse_or_refuse, to_dict
from lprecover.log import get_logger
from lprecover.modeling import ModelConfig, load_model_and_tokenizer
from lprecover.pruning.calibration import SOURCES, build_calibration, check_source
from lprecover.pruning.criteria import CRITERIA, NEEDS_CALIBRATION, Decision, apply, decide
from lprecover.surgery import validate_layers

logger = get_logger(__name__)

SCORES_FILE = "prune_scores.json"
PLOT_FILE = "prune_scores.png"
ORGANISM_MARKER = "lprecover_organism"


@dataclass
class PruneConfig:
    """How to prune.

    Criterion: ``method`` and how many layers (``n_layers``) or which (``layers``, for ``selection``).
    Calibration: ``calibration`` source, ``calibration_path``, ``num_samples`` texts of up to ``seq_len`` tokens.
    LaCo: ``laco_merge_count`` layers merged per step at cosine ``laco_threshold``, from layer ``laco_min_layer`` up.
    """

    method: str = declare("shortgpt", help=f"One of: {', '.join(CRITERIA)}.", choices=list(CRITERIA))
    n_layers: int = declare(2, help="Layers to remove.", ge=1)
    layers: list[int] | None = declare(
        None, help="Explicit layer indices, for method=selection.", ge=0, nonempty=True, unique=True
    )
    # Not choices: besides the named sources it takes any hf:DATASET (checked by calibration.check_source).
    calibration: str = declare("auto", help=f"{', '.join(SOURCES)} or hf:DATASET.")
    calibration_path: str | None = declare(None, help="Local file for the calibration source.")
    num_samples: int = declare(64, help="Calibration texts.", ge=1)
    seq_len: int = declare(512, help="Tokens per calibration text (and trace length for traces).", ge=8)
    batch_size: int = declare(8, help="Calibration batch size.", ge=1)
    seed: int = declare(0, help="Seed for calibration sampling and method=random.", ge=0)
    laco_merge_count: int = declare(2, help="LaCo: layers merged into one per step.", ge=1)
    # A cosine similarity: -1 accepts every merge, 1 only merges that change nothing.
    laco_threshold: float = declare(0.85, help="LaCo: minimum final-state cosine to accept a merge.", ge=-1, le=1)
    laco_min_layer: int = declare(1, help="LaCo: lowest layer that may absorb others.", ge=0)
    laco_interval: int = declare(1, help="LaCo: layers skipped after an accepted merge.", ge=1)

    def __post_init__(self):
        if self.method == "selection":
            if not self.layers:
                raise ValueError("prune.method=selection needs prune.layers=[i,j,...] naming the layers to remove.")
            self.n_layers = len(self.layers)
        elif self.layers:
            raise ValueError(f"prune.layers is only read by method=selection, not '{self.method}'.")
        check_source(self.calibration)
        if self.calibration == "text" and not self.calibration_path:
            raise ValueError("prune.calibration=text needs prune.calibration_path=FILE (.txt or .jsonl with 'text').")
        if self.calibration_path and not Path(self.calibration_path).is_file():
            raise ValueError(f"prune.calibration_path '{self.calibration_path}' is not a file.")

    def check_against(self, num_layers: int) -> None:
        """Errors that need the model's layer count, raised before any weights load."""
        if self.n_layers >= num_layers:
            raise ValueError(
                f"prune.n_layers={self.n_layers} would remove every layer: the model has {num_layers}. "
                f"Use at most {num_layers - 1}."
            )
        if self.layers:
            validate_layers(self.layers, num_layers, "prune.layers")
        if self.method == "laco":
            self._check_laco(num_layers)

    def _check_laco(self, num_layers: int) -> None:
        """LaCo walks down from layer ``num_layers - laco_merge_count - 1`` (the highest that has ``laco_merge_count``
        layers above it to absorb) to ``laco_min_layer``: refuse settings that leave that walk empty."""
        if self.laco_min_layer >= num_layers - 1:
            raise ValueError(
                f"prune.laco_min_layer={self.laco_min_layer} leaves no layer to merge into: the model has {num_layers} "
                f"layers, and a merge needs one above it. Use at most {num_layers - 2}."
            )
        top = num_layers - self.laco_merge_count - 1
        if top < self.laco_min_layer:
            raise ValueError(
                f"prune.laco_merge_count={self.laco_merge_count} leaves no layer to merge into: a layer from "
                f"prune.laco_min_layer={self.laco_min_layer} up must have that many of the model's {num_layers} "
                f"layers above it. Use prune.laco_merge_count at most {num_layers - 1 - self.laco_min_layer}."
            )


def is_organism(model) -> bool:
    return bool(getattr(model.config, ORGANISM_MARKER, None))


def prune_model(model, tokenizer, cfg: PruneConfig, source: str | None = None) -> tuple[Decision, dict]:
    """Score layers with ``cfg.method``, remove the chosen ones in place, and return (decision, provenance)."""
    from lprecover.surgery import find_blocks

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
            is_organism=is_organism(model),
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
