"""Evaluation tasks: the problems, gold answers, prompts and default budgets a task file describes.

The files are read and checked by ``lprecover.evaluation.task_specs``; this module draws their problems: rows from
a local file (``path``, or ``eval.paths={NAME: FILE}`` over any task's own source), a hub dataset (``hub``), or a
registered source (``source``, e.g. a synthetic task a plugin draws).
"""

import random
from dataclasses import dataclass
from pathlib import Path

import datasets

from lprecover.config import ConfigError
from lprecover.evaluation.task_specs import (
    DEFAULT_ANSWER_TOKENS,
    DEFAULT_BUDGETS,
    DEFAULT_INSTRUCTIONS,
    LETTERS,
    TaskSpec,
    get_spec,
    split_name,
)
from lprecover.readers import read_jsonl
from lprecover.registry import task_source


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
    # A task answered with no thinking (a knowledge control) keeps its own budget; ``eval.budgets`` do not apply.
    fixed_budgets: bool = False


def check_task(name: str, key: str | None = None) -> None:
    """Raise ``ConfigError`` for an unknown or unreadable task name, listing the known ones.

    Args:
        key: the config key that named the task (e.g. ``eval.tasks``), to lead the message.
    """
    get_spec(name, key)


def _read_local(path: str, key: str) -> list[dict]:
    suffix = Path(path).suffix
    if suffix == ".jsonl":
        return read_jsonl(path, key, allow_empty=False)
    try:
        return list(datasets.load_dataset("parquet" if suffix == ".parquet" else "json", data_files=path)["train"])
    except (ValueError, OSError, datasets.exceptions.DatasetGenerationError) as e:
        raise ConfigError(f"{key} '{path}' cannot be read: {str(e).splitlines()[0]}") from None


def _rows(spec: TaskSpec, path: str | None) -> tuple[list[dict], str]:
    """The task's rows, and where they came from (for messages)."""
    if path:
        return _read_local(path, f"eval.paths.{spec.name}"), f"eval.paths.{spec.name} '{path}'"
    if spec.path:
        return _read_local(spec.path, f"task file '{spec.file}', path"), f"'{spec.path}'"
    hub = spec.hub
    try:
        rows = datasets.load_dataset(hub["id"], hub.get("config"), split=hub.get("split", "test"))
    except (ConnectionError, FileNotFoundError) as e:  # offline, or the dataset moved
        raise ConfigError(
            f"Cannot load the {spec.name} hub dataset '{hub['id']}' ({str(e).splitlines()[0]}); give a local copy "
            f"with eval.paths={{{spec.name}: FILE.jsonl}}."
        ) from None
    return list(rows), f"the {spec.name} hub dataset"


def _gold(spec: TaskSpec, row: dict) -> str:
    gold = str(row[spec.answer_field])
    if spec.answer_after and spec.answer_after in gold:  # e.g. GSM8K: the worked solution ending in "#### N"
        gold = gold.split(spec.answer_after)[-1].strip().replace(",", "")
    return gold.strip()


def _choice_problem(spec: TaskSpec, row: dict, index: int, question: str, instruction: str) -> tuple[str, str]:
    if spec.choice_fields:  # one field an option, the first one correct: shuffled per problem with a fixed seed
        options = [str(row[f]).strip() for f in spec.choice_fields]
        order = list(range(len(options)))
        random.Random(spec.shuffle_seed + index).shuffle(order)
        gold = LETTERS[order.index(0)]
        options = [options[j] for j in order]
    else:
        options = [str(c).strip() for c in row[spec.choices_field]]
        raw = str(row[spec.answer_field]).strip().strip("()")
        gold = LETTERS[int(raw)] if raw.isdigit() else raw.upper()
        if gold not in LETTERS[: len(options)]:
            raise ValueError(f"its answer {row[spec.answer_field]!r} is neither an option's index nor its letter")
    body = "\n".join(f"({LETTERS[i]}) {o}" for i, o in enumerate(options))
    return "\n\n".join(x for x in (question.strip(), body, instruction) if x), gold


def _problem(spec: TaskSpec, row: dict, index: int) -> Problem:
    # A source names its problems itself (its ids key the sampling streams); file rows are named by the task.
    pid = str(row["id"]) if spec.source else f"{spec.id_prefix or spec.name}-{row.get(spec.id_field, index)}"
    instruction = DEFAULT_INSTRUCTIONS[spec.kind] if spec.instruction is None else spec.instruction
    if spec.kind == "choice":
        prompt, gold = _choice_problem(spec, row, index, str(row[spec.question_field]), instruction)
        return Problem(pid, prompt, gold)
    gold = _gold(spec, row)  # the gold first: a row of another task's format names its missing answer
    question = str(row[spec.question_field])
    return Problem(pid, f"{question}\n\n{instruction}" if instruction else question, gold)


def load_task(
    name: str,
    num_problems: int | None = None,
    path: str | None = None,
    seed: int = 12345,
    model_options: dict | None = None,
) -> Task:
    """Load a task's first ``num_problems`` problems (all when None).

    Args:
        path: a local file that replaces the task's own rows (``eval.paths``).
        seed: for tasks a source draws.
        model_options: the evaluated model's task options (``registry.ModelTraits.task_options``).

    Raises:
        ConfigError: naming the file or dataset and the row, when a row lacks a field or holds one of the wrong kind.
    """
    spec = get_spec(name)
    _, arg = split_name(name)
    budgets = list(spec.budgets or DEFAULT_BUDGETS)
    if spec.source and not path:
        source = task_source(spec.source)
        rows = source.rows(spec.source_options, arg, num_problems, seed, model_options or {})
        budgets = source.budgets(spec.source_options, arg) or budgets
        where = f"the {spec.source} source"
    else:
        rows, where = _rows(spec, path)
        rows = rows[: num_problems or None]
    problems = []
    for i, row in enumerate(rows):
        try:
            problems.append(_problem(spec, row, i))
        except (KeyError, IndexError, ValueError, TypeError) as e:  # the row lacks a field, or holds a wrong one
            what = f"has no field {e}" if isinstance(e, KeyError) else f"cannot be read ({e})"
            raise ConfigError(f"Row {i} of {where} {what} (task file '{spec.file}').") from None
    answer_tokens = spec.answer_max_tokens or DEFAULT_ANSWER_TOKENS[spec.kind]
    return Task(name, spec.kind, problems, budgets, answer_tokens, spec.fixed_budgets)
