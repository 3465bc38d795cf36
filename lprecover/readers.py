"""The one reader of the JSON and JSON-lines files a user points lprecover at.

A file that is missing, empty where rows are needed, or broken on some line is the user's to fix, so every error
is a ``ConfigError`` naming the file, the key it was given as, and the real line number.
"""

import json
from pathlib import Path
from typing import Any

from lprecover.config import ConfigError


def _where(path: Path, what: str | None) -> str:
    return f"{what} '{path}'" if what else f"'{path}'"


def read_jsonl(path: str | Path, what: str | None = None, allow_empty: bool = True) -> list[dict]:
    """Every row of a jsonl file, in order; blank lines are skipped.

    Args:
        what: the key that named the file (e.g. ``data.dataset``), for the message.
        allow_empty: False refuses a file without rows.

    Raises:
        ConfigError: the file is missing or not UTF-8 text, a line is not one JSON object, or (``allow_empty``
            False) it holds no rows.
    """
    path = Path(path)
    where = _where(path, what)
    if not path.is_file():
        raise ConfigError(f"{where} is not a file.")
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ConfigError(f"Line {number} of {where} is not JSON: {e.msg} at column {e.colno}.") from None
                if not isinstance(row, dict):
                    raise ConfigError(
                        f"Line {number} of {where} is a JSON {type(row).__name__}, not an object (one row per line)."
                    )
                rows.append(row)
    except UnicodeDecodeError:
        raise ConfigError(f"{where} is not UTF-8 text; give a .jsonl file, one JSON object per line.") from None
    if not rows and not allow_empty:
        raise ConfigError(f"{where} holds no rows.")
    return rows


def read_json(path: str | Path, what: str | None = None) -> Any:
    """The JSON document in ``path``; a ``ConfigError`` names the file and line when it is missing or broken."""
    path = Path(path)
    where = _where(path, what)
    if not path.is_file():
        raise ConfigError(f"{where} is not a file.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ConfigError(f"{where} is not JSON: {e.msg} at line {e.lineno}, column {e.colno}.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where} is not UTF-8 text.") from None
