"""Layer surgery: find a model's decoder blocks, remove or merge some, and keep everything consistent.

Removing a block is easy; keeping the model *correct* afterwards is the point of this module:

- every kept block's ``layer_idx`` is renumbered 0..n-1, so the KV cache (indexed by ``layer_idx``) stays exact and
  generation can use it, instead of switching the cache off and recomputing the prefix for every token;
- every per-layer field of the config is rewritten for the kept layers (``layer_types``, ``max_window_layers``,
  MoE layer lists, ...), so the cache, sliding windows and expert layouts match the blocks that remain, and a saved
  pruned model reloads each kept block as the block it is (MoE or dense, attention or mamba);
- the provenance (source model, method, removed layers, and each kept layer's original index) is stored in the
  config, composes across repeated pruning, and lets hidden-state distillation map student layers to teacher layers.

How a family's per-layer fields are found. A family decides what layer ``layer_idx`` is in its decoder layer's
``__init__`` (``transformers/models/<family>/modeling_<family>.py``), from fields of ``configuration_<family>.py``.
Grep both for ``layer_idx`` and the field names, and put each field where its shape says:

- one entry per layer (``config.layer_types[layer_idx]``): found by its length, nothing to add;
- a list of layer indices (``layer_idx in config.moe_layers``): ``INDEX_LIST_KEYS`` (``ONE_BASED_INDEX_KEYS``);
- a boundary (``layer_idx >= config.first_k_dense_replace``, "the last k layers"): ``THRESHOLD_KEYS``,
  ``TAIL_COUNT_KEYS``;
- per-layer overrides of a heterogeneous config (``per_layer_config``): found, re-keyed;
- arithmetic on the index (``(layer_idx + 1) % config.decoder_sparse_step``): a ``PositionRule`` in
  ``POSITION_RULES``, which keeps the rule where it still describes the kept layers, else writes the family's own
  explicit per-layer form, else refuses with an error naming the field.

A field missed here is not saved silently: every removal reloads the rewritten config (``from_dict(to_dict())``,
as ``from_pretrained`` does) and rebuilds the model from it on the meta device. A kept block that would come back
different (module types, parameter shapes, plain settings such as ``sliding_window``) undoes the surgery and raises
an error naming the block and what differs.
"""

import copy
import inspect
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import chain, groupby

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
# Config fields that hold layer *indices* (not one entry per layer), renumbered for the kept layers.
INDEX_LIST_KEYS = (
    "mlp_only_layers",  # Qwen2/3-MoE, Qwen3-Next, Flint: dense layers
    "moe_layers",  # Llama 4: MoE layers (filled from interleave_moe_layer_step)
    "cross_attention_layers",  # Mllama: layers that attend to the image
    "attn_layer_indices",  # Bamba: attention (not mamba) layers
    "full_attn_idxs",  # LFM2: attention (not conv) layers
    "local_layer_ids",  # Inkling: sliding-window layers
    "hybrid_layer_ids",  # Zamba2: layers that run the shared transformer
    "moe_layer_indices",
)
ONE_BASED_INDEX_KEYS = ("ple_layer_ids",)  # Qwen4-Exp counts these layers from 1
# One layer index per layer, naming the layer whose state it reads: Mistral Large 4's kv_source_layers (the layer
# whose KV cache each layer attends to). Trimmed and renumbered; a kept layer whose source goes is refused.
SOURCE_INDEX_KEYS = ("kv_source_layers",)
# One entry per layer, where a ``consumer`` layer reuses what the nearest earlier ``producer`` layer computed: DSA's
# indexer_types (GLM-MoE-DSA, HY-V4, Mistral Large 4: "shared" layers reuse the previous "full" layer's top-k
# tokens). Trimmed; a kept consumer whose producer goes is refused, since it would silently read another layer's.
REUSE_LISTS = {"indexer_types": ("shared", "full")}
# Integer fields meaning "layers with index below this value": recomputed as the count of kept layers below it.
THRESHOLD_KEYS = ("max_window_layers", "first_k_dense_replace", "num_dense_layers")
# Integer fields meaning "the last k layers": Gemma 3n/4's layers that reuse an earlier layer's KV cache.
TAIL_COUNT_KEYS = ("num_kv_shared_layers",)
# Constants a family divides by sqrt(layer count), rescaled so that each kept block computes what it did: MiniCPM3
# scales every residual branch by scale_depth / sqrt(num_hidden_layers).
DEPTH_SCALED_KEYS = ("scale_depth",)
# Tensors outside the blocks holding one slice per layer along a dimension, cut down to the kept layers' slices:
# Gemma 3n/4's per-layer input embeddings (vocab x layers*width) and their projection (layers*width x hidden).
PER_LAYER_TENSORS = {"embed_tokens_per_layer.weight": 1, "per_layer_model_projection.weight": 0}
# Lists that can have one entry per layer by coincidence (eos ids, multi-token-prediction layers).
NOT_PER_LAYER = ("token_id", "mtp", "nextn", "architectures")
# Module attributes that hold the block's own index (GPT-Neo says layer_id, GPT-NeoX-Japanese layer_number).
INDEX_ATTRS = ("layer_idx", "layer_index", "layer_id", "layer_number")
# Which weights a model ties, worked out from the config at construction (Zamba ties the shared transformer of
# every hybrid layer to the first one's, by index): refreshed from the rebuild like other derived settings.
TIED_KEYS = ("_tied_weights_keys",)
# Module state that training, loading or checkpointing sets, not the config: never compared with a rebuild.
RUNTIME_STATE = frozenset({"training", "gradient_checkpointing", "name_or_path"})


class UnsupportedModelError(ValueError):
    """The model has no decoder block list that layer surgery can edit, or its layers cannot be removed."""


def get_attr_path(obj, path: str):
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
    counts = _layer_counts(model.config)
    n = counts[0] if counts else None
    for path in BLOCK_PATHS:
        blocks = get_attr_path(model, path)
        if isinstance(blocks, nn.ModuleList) and len(blocks) > 0 and (not counts or len(blocks) in counts):
            return path, blocks
    # Fall back to any ModuleList of identical blocks whose length matches the configured layer count.
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) in counts and len({type(m) for m in module}) == 1:
            return name, module
    raise UnsupportedModelError(
        f"{type(model).__name__} has no decoder block list that layer surgery recognises (looked for "
        f"{', '.join(BLOCK_PATHS)} and any ModuleList of {n} identical blocks). Layer pruning needs a model whose "
        "decoder blocks sit in one nn.ModuleList."
    )


def _text_config(config):
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def _layer_counts(config) -> list[int]:
    """Every layer count the config states (LongCat-Flash's ``num_hidden_layers`` counts two per block)."""
    cfg = _text_config(config)
    return [v for v in (getattr(cfg, key, None) for key in LAYER_COUNT_KEYS) if _is_int(v)]


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


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def per_layer_fields(config, n: int | None = None) -> dict[str, str]:
    """Config fields that depend on layer positions, mapped to how surgery rewrites them.

    Kinds: ``list`` (one entry per layer, trimmed), ``index`` / ``index1`` (a list of 0- / 1-based layer indices,
    renumbered), ``sources`` (one layer index per layer, trimmed and renumbered), ``threshold`` (an int boundary, recounted), ``tail`` (a count of last layers, recounted),
    ``count`` (the layer count itself), ``depth`` (a constant the family divides by ``sqrt(layer count)``, rescaled),
    ``overrides`` (a heterogeneous config's ``per_layer_config``, re-keyed).

    Args:
        n: the number of decoder blocks, where the config states more than one count; defaults to the first.
    """
    cfg = _text_config(config)
    n = layer_count(cfg) if n is None else n
    fields = {}
    for key, value in vars(cfg).items():
        if key.startswith("_"):
            continue
        if key in LAYER_COUNT_KEYS and value == n:
            fields[key] = "count"
        elif key in INDEX_LIST_KEYS and isinstance(value, (list, tuple)):
            fields[key] = "index"
        elif key in ONE_BASED_INDEX_KEYS and isinstance(value, (list, tuple)):
            fields[key] = "index1"
        elif key in SOURCE_INDEX_KEYS and isinstance(value, (list, tuple)) and len(value) == n:
            fields[key] = "sources"
        elif key in THRESHOLD_KEYS and _is_int(value):
            fields[key] = "threshold"
        elif key in TAIL_COUNT_KEYS and _is_int(value):
            fields[key] = "tail"
        elif key in DEPTH_SCALED_KEYS and isinstance(value, (int, float)):
            fields[key] = "depth"
        elif (
            isinstance(value, (list, tuple)) and len(value) == n and n > 1 and not any(s in key for s in NOT_PER_LAYER)
        ):
            fields[key] = "list"
    if getattr(cfg, "is_heterogeneous", False):
        fields["per_layer_config"] = "overrides"
    return fields


def _rewrite(cfg, key: str, kind: str, keep: list[int], n: int):
    """The value of one per-layer field for the kept layers."""
    if kind == "overrides":
        overrides = cfg._heterogeneity_spec.per_layer_overrides
        return {new: copy.deepcopy(overrides[old]) for new, old in enumerate(keep) if old in overrides}
    value = getattr(cfg, key)
    if kind == "count":
        return len(keep)
    if kind == "list":
        return type(value)(value[i] for i in keep)
    if kind == "index":
        return [keep.index(i) for i in value if i in keep]
    if kind == "index1":
        return [keep.index(i - 1) + 1 for i in value if i - 1 in keep]
    if kind == "sources":
        return type(value)(keep.index(value[i]) for i in keep)
    if kind == "threshold":
        return sum(1 for i in keep if i < value)
    if kind == "tail":
        return sum(1 for i in keep if i >= n - value)
    if kind == "depth":
        return value * math.sqrt(len(keep) / n)
    raise ValueError(f"Unknown per-layer field kind {kind!r}.")


@dataclass(frozen=True)
class PositionRule:
    """A per-layer property that a family computes by arithmetic on the layer index.

    Renumbering the kept layers moves them under the rule, so surgery keeps the rule only where it still gives each
    kept layer what it had; else it re-fits the rule's parameters (``fit``), else writes the family's explicit
    per-layer form (``explicit``), else refuses.

    Args:
        fields: the config fields the rule reads.
        layers: ``(values of fields, layer count) -> what each layer is`` (MoE or dense, attention or mamba, ...).
        families: model types whose code reads the fields this way; empty for any config that has them all.
        fit: ``(kept pattern, field values after the generic rewrite) -> field values`` expressing the pattern with
            the same rule, or None where none does.
        explicit: ``kept pattern -> field values`` in a per-layer form the family's code also reads.
        why: what the rule decides, for the refusal.
    """

    fields: tuple[str, ...]
    layers: Callable[[dict, int], list]
    families: tuple[str, ...] = ()
    fit: Callable[[list, dict], dict | None] | None = None
    explicit: Callable[[list], dict] | None = None
    why: str = ""

    def applies(self, cfg) -> bool:
        has_fields = all(getattr(cfg, f, None) is not None for f in self.fields)
        return has_fields and (not self.families or getattr(cfg, "model_type", None) in self.families)


def _fit_period(period: str, offset: str) -> Callable[[list, dict], dict | None]:
    """Fit ``layer i is on iff i % period == offset`` to a kept on/off pattern."""

    def fit(target: list, _) -> dict | None:
        m, on = len(target), [i for i, t in enumerate(target) if t]
        if not on:
            return {period: m + 1, offset: m}
        for p in range(1, m + 2):
            if all((i % p == on[0] % p) == t for i, t in enumerate(target)):
                return {period: p, offset: on[0] % p}
        return None

    return fit


def _fit_every(target: list, _) -> dict | None:
    """Fit Inkling2's ``i % n_layers_per_attn_res_block == 0`` to a kept block-boundary pattern."""
    for k in range(1, len(target) + 1):
        if all((i % k == 0) == t for i, t in enumerate(target)):
            return {"n_layers_per_attn_res_block": k}
    return None


def _fit_ernie(target: list, _) -> dict | None:
    """Fit Ernie 4.5's ``start <= i <= end and (i + 1) % interval == 0`` to a kept MoE pattern."""
    m, on = len(target), [i for i, t in enumerate(target) if t]
    if not on:  # an empty range (end = -1 would mean "the last layer" on reload)
        return {"moe_layer_start_index": m, "moe_layer_end_index": m, "moe_layer_interval": 1}
    for interval in range(1, m + 1):
        if all((on[0] <= i <= on[-1] and (i + 1) % interval == 0) == t for i, t in enumerate(target)):
            return {"moe_layer_start_index": on[0], "moe_layer_end_index": on[-1], "moe_layer_interval": interval}
    return None


def _fit_moe_freq(target: list, params: dict) -> dict | None:
    """Fit DeepSeek's remote-code ``i >= first_k_dense_replace and i % moe_layer_freq == 0`` to a kept MoE pattern.

    ``first_k_dense_replace`` stays as recounted: transformers' own DeepSeek code reads it alone.
    """
    k = params["first_k_dense_replace"]
    for freq in range(1, len(target) + 2):
        if all((i >= k and i % freq == 0) == t for i, t in enumerate(target)):
            return {"moe_layer_freq": freq}
    return None


def _gpt_neo_layers(p: dict, m: int) -> list:
    return [kind for kinds, repeat in p["attention_types"] for _ in range(repeat) for kind in kinds][:m]


# Survey of transformers 5.23's decoder families: configuration_*.py grepped for *_step, *_freq, *_period, *_offset,
# *_interval, *_pattern, *_layers, *_ids, first_k_dense, num_dense_layers, and modeling_*.py for arithmetic on
# layer_idx; then every causal LM built from its default config on the meta device and pruned at the first, second,
# middle and last layers and pairs, with the rebuild check below as referee. Rules keyed on position, and where:
#   Qwen2/3-MoE, Qwen3-Next, Flint, Qwen3-VL/Omni-MoE text: decoder_sparse_step -> rule below (mlp_only_layers).
#   Llama 4: interleave_moe_layer_step only fills moe_layers (INDEX_LIST_KEYS); no_rope_layers is per layer.
#   Jamba: attn_/expert_layer_period/offset -> rules below, refit or refused (layers_block_type is a property).
#   Ernie 4.5 MoE: moe_layer_start/end_index, moe_layer_interval -> rule below, refit or refused.
#   DeepSeek V2/V3 hub configs: moe_layer_freq, read by their remote code only -> rule below, refit or refused.
#   GPT-Neo: attention_types (run lengths) -> rule below, rewritten as runs of the kept layers.
#   RecurrentGemma: block_types (a cycle) -> rule below, rewritten as the kept layers' list.
#   Inkling2: n_layers_per_attn_res_block -> rule below, refit or refused.
#   RWKV: rescale_every scales block i's weights by 2 ** (i // rescale_every) -> refused unless the scales stay.
#   GPT-2: scale_attn_by_inverse_layer_idx scales attention by 1 / (layer_idx + 1) -> refused unless no index moves.
#   Zamba2: hybrid layers pick shared blocks and adapters by rank among hybrid layers -> rule below.
#   Gemma 3n/4: num_kv_shared_layers (TAIL_COUNT_KEYS), the kv_sharing_modes property checked on reload, per-layer
#   input embeddings (PER_LAYER_TENSORS), Gemma 4's per_layer_config (re-keyed); Gemma 4's post-init forces the last
#   layer to full attention, so removing the last layer is refused on reload when the new last one is sliding.
#   Mistral Large 4 kv_source_layers (SOURCE_INDEX_KEYS); GLM-MoE-DSA / HY-V4 / Mistral Large 4 indexer_types
#   (REUSE_LISTS); MiniCPM3 scale_depth (DEPTH_SCALED_KEYS); LongCat-Flash's two cache slots per block (_renumber).
# Rules that only fill an explicit per-layer list at construction need nothing: the list is saved and trimmed
# (Afmoe global_attn_every_n_layers, Exaone4 / Cohere2-MoE sliding_window_pattern, BailingHybrid layer_group_size,
# SmolLM3 no_rope_layer_interval, Inkling local_layer_ids, Zamba attn_layer_period/offset, NemotronH
# hybrid_override_pattern, AXK1 / dots3 moe_layer_freq, DeepSeek-V3.2 / GLM-MoE-DSA / Cohere2-MoE
# first_k_dense_replace next to mlp_layer_types). Thresholds read by the layers (DeepSeek V2/V3, GLM-4-MoE, dots1
# first_k_dense_replace; Afmoe, LFM2-MoE num_dense_layers; Qwen2 max_window_layers) are recounted. Copies of
# config-wide data in modules (Mllama's cross_attention_layers, MiniMax's layer count, Zamba's tied-weight map) are
# refreshed from the rebuild. What no field can express is refused by the rebuild check, naming the setting: a
# block built differently by its index (DiffLlama's lambda_init, Beam's depth-scaled residual index, BigBird's
# per-layer seed, Zaya's and ModernBERT-decoder's special first layer, GPT-NeoX-Japanese's last-layer bias,
# Qwen4-Exp's PLE layer ranks), or a layer kept in parallel lists of which only one is cut (XLM). HRM (one stack
# run in cycles), BLT and encoder-decoder "ForCausalLM" heads have no block list of num_hidden_layers entries, so
# find_blocks refuses them.
POSITION_RULES = (
    PositionRule(
        fields=("decoder_sparse_step", "mlp_only_layers"),
        layers=lambda p, m: [
            i not in p["mlp_only_layers"] and (i + 1) % p["decoder_sparse_step"] == 0 for i in range(m)
        ],
        explicit=lambda moe: {"decoder_sparse_step": 1, "mlp_only_layers": [i for i, x in enumerate(moe) if not x]},
        why="which layers are MoE",
    ),
    PositionRule(
        fields=("attn_layer_period", "attn_layer_offset"),
        layers=lambda p, m: [i % p["attn_layer_period"] == p["attn_layer_offset"] for i in range(m)],
        families=("jamba",),
        fit=_fit_period("attn_layer_period", "attn_layer_offset"),
        why="which layers are attention (the rest mamba)",
    ),
    PositionRule(
        fields=("expert_layer_period", "expert_layer_offset"),
        layers=lambda p, m: [i % p["expert_layer_period"] == p["expert_layer_offset"] for i in range(m)],
        families=("jamba",),
        fit=_fit_period("expert_layer_period", "expert_layer_offset"),
        why="which layers are MoE",
    ),
    PositionRule(
        fields=("moe_layer_start_index", "moe_layer_end_index", "moe_layer_interval"),
        layers=lambda p, m: [
            p["moe_layer_start_index"] <= i <= p["moe_layer_end_index"] and (i + 1) % p["moe_layer_interval"] == 0
            for i in range(m)
        ],
        families=("ernie4_5_moe",),
        fit=_fit_ernie,
        why="which layers are MoE",
    ),
    PositionRule(
        fields=("first_k_dense_replace", "moe_layer_freq"),
        layers=lambda p, m: [i >= p["first_k_dense_replace"] and i % p["moe_layer_freq"] == 0 for i in range(m)],
        families=("deepseek_v2", "deepseek_v3"),
        fit=_fit_moe_freq,
        why="which layers are MoE in DeepSeek's own modeling code",
    ),
    PositionRule(
        fields=("attention_types",),
        layers=_gpt_neo_layers,
        families=("gpt_neo",),
        explicit=lambda kinds: {"attention_types": [[[k], len(list(run))] for k, run in groupby(kinds)]},
        why="which layers use local attention",
    ),
    PositionRule(
        fields=("block_types",),
        layers=lambda p, m: [p["block_types"][i % len(p["block_types"])] for i in range(m)],
        families=("recurrent_gemma",),
        explicit=lambda kinds: {"block_types": list(kinds)},
        why="which layers are recurrent",
    ),
    PositionRule(
        fields=("n_layers_per_attn_res_block",),
        layers=lambda p, m: [i % p["n_layers_per_attn_res_block"] == 0 for i in range(m)],
        families=("inkling2_text",),
        fit=_fit_every,
        why="which layers start an attention-residual block",
    ),
    PositionRule(
        fields=("rescale_every",),
        layers=lambda p, m: [i // p["rescale_every"] if p["rescale_every"] > 0 else 0 for i in range(m)],
        families=("rwkv",),
        why="how far each block's weights are rescaled for fp16; load the model with rescale_every=0 to prune it",
    ),
    PositionRule(
        fields=("scale_attn_by_inverse_layer_idx",),
        layers=lambda p, m: [i if p["scale_attn_by_inverse_layer_idx"] else 0 for i in range(m)],
        families=("gpt2",),
        why="each layer's attention scale 1 / (layer_idx + 1)",
    ),
    PositionRule(
        fields=("layers_block_type", "num_mem_blocks"),
        layers=lambda p, m: [
            p["layers_block_type"][: i + 1].count("hybrid") if t == "hybrid" else None
            for i, t in enumerate(p["layers_block_type"][:m])
        ],
        families=("zamba2",),
        why="which shared transformer block and adapter each hybrid layer uses (its rank among hybrid layers)",
    ),
)


def _config_updates(cfg, keep: list[int], n: int) -> dict:
    """Every config field that changes when only ``keep`` remain, with its new value.

    Raises:
        UnsupportedModelError: naming the field when a position rule cannot describe the kept layers.
    """
    removed = [i for i in range(n) if i not in keep]
    fields = per_layer_fields(cfg, n)
    for key, (consumer, producer) in REUSE_LISTS.items():
        if fields.get(key) == "list":
            value = getattr(cfg, key)
            sources = {i: max((j for j in range(i) if value[j] == producer), default=i) for i in range(n)}
            _refuse_lost_sources(cfg, key, {i: sources[i] for i in keep if value[i] == consumer}, keep, removed)
    for key, kind in fields.items():
        if kind == "sources":
            _refuse_lost_sources(cfg, key, dict(enumerate(getattr(cfg, key))), keep, removed)
    updates = {key: _rewrite(cfg, key, kind, keep, n) for key, kind in fields.items()}
    for rule in POSITION_RULES:
        if not rule.applies(cfg):
            continue
        old = {f: getattr(cfg, f) for f in rule.fields}
        before = rule.layers(old, n)
        target = [before[i] for i in keep]
        current = {f: updates.get(f, old[f]) for f in rule.fields}
        if rule.layers(current, len(keep)) == target:
            continue
        new = rule.fit(target, current) if rule.fit else None
        if new is None and rule.explicit:
            new = rule.explicit(target)
        if new is None:
            raise UnsupportedModelError(
                f"{type(cfg).__name__}.{'/'.join(rule.fields)} decide {rule.why} from each layer's index; with layers "
                f"{removed} removed no value of them gives the kept layers what they "
                "had, and the family has no per-layer form to write instead. Remove a different set of layers."
            )
        updates.update(new)
    return updates


def _refuse_lost_sources(cfg, key: str, sources: dict[int, int], keep: list[int], removed: list[int]) -> None:
    """Refuse when a kept layer reads the state (KV cache, top-k tokens) of a layer that is removed."""
    lost = {i: s for i, s in sources.items() if i in keep and s not in keep}
    if lost:
        raise UnsupportedModelError(
            f"{type(cfg).__name__}.{key}: kept layer(s) {sorted(lost)} reuse what layer(s) {sorted(set(lost.values()))} "
            f"compute, and removing layers {removed} would take those away. Keep them, or remove their readers too."
        )


def _apply(cfg, updates: dict) -> None:
    for key, value in updates.items():
        if key != "per_layer_config":
            setattr(cfg, key, value)
    if "per_layer_config" in updates:  # validated against the layer count, so set after it
        cfg.per_layer_config = updates["per_layer_config"]


def _reloaded(config):
    """The config ``from_pretrained`` reads back after ``save_pretrained`` (its ``__post_init__`` runs again)."""
    return type(config).from_dict(config.to_dict())


def _layer_views(cfg, n: int) -> dict[str, list]:
    """Every per-layer list the config offers, stored or computed (Jamba's ``layers_block_type`` is a property)."""
    views = {key: list(getattr(cfg, key)) for key, kind in per_layer_fields(cfg, n).items() if kind == "list"}
    for name, attr in inspect.getmembers(type(cfg)):
        if name.startswith("_") or not isinstance(attr, property) or any(s in name for s in NOT_PER_LAYER):
            continue
        try:
            value = getattr(cfg, name)
        except Exception:  # a property that does not apply to this config (or refuses a global read)
            continue
        if isinstance(value, (list, tuple)) and len(value) == n:
            views[name] = list(value)
    return views


def _check_config(cfg, updates: dict, keep: list[int], n: int) -> None:
    """Refuse, before anything changes, when the saved config would reload its per-layer views differently."""
    before = _layer_views(cfg, n)
    candidate = copy.deepcopy(cfg)
    _apply(candidate, updates)
    try:
        after = _reloaded(candidate)
    except Exception as err:
        raise UnsupportedModelError(
            f"{type(cfg).__name__} rewritten for the kept layers {keep} does not load back: {err}"
        ) from err
    removed = [i for i in range(n) if i not in keep]
    for name, values in before.items():
        got = list(getattr(after, name, None) or [])
        if len(got) != len(keep):
            difference = f"it would have {len(got)} entries for {len(keep)} layers"
        else:
            moved = [(new, old) for new, old in enumerate(keep) if got[new] != values[old]]
            if not moved:
                continue
            new, old = moved[0]
            difference = f"kept layer {old} (now {new}) was {values[old]!r} but would be {got[new]!r}"
        raise UnsupportedModelError(
            f"With layers {removed} removed, {type(cfg).__name__}.{name} would reload differently: {difference}. The "
            "family's config fixes this by layer position in a way surgery cannot keep; remove a different set of "
            "layers."
        )


def _renumber(block: nn.Module, old: int, new: int, per_block: int = 1) -> list[tuple[nn.Module, str, int]]:
    """Set the block's index attributes for its new position; returns ``(module, attribute, old value)`` to undo.

    Args:
        per_block: cache slots per block: LongCat-Flash's two attention sublayers of block ``i`` use ``2i, 2i + 1``.
    """
    changed = []
    for module in block.modules():
        for attr in INDEX_ATTRS:
            value = getattr(module, attr, None)
            if not _is_int(value):
                continue
            if per_block > 1 and module is not block and old * per_block <= value < (old + 1) * per_block:
                changed.append((module, attr, value))
                setattr(module, attr, new * per_block + value - old * per_block)
            elif value == old:
                changed.append((module, attr, value))
                setattr(module, attr, new)
    return changed


def _is_plain(value) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_is_plain(v) for v in value)
    if isinstance(value, dict):
        return all(_is_plain(k) and _is_plain(v) for k, v in value.items())
    return False


def _same(a, b) -> bool:
    """Equal as settings: a tuple equals the list a JSON round trip makes of it; floats to rounding."""
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9) or a == b
    return type(a) is type(b) and a == b


def _settings(module: nn.Module) -> dict:
    return {
        k: v
        for k, v in vars(module).items()
        if (not k.startswith("_") or k in TIED_KEYS) and k not in RUNTIME_STATE and _is_plain(v)
    }


def _shapes(module: nn.Module) -> dict:
    tensors = chain(module.named_parameters(recurse=False), module.named_buffers(recurse=False))
    return {name: tuple(getattr(t, "ds_shape", t.shape)) for name, t in tensors}  # ZeRO-3 keeps the full shape aside


def _mirrors_config(key: str, value) -> bool:
    """A setting copied from config-wide data (a layer count, a list over all layers), not the block's own."""
    return key in LAYER_COUNT_KEYS or isinstance(value, (list, tuple, dict))


def _compare(ours: dict[str, nn.Module], theirs: dict[str, nn.Module], strict: bool) -> tuple[str | None, list]:
    """How live modules (by name) differ from their rebuilt twins.

    Returns:
        The first difference that makes a live module a different one (class, tensor shape, and with ``strict``
        a setting of its own) or None, and the ``(module, key, value)`` settings to refresh from the rebuild.
    """
    refresh = []
    for name in sorted(ours.keys() | theirs.keys()):
        where = name or "the block itself"
        if name not in theirs or name not in ours:
            return f"{where} exists only {'in memory' if name in ours else 'after reloading'}", refresh
        a, b = ours[name], theirs[name]
        if type(a) is not type(b):
            return f"{where} is {type(a).__name__} in memory but {type(b).__name__} after reloading", refresh
        if _shapes(a) != _shapes(b):
            return f"{where} has tensors {_shapes(a)} in memory but {_shapes(b)} after reloading", refresh
        sa, sb = _settings(a), _settings(b)
        for key in sorted(sa.keys() | sb.keys()):
            if key not in vars(a) or key not in vars(b):
                if strict:
                    return f"{where}.{key} exists only {'in memory' if key in sa else 'after reloading'}", refresh
            elif key not in sa or key not in sb or _same(sa[key], sb[key]):
                continue  # equal, or a tensor on one side: state a forward left (RecurrentGemma's conv1d_state)
            elif not strict or _mirrors_config(key, sb[key]):
                refresh.append((a, key, sb[key]))
            else:
                return f"{where}.{key} is {sa[key]!r} in memory but {sb[key]!r} after reloading", refresh
    return None, refresh


def _check_rebuild(model: nn.Module, path: str) -> None:
    """Rebuild the model from its saved config on the meta device; each kept block must come back as it is.

    A block's own settings (``sliding_window``, ``is_moe_layer``, ...) must match exactly. Settings copied from
    config-wide data (GPT-Neo's list of every layer's attention type, MiniMax's layer count, Mllama's
    ``cross_attention_layers`` outside the blocks) are refreshed from the rebuild, as a reload would set them.

    Raises:
        UnsupportedModelError: naming the first block, module and setting that would reload differently.
    """
    try:
        config = _reloaded(model.config)
        config._attn_implementation = model.config._attn_implementation  # chosen when loading, not saved
        with torch.device("meta"):
            rebuilt = type(model)(config)
    except Exception as err:  # a model that cannot be built from its config alone (custom wrappers)
        logger.warning(
            "Could not rebuild %s to check the surgery (%s); its saved config is unchecked.", type(model), err
        )
        return
    name = type(model).__name__
    blocks, rebuilt_blocks = find_blocks(model)[1], get_attr_path(rebuilt, path)
    if rebuilt_blocks is None or len(rebuilt_blocks) != len(blocks):
        raise UnsupportedModelError(
            f"{name} would reload with {len(rebuilt_blocks or [])} blocks at {path}, not the {len(blocks)} kept; "
            "its config counts layers in a way surgery does not rewrite. Nothing was removed."
        )
    refresh = []
    for i, (live, twin) in enumerate(zip(blocks, rebuilt_blocks)):
        difference, mirrors = _compare(dict(live.named_modules()), dict(twin.named_modules()), strict=True)
        if difference:
            raise UnsupportedModelError(
                f"Kept layer {i} of {name} would not reload as itself: {path}.{i}: {difference}. A per-layer rule of "
                f"{type(_text_config(model.config)).__name__} is not rewritten by surgery (see lprecover.surgery's "
                "docstring on adding one); nothing was removed."
            )
        refresh += mirrors
    difference, mirrors = _compare(_outside(model, path), _outside(rebuilt, path), strict=False)
    if difference:
        raise UnsupportedModelError(
            f"{name} outside its blocks would not reload as it is: {difference}. It sizes or builds something by its "
            "layers that surgery does not cut down (see PER_LAYER_TENSORS); nothing was removed."
        )
    for module, key, value in refresh + mirrors:
        setattr(module, key, value)


def _outside(model: nn.Module, path: str) -> dict[str, nn.Module]:
    """The model's modules outside its blocks, by name (the blocks are compared one by one)."""
    return {name: m for name, m in model.named_modules() if name != path and not name.startswith(path + ".")}


def _slice_per_layer_tensors(model: nn.Module, path: str, keep: list[int], n: int) -> list:
    """Cut the ``PER_LAYER_TENSORS`` outside the blocks down to the kept layers' slices; returns what to undo."""
    undo = []
    for name, param in list(model.named_parameters()):
        dim = next((d for suffix, d in PER_LAYER_TENSORS.items() if name.endswith(suffix)), None)
        if dim is None or name.startswith(path + ".") or param.shape[dim] % n:
            continue
        module_name, _, attr = name.rpartition(".")
        module = model.get_submodule(module_name)
        per_layer = param.data.unflatten(dim, (n, param.shape[dim] // n))
        kept = per_layer.index_select(dim, torch.tensor(keep, device=param.device)).flatten(dim, dim + 1)
        undo.append((module, attr, param))
        setattr(module, attr, nn.Parameter(kept, requires_grad=param.requires_grad))
    return undo


def get_provenance(config) -> dict | None:
    return getattr(config, PROVENANCE_KEY, None)


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

    Raises:
        UnsupportedModelError: when the kept layers cannot be described by the family's config (the model is then
            left as it was).
    """
    path, blocks = find_blocks(model)
    n = len(blocks)
    drop = set(validate_layers(layers, n))
    keep = [i for i in range(n) if i not in drop]

    cfg = _text_config(model.config)
    updates = _config_updates(cfg, keep, n)
    _check_config(cfg, updates, keep, n)

    counted = layer_count(cfg)
    per_block = counted // n if counted % n == 0 else 1
    saved_config = copy.deepcopy(vars(cfg))
    _apply(cfg, updates)
    renumbered = []
    for new, old in enumerate(keep):
        renumbered += _renumber(blocks[old], old, new, per_block)
    parent_path, _, attr = path.rpartition(".")
    parent = get_attr_path(model, parent_path) if parent_path else model
    setattr(parent, attr, nn.ModuleList([blocks[i] for i in keep]))
    sliced = _slice_per_layer_tensors(model, path, keep, n)
    try:
        _check_rebuild(model, path)
    except UnsupportedModelError:
        setattr(parent, attr, blocks)
        for module, name, value in renumbered + sliced:
            setattr(module, name, value)
        vars(cfg).clear()
        vars(cfg).update(saved_config)
        raise

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
