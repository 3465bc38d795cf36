"""Quality controls: exact and near duplicates, n-gram decontamination against evaluation sets.

Near duplicates are found with MinHash over word 3-gram shingles and banded LSH, then confirmed by exact Jaccard,
so the cost stays near linear in the number of rows. Decontamination flags a training row when it shares any
``ngram``-word sequence (13 by default, as in GPT-3's decontamination) with an evaluation problem.
"""

import hashlib
import re
from collections import defaultdict

import numpy as np

_WORD = re.compile(r"\w+")
_PRIME = (1 << 61) - 1


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def normalized(text: str) -> str:
    return " ".join(words(text))


def _ngrams(tokens: list[str], n: int) -> set[str]:
    return {" ".join(tokens[i : i + n]) for i in range(max(0, len(tokens) - n + 1))} or {" ".join(tokens)}


def _hash64(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little")


def exact_duplicates(texts: list[str]) -> list[int]:
    """Indices of rows whose normalized text repeats an earlier row."""
    seen, dupes = set(), []
    for i, t in enumerate(texts):
        key = normalized(t)
        if key in seen:
            dupes.append(i)
        seen.add(key)
    return dupes


def near_duplicates(
    texts: list[str], threshold: float = 0.85, num_perm: int = 64, bands: int = 16, seed: int = 0
) -> list[int]:
    """Indices of rows whose word-3-gram Jaccard similarity with an earlier kept row is at least ``threshold``."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, _PRIME, num_perm, dtype=np.uint64)
    b = rng.integers(0, _PRIME, num_perm, dtype=np.uint64)
    shingles = [_ngrams(words(t), 3) for t in texts]
    rows = num_perm // bands
    buckets: dict[tuple, list[int]] = defaultdict(list)
    dupes: list[int] = []
    for i, sh in enumerate(shingles):
        hashes = np.array([_hash64(s) for s in sh], dtype=np.uint64)
        sig = ((np.outer(hashes, a) + b) % _PRIME).min(axis=0)
        keys = [(band, sig[band * rows : (band + 1) * rows].tobytes()) for band in range(bands)]
        candidates = {j for k in keys for j in buckets.get(k, [])}
        if any(len(sh & shingles[j]) / len(sh | shingles[j]) >= threshold for j in candidates):
            dupes.append(i)
            continue
        for k in keys:
            buckets[k].append(i)
    return dupes


def contamination(train: list[str], tests: dict[str, list[tuple[str, str]]], n: int = 13) -> list[dict]:
    """Training rows sharing an ``n``-word sequence with an evaluation problem.

    Args:
        train: training problem texts.
        tests: ``{task: [(problem_id, text), ...]}``.

    Returns:
        ``[{"train_index", "task", "problem_id", "ngram"}]``, one entry per matched (row, test item).
    """
    index: dict[str, tuple[str, str]] = {}
    sizes = set()  # test items shorter than n words are matched whole
    for task, items in tests.items():
        for pid, text in items:
            toks = words(text)
            if not toks:
                continue
            size = min(n, len(toks))
            sizes.add(size)
            for g in _ngrams(toks, size):
                index.setdefault(g, (task, pid))
    matches = []
    for i, text in enumerate(train):
        toks = words(text)
        found = {}
        for size in sorted(sizes, reverse=True):
            if len(toks) < size:
                continue
            for g in _ngrams(toks, size):
                hit = index.get(g)
                if hit and hit not in found:
                    found[hit] = g
        matches += [{"train_index": i, "task": t, "problem_id": p, "ngram": g} for (t, p), g in found.items()]
    return matches
