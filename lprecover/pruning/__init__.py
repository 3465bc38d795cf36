"""Layer pruning criteria and the prune API (surgery itself lives in ``lprecover.surgery``)."""

from lprecover.pruning.criteria import CRITERIA, Decision
from lprecover.pruning.prune import PruneConfig, prune_model, save_pruned

__all__ = ["CRITERIA", "Decision", "PruneConfig", "prune_model", "save_pruned"]
