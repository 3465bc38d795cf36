"""Calibration text for pruning criteria.

Sources (``prune.calibration=``):

- ``traces``: the unpruned model's own long-CoT generations on reasoning problems (its registered calibration
  source's questions, e.g. the organism's chains, or GSM8K questions from ``calibration_path``). Layers that look redundant on prose may carry the reasoning, so this is
  the source that matches what pruning must preserve.
- ``problems``: reasoning problems with their reference solutions rendered through the chat template (the
  registered source's gold traces, or GSM8K question + worked answer).
- ``text``: plain text, one document per line of a ``.txt`` file, or the ``text`` field of a ``.jsonl`` file.
- ``hf:DATASET[:CONFIG]``: the ``text`` column of a hub dataset, loaded with ``datasets``.
- ``auto``: ``traces`` for a model whose traits name a calibration source, ``problems`` otherwise.
"""

import random
from pathlib import Path

import torch

from lprecover.config import ConfigError
from lprecover.evaluation.budget_forcing import budget_forced_generate, prompt_ids, think_format
from lprecover.log import get_logger
from lprecover.pruning.config import check_source
from lprecover.pruning.criteria import Calibration
from lprecover.readers import read_jsonl
from lprecover.registry import CalibrationSource, ModelTraits, calibration_source, model_traits

logger = get_logger(__name__)


def _gsm8k_rows(path: str | None) -> list[dict]:
    if path is None:
        import datasets

        return list(datasets.load_dataset("openai/gsm8k", "main", split="train"))
    rows = read_jsonl(path, "prune.calibration_path", allow_empty=False)
    _need(rows, ("question", "answer"), path)
    return rows


def _need(rows: list[dict], fields: tuple[str, ...], path: str) -> None:
    """Refuse the first calibration row that lacks one of ``fields``, naming it."""
    for i, row in enumerate(rows):
        missing = [f for f in fields if not isinstance(row.get(f), str)]
        if missing:
            raise ConfigError(
                f"Row {i} of prune.calibration_path '{path}' has no text field {', '.join(map(repr, missing))}."
            )


def _problem_texts(tokenizer, registered: CalibrationSource | None, path: str | None, n: int, seed: int) -> list[str]:
    if registered is not None:
        rows = registered.traces(n, seed)
    else:
        data = _gsm8k_rows(path)
        random.Random(seed).shuffle(data)
        rows = [
            [{"role": "user", "content": r["question"]}, {"role": "assistant", "content": r["answer"]}]
            for r in data[:n]
        ]
    return [tokenizer.apply_chat_template(m, tokenize=False) for m in rows]


def _trace_texts(
    model, tokenizer, traits: ModelTraits, path: str | None, n: int, seq_len: int, seed: int
) -> list[str]:
    """Let the model think on ``n`` problems (greedy) and keep prompt + generation as calibration text."""
    if traits.calibration:
        questions = calibration_source(traits.calibration).questions(n, seed)
    else:
        data = _gsm8k_rows(path)
        random.Random(seed).shuffle(data)
        questions = [r["question"] for r in data[:n]]
    # Models without delimiters think in their plain response.
    fmt = think_format(tokenizer, default_answer_prefix=traits.answer_prefix)
    prompts = [prompt_ids(tokenizer, q, fmt) for q in questions]
    budget = max(1, seq_len - max(len(p) for p in prompts) - 8)
    gens = budget_forced_generate(model, tokenizer, prompts, budget, fmt, answer_max_tokens=8, batch_size=16)
    return [tokenizer.decode(p) + g.raw for p, g in zip(prompts, gens)]


def _plain_texts(source: str, path: str | None, n: int, seed: int) -> list[str]:
    if source.startswith("hf:"):
        import datasets

        name, _, config = source[3:].partition(":")
        texts = [r["text"] for r in datasets.load_dataset(name, config or None, split="train") if r["text"].strip()]
    else:
        if not path:
            raise ConfigError("prune.calibration=text needs prune.calibration_path=FILE (.txt or .jsonl with 'text').")
        p = Path(path)
        if p.suffix == ".jsonl":
            rows = read_jsonl(p, "prune.calibration_path", allow_empty=False)
            _need(rows, ("text",), path)
            texts = [r["text"] for r in rows if r["text"].strip()]
        else:
            texts = [line for line in p.read_text().splitlines() if line.strip()]
        if not texts:
            raise ConfigError(f"prune.calibration_path '{path}' holds no text.")
    random.Random(seed).shuffle(texts)
    return texts[:n]


def build_calibration(
    model,
    tokenizer,
    source: str = "auto",
    path: str | None = None,
    num_samples: int = 64,
    seq_len: int = 512,
    batch_size: int = 8,
    seed: int = 0,
    traits: ModelTraits | None = None,
) -> Calibration:
    """Collect ``num_samples`` calibration texts, truncated to ``seq_len`` tokens and batched.

    Args:
        traits: the model's registered traits (default: read from ``model.config``); their calibration source
            gives the problems and questions of ``traces``/``problems``.
    """
    check_source(source)
    traits = traits or model_traits(getattr(model, "config", None))
    if source == "auto":
        source = "traces" if traits.calibration else "problems"
    if source in ("traces", "problems") and not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            f"prune.calibration={source} renders problems through the chat template, and the tokenizer of "
            f"{tokenizer.name_or_path!r} has none (a base model?): pass prune.calibration=text with "
            "prune.calibration_path=FILE, or prune an instruct checkpoint."
        )
    if source == "traces":
        texts = _trace_texts(model, tokenizer, traits, path, num_samples, seq_len, seed)
    elif source == "problems":
        registered = calibration_source(traits.calibration) if traits.calibration else None
        texts = _problem_texts(tokenizer, registered, path, num_samples, seed)
    else:
        texts = _plain_texts(source, path, num_samples, seed)
    if not texts:
        raise ConfigError(f"The calibration source '{source}' produced no text.")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    batches = []
    for start in range(0, len(texts), batch_size):
        enc = [tokenizer.encode(t, add_special_tokens=False)[:seq_len] for t in texts[start : start + batch_size]]
        width = max(len(e) for e in enc)
        ids = torch.full((len(enc), width), pad, dtype=torch.long)
        mask = torch.zeros((len(enc), width), dtype=torch.long)
        for i, e in enumerate(enc):
            ids[i, : len(e)] = torch.tensor(e)
            mask[i, : len(e)] = 1
        labels = ids.masked_fill(mask == 0, -100)
        batches.append({"input_ids": ids, "attention_mask": mask, "labels": labels})
    cal = Calibration(batches, source)
    logger.info("Calibration: %d %s samples, %d tokens", len(texts), source, cal.num_tokens)
    return cal
