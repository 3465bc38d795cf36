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


def text_ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
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
    close_ids = text_ids(tokenizer, fmt.close) if fmt.close else []
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
    stop, as a generation at budget B would have (``_Thinking.at``). A runner with ``think`` and ``follow``
    (transformers, ``_HFRunner``) answers every budget from the thinking call's KV cache when there are no wait
    strings; otherwise answer phases are generated from their full inputs, every budget's in one call, and those with
    identical inputs (e.g. every budget past the point where the model closed its thinking) once. The records equal
    per-budget generation's for greedy decoding and for keyed sampling, where a token depends on the prefix, the key
    and the position alone.

    Args:
        run: ``run(seqs, rooms, stops, keys) -> [(kept ids, stop id or None)]``: continue each sequence by at most
            its room, stopping at any of ``stops``; ``None`` means the room ran out. ``keys`` name each sequence's
            random stream. Optionally ``run.think`` (``run`` that keeps its cache) and ``run.follow`` (see
            ``_HFRunner.follow``).
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
    opened = close_ids + text_ids(tokenizer, fmt.answer_open)  # what follows every end of thinking
    cue_ids = text_ids(tokenizer, fmt.answer_prefix)
    wait_ids = [text_ids(tokenizer, w) for w in fmt.wait] or [[]]
    n = len(prompts)
    thoughts = [_Thinking([], [], (0, None)) for _ in range(n)]
    # A runner that can continue its thinking pass's KV cache (transformers) answers from it; with wait strings
    # the thinking spans several calls, and answers are generated from their full inputs instead.
    follow = getattr(run, "follow", None) if num_waits == 0 else None
    think = run.think if follow else run
    active = list(range(n))
    while active:
        outs = think(
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
    for budget in budgets:
        row = []
        for i in range(n):
            thinking, waits, stop = thoughts[i].at(budget)
            if not close_ids and stop is not None:
                row.append((thinking, waits, stop, None))
            else:
                row.append((thinking, waits, stop, opened + cue_ids if stop not in close_ids else opened))
        plans.append(row)
    if follow:
        # Every budget's answers continue the thinking pass's cache, each prompt's last few tokens re-read so that
        # every answer input is the same length (``new``) whatever its suffix: per-budget generation continues its
        # own pass the same way, so both compute every answer from the same cached keys and values.
        contexts = [[(prompts[i] + t, s) for i, (t, _, _, s) in enumerate(row)] for row in plans]
        got = follow(contexts, answer_max_tokens, eos_ids, keys, new=1 + len(opened) + len(cue_ids))
    else:
        # Answer phases with identical inputs (e.g. every budget past the point where the model closed its
        # thinking) are generated once, and every budget's in one call: vLLM schedules them all together, and the
        # transformers runner batches them by length. A sequence's tokens do not depend on its batch.
        todo: dict[tuple, list[int]] = {}
        for row in plans:
            for i, (thinking, _, _, suffix) in enumerate(row):
                key = (i, tuple(thinking), tuple(suffix or ()))
                if suffix is not None and key not in todo:
                    todo[key] = prompts[i] + thinking + suffix
        answers = {}
        if todo:
            outs = run(list(todo.values()), [answer_max_tokens] * len(todo), eos_ids, [keys[k[0]] for k in todo])
            answers = dict(zip(todo, outs))
        got = [
            [answers[(i, tuple(t), tuple(s))] if s is not None else None for i, (t, _, _, s) in enumerate(row)]
            for row in plans
        ]
    results = []
    for row, row_answers in zip(plans, got):
        gens = []
        for (thinking, waits, stop, suffix), reply in zip(row, row_answers):
            answered = suffix is not None
            answer, answer_stop = reply if answered else ([], None)
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


class _HFRunner:
    """transformers generation for ``force_budgets``: ``run(seqs, rooms, stops, keys)``.

    Sequences run in batches of similar lengths (they pad less), each kept only within its own room; results do not
    depend on the batch (see the module docstring). ``think`` also keeps each batch's KV cache, and ``follow``
    continues it for the answer phases, so an answer re-reads a few tokens rather than its whole prompt and thinking.
    ``reuse_cache=False`` (or a model whose cache is not a plain ``DynamicCache``, e.g. sliding-window layers)
    generates answers from their full inputs instead.
    """

    def __init__(self, model, tokenizer, temperature: float, top_p: float, batch_size: int, reuse_cache: bool = True):
        self.model, self.temperature, self.top_p, self.batch_size = model, temperature, top_p, batch_size
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.kept: list[tuple[list[int], list[int], torch.Tensor, object]] = []  # the last ``think``'s batches
        if not reuse_cache:
            self.follow = None  # force_budgets then generates answers from their full inputs

    def _batches(self, seqs):
        order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        return [order[start : start + self.batch_size] for start in range(0, len(order), self.batch_size)]

    @torch.inference_mode()
    def _generate(self, ids, mask, pads, room, stops, keys, cache=None, keep=False):
        processors = [KeyedSampling(keys, pads, self.temperature, self.top_p)] if self.temperature > 0 else []
        return self.model.generate(
            input_ids=ids,
            attention_mask=mask,
            past_key_values=cache,
            max_new_tokens=room,
            eos_token_id=sorted(stops),
            pad_token_id=self.pad_id,
            use_cache=True,
            do_sample=False,
            logits_processor=processors,
            return_dict_in_generate=keep,
        )

    def _run(self, seqs, rooms, stops, keys, keep: bool):
        out = [None] * len(seqs)
        self.kept = []
        for part in self._batches(seqs):
            ids, mask = _left_pad([seqs[i] for i in part], self.pad_id, self.model.device)
            pads = [ids.shape[1] - len(seqs[i]) for i in part]
            room, part_keys = max(rooms[i] for i in part), [keys[i] for i in part]
            gen = self._generate(ids, mask, pads, room, stops, part_keys, keep=keep)
            rows = gen.sequences if keep else gen
            if keep:
                self.kept.append(
                    (part, pads, rows, gen.past_key_values if _plain_cache(gen.past_key_values) else None)
                )
            # The batch runs to the longest room; each sequence keeps only what fits its own.
            for i, row in zip(part, rows):
                out[i] = cut(row[ids.shape[1] :].tolist(), rooms[i], stops)
        return out

    def __call__(self, seqs, rooms, stops, keys):
        return self._run(seqs, rooms, stops, keys, keep=False)

    def think(self, seqs, rooms, stops, keys):
        """``run``, keeping each batch's sequences and KV cache for ``follow``."""
        return self._run(seqs, rooms, stops, keys, keep=True)

    def follow(self, contexts, room: int, stops, keys, new: int):
        """Answer phases continuing the last ``think``'s cache: per budget, per sequence of that call, a (context,
        suffix) pair (suffix None: no answer phase), where each context extends that sequence's input.

        Each answer reads from the cache every context token but its last ``new - len(suffix)`` and is fed those
        and the suffix: a fixed rule, so a one-budget pass and a several-budget pass compute the same answer from
        the same cached keys and values. The cache holds a key for every token the thinking call generated but its
        last, so everything read from it was computed by the same decoding steps in either pass. A budget's
        batch attends to its cache up to its widest read, other rows' later columns masked out. Budgets run from
        the widest down, the cache cropped back to each: an answer's own tokens are appended past the crop and
        never read by the next.

        Returns:
            Per budget, per sequence: (kept ids, stop id or None), or None where there is no answer phase.
        """
        got = [[None] * len(contexts[0]) for _ in contexts]
        kept, self.kept = self.kept, []
        for part, pads, rows, cache in kept:
            if cache is None:  # not a cache this can continue: answers from their full inputs, budget by budget
                for b, context in enumerate(contexts):
                    todo = [i for i in part if context[i][1] is not None]
                    seqs = [context[i][0] + context[i][1] for i in todo]
                    outs = self(seqs, [room] * len(todo), stops, [keys[i] for i in todo])
                    for i, o in zip(todo, outs):
                        got[b][i] = o
                continue
            reads, widths = [], []
            for context in contexts:
                read = []
                for j, (i, pad) in enumerate(zip(part, pads)):
                    ctx, suffix = context[i]
                    if suffix is None:
                        read.append((0, [self.pad_id] * new))  # a placeholder row, not returned
                        continue
                    # A context shorter than its share of ``new`` is all re-read; the rest of its columns pad.
                    cached = max(0, len(ctx) - (new - len(suffix)))
                    if len(suffix) >= new or pad + cached > cache.get_seq_length():
                        raise RuntimeError(f"An answer cannot continue its thinking's cache ({len(ctx)=}, {new=}).")
                    if rows[j, pad : pad + cached].tolist() != ctx[:cached]:
                        raise RuntimeError("An answer's context does not extend the sequence its thinking generated.")
                    read.append((cached, ctx[cached:] + suffix))
                reads.append(read)
                widths.append(max(pad + c for pad, (c, _) in zip(pads, read)))
            for b in sorted(range(len(contexts)), key=lambda b: -widths[b]):
                width, read = widths[b], reads[b]
                cache.crop(width - cache.get_seq_length())  # a negative count: the tokens to drop
                ids = torch.full((len(part), width + new), self.pad_id, dtype=torch.long)
                mask = torch.zeros_like(ids)
                ids[:, :width] = rows[:, :width].cpu()
                for j, (pad, (cached, fed)) in enumerate(zip(pads, read)):
                    mask[j, pad : pad + cached] = 1
                    ids[j, width + new - len(fed) :], mask[j, width + new - len(fed) :] = torch.tensor(fed), 1
                # The masked columns of each row: KeyedSampling counts a row's positions past them.
                unread = [width + new - c - len(fed) for c, fed in read]
                ids, mask = ids.to(self.model.device), mask.to(self.model.device)
                out = self._generate(ids, mask, unread, room, stops, [keys[i] for i in part], cache)
                for i, row in zip(part, out):
                    if contexts[b][i][1] is not None:
                        got[b][i] = cut(row[width + new :].tolist(), room, stops)
        return got


def _plain_cache(cache) -> bool:
    """A ``DynamicCache`` of full-attention layers: one key per position, which ``follow`` can crop and continue."""
    from transformers.cache_utils import DynamicCache, DynamicLayer

    return isinstance(cache, DynamicCache) and all(type(layer) is DynamicLayer for layer in cache.layers)


def hf_runner(model, tokenizer, temperature: float = 0.0, top_p: float = 1.0, batch_size: int = 64):
    """The transformers ``run`` that ``force_budgets`` drives for ``model``, with the model's end-of-turn ids.

    For callers that compose runners, e.g. ``lprecover diagnose``'s think/answer swap (one model thinks, another
    answers). Answers are generated from their full inputs (no ``follow``): another model has no cache to continue.

    Returns:
        ``(run, eos_ids)``.
    """
    return _HFRunner(model, tokenizer, temperature, top_p, batch_size, reuse_cache=False), _eos_ids(model, tokenizer)


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
    reuse_cache: bool = True,
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
        reuse_cache: answer phases continue the thinking pass's KV cache (without wait strings), re-reading only
            their last few tokens (``_HFRunner.follow``). False re-reads each answer's whole input, as before: a
            check on the cache path, whose records it should equal up to floating-point ties.

    Returns:
        Per budget (in the order given), one ``Generation`` per prompt, in order.
    """
    check_close(tokenizer, fmt)
    run = _HFRunner(model, tokenizer, temperature, top_p, batch_size, reuse_cache)
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


ANSWER_CUE = "Final Answer:"  # s1's cue after a forced end of thinking (see ThinkFormat.answer_prefix)


def think_format(
    tokenizer, model_cfg=None, wait: list[str] | None = None, default_answer_prefix: str | None = None
) -> ThinkFormat:
    """The model family's thinking delimiters and answer cue: explicit ``model.*`` settings win, then the vocabulary.

    Qwen3, R1-distill and the organism think in ``<think>``/``</think>``; s1 (``model=s1_1_7b``) thinks after
    ``<|im_start|>think`` until ``<|im_start|>``, answers after ``<|im_start|>answer`` (``answer_open``). A model
    with no delimiters (e.g. SmolLM2-Instruct) has its whole response capped, then is asked for a final answer.

    The answer cue after a forced close (``model.answer_prefix``; None: the default) is s1's "Final Answer:" on a
    line of its own (s1's fork appends ``<|im_start|>answer\nFinal Answer:``), unless the model's registered
    traits give another (``default_answer_prefix``; the organism, trained to answer right after ``</think>``, gets
    none).
    """
    vocab = tokenizer.get_vocab()
    has_think = "<think>" in vocab and "</think>" in vocab
    open_ = getattr(model_cfg, "think_open", None) or ("<think>" if has_think else "")
    close = getattr(model_cfg, "think_close", None) or ("</think>" if has_think else None)
    prefix = getattr(model_cfg, "answer_prefix", None)
    if prefix is None:
        prefix = "\n\n" + ANSWER_CUE if default_answer_prefix is None else default_answer_prefix
    answer_open = getattr(model_cfg, "answer_open", "") or ""
    return ThinkFormat(open_, close, answer_open, prefix, tuple(wait or ("Wait",)))
