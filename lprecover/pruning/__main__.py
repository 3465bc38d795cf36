"""``python -m lprecover.pruning`` (and ``accelerate launch -m lprecover.pruning``): the same as ``lprecover prune``."""

import sys

from lprecover.command import run
from lprecover.pruning import cli

sys.exit(run("prune", cli))
