"""``lprecover recipes [copy NAME [DEST]]``: the recipes and accelerate configs lprecover ships.

    lprecover recipes                      # each recipe with its first comment line, and the accelerate configs
    lprecover recipes copy lora_longcot    # write lora_longcot.yaml here to edit; then recipe=./lora_longcot.yaml

They sit at the top of a checkout (``recipes/``, ``accelerate_configs/``) and inside an installed wheel, so the same
names work from both: ``lprecover train recipe=NAME`` and ``accelerate launch --config_file PATH`` with a path listed
here.
"""

import shutil
from pathlib import Path

from lprecover.config import ACCELERATE_CONFIGS_DIR, RECIPES_DIR, ConfigError, recipe_path


def summary_line(path: Path) -> str:
    """A recipe's first comment line, without its ``# NAME:`` lead."""
    first = path.read_text().splitlines()[0] if path.read_text() else ""
    return first.lstrip("# ").split(": ", 1)[-1] if first.startswith("#") else ""


def listing() -> str:
    recipes = sorted(RECIPES_DIR.glob("*.yaml"))
    width = max(len(p.stem) for p in recipes)
    lines = ["recipes (lprecover train recipe=NAME):"]
    lines += [f"  {p.stem:<{width}}  {summary_line(p)}" for p in recipes]
    lines += ["", "accelerate configs (accelerate launch --config_file PATH):"]
    lines += [f"  {p}" for p in sorted(ACCELERATE_CONFIGS_DIR.glob("*.yaml"))]
    return "\n".join(lines)


def copy_out(name: str, dest: str | None = None) -> Path:
    """Copy recipe ``name`` to ``dest`` (a file or folder; default ``./NAME.yaml``), refusing to overwrite a file."""
    source = recipe_path(name)
    target = Path(dest or ".").expanduser()
    if target.is_dir():
        target = target / source.name
    if target.exists():
        raise ConfigError(f"'{target}' exists; give another destination: lprecover recipes copy {name} DEST.")
    shutil.copyfile(source, target)
    return target


def main(argv: list[str]) -> int:
    """List the shipped files, or copy a recipe out (``lprecover.command.run`` adds ``--help`` and error lines)."""
    if not argv:
        print(listing())
        return 0
    if argv[0] != "copy" or len(argv) not in (2, 3):
        raise ConfigError("Use `lprecover recipes` to list them, or `lprecover recipes copy NAME [DEST]`.")
    print(copy_out(*argv[1:]))
    return 0
