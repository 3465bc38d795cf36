"""Layer surgery: find a model's decoder blocks, remove or merge some, and keep everything consistent.

Removing a block is easy; keeping the model *correct* afterwards is the point of this module:

- every kept block's ``layer_idx`` is renumbered 0..n-1, so the KV cache (indexed by ``layer_idx``) stays exact and
  generation can use it, instead of switching the cache off and recomputing the prefix for every token;
- every per-layer field of the config is rewritten for the kept layers (``layer_types``, ``max_window_layers``,
  MoE layer lists, ...), so the cache, sliding windows and expert layouts match the blocks that remain;
- the provenance (source model, method, removed layers, and each kept layer's original index) is stored in the
  config, composes across repeated pruning, and lets hidden-state distillation map student layers to teacher layers.
"""

from collections.abc import Iterable

import torch
from torch import nn

from lprecover.log import get_logger

logger = get_logger(__name__)

PROVENANCE_KEY = "lprecover_pruning"

# Where architectures keep their decoder blocks, most common first.
BLOCK_PATHS = (
    "model.layers",
    "model.language_model.layers",
    "model.decoder.layers",
    "transformer.h",
    "transformer.layers",
    "transformer.blocks",
    "gpt_neox.layers",
    "backbone.layers",
    "model.transformer.h",
)
LAYER_COUNT_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
# Config fields that hold layer *indices* (not one entry per layer).
INDEX_LIST_KEYS = ("mlp_only_layers", "full_attn_idxs", "attn_layer_indices", "moe_layer_indices")
# Integer fields meaning "layers with index below this value": recomputed as the count of kept layers below it.
THRESHOLD_KEYS = ("max_window_layers", "first_k_dense_replace")


class UnsupportedModelError(ValueError):
    """The model has no decoder block list that layer surgery can edit."""


def _get_attr_path(obj, path: str):
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def find_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """Return ``(attribute path, ModuleList)`` of the model's decoder blocks.

    Raises:
        UnsupportedModelError: naming the model class when no block list is found.
    """
    n = layer_count(model.config, required=False)
    for path in BLOCK_PATHS:
        blocks = _get_attr_path(model, path)
        if isinstance(blocks, nn.ModuleList) and len(blocks) > 0 and (n is None or len(blocks) == n):
            return path, blocks
    # Fall back to any ModuleList of identical blocks whose length matches the configured layer count.
    for name, module in model.named_modules():
        if (
            isinstance(module, nn.ModuleList)
            and n is not None
            and len(module) == n
            and len({type(m) for m in module}) == 1
        ):
            return name, module
    raise UnsupportedModelError(
        f"{type(model).__name__} has no decoder block list that layer surgery recognises (looked for "
        f"{', '.join(BLOCK_PATHS)} and any ModuleList of {n} identical blocks). Layer pruning needs a model whose "
        "decoder blocks sit in one nn.ModuleList."
    )


def _text_config(config):
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def layer_count(config, required: bool = True) -> int | None:
    """The configured number of decoder layers."""
    cfg = _text_config(config)
    for key in LAYER_COUNT_KEYS:
        value = getattr(cfg, key, None)
        if isinstance(value, int):
            return value
    if required:
        raise UnsupportedModelError(f"{type(config).__name__} does not say how many decoder layers it has.")
    return None


def per_layer_fields(config) -> dict[str, str]:
    """Config fields that depend on layer positions, mapped to how surgery rewrites them.

    Kinds: ``list`` (one entry per layer, trimmed), ``index`` (a list of layer indices, renumbered),
    ``threshold`` (an int boundary, recounted), ``count`` (the layer count itself).
    """
    cfg = _text_config(config)
    n = layer_count(cfg)
    fields = {}
    for key, value in vars(cfg).items():
        if key.startswith("_"):
            continue
        if key in LAYER_COUNT_KEYS and value == n:
            fields[key] = "count"
        elif key in INDEX_LIST_KEYS and isinstance(value, (list, tuple)):
            fields[key] = "index"
        elif key in THRESHOLD_KEYS and isinstance(value, int):
            fields[key] = "threshold"
        elif isinstance(value, (list, tuple)) and len(value) == n and n > 1:
            fields[key] = "list"
    return fields


def _moe_step_to_list(cfg, n: int) -> None:
    """``decoder_sparse_step`` picks MoE layers by ``(idx + 1) % step``, a rule renumbering breaks: make it explicit."""
    step = getattr(cfg, "decoder_sparse_step", None)
    if isinstance(step, int) and step > 1 and hasattr(cfg, "mlp_only_layers"):
        dense = {i for i in range(n) if (i + 1) % step != 0}
        cfg.mlp_only_layers = sorted(dense | set(cfg.mlp_only_layers or []))
        cfg.decoder_sparse_step = 1


def get_provenance(config) -> dict | None:
    return getattr(config, PROVENANCE_KEY, None)


def _renumber_block(block: nn.Module, new_idx: int) -> None:
    for module in block.modules():
        if hasattr(module, "layer_idx") and isinstance(module.layer_idx, int):
            module.layer_idx = new_idx
    if hasattr(block, "layer_index") and isinstance(block.layer_index, int):
        block.layer_index = new_idx


def validate_layers(layers: Iterable[int], n: int, what: str = "layers") -> list[int]:
    """Check a set of layer indices against a model of ``n`` layers; returns them sorted."""
    layers = list(layers)
    dupes = sorted({i for i in layers if layers.count(i) > 1})
    if dupes:
        raise ValueError(f"{what} lists layer(s) {dupes} more than once.")
    bad = [i for i in layers if not isinstance(i, int) or i < 0 or i >= n]
    if bad:
        raise ValueError(f"{what} {bad} out of range: the model has {n} layers, indexed 0..{n - 1}.")
    if len(layers) >= n:
        raise ValueError(f"Cannot remove {len(layers)} of {n} layers: at least one layer must remain.")
    return sorted(layers)


def remove_layers(
    model: nn.Module, layers: Iterable[int], method: str = "selection", source: str | None = None
) -> dict:
    """Delete decoder blocks in place and rewrite the config around the ones that remain.

    Args:
        layers: indices (in the model's *current* numbering) of the blocks to delete.
        method: the criterion that chose them, recorded in the provenance.
        source: the source model's name or path; defaults to the config's ``_name_or_path``.

    Returns:
        The provenance dict, also stored in ``model.config`` under ``lprecover_pruning``.
    """
    path, blocks = find_blocks(model)
    n = len(blocks)
    drop = set(validate_layers(layers, n))
    keep = [i for i in range(n) if i not in drop]

    cfg = _text_config(model.config)
    _moe_step_to_list(cfg, n)
    for key, kind in per_layer_fields(cfg).items():
        value = getattr(cfg, key)
        if kind == "count":
            setattr(cfg, key, len(keep))
        elif kind == "list":
            setattr(cfg, key, type(value)(value[i] for i in keep))
        elif kind == "index":
            setattr(cfg, key, [keep.index(i) for i in value if i in keep])
        elif kind == "threshold":
            setattr(cfg, key, sum(1 for i in keep if i < value))

    kept_blocks = [blocks[i] for i in keep]
    for new_idx, block in enumerate(kept_blocks):
        _renumber_block(block, new_idx)
    parent_path, _, attr = path.rpartition(".")
    parent = _get_attr_path(model, parent_path) if parent_path else model
    setattr(parent, attr, nn.ModuleList(kept_blocks))

    previous = get_provenance(model.config)
    if previous:  # compose with an earlier pruning, so indices always refer to the original model
        original = previous["kept_layers"]
        removed = sorted(previous["removed_layers"] + [original[i] for i in drop])
        kept = [original[i] for i in keep]
        source = previous["source_model"]
        methods = previous["method"] + "+" + method
        source_layers = previous["source_num_layers"]
    else:
        removed, kept, methods, source_layers = sorted(drop), keep, method, n
        source = source or getattr(model.config, "_name_or_path", None) or "unknown"
    provenance = {
        "source_model": source,
        "method": methods,
        "source_num_layers": source_layers,
        "removed_layers": removed,
        "kept_layers": kept,
    }
    setattr(model.config, PROVENANCE_KEY, provenance)
    logger.info("Removed layers %s of %d (%s); %d remain", sorted(drop), n, method, len(keep))
    return provenance


@torch.no_grad()
def merge_layers(model: nn.Module, base: int, others: Iterable[int]) -> None:
    """LaCo's reserving-differences merge: ``θ_base += Σ (θ_other − θ_base)`` over each parameter.

    The merged-away blocks still need removing with ``remove_layers`` afterwards.
    """
    _, blocks = find_blocks(model)
    others = list(others)
    target = dict(blocks[base].named_parameters())
    originals = {k: v.detach().clone() for k, v in target.items()}
    for j in others:
        for name, p in blocks[j].named_parameters():
            target[name].add_(p - originals[name])


def kept_to_original(config) -> list[int]:
    """For each current layer, the index it had in the unpruned source model."""
    prov = get_provenance(config)
    return list(prov["kept_layers"]) if prov else list(range(layer_count(config)))
