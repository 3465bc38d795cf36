"""The one logger and progress bar every lprecover module uses."""

import logging
import os
import sys

from tqdm.auto import tqdm

_ROOT = "lprecover"


def get_logger(name: str) -> logging.Logger:
    """A child of the ``lprecover`` logger, which prints to stderr at ``LPRECOVER_LOG_LEVEL`` (default INFO)."""
    root = logging.getLogger(_ROOT)
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        root.addHandler(handler)
        root.setLevel(os.environ.get("LPRECOVER_LOG_LEVEL", "INFO").upper())
        root.propagate = False
    return logging.getLogger(name if name.startswith(_ROOT) else f"{_ROOT}.{name}")


def progress(iterable, desc: str, disable: bool = False, **kwargs):
    """A tqdm progress bar on stderr, off when ``disable`` or when stderr is not a terminal and CI is set."""
    return tqdm(iterable, desc=desc, disable=disable or bool(os.environ.get("CI")), dynamic_ncols=True, **kwargs)
