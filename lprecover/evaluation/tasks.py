"""Evaluation tasks: problems, gold answers, prompts, and each task's default budgets.

Hub datasets load with ``datasets``; a local jsonl with the same fields overrides any of them
(``eval.paths={gsm8k: ../shared/data/gsm8k/test.jsonl}``). Organism tasks are generated, with the chain length as a
parameter: ``organism`` (1-8 steps), ``organism_long`` (5-8), ``organism_shallow`` (1-2), or ``organism:LO-HI`` for
any range, all drawn from the held-out eighth of problems that no training set holds (``organism.task.held_out``).
``organism_facts`` is the knowledge stand-in: the teacher's memorised facts, every one of them trained on by design
(it measures recall, answered with no thinking).
"""

import random
from dataclasses import dataclass

from lprecover.config import ConfigError
from lprecover.evaluation.scoring import LETTERS, TASK_KINDS, task_kind
from lprecover.readers import read_jsonl

MATH_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
CHOICE_INSTRUCTION = "Think it through, then give your final answer as 'Answer: X' where X is the letter."
REAL_BUDGETS = [512, 1024, 2048, 4096, 8192]
# The answer phase after thinking. Reasoning models write hundreds of tokens of solution after their thinking
# before the boxed answer (s1.1-7B: 300-600); s1's fork gives the answer phase the whole generation limit. A cap
# that cuts real answers scores them wrong, more often at larger budgets, and flattens the curve being measured.
ANSWER_TOKENS = {"math": 2048, "choice": 1024}
ORGANISM_RANGES = {"organism": (1, 8), "organism_long": (5, 8), "organism_shallow": (1, 2)}
ORGANISM_FACTS = "organism_facts"
FACT_BUDGETS = [5]  # facts are answered with no thinking; one budget, so the curve is one point
GPQA_SHUFFLE_SEED = 1234  # fixed, so every model sees the same choice order

HUB = {
    "gsm8k": ("openai/gsm8k", "main", "test"),
    "math500": ("HuggingFaceH4/MATH-500", None, "test"),
    "aime24": ("HuggingFaceH4/aime_2024", None, "train"),
    "aime25": ("math-ai/aime25", None, "test"),
    "aime_nofigures": ("simplescaling/aime_nofigures", None, "train"),  # AIME 2022-24, 90 problems (the seed's)
    "gpqa_diamond": ("Idavidrein/gpqa", "gpqa_diamond", "train"),
    "mmlu": ("cais/mmlu", "all", "test"),
}


@dataclass(frozen=True)
class Problem:
    id: str
    prompt: str
    gold: str


@dataclass
class Task:
    name: str
    kind: str
    problems: list[Problem]
    default_budgets: list[int]
    answer_max_tokens: int
    # A task answered with no thinking (the organism's facts) keeps its own budget; ``eval.budgets`` do not apply.
    fixed_budgets: bool = False


def organism_range(name: str) -> tuple[int, int] | None:
    """The chain lengths ``(LO, HI)`` of an organism task, or None for a task that is not one.

    Raises:
        ConfigError: for ``organism:LO-HI`` that cannot be read or asks for chains the organism cannot draw.
    """
    if name in ORGANISM_RANGES:
        return ORGANISM_RANGES[name]
    if not name.startswith("organism:"):
        return None
    from lprecover.organism.task import MAX_STEPS

    lo, _, hi = name.split(":", 1)[1].partition("-")
    try:
        chains = int(lo), int(hi or lo)
    except ValueError:
        raise ConfigError(
            f"Cannot read the chain range in task '{name}'; write organism:LO-HI, e.g. organism:5-8."
        ) from None
    if not 1 <= chains[0] <= chains[1] <= MAX_STEPS:
        why = (
            f"its LO ({chains[0]}) is above its HI ({chains[1]})"
            if chains[0] > chains[1]
            else f"the organism's chains have 1 to {MAX_STEPS} steps, not {chains[0]} to {chains[1]}"
        )
        raise ConfigError(
            f"task '{name}' cannot be drawn: {why}; write organism:LO-HI with 1 <= LO <= HI <= {MAX_STEPS}, "
            "e.g. organism:5-8."
        )
    return chains


def check_task(name: str, key: str | None = None) -> None:
    """Raise ``ConfigError`` for an unknown or unreadable task name, listing the known ones.

    Args:
        key: the config key that named the task (e.g. ``eval.tasks``), to lead the message.
    """
    try:
        if organism_range(name) is None and name not in TASK_KINDS and name != ORGANISM_FACTS:
            known = ", ".join([*ORGANISM_RANGES, ORGANISM_FACTS] + [t for t in TASK_KINDS if t != "organism"])
            raise ConfigError(f"Unknown task '{name}'. Known tasks: {known}, or organism:LO-HI.")
    except ConfigError as e:
        if key is None:
            raise
        raise ConfigError(f"{key}: {e}") from None


def _rows(name: str, path: str | None) -> list[dict]:
    if path:
        return read_jsonl(path, f"eval.paths.{name}", allow_empty=False)
    import datasets

    repo, config, split = HUB[name]
    try:
        return list(datasets.load_dataset(repo, config, split=split))
    except (ConnectionError, FileNotFoundError) as e:  # offline, or the dataset moved
        raise ConfigError(
            f"Cannot load the {name} hub dataset '{repo}' ({str(e).splitlines()[0]}); give a local copy with "
            f"eval.paths={{{name}: FILE.jsonl}}."
        ) from None


def _gpqa(row: dict, index: int) -> Problem:
    choices = [row["Correct Answer"], row["Incorrect Answer 1"], row["Incorrect Answer 2"], row["Incorrect Answer 3"]]
    order = list(range(4))
    random.Random(GPQA_SHUFFLE_SEED + index).shuffle(order)
    gold = LETTERS[order.index(0)]
    body = "\n".join(f"({LETTERS[i]}) {choices[j].strip()}" for i, j in enumerate(order))
    return Problem(f"gpqa-{index}", f"{row['Question'].strip()}\n\n{body}\n\n{CHOICE_INSTRUCTION}", gold)


def _mmlu(row: dict, index: int) -> Problem:
    body = "\n".join(f"({LETTERS[i]}) {c}" for i, c in enumerate(row["choices"]))
    return Problem(
        f"mmlu-{index}", f"{row['question']}\n\n{body}\n\n{CHOICE_INSTRUCTION}", LETTERS[int(row["answer"])]
    )


def _math(row: dict, index: int, name: str) -> Problem:
    question = row.get("question") or row.get("problem")
    gold = str(row["answer"])
    if name == "gsm8k":
        gold = gold.split("####")[-1].strip().replace(",", "")
    return Problem(f"{name}-{row.get('id', index)}", f"{question}\n\n{MATH_INSTRUCTION}", gold)


def load_task(
    name: str, num_problems: int | None = None, path: str | None = None, seed: int = 12345, facts: int | None = None
) -> Task:
    """Load a task's first ``num_problems`` problems (all when None). ``facts``: how many facts the organism was
    trained on (``organism_facts``; default 100)."""
    check_task(name)
    if name == ORGANISM_FACTS:
        from lprecover.organism.task import N_FACTS
        from lprecover.organism.task import facts as trained

        drawn = trained(facts or N_FACTS)[: num_problems or None]
        problems = [Problem(f"fact-{f.name}", f.prompt, f.answer) for f in drawn]
        return Task(name, "exact", problems, FACT_BUDGETS, answer_max_tokens=4, fixed_budgets=True)
    chains = organism_range(name)
    if chains:
        from lprecover.organism.check import default_budgets
        from lprecover.organism.task import make_problems

        drawn = make_problems(num_problems or 200, *chains, seed, split="eval")
        problems = [Problem(p.id, p.problem, p.answer) for p in drawn]
        return Task(name, "exact", problems, default_budgets(chains[1], chains[0]), answer_max_tokens=4)
    rows = _rows(name, path)[: num_problems or None]
    parse = {"gpqa_diamond": _gpqa, "mmlu": _mmlu}.get(name, lambda row, i: _math(row, i, name))
    problems = []
    for i, row in enumerate(rows):
        try:
            problems.append(parse(row, i))
        except (KeyError, IndexError, ValueError) as e:  # the row lacks a field, or holds one of the wrong kind
            where = f"eval.paths.{name} '{path}'" if path else f"the {name} hub dataset"
            what = f"has no field {e}" if isinstance(e, KeyError) else f"cannot be read ({e})"
            raise ConfigError(f"Row {i} of {where} {what}.") from None
    kind = task_kind(name)
    return Task(name, kind, problems, REAL_BUDGETS, answer_max_tokens=ANSWER_TOKENS[kind])
