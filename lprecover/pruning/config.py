"""How to prune (``prune.*``): a light module, read by every command that prunes, that builds no calibration text
and imports no evaluation code."""

from dataclasses import dataclass
from pathlib import Path

from lprecover.config import declare
from lprecover.pruning.criteria import CRITERIA
from lprecover.surgery import validate_layers

# Calibration sources besides hf:DATASET (lprecover.pruning.calibration builds them).
SOURCES = ("auto", "traces", "problems", "text")


def check_source(source: str) -> None:
    if source not in SOURCES and not source.startswith("hf:"):
        raise ValueError(
            f"Unknown prune.calibration source '{source}'. Use one of {', '.join(SOURCES)} or hf:DATASET."
        )


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
