"""``python -m lprecover COMMAND ...``: the same as the ``lprecover`` command."""

import sys

from lprecover.cli import main

sys.exit(main())
