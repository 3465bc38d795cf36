"""``lprecover organism build|info|data``: the embedded reasoning model."""

import json
import sys
from dataclasses import dataclass, field

import datasets

from lprecover.config import load_config, valid_keys
from lprecover.log import get_logger
from lprecover.organism.build import CARD, OrganismConfig, ensure_teacher, teacher_dir
from lprecover.organism.task import make_problems, to_record

logger = get_logger(__name__)

HELP = """usage: lprecover organism build|info [organism.KEY=VALUE ...]
       lprecover organism data output_dir=DIR [split=longcot|short] [n=N] [min_chain=1] [max_chain=8] [seed=0]

  build  train the teacher (or reuse the cached one) and print its accuracy against the thinking budget
  info   print where the teacher is cached and its card, without building
  data   write organism problems in the messages schema (save_to_disk), e.g. recovery data of short chains

keys: {keys}
"""


@dataclass
class OrganismCommand:
    organism: OrganismConfig = field(default_factory=OrganismConfig)


@dataclass
class DataCommand:
    output_dir: str = field(default="", metadata={"help": "Where to save the dataset (datasets.save_to_disk)."})
    split: str = field(default="longcot", metadata={"help": "longcot (thinking + answer) or short (answer only)."})
    n: int = field(default=2000, metadata={"help": "Number of problems."})
    min_chain: int = field(default=1, metadata={"help": "Shortest chain."})
    max_chain: int = field(default=8, metadata={"help": "Longest chain."})
    seed: int = field(default=0, metadata={"help": "Generator seed."})

    def __post_init__(self):
        if not self.output_dir:
            raise ValueError("output_dir is required, e.g. output_dir=data/organism_short.")
        if self.split not in ("longcot", "short"):
            raise ValueError(f"split must be 'longcot' or 'short', got '{self.split}'.")


def _print_curve(card: dict) -> None:
    curve = card["curve"]
    print(f"organism teacher: {card['parameters']:,} parameters, trained in {card['train_seconds']} s")
    print("thinking budget (tokens):  " + "  ".join(f"{b:>5}" for b in curve["budget"]))
    print("accuracy, chains 1..8:     " + "  ".join(f"{a:>5.2f}" for a in curve["accuracy"]))
    pruned = card.get("pruned_middle_two_curve")
    if pruned:
        print("two middle layers removed: " + "  ".join(f"{a:>5.2f}" for a in pruned["accuracy"]))


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in ("build", "info", "data"):
        print(HELP.format(keys=", ".join(valid_keys(OrganismCommand))))
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    action, rest = argv[0], argv[1:]
    if action == "data":
        cfg = load_config(DataCommand, rest)
        rows = [to_record(p, cfg.split) for p in make_problems(cfg.n, cfg.min_chain, cfg.max_chain, cfg.seed)]
        datasets.Dataset.from_list(rows).save_to_disk(cfg.output_dir)
        logger.info("Wrote %d %s problems (chains %d..%d) to %s", cfg.n, cfg.split, cfg.min_chain, cfg.max_chain, cfg.output_dir)
        return 0
    cfg = load_config(OrganismCommand, rest).organism
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
