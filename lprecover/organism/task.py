"""The organism's task: chained modular arithmetic whose answer needs k sequential steps.

A problem is a start value followed by k labelled operations, evaluated left to right modulo 5::

    3a-2b*2c-2        (3 - 2 = 1, 1 * 2 = 2, 2 - 2 = 0)

The thinking trace restates each labelled step with its intermediate value (``a-2=1b*2=2c-2=0``), five tokens a
step, so a trace for k steps is 5k thinking tokens long and the answer is the last value. Restating the operation
keeps every step a local computation that a small model learns in minutes. A model stopped after fewer than 5k
tokens must finish the chain in its forward pass, which a small model cannot do for more than a step: that is
what makes accuracy rise with the thinking budget. Modulo 5, every operation with a non-zero operand keeps the
answer uniform, so chance is 0.2.
"""

import hashlib
import random
from dataclasses import dataclass

MODULUS = 5
OPS = "+-*"
LABELS = "abcdefghijklmnop"
MAX_STEPS = len(LABELS)
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
    if op == "+":
        return (value + operand) % MODULUS
    if op == "-":
        return (value - operand) % MODULUS
    return (value * operand) % MODULUS


def make_problem(rng: random.Random, steps: int, index: int = 0) -> Problem:
    """Draw one problem with exactly ``steps`` operations."""
    if not 1 <= steps <= MAX_STEPS:
        raise ValueError(f"steps must be between 1 and {MAX_STEPS}, got {steps}.")
    value = rng.randrange(MODULUS)
    problem, trace = [str(value)], []
    for label in LABELS[:steps]:
        op, operand = rng.choice(OPS), rng.randrange(1, MODULUS)
        value = _apply(value, op, operand)
        problem.append(f"{label}{op}{operand}")
        trace.append(f"{label}{op}{operand}={value}")
    return Problem(f"k{steps}-{index}", steps, "".join(problem), "".join(trace), str(value))


def solve(problem: str) -> str:
    """Evaluate a problem string; used to check generated data and planted examples."""
    value = int(problem[0])
    for i in range(1, len(problem), 3):
        value = _apply(value, problem[i + 1], int(problem[i + 2]))
    return str(value)


def held_out(problem: str) -> bool:
    """Whether a problem belongs to evaluation (never to training): a fixed eighth of all problems, by hash."""
    return int(hashlib.sha256(problem.encode()).hexdigest()[:8], 16) % HELD_OUT_BUCKETS == 0


def make_problems(n: int, min_steps: int, max_steps: int, seed: int, split: str = "train") -> list[Problem]:
    """Draw ``n`` problems with step counts cycling through ``min_steps..max_steps`` (balanced by construction).

    ``split="train"`` draws only problems outside the held-out eighth (``held_out``), ``split="eval"`` only inside
    it, so no evaluation problem is ever trained on, whatever seeds and chain ranges the two sides use. (There are
    only 60 one-step and 720 two-step problems: without the split every short evaluation problem was a training
    problem too.)
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
