"""The organism teacher's settings (``lprecover organism build organism.KEY=VALUE``): a light module, read when a
config names the organism, without the training code of ``build.py``."""

import hashlib
import json
from dataclasses import asdict, dataclass

from lprecover.config import declare
from lprecover.organism.task import MAX_STEPS, N_FACTS
from lprecover.recovery.train_config import TrainConfig

# Bump when the task, its data or the tokenizer changes, so stale teachers are not reused. 5: evaluation problems
# (task.held_out) are no longer in the training data. 6: the 53-symbol task and memorised facts (issue #13).
TASK_VERSION = 6


def _teacher_train_defaults() -> TrainConfig:
    return TrainConfig(
        max_steps=1500,
        learning_rate=3e-3,
        warmup_ratio=0.2,
        per_device_batch_size=64,
        max_length=128,
        packing=False,
        logging_steps=50,
        save_steps=0,
        seed=0,
    )


@dataclass
class OrganismConfig:
    """The organism teacher: architecture, training data, and optimisation.

    Architecture: a Qwen3 decoder of ``num_layers`` blocks, ``hidden_size`` wide.
    Data: long-CoT chains of ``min_chain..max_chain`` steps drawn with ``data_seed``, and ``facts`` memorised facts
    at ``fact_share`` of the rows.

    Facts are trained with stochastic depth (``fact_layer_drop``): on a fact row each block is skipped at random, so
    recall is spread over the layers and survives the removal of one or two of them, as knowledge does in large
    models (arXiv 2510.22228). Without it the facts live in the same middle blocks the chains use and fall with them
    (100 facts at 25% of rows: recall 0.99, 0.42 with one block removed, 0.13 with two). This is a design choice of
    the organism, so that it shows the paper's pattern; it is not a finding about it. Chain rows train the whole
    depth.
    """

    hidden_size: int = declare(64, help="Residual width.", ge=1)
    # At least 2, so that there is something to prune and something left.
    num_layers: int = declare(6, help="Decoder blocks.", ge=2)
    num_heads: int = declare(4, help="Attention heads (head_dim = hidden_size / num_heads).", ge=1)
    intermediate_size: int = declare(256, help="MLP width.", ge=1)
    # Fact names are two capital letters (task.facts), so 26 * 26 distinct facts at most.
    facts: int = declare(N_FACTS, help="Memorised facts (the knowledge stand-in); 0 for none.", ge=0, le=26 * 26)
    fact_share: float = declare(0.4, help="Share of the training rows that are facts.", ge=0, lt=1)
    fact_layer_drop: float = declare(
        0.3,
        help="In training, each decoder block is skipped with this probability on fact rows (see facts).",
        ge=0,
        lt=1,
    )
    min_chain: int = declare(
        1, help="Shortest chain in the teacher's training data.", ge=1, le=MAX_STEPS, le_field="max_chain"
    )
    max_chain: int = declare(8, help="Longest chain in the teacher's training data.", ge=1, le=MAX_STEPS)
    data_seed: int = declare(1, help="Seed of the training problems.", ge=0)
    train: TrainConfig = declare(
        help="The teacher's optimisation (organism.train.*).", default_factory=_teacher_train_defaults
    )

    def __post_init__(self):
        if self.hidden_size % self.num_heads:
            raise ValueError(
                f"organism.hidden_size ({self.hidden_size}) must be divisible by organism.num_heads "
                f"({self.num_heads})."
            )
        if self.facts and not self.fact_share:
            raise ValueError(
                f"organism.fact_share is 0, so none of the {self.facts} facts would be trained; set organism.facts=0."
            )
        if self.fact_layer_drop and self.train.packing:
            raise ValueError(
                "organism.fact_layer_drop skips blocks on whole rows that hold a fact; with "
                "organism.train.packing=true chains share those rows. Set organism.train.packing=false or "
                "organism.fact_layer_drop=0."
            )

    def fingerprint(self) -> str:
        blob = json.dumps({"v": TASK_VERSION, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:10]
