"""``python -m lprecover.organism`` (and ``accelerate launch -m lprecover.organism``): the same as ``lprecover organism``."""

import sys

from lprecover.command import run
from lprecover.organism import cli

sys.exit(run("organism", cli))
