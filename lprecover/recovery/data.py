"""The training set of a recovery run: built once by ``data_prep`` (cached), or read from a built folder or jsonl.

Every row is checked for the fields its method needs before any training starts.
"""

import hashlib
import json
from pathlib import Path

import datasets
import numpy as np
from datasets.exceptions import DatasetGenerationError
from filelock import FileLock

from data_prep.build import build, build_settings, load_built
from data_prep.config import DataConfig
from lprecover.config import ConfigError, cache_root
from lprecover.log import get_logger
from lprecover.modeling import ModelConfig
from lprecover.readers import read_jsonl
from lprecover.recovery.recipe import TrainData
from lprecover.registry import knowledge_set

logger = get_logger(__name__)


def _build_spec(data: TrainData, model: ModelConfig, output_dir: str) -> DataConfig:
    return DataConfig(
        source=data.source,
        path=data.source_path,
        hub_id=data.hub_id,
        split=data.split,
        model=model,
        max_length=data.max_length,
        decontaminate=list(data.decontaminate),
        eval_paths=dict(data.eval_paths),
        limit=data.limit,
        options=dict(data.options),
        output_dir=output_dir,
    )


# Bumped whenever the build itself changes what the same spec produces, so no cache entry made by older code is
# reused: 2 = dedup treats digits and operators as content (version 1 dropped a quarter of the organism's rows).
# 3 = organism rows never hold an evaluation problem (task.held_out); variables count as content in near-dedup.
# 4 = variables keep their case in dedup. The organism's task version is in the key too: a cache built from an older
# task (the mod-5 chains) was reused for the 53-symbol one, and recovery trained on the wrong task.
# 5 = a built folder records the organism's task version in its config.yaml too.
# 6 = a plugin source's options sit in data.options (they were a section of the source's name).
BUILD_VERSION = 6


def _built_dir(data: TrainData, model: ModelConfig) -> Path:
    """The cache folder of a build spec: the same spec and tokenizer reuse one build across a study's recipes."""
    spec = build_settings(_build_spec(data, model, "-")) | {"build_version": BUILD_VERSION}
    key = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:12]
    return cache_root() / "data" / f"{data.source}-{data.split}-{key}"


def load_training_data(data: TrainData, model: ModelConfig) -> datasets.Dataset:
    """The rows to train on (with ``data.replay`` of them from ``data.replay_data``); built once and cached.

    Args:
        model: whose tokenizer and thinking format the rows are written in (the student's).
    """
    return with_replay(load_rows(data, model), data, model)


REPLAY_SEED = 0  # the replayed rows and their place among the others are fixed: the same run gets the same data


def with_replay(dataset: datasets.Dataset, data: TrainData, model: ModelConfig) -> datasets.Dataset:
    """``dataset`` with ``n_r = round(replay / (1 - replay) * n)`` replay rows mixed in (``n`` its rows), so that
    ``replay`` of all rows, and so of each batch in expectation, are replay. The replay set is cycled in a seeded
    order when it has fewer rows than asked; the mix is shuffled with a fixed seed. Only ``messages`` is kept."""
    if not data.replay:
        return dataset
    name = data.replay_knowledge()
    registered = knowledge_set(name)
    if registered is not None:
        rows = [r["messages"] for r in registered()]
    else:
        rows = list(load_rows(TrainData(dataset=name), model)["messages"])
    n = round(data.replay / (1 - data.replay) * len(dataset))
    order = np.random.default_rng(REPLAY_SEED).permutation(len(rows))
    replay = datasets.Dataset.from_dict({"messages": [rows[order[i % len(rows)]] for i in range(n)]})
    logger.info("Replay: %d rows of %s mixed into %d (%.0f%%)", n, name, len(dataset), 100 * data.replay)
    main = dataset.select_columns(["messages"])
    mixed = datasets.concatenate_datasets([main, replay.cast(main.features)])
    return mixed.shuffle(seed=REPLAY_SEED).flatten_indices()


def load_rows(data: TrainData, model: ModelConfig) -> datasets.Dataset:
    """The rows of ``data`` without replay; builds (under a lock, atomically) and caches them on first use.

    Args:
        model: whose tokenizer and thinking format the rows are written in (the student's).
    """
    if data.dataset:
        path = Path(data.dataset)
        if path.is_file() and path.suffix == ".jsonl":
            read_jsonl(path, "data.dataset", allow_empty=False)  # names the file and line of a broken row
            try:
                return datasets.load_dataset("json", data_files=str(path), split="train")
            except DatasetGenerationError as e:  # rows that are JSON but do not make one table
                cause = str(e.__cause__ or e).splitlines()[0]
                raise ConfigError(f"data.dataset '{path}': its rows do not form one table ({cause}).") from None
        if (path / "data").is_dir() or (path / "data.jsonl").is_file():
            return load_built(path)
        raise ConfigError(
            f"data.dataset '{path}' is neither a folder written by `lprecover data` nor a .jsonl file in the "
            "messages schema."
        )
    out = _built_dir(data, model)
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out) + ".lock"):  # built once, however many processes or recipes ask; then reused by build()
        build(_build_spec(data, model, str(out)))
    return load_built(out)


def _turn(messages, role: str):
    return next((m for m in messages if isinstance(m, dict) and m.get("role") == role), None)


def check_rows(dataset: datasets.Dataset, method: str, where: str) -> None:
    """Raise a ConfigError naming the first row that lacks what ``method`` needs.

    SFT and offline distillation read ``messages`` with a user and an assistant turn; on-policy distillation only
    needs the user turn (the student writes the rest).
    """
    if "messages" not in dataset.column_names:
        raise ConfigError(
            f"{where} has no 'messages' column (columns: {', '.join(dataset.column_names)}). Build it with "
            "`lprecover data`, or give rows {messages: [{role: user, content: ...}, {role: assistant, ...}]}."
        )
    if len(dataset) == 0:
        raise ConfigError(f"{where} has no rows.")
    roles = ("user",) if method == "distill_onpolicy" else ("user", "assistant")
    for i, messages in enumerate(dataset["messages"]):
        if not isinstance(messages, list) or not messages:
            raise ConfigError(f"Row {i} of {where}: field 'messages' is empty or not a list of turns.")
        for role in roles:
            turn = _turn(messages, role)
            if turn is None or not isinstance(turn.get("content"), str) or not turn["content"].strip():
                raise ConfigError(
                    f"Row {i} of {where}: 'messages' has no {role} turn with text content; method={method} needs it."
                )


def prompts_only(dataset: datasets.Dataset) -> datasets.Dataset:
    """On-policy data: each row's turns up to the first assistant turn, as TRL's ``prompt`` column."""

    def cut(row):
        turns = []
        for m in row["messages"]:
            if m["role"] == "assistant":
                break
            turns.append({"role": m["role"], "content": m["content"]})
        return {"prompt": turns}

    return dataset.map(cut, remove_columns=dataset.column_names, num_proc=None, load_from_cache_file=False)
