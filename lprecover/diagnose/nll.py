"""Teacher-forced damage without generation: how much less likely reference traces become when a layer is removed.

A trace is a prompt, its thinking and its answer, tokenised as budget forcing feeds them (``prompt_ids``, then the
thinking, then the end-of-thinking delimiter and answer cue, then the answer). The score of a trace under a model is
the mean negative log-likelihood of its thinking tokens and, apart, of its answer tokens (the delimiter and cue
count with the answer: they are what the model must write to stop thinking and answer).

Removing layer i leaves layers 0..i-1 and their outputs unchanged, so the input of layer i in the unpruned model is
exactly the input of layer i+1 in the pruned one. ``layer_nll`` therefore runs the unpruned model once per batch,
keeps every block's input, and for each removed layer runs only the blocks above it from the kept state: a sweep
costs ``L + L(L-1)/2`` block passes per batch instead of ``L(L-1)`` (``bench/diagnose_prefix.py`` measures it).
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from lprecover.config import ConfigError
from lprecover.evaluation.budget_forcing import ThinkFormat, prompt_ids
from lprecover.readers import read_jsonl
from lprecover.surgery import find_blocks

PARTS = ("total", "thinking", "answer")


@dataclass
class Trace:
    """Token ids of one reference trace, with the positions of its thinking and answer tokens."""

    id: str
    ids: list[int]
    thinking: tuple[int, int]  # [start, end) token positions
    answer: tuple[int, int]


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False) if text else []


def build_trace(tokenizer, fmt: ThinkFormat, id_: str, question: str, thinking: str, answer: str, max_tokens: int):
    """One ``Trace``; thinking is cut from its end so that prompt, thinking and answer fit ``max_tokens``.

    Returns None when the prompt and answer alone do not fit, or when nothing of the thinking or answer is left.
    """
    prompt = prompt_ids(tokenizer, question, fmt)
    # After a close the model answers at once (as budget forcing feeds it); without delimiters it is cued to answer.
    after = (fmt.close + fmt.answer_open) if fmt.close else fmt.answer_prefix + " "
    answer_ids = _encode(tokenizer, after + answer)
    think_ids = _encode(tokenizer, thinking)[: max(0, max_tokens - len(prompt) - len(answer_ids))]
    if not think_ids or not answer_ids or len(prompt) + len(answer_ids) >= max_tokens:
        return None
    start = len(prompt)
    mid = start + len(think_ids)
    return Trace(id_, prompt + think_ids + answer_ids, (start, mid), (mid, mid + len(answer_ids)))


def split_row(row: dict, close: str | None, path: str) -> tuple[str, str, str]:
    """(question, thinking, answer) of one traces row, in any of three shapes.

    - ``{"question", "thinking", "answer"}``: given apart.
    - ``{"messages": [user, assistant]}``: the assistant's content split at the end-of-thinking delimiter (a leading
      opening delimiter dropped).
    - ``{"question", "answer"}`` with ``####`` in the answer (GSM8K): the worked solution is the thinking, the text
      after ``####`` the answer.
    """
    if "messages" in row:
        msgs = row["messages"]
        user = next((m["content"] for m in msgs if m.get("role") == "user"), None)
        reply = next((m["content"] for m in msgs if m.get("role") == "assistant"), None)
        if user is None or reply is None or not close or close not in reply:
            raise ConfigError(
                f"A row of traces '{path}' has no user turn, no assistant turn, or no end-of-thinking delimiter "
                f"{close!r} in the assistant's reply; give rows with question, thinking and answer instead."
            )
        thinking, _, answer = reply.partition(close)
        return user, thinking.replace("<think>", "", 1).strip(), answer.strip()
    if isinstance(row.get("thinking"), str) and isinstance(row.get("question"), str):
        return row["question"], row["thinking"], str(row.get("answer", ""))
    if isinstance(row.get("question"), str) and "####" in str(row.get("answer", "")):
        thinking, _, answer = str(row["answer"]).rpartition("####")
        return row["question"], thinking.strip(), answer.strip()
    raise ConfigError(
        f"A row of traces '{path}' is none of the known shapes: give question+thinking+answer, messages with an "
        "assistant reply holding the end-of-thinking delimiter, or GSM8K's question+answer (with ####)."
    )


def traces_from_file(path: str, tokenizer, fmt: ThinkFormat, n: int, max_tokens: int) -> list[Trace]:
    """The first ``n`` usable traces of a jsonl file (see ``split_row`` for the shapes read)."""
    traces = []
    for i, row in enumerate(read_jsonl(path, "traces", allow_empty=False)):
        question, thinking, answer = split_row(row, fmt.close, path)
        trace = build_trace(tokenizer, fmt, str(row.get("id", i)), question, thinking, answer, max_tokens)
        if trace:
            traces.append(trace)
        if len(traces) == n:
            break
    if not traces:
        raise ConfigError(f"traces '{path}' holds no trace that fits trace_max_tokens={max_tokens}; raise it.")
    return traces


def traces_from_records(records: list[dict], prompts: dict[str, str], tokenizer, fmt, n: int, max_tokens: int):
    """Reference traces from a model's own budget-forced records (``output`` split at the delimiter).

    Args:
        prompts: problem id -> question text.
    """
    traces = []
    for r in records:
        raw = r["output"]
        if fmt.close and fmt.close in raw:
            thinking, _, rest = raw.partition(fmt.close)
            answer = rest[len(fmt.answer_open) :] if rest.startswith(fmt.answer_open) else rest
            answer = answer[len(fmt.answer_prefix) :] if answer.startswith(fmt.answer_prefix) else answer
        else:
            thinking, answer = raw, r["response"]
        trace = build_trace(tokenizer, fmt, r["problem_id"], prompts[r["problem_id"]], thinking, answer, max_tokens)
        if trace:
            traces.append(trace)
        if len(traces) == n:
            break
    return traces


def batches(traces: list[Trace], batch_size: int, pad: int) -> Iterator[tuple[list[Trace], dict]]:
    for s in range(0, len(traces), batch_size):
        part = traces[s : s + batch_size]
        width = max(len(t.ids) for t in part)
        ids = torch.full((len(part), width), pad, dtype=torch.long)
        mask = torch.zeros((len(part), width), dtype=torch.long)
        for j, t in enumerate(part):  # right padding: positions are those of an unpadded sequence
            ids[j, : len(t.ids)] = torch.tensor(t.ids)
            mask[j, : len(t.ids)] = 1
        yield part, {"input_ids": ids, "attention_mask": mask}


def _token_nll(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``nll[b, t]`` of token ``t`` given the tokens before it (0 at t = 0)."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    nll = -logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return torch.nn.functional.pad(nll, (1, 0))


def _part_means(nll: torch.Tensor, part: list[Trace]) -> list[dict]:
    rows = []
    for j, t in enumerate(part):
        (a, b), (c, d) = t.thinking, t.answer
        rows.append(
            {
                "total": float(nll[j, a:d].double().mean()),
                "thinking": float(nll[j, a:b].double().mean()),
                "answer": float(nll[j, c:d].double().mean()),
            }
        )
    return rows


def _hidden(args, kwargs) -> torch.Tensor:
    return args[0] if args else kwargs["hidden_states"]


@contextmanager
def _from_state(blocks, layer: int, state: torch.Tensor, returns_tensor: bool):
    """Blocks ``0..layer`` compute nothing; block ``layer`` hands on ``state`` (the unpruned model's input to it)."""

    def passthrough(k):
        def forward(*args, **kwargs):
            h = state if k == layer else _hidden(args, kwargs)
            return h if returns_tensor else (h,)

        return forward

    for k in range(layer + 1):
        blocks[k].forward = passthrough(k)  # an instance attribute: nn.Module.__call__ calls it instead
    try:
        yield
    finally:
        for k in range(layer + 1):
            del blocks[k].forward


def _keeping_inputs(model, blocks, batch) -> tuple[torch.Tensor, list[torch.Tensor], bool]:
    """One forward of the unpruned model: (logits, every block's input, whether a block returns a bare tensor)."""
    inputs: list = [None] * len(blocks)
    kinds: list[bool] = []

    def keep(k):
        def pre(module, args, kwargs):
            inputs[k] = _hidden(args, kwargs).detach()

        return pre

    def kind(module, args, kwargs, output):
        kinds.append(isinstance(output, torch.Tensor))

    handles = [b.register_forward_pre_hook(keep(k), with_kwargs=True) for k, b in enumerate(blocks)]
    handles.append(blocks[0].register_forward_hook(kind, with_kwargs=True))
    try:
        logits = model(**batch, use_cache=False).logits
    finally:
        for h in handles:
            h.remove()
    return logits, inputs, kinds[0]


@torch.no_grad()
def layer_nll(model, tokenizer, traces: list[Trace], layers: list, batch_size: int = 8) -> dict:
    """Mean NLL per trace of the unpruned model and of the model with each of ``layers`` removed.

    Args:
        layers: layer indices, each removed alone, or tuples of contiguous indices removed together (the kept
            state is the input of the first; the blocks from it to the last compute nothing).

    Returns:
        ``{"teacher": [{total, thinking, answer} per trace], removal: [...] for removal in layers}``.
    """
    _, blocks = find_blocks(model)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out: dict = {"teacher": [], **{i: [] for i in layers}}
    device = model.device
    for part, batch in batches(traces, batch_size, pad):
        batch = {k: v.to(device) for k, v in batch.items()}
        logits, inputs, returns_tensor = _keeping_inputs(model, blocks, batch)
        out["teacher"] += _part_means(_token_nll(logits, batch["input_ids"]), part)
        for removal in layers:
            first, last = (removal, removal) if isinstance(removal, int) else (min(removal), max(removal))
            with _from_state(blocks, last, inputs[first], returns_tensor):
                logits = model(**batch, use_cache=False).logits
            out[removal] += _part_means(_token_nll(logits, batch["input_ids"]), part)
    return out


@torch.no_grad()
def layer_nll_full(model, tokenizer, traces: list[Trace], layers: list[int], batch_size: int = 8, skip=None) -> dict:
    """``layer_nll`` without the prefix reuse: a whole forward per removed layer, each layer skipped by ``skip``
    (a context manager ``skip(model, [i])``, e.g. ``pruning.criteria.skipping``). The bench's reference."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out: dict = {"teacher": [], **{i: [] for i in layers}}
    for part, batch in batches(traces, batch_size, pad):
        batch = {k: v.to(model.device) for k, v in batch.items()}
        out["teacher"] += _part_means(_token_nll(model(**batch, use_cache=False).logits, batch["input_ids"]), part)
        for removal in layers:
            with skip(model, [removal] if isinstance(removal, int) else list(removal)):
                logits = model(**batch, use_cache=False).logits
            out[removal] += _part_means(_token_nll(logits, batch["input_ids"]), part)
    return out
