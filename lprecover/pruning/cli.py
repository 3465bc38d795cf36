"""``lprecover prune``: remove decoder layers by a criterion and save the pruned model.

lprecover prune model=organism prune.method=shortgpt prune.n_layers=2 output_dir=OUT
lprecover prune model.name_or_path=PATH prune.method=selection prune.layers=[3,4] output_dir=OUT
"""

from dataclasses import dataclass

import torch
import yaml
from transformers import AutoModelForCausalLM

from lprecover.config import CONFIG_FILE, ConfigError, declare, load_config, reuse_or_refuse, to_dict
from lprecover.log import get_logger
from lprecover.modeling import ModelConfig, load_model_and_tokenizer, read_model_config
from lprecover.pruning.config import PruneConfig
from lprecover.pruning.prune import prune_model, save_pruned
from lprecover.surgery import find_blocks, layer_count

logger = get_logger(__name__)


@dataclass
class PruneCommand:
    """``lprecover prune``: which model, how to prune it, and where to save it."""

    model: ModelConfig = declare(help="The model to prune (model=NAME picks a preset).", default_factory=ModelConfig)
    prune: PruneConfig = declare(
        help="How to prune: the criterion, its layers and calibration.", default_factory=PruneConfig
    )
    output_dir: str = declare("", help="Folder for the pruned model (written whole or not at all).", output_dir=True)
    overwrite: bool = declare(False, help="Replace an output_dir that holds a different model.")

    def __post_init__(self):
        if not self.output_dir:
            raise ValueError("output_dir is required, e.g. output_dir=runs/pruned-2.")


def check_output_dir(cfg: PruneCommand) -> bool:
    """Return True when ``output_dir`` already holds this exact pruning (nothing to do); refuse a different one."""
    ignore = ("output_dir", "overwrite")  # the same pruning, moved or forced, is still the same pruning
    return reuse_or_refuse(cfg.output_dir, to_dict(cfg), "a pruned model", cfg.overwrite, ignore=ignore) == "reuse"


def check_model(cfg: PruneCommand) -> None:
    """Refuse models without a block list and impossible layer choices from the config alone, before loading weights."""
    config = read_model_config(cfg.model)
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config, trust_remote_code=cfg.model.trust_remote_code)
    try:
        find_blocks(skeleton)
        cfg.prune.check_against(layer_count(config))
    except ValueError as e:  # UnsupportedModelError included: the model or the prune spec, judged against each other
        raise ConfigError(str(e)) from None


CONFIG = PruneCommand  # the keys `--help` lists


def main(argv: list[str]) -> int:
    """Run the command on its ``key=value`` arguments (``lprecover.command.run`` adds ``--help`` and error lines)."""
    cfg = load_config(PruneCommand, argv)
    if check_output_dir(cfg):
        logger.info("%s already holds this pruning; nothing to do.", cfg.output_dir)
        return 0
    check_model(cfg)
    model, tokenizer = load_model_and_tokenizer(cfg.model)
    decision, provenance = prune_model(model, tokenizer, cfg.prune, source=cfg.model.name_or_path)
    resolved = yaml.safe_dump(to_dict(cfg) | {"overwrite": False}, sort_keys=False)
    save_pruned(model, tokenizer, cfg.output_dir, decision, provenance, extra_files={CONFIG_FILE: resolved})
    print(f"removed layers {decision.removed} ({cfg.prune.method}); saved to {cfg.output_dir}")
    return 0
