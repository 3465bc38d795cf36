"""What ``lprecover data`` builds (the ``data`` command's keys, and a recipe's build spec): a light module that
imports no model code and no ``datasets``."""

from dataclasses import dataclass, field
from typing import Any

from data_prep.formats import FORMATS
from data_prep.sources import PARSERS, SOURCES
from lprecover.config import ConfigError, declare, load_section, to_dict
from lprecover.evaluation.task_specs import get_spec
from lprecover.modeling import ModelConfig
from lprecover.registry import data_source, data_source_names, default

SOURCE_HELP = (
    f"A hub source ({', '.join(PARSERS)}), jsonl (a local file), teacher (traces the model writes), or a plugin's "
    "data source (the organism's chains: organism)."
)
OPTIONS_HELP = (
    "The data source's own keys, declared by its plugin, e.g. options.max_chain=4 for the organism's chains; unset "
    "keys take the source's defaults."
)


def check_source(source: str, key: str, built_in=SOURCES) -> None:
    """Refuse a data source that is neither built in nor registered by a plugin, naming the ones there are."""
    if source not in built_in and data_source(source) is None:
        known = [*built_in, *data_source_names()]
        raise ConfigError(f"{key} must be one of {', '.join(known)}; got {source!r}.")


def source_options(source: str, options: dict, prefix: str) -> Any:
    """The options of data source ``source`` read from ``options`` (the ``prefix`` section), as the source's
    declared dataclass; None for a source that declares none.

    Raises:
        ConfigError: for a key or value the source's declaration refuses, or options given to a source without any.
    """
    registered = data_source(source)
    if registered is None or registered.options is None:
        if options:
            raise ConfigError(
                f"{prefix.rstrip('.')} sets {', '.join(map(str, options))}, but the data source '{source}' takes no "
                "options: drop them, or pick a data source that declares them."
            )
        return None
    return load_section(registered.options, dict(options), prefix)


def filled_options(source: str, options: dict, prefix: str) -> dict:
    """``options`` checked and completed with the source's defaults: what a build's settings record, so that
    naming a default and leaving it unset make the same data set."""
    parsed = source_options(source, options, prefix)
    return to_dict(parsed) if parsed is not None else {}


@dataclass
class TeacherTraces:
    """Sequence-level distillation data: the teacher (``model``) answers problems from ``problems``."""

    problems: str = declare(
        help="A plugin's data source (default: the one a plugin names, the organism's chains), or a math source "
        "(gsm8k, ...).",
        default_factory=lambda: default("data_source"),
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

    source: str = declare(help=SOURCE_HELP, default_factory=lambda: default("data_source"))
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
    options: dict[str, Any] = declare(default_factory=dict, help=OPTIONS_HELP)
    teacher: TeacherTraces = field(default_factory=TeacherTraces)
    output_dir: str = declare("", help="Output folder.", output_dir=True)
    output_format: str = declare("disk", help="disk (datasets.save_to_disk) or jsonl.", choices=("disk", "jsonl"))
    overwrite: bool = declare(False, help="Rebuild an output_dir that holds other data.")

    def __post_init__(self):
        if not self.output_dir:
            raise ValueError("output_dir is required, e.g. output_dir=data/gsm8k_short.")
        check_source(self.source, "source")
        check_source(self.teacher.problems, "teacher.problems", built_in=tuple(PARSERS))
        source_options(self.problems_source(), self.options, "options.")  # checked here; filled where it is read
        if self.source == "jsonl" and not self.path:
            raise ValueError(
                "source=jsonl needs path=FILE and, if its keys differ, fields={question: ..., answer: ...}."
            )

        for task in self.decontaminate:
            get_spec(task, "decontaminate")

    def problems_source(self) -> str:
        """The source whose problems are drawn: the teacher's problems for ``source=teacher``."""
        return self.teacher.problems if self.source == "teacher" else self.source
