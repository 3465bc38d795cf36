"""W&B for recovery runs: name, group and tags from the recipe, offline without credentials, resumed with the run.

The run is started here (main process only) before the Trainer's own W&B callback, which then logs into it.
"""

import netrc
import os
from pathlib import Path

from lprecover.config import to_dict
from lprecover.log import get_logger
from lprecover.recovery.outputs import WANDB_FILE, write_json
from lprecover.recovery.recipe import RecoveryConfig

logger = get_logger(__name__)


def _has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def resolve_report_to(cfg: RecoveryConfig) -> str:
    """``wandb`` or ``none``; ``auto`` logs to W&B, offline when no credentials or WANDB_MODE are set."""
    if cfg.report_to == "none":
        return "none"
    try:
        import wandb  # noqa: F401
    except ImportError:
        if cfg.report_to == "wandb":
            raise
        return "none"
    if cfg.report_to == "auto" and not os.environ.get("WANDB_MODE") and not _has_credentials():
        os.environ["WANDB_MODE"] = "offline"
        logger.info("No W&B credentials: logging offline (upload later with `wandb sync`).")
    return "wandb"


def start_run(cfg: RecoveryConfig, out: Path) -> None:
    """Start (or resume, after a relaunch) this run's W&B run, under ``out/wandb``."""
    import json

    import wandb

    record = out / WANDB_FILE
    run_id = json.loads(record.read_text())["id"] if record.exists() else wandb.util.generate_id()
    run = wandb.init(
        project=cfg.wandb.project,
        entity=cfg.wandb.entity,
        name=cfg.run_name(),
        group=cfg.run_group(),
        tags=cfg.run_tags(),
        config=to_dict(cfg),
        dir=str(out),
        id=run_id,
        resume="allow",
    )
    write_json(record, {"id": run.id, "name": run.name, "group": cfg.run_group(), "tags": cfg.run_tags()})


def log_summary(summary: dict) -> None:
    """Put post-training evaluation numbers into the W&B run summary, e.g. ``eval/organism_long/acc@40``."""
    import wandb

    if wandb.run is not None:
        for task, metrics in summary.items():
            for name, value in metrics.items():
                wandb.run.summary[f"eval/{task}/{name}"] = value


def finish_run() -> None:
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is not None:
        wandb.finish()
