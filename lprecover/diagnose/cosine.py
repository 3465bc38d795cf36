"""Where a pruned or recovered model still computes what the teacher did: hidden-state cosine per original layer.

For each block the other model kept, at its index ``o`` in the teacher (``surgery.kept_to_original``), the cosine
similarity of its output with the output of the teacher's block ``o``, per token, averaged over every token of the
reference traces. Blocks before the first removed layer give exactly 1 for a pruned model (they are the teacher's
and see the same input); recovery that restored a depth lifts that depth's cosine back towards 1.
"""

import torch

from lprecover.diagnose.nll import Trace, batches
from lprecover.surgery import find_blocks, kept_to_original


def _outputs(model, batch) -> list[torch.Tensor]:
    blocks = find_blocks(model)[1]
    got: list = [None] * len(blocks)

    def keep(k):
        def hook(module, args, output):
            got[k] = (output[0] if isinstance(output, (tuple, list)) else output).detach().float()

        return hook

    handles = [b.register_forward_hook(keep(k)) for k, b in enumerate(blocks)]
    try:
        model(**batch, use_cache=False)
    finally:
        for h in handles:
            h.remove()
    return got


@torch.no_grad()
def hidden_cosine(teacher, other, tokenizer, traces: list[Trace], batch_size: int = 8) -> dict[int, float]:
    """``{original layer index: mean token cosine}`` between ``other``'s kept blocks and the teacher's."""
    original = kept_to_original(other.config)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    total = torch.zeros(len(original), dtype=torch.float64)
    count = 0.0
    for _, batch in batches(traces, batch_size, pad):
        mask = batch["attention_mask"].float()
        a = _outputs(teacher, {k: v.to(teacher.device) for k, v in batch.items()})
        b = _outputs(other, {k: v.to(other.device) for k, v in batch.items()})
        for k, o in enumerate(original):
            cos = torch.nn.functional.cosine_similarity(a[o].cpu(), b[k].cpu(), dim=-1)
            total[k] += float((cos * mask).sum())
        count += float(mask.sum())
    return {o: float(total[k] / count) for k, o in enumerate(original)}
