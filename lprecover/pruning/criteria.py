"""Pruning criteria: which decoder layers to remove.

Every criterion returns a ``Decision``: one score per layer (for ``angular``, per block start) where *higher means
more important*, and the layers to remove. Scores from hidden states stream through forward hooks one batch at a
time and mask padding, so memory grows with the calibration tokens, never with their square.
"""

import random
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

from lprecover.config import ConfigError
from lprecover.log import get_logger, progress
from lprecover.surgery import find_blocks, kept_to_original, merge_layers, remove_layers

logger = get_logger(__name__)


@dataclass
class Calibration:
    """Tokenised calibration batches: ``input_ids`` and ``attention_mask`` (right-padded), ``labels`` (-100 on pad)."""

    batches: list[dict]
    source: str = "given"

    @property
    def num_tokens(self) -> int:
        return int(sum(b["attention_mask"].sum() for b in self.batches))


@dataclass
class Decision:
    """Which layers a criterion removes, and why.

    Args:
        scores: importance per layer (higher = keep); for ``angular`` the distance of each n-block window.
        removed: indices (in the input model's numbering) to delete.
        merged: LaCo only: ``{kept_layer: [layers merged into it]}``; those layers are already merged in place.
    """

    scores: list[float]
    removed: list[int]
    merged: dict[int, list[int]] = field(default_factory=dict)
    score_name: str = "importance"


def _hidden_in(args, kwargs) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


def _hidden_out(output) -> torch.Tensor:
    return output[0] if isinstance(output, (tuple, list)) else output


def _forward(model, batch, with_labels: bool = False):
    device = model.device
    inputs = {k: v.to(device) for k, v in batch.items() if with_labels or k != "labels"}
    return model(**inputs, use_cache=False)


@contextmanager
def skipping(model, layers):
    """Run the model as if ``layers`` were removed: each returns its input unchanged (no surgery, no copy)."""
    _, blocks = find_blocks(model)

    def identity(module, args, kwargs, output):
        h = _hidden_in(args, kwargs)
        return h if isinstance(output, torch.Tensor) else (h, *output[1:])

    handles = [blocks[i].register_forward_hook(identity, with_kwargs=True) for i in layers]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _token_cosine(a: torch.Tensor, b: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """Per-token cosine of two ``(..., T, d)`` tensors, in token chunks so temporaries stay O(chunk * d)."""
    flat_a, flat_b = a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1])
    out = torch.empty(flat_a.shape[0], dtype=torch.float32, device=a.device)
    for s in range(0, flat_a.shape[0], chunk):
        out[s : s + chunk] = torch.nn.functional.cosine_similarity(
            flat_a[s : s + chunk].float(), flat_b[s : s + chunk].float(), dim=-1
        )
    return out.view(a.shape[:-1])


@torch.no_grad()
def boundary_distances(model, cal: Calibration, span: int = 1) -> list[float]:
    """Mean angular quantity between the input of block ``l`` and the output of block ``l + span - 1``.

    With ``span=1`` this is ShortGPT's block influence, ``1 - cos(x_in, x_out)`` per token; with ``span=n`` it is
    Gromov et al.'s ``arccos(cos) / pi`` over an n-block window. Both average over non-padding tokens, include the
    last block. Block influence keeps no hidden state beyond the forward's own; the angular window keeps
    ``span + 1`` boundary states of one batch.
    """
    _, blocks = find_blocks(model)
    n = len(blocks)
    windows = n - span + 1
    total = torch.zeros(windows, dtype=torch.float64)
    count = 0.0
    state: dict = {}

    def make_hooks(i):
        def pre(module, args, kwargs):
            if i == 0 and span > 1:
                state["window"].append(_hidden_in(args, kwargs).detach())

        def post(module, args, kwargs, output):
            if span == 1:  # the block's own input is still alive here: nothing needs keeping
                cos = _token_cosine(_hidden_in(args, kwargs), _hidden_out(output))
                total[i] += ((1 - cos) * state["mask"]).sum().double().cpu()
                return
            window = state["window"]
            window.append(_hidden_out(output).detach())
            if len(window) == span + 1:
                start = i - span + 1
                cos = _token_cosine(window[0], window[-1])
                total[start] += (torch.arccos(cos.clamp(-1, 1)) / torch.pi * state["mask"]).sum().double().cpu()

        return pre, post

    handles = []
    for i, block in enumerate(blocks):
        pre, post = make_hooks(i)
        handles.append(block.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(block.register_forward_hook(post, with_kwargs=True))
    try:
        for batch in progress(cal.batches, desc="scoring layers"):
            state["window"] = deque(maxlen=span + 1)
            state["mask"] = batch["attention_mask"].to(model.device).float()
            count += float(state["mask"].sum())
            _forward(model, batch)
    finally:
        for h in handles:
            h.remove()
    return (total / max(count, 1.0)).tolist()


@torch.no_grad()
def calibration_loss(model, cal: Calibration) -> float:
    """Token-weighted mean next-token loss on the calibration set."""
    total, tokens = 0.0, 0
    for batch in cal.batches:
        out = _forward(model, batch, with_labels=True)
        n = int((batch["labels"][:, 1:] != -100).sum())
        total += float(out.loss) * n
        tokens += n
    return total / max(tokens, 1)


def _lowest(scores: list[float], k: int, exclude=()) -> list[int]:
    order = sorted((s, i) for i, s in enumerate(scores) if i not in exclude)
    return sorted(i for _, i in order[:k])


def shortgpt(model, cal, n_layers, **_) -> Decision:
    scores = boundary_distances(model, cal, span=1)
    return Decision(scores, _lowest(scores, n_layers), score_name="block influence (1 - cos)")


def angular(model, cal, n_layers, **_) -> Decision:
    dist = boundary_distances(model, cal, span=n_layers)
    start = min(range(len(dist)), key=dist.__getitem__)
    return Decision(dist, list(range(start, start + n_layers)), score_name=f"angular distance over {n_layers} blocks")


def tail(model, cal, n_layers, **_) -> Decision:
    n = len(find_blocks(model)[1])
    return Decision([float(i) for i in range(n)], list(range(n - n_layers, n)), score_name="depth")


def selection(model, cal, n_layers, layers=None, **_) -> Decision:
    n = len(find_blocks(model)[1])
    return Decision([0.0 if i in layers else 1.0 for i in range(n)], sorted(layers), score_name="selected (0)")


def random_layers(model, cal, n_layers, seed=0, **_) -> Decision:
    n = len(find_blocks(model)[1])
    rng = random.Random(seed)
    scores = [rng.random() for _ in range(n)]
    return Decision(scores, _lowest(scores, n_layers), score_name="random")


def _sum64(fn, *tensors: torch.Tensor, chunk: int = 1 << 22) -> float:
    """``fn(*tensors).sum()`` in float64, a chunk of elements at a time (temporaries stay O(chunk)).

    Summing in the weights' dtype cannot tell layers apart: in bf16, four layers whose mean |w| differs by 0.1-0.3%
    all score 0.0159912, and the ranking falls back to layer index.
    """
    flat = [t.detach().reshape(-1) for t in tensors]
    return sum(float(fn(*(t[s : s + chunk].double() for t in flat)).sum()) for s in range(0, flat[0].numel(), chunk))


@torch.no_grad()
def _magnitude(model, p: int) -> list[float]:
    scores = []
    for block in find_blocks(model)[1]:
        params = [w for name, w in block.named_parameters() if w.dim() >= 2]
        numel = sum(w.numel() for w in params)
        if p == 1:
            scores.append(sum(_sum64(torch.abs, w) for w in params) / numel)
        else:
            scores.append((sum(_sum64(torch.square, w) for w in params) / numel) ** 0.5)
    return scores


def magnitude_l1(model, cal, n_layers, **_) -> Decision:
    scores = _magnitude(model, 1)
    return Decision(scores, _lowest(scores, n_layers), score_name="mean |w|")


def magnitude_l2(model, cal, n_layers, **_) -> Decision:
    scores = _magnitude(model, 2)
    return Decision(scores, _lowest(scores, n_layers), score_name="rms w")


def taylor(model, cal, n_layers, **_) -> Decision:
    """First-order Taylor importance: sum over a block's weights of |w * dL/dw| on the calibration loss."""
    blocks = find_blocks(model)[1]
    was_training = model.training
    model.eval()
    grads_on = {p: p.requires_grad for p in model.parameters()}
    for p in model.parameters():
        p.requires_grad_(True)
    model.zero_grad(set_to_none=True)
    # The gradient summed over batches is accumulated in float32 whatever the model's dtype: bf16 accumulation
    # loses the low bits of every batch after the first. Each batch's gradient is added as soon as it is complete
    # and then freed, so the extra memory is one float32 copy of the blocks' weights.
    summed: dict[torch.nn.Parameter, torch.Tensor] = {}

    def accumulate(p: torch.nn.Parameter) -> None:
        if p in summed:
            summed[p] += p.grad.float()
        else:
            summed[p] = p.grad.float()
        p.grad = None

    unique = {id(w): w for b in blocks for w in b.parameters()}  # a weight shared by two blocks is hooked once
    hooks = [w.register_post_accumulate_grad_hook(accumulate) for w in unique.values()]
    try:
        for batch in progress(cal.batches, desc="taylor"):
            _forward(model, batch, with_labels=True).loss.backward()
        scores = []
        for block in blocks:
            grads = [(w, summed[w]) for w in block.parameters() if w in summed]
            scores.append(sum(_sum64(lambda a, g: (a * g).abs(), w, g) for w, g in grads))
    finally:
        for h in hooks:
            h.remove()
        summed.clear()
        model.zero_grad(set_to_none=True)
        for p, flag in grads_on.items():
            p.requires_grad_(flag)
        model.train(was_training)
    return Decision(scores, _lowest(scores, n_layers), score_name="|w * grad|")


def ppl(model, cal, n_layers, **_) -> Decision:
    """Calibration loss increase when each layer alone is skipped; remove the ``n_layers`` that hurt least."""
    n = len(find_blocks(model)[1])
    base = calibration_loss(model, cal)
    scores = []
    for i in progress(range(n), desc="ppl"):
        with skipping(model, [i]):
            scores.append(calibration_loss(model, cal) - base)
    return Decision(scores, _lowest(scores, n_layers), score_name="loss increase when skipped")


def sleb(model, cal, n_layers, **_) -> Decision:
    """SLEB: remove one layer at a time, re-scoring the remaining layers after each removal."""
    n = len(find_blocks(model)[1])
    removed: list[int] = []
    first_scores: list[float] = []
    for _step in range(n_layers):
        candidates = [i for i in range(n) if i not in removed]
        losses = {}
        for i in progress(candidates, desc=f"sleb step {len(removed) + 1}"):
            with skipping(model, removed + [i]):
                losses[i] = calibration_loss(model, cal)
        if not first_scores:
            first_scores = [losses.get(i, float("nan")) for i in range(n)]
        removed.append(min(losses, key=losses.get))
    return Decision(first_scores, sorted(removed), score_name="loss with layer skipped (first round)")


@torch.no_grad()
def _final_hidden(model, cal) -> list[torch.Tensor]:
    return [
        model(
            **{k: v.to(model.device) for k, v in b.items() if k != "labels"},
            output_hidden_states=True,
            use_cache=False,
        )
        .hidden_states[-1]
        .float()
        for b in cal.batches
    ]


@torch.no_grad()
def _similarity(ref: list[torch.Tensor], new: list[torch.Tensor], cal) -> float:
    num, den = 0.0, 0.0
    for a, b, batch in zip(ref, new, cal.batches):
        mask = batch["attention_mask"].to(a.device).float()
        cos = torch.nn.functional.cosine_similarity(a, b, dim=-1)
        num += float((cos * mask).sum())
        den += float(mask.sum())
    return num / max(den, 1.0)


def laco(model, cal, n_layers, merge_count=2, threshold=0.85, min_layer=1, interval=1, **_) -> Decision:
    """LaCo: from the top down, merge ``merge_count`` following layers into layer ``l`` when the merged model's final
    hidden states stay at cosine similarity >= ``threshold`` with the original's; stop after ``n_layers`` merged away.

    Merges happen in place (reserving differences); the merged-away layers are returned for removal.
    """
    blocks = find_blocks(model)[1]
    n = len(blocks)
    reference = _final_hidden(model, cal)
    removed: list[int] = []
    merged: dict[int, list[int]] = {}
    scores = [float("nan")] * n
    layer = n - merge_count - 1
    while layer >= min_layer and len(removed) < n_layers:
        others = [j for j in range(layer + 1, layer + 1 + merge_count) if j not in removed][: n_layers - len(removed)]
        if not others:
            layer -= 1
            continue
        backup = {k: v.detach().clone() for k, v in blocks[layer].state_dict().items()}
        merge_layers(model, layer, others)
        with skipping(model, removed + others):
            sim = _similarity(reference, _final_hidden(model, cal), cal)
        scores[layer] = sim
        if sim >= threshold:
            removed.extend(others)
            merged[layer] = others
            layer -= interval + len(others) - 1
        else:
            blocks[layer].load_state_dict(backup)
            layer -= 1
    if len(removed) < n_layers:  # known only once the merges are scored: a sentence, not a traceback
        raise ConfigError(
            f"LaCo merged away only {len(removed)} of the {n_layers} layers asked for at similarity threshold "
            f"{threshold}; lower prune.laco_threshold or prune.n_layers."
        )
    return Decision(scores, sorted(removed), merged, score_name="final-state cosine after merge")


CRITERIA = {
    "shortgpt": shortgpt,
    "angular": angular,
    "tail": tail,
    "selection": selection,
    "random": random_layers,
    "magnitude_l1": magnitude_l1,
    "magnitude_l2": magnitude_l2,
    "taylor": taylor,
    "ppl": ppl,
    "sleb": sleb,
    "laco": laco,
}
# Criteria that never look at data skip building a calibration set.
NEEDS_CALIBRATION = {"shortgpt", "angular", "taylor", "ppl", "sleb", "laco"}


def decide(model, cal, method: str, n_layers: int, **kwargs) -> Decision:
    return CRITERIA[method](model, cal, n_layers, **kwargs)


def apply(model, decision: Decision, method: str, source: str | None = None) -> dict:
    """Remove the decided layers (merges are already in place) and return the provenance."""
    original = kept_to_original(model.config)
    provenance = remove_layers(model, decision.removed, method=method, source=source)
    if decision.merged:  # recorded in the source model's numbering, like the removed layers
        provenance["merged_layers"] = {str(original[k]): [original[j] for j in v] for k, v in decision.merged.items()}
    return provenance
