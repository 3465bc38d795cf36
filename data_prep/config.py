"""What ``lprecover data`` builds (the ``data`` command's keys, and a recipe's build spec): a light module that
imports no model code and no ``datasets``."""

from dataclasses import dataclass, field

from data_prep.formats import FORMATS
from data_prep.sources import PARSERS, SOURCES
from lprecover.config import declare
from lprecover.evaluation.task_specs import get_spec
from lprecover.modeling import ModelConfig

MAX_CHAIN = 8  # the organism's longest chain (its plugin's MAX_STEPS; a test holds the two equal)


@dataclass
class OrganismData:
    """Organism problems: ``n`` chains of ``min_chain..max_chain`` steps drawn with ``seed``."""

    n: int = declare(2000, help="Number of problems.", ge=1)
    min_chain: int = declare(1, help="Shortest chain, in steps.", ge=1, le=MAX_CHAIN, le_field="max_chain")
    max_chain: int = declare(8, help="Longest chain, in steps.", ge=1, le=MAX_CHAIN)
    seed: int = declare(0, help="Generator seed (evaluation draws with a different one).", ge=0)


@dataclass
class TeacherTraces:
    """Sequence-level distillation data: the teacher (``model``) answers problems from ``problems``."""

    problems: str = declare(
        "organism", help="organism, or a math source (gsm8k, math, ...).", choices=("organism", *PARSERS)
    )
    budget: int = declare(4096, help="Thinking budget per trace (tokens).", ge=1)
    answer_max_tokens: int = declare(1024, help="Cap on the answer written after thinking.", ge=1)
    temperature: float = declare(0.0, help="0 = greedy.", ge=0)
    top_p: float = declare(1.0, help="Nucleus sampling.", gt=0, le=1)
    keep_verified: bool = declare(True, help="Keep only traces whose final answer is correct.")
    batch_size: int = declare(64, help="Generation batch size.", ge=1)


@dataclass
class DataConfig:
    """What to build and the checks it passes through."""

    source: str = declare("organism", help=f"One of: {', '.join(SOURCES)}.", choices=SOURCES)
    path: str | None = declare(None, help="Local file or save_to_disk folder instead of the hub.")
    hub_id: str | None = declare(None, help="Override the source's hub dataset id.")
    hub_split: str = declare("train", help="Hub split.")
    fields: dict[str, str] = declare(default_factory=dict, help="source=jsonl: {question:, answer:, trace:}.")
    split: str = declare(
        "longcot", help="longcot (trace + answer) or short (answer only).", choices=("longcot", "short")
    )
    model: ModelConfig = declare(default_factory=ModelConfig, help="Tokenizer and chat template (model=...).")
    format: str = declare("auto", help=f"Thinking format: {', '.join(FORMATS)}.", choices=FORMATS)
    max_length: int | None = declare(None, help="Drop rows longer than this many tokens; None keeps all.", ge=1)
    dedup: bool = declare(True, help="Drop exact and near duplicate problems.")
    near_dup_threshold: float = declare(
        0.85,
        help="Token-3-gram Jaccard that marks a near duplicate (numbers and operators must match too).",
        gt=0,
        le=1,
    )
    decontaminate: list[str] = declare(
        default_factory=list, help="Evaluation tasks to decontaminate against.", unique=True
    )
    eval_paths: dict[str, str] = declare(default_factory=dict, help="Local files of those tasks.")
    ngram: int = declare(13, help="Words in a decontamination n-gram.", ge=1)
    strict: bool = declare(True, help="Fail on an unparseable row (false: skip and count it).")
    limit: int | None = declare(None, help="Use only the first N source rows; None uses all.", ge=1)
    organism: OrganismData = field(default_factory=OrganismData)
    teacher: TeacherTraces = field(default_factory=TeacherTraces)
    output_dir: str = declare("", help="Output folder.", output_dir=True)
    output_format: str = declare("disk", help="disk (datasets.save_to_disk) or jsonl.", choices=("disk", "jsonl"))
    overwrite: bool = declare(False, help="Rebuild an output_dir that holds other data.")

    def __post_init__(self):
        if not self.output_dir:
            raise ValueError("output_dir is required, e.g. output_dir=data/gsm8k_short.")
        if self.source == "jsonl" and not self.path:
            raise ValueError(
                "source=jsonl needs path=FILE and, if its keys differ, fields={question: ..., answer: ...}."
            )

        for task in self.decontaminate:
            get_spec(task, "decontaminate")
