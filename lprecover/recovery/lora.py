"""LoRA recovery through PEFT: adapters on the pruned model's linear layers, everything else frozen."""

import re

import torch.nn as nn
from peft import LoraConfig, get_peft_model

from lprecover.config import ConfigError
from lprecover.recovery.recipe import LoraSettings

ALL_LINEAR = "all-linear"


def _linear_names(model: nn.Module) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, nn.Linear)]


def check_targets(model: nn.Module, lora: LoraSettings) -> None:
    """Refuse target modules that match nothing, naming them and the model's linear layers.

    Works on a meta-device skeleton, so it runs before any weights load. PEFT's own matching rules: a list entry
    matches a module name exactly or as its last dotted part(s); a string other than 'all-linear' is a regex that
    must match a whole name.
    """
    targets = lora.target_modules
    if isinstance(targets, str) and targets.lower() == ALL_LINEAR:
        return
    names = [name for name, _ in model.named_modules()]
    if isinstance(targets, str):
        missing = [] if any(re.fullmatch(targets, n) for n in names) else [targets]
    else:
        missing = [t for t in targets if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        leaves = sorted({n.rsplit(".", 1)[-1] for n in _linear_names(model)})
        raise ConfigError(
            f"lora.target_modules {missing} match no module of this model. Its linear layers are named: "
            f"{', '.join(leaves)}; or use lora.target_modules=all-linear."
        )


def apply_lora(model: nn.Module, lora: LoraSettings):
    """Wrap ``model`` with fresh LoRA adapters; only the adapters are trainable."""
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)
