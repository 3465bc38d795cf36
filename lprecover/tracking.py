"""W&B for every lprecover run: training, evaluation and comparison.

Runs are started here (main process only) before the Trainer's own W&B callback, which then logs into them. Without
credentials or ``WANDB_MODE`` they are offline (``wandb sync`` uploads them later). Evaluation curves are logged
against their own x-axes (thinking budget, k) through ``define_metric``, so runs of one group overlay in W&B's
grouped panels. ``read_offline_run`` reads an offline run back, for tests and for ``compare``.
"""

import json
import netrc
import os
import struct
import uuid
from dataclasses import dataclass
from pathlib import Path

from lprecover.atomic import write_file
from lprecover.config import declare
from lprecover.log import get_logger

logger = get_logger(__name__)

WANDB_FILE = "wandb_run.json"


@dataclass
class WandbSettings:
    """W&B naming. Empty fields are filled by the command: for training, name = recipe-model-prune and group =
    model-prune (so a study's recipes on one pruned model sit together), tags = method, trainable, prune spec,
    model, data."""

    project: str = declare("lprecover", help="W&B project.")
    entity: str | None = declare(None, help="W&B team or user.")
    name: str | None = declare(None, help="Run name (default: recipe-model-prune).")
    group: str | None = declare(None, help="Run group (default: model-prune).")
    tags: list[str] = declare(default_factory=list, help="Extra tags.")


def _has_credentials() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def resolve_report_to(report_to: str) -> str:
    """``wandb`` or ``none``; ``auto`` logs to W&B, offline when no credentials or WANDB_MODE are set."""
    if report_to == "none":
        return "none"
    try:
        import wandb  # noqa: F401
    except ImportError:
        if report_to == "wandb":
            raise
        return "none"
    if report_to == "auto" and not os.environ.get("WANDB_MODE") and not _has_credentials():
        os.environ["WANDB_MODE"] = "offline"
        logger.info("No W&B credentials: logging offline (upload later with `wandb sync`).")
    return "wandb"


def start_run(
    out: Path, name: str, group: str, tags: list[str], config: dict, project: str, entity=None, job_type=None
):
    """Start (or, after a relaunch, resume) the W&B run of the folder ``out``, writing under ``out/wandb``."""
    import wandb

    out.mkdir(parents=True, exist_ok=True)
    record = out / WANDB_FILE
    run_id = json.loads(record.read_text())["id"] if record.exists() else uuid.uuid4().hex[:12]
    run = wandb.init(
        project=project,
        entity=entity,
        name=name,
        group=group,
        tags=tags,
        config=config,
        job_type=job_type,
        dir=str(out),
        id=run_id,
        resume="allow",
    )
    write_file(record, json.dumps({"id": run.id, "name": name, "group": group, "tags": tags}, indent=2))
    return run


def log_evaluation(curves: dict, summary: dict, records: list[dict]) -> None:
    """Log scaling curves against budget and k, the summary numbers, and a table of the generations."""
    import wandb

    if wandb.run is None:
        return
    for task, curve in curves.get("sequential", {}).items():
        x = f"eval/{task}/budget"
        wandb.define_metric(x, hidden=True)
        wandb.define_metric(f"eval/{task}/accuracy", step_metric=x)
        for budget, acc in zip(curve["budget"], curve["accuracy"]):
            wandb.log({x: budget, f"eval/{task}/accuracy": acc})
    for task, curve in curves.get("parallel", {}).items():
        x = f"eval/{task}/k"
        wandb.define_metric(x, hidden=True)
        names = [n for n in ("pass_at_k", "maj_at_k", "cov_at_k", "answered_at_k") if n in curve]
        for name in names:
            wandb.define_metric(f"eval/{task}/{name}", step_metric=x)
        for i, k in enumerate(curve["k"]):
            wandb.log({x: k, **{f"eval/{task}/{name}": curve[name][i] for name in names}})
    for task, metrics in summary.items():
        for name, value in metrics.items():
            wandb.run.summary[f"eval/{task}/{name}"] = value
    columns = [
        "task",
        "mode",
        "problem_id",
        "budget",
        "sample",
        "thinking_tokens",
        "answer_tokens",
        "answer_truncated",
        "extracted",
        "gold",
        "correct",
        "output",
    ]
    table = wandb.Table(columns=columns, data=[[r.get(c) for c in columns] for r in records])
    wandb.log({"eval/samples": table})


def finish_run() -> None:
    try:
        import wandb
    except ImportError:
        return
    if wandb.run is not None:
        wandb.finish()


def read_offline_run(run_dir: Path) -> dict:
    """Name, group, tags and logged rows of an offline W&B run folder (``wandb/offline-run-*``), read from its
    ``.wandb`` transaction log (LevelDB-log framing: 32 KiB blocks of checksum/length/type-framed protobuf records).
    """
    from wandb.proto import wandb_internal_pb2 as pb

    (log,) = Path(run_dir).glob("*.wandb")
    data, block, pos, pending = log.read_bytes(), 32768, 7, b""  # 7: the ':W&B' file header
    out = {"history": [], "files": []}
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
                item = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
                out["history"].append(item)
            elif which == "files":
                out["files"].extend(f.path for f in record.files.files)
    return out
