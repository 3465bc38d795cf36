"""Partial-layer recovery ("Reassessing Layer Pruning in LLMs"): train only what borders the cut.

The kept layers on each side of every removed gap train, together with the final norm and ``lm_head``; every
other weight is frozen. Where the checkpoint ties ``lm_head`` to the input embeddings they are one tensor, so the
embeddings train with it.
"""

import torch.nn as nn

from lprecover.surgery import find_blocks, get_attr_path, get_provenance, kept_to_original

FINAL_NORMS = ("norm", "final_layernorm", "ln_f", "final_norm")


def border_layers(config, width: int) -> list[int]:
    """Current indices of the kept layers within ``width`` layers of a removed gap.

    Raises:
        ValueError: when the checkpoint carries no pruning provenance, so there is no gap to border.
    """
    if get_provenance(config) is None:
        raise ValueError(
            "trainable=partial needs a checkpoint pruned by lprecover (its config records which layers were "
            "removed); this one has no pruning provenance."
        )
    original = kept_to_original(config)
    borders = set()
    for i in range(len(original) - 1):
        if original[i + 1] - original[i] > 1:  # a gap between current layers i and i+1
            borders.update(range(max(0, i + 1 - width), i + 1))
            borders.update(range(i + 1, min(len(original), i + 1 + width)))
    # Layers cut from either end leave a gap at the boundary of the stack.
    if original and original[0] > 0:
        borders.update(range(min(width, len(original))))
    n_source = get_provenance(config).get("source_num_layers")
    if original and n_source and original[-1] < n_source - 1:
        borders.update(range(max(0, len(original) - width), len(original)))
    return sorted(borders)


def final_norm(model: nn.Module) -> nn.Module:
    path, _ = find_blocks(model)
    parent = get_attr_path(model, path.rsplit(".", 1)[0]) if "." in path else model
    for name in FINAL_NORMS:
        if isinstance(getattr(parent, name, None), nn.Module):
            return getattr(parent, name)
    raise ValueError(
        f"Cannot find the final norm beside {path} (looked for {', '.join(FINAL_NORMS)}); "
        "trainable=partial does not support this architecture."
    )


def freeze_all_but_border(model: nn.Module, width: int) -> list[str]:
    """Freeze everything except the border layers, the final norm and ``lm_head``; return the trainable names."""
    _, blocks = find_blocks(model)
    train = [blocks[i] for i in border_layers(model.config, width)]
    train += [final_norm(model), model.get_output_embeddings()]
    model.requires_grad_(False)
    for module in train:
        module.requires_grad_(True)
    return [n for n, p in model.named_parameters() if p.requires_grad]
