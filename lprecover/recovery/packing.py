"""Padding-free training without flash-attn: a packed batch attends sequence by sequence through SDPA.

TRL's packing (``bfd``) flattens a batch into one row and marks the sequence boundaries (``cu_seq_lens_q``). Flash
attention's varlen kernels use those boundaries directly. Plain SDPA cannot, so transformers builds a block-diagonal
mask over the whole flattened row: memory and time quadratic in the batch's tokens (on CPU, an 8k-token batch of
the organism took 5.6 s a step against 0.35 s for the same tokens in 256-token rows). ``sdpa_varlen`` instead cuts
the row at the boundaries, batches sequences of similar length (right-padded within a bucket, which causal
attention never lets a real token see), and runs causal SDPA on each bucket. Anything that is not such a packed
batch (generation, padded batches) goes to transformers' own SDPA unchanged.
"""

import torch
import torch.nn.functional as F
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

NAME = "sdpa_varlen"
VARLEN_READY = ("flash_attention_2", "flash_attention_3", "flash_attention_4", NAME)
BUCKETS = 8  # length buckets per batch: fewer SDPA calls against at most ~1/8 of the longest length in padding


def _buckets(lengths: list[int]) -> list[list[int]]:
    """Group segment indices whose lengths round up to the same multiple of max_length / BUCKETS."""
    step = max(8, -(-max(lengths) // BUCKETS))
    groups: dict[int, list[int]] = {}
    for i, n in enumerate(lengths):
        groups.setdefault(-(-n // step), []).append(i)
    return list(groups.values())


def _window_mask(length: int, window: int, device) -> torch.Tensor:
    i = torch.arange(length, device=device)
    return (i[:, None] >= i[None, :]) & (i[:, None] - i[None, :] < window)


class _Plan:
    """How one packed row splits into length buckets: gather indices, real-token masks, and the inverse order.

    Every attention layer of the student (and of the teacher, in distillation) sees the same boundaries, so the
    plan is made once per batch and reused.
    """

    last: "tuple[list[int], torch.device, _Plan] | None" = None

    def __init__(self, bounds: list[int], device):
        starts, lengths = bounds[:-1], [b - a for a, b in zip(bounds[:-1], bounds[1:])]
        self.groups = []
        where = []
        for group in _buckets(lengths):
            width = max(lengths[i] for i in group)
            offsets = torch.arange(width, device=device)
            index = torch.tensor([starts[i] for i in group], device=device)[:, None] + offsets
            valid = offsets[None, :] < torch.tensor([lengths[i] for i in group], device=device)[:, None]
            # Padding slots read any token: causality hides them from the real ones before them.
            self.groups.append((index.clamp(max=bounds[-1] - 1), valid, width))
            where.append(index[valid])
        self.order = torch.cat(where).argsort()

    @classmethod
    def get(cls, cu: torch.Tensor) -> "_Plan":
        bounds = cu.tolist()
        if cls.last is None or cls.last[0] != bounds or cls.last[1] != cu.device:
            cls.last = (bounds, cu.device, cls(bounds, cu.device))
        return cls.last[2]


def sdpa_varlen_forward(module, query, key, value, attention_mask, dropout=0.0, scaling=None, **kwargs):
    """Attention for one packed row ``[1, heads, tokens, dim]`` cut at ``cu_seq_lens_q``.

    Returns:
        ``([1, tokens, heads, dim], None)``, as transformers' attention functions do.
    """
    cu = kwargs.get("cu_seq_lens_q")
    # Mistral and Phi3 pass their window as an argument; Qwen2, Qwen3-MoE and Gemma keep it on the module.
    window = kwargs["sliding_window"] if "sliding_window" in kwargs else getattr(module, "sliding_window", None)
    if cu is None or attention_mask is not None or query.shape[0] != 1 or query.shape[2] != key.shape[2]:
        if attention_mask is None and window and query.shape[2] == key.shape[2] > window:
            # ``_mask`` returned no mask for this unpadded batch, so the window transformers would have put there is
            # applied here.
            attention_mask = _window_mask(query.shape[2], window, query.device)
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, **kwargs
        )
    plan = _Plan.get(cu)
    gqa = query.shape[1] != key.shape[1]
    pieces = []
    for index, valid, width in plan.groups:
        q, k, v = (t[0][:, index].transpose(0, 1) for t in (query, key, value))  # [n, heads, width, dim]
        mask = _window_mask(width, window, query.device) if window and width > window else None
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            is_causal=mask is None,
            dropout_p=dropout if module.training else 0.0,
            scale=scaling,
            enable_gqa=gqa,
        )
        pieces.append(out.transpose(1, 2)[valid])  # [real tokens, heads, dim]
    return torch.cat(pieces)[plan.order][None], None


def _mask(*args, attention_mask=None, **kwargs):
    # Packed rows carry no attention mask (their boundaries travel as cu_seq_lens); padded batches keep SDPA's.
    # Unpadded batches get none either: sdpa_varlen_forward adds their sliding window itself.
    return None if attention_mask is None else sdpa_mask(*args, attention_mask=attention_mask, **kwargs)


AttentionInterface.register(NAME, sdpa_varlen_forward)
AttentionMaskInterface.register(NAME, _mask)


def use_varlen_attention(model) -> bool:
    """Switch ``model`` to ``sdpa_varlen`` for packed training unless it already has a varlen kernel.

    Models that refuse SDPA (Gemma2 soft-caps its attention scores, which SDPA cannot) keep their own kernel,
    whose mask separates packed rows by their position ids (without a cache, as the trainers call the model). Only
    the in-memory model changes: ``_attn_implementation`` is not written to saved configs.
    """
    current = getattr(model.config, "_attn_implementation", None)
    if current in VARLEN_READY or not getattr(model, "_supports_sdpa", False):
        return False
    model.set_attn_implementation(NAME)
    return True
