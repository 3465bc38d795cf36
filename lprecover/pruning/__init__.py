"""Layer pruning: the criteria (``criteria``), their calibration text (``calibration``), the settings (``config``)
and the prune step (``prune``); surgery itself lives in ``lprecover.surgery``. Import from the modules: this file
imports nothing, so reading a prune spec loads no evaluation code."""
