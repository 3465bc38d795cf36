"""W&B for recovery runs: name, group and tags from the recipe, offline without credentials, resumed with the run.

The run is started here (main process only) before the Trainer's own W&B callback, which then logs into it.
"""

import json
import netrc
import os
import uuid
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
    import wandb

    record = out / WANDB_FILE
    run_id = json.loads(record.read_text())["id"] if record.exists() else uuid.uuid4().hex[:12]
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


def read_offline_run(run_dir: Path) -> dict:
    """Name, group, tags and logged metrics of an offline W&B run folder (``wandb/offline-run-*``), read from its
    ``.wandb`` transaction log (LevelDB-log framing: 32 KiB blocks of checksum/length/type-framed protobuf records).
    """
    import struct

    from wandb.proto import wandb_internal_pb2 as pb

    (log,) = Path(run_dir).glob("*.wandb")
    data, block, pos, pending = log.read_bytes(), 32768, 7, b""  # 7: the ':W&B' file header
    out = {"history": []}
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if kind == 0 and length == 0:
            break
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = pb.Record()
            record.ParseFromString(pending)
            pending = b""
            which = record.WhichOneof("record_type")
            if which == "run":
                r = record.run
                out |= {"id": r.run_id, "name": r.display_name, "group": r.run_group, "tags": list(r.tags)}
            elif which == "history":
                out["history"].append(
                    {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
                )
    return out
