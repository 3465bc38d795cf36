"""The organism's task: chained steps on a 53-symbol cycle whose answer needs k sequential steps, and memorised facts.

A problem is a start symbol followed by k labelled shifts along the cycle ``0-9 A-Z i-y`` (53 symbols, a shift of
1-4 forward or back), evaluated left to right::

    Ba+3b-2c+4        (B+3 = E, E-2 = C, C+4 = G)

The thinking trace restates each labelled step with its result (``a+3=Eb-2=Cc+4=G``), five tokens a step, so a
trace for k steps is 5k thinking tokens long and the answer is the last symbol. Restating the step keeps every step
a local lookup that a small model learns in minutes. A model stopped after fewer than 5k tokens must finish the
chain in its forward pass, which a small model cannot do for more than a step or two: that is what makes accuracy
rise with the thinking budget. Every answer is one of 53 symbols, uniform over problems, so guessing scores 1/53.

Facts are the knowledge stand-in: ``N_FACTS`` two-letter names, each with a symbol drawn once (``QK?`` answered
``R``, with no thinking). They live only in the weights; the teacher is trained on all of them, so the facts task
measures recall of what was trained, not generalisation.
"""

import hashlib
import random
import string
from dataclasses import dataclass

SYMBOLS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZijklmnopqrstuvwxy"
MODULUS = len(SYMBOLS)  # 53
OPS = "+-"
MAX_SHIFT = 4
LABELS = "abcdefgh"  # distinct from the symbols
MAX_STEPS = len(LABELS)
N_FACTS = 100
FACT_SEED = 7
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
TOKENS_PER_STEP = 5
HELD_OUT_BUCKETS = 8  # one problem in eight (by hash) is for evaluation only


@dataclass(frozen=True)
class Problem:
    """One chain: its text, its gold trace and answer, and its number of steps."""

    id: str
    steps: int
    problem: str
    trace: str
    answer: str


def _apply(value: int, op: str, operand: int) -> int:
    return (value + operand if op == "+" else value - operand) % MODULUS


def make_problem(rng: random.Random, steps: int, index: int = 0) -> Problem:
    """Draw one problem with exactly ``steps`` operations."""
    if not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be between 1 and {MAX_STEPS}, got {steps}.")
    value = rng.randrange(MODULUS)
    problem, trace = [SYMBOLS[value]], []
    for label in LABELS[:steps]:
        op, operand = rng.choice(OPS), rng.randint(1, MAX_SHIFT)
        value = _apply(value, op, operand)
        problem.append(f"{label}{op}{operand}")
        trace.append(f"{label}{op}{operand}={SYMBOLS[value]}")
    return Problem(f"k{steps}-{index}", steps, "".join(problem), "".join(trace), SYMBOLS[value])


def solve(problem: str) -> str:
    """Evaluate a problem string; used to check generated data and planted examples."""
    value = SYMBOLS.index(problem[0])
    for i in range(1, len(problem), 3):
        value = _apply(value, problem[i + 1], int(problem[i + 2]))
    return SYMBOLS[value]


@dataclass(frozen=True)
class Fact:
    """One memorised fact: ``name?`` is answered ``answer``."""

    name: str
    answer: str

    @property
    def prompt(self) -> str:
        return f"{self.name}?"


def facts(n: int = N_FACTS, seed: int = FACT_SEED) -> list[Fact]:
    """The ``n`` facts every teacher is trained on: distinct two-letter names (sorted), each with a random symbol."""
    if not 1 <= n <= 26 * 26:
        raise ValueError(f"The number of facts must be between 1 and {26 * 26}, got {n}.")
    rng = random.Random(seed)
    names: set[str] = set()
    while len(names) < n:
        names.add("".join(rng.choice(string.ascii_uppercase) for _ in range(2)))
    return [Fact(name, SYMBOLS[rng.randrange(MODULUS)]) for name in sorted(names)]


def fact_record(f: Fact) -> dict:
    """A fact as a training row: an empty think block, then the answer (Qwen3's non-thinking form)."""
    return {
        "messages": [
            {"role": "user", "content": f.prompt},
            {"role": "assistant", "content": f"{THINK_OPEN}{THINK_CLOSE}{f.answer}"},
        ],
        "problem": f.prompt,
        "answer": f.answer,
        "source": "organism/fact",
        "id": f"fact-{f.name}",
        "steps": 0,
    }


def held_out(problem: str) -> bool:
    """Whether a problem belongs to evaluation (never to training): a fixed eighth of all problems, by hash."""
    return int(hashlib.sha256(problem.encode()).hexdigest()[:8], 16) % HELD_OUT_BUCKETS == 0


def make_problems(n: int, min_steps: int, max_steps: int, seed: int, split: str = "train") -> list[Problem]:
    """Draw ``n`` problems with step counts cycling through ``min_steps..max_steps`` (balanced by construction).

    ``split="train"`` draws only problems outside the held-out eighth (``held_out``), ``split="eval"`` only inside
    it, so no evaluation problem is ever trained on, whatever seeds and chain ranges the two sides use. (There are
    only 424 one-step problems: without the split most short evaluation problems would be training problems too.)
    """
    if min_steps > max_steps:
        raise ValueError(f"min_steps ({min_steps}) must not exceed max_steps ({max_steps}).")
    if split not in ("train", "eval"):
        raise ValueError(f"Unknown split {split!r}; use 'train' or 'eval'.")
    rng = random.Random(seed)
    span = max_steps - min_steps + 1
    out = []
    for i in range(n):
        p = make_problem(rng, min_steps + i % span, i)
        while held_out(p.problem) != (split == "eval"):
            p = make_problem(rng, p.steps, i)
        out.append(p)
    return out


def assistant_content(p: Problem, split: str) -> str:
    """The assistant turn in the reasoning-model format: ``<think>trace</think>answer``.

    The short-answer split keeps the empty think block, as Qwen3 does for non-thinking answers, so both splits
    share one template and one parser.
    """
    if split == "longcot":
        return f"{THINK_OPEN}{p.trace}{THINK_CLOSE}{p.answer}"
    if split == "short":
        return f"{THINK_OPEN}{THINK_CLOSE}{p.answer}"
    raise ValueError(f"Unknown split {split!r}; use 'longcot' or 'short'.")


def to_record(p: Problem, split: str) -> dict:
    """One row of the messages schema shared with data_prep."""
    return {
        "messages": [
            {"role": "user", "content": p.problem},
            {"role": "assistant", "content": assistant_content(p, split)},
        ],
        "problem": p.problem,
        "answer": p.answer,
        "source": f"organism/{split}",
        "id": p.id,
        "steps": p.steps,
    }
