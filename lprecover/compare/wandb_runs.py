"""Runs rebuilt from a W&B group (``wandb_group=``): their logged curves and config, no per-sample data."""

from lprecover.compare.config import CompareCommand
from lprecover.compare.discovery import Run
from lprecover.config import ConfigError
from lprecover.log import get_logger

logger = get_logger(__name__)


def runs_from_wandb(cfg: CompareCommand) -> list[Run]:
    """Runs of a W&B group, rebuilt from their logged curves and config (no per-sample data: no score intervals)."""
    import wandb

    api = wandb.Api()
    path = f"{cfg.wandb.entity}/{cfg.wandb.project}" if cfg.wandb.entity else cfg.wandb.project
    out = []
    for r in api.runs(path, filters={"group": cfg.wandb_group}):
        if r.job_type == "compare":
            continue
        curves = {"sequential": {}, "parallel": {}}
        for row in r.scan_history():
            for key, value in row.items():
                parts = key.split("/")
                if len(parts) == 3 and parts[0] == "eval" and parts[2] in ("accuracy", "pass_at_k", "maj_at_k"):
                    mode, x = ("sequential", "budget") if parts[2] == "accuracy" else ("parallel", "k")
                    c = curves[mode].setdefault(parts[1], {x: [], parts[2]: []})
                    if row.get(f"eval/{parts[1]}/{x}") is not None and value is not None:
                        c.setdefault(parts[2], []).append(value)
                        if parts[2] != "maj_at_k":
                            c[x].append(row[f"eval/{parts[1]}/{x}"])
        summary = {}
        for key, value in r.summary.items():
            parts = key.split("/")
            if len(parts) == 3 and parts[0] == "eval":
                summary.setdefault(parts[1], {})[parts[2]] = value
        config = r.config or {}
        kind = "recovered" if config.get("method") else "teacher"
        out.append(
            Run(
                name=r.name,
                kind=kind,
                path=r.url,
                eval_dir=None,
                curves=curves,
                summary=summary,
                recipe=config.get("recipe"),
            )
        )
    if not out:
        raise ConfigError(f"W&B group '{cfg.wandb_group}' in project '{path}' holds no runs.")
    return out
