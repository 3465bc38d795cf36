"""Build or inspect the embedded reasoning model: ``lprecover organism build|info``."""

import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from lprecover.config import ConfigError, declare, load_config, valid_keys
from lprecover.log import get_logger
from lprecover.organism.build import (
    CARD,
    OrganismConfig,
    build_accepted,
    compare_with_shipped,
    ensure_teacher,
    shipped_fingerprint,
    teacher_dir,
)

logger = get_logger(__name__)

HELP = """usage: lprecover organism build|info [organism.KEY=VALUE ...]

  build  train the teacher (or reuse the cached one) and print its accuracy against the thinking budget
  info   print where the teacher is cached and its card, without building

Organism training data comes from the shared builder: lprecover data source=organism split=short options.max_chain=4 ...

keys: {keys}
"""


@dataclass
class OrganismCommand:
    """``lprecover organism build|info``: the teacher's settings (its cache folder is named by their hash)."""

    organism: OrganismConfig = declare(
        help="The teacher: architecture, training data and optimisation.", default_factory=OrganismConfig
    )
    from_scratch: bool = declare(
        False,
        help="build: train a teacher in a temporary folder even where the shipped one matches, check it against "
        "the bar, and compare it with the shipped copy (CI runs this).",
    )


def _print_curve(card: dict) -> None:
    curve = card["curve"]
    print(f"organism teacher: {card['parameters']:,} parameters, trained in {card['train_seconds']} s")
    print("thinking budget (tokens):  " + "  ".join(f"{b:>5}" for b in curve["budget"]))
    print("accuracy, chains 1..8:     " + "  ".join(f"{a:>5.2f}" for a in curve["accuracy"]))
    pruned = card.get("pruned_middle_two_curve")
    if pruned:
        print("two middle layers removed: " + "  ".join(f"{a:>5.2f}" for a in pruned["accuracy"]))
    if card.get("facts_accuracy") is not None:
        after = card.get("pruned_middle_two_facts_accuracy")
        print(
            f"memorised facts recalled:  {card['facts_accuracy']:.2f}"
            + ("" if after is None else f" ({after:.2f} with the two middle layers removed)")
        )


def _from_scratch(cfg: OrganismConfig) -> int:
    if shipped_fingerprint() != cfg.fingerprint():
        raise ConfigError(
            f"No shipped teacher has these settings (fingerprint {cfg.fingerprint()}, shipped "
            f"{shipped_fingerprint()}); from_scratch=true compares a rebuild with the shipped default teacher."
        )
    with tempfile.TemporaryDirectory() as tmp:
        built = Path(tmp) / "teacher"
        build_accepted(cfg, built)  # raises, naming every seed tried, when no teacher reaches the bar
        report = compare_with_shipped(built)
    print(json.dumps(report, indent=1))
    print(
        "rebuilt teacher reaches the bar; its weights are "
        + ("identical to the shipped copy" if report["identical"] else "not bit-identical to the shipped copy")
    )
    return 0


def help_text() -> str:
    return HELP.format(keys=", ".join(valid_keys(OrganismCommand)))


def main(argv: list[str]) -> int:
    """Run ``build`` or ``info`` (``lprecover.command.run`` adds ``--help`` and error lines)."""
    if not argv:
        raise ConfigError("Give an action: `lprecover organism build|info [organism.KEY=VALUE ...]`.")
    if argv[0] not in ("build", "info"):
        raise ConfigError(f"Unknown action '{argv[0]}': use `lprecover organism build|info [organism.KEY=VALUE ...]`.")
    action, rest = argv[0], argv[1:]
    command = load_config(OrganismCommand, rest)
    cfg = command.organism
    if action == "build" and command.from_scratch:
        return _from_scratch(cfg)
    if action == "info":
        path = teacher_dir(cfg)
        print(path)
        if (path / CARD).exists():
            _print_curve(json.loads((path / CARD).read_text()))
        else:
            print("not built yet: run `lprecover organism build`", file=sys.stderr)
        return 0
    path = ensure_teacher(cfg)
    print(path)
    _print_curve(json.loads((path / CARD).read_text()))
    return 0
