"""Distillation from stored teacher logits: the teacher reads the training data once, and every later distillation
on those data reads its top-k log-probabilities from disk instead of running a second model beside the student.

    lprecover teacher-logits recipe=distill store.out=runs/logits-k64 store.k=64      (the recipe's data and train.*)
    accelerate launch lprecover/train.py recipe=distill distill.teacher_logits=runs/logits-k64

What is stored. The rows go through the trainer's own data path (SFTTrainer's chat template, assistant-only labels,
truncation and packing), so the stored sequences are exactly those training sees. Each sequence (a segment of a
packed row, or an unpacked row) is keyed by a hash of its token ids and label mask. For every position whose logit
predicts a labelled token, the store keeps the teacher's k most likely token ids (uint16 for vocabularies of at
most 65,536 tokens, else int32), their log-probabilities
at ``distill.temperature`` (float16 by default), and the log of the probability mass outside them (the tail).

The loss with k < vocabulary. Both distributions are coarsened to k + 1 buckets: the teacher's k tokens, and one
bucket holding everything else (for the student: the log-sum-exp of its log-probabilities outside those k). The
divergence (TRL's generalized JSD, as online) is taken between the bucket distributions. So the mass outside the
top k is matched as a whole, never dropped: a student that puts more mass outside the teacher's top k than the
teacher does pays for it, while how that mass spreads over the tail is not trained. By the data-processing
inequality the bucketed divergence is at most the full one; it equals it when the student's tail is proportional to
the teacher's, and when k is the whole vocabulary. An empty tail's log-mass is floored at ``FLOOR`` (-1e4), where
``exp`` is exactly 0 in float32, so k = vocabulary gives online distillation's loss (tested to 1e-5).

Engines: ``store.engine=transformers`` runs the teacher as online distillation does (packed rows, any temperature);
``store.engine=vllm`` reads vLLM's prompt log-probabilities (raw, so temperature 1 only), whose tail is 1 minus the
top k's mass.

Files in the store folder: ``config.yaml`` (what made it; a relaunch with other settings is refused),
``shard-NNNNN.safetensors`` (rows ``[i * R, (i + 1) * R)`` of the prepared dataset, each written whole), and
``manifest.json`` (written last; a store without it is unfinished). A relaunch computes only the missing shards.

Across processes: ``accelerate launch --num_processes N -m lprecover.cli teacher-logits ...`` (or ``torchrun``) has
each process prepare the same rows and write every N-th missing shard, with the teacher on its own GPU (vLLM: one
engine per GPU, or one process per node with ``store.vllm_kwargs.tensor_parallel_size``); the main process writes
the manifest when all are done. The shards are those one process writes, and a relaunch with any process count
writes only the missing ones.
"""

import gc
import importlib.util
import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes

from lprecover.atomic import exclusive_output, write_file
from lprecover.config import (
    declare,
    load_config,
    recipe_choices,
    reuse_or_refuse,
    save_settings,
    to_dict,
)
from lprecover.evaluation.engines import cpu_kv_cache_bytes, has_gpu
from lprecover.evaluation.processes import launched_processes, own_gpu
from lprecover.log import get_logger
from lprecover.modeling import default_device, load_model, load_tokenizer, read_model_config, resolve_model_path
from lprecover.recovery.checks import check_models
from lprecover.recovery.data import check_rows, load_training_data
from lprecover.recovery.distill import accepts_logits_to_keep, predicting_positions
from lprecover.recovery.logit_store import (
    DTYPES,
    FLOOR,
    FORMAT,
    MANIFEST,
    TopK,
    segments,
    sequences,
    tail_from_top,
    top_k,
)
from lprecover.recovery.models import student_model_config, teacher_model_config
from lprecover.recovery.packing import use_varlen_attention
from lprecover.recovery.recipe import RecoveryConfig
from lprecover.recovery.sft import has_generation_markers, sft_args, sft_trainer

logger = get_logger(__name__)

ENGINES = ("transformers", "vllm")


def vllm_pass(llm, found: list[tuple[np.ndarray, np.ndarray]], k: int) -> TopK:
    """The teacher's top k at every distilled position of ``found`` (``segments``), from vLLM's prompt log-probs.

    vLLM returns, for each prompt token, the k most likely tokens at that position (by rank) and the prompt's own
    token; only the ranked k are kept. Its log-probabilities are the raw model's (temperature 1); the tail is
    ``log(1 - mass of the k)``, floored at ``FLOOR``.
    """
    from vllm import SamplingParams, TokensPrompt

    params = SamplingParams(max_tokens=1, prompt_logprobs=k, temperature=0.0, detokenize=False)
    prompts = [TokensPrompt(prompt_token_ids=ids.tolist()) for ids, _ in found]
    ids_out, values = [], []
    for out, (_, labelled) in zip(llm.generate(prompts, params, use_tqdm=False), found):
        for j in (np.flatnonzero(labelled[1:]) + 1).tolist():  # the distribution that predicts token j
            ranked = sorted((-lp.logprob, token) for token, lp in out.prompt_logprobs[j].items() if lp.rank <= k)[:k]
            ids_out.append([token for _, token in ranked])
            values.append([-neg for neg, _ in ranked])
    if not ids_out:
        return TopK.empty(k)
    logprobs = torch.tensor(values, dtype=torch.float32)
    return TopK(torch.tensor(ids_out, dtype=torch.int32), logprobs.clamp(min=FLOOR), tail_from_top(logprobs))


@dataclass
class StoreSettings:
    """Where and how compactly the teacher's log-probabilities are written."""

    out: str = declare("", help="The store folder (required); distill.teacher_logits reads it.", output_dir=True)
    k: int = declare(64, help="Top tokens kept per position (the rest is one tail bucket).", ge=1)
    dtype: str = declare("float16", help="Log-probabilities as float16 or float32.", choices=list(DTYPES))
    rows_per_shard: int = declare(256, help="Prepared (packed) rows per shard file.", ge=1)
    batch_size: int = declare(0, help="Rows per teacher forward (0: train.per_device_batch_size).", ge=0)
    engine: str = declare(
        "transformers",
        help="transformers (the trainer's own forward) or vllm (prompt log-probs; temperature 1 only).",
        choices=list(ENGINES),
    )
    vllm_kwargs: dict[str, Any] = declare(
        help="Extra vllm.LLM arguments, e.g. {tensor_parallel_size: 8}.", default_factory=dict
    )


@dataclass
class TeacherLogitsConfig(RecoveryConfig):
    """A distillation recipe with its overrides (data, model, teacher, train.*), plus where to store the teacher."""

    store: StoreSettings = declare(
        help="Where and how compactly the teacher's log-probabilities are written.", default_factory=StoreSettings
    )

    def __post_init__(self):
        super().__post_init__()
        if not self.store.out:
            raise ValueError("store.out is required: the folder the teacher's log-probabilities are written to.")
        if self.method != "distill":
            raise ValueError(
                f"Stored teacher logits serve logit distillation (method distill, e.g. recipe=distill); recipe "
                f"{self.recipe or '(none)'} has method {self.method}."
            )
        if self.distill.teacher_logits:
            raise ValueError("distill.teacher_logits is what training reads; the store is written to store.out.")
        if self.store.engine == "vllm":
            if self.distill.temperature != 1.0:
                raise ValueError(
                    "store.engine=vllm stores vLLM's raw log-probabilities, at temperature 1; "
                    f"distill.temperature={self.distill.temperature} needs store.engine=transformers."
                )
            if not importlib.util.find_spec("vllm"):
                raise ValueError("store.engine=vllm needs vLLM: pip install -e '.[vllm]' (see README: vLLM).")

    def store_settings(self, teacher: str) -> dict:
        """What the stored values depend on: a relaunch with other values is refused (overwrite=true redoes it)."""
        return {
            "teacher": teacher,
            "tokenizer": self.student or self.model.name_or_path,
            "data": to_dict(self.data),
            "max_length": self.train.max_length,
            "packing": self.train.packing,
            "temperature": self.distill.temperature,
            "k": self.store.k,
            "dtype": self.store.dtype,
            "rows_per_shard": self.store.rows_per_shard,
            "engine": self.store.engine,
            "vllm_kwargs": dict(self.store.vllm_kwargs),
            "model": to_dict(self.model),  # dtype, revision, attention: what the teacher computes with
        }


def _teacher_pass(teacher, batch: dict, temperature: float, k: int, logits_to_keep: bool) -> TopK:
    """The teacher's top k at the batch's distilled positions, computed as online distillation computes them."""
    labels = batch["labels"]
    keep = predicting_positions(labels)
    inputs = {n: v for n, v in batch.items() if n != "labels"} | {"use_cache": False}
    if logits_to_keep:
        inputs["logits_to_keep"] = keep
    logits = teacher(**inputs).logits
    if not logits_to_keep:
        logits = logits[:, keep]
    selected = labels[:, 1:][:, keep] != -100
    return top_k(F.log_softmax(logits[selected].float() / temperature, dim=-1), k)


def _vllm_engine(path: str, model, k: int, kwargs: dict):
    """vLLM's LLM for scoring prompts: room for k log-probs a position, the KV cache sized as evaluation sizes it."""
    from transformers import AutoConfig
    from vllm import LLM

    kwargs = {"max_logprobs": k, **kwargs}
    if not has_gpu() and not {"gpu_memory_utilization", "kv_cache_memory_bytes"} & set(kwargs):
        config = AutoConfig.from_pretrained(path, revision=model.revision, trust_remote_code=model.trust_remote_code)
        kwargs["kv_cache_memory_bytes"] = cpu_kv_cache_bytes(config, None, model.dtype)
    return LLM(
        model=path, dtype=model.dtype, revision=model.revision, trust_remote_code=model.trust_remote_code, **kwargs
    )


def id_dtype(vocab_size: int) -> torch.dtype:
    """The narrowest type that holds every token id: 2 bytes a kept token for vocabularies up to 65,536."""
    return torch.uint16 if vocab_size <= 2**16 else torch.int32


def _write_shard(
    path: Path, keys: list[bytes], counts: list[int], found: TopK, dtype, ids_dtype, seconds: float
) -> None:
    offsets = torch.tensor([0, *counts], dtype=torch.int64).cumsum(0)
    tensors = {
        "keys": torch.tensor([list(key) for key in keys], dtype=torch.uint8).reshape(len(keys), 16),
        "offsets": offsets,
        "ids": found.ids.to(ids_dtype).contiguous(),
        "logprobs": found.logprobs.to(dtype).contiguous(),
        "tail": found.tail.to(dtype).contiguous(),
    }
    metadata = {"seconds": f"{seconds:.6f}", "positions": str(int(offsets[-1]))}
    write_file(path, safetensors_bytes(tensors, metadata=metadata))


def _data_path(cfg: TeacherLogitsConfig, tokenizer, dataset):
    """The trainer's own rows and collator: TRL's tokenisation, assistant-only labels, truncation and packing.

    They depend on the tokenizer and the train settings alone, so the SFTTrainer that prepares them wraps a
    one-layer stand-in rather than the teacher (which may only fit sharded, or run in vLLM). Its args never train.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    tiny = dict(hidden_size=8, intermediate_size=8, num_hidden_layers=1, num_attention_heads=1, num_key_value_heads=1)
    stand_in = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), **tiny))
    if cfg.train.packing:
        use_varlen_attention(stand_in)  # as the student's, so TRL judges padding-free packing alike
    with tempfile.TemporaryDirectory() as scratch:
        args = sft_args(cfg.train, scratch, "none", assistant_masks=has_generation_markers(tokenizer))
        trainer = sft_trainer(stand_in, tokenizer, dataset, args)
    return trainer.train_dataset, trainer.data_collator


def write_store(cfg: TeacherLogitsConfig) -> Path:
    """Run the teacher over the recipe's prepared training rows and store its top k; returns the store folder."""
    from transformers import set_seed

    check_models(cfg)
    out = Path(cfg.store.out)
    student_cfg = student_model_config(cfg)
    student_config = read_model_config(student_cfg, cfg.student) if cfg.student else None
    teacher_cfg = teacher_model_config(cfg, student_config)
    teacher_path = resolve_model_path(teacher_cfg.name_or_path, "teacher")
    settings = cfg.store_settings(teacher_path)
    verdict = reuse_or_refuse(out, settings, "a teacher-logit store", cfg.overwrite)
    # Under a launcher every process has judged the folder before the group forms; then the main one prepares it.
    procs = launched_processes()
    if procs.main:
        if verdict == "fresh" and out.exists():
            shutil.rmtree(out)  # overwrite=true, and the folder holds another store
        save_settings(out, settings)
    procs.wait()
    set_seed(cfg.train.seed)

    dataset = load_training_data(cfg.data, student_cfg)
    check_rows(dataset, cfg.method, cfg.data.dataset or f"the built {cfg.data.source} data")
    tokenizer = load_tokenizer(student_cfg)
    rows, collate = _data_path(cfg, tokenizer, dataset)
    vocab_size = read_model_config(teacher_cfg, teacher_path, "teacher").get_text_config().vocab_size
    k = min(cfg.store.k, vocab_size)
    device = procs.device(default_device())
    teacher = llm = None
    if cfg.store.engine == "vllm":
        if procs.count > 1 and int(cfg.store.vllm_kwargs.get("tensor_parallel_size", 1)) == 1:
            own_gpu(procs)
        llm = _vllm_engine(teacher_path, teacher_cfg, k, cfg.store.vllm_kwargs)
    else:
        teacher = load_model(teacher_cfg, device).eval()
        if cfg.train.packing:
            use_varlen_attention(teacher)
    per_shard, step = cfg.store.rows_per_shard, cfg.store.batch_size or cfg.train.per_device_batch_size
    n_shards = -(-len(rows) // per_shard)
    names = [f"shard-{i:05d}.safetensors" for i in range(n_shards)]
    todo = [i for i, name in enumerate(names) if not (out / name).is_file()]
    logger.info("teacher-logits: %d rows in %d shards, %d to write", len(rows), n_shards, len(todo))
    # Each process writes every N-th missing shard, whole files named by their rows; all list them before any writes.
    procs.wait()
    todo = procs.share(todo)
    if procs.count > 1:
        logger.info("teacher-logits: process %d of %d writes %d of them", procs.index, procs.count, len(todo))
    keep_arg = llm is None and accepts_logits_to_keep(teacher)
    dtype = DTYPES[cfg.store.dtype]
    for i in todo:
        start = time.perf_counter()
        keys, counts, parts = [], [], [TopK.empty(k)]
        for a in range(i * per_shard, min((i + 1) * per_shard, len(rows)), step):
            batch = collate([rows[j] for j in range(a, min(a + step, (i + 1) * per_shard, len(rows)))])
            if llm is not None:
                parts.append(vllm_pass(llm, segments(batch), k))
            else:
                batch = {n: v.to(device) if torch.is_tensor(v) else v for n, v in batch.items()}
                with torch.no_grad():
                    found = _teacher_pass(teacher, batch, cfg.distill.temperature, k, keep_arg)
                parts.append(TopK(*(t.cpu() for t in found)))
            for key, n in sequences(batch):
                keys.append(key)
                counts.append(n)
        found = TopK(*(torch.cat(column) for column in zip(*parts)))
        _write_shard(out / names[i], keys, counts, found, dtype, id_dtype(vocab_size), time.perf_counter() - start)
        logger.info("teacher-logits: shard %d/%d written", i + 1, n_shards)
    if llm is not None:
        # Stopped here, not at interpreter exit, where vLLM's engine threads can abort the process after the work.
        llm.llm_engine.engine_core.shutdown()
        del llm
        gc.collect()
    procs.wait()  # every shard written
    if procs.main:
        _write_manifest(out, names, k, vocab_size, teacher_path, len(rows), cfg)
    procs.wait()  # the store finished
    return out


def _write_manifest(out: Path, names: list[str], k: int, vocab_size: int, teacher: str, rows: int, cfg) -> None:
    """Sum the shards' counts into ``manifest.json``, written last: its presence says the store is finished."""
    total_bytes = positions = 0
    seconds = 0.0
    n_sequences = 0
    for name in names:
        with safe_open(str(out / name), framework="pt") as shard:
            meta = shard.metadata()
            n_sequences += shard.get_slice("keys").get_shape()[0]
        seconds += float(meta["seconds"])
        positions += int(meta["positions"])
        total_bytes += (out / name).stat().st_size
    manifest = {
        "format": FORMAT,
        "k": k,
        "dtype": cfg.store.dtype,
        "temperature": cfg.distill.temperature,
        "vocab_size": vocab_size,
        "teacher": teacher,
        "rows": rows,
        "sequences": n_sequences,
        "positions": positions,
        "bytes": total_bytes,
        "bytes_per_position": total_bytes / max(positions, 1),
        "teacher_seconds": seconds,
        "shard_files": names,
    }
    write_file(out / MANIFEST, json.dumps(manifest, indent=2))
    logger.info(
        "teacher-logits: %d positions of %d sequences, %.1f bytes per position, teacher pass %.1f s -> %s",
        positions,
        n_sequences,
        manifest["bytes_per_position"],
        seconds,
        out,
    )


CONFIG = TeacherLogitsConfig  # the keys `--help` lists


def help_text() -> str:
    return f"{__doc__}\nrecipes: {', '.join(recipe_choices())}"


def main(argv: list[str]) -> int:
    """Run the command on its ``key=value`` arguments (``lprecover.command.run`` adds ``--help`` and error lines)."""
    cfg = load_config(TeacherLogitsConfig, argv, recipe_key="recipe")
    with exclusive_output(cfg.store.out, "store.out"):
        write_store(cfg)
    return 0
