"""How every command starts, whichever way it is launched (``lprecover NAME``, ``python -m``, ``accelerate launch``).

A command is a module with ``main(argv)``, a docstring that opens its help, and ``CONFIG``, the dataclass whose
declared keys ``--help`` lists (a module may instead define ``help_text()``). :func:`run` owns the two things every
entrance needs: ``--help``, and turning the user's mistakes (``ConfigError``, a busy output folder) into one line and
exit status 2, while any other error keeps its traceback.
"""

import sys
from types import ModuleType

from lprecover.atomic import FolderBusy
from lprecover.config import ConfigError, valid_keys


def help_text(module: ModuleType) -> str:
    """The module's own ``help_text()``, else its docstring and its ``CONFIG``'s keys."""
    if hasattr(module, "help_text"):
        return module.help_text()
    keys = ", ".join(valid_keys(module.CONFIG)) if hasattr(module, "CONFIG") else ""
    return (module.__doc__ or "").rstrip() + (f"\n\nkeys: {keys}" if keys else "")


def run(name: str, module: ModuleType, argv: list[str] | None = None) -> int:
    """Run command ``name`` (``module.main``) on ``argv``; return its exit status.

    Args:
        argv: the arguments after the command's name (default: ``sys.argv[1:]``).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in ("-h", "--help"):
        print(help_text(module))
        return 0
    try:
        return module.main(argv) or 0
    except (ConfigError, FolderBusy) as e:  # the user's to fix: one line; any other error keeps its traceback
        print(f"lprecover {name}: {e}", file=sys.stderr)
        return 2
