"""The teacher-logit store's format and its reader: each sequence's top-k teacher log-probabilities and tail mass,
keyed by a hash of its token ids and label mask (written by ``lprecover.recovery.teacher_logits``, read by
distillation and the checks). The format and the loss on it are described in ``teacher_logits``'s docstring."""

import hashlib
import json
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from safetensors import safe_open

from lprecover.config import ConfigError

FLOOR = -1e4  # log-mass of an empty bucket: exp(FLOOR) is 0 in float32, and 0 * (FLOOR - x) stays finite
MANIFEST = "manifest.json"
FORMAT = 1
DTYPES = {"float16": torch.float16, "float32": torch.float32}
IN_MEMORY_BYTES = 2**30  # stores up to this size are read into memory when opened


class TopK(NamedTuple):
    """The teacher at N distilled positions: ``ids`` and ``logprobs`` ``[N, k]``, ``tail`` (log-mass outside) ``[N]``."""

    ids: torch.Tensor
    logprobs: torch.Tensor
    tail: torch.Tensor

    @classmethod
    def empty(cls, k: int) -> "TopK":
        return cls(torch.zeros(0, k, dtype=torch.int32), torch.zeros(0, k), torch.zeros(0))


def top_k(logprobs: torch.Tensor, k: int) -> TopK:
    """The k most likely tokens of each row of ``logprobs`` ``[N, vocab]`` and the log-mass outside them."""
    values, ids = logprobs.topk(k, dim=-1)
    return TopK(ids, values.clamp(min=FLOOR), outside(logprobs, ids))


def outside(logprobs: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Log of the probability mass of each row of ``logprobs`` outside ``ids``, floored at ``FLOOR``."""
    return logprobs.scatter(-1, ids, float("-inf")).logsumexp(-1).clamp(min=FLOOR)


def buckets(student_logprobs: torch.Tensor, teacher: TopK) -> tuple[torch.Tensor, torch.Tensor]:
    """Student and teacher as ``[N, k + 1]`` log-probabilities: the teacher's top k tokens, then the rest."""
    s_top = student_logprobs.gather(-1, teacher.ids)
    s = torch.cat([s_top, outside(student_logprobs, teacher.ids)[:, None]], -1)
    t = torch.cat([teacher.logprobs, teacher.tail[:, None]], -1).to(s.dtype)
    return s, t


def sequence_key(ids: np.ndarray, labelled: np.ndarray) -> bytes:
    digest = hashlib.blake2b(ids.astype(np.int64).tobytes(), digest_size=16)
    digest.update(labelled.astype(np.uint8).tobytes())
    return digest.digest()


def segments(batch: dict) -> list[tuple[np.ndarray, np.ndarray]]:
    """The batch's sequences that have distilled positions, in the order ``distill_loss`` selects positions (row by
    row, left to right), each as (token ids, labelled mask).

    Packed rows (``position_ids``) split where the position id returns to 0; unpacked rows end at their padding.
    """
    ids, labelled = batch["input_ids"].cpu().numpy(), (batch["labels"] != -100).cpu().numpy()
    pos, mask = batch.get("position_ids"), batch.get("attention_mask")
    pos = pos.cpu().numpy() if pos is not None else None
    found = []
    for r in range(ids.shape[0]):
        if pos is not None:
            starts = np.flatnonzero(pos[r] == 0).tolist()
            bounds = zip(starts, [*starts[1:], ids.shape[1]])
        else:
            bounds = [(0, int(mask[r].sum()) if mask is not None else ids.shape[1])]
        for a, b in bounds:
            if labelled[r, a + 1 : b].any():  # position t predicts t + 1; a sequence's first token is never labelled
                found.append((ids[r, a:b], labelled[r, a:b]))
    return found


def sequences(batch: dict) -> list[tuple[bytes, int]]:
    """``segments`` as (key, number of positions predicting a labelled token)."""
    return [(sequence_key(ids, labelled), int(labelled[1:].sum())) for ids, labelled in segments(batch)]


def tail_from_top(logprobs: torch.Tensor) -> torch.Tensor:
    """``log(1 - mass of the top k)`` for each row of float32 log-probabilities ``[N, k]`` (vLLM's).

    A tail lighter than the rounding of k float32 probabilities (about k * 2^-24) cannot be told from zero here, so
    it is floored there rather than at ``FLOOR``: a confident position must not look like one whose tail is empty,
    which reverse KL would charge 1e4 for every bit of student mass outside the top k.
    """
    floor = math.log(logprobs.shape[-1] * 2.0**-24)
    return torch.log1p(-logprobs.double().exp().sum(-1).clamp(max=1.0)).clamp(min=floor).float()


class StoredTeacher:
    """A finished store, opened for reading: ``lookup(batch)`` gives the teacher's top k at the batch's positions."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        manifest = self.folder / MANIFEST
        if not manifest.is_file():
            raise ConfigError(
                f"distill.teacher_logits '{folder}' holds no finished store (no {MANIFEST}). Write it with "
                "`lprecover teacher-logits` and this recipe's overrides plus store.out=DIR; a store cut short "
                "resumes when relaunched."
            )
        self.manifest = json.loads(manifest.read_text())
        self.index: dict[bytes, tuple[int, int, int]] = {}
        # Small stores are read whole (a lookup is then a few tensor slices); large ones stay memory-mapped.
        in_memory = self.manifest["bytes"] <= IN_MEMORY_BYTES
        self.shards = []
        for i, name in enumerate(self.manifest["shard_files"]):
            shard = safe_open(str(self.folder / name), framework="pt")
            keys, offsets = shard.get_tensor("keys").numpy(), shard.get_tensor("offsets").tolist()
            for j, key in enumerate(keys):
                self.index[key.tobytes()] = (i, offsets[j], offsets[j + 1])
            self.shards.append({n: shard.get_tensor(n) for n in TopK._fields} if in_memory else shard)

    def check(self, temperature: float, vocab_size: int) -> None:
        """Refuse a store made at another temperature or for another vocabulary."""
        m = self.manifest
        if m["temperature"] != temperature:
            raise ConfigError(
                f"The store '{self.folder}' holds log-probabilities at temperature {m['temperature']}, the recipe "
                f"distils at distill.temperature={temperature}: set it to {m['temperature']} or write a new store."
            )
        if m["vocab_size"] != vocab_size:
            raise ConfigError(
                f"The store '{self.folder}' was written by a teacher with {m['vocab_size']} tokens, the student has "
                f"{vocab_size}: distillation needs one tokenizer."
            )

    def check_covers(self, dataset, collator, batch_rows: int = 64) -> None:
        """Refuse training data with sequences the store lacks (other data, max_length or packing)."""
        missing = total = 0
        for start in range(0, len(dataset), batch_rows):
            batch = collator([dataset[i] for i in range(start, min(start + batch_rows, len(dataset)))])
            for key, _ in sequences(batch):
                total += 1
                missing += key not in self.index
        if missing:
            raise ConfigError(
                f"{missing} of the {total} training sequences are not in the store '{self.folder}': it was written "
                "from other data or train settings (data.*, train.max_length, train.packing, the tokenizer). "
                "Rewrite it with `lprecover teacher-logits` and the same overrides as this run."
            )

    def lookup(self, batch: dict, device=None) -> TopK:
        """The teacher at the batch's distilled positions, in the order ``distill_loss`` selects them."""
        parts = []
        for key, n in sequences(batch):
            if key not in self.index:
                raise ConfigError(f"A training sequence is missing from the store '{self.folder}'.")
            shard, a, b = self.index[key]
            if b - a != n:
                raise ConfigError(f"The store '{self.folder}' has {b - a} positions for a sequence with {n}.")
            held = self.shards[shard]
            parts.append([(held[n] if isinstance(held, dict) else held.get_slice(n))[a:b] for n in TopK._fields])
        if not parts:
            return TopK(*(t.to(device) for t in TopK.empty(self.manifest["k"])))
        ids, logprobs, tail = (torch.cat(col) for col in zip(*parts))
        return TopK(ids.to(torch.int64).to(device), logprobs.to(device), tail.to(device))
