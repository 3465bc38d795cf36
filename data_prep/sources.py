"""Sources: each turns its raw rows into ``Example(problem, answer, trace, final, id)``.

A source either reads a local file (``path=``: jsonl, json, parquet, or a ``save_to_disk`` folder) or loads its hub
dataset with ``datasets``. A row that cannot be parsed raises ``RowError`` naming the row and the missing field.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from lprecover.config import ConfigError
from lprecover.evaluation.scoring import last_boxed
from lprecover.readers import read_json, read_jsonl

HUB = {
    "gsm8k": ("openai/gsm8k", "main"),
    "math": ("EleutherAI/hendrycks_math", None),
    "numina": ("AI-MO/NuminaMath-CoT", None),
    "s1k": ("simplescaling/s1K-1.1", None),
    "openr1": ("open-r1/OpenR1-Math-220k", "default"),
    "openthoughts": ("open-thoughts/OpenThoughts-114k", None),
}
SOURCES = (*HUB, "jsonl", "teacher")  # built in; plugins register more (registry.register_data_source)


class RowError(ValueError):
    """A source row lacks what its parser needs."""


@dataclass
class Example:
    id: str
    problem: str
    answer: str
    trace: str | None
    final: str


def read_rows(source: str, path: str | None, hub_id: str | None, hub_split: str) -> list[dict]:
    """The source's raw rows, from ``path`` or the hub; a file or hub id that cannot be read is a ``ConfigError``."""
    if path:
        p = Path(path)
        if not p.exists():
            raise ConfigError(f"path: the source file {p} does not exist.")
        if p.is_dir():
            import datasets

            return list(datasets.load_from_disk(str(p)))
        if p.suffix == ".jsonl":
            return read_jsonl(p, "path", allow_empty=False)
        if p.suffix == ".json":
            rows = read_json(p, "path")
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise ConfigError(f"path '{p}' must hold a JSON list of row objects (or use .jsonl).")
            return rows
        if p.suffix not in (".parquet", ".csv", ".arrow"):
            raise ConfigError(f"path '{p}': cannot read '{p.suffix}' files; give .jsonl, .json, .parquet or .csv.")
        import datasets

        return list(datasets.load_dataset(p.suffix.lstrip("."), data_files=str(p), split="train"))
    if source not in HUB and not hub_id:
        raise ConfigError(f"source={source} needs path=FILE (or hub_id=...).")
    import datasets

    repo, config = (hub_id, None) if hub_id else HUB[source]
    try:
        return list(datasets.load_dataset(repo, config, split=hub_split))
    except (ConnectionError, FileNotFoundError) as e:  # offline, or no such dataset on the hub
        raise ConfigError(
            f"Cannot load the hub dataset '{repo}' ({str(e).splitlines()[0]}); give path=FILE with a local copy."
        ) from None


def _need(row: dict, index: int, *fields: str) -> list:
    missing = [f for f in fields if not row.get(f)]
    if missing:
        raise RowError(f"row {index} (id {row.get('id', index)!r}) has no {', '.join(missing)}.")
    return [row[f] for f in fields]


def _boxed_final(answer: str) -> str:
    return f"The answer is $\\boxed{{{answer}}}$."


def gsm8k(row: dict, i: int) -> Example:
    question, solution = _need(row, i, "question", "answer")
    if "####" not in solution:
        raise RowError(f"row {i}: the GSM8K answer has no '####' line with the final number.")
    steps, answer = solution.rsplit("####", 1)
    answer = answer.strip().replace(",", "")
    steps = re.sub(r"<<[^>]*>>", "", steps).strip()  # calculator annotations are not part of the reasoning
    return Example(str(row.get("id", f"gsm8k-{i}")), question.strip(), answer, steps, _boxed_final(answer))


def math_like(row: dict, i: int) -> Example:
    problem, solution = _need(row, i, "problem", "solution")
    answer = row.get("answer") or last_boxed(solution)
    if not answer:
        raise RowError(f"row {i}: no 'answer' field and no \\boxed{{}} answer in the solution.")
    return Example(
        str(row.get("id", f"math-{i}")), problem.strip(), str(answer).strip(), solution.strip(), _boxed_final(answer)
    )


def s1k(row: dict, i: int) -> Example:
    question, thinking, attempt = _need(row, i, "question", "deepseek_thinking_trajectory", "deepseek_attempt")
    answer = row.get("solution") if row.get("solution") and len(str(row["solution"])) < 64 else last_boxed(attempt)
    if not answer:
        raise RowError(f"row {i}: no boxed answer in deepseek_attempt and no short 'solution'.")
    return Example(str(row.get("id", f"s1k-{i}")), question.strip(), str(answer).strip(), thinking, attempt)


def openr1(row: dict, i: int) -> Example:
    problem, answer, generations = _need(row, i, "problem", "answer", "generations")
    verified = row.get("correctness_math_verify") or [True] * len(generations)
    good = [g for g, ok in zip(generations, verified) if ok and "</think>" in g]
    if not good:
        raise RowError(f"row {i}: no generation that math-verify marked correct and that closes </think>.")
    trace, final = good[0].split("</think>", 1)
    return Example(
        str(row.get("uuid", f"openr1-{i}")), problem.strip(), str(answer).strip(), trace.replace("<think>", ""), final
    )


_THOUGHT = re.compile(r"<\|begin_of_thought\|>(.*?)<\|end_of_thought\|>", re.S)
_SOLUTION = re.compile(r"<\|begin_of_solution\|>(.*?)<\|end_of_solution\|>", re.S)


def openthoughts(row: dict, i: int) -> Example:
    (conversations,) = _need(row, i, "conversations")
    user = next((c["value"] for c in conversations if c.get("from") in ("user", "human")), None)
    reply = next((c["value"] for c in conversations if c.get("from") in ("assistant", "gpt")), None)
    thought, solution = _THOUGHT.search(reply or ""), _SOLUTION.search(reply or "")
    if not (user and thought and solution):
        raise RowError(f"row {i}: the conversation lacks a user turn or begin/end_of_thought/solution markers.")
    final = solution.group(1).strip()
    answer = last_boxed(final) or final
    return Example(f"openthoughts-{i}", user.strip(), answer, thought.group(1), final)


def mapped(fields: dict[str, str]):
    """A parser for any jsonl through a field mapping: ``fields={question: q, answer: a, trace: t}``."""
    q, a, t = fields.get("question", "question"), fields.get("answer", "answer"), fields.get("trace")

    def parse(row: dict, i: int) -> Example:
        question, answer = _need(row, i, q, a)
        trace = row.get(t) if t else None
        if t and not trace:
            raise RowError(f"row {i} (id {row.get('id', i)!r}) has no {t}.")
        return Example(
            str(row.get("id", f"row-{i}")), str(question).strip(), str(answer).strip(), trace, _boxed_final(answer)
        )

    return parse


PARSERS = {
    "gsm8k": gsm8k,
    "math": math_like,
    "numina": math_like,
    "s1k": s1k,
    "openr1": openr1,
    "openthoughts": openthoughts,
}
