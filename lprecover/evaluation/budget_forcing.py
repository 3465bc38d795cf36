"""Budget forcing (s1): cap the thinking phase at B tokens, close it for the model, then let it answer.

The protocol follows s1's lm-evaluation-harness fork (``simplescaling/s1``, ``eval/lm-evaluation-harness``,
``lm_eval/models/vllm_causallms.py``): thinking stops at the end-of-thinking delimiter or at the budget; a model
cut off by the budget gets the delimiter and an answer cue appended for it; with ``num_waits`` an early end of
thinking is replaced by a wait string ("Wait") while budget remains; the answer phase then has its own token cap.

Every result is a function of the prompt, the sampling key and the model alone, never of the batch it ran in:
each sequence stops within its own room, and sampled tokens are drawn from a per-sequence, per-position random
stream (``KeyedSampling``), so batch size 1 and 64 write the same records, and a model's thinking up to budget B
is the first B tokens of its thinking up to a larger budget.
"""

import hashlib
from dataclasses import dataclass

import torch
from transformers import LogitsProcessor, PreTrainedModel, PreTrainedTokenizerBase

from lprecover.config import ConfigError
from lprecover.log import progress

MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class ThinkFormat:
    """The delimiters a model family thinks in.

    Args:
        open: text that opens the thinking phase (appended to the prompt unless the chat template already ends with it).
        close: text that ends the thinking phase; budget forcing appends it when the budget runs out. ``None`` for
            models that do not think in delimiters: the whole response is capped, and an end-of-turn ends it.
        answer_open: text appended after every close, the model's own or a forced one, that opens the answer (s1:
            ``answer``, which turns its close ``<|im_start|>`` into ``<|im_start|>answer``).
        answer_prefix: the answer cue appended after a forced close (s1: "\nFinal Answer:"), so a model cut off
            mid-thought answers instead of reasoning on in its answer.
        wait: strings that replace an early close when ``num_waits`` asks the model to keep thinking, used in
            turn (s1 uses "Wait").
    """

    open: str = "<think>"
    close: str | None = "</think>"
    answer_open: str = ""
    answer_prefix: str = ""
    wait: tuple[str, ...] = ("Wait",)


@dataclass
class Generation:
    """One budget-forced generation.

    Attributes:
        thinking: the thinking text (inserted wait strings included).
        answer: the text the model wrote in its answer phase.
        response: what is scored: the text after thinking with the forced answer cue included; for formats without
            thinking delimiters, the whole response (thinking, cue and answer), since the model answers in it.
        thinking_tokens: thinking tokens, wait strings included (they count against the budget).
        truncated: the budget ran out before the model ended its thinking (the close was forced).
        answer_tokens: tokens written in the answer phase.
        answer_truncated: the answer phase hit its cap before the model ended its turn.
        raw: everything after the prompt, special tokens kept.
    """

    thinking: str
    answer: str
    response: str
    thinking_tokens: int
    truncated: bool
    waits: int = 0
    answer_tokens: int = 0
    answer_truncated: bool = False
    raw: str = ""


def _ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False) if text else []


def prompt_ids(
    tokenizer: PreTrainedTokenizerBase, problem: str, fmt: ThinkFormat, system: str | None = None
) -> list[int]:
    """Token ids of the chat prompt for ``problem``, ending just inside the thinking phase."""
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            f"The tokenizer of {tokenizer.name_or_path!r} has no chat template; evaluation prompts every model through "
            "its chat template so compared models see identical prompts. Use an instruct/reasoning checkpoint."
        )
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": problem}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if fmt.open and not text.rstrip().endswith(fmt.open):
        text += fmt.open
    return tokenizer.encode(text, add_special_tokens=False)


def sampling_key(*parts) -> int:
    """A 64-bit key naming one sample's random stream, e.g. ``sampling_key(seed, task, problem_id, sample)``."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little")


def uniform(key: int, position: int) -> float:
    """A uniform number in [0, 1) determined by ``key`` and ``position`` alone (splitmix64)."""
    x = (key + (position + 1) * 0x9E3779B97F4A7C15) & MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
    return ((x ^ (x >> 31)) >> 11) / float(1 << 53)


def sample_tokens(logits: torch.Tensor, u: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """Draw one token per row from ``softmax(logits / T)`` restricted to the top-p nucleus, by inverse CDF at ``u``.

    The nucleus is the smallest set of most probable tokens whose mass reaches ``top_p`` (Holtzman et al. 2020).
    Every row is computed on its own, so a row's token does not depend on the other rows.

    Args:
        logits: ``[rows, vocab]``.
        u: ``[rows]`` uniform numbers in [0, 1).
    """
    probs = torch.softmax(logits.double() / temperature, dim=-1)
    p, order = probs.sort(dim=-1, descending=True, stable=True)
    p = p * ((p.cumsum(-1) - p) < top_p)
    cdf = p.cumsum(-1) / p.sum(-1, keepdim=True)
    j = torch.searchsorted(cdf, u.to(cdf).unsqueeze(-1)).clamp(max=logits.shape[-1] - 1)
    return order.gather(-1, j).squeeze(-1)


class KeyedSampling(LogitsProcessor):
    """Sampling with a random stream per sequence and position, so results do not depend on the batch.

    transformers samples a whole batch from one generator, so a sequence's tokens change with what else is in its
    batch. This processor draws each row's token itself (``sample_tokens`` at ``uniform(key, position)``) and
    leaves only that token possible, to be picked by greedy decoding.
    """

    def __init__(self, keys: list[int], pads: list[int], temperature: float, top_p: float):
        self.keys, self.pads, self.temperature, self.top_p = keys, pads, temperature, top_p

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        width = input_ids.shape[1]
        u = torch.tensor([uniform(k, width - pad) for k, pad in zip(self.keys, self.pads)], device=scores.device)
        tokens = sample_tokens(scores, u, self.temperature, self.top_p)
        return torch.full_like(scores, float("-inf")).scatter_(-1, tokens.unsqueeze(-1), 0.0)


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


def cut(ids: list[int], room: int, stops: set[int]) -> tuple[list[int], int | None]:
    """What a generation of at most ``room`` tokens stopping at ``stops`` keeps: (kept ids, stop id or None).

    A stop found after ``room`` tokens does not count: alone, the sequence would have run out of room first.
    """
    for j, t in enumerate(ids[:room]):
        if t in stops:
            return ids[:j], t
    return ids[:room], None


def check_close(tokenizer, fmt: ThinkFormat) -> list[int]:
    """The end-of-thinking delimiter's token id (none without a delimiter); refuse one that is not a single token."""
    close_ids = _ids(tokenizer, fmt.close) if fmt.close else []
    if fmt.close and len(close_ids) != 1:
        raise ConfigError(
            f"The end-of-thinking delimiter {fmt.close!r} is {len(close_ids)} tokens for this tokenizer; budget "
            "forcing needs it to be a single token. Pass the model family's delimiter (model.think_close=...)."
        )
    return close_ids


@dataclass
class _Thinking:
    """One prompt's thinking at the largest budget, with what decides its thinking at every smaller one.

    ``waits_at``: ``(position, stop id, wait length)`` for each early stop that a wait string replaced (the wait
    occupies ``ids[position:position + wait length]``); ``stopped_at``: the length at which thinking ended and the
    token that ended it (None: the budget did).
    """

    ids: list[int]
    waits_at: list[tuple[int, int, int]]
    stopped_at: tuple[int, int | None]

    def at(self, budget: int) -> tuple[list[int], int, int | None]:
        """(thinking ids, waits, stop id or None) of a generation whose budget is ``budget``.

        Exact, wait strings included: up to its first divergence the generation at ``budget`` wrote the same tokens
        (greedy decoding, or sampling keyed by sequence and position), and it diverges only at an early stop where a
        wait string no longer fits its budget (it stops there) or at its own budget (it is cut off).
        """
        for waits, (pos, stop, length) in enumerate(self.waits_at):
            if pos >= budget:
                return self.ids[:budget], waits, None
            if pos + length >= budget:  # no room left for the wait string: this generation stops here
                return self.ids[:pos], waits, stop
        pos, stop = self.stopped_at
        if stop is not None and pos < budget:
            return self.ids[:pos], len(self.waits_at), stop
        return self.ids[:budget], len(self.waits_at), None


def force_budgets(
    run, tokenizer, eos_ids: set[int], prompts, budgets, fmt, answer_max_tokens, num_waits, keys
) -> list[list[Generation]]:
    """The budget-forcing loop, shared by every engine, for several budgets in one thinking pass.

    Thinking is generated once, to the largest budget. A smaller budget B takes its prefix: the model's own stop
    when that came before B, else the first B tokens, closed for it with the answer cue; only its answer phase is
    generated on its own. A wait string that fits the largest budget but not B ends B's thinking at that early
    stop, as a generation at budget B would have (``_Thinking.at``). Answer phases with identical inputs (e.g. every
    budget past the point where the model closed its thinking) are generated once. The records equal per-budget
    generation's for greedy decoding and for keyed sampling, where a token depends on the prefix, the key and the
    position alone.

    Args:
        run: ``run(seqs, rooms, stops, keys) -> [(kept ids, stop id or None)]``: continue each sequence by at most
            its room, stopping at any of ``stops``; ``None`` means the room ran out. ``keys`` name each sequence's
            random stream.
        budgets: thinking budgets (positive token counts).
        keys: one sampling key per prompt.

    Returns:
        One list of ``Generation`` per budget, in the order of ``budgets``, each aligned with ``prompts``.
    """
    if not budgets or min(budgets) < 1:
        raise ValueError(f"Thinking budgets must be positive numbers of tokens, got {list(budgets)}.")
    top = max(budgets)
    close_ids = check_close(tokenizer, fmt)
    stops = set(close_ids) | eos_ids
    opened = close_ids + _ids(tokenizer, fmt.answer_open)  # what follows every end of thinking
    cue_ids = _ids(tokenizer, fmt.answer_prefix)
    wait_ids = [_ids(tokenizer, w) for w in fmt.wait] or [[]]
    n = len(prompts)
    thoughts = [_Thinking([], [], (0, None)) for _ in range(n)]
    active = list(range(n))
    while active:
        outs = run(
            [prompts[i] + thoughts[i].ids for i in active],
            [top - len(thoughts[i].ids) for i in active],
            stops,
            [keys[i] for i in active],
        )
        still = []
        for i, (kept, stop) in zip(active, outs):
            t = thoughts[i]
            t.ids += kept
            wait = wait_ids[len(t.waits_at) % len(wait_ids)]
            if stop is not None and len(t.waits_at) < num_waits and wait and len(t.ids) + len(wait) < top:
                t.waits_at.append((len(t.ids), stop, len(wait)))  # keep thinking: the stop is dropped and forgotten
                t.ids += wait
                still.append(i)
            else:
                t.stopped_at = (len(t.ids), stop)
        active = still

    # A model that closed its thinking answers as it would; one cut off by the budget (or that ended its turn while
    # thinking) gets the close and the answer cue. A model without delimiters that ended its turn has answered.
    plans = []  # per budget, per prompt: (thinking ids, waits, stop, suffix or None when there is no answer phase)
    answers: dict[tuple, tuple[list[int], int | None]] = {}  # each distinct answer-phase input, generated once
    for budget in budgets:
        row, todo = [], {}
        for i in range(n):
            thinking, waits, stop = thoughts[i].at(budget)
            if not close_ids and stop is not None:
                row.append((thinking, waits, stop, None))
                continue
            suffix = opened + cue_ids if stop is None or stop not in close_ids else opened
            row.append((thinking, waits, stop, suffix))
            key = (i, tuple(thinking), tuple(suffix))
            if key not in answers:
                todo[key] = prompts[i] + thinking + suffix
        # One budget's answers together: their inputs are of similar length, so they pad (and re-read) little.
        if todo:
            outs = run(list(todo.values()), [answer_max_tokens] * len(todo), eos_ids, [keys[k[0]] for k in todo])
            answers |= dict(zip(todo, outs))
        plans.append(row)
    results = []
    for row in plans:
        gens = []
        for i, (thinking, waits, stop, suffix) in enumerate(row):
            answered = suffix is not None
            answer, answer_stop = answers[(i, tuple(thinking), tuple(suffix))] if answered else ([], None)
            cue = suffix[len(opened) :] if answered else []
            scored = cue + answer if close_ids else thinking + cue + answer
            gens.append(
                Generation(
                    thinking=tokenizer.decode(thinking, skip_special_tokens=False),
                    answer=tokenizer.decode(answer, skip_special_tokens=True),
                    response=tokenizer.decode(scored, skip_special_tokens=True),
                    thinking_tokens=len(thinking),
                    truncated=stop is None,
                    waits=waits,
                    answer_tokens=len(answer),
                    answer_truncated=answered and answer_stop is None,
                    raw=tokenizer.decode(thinking + (suffix or []) + answer, skip_special_tokens=False),
                )
            )
        results.append(gens)
    return results


def default_keys(prompts: list[list[int]], seed: int) -> list[int]:
    """Sampling keys from the prompt itself and its repeat index, so they do not depend on batch or order."""
    seen: dict[tuple, int] = {}
    keys = []
    for p in prompts:
        t = tuple(p)
        seen[t] = seen.get(t, -1) + 1
        keys.append(sampling_key(seed, t, seen[t]))
    return keys


def _hf_runner(model, tokenizer, temperature: float, top_p: float, batch_size: int):
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    @torch.inference_mode()
    def run_batch(seqs, rooms, stops, keys):
        ids, mask = _left_pad(seqs, pad_id, model.device)
        processors = []
        if temperature > 0:
            pads = [ids.shape[1] - len(s) for s in seqs]
            processors = [KeyedSampling(keys, pads, temperature, top_p)]
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=max(rooms),
            eos_token_id=sorted(stops),
            pad_token_id=pad_id,
            use_cache=True,
            do_sample=False,
            logits_processor=processors,
        )
        # The batch runs to the longest room; each sequence keeps only what fits its own.
        return [cut(row[ids.shape[1] :].tolist(), room, stops) for row, room in zip(out, rooms)]

    def run(seqs, rooms, stops, keys):
        # Batches of similar lengths pad less; results do not depend on the batch (see the module docstring).
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        out = [None] * len(seqs)
        for start in range(0, len(order), batch_size):
            part = order[start : start + batch_size]
            done = run_batch([seqs[i] for i in part], [rooms[i] for i in part], stops, [keys[i] for i in part])
            for i, result in zip(part, done):
                out[i] = result
        return out

    return run


def budget_forced_generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[list[int]],
    budget: int,
    fmt: ThinkFormat = ThinkFormat(),
    **kwargs,
) -> list[Generation]:
    """Generate with the thinking phase capped at ``budget`` tokens, then the answer (transformers engine).

    ``generate_at_budgets`` with one budget; the keyword arguments are its own.
    """
    return generate_at_budgets(model, tokenizer, prompts, [budget], fmt, **kwargs)[0]


def generate_at_budgets(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[list[int]],
    budgets: list[int],
    fmt: ThinkFormat = ThinkFormat(),
    answer_max_tokens: int = 16,
    num_waits: int = 0,
    batch_size: int = 64,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    keys: list[int] | None = None,
    show_progress: bool = False,
) -> list[list[Generation]]:
    """Budget-forced generations at every budget of ``budgets`` from one thinking pass (``force_budgets``).

    Args:
        prompts: prompt token ids, each ending inside the thinking phase (see ``prompt_ids``).
        budgets: the most thinking tokens a sequence may write, one generation per budget. A sequence still
            thinking at a budget is closed for it there (``fmt.close`` then ``fmt.answer_prefix``) and marked
            truncated.
        answer_max_tokens: the cap on the answer phase.
        num_waits: how many times an early close is replaced by a ``fmt.wait`` string so the model keeps thinking.
        batch_size: sequences generated together.
        temperature: 0 means greedy.
        keys: one sampling key per prompt (``sampling_key``); default: from the prompt, its repeat index and ``seed``.

    Returns:
        Per budget (in the order given), one ``Generation`` per prompt, in order.
    """
    check_close(tokenizer, fmt)
    run = _hf_runner(model, tokenizer, temperature, top_p, batch_size)
    eos_ids = _eos_ids(model, tokenizer)
    keys = keys if keys is not None else default_keys(prompts, seed)
    results: list[list[Generation]] = [[] for _ in budgets]
    desc = f"budgets {', '.join(map(str, budgets))}"
    for start in progress(range(0, len(prompts), batch_size), desc=desc, disable=not show_progress):
        end = start + batch_size
        part = force_budgets(
            run, tokenizer, eos_ids, prompts[start:end], budgets, fmt, answer_max_tokens, num_waits, keys[start:end]
        )
        for result, gens in zip(results, part):
            result += gens
    return results
