"""``lprecover compare``'s settings."""

from dataclasses import dataclass, field

from lprecover.config import declare
from lprecover.log import get_logger
from lprecover.tracking import WandbSettings

logger = get_logger(__name__)


@dataclass
class CompareCommand:
    """``lprecover compare``: the runs (folders or globs, or a W&B group), and where the comparison goes."""

    runs: list[str] | str = declare(
        default_factory=list,
        help="Run or evaluation folders, or a glob (non-run folders it matches are skipped).",
    )
    teacher: str | None = declare(None, help="The teacher's evaluation folder, named outright (with pruned=).")
    pruned: str | None = declare(
        None, help="The pruned base's evaluation folder; with teacher=, every folder of runs is a recovery."
    )
    wandb_group: str | None = declare(None, help="Pull the runs of this W&B group (online).")
    output_dir: str = declare("", help="Folder for comparison.png, report.md, summary.json.", output_dir=True)
    title: str = declare("", help="Figure and report title.")
    report_to: str = declare(
        "none",
        help="wandb (or auto: offline unless W&B is configured): log the figure and table to a run of its own.",
        choices=("wandb", "none", "auto"),
    )
    wandb: WandbSettings = field(default_factory=WandbSettings)
    bootstrap: int = declare(1000, help="Bootstrap resamples of the recovery measures' intervals.", ge=1)

    def __post_init__(self):
        if not self.output_dir:
            raise ValueError("output_dir is required, e.g. output_dir=runs/comparison.")
        if not self.runs and not self.wandb_group:
            raise ValueError("Nothing to compare: give runs=[DIR,...] (or a glob) or wandb_group=NAME.")
        if (self.teacher is None) != (self.pruned is None):
            raise ValueError("teacher= and pruned= go together: name both evaluation folders, or neither.")
