"""``python -m lprecover.evaluation`` (and ``accelerate launch -m lprecover.evaluation``): the same as ``lprecover eval``."""

import sys

from lprecover.command import run
from lprecover.evaluation import cli

sys.exit(run("eval", cli))
