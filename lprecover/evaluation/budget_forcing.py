"""Budget forcing (s1): cap the thinking phase at B tokens, close it for the model, then let it answer.

The Hugging Face engine here generates a whole batch at once with the KV cache and left padding; each sequence
stops on its own when it closes its thinking. That is what makes a curve over many budgets affordable, where the
seed's pruned-model path recomputed the full prefix for every token of every problem.
"""

from dataclasses import dataclass, field

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from lprecover.log import get_logger, progress

logger = get_logger(__name__)


@dataclass(frozen=True)
class ThinkFormat:
    """The delimiters a model family thinks in.

    Args:
        open: text that opens the thinking phase (appended to the prompt unless the chat template already ends with it).
        close: text that ends the thinking phase; budget forcing appends it when the budget runs out. ``None`` for
            models that do not think in delimiters: the whole response is capped, and an end-of-turn ends it.
        answer_prefix: text appended after a forced close, nudging the model to answer now.
        wait: text that replaces an early close when ``num_waits`` asks the model to keep thinking.
    """

    open: str = "<think>"
    close: str | None = "</think>"
    answer_prefix: str = ""
    wait: str = "Wait"


@dataclass
class Generation:
    """One budget-forced generation, in token ids and text."""

    thinking: str
    answer: str
    thinking_tokens: int
    truncated: bool
    waits: int = 0
    raw: str = field(default="")


def _stop_ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False)


def prompt_ids(
    tokenizer: PreTrainedTokenizerBase, problem: str, fmt: ThinkFormat, system: str | None = None
) -> list[int]:
    """Token ids of the chat prompt for ``problem``, ending just inside the thinking phase."""
    if not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"The tokenizer of {tokenizer.name_or_path!r} has no chat template; evaluation prompts every model through "
            "its chat template so compared models see identical prompts. Use an instruct/reasoning checkpoint."
        )
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": problem}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if fmt.open and not text.rstrip().endswith(fmt.open):
        text += fmt.open
    return tokenizer.encode(text, add_special_tokens=False)


def _eos_ids(model, tokenizer) -> set[int]:
    """End-of-turn ids from the tokenizer and the generation config (an int or a list there)."""
    gen = getattr(model.generation_config, "eos_token_id", None)
    gen = [gen] if isinstance(gen, int) else list(gen or [])
    return {t for t in [tokenizer.eos_token_id, *gen] if t is not None}


def _left_pad(seqs: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            ids[i, width - len(s) :] = torch.tensor(s)
            mask[i, width - len(s) :] = 1
    return ids.to(device), mask.to(device)


def _cut_at(ids: list[int], stops: set[int], pad_id: int) -> tuple[list[int], int | None]:
    """Split generated ids at the first stop token: (kept ids, the stop token or None)."""
    out = []
    for t in ids:
        if t in stops:
            return out, t
        if t == pad_id and t not in stops:
            break
        out.append(t)
    return out, None


def _check_close(tokenizer, fmt: ThinkFormat) -> list[int]:
    close_ids = _stop_ids(tokenizer, fmt.close) if fmt.close else []
    if fmt.close and len(close_ids) != 1:
        raise ValueError(
            f"The end-of-thinking delimiter {fmt.close!r} is {len(close_ids)} tokens for this tokenizer; budget "
            "forcing needs it to be a single token. Pass the model family's delimiter (model.think_close=...)."
        )
    return close_ids


def force_budget(
    run, tokenizer, eos_ids: set[int], prompts, budget, fmt, answer_max_tokens, num_waits
) -> list[Generation]:
    """The budget-forcing loop, shared by every engine.

    Args:
        run: ``run(seqs, rooms, stops) -> [(kept ids, stop id or None)]``: continue each sequence by at most its
            room, stopping at any of ``stops``; ``None`` means the room ran out.
    """
    if budget < 0:
        raise ValueError(f"The thinking budget must be non-negative, got {budget}.")
    close_ids = _check_close(tokenizer, fmt)
    stops = set(close_ids) | eos_ids
    forced_suffix = close_ids + _stop_ids(tokenizer, fmt.answer_prefix)
    wait_ids = _stop_ids(tokenizer, fmt.wait)
    n = len(prompts)
    thinking = [[] for _ in range(n)]
    waits = [0] * n
    truncated = [budget > 0] * n
    ended = [False] * n  # the model closed its turn itself (formats without thinking delimiters)
    closed_by = [None] * n
    active = list(range(n)) if budget > 0 else []
    while active:
        outs = run([prompts[i] + thinking[i] for i in active], [budget - len(thinking[i]) for i in active], stops)
        still = []
        for i, (kept, stop) in zip(active, outs):
            thinking[i] += kept
            if stop is None:
                continue  # the budget ran out: closed for the model below
            truncated[i], closed_by[i] = False, stop
            if waits[i] < num_waits and len(thinking[i]) + len(wait_ids) < budget:
                thinking[i] += wait_ids
                waits[i] += 1
                truncated[i] = True
                still.append(i)
            elif not close_ids:
                ended[i] = True
        active = still
    # A model that closed its thinking goes on to answer as it would; a forced close also gets the answer prefix.
    suffixes = [close_ids if closed_by[i] in close_ids else forced_suffix for i in range(n)]
    todo = [i for i in range(n) if not ended[i]]
    answers = dict.fromkeys(range(n), [])
    if todo:
        outs = run([prompts[i] + thinking[i] + suffixes[i] for i in todo], [answer_max_tokens] * len(todo), eos_ids)
        answers |= {i: kept for i, (kept, _) in zip(todo, outs)}
    results = []
    for i in range(n):
        suffix = [] if ended[i] else suffixes[i]
        results.append(
            Generation(
                tokenizer.decode(thinking[i], skip_special_tokens=False),
                tokenizer.decode(answers[i], skip_special_tokens=True),
                len(thinking[i]),
                truncated[i],
                waits[i],
                tokenizer.decode(thinking[i] + suffix + answers[i], skip_special_tokens=False),
            )
        )
    return results


def _hf_runner(model, tokenizer, sampling):
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    @torch.inference_mode()
    def run(seqs, rooms, stops):
        ids, mask = _left_pad(seqs, pad_id, model.device)
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max(rooms),
            eos_token_id=sorted(stops),
            pad_token_id=pad_id,
            use_cache=True,
            **sampling,
        )
        result = []
        for row, room in zip(out, rooms):
            kept, stop = _cut_at(row[ids.shape[1] :].tolist(), stops, pad_id)
            # The batch runs to the longest room; a sequence that went past its own was cut by its budget.
            result.append((kept[:room], None) if stop is None or len(kept) > room else (kept, stop))
        return result

    return run


def budget_forced_generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[list[int]],
    budget: int,
    fmt: ThinkFormat = ThinkFormat(),
    answer_max_tokens: int = 16,
    num_waits: int = 0,
    batch_size: int = 64,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    show_progress: bool = False,
) -> list[Generation]:
    """Generate with the thinking phase capped at ``budget`` tokens, then a short answer (transformers engine).

    Args:
        prompts: prompt token ids, each ending inside the thinking phase (see ``prompt_ids``).
        budget: the most thinking tokens each sequence may write. A sequence still thinking at the cap is closed
            for it (``fmt.close`` then ``fmt.answer_prefix``) and marked truncated.
        num_waits: how many times an early close is replaced by ``fmt.wait`` so the model keeps thinking.
        temperature: 0 means greedy.

    Returns:
        One ``Generation`` per prompt, in order.
    """
    _check_close(tokenizer, fmt)
    sampling = (
        {"do_sample": False} if temperature == 0 else {"do_sample": True, "temperature": temperature, "top_p": top_p}
    )
    run = _hf_runner(model, tokenizer, sampling)
    eos_ids = _eos_ids(model, tokenizer)
    torch.manual_seed(seed)
    results: list[Generation] = []
    for start in progress(range(0, len(prompts), batch_size), desc=f"budget {budget}", disable=not show_progress):
        batch = prompts[start : start + batch_size]
        results += force_budget(run, tokenizer, eos_ids, batch, budget, fmt, answer_max_tokens, num_waits)
    return results
