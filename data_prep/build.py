"""Build a training set in the messages schema every recipe reads.

    python -m data_prep.build source=gsm8k path=../shared/data/gsm8k/train.jsonl split=short output_dir=data/gsm8k_short
    python -m data_prep.build source=s1k model=qwen3_8b max_length=16384 decontaminate=[math500,aime24] output_dir=data/s1k
    python -m data_prep.build source=organism split=short options.max_chain=4 output_dir=data/organism_short
    python -m data_prep.build source=teacher teacher.problems=organism model=organism output_dir=data/organism_traces
    lprecover data ...   (the same)

Each row: ``messages`` (user problem; assistant thinking trace + final answer, or the final answer alone for
``split=short``), ``problem``, ``answer`` (gold), ``source``, ``id``, ``num_tokens``. Beside the data: ``stats.json``
(token-length statistics, rows dropped and why, sampling settings for teacher traces), ``decontamination.json``
(which training rows matched which test items) and ``config.yaml``. The folder appears whole or not at all; a rerun with
the same settings reuses it, one with other settings is refused (overwrite=true rebuilds it).
"""

import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import datasets
import numpy as np
import yaml

from data_prep.config import DataConfig, filled_options, source_options
from data_prep.formats import assistant_turn, check_round_trip, resolve_format
from data_prep.quality import contamination, exact_duplicates, near_duplicates
from data_prep.sources import PARSERS, Example, RowError, mapped, read_rows
from lprecover.atomic import exclusive_output, folder_written_whole
from lprecover.command import run
from lprecover.config import (
    CONFIG_FILE,
    ConfigError,
    load_config,
    reuse_or_refuse,
    save_settings,
    to_dict,
)
from lprecover.evaluation.budget_forcing import budget_forced_generate, prompt_ids, think_format
from lprecover.evaluation.records import SampleStore
from lprecover.evaluation.scoring import answers_match, extract_answer
from lprecover.evaluation.tasks import load_task
from lprecover.log import get_logger
from lprecover.modeling import default_device, load_model_and_tokenizer, load_tokenizer
from lprecover.registry import data_source, model_traits

logger = get_logger(__name__)

STATS_FILE, CONTAMINATION_FILE = "stats.json", "decontamination.json"


def _registered_examples(cfg: DataConfig, source: str, split: str) -> list[Example]:
    """The examples a plugin's data source draws, with its options from ``cfg.options``."""
    rows = data_source(source).examples(source_options(source, cfg.options, "options."), split)
    return [Example(r["id"], r["problem"], r["answer"], r["trace"], r["answer"]) for r in rows]


def _parse(cfg: DataConfig, source: str, counts: dict) -> list[Example]:
    """Read and parse ``source``'s rows; a bad row fails the build (strict) or is skipped and counted."""
    rows = read_rows(source, cfg.path, cfg.hub_id, cfg.hub_split)[: cfg.limit]
    parser = mapped(cfg.fields) if source == "jsonl" else PARSERS[source]
    out = []
    for i, row in enumerate(rows):
        try:
            out.append(parser(row, i))
        except RowError as e:
            if cfg.strict:
                raise RowError(
                    f"{source}: {e} Fix the row, or pass strict=false to skip and count such rows."
                ) from None
            counts["unparseable"] = counts.get("unparseable", 0) + 1
    return out


def _teacher_examples(cfg: DataConfig, counts: dict, stats: dict) -> list[Example]:
    """Let the teacher think on each problem through the evaluation engine; optionally keep only correct traces."""
    t = cfg.teacher
    if data_source(t.problems) is not None:
        problems, task = _registered_examples(cfg, t.problems, "short"), t.problems
    else:
        problems, task = _parse(cfg, t.problems, counts), "gsm8k"
    model, tok = load_model_and_tokenizer(cfg.model, default_device())
    fmt = think_format(tok, cfg.model, default_answer_prefix=model_traits(model.config).answer_prefix)
    prompts = [prompt_ids(tok, p.problem, fmt) for p in problems]
    # Traces are appended to a store beside the output as chunks finish, so a killed build resumes where it
    # stopped; each prompt samples with its own key (its index), so the traces do not depend on the chunking.
    store = SampleStore(_open_traces(cfg))
    key = {i: ("teacher", "trace", f"{i}:{p.id}", t.budget, 0) for i, p in enumerate(problems)}
    pending = [i for i in range(len(problems)) if key[i] not in store]
    if len(pending) < len(problems):
        logger.info(
            "Resuming teacher traces: %d of %d already generated.", len(problems) - len(pending), len(problems)
        )
    chunk = 4 * t.batch_size
    for start in range(0, len(pending), chunk):
        idx = pending[start : start + chunk]
        made = budget_forced_generate(
            model,
            tok,
            [prompts[i] for i in idx],
            t.budget,
            fmt,
            answer_max_tokens=t.answer_max_tokens,
            batch_size=t.batch_size,
            temperature=t.temperature,
            top_p=t.top_p,
            keys=idx,
            show_progress=True,
        )
        store.append(
            [
                dict(zip(("task", "mode", "problem_id", "budget", "sample"), key[i]))
                | {"thinking": g.thinking, "answer": g.answer, "response": g.response}
                for i, g in zip(idx, made)
            ]
        )
    gens = [SimpleNamespace(**store.records[key[i]]) for i in range(len(problems))]
    out = []
    for p, g in zip(problems, gens):
        # Scored on what the model was made to say (the forced cue included); a model without thinking delimiters
        # that answered inside its response keeps that response as its trace and its extracted answer as final.
        extracted = extract_answer(g.response, task)
        correct = answers_match(extracted, p.answer, task)
        final = g.answer.strip() if fmt.close or g.answer.strip() else (extracted or "")
        if t.keep_verified and not correct:
            counts["unverified_trace"] = counts.get("unverified_trace", 0) + 1
            continue
        out.append(Example(p.id, p.problem, p.answer, g.thinking, final))
    stats["sampling"] = {
        "model": cfg.model.name_or_path,
        "budget": t.budget,
        "temperature": t.temperature,
        "top_p": t.top_p,
        "answer_max_tokens": t.answer_max_tokens,
        "keep_verified": t.keep_verified,
        "think_format": vars(fmt),
    }
    return out


def _test_items(cfg: DataConfig) -> dict[str, list[tuple[str, str]]]:
    tests = {}
    for name in cfg.decontaminate:
        task = load_task(name, None, cfg.eval_paths.get(name))
        # Compare the problem statement, not the instruction every prompt of the task shares.
        tests[name] = [(p.id, p.prompt.split("\n\n")[0]) for p in task.problems]
    return tests


def _traces_folder(cfg: DataConfig) -> Path:
    """Where teacher traces gather while a build runs: beside the output (which is written whole at the end).
    ``build`` removes it once the data set is in place."""
    out = Path(cfg.output_dir)
    return out.with_name(f".{out.name}.teacher-traces")


def _open_traces(cfg: DataConfig) -> Path:
    """The traces folder, kept from a killed build with the same settings, started afresh for other settings."""
    folder = _traces_folder(cfg)
    settings = build_settings(cfg) | {"output_dir": None, "overwrite": None}
    if reuse_or_refuse(folder, settings, "partial teacher traces", overwrite=True) == "fresh" and folder.exists():
        shutil.rmtree(folder)
    save_settings(folder, settings)
    return folder


def build_settings(cfg: DataConfig) -> dict:
    """What made a data set: its config, and for a plugin's source its version (a folder built from the organism's
    mod-5 chains is not the 53-symbol task's, whatever the config says)."""
    settings = to_dict(cfg) | {"options": filled_options(cfg.problems_source(), cfg.options, "options.")}
    registered = data_source(cfg.source)
    if registered is not None:
        settings[f"{cfg.source}_task_version"] = registered.version
    return settings


def build(cfg: DataConfig) -> dict:
    """Build the dataset described by ``cfg`` into ``cfg.output_dir``; returns the stats."""
    out = Path(cfg.output_dir)
    ignore = ("output_dir", "overwrite")  # the same build, moved or forced, is still the same build
    if reuse_or_refuse(out, build_settings(cfg), "a built data set", cfg.overwrite, ignore=ignore) == "reuse":
        logger.info("%s already holds this data set; reusing it.", out)
        return json.loads((out / STATS_FILE).read_text())
    tokenizer = load_tokenizer(cfg.model)
    if not getattr(tokenizer, "chat_template", None):
        raise ConfigError(
            f"The tokenizer of model '{cfg.model.name_or_path}' has no chat template, and rows are written through "
            "it; give an instruct or reasoning checkpoint's tokenizer (model=...)."
        )
    fmt = resolve_format(cfg.format, tokenizer)
    counts: dict[str, int] = {}
    stats: dict = {"source": cfg.source, "split": cfg.split, "format": fmt}

    if data_source(cfg.source) is not None:
        examples = _registered_examples(cfg, cfg.source, cfg.split)
    elif cfg.source == "teacher":
        examples = _teacher_examples(cfg, counts, stats)
    else:
        examples = _parse(cfg, cfg.source, counts)
    stats["parsed"] = len(examples)

    if cfg.dedup:
        texts = [e.problem for e in examples]
        exact = set(exact_duplicates(texts))
        kept = [e for i, e in enumerate(examples) if i not in exact]
        near = set(near_duplicates([e.problem for e in kept], cfg.near_dup_threshold))
        counts["exact_duplicate"], counts["near_duplicate"] = len(exact), len(near)
        examples = [e for i, e in enumerate(kept) if i not in near]

    report = []
    if cfg.decontaminate:
        report = contamination([e.problem for e in examples], _test_items(cfg), cfg.ngram)
        dirty = {m["train_index"] for m in report}
        for m in report:
            m["train_id"] = examples[m["train_index"]].id
        counts["contaminated"] = len(dirty)
        examples = [e for i, e in enumerate(examples) if i not in dirty]

    rows, lengths = [], []
    for e in examples:
        messages = [
            {"role": "user", "content": e.problem},
            {
                "role": "assistant",
                "content": assistant_turn(e.trace if cfg.split == "longcot" else None, e.final, fmt),
            },
        ]
        n_tokens = len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])
        if cfg.max_length and n_tokens > cfg.max_length:
            counts["too_long"] = counts.get("too_long", 0) + 1
            continue
        rows.append(
            {
                "messages": messages,
                "problem": e.problem,
                "answer": e.answer,
                "source": cfg.source,
                "id": e.id,
                "num_tokens": n_tokens,
            }
        )
        lengths.append(n_tokens)
    if not rows:
        raise ConfigError(f"No rows survived: {counts}. Loosen max_length or check the source.")
    check_round_trip(tokenizer, rows[0]["messages"])

    lengths_np = np.array(lengths)
    stats |= {
        "rows": len(rows),
        "dropped": counts,
        "tokens": {
            "total": int(lengths_np.sum()),
            "mean": float(lengths_np.mean()),
            "p50": float(np.percentile(lengths_np, 50)),
            "p90": float(np.percentile(lengths_np, 90)),
            "max": int(lengths_np.max()),
        },
    }
    _write(out, rows, stats, report, cfg)
    if cfg.source == "teacher":
        shutil.rmtree(_traces_folder(cfg), ignore_errors=True)  # the data set holds them now
    logger.info(
        "Built %d rows (%s); dropped %s; tokens mean %.0f, p90 %.0f, max %d",
        len(rows),
        fmt,
        counts,
        stats["tokens"]["mean"],
        stats["tokens"]["p90"],
        stats["tokens"]["max"],
    )
    return stats


def _write(out: Path, rows: list[dict], stats: dict, report: list[dict], cfg: DataConfig) -> None:
    with folder_written_whole(out) as tmp:
        if cfg.output_format == "jsonl":
            with open(tmp / "data.jsonl", "w") as f:
                f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        else:
            datasets.Dataset.from_list(rows).save_to_disk(str(tmp / "data"))
        (tmp / STATS_FILE).write_text(json.dumps(stats, indent=2))
        (tmp / CONTAMINATION_FILE).write_text(json.dumps(report, indent=2))
        (tmp / CONFIG_FILE).write_text(yaml.safe_dump(build_settings(cfg), sort_keys=False))


def load_built(path: str | Path) -> datasets.Dataset:
    """Load a dataset written by ``build`` (either output format)."""
    p = Path(path)
    if (p / "data.jsonl").exists():
        return datasets.load_dataset("json", data_files=str(p / "data.jsonl"), split="train")
    return datasets.load_from_disk(str(p / "data"))


CONFIG = DataConfig  # the keys `--help` lists


def main(argv: list[str]) -> int:
    """Run the command on its ``key=value`` arguments (``lprecover.command.run`` adds ``--help`` and error lines)."""
    cfg = load_config(DataConfig, argv)
    try:
        with exclusive_output(cfg.output_dir):
            stats = build(cfg)
    except RowError as e:  # a source row the user's data lacks a field in; other errors keep their traceback
        raise ConfigError(str(e)) from None
    print(json.dumps({k: stats[k] for k in ("rows", "dropped", "tokens")}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(run("data", sys.modules[__name__]))
