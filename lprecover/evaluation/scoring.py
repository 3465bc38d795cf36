"""Answer extraction and scoring: one scorer for every task, no paid judge.

Task kinds: ``exact`` (the organism: the answer text must equal the gold), ``math`` (GSM8K, MATH-500, AIME:
the answer is extracted from ``\\boxed{}``, an ``Answer:`` line, ``#### N`` or bold, then compared by math-verify),
and ``choice`` (GPQA, MMLU: a strictly extracted letter).
"""

import logging
import re

import sympy
from math_verify import parse, verify

# With timeouts off (needed outside the main thread) math-verify warns on every parse; the warning is ours to heed.
logging.getLogger("math_verify").setLevel(logging.ERROR)

TASK_KINDS = {
    "organism": "exact",
    "gsm8k": "math",
    "math500": "math",
    "aime24": "math",
    "aime25": "math",
    "aime_nofigures": "math",
    "gpqa_diamond": "choice",
    "mmlu": "choice",
}
LETTERS = "ABCDEFGHIJ"

CHOICES = {"gpqa_diamond": 4, "mmlu": 4}  # letters a choice task's questions offer

_ANSWER_LINE = re.compile(r"(?:final answer|answer)\s*(?:is\s*[:：]?|[:：])\s*(.+)", re.IGNORECASE)
_HASHES = re.compile(r"####\s*(.+)")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_WORDS = re.compile(r"[A-Za-z]{3,}")
# Strict letter patterns, strongest first. The letter is a capital that stands alone: not the article "A" or the
# pronoun "I" starting a sentence ("Answer: I think it is B", "The answer is a bit unclear") and not lower case.
_ALONE = r"(?![\w'’-])(?!\s+[a-z])"
_CUE = r"(?i:(?:final\s+answer|answer)(?:\s+is)?(?:\s*:|\s*：)?)"
_LETTER_PATTERNS = (
    re.compile(r"\\boxed\{\s*(?:\\text\{)?\s*\(?([A-J])\)?\s*\}?\s*\}"),
    re.compile(_CUE + r"\s*(?:\*\*)?\s*(?:\\?\(|\[)?([A-J])(?:\\?\)|\])?(?:\*\*)?" + _ALONE),
    re.compile(r"\*\*\s*\(?([A-J])\)?\s*\*\*"),
    re.compile(r"(?<![\w(])\(([A-J])\)(?![\w)])"),
)


def task_kind(task: str) -> str:
    """The scoring kind of a task name (``organism`` variants such as ``organism_long`` are exact match)."""
    base = task.split(":")[0]
    if base.startswith("organism"):
        return "exact"
    if base not in TASK_KINDS:
        raise ValueError(
            f"Unknown task '{task}'. Known tasks: {', '.join(TASK_KINDS)} (and organism_long, organism_shallow, "
            "organism_facts, organism:LO-HI)."
        )
    return TASK_KINDS[base]


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), with nested braces balanced."""
    start = max(text.rfind("\\boxed{"), text.rfind("\\fbox{"))
    if start < 0:
        return None
    i = text.index("{", start) + 1
    depth = 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i:j].strip()
    return None


def _clean(ans: str) -> str:
    ans = ans.strip().strip("*").strip()
    ans = ans.split("\n")[0].strip()
    return ans.rstrip(".").strip().strip("$").strip()


def _letters(task: str) -> str:
    return LETTERS[: CHOICES.get(task.split(":")[0], len(LETTERS))]


def _math_value(candidate: str) -> str | None:
    """The mathematical answer in a fallback candidate (an ``Answer:`` line, bold text), or None if it holds none.

    Plain prose after "Final Answer:" (a cut-off sentence, "The") is not an answer: counting it as one would hide
    an extraction failure behind a wrong answer.
    """
    found = parse(candidate, parsing_timeout=None)
    return str(found[1]) if len(found) > 1 and str(found[1]).strip() else None


def extract_answer(text: str, task: str) -> str | None:
    """The final answer a generation commits to, or ``None`` when it commits to none (an extraction failure).

    Math: the last ``\\boxed{}``; else the last ``#### N``, ``Answer: ...`` / ``the answer is ...`` line or bold text that holds a
    mathematical value (read by math-verify). Choice: the last letter in the strongest pattern that matches
    (``\\boxed{C}``, ``Answer: C``, ``**C**``, ``(C)``), among the letters the task offers. Exact: the whole text.
    """
    kind = task_kind(task)
    if kind == "exact":
        ans = text.strip()
        return ans or None
    if kind == "choice":
        letters = _letters(task)
        for pattern in _LETTER_PATTERNS:
            found = [m for m in pattern.findall(text) if m in letters]
            if found:
                return found[-1]
        return None
    boxed = last_boxed(text)
    if boxed:
        return boxed
    for pattern in (_HASHES, _ANSWER_LINE, _BOLD):
        for candidate in reversed(pattern.findall(text)):
            if pattern is _BOLD and len(_WORDS.findall(re.sub(r"\\[a-zA-Z]+", "", candidate))) > 1:
                continue  # a bold heading ("**Step 1: Understand**"), not a bold answer ("**42 eggs**")
            value = _math_value(_clean(candidate))
            if value:
                return value
    return None


def _math_parse(answer: str):
    # parsing_timeout=None: math-verify's default timeout uses signals, which only work in the main thread.
    return parse(f"${answer}$", parsing_timeout=None)


def canonical(answer: str | None, task: str) -> str | None:
    """A canonical form for majority voting: equal answers written differently vote together."""
    if answer is None:
        return None
    if task_kind(task) != "math":
        return answer.strip()
    parsed = _math_parse(answer)
    if not parsed:
        return answer.strip()
    value = parsed[0]
    if isinstance(value, sympy.Number):  # 42, 42.0 and 84/2 are one vote; 0.5 and 1/2 too
        value = sympy.nsimplify(sympy.Float(value, 12) if value.is_Float else value, rational=True)
    return str(value)


def answers_match(answer: str | None, gold: str, task: str) -> bool:
    """Compare an extracted answer with the gold answer."""
    if answer is None:
        return False
    kind = task_kind(task)
    if kind == "exact":
        return answer.strip() == gold.strip()
    if kind == "choice":
        return answer.upper() == gold.strip().upper()
    gold_parsed = _math_parse(gold)
    return bool(gold_parsed) and verify(gold_parsed, _math_parse(answer), timeout_seconds=None)


def is_correct(text: str, gold: str, task: str) -> bool:
    """Whether ``text`` (a generation's answer part) states the gold answer."""
    return answers_match(extract_answer(text, task), gold, task)
