"""The ``lprecover`` command: ``lprecover COMMAND [key=value ...]``."""

import ast
import importlib
import importlib.metadata
import importlib.util
import sys

from lprecover.command import run

COMMAND_GROUP = "lprecover.commands"  # plugins add commands here: NAME = "their.module" (with main(argv))

# command -> (module with main(argv), one-line help). Modules import lazily so `--help` stays instant.
CORE = {
    "prune": ("lprecover.pruning.cli", "Remove decoder layers by a criterion and save the pruned model."),
    "data": (
        "data_prep.build",
        "Build training data in the messages schema: GSM8K, MATH, s1K, OpenR1, teacher traces.",
    ),
    "eval": ("lprecover.evaluation.cli", "Test-time scaling curves: budget-forced accuracy, pass@k and maj@k."),
    "study": (
        "lprecover.study",
        "The whole study: prune 1 and 2 layers, recover with each recipe, evaluate, compare.",
    ),
    "compare": (
        "lprecover.compare.cli",
        "Overlay the scaling curves of teacher, pruned and recovered runs; report.md.",
    ),
    "export": ("lprecover.export", "Merge, verify and card a recovered checkpoint (optionally push it to the hub)."),
    "diagnose": (
        "lprecover.diagnose.cli",
        "Remove each layer alone: what breaks reasoning, knowledge, trace NLL; criteria fidelity; think/answer swap.",
    ),
    "analyze": ("lprecover.analysis", "Trace analysis: self-BLEU, reflection markers, repetition, thinking length."),
    "teacher-logits": (
        "lprecover.recovery.teacher_logits",
        "Store the teacher's top-k log-probabilities over a recipe's data once, for distill.teacher_logits=DIR.",
    ),
    "recipes": ("lprecover.shipped", "List the shipped recipes and accelerate configs, or copy a recipe out to edit."),
    "train": (
        "lprecover.train",
        "Recover a pruned model with a recipe (SFT, LoRA, distillation); = lprecover/train.py.",
    ),
}


def first_doc_line(module: str) -> str:
    """The first line of a module's docstring, read from its source without importing it (plugins may be heavy)."""
    spec = importlib.util.find_spec(module)
    doc = ast.get_docstring(ast.parse(open(spec.origin).read())) if spec and spec.origin else None
    return (doc or "").strip().splitlines()[0] if doc else ""


def all_commands() -> dict[str, tuple[str, str]]:
    """The core commands, then those the installed plugins declare (entry point group ``lprecover.commands``)."""
    found = dict(CORE)
    for entry in importlib.metadata.entry_points(group=COMMAND_GROUP):
        found.setdefault(entry.name, (entry.value, first_doc_line(entry.value)))
    return found


COMMANDS = all_commands()

USAGE = """usage: lprecover COMMAND [key=value ...]

Prune whole layers out of an LLM, try to recover them, and measure whether test-time scaling came back.
Arguments are dotted key=value overrides; `lprecover COMMAND --help` lists a command's keys.

commands:
{commands}
"""


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = "\n".join(f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items())
    return USAGE.format(commands=lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"lprecover: unknown command '{name}'.\n\n{usage()}", file=sys.stderr)
        return 2
    return run(name, importlib.import_module(COMMANDS[name][0]), rest)


if __name__ == "__main__":
    sys.exit(main())
