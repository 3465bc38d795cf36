"""``lprecover compare``: which recovery brought test-time scaling back, at a glance.

    lprecover compare runs=[runs/eval-teacher,runs/eval-pruned2,runs/sft_short-organism-shortgpt2] output_dir=OUT
    lprecover compare teacher=evals/qwen3-8b pruned=evals/qwen3-8b-minus1 runs=[evals/sft,evals/kd] output_dir=OUT
    lprecover compare runs='runs/study/*' output_dir=OUT report_to=wandb
    lprecover compare wandb_group=organism-shortgpt2 wandb.project=lprecover output_dir=OUT     (online)

A run is recognised by what it saved: a recovery run folder (``model/recovery.json``, evaluated into ``eval/``), or
an evaluation folder (``curves.json``) of a model whose config carries lprecover's pruning provenance (a pruned
base) or none (the teacher). Each recovered run is scored against the teacher and the pruned base it shares
provenance with (same source, same kept layers). ``teacher=`` and ``pruned=`` name the roles outright instead
(evaluations made elsewhere and imported with ``lprecover eval import=...`` carry no provenance): every folder of
``runs`` is then a recovered model scored against them. Writes ``comparison.png``, ``report.md`` and
``summary.json``; the measures and verdicts are those of ``evaluation.recovery_measures`` and ``lprecover.verdict``.
"""

import json
from pathlib import Path

from lprecover.compare.config import CompareCommand
from lprecover.compare.discovery import collect, with_roles
from lprecover.compare.run import compare
from lprecover.compare.wandb_runs import runs_from_wandb
from lprecover.config import load_config, save_config, to_dict
from lprecover.log import get_logger
from lprecover.tracking import finish_run, resolve_report_to, start_run

logger = get_logger(__name__)

CONFIG = CompareCommand  # the keys `--help` lists


def main(argv: list[str]) -> int:
    """Run the command on its ``key=value`` arguments (``lprecover.command.run`` adds ``--help`` and error lines)."""
    cfg = load_config(CompareCommand, argv)
    out = Path(cfg.output_dir)
    if cfg.teacher is not None:
        runs = with_roles(cfg.teacher, cfg.pruned, cfg.runs)
    else:
        runs = collect(cfg.runs) if cfg.runs else []
    if cfg.wandb_group:
        runs += runs_from_wandb(cfg)
    summary = compare(runs, out, cfg.title, cfg.bootstrap)
    save_config(cfg, out)
    if resolve_report_to(cfg.report_to) == "wandb":
        import wandb

        group = cfg.wandb.group or cfg.wandb_group or Path(cfg.output_dir).name
        start_run(
            out,
            cfg.wandb.name or f"compare-{group}",
            group,
            ["compare"],
            to_dict(cfg),
            cfg.wandb.project,
            cfg.wandb.entity,
            job_type="compare",
        )
        rows = [[r["run"], r["kind"], json.dumps(r["tasks"])] for r in summary["runs"]]
        wandb.log(
            {
                "comparison": wandb.Image(str(out / "comparison.png")),
                "report": wandb.Table(columns=["run", "kind", "tasks"], data=rows),
            }
        )
        finish_run()
    print((out / "report.md").read_text())
    return 0
