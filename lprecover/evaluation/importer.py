"""Import lm-eval ``--log_samples`` files as an lprecover evaluation, rescored by lprecover's own scorer.

    lprecover eval import=[out/seed7/MODEL/samples_aime24_nofigures_2025-01-01T00-00-00.jsonl,...] output_dir=OUT

Reads what lm-evaluation-harness writes with ``--log_samples`` (``samples_<task>_<timestamp>.jsonl``, one json
object per document: ``doc_id``, ``doc``, ``target``, ``arguments``, ``resps``, ``filtered_resps``, metric keys),
including s1's fork with budget forcing, which the seed repository's ``eval/`` scripts run. The main harness writes
one line per document *and filter* (``filter`` key): its raw responses are the same on every line, so the first
filter's line is kept.

- Task: from the file name (``samples_<task>_<timestamp>``), mapped onto lprecover's task names
  (``aime24_nofigures`` -> ``aime24``, ``openai_math`` -> ``math500``, ``gpqa_diamond_openai`` ->
  ``gpqa_diamond``, ``gsm8k_cot`` -> ``gsm8k``, ...), else ``import_task=``.
- Budget: the record's ``max_tokens_thinking`` (s1's fork), else its ``max_gen_toks``, else ``import_budget=``.
  The budget is the curve's x axis, not a setting: runs at ``max_gen_toks`` 512..8192 of the main harness are one
  curve (under s1's fork ``max_gen_toks`` caps the whole generation around the thinking budget, and stays a
  setting). Which key set it is kept as ``sampling.budget_from``, so s1's thinking budgets and the main harness's
  whole-generation caps never share a curve.
- Settings: every document of one task and mode must share its sampling settings (temperature, top_p, thinking
  extensions, the budget's key); files that differ are refused, naming the setting, before anything is written.
- Mode: a document with one response is a sequential record (several files of one task and budget, e.g. the seed's
  three seeds, become samples 0, 1, 2); several responses (``repeats``) are parallel samples.
- Scored text: after the last ``<|im_start|>answer`` (s1) or ``</think>``, as s1's fork grades; the whole response
  where neither appears. A response holding s1's forced cue (``<|im_start|>answer\\nFinal Answer:``) after its
  first thinking block is marked truncated. Token counts are not in the files: they are left out (``None``).
- Agreement: where the file carries its own per-sample marks (s1's ``exact_matches``, or ``exact_match`` / ``acc``
  of a single response), the summary reports the fraction of samples on which lprecover's verdict agrees.
"""

import json
import re
from pathlib import Path

from lprecover.evaluation.curves import parallel_curve, sequential_curve
from lprecover.evaluation.records import SampleStore
from lprecover.evaluation.scoring import answers_match, canonical, extract_answer
from lprecover.evaluation.task_specs import LETTERS, find_spec, known_names, task_kind
from lprecover.evaluation.tasks import Problem

S1_ANSWER = "<|im_start|>answer"
S1_FORCED = S1_ANSWER + "\nFinal Answer:"
THINK_CLOSE = "</think>"
# lm-eval task names (prefixes) -> lprecover task names; the longest matching prefix wins.
TASK_PREFIXES = {
    "gsm8k": "gsm8k",
    "openai_math": "math500",
    "math500": "math500",
    "math_500": "math500",
    "minerva_math500": "math500",
    "aime24": "aime24",
    "aime_2024": "aime24",
    "aime25": "aime25",
    "aime_2025": "aime25",
    "aime_nofigures": "aime_nofigures",
    "gpqa_diamond": "gpqa_diamond",
    "mmlu": "mmlu",
}


class LogSamplesError(ValueError):
    """A file that cannot be imported, named with the reason."""


def file_task(path: Path) -> str:
    """The lm-eval task name in ``samples_<task>_<timestamp>.jsonl`` (lm-eval's own ``get_file_task_name``)."""
    stem = path.name.removesuffix(".jsonl")
    if not stem.startswith("samples_") or stem.count("_") < 2:
        return ""
    return stem[stem.find("_") + 1 : stem.rfind("_")]


def map_task(lm_eval_task: str) -> str | None:
    """lprecover's name for an lm-eval task, or None when it is not one lprecover scores."""
    if find_spec(lm_eval_task) is not None:
        return lm_eval_task
    found = [p for p in TASK_PREFIXES if lm_eval_task.startswith(p)]
    return TASK_PREFIXES[max(found, key=len)] if found else None


def scored_text(response: str) -> tuple[str, bool | None]:
    """(the answer part s1's fork grades, whether the thinking was cut by the budget, None when unknown)."""
    if S1_ANSWER in response:
        forced = response.split(S1_ANSWER, 1)[1].startswith("\nFinal Answer:")
        return response.rsplit(S1_ANSWER, 1)[1], forced
    if THINK_CLOSE in response:
        return response.rsplit(THINK_CLOSE, 1)[1], None
    return response, None


def _gold(target: str, task: str) -> str:
    gold = str(target)
    if "####" in gold:  # GSM8K targets are the worked solution ending in "#### N"
        gold = gold.split("####")[-1].strip().replace(",", "")
    if task_kind(task) == "choice":
        letter = gold.strip().strip("()").upper()
        if len(letter) != 1 or letter not in LETTERS:
            raise LogSamplesError(f"The target {target!r} of a {task} document is not a choice letter.")
        return letter
    return gold.strip()


def _generation_args(record: dict) -> dict:
    args = record.get("arguments") or {}
    if isinstance(args, dict):
        first = args.get("gen_args_0")
    else:
        first = args[0] if isinstance(args, list | tuple) and args else None
    if isinstance(first, dict):
        settings = first.get("arg_1")
    elif isinstance(first, list | tuple) and len(first) > 1:
        settings = first[1]
    else:
        settings = None
    return settings if isinstance(settings, dict) else {}


def _responses(record: dict) -> list[str]:
    resps = record.get("resps")
    if not isinstance(resps, list) or not resps:
        raise LogSamplesError("it has no 'resps' list")
    flat = resps[0] if isinstance(resps[0], list) else resps
    if not flat:
        raise LogSamplesError("its 'resps' hold no response")
    if not all(isinstance(r, str) for r in flat):
        raise LogSamplesError("its 'resps' are not lists of strings (a generation task's responses)")
    return flat


BUDGET_KEYS = ("max_tokens_thinking", "max_gen_toks")  # s1's thinking cap first; the main harness caps everything


def _budget(settings: dict, fallback: int | None) -> tuple[int, str]:
    """(the document's budget, the key that set it): the first positive integer of ``BUDGET_KEYS``, else
    ``import_budget=``."""
    for key in BUDGET_KEYS:
        value = settings.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value, key
    if fallback:
        return fallback, "import_budget"
    raise LogSamplesError("it names no thinking budget (max_tokens_thinking, max_gen_toks): pass import_budget=")


def _mode(doc: dict) -> str:
    """One response per document is a sequential record; several (lm-eval ``repeats``) are parallel samples."""
    return "sequential" if len(doc["responses"]) == 1 else "parallel"


def _marks(record: dict, n: int) -> list[bool | None]:
    """The file's own per-sample verdicts: s1's ``exact_matches``, or one mark for a single response."""
    per_sample = record.get("exact_matches")
    if isinstance(per_sample, list) and len(per_sample) == n:
        return [bool(m) for m in per_sample]
    for key in ("exact_match", "acc", "score"):
        if n == 1 and isinstance(record.get(key), int | float | bool):
            return [bool(record[key])]
    return [None] * n


def read_log_samples(path: Path, task: str | None = None, budget: int | None = None) -> list[dict]:
    """The documents of one ``--log_samples`` file as ``{task, budget, doc_id, responses, gold, marks, ...}``.

    Raises:
        LogSamplesError: naming the file, the line and what is wrong, or the setting to pass.
    """
    name = file_task(path)
    mapped = map_task(name) if name else None
    if mapped and task and mapped != task:
        raise LogSamplesError(f"{path.name} holds task '{name}' ({mapped}), but import_task={task}; drop import_task.")
    task = mapped or task
    if not task:
        raise LogSamplesError(
            f"Cannot tell which task {path.name} holds ('{name}' is not one lprecover scores): pass import_task= "
            f"with one of {', '.join(known_names())}."
        )
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise LogSamplesError(
            f"Line {line} of {path} is not UTF-8 text (byte {e.start}): lm-eval --log_samples writes UTF-8 JSON lines."
        ) from None
    docs, seen_filter = {}, None
    # Split on newlines only: str.splitlines would also cut at U+2028 or U+0085, which json.dumps(ensure_ascii=False)
    # (lm-eval's writer) leaves raw inside a response.
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or "doc_id" not in record:
                raise LogSamplesError("it is not an lm-eval sample (no doc_id)")
            if not isinstance(record["doc_id"], int | str):
                raise LogSamplesError(f"its doc_id {record['doc_id']!r} is not a number or a string")
            seen_filter = seen_filter or record.get("filter")
            if record.get("filter", seen_filter) != seen_filter or record["doc_id"] in docs:
                continue  # the main harness repeats each document once per filter, with the same responses
            responses = _responses(record)
            settings = _generation_args(record)
            doc_budget, budget_from = _budget(settings, budget)
            sampling = {
                "temperature": settings.get("temperature"),
                "top_p": settings.get("top_p", 1.0),
                "max_gen_toks": settings.get("max_gen_toks"),
                "num_waits": settings.get("thinking_n_ignore", 0),
                "budget_from": budget_from,
                "source": "lm-eval log_samples",
            }
            if budget_from == "max_gen_toks":
                del sampling["max_gen_toks"]  # the budget itself: it differs between the points of one curve
            docs[record["doc_id"]] = {
                "task": task,
                "budget": doc_budget,
                "doc_id": record["doc_id"],
                "responses": responses,
                "gold": _gold(record.get("target", ""), task),
                "marks": _marks(record, len(responses)),
                "prompt_hash": str(record.get("prompt_hash", ""))[:16],
                "sampling": sampling,
                "seed": settings["seed"] if isinstance(settings.get("seed"), int) else None,  # orders the files
            }
        except json.JSONDecodeError as e:
            raise LogSamplesError(f"Line {number} of {path} is not JSON ({e.msg}).") from None
        except LogSamplesError as e:
            message = str(e)
            raise LogSamplesError(
                message if message[0].isupper() else f"Line {number} of {path}: {message}."
            ) from None
    if not docs:
        raise LogSamplesError(f"{path} holds no samples.")
    return list(docs.values())


def read_files(files: list[str], task: str | None, budget: int | None) -> list[list[dict]]:
    """The documents of every file (``read_log_samples``), once all of one task and mode are seen to share their
    sampling settings.

    Raises:
        LogSamplesError: for a file that cannot be read, or two whose settings differ, naming the setting.
    """
    documents = [read_log_samples(Path(f), task, budget) for f in files]
    first: dict[tuple, tuple[str, dict]] = {}  # (task, mode) -> (the first file, its settings)
    for f, docs in zip(files, documents):
        for d in docs:
            mode = _mode(d)
            seen_in, seen = first.setdefault((d["task"], mode), (f, d["sampling"]))
            differ = [k for k in sorted(seen.keys() | d["sampling"].keys()) if seen.get(k) != d["sampling"].get(k)]
            if differ:
                a = ", ".join(f"{k}={json.dumps(seen.get(k))}" for k in differ)
                b = ", ".join(f"{k}={json.dumps(d['sampling'].get(k))}" for k in differ)
                raise LogSamplesError(
                    f"The {d['task']} {mode} samples were generated with different settings ({a} in {seen_in}; "
                    f"{b} in {f}): a curve over them would mix protocols. Import each setting into its own output_dir."
                )
    return documents


def import_records(files: list[str], output_dir: Path, task: str | None, budget: int | None) -> tuple[list, dict]:
    """Rescore every response of ``files`` into ``output_dir/samples.jsonl``; returns (records, agreement per task).

    Files are read in the order given (sorted by their ``seed`` where they name one), so repeated sequential runs
    of one task and budget become samples 0, 1, 2, ... in a stable order.
    """
    documents = read_files(files, task, budget)
    documents.sort(key=lambda docs: (docs[0]["seed"] is None, docs[0]["seed"] or 0))
    counts: dict[tuple, int] = {}
    records, agree = [], {}
    for docs in documents:
        for d in docs:
            mode = _mode(d)
            key = (d["task"], mode, d["doc_id"], d["budget"])
            for response, mark in zip(d["responses"], d["marks"]):
                text, truncated = scored_text(response)
                extracted = extract_answer(text, d["task"])
                correct = answers_match(extracted, d["gold"], d["task"])
                sample = counts.get(key, 0)
                counts[key] = sample + 1
                records.append(
                    {
                        "task": d["task"],
                        "mode": mode,
                        "problem_id": f"{d['task']}-{d['doc_id']}",
                        "budget": d["budget"],
                        "sample": sample,
                        "prompt_hash": d["prompt_hash"],
                        "thinking_tokens": None,
                        "truncated": truncated,
                        "waits": None,
                        "answer_tokens": None,
                        "answer_truncated": None,
                        "output": response,
                        "response": text,
                        "extracted": extracted,
                        "canonical": canonical(extracted, d["task"]),
                        "gold": d["gold"],
                        "correct": correct,
                        "sampling": d["sampling"],
                        "file_mark": mark,
                    }
                )
                if mark is not None:
                    agree.setdefault(d["task"], []).append(mark == correct)
    store = SampleStore(output_dir)
    store.append(records)
    agreement = {t: {"import_agreement": sum(v) / len(v), "import_marked_samples": len(v)} for t, v in agree.items()}
    return list(store.records.values()), agreement


def curves_from_records(records: list[dict], ks: list[int] | None, n_boot: int, seed: int) -> dict:
    """Sequential and parallel curves of whatever tasks, budgets and sample counts the records hold."""
    curves = {"sequential": {}, "parallel": {}}
    for task in sorted({r["task"] for r in records}):
        for mode in ("sequential", "parallel"):
            rows = [r for r in records if r["task"] == task and r["mode"] == mode]
            if not rows:
                continue
            problems = [Problem(p, "", "") for p in dict.fromkeys(r["problem_id"] for r in rows)]
            per_problem: dict[tuple, int] = {}
            for r in rows:
                per_problem[(r["problem_id"], r["budget"])] = per_problem.get((r["problem_id"], r["budget"]), 0) + 1
            n = min(per_problem.values())
            budgets = sorted({r["budget"] for r in rows})
            if mode == "sequential":
                curves[mode][task] = sequential_curve(rows, problems, budgets, n_boot, seed, samples=n)
                continue
            if len(budgets) > 1:
                raise LogSamplesError(
                    f"The {task} parallel samples come at budgets {budgets}: import each on its own."
                )
            wanted = ks or [2**i for i in range(n.bit_length()) if 2**i <= n]
            too_big = [k for k in wanted if k > n]
            if too_big:
                raise LogSamplesError(f"eval.k {too_big} exceeds the {n} samples per problem the {task} files hold.")
            curves[mode][task] = parallel_curve(rows, problems, n, wanted, n_boot, seed)
    return curves


def model_name(files: list[str]) -> str | None:
    """The ``pretrained=`` model of the ``results_*.json`` lm-eval wrote beside the first file, if any."""
    folder = Path(files[0]).parent
    for results in sorted(folder.glob("results_*.json")):
        try:
            args = json.loads(results.read_text()).get("config", {}).get("model_args", "")
        except (OSError, json.JSONDecodeError):
            continue
        found = re.search(r"pretrained=([^,]+)", args if isinstance(args, str) else json.dumps(args))
        if found:
            return found.group(1)
    return None
