"""Evaluation tasks as data: one YAML file a task, read and checked here before any model loads.

A task file (the built-in ones are in ``lprecover/evaluation/task_files/``; add your own with
``eval.task_files=[PATH]``)::

    name: my_bench                 # what eval.tasks=[...] calls it
    kind: math                     # math (math-verify), choice (a letter), or exact (the text itself)
    path: data/my_bench.jsonl      # a local jsonl, json or parquet file, relative to the task file ...
    # hub: {id: openai/gsm8k, config: main, split: test}      # ... or a hub dataset ...
    # source: NAME                 # ... or a registered source that draws the problems (a synthetic task)
    question_field: problem_text
    answer_field: solution
    # optional:
    id_field: uid                  # problem ids (default: the row's "id", else its index)
    answer_after: "####"           # the gold is the text after the last marker, thousands commas dropped
    choices_field: options         # choice tasks: the field holding the options (a list); the gold is a letter
                                   # or the option's index
    choice_fields: [A, B, C, D]    # ... or one field per option, the first one correct, shuffled per problem
    shuffle_seed: 1234             # ... with this seed (fixed, so every model sees the same order)
    instruction: "Please reason step by step, ..."   # appended to every question (default by kind)
    budgets: [512, 1024, 2048]     # thinking budgets when eval.budgets is empty
    answer_max_tokens: 2048        # the answer phase after thinking (default by kind)
    fixed_budgets: false           # true: eval.budgets do not apply (a task answered with no thinking)
    control: false                 # true: a knowledge control, reported beside the reasoning tasks
    source_options: {}             # for a source: its settings

A name ``BASE:ARG`` passes ``ARG`` to the source of task ``BASE`` (a range of a synthetic task, e.g.
``organism:5-8``). A bad file is refused naming the file and the field.
"""

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import yaml

from lprecover.config import ConfigError
from lprecover.registry import task_dirs, task_source

BUILTIN_DIR = Path(__file__).resolve().parent / "task_files"
KINDS = ("math", "choice", "exact")
LETTERS = "ABCDEFGHIJ"
DEFAULT_INSTRUCTIONS = {
    "math": "Please reason step by step, and put your final answer within \\boxed{}.",
    "choice": "Think it through, then give your final answer as 'Answer: X' where X is the letter.",
    "exact": "",
}
DEFAULT_BUDGETS = [512, 1024, 2048, 4096, 8192]
# The answer phase after thinking. Reasoning models write hundreds of tokens of solution after their thinking
# before the boxed answer (s1.1-7B: 300-600); s1's fork gives the answer phase the whole generation limit. A cap
# that cuts real answers scores them wrong, more often at larger budgets, and flattens the curve being measured.
DEFAULT_ANSWER_TOKENS = {"math": 2048, "choice": 1024, "exact": 64}
FIELDS = {
    "name": str,
    "kind": str,
    "path": str,
    "hub": dict,
    "source": str,
    "source_options": dict,
    "question_field": str,
    "answer_field": str,
    "id_field": str,
    "id_prefix": str,
    "answer_after": str,
    "choices_field": str,
    "choice_fields": list,
    "shuffle_seed": int,
    "instruction": str,
    "budgets": list,
    "answer_max_tokens": int,
    "fixed_budgets": bool,
    "control": bool,
    "description": str,
}


class TaskSource(Protocol):
    """What a registered ``source`` provides (see ``lprecover.registry.register_task_source``)."""

    def check(self, options: dict, arg: str | None, name: str) -> None:
        """Raise ``ConfigError`` for an ``ARG`` (``BASE:ARG``) or options the source cannot draw."""

    def rows(self, options: dict, arg: str | None, num_problems: int | None, seed: int, model: dict) -> list[dict]:
        """The problems as rows with ``id``, ``question`` and ``answer``; ``model``: the model's task options."""

    def budgets(self, options: dict, arg: str | None) -> list[int] | None:
        """The default thinking budgets of the drawn problems (None: the file's ``budgets``)."""


@dataclass(frozen=True)
class TaskSpec:
    """One task file, checked."""

    name: str
    kind: str
    file: str
    path: str | None = None
    hub: dict | None = None
    source: str | None = None
    source_options: dict = field(default_factory=dict)
    question_field: str = "question"
    answer_field: str = "answer"
    id_field: str = "id"
    id_prefix: str | None = None
    answer_after: str | None = None
    choices_field: str | None = None
    choice_fields: tuple[str, ...] | None = None
    shuffle_seed: int = 0
    instruction: str | None = None
    budgets: tuple[int, ...] | None = None
    answer_max_tokens: int | None = None
    fixed_budgets: bool = False
    control: bool = False
    description: str = ""

    @property
    def num_choices(self) -> int:
        """The letters a choice task's questions offer (all ten where the options come as a list)."""
        return len(self.choice_fields) if self.choice_fields else len(LETTERS)


def _bad(file: Path | str, field_: str, why: str) -> ConfigError:
    return ConfigError(f"Task file '{file}', field '{field_}': {why}")


def read_task_file(file: str | Path) -> TaskSpec:
    """Read and check one task file.

    Raises:
        ConfigError: naming the file and the field: an unknown or missing field, a value of the wrong type, no
            problem source (or two), a local ``path`` that does not exist, an unknown ``source``.
    """
    file = Path(file).expanduser()
    if not file.is_file():
        raise ConfigError(f"Task file '{file}' does not exist.")
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"Task file '{file}' is not valid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"Task file '{file}' must be a mapping of fields (name, kind, path or hub, ...).")
    for key, value in data.items():
        if key not in FIELDS:
            raise _bad(file, key, f"unknown field; the fields are {', '.join(FIELDS)}.")
        want = FIELDS[key]
        if value is not None and not (isinstance(value, want) and not (want is int and isinstance(value, bool))):
            raise _bad(file, key, f"must be a {want.__name__}, got {value!r}.")
    for key in ("name", "kind"):
        if not data.get(key):
            raise _bad(file, key, "missing; every task file names its task and its kind (math, choice, exact).")
    if data["kind"] not in KINDS:
        raise _bad(file, "kind", f"'{data['kind']}' is not one of {', '.join(KINDS)}.")
    given = [k for k in ("path", "hub", "source") if data.get(k)]
    if len(given) != 1:
        raise _bad(file, "path", f"give exactly one of path, hub or source (got {', '.join(given) or 'none'}).")
    if data.get("path"):
        path = Path(data["path"]).expanduser()
        path = path if path.is_absolute() else file.parent / path
        if not path.is_file():
            raise _bad(file, "path", f"no such file '{path}'.")
        if path.suffix not in (".jsonl", ".json", ".parquet"):
            raise _bad(file, "path", f"'{path.name}' is not a .jsonl, .json or .parquet file.")
        data["path"] = str(path)
    if data.get("hub") and not isinstance(data["hub"].get("id"), str):
        raise _bad(file, "hub", "give the dataset id as hub: {id: OWNER/NAME, config: ..., split: ...}.")
    if data.get("source") and task_source(data["source"]) is None:
        raise _bad(file, "source", f"no registered source '{data['source']}' (is its plugin installed?).")
    budgets = data.get("budgets")
    if budgets is not None and (
        not budgets or not all(isinstance(b, int) and b > 0 for b in budgets) or budgets != sorted(set(budgets))
    ):
        raise _bad(file, "budgets", f"must be increasing positive token counts, got {budgets}.")
    if data.get("answer_max_tokens") is not None and data["answer_max_tokens"] < 1:
        raise _bad(file, "answer_max_tokens", "must be at least 1.")
    if data["kind"] != "choice" and (data.get("choices_field") or data.get("choice_fields")):
        raise _bad(file, "choices_field", "only choice tasks have options; set kind: choice.")
    if (
        data["kind"] == "choice"
        and not data.get("source")
        and not (data.get("choices_field") or data.get("choice_fields"))
    ):
        raise _bad(file, "choices_field", "a choice task names its options (choices_field or choice_fields).")
    if data.get("choice_fields") is not None and not (
        2 <= len(data["choice_fields"]) <= len(LETTERS) and all(isinstance(f, str) for f in data["choice_fields"])
    ):
        raise _bad(file, "choice_fields", f"must list 2 to {len(LETTERS)} field names.")
    spec = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if v is not None}
    return TaskSpec(file=str(file), **spec)


_USER: dict[str, TaskSpec] = {}  # task files added in this process (eval.task_files)


def add_task_files(paths: list[str]) -> list[str]:
    """Read the user's task files and make their tasks known in this process; return their names.

    Raises:
        ConfigError: for a bad file (naming it and the field), or two files naming one task.
    """
    names = []
    for path in paths:
        spec = read_task_file(path)
        known = _USER.get(spec.name)
        if known is not None and Path(known.file).resolve() != Path(spec.file).resolve():
            raise ConfigError(f"Task files '{known.file}' and '{spec.file}' both name the task '{spec.name}'.")
        _USER[spec.name] = spec
        names.append(spec.name)
    return names


def _folders() -> list[Path]:
    return [BUILTIN_DIR, *task_dirs()]


def known_names() -> list[str]:
    """Every task name: the built-in files, the plugins' folders, and this process's task files."""
    names = {p.stem for folder in _folders() for p in folder.glob("*.yaml")}
    return sorted(names | set(_USER))


def split_name(name: str) -> tuple[str, str | None]:
    """``BASE:ARG`` -> ``(BASE, ARG)``; a plain name -> ``(name, None)``."""
    base, sep, arg = name.partition(":")
    return base, (arg if sep else None)


def find_spec(name: str) -> TaskSpec | None:
    """The spec of task ``name`` (``BASE:ARG`` finds ``BASE``), or None when no file names it."""
    base, _ = split_name(name)
    if base in _USER:
        return _USER[base]
    for folder in _folders():
        path = folder / f"{base}.yaml"
        if path.is_file():
            return _read_shipped(str(path))
    return None


@functools.cache
def _read_shipped(path: str) -> TaskSpec:
    return read_task_file(path)  # files inside packages do not change while a process runs


def get_spec(name: str, key: str | None = None) -> TaskSpec:
    """The checked spec of task ``name``.

    Args:
        key: the config key that named the task (e.g. ``eval.tasks``), to lead the message.

    Raises:
        ConfigError: for an unknown name (listing the known ones) or an ``ARG`` its source refuses.
    """
    spec = find_spec(name)
    lead = f"{key}: " if key else ""
    if spec is None:
        raise ConfigError(
            f"{lead}Unknown task '{name}'. Known tasks: {', '.join(known_names())}; or add a task file with "
            "eval.task_files=[PATH]."
        )
    _, arg = split_name(name)
    if arg is not None and not spec.source:
        raise ConfigError(f"{lead}task '{name}': only tasks drawn by a source take ':ARG'; write '{spec.name}'.")
    if spec.source:
        try:
            task_source(spec.source).check(spec.source_options, arg, name)
        except ConfigError as e:
            raise ConfigError(f"{lead}{e}") from None
    return spec


def task_kind(name: str) -> str:
    """The scoring kind of task ``name`` (``math``, ``choice`` or ``exact``).

    Raises:
        ValueError: for a name no task file knows (records a user made by hand).
    """
    spec = find_spec(name)
    if spec is None:
        raise ValueError(f"Unknown task '{name}'. Known tasks: {', '.join(known_names())}.")
    return spec.kind


def choice_letters(name: str) -> str:
    """The letters task ``name``'s questions offer (all ten for an unknown task)."""
    spec = find_spec(name)
    return LETTERS[: spec.num_choices] if spec is not None else LETTERS
