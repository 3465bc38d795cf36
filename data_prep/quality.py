"""Quality controls: exact and near duplicates, n-gram decontamination against evaluation sets.

All three compare token sequences, where a token is a run of letters, a run of digits, or any other single
non-space character: ``3a-2b*2`` is ``3 a - 2 b * 2``. Operators and symbols are content (``3a+2b-2`` is another
problem), while whitespace is not. Case is not content, except in dedup's variables: letters written against a
digit or an operator keep their case there, so the organism's ``Ka+3`` and ``ka+3`` (two of its 53 symbols) are
two problems. Decontamination ignores case throughout, so it errs towards flagging. Near duplicates are found with
MinHash over token 3-gram shingles and banded LSH, then confirmed by exact Jaccard, so the cost stays near linear in
the number of rows. Decontamination flags a training row when it shares any ``ngram``-word sequence (13 by default,
as in GPT-3's decontamination), with the symbols between those words, with an evaluation problem.
"""

import hashlib
import re
from collections import defaultdict

import numpy as np

# Letters, digits and symbols are separate tokens: words alone (\w+) read 3a-2b*2 and 3a+2b-2 as the same "3a 2b 2",
# and dedup dropped 512 of 2000 organism problems where 244 were true duplicates.
_TOKEN = re.compile(r"[^\W\d_]+|\d+|\S")
_OPERATORS = frozenset("+-*/=<>^%×÷")
_PRIME = (1 << 61) - 1


def tokens(text: str) -> list[str]:
    """Lower-cased tokens of ``text``: runs of letters, runs of digits, and every other non-space character."""
    return _TOKEN.findall(text.lower())


def normalized(text: str) -> str:
    return " ".join(tokens(text))


def _math(text: str) -> tuple[str, ...]:
    """The numbers, operators and variables of a row, in order, variables in their own case.

    A variable is a run of letters written against a digit or an operator with no space between (``3x``, ``x+2``,
    the organism's ``Ka+3``): content, like the numbers, case included. Letters set off by spaces are wording.
    """
    out = []
    for m in _TOKEN.finditer(text):
        t = m.group()
        if t.isdecimal() or t in _OPERATORS:
            out.append(t)
        elif t[0].isalpha():
            before, after = text[m.start() - 1 : m.start()], text[m.end() : m.end() + 1]
            if any(c.isdecimal() or c in _OPERATORS for c in before + after):
                out.append(t)
    return tuple(out)


def _ngrams(toks: list[str], n: int) -> set[str]:
    return {" ".join(toks[i : i + n]) for i in range(max(0, len(toks) - n + 1))} or {" ".join(toks)}


def _hash64(s: str) -> int:
    return int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little")


def exact_duplicates(texts: list[str]) -> list[int]:
    """Indices of rows whose normalized text and variables (``_math``, case kept) repeat an earlier row."""
    seen, dupes = set(), []
    for i, t in enumerate(texts):
        key = (normalized(t), _math(t))
        if key in seen:
            dupes.append(i)
        seen.add(key)
    return dupes


def near_duplicates(
    texts: list[str], threshold: float = 0.85, num_perm: int = 64, bands: int = 16, seed: int = 0
) -> list[int]:
    """Indices of rows that repeat an earlier kept row's numbers, operators and variables with similar wording.

    Similar wording is a token-3-gram Jaccard similarity of at least ``threshold``. Rows whose numbers, operators or
    variables (``_math``) differ are different problems however much wording they share: two long organism chains
    that differ only in one symbol or operand share most of their shingles.
    """
    rng = np.random.default_rng(seed)
    a = rng.integers(1, _PRIME, num_perm, dtype=np.uint64)
    b = rng.integers(0, _PRIME, num_perm, dtype=np.uint64)
    toks = [tokens(t) for t in texts]
    shingles = [_ngrams(t, 3) for t in toks]
    maths = [_math(t) for t in texts]
    rows = num_perm // bands
    buckets: dict[tuple, list[int]] = defaultdict(list)
    dupes: list[int] = []
    for i, sh in enumerate(shingles):
        hashes = np.array([_hash64(s) for s in sh], dtype=np.uint64)
        sig = ((np.outer(hashes, a) + b) % _PRIME).min(axis=0)
        keys = [(band, sig[band * rows : (band + 1) * rows].tobytes()) for band in range(bands)]
        candidates = {j for k in keys for j in buckets.get(k, [])}
        if any(
            maths[i] == maths[j] and len(sh & shingles[j]) / len(sh | shingles[j]) >= threshold for j in candidates
        ):
            dupes.append(i)
            continue
        for k in keys:
            buckets[k].append(i)
    return dupes


def _word_ngrams(toks: list[str], n: int) -> set[str]:
    """Every run of ``n`` consecutive words (letter or digit runs) with the symbols between them."""
    at = [i for i, t in enumerate(toks) if t[0].isalnum()]
    return {" ".join(toks[at[k] : at[k + n - 1] + 1]) for k in range(len(at) - n + 1)}


def contamination(train: list[str], tests: dict[str, list[tuple[str, str]]], n: int = 13) -> list[dict]:
    """Training rows sharing an ``n``-word sequence, symbols between the words included, with an evaluation problem.

    Counting words rather than tokens keeps GPT-3's span of text per n-gram: punctuation and LaTeX would otherwise
    shorten it, and short spans shared by chance flag clean rows. The symbols between the words must still match,
    so ``3a-2b`` does not match ``3a+2b``.

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
            toks = tokens(text)
            size = min(n, sum(t[0].isalnum() for t in toks))
            if not size:
                continue
            sizes.add(size)
            for g in _word_ngrams(toks, size):
                index.setdefault(g, (task, pid))
    matches = []
    for i, text in enumerate(train):
        toks = tokens(text)
        found = {}
        for size in sorted(sizes, reverse=True):
            for g in _word_ngrams(toks, size):
                hit = index.get(g)
                if hit and hit not in found:
                    found[hit] = g
        matches += [{"train_index": i, "task": t, "problem_id": p, "ngram": g} for (t, p), g in found.items()]
    return matches
