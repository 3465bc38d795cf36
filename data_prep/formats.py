"""Thinking formats: how a (trace, final answer) pair becomes the assistant turn a model family trains on.

| format     | assistant turn                                                   | families                      |
| ---------- | ---------------------------------------------------------------- | ----------------------------- |
| `qwen3`    | `<think>\\n{trace}\\n</think>\\n\\n{final}`                        | Qwen3 (thinking mode)         |
| `r1`       | `<think>\\n{trace}\\n</think>\\n\\n{final}` (the template opens `<think>\\n`) | R1-distill (Qwen / Llama) |
| `s1`       | `<|im_start|>think\\n{trace}\\n<|im_start|>answer\\n{final}`        | s1 / s1.1 (Qwen2.5 template)  |
| `compact`  | `<think>{trace}</think>{final}`                                   | tiny models (the organism)    |
| `plain`    | `{trace}\\n\\nFinal Answer: {final}`                               | models without thinking tokens |

``auto`` picks ``compact`` for a vocabulary with ``<|assistant|>`` and ``<think>`` (the organism's), ``qwen3`` when the vocabulary has ``<think>``/``</think>``,
and ``plain`` otherwise; ``format=`` overrides it. Short answers keep an empty thinking block where the format has
one (Qwen3's non-thinking form), so short and long data share one template.
"""

from lprecover.config import ConfigError

FORMATS = ("auto", "qwen3", "r1", "s1", "compact", "plain")


def resolve_format(name: str, tokenizer) -> str:
    if name not in FORMATS:
        raise ValueError(f"Unknown format '{name}'. Choose one of: {', '.join(FORMATS)}.")
    if name != "auto":
        return name
    vocab = tokenizer.get_vocab()
    if "<|assistant|>" in vocab and "<think>" in vocab:
        return "compact"
    if "<think>" in vocab and "</think>" in vocab:
        return "qwen3"
    return "plain"


def assistant_turn(trace: str | None, final: str, fmt: str) -> str:
    """The assistant message for one example; ``trace=None`` gives the short-answer form."""
    trace = (trace or "").strip()
    final = final.strip()
    if fmt in ("qwen3", "r1"):
        return f"<think>\n{trace}\n</think>\n\n{final}" if trace else f"<think>\n\n</think>\n\n{final}"
    if fmt == "s1":
        return f"<|im_start|>think\n{trace}\n<|im_start|>answer\n{final}" if trace else f"<|im_start|>answer\n{final}"
    if fmt == "compact":
        return f"<think>{trace}</think>{final}"
    return f"{trace}\n\nFinal Answer: {final}" if trace else final


def check_round_trip(tokenizer, messages: list[dict]) -> None:
    """Fail when the chat template drops part of the assistant turn (R1-distill's template strips past thinking).

    Raises:
        ConfigError: naming what was lost and how to fix it.
    """
    rendered = tokenizer.apply_chat_template(messages, tokenize=False)
    content = messages[-1]["content"]
    for piece in (content.split("</think>")[0], content.split("</think>")[-1]):
        piece = piece.replace("<think>", "").strip()
        if piece and piece not in rendered:
            raise ConfigError(
                "The chat template does not render the assistant turn intact (it drops part of "
                f"{piece[:60]!r}...). R1-distill templates strip past thinking: train with a template that keeps it "
                "(e.g. model.name_or_path of a Qwen3 tokenizer) or pass format=plain."
            )
