"""``python -m lprecover.compare``: the same as ``lprecover compare``."""

import sys

from lprecover.command import run
from lprecover.compare import cli

sys.exit(run("compare", cli))
