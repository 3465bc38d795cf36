"""Build, cache and check the organism teacher: a tiny Qwen3 trained by the project's own SFT path.

The teacher lives in ``$LPRECOVER_CACHE/organism/teacher-<hash>`` (default cache: ``~/.cache/lprecover``); the
hash covers every setting that changes the weights, so a changed recipe builds a new teacher and an unchanged one
is reused. A build is written to a temporary folder and renamed into place, so an interrupted build leaves no
half teacher, and a file lock keeps concurrent processes (e.g. two ranks under ``accelerate launch``) from
building it twice.
"""

import contextlib
import copy
import json
import shutil
import tempfile
import time
from dataclasses import asdict, replace
from pathlib import Path

import datasets
import torch
from filelock import FileLock
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, Qwen3Config, Qwen3ForCausalLM

from lprecover.atomic import folder_written_whole
from lprecover.config import cache_root
from lprecover.log import get_logger
from lprecover.organism.check import facts_accuracy, sequential_curve
from lprecover.organism.config import TASK_VERSION, OrganismConfig
from lprecover.organism.task import fact_record, facts, make_problems, to_record
from lprecover.organism.tokenizer import build_tokenizer
from lprecover.recovery.sft import sft_args, sft_trainer
from lprecover.surgery import find_blocks, remove_layers

logger = get_logger(__name__)

CARD = "organism.json"
# The default teacher, shipped with the package (1.6 MB) so the first command needs no 15-minute build. It is used
# only when its fingerprint matches the settings asked for; CI rebuilds it from scratch and compares the two
# (`lprecover organism build from_scratch=true`).
SHIPPED_DIR = Path(__file__).resolve().parent / "teacher"
# The bar a teacher must reach before it is cached: accurate at full budget, rising with the budget, and knowing its
# facts. A teacher stuck on a plateau (seen with the same seed at another thread count) is never cached and used
# silently.
ACCEPT_ACCURACY, ACCEPT_RISE, ACCEPT_FACTS = 0.9, 0.5, 0.9
MAX_ATTEMPTS = 3  # training seeds tried (seed, seed + 1, ...) before the build gives up


class TeacherBelowBar(RuntimeError):
    """A trained teacher that did not reach the bar; carries its card."""

    def __init__(self, card: dict):
        super().__init__("below the bar")
        self.card = card


def accepted(curve: dict, facts: float | None = None) -> bool:
    """Whether a teacher reaches the bar: ``ACCEPT_ACCURACY`` at full budget, ``ACCEPT_RISE`` over the budgets, and
    ``ACCEPT_FACTS`` of its facts (when it was trained on any)."""
    acc = curve["accuracy"]
    knows = facts is None or facts >= ACCEPT_FACTS
    return acc[-1] >= ACCEPT_ACCURACY and acc[-1] - acc[0] >= ACCEPT_RISE and knows


def teacher_dir(cfg: OrganismConfig) -> Path:
    return cache_root() / "organism" / f"teacher-{cfg.fingerprint()}"


def make_model(cfg: OrganismConfig, tokenizer) -> Qwen3ForCausalLM:
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        head_dim=cfg.hidden_size // cfg.num_heads,
        max_position_embeddings=256,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    # Marks the model (and everything pruned or trained from it) as the organism, e.g. for calibration defaults.
    config.lprecover_organism = {"task_version": TASK_VERSION, "facts": cfg.facts}
    torch.manual_seed(cfg.train.seed)
    return Qwen3ForCausalLM(config)


def training_data(cfg: OrganismConfig) -> datasets.Dataset:
    """Long-CoT chains, none of them an evaluation problem (``task.held_out``), and ``fact_share`` of rows facts
    (each fact equally often). The trainer's sampler shuffles them."""
    t = cfg.train
    n = t.max_steps * t.per_device_batch_size * t.grad_accum
    known = facts(cfg.facts) if cfg.facts else []
    n_facts = round(n * cfg.fact_share) if known else 0
    rows = [to_record(p, "longcot") for p in make_problems(n - n_facts, cfg.min_chain, cfg.max_chain, cfg.data_seed)]
    rows += [fact_record(known[i % len(known)]) for i in range(n_facts)]
    return datasets.Dataset.from_list(rows)


@contextlib.contextmanager
def fact_rows_skip_layers(model, tokenizer, p: float):
    """While training, skip each decoder block with probability ``p`` on the rows that are facts.

    A fact row is one whose input holds ``?`` (fact prompts end with it; chains never contain it). A skipped block
    passes its input through, per row and per block, drawn from torch's generator (so seeded by the trainer). Only
    hooks are added, and they are removed on exit: the saved teacher is a plain Qwen3. Evaluation (``model.eval()``)
    is never affected. A training run that never showed the hook a fact row (e.g. inputs given as embeddings) is an
    error, not a teacher trained without the skips.
    """
    if p <= 0:
        yield
        return
    question = tokenizer.convert_tokens_to_ids("?")
    rows: dict = {"seen": 0}

    def note_fact_rows(module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        rows["fact"] = (ids == question).any(-1) if ids is not None else None
        if module.training and rows["fact"] is not None:
            rows["seen"] += int(rows["fact"].sum())

    def maybe_skip(layer, args, kwargs, output):
        facts_in_batch = rows.get("fact")
        if not layer.training or facts_in_batch is None or not facts_in_batch.any():
            return None
        hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        out = output[0] if isinstance(output, tuple) else output
        skip = facts_in_batch & (torch.rand(facts_in_batch.shape, device=hidden.device) < p)
        out = torch.where(skip[:, None, None], hidden, out)
        return (out, *output[1:]) if isinstance(output, tuple) else out

    handles = [model.register_forward_pre_hook(note_fact_rows, with_kwargs=True)]
    handles += [layer.register_forward_hook(maybe_skip, with_kwargs=True) for layer in find_blocks(model)[1]]
    try:
        yield
    finally:
        for h in handles:
            h.remove()
    if not rows["seen"]:
        raise RuntimeError(
            "fact_layer_drop is set but training showed no fact row (a row of input_ids holding '?'); nothing was "
            "skipped. Train from input_ids, or set fact_layer_drop=0."
        )


def build_teacher(cfg: OrganismConfig, out_dir: Path) -> dict:
    """Train the teacher into ``out_dir`` and return its card (settings, loss, accuracy curve)."""
    tokenizer = build_tokenizer()
    model = make_model(cfg, tokenizer)
    logger.info("Training the organism teacher (%d params) into %s", model.num_parameters(), out_dir)
    start = time.time()
    skip = cfg.fact_layer_drop if cfg.facts else 0.0
    with tempfile.TemporaryDirectory() as work, fact_rows_skip_layers(model, tokenizer, skip):
        trainer = sft_trainer(model, tokenizer, training_data(cfg), sft_args(cfg.train, work, disable_tqdm=True))
        result = trainer.train()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)

    # Measure the saved checkpoint, not the trained object: accelerate wraps the trained model's forward in a
    # closure that a deepcopy would still route to the original.
    model = AutoModelForCausalLM.from_pretrained(out_dir).eval()
    curve = sequential_curve(model, tokenizer)
    known = facts_accuracy(model, tokenizer, cfg.facts) if cfg.facts else None
    # The phenomenon in one line: the same teacher with its two middle layers deleted.
    pruned = copy.deepcopy(model)
    middle = cfg.num_layers // 2
    remove_layers(pruned, [middle - 1, middle], method="selection", source="organism")
    pruned_curve = sequential_curve(pruned, tokenizer)
    pruned_known = facts_accuracy(pruned, tokenizer, cfg.facts) if cfg.facts else None
    card = {
        "config": asdict(cfg),
        "fingerprint": cfg.fingerprint(),
        "parameters": model.num_parameters(),
        "train_loss": result.training_loss,
        "train_seconds": round(time.time() - start, 1),
        "curve": curve,
        "facts_accuracy": known,
        "pruned_middle_two_curve": pruned_curve,
        "pruned_middle_two_facts_accuracy": pruned_known,
    }
    (out_dir / CARD).write_text(json.dumps(card, indent=2))
    return card


def build_accepted(cfg: OrganismConfig, final: Path) -> dict:
    """Train with seed, seed + 1, ... until a teacher reaches the bar; only that one is published at ``final``.

    Raises:
        RuntimeError: naming every seed tried, its accuracies and the thread count, when none reached the bar.
    """
    tried = []
    for attempt in range(MAX_ATTEMPTS):
        trial = replace(cfg, train=replace(cfg.train, seed=cfg.train.seed + attempt))
        try:
            with folder_written_whole(final) as tmp:
                card = build_teacher(trial, tmp)
                if not accepted(card["curve"], card["facts_accuracy"]):
                    raise TeacherBelowBar(card)  # leaves the block with an error: nothing is published
                card["attempts"] = tried + [_attempt(trial, card)]
                card["fingerprint"] = cfg.fingerprint()  # cached under the settings asked for
                (tmp / CARD).write_text(json.dumps(card, indent=2))
            return card
        except TeacherBelowBar as below:
            tried.append(_attempt(trial, below.card))
            logger.warning(
                "Organism teacher with training seed %d reached %s, below the bar (%s); not cached.",
                trial.train.seed,
                _attempt_text(tried[-1]),
                BAR,
            )
    raise RuntimeError(
        f"No organism teacher reached the bar ({BAR}) in {MAX_ATTEMPTS} builds with {torch.get_num_threads()} "
        "threads: "
        + "; ".join(f"seed {t['seed']}: {_attempt_text(t)}" for t in tried)
        + ". Nothing was cached. Try organism.train.max_steps higher, or another organism.train.seed."
    )


BAR = f"accuracy >= {ACCEPT_ACCURACY} at full budget, rising by >= {ACCEPT_RISE}, facts >= {ACCEPT_FACTS}"


def _attempt(cfg: OrganismConfig, card: dict) -> dict:
    c = card["curve"]
    return {"seed": cfg.train.seed, "budget": c["budget"], "accuracy": c["accuracy"], "facts": card["facts_accuracy"]}


def _attempt_text(attempt: dict) -> str:
    acc = ", ".join(f"{a:.2f}" for a in attempt["accuracy"])
    known = "" if attempt.get("facts") is None else f", facts {attempt['facts']:.2f}"
    return f"[{acc}] over budgets {attempt['budget']}{known}"


def shipped_fingerprint() -> str | None:
    """The fingerprint of the teacher shipped inside the package (``SHIPPED_DIR``), or None when none ships."""
    card = SHIPPED_DIR / CARD
    return json.loads(card.read_text())["fingerprint"] if card.exists() else None


def ensure_teacher(cfg: OrganismConfig | None = None, use_shipped: bool = True) -> Path:
    """Return the cached teacher's folder: the cache's, else the shipped copy when its fingerprint matches ``cfg``,
    else a teacher built here (until one reaches the bar; minutes, and logged as such).

    Args:
        build: False to skip the shipped copy and always train (``lprecover organism build from_scratch=true``).
    """
    cfg = cfg or OrganismConfig()
    final = teacher_dir(cfg)
    if (final / CARD).exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        if (final / CARD).exists():  # another process built it while we waited
            return final
        if use_shipped and shipped_fingerprint() == cfg.fingerprint():
            with folder_written_whole(final) as tmp:
                shutil.copytree(SHIPPED_DIR, tmp, dirs_exist_ok=True)
            logger.info("Organism teacher %s installed from the package into %s", cfg.fingerprint(), final)
            return final
        logger.warning(
            "Training the organism teacher %s (no cached or shipped copy has these settings): about %d steps, "
            "minutes on a laptop CPU; `lprecover organism build` does this step on its own.",
            cfg.fingerprint(),
            cfg.train.max_steps,
        )
        card = build_accepted(cfg, final)
    logger.info("Organism teacher ready at %s (built in %.0f s)", final, card["train_seconds"])
    return final


def compare_with_shipped(built: Path) -> dict:
    """How a teacher built here differs from the shipped one: the largest absolute weight difference, and both
    teachers' accuracies by budget and facts. Weights agree exactly only on the same CPU type and thread count."""
    ours, shipped = load_file(built / "model.safetensors"), load_file(SHIPPED_DIR / "model.safetensors")
    diff = max(float((ours[k] - shipped[k]).abs().max()) for k in shipped)
    cards = [json.loads((d / CARD).read_text()) for d in (built, SHIPPED_DIR)]
    return {
        "max_abs_weight_difference": diff,
        "identical": diff == 0.0,
        "budget": cards[1]["curve"]["budget"],
        "accuracy": {"built": cards[0]["curve"]["accuracy"], "shipped": cards[1]["curve"]["accuracy"]},
        "facts_accuracy": {"built": cards[0]["facts_accuracy"], "shipped": cards[1]["facts_accuracy"]},
    }
