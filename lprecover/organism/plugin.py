"""The organism as a plugin: it registers its model, its traits, its tasks and its calibration text through the same
registries the rest of lprecover reads (``lprecover.registry``), from the ``lprecover.plugins`` entry point."""

from dataclasses import dataclass
from pathlib import Path

from lprecover.config import ConfigError, declare
from lprecover.organism.check import default_budgets
from lprecover.organism.config import TASK_VERSION, OrganismConfig
from lprecover.organism.task import MAX_STEPS, N_FACTS, fact_record, facts, make_problems, to_record
from lprecover.registry import (
    CalibrationSource,
    DataSource,
    ModelSource,
    ModelTraits,
    lazy,
    register_calibration,
    register_data_source,
    register_default,
    register_knowledge_set,
    register_model,
    register_task_dir,
    register_task_source,
    register_traits,
)

MARKER = "lprecover_organism"  # the key an organism checkpoint's config.json carries (build.py writes it)
TASK_FILES = Path(__file__).resolve().parent / "task_files"
VERIFY_CHAINS = (2, 6)  # the chains an export's verification generates from


@dataclass
class ChainData:
    """The organism's training problems (``data.options``): ``n`` chains of ``min_chain..max_chain`` steps drawn
    with ``seed``."""

    n: int = declare(2000, help="Number of problems.", ge=1)
    min_chain: int = declare(1, help="Shortest chain, in steps.", ge=1, le=MAX_STEPS, le_field="max_chain")
    max_chain: int = declare(MAX_STEPS, help="Longest chain, in steps.", ge=1, le=MAX_STEPS)
    seed: int = declare(0, help="Generator seed (evaluation draws with a different one).", ge=0)


def chain_range(options: dict, arg: str | None, name: str) -> tuple[int, int]:
    """The chain lengths ``(LO, HI)`` a chain task draws: its file's ``source_options``, or ``ARG`` = ``LO-HI``.

    Raises:
        ConfigError: for an ``ARG`` that cannot be read or asks for chains the organism cannot draw.
    """
    if arg is None:
        return options["min_chain"], options["max_chain"]
    lo, _, hi = arg.partition("-")
    try:
        chains = int(lo), int(hi or lo)
    except ValueError:
        raise ConfigError(
            f"Cannot read the chain range in task '{name}'; write organism:LO-HI, e.g. organism:5-8."
        ) from None
    if not 1 <= chains[0] <= chains[1] <= MAX_STEPS:
        why = (
            f"its LO ({chains[0]}) is above its HI ({chains[1]})"
            if chains[0] > chains[1]
            else f"the organism's chains have 1 to {MAX_STEPS} steps, not {chains[0]} to {chains[1]}"
        )
        raise ConfigError(
            f"task '{name}' cannot be drawn: {why}; write organism:LO-HI with 1 <= LO <= HI <= {MAX_STEPS}, "
            "e.g. organism:5-8."
        )
    return chains


class ChainSource:
    """Held-out chains (``task.held_out``: no training set holds them) of ``LO..HI`` steps; budgets by step."""

    def check(self, options: dict, arg: str | None, name: str) -> None:
        chain_range(options, arg, name)

    def rows(self, options: dict, arg: str | None, num_problems: int | None, seed: int, model: dict) -> list[dict]:
        lo, hi = chain_range(options, arg, "organism")
        drawn = make_problems(num_problems or 200, lo, hi, seed, split="eval")
        return [{"id": p.id, "question": p.problem, "answer": p.answer} for p in drawn]

    def budgets(self, options: dict, arg: str | None) -> list[int]:
        lo, hi = chain_range(options, arg, "organism")
        return default_budgets(hi, lo)


class FactSource:
    """The memorised facts, every one of them trained on by design: recall, answered with no thinking."""

    def check(self, options: dict, arg: str | None, name: str) -> None:
        pass

    def rows(self, options: dict, arg: str | None, num_problems: int | None, seed: int, model: dict) -> list[dict]:
        drawn = facts(model.get("facts") or N_FACTS)[: num_problems or None]
        return [{"id": f"fact-{f.name}", "question": f.prompt, "answer": f.answer} for f in drawn]

    def budgets(self, options: dict, arg: str | None) -> None:
        return None


def traits(config) -> ModelTraits | None:
    """The organism's defaults, for a checkpoint whose config carries the organism marker (pruned ones too)."""
    marker = getattr(config, MARKER, None)
    if not marker:
        return None
    known = marker.get("facts", N_FACTS) if isinstance(marker, dict) else N_FACTS  # 100 before configs said
    return ModelTraits(
        tasks=("organism_long", "organism_facts") if known else ("organism_long",),
        # The knowledge control needs no samples: the parallel curve is of the long chains.
        parallel_tasks=("organism_long",),
        answer_prefix="",  # trained to answer right after </think>
        calibration="organism",
        task_options={"facts": known},
        verify_prompts=lambda n: [p.problem for p in make_problems(n, *VERIFY_CHAINS, seed=123)],
    )


def _calibration_traces(n: int, seed: int) -> list[list[dict]]:
    return [to_record(p, "longcot")["messages"] for p in make_problems(n, 1, MAX_STEPS, seed)]


def _calibration_questions(n: int, seed: int) -> list[str]:
    return [p.problem for p in make_problems(n, 1, MAX_STEPS, seed)]


def _training_examples(options, split: str) -> list[dict]:
    """Chains for training (never a held-out evaluation problem), as ``options`` (a :class:`ChainData`) asks."""
    drawn = make_problems(options.n, options.min_chain, options.max_chain, options.seed)
    return [
        {"id": p.id, "problem": p.problem, "trace": p.trace if split == "longcot" else None, "answer": p.answer}
        for p in drawn
    ]


def register() -> None:
    # The build (and its training code) loads when the model is first resolved, not when a config names it.
    register_model(
        "organism",
        ModelSource(
            resolve=lazy("lprecover.organism.build:ensure_teacher"), num_layers=lambda: OrganismConfig().num_layers
        ),
    )
    register_traits(traits)
    register_task_source("organism_chains", ChainSource())
    register_task_source("organism_facts", FactSource())
    register_task_dir(TASK_FILES)
    register_calibration("organism", CalibrationSource(traces=_calibration_traces, questions=_calibration_questions))
    # The facts its teacher memorised, in the rows it was trained on: what recovery replays to keep them.
    register_knowledge_set("organism_facts", lambda: [fact_record(f) for f in facts()])
    # The embedded test subject: what a config that names no model or data uses.
    register_default("model", "organism")
    register_default("data_source", "organism")
    register_data_source(
        "organism",
        DataSource(examples=_training_examples, options=ChainData, version=TASK_VERSION, knowledge="organism_facts"),
    )
