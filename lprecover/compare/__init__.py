"""``lprecover compare``: discovery of the runs (``discovery``), their scores and verdicts (``scores``), the
tokens and compute to recover (``reach``), ``report.md`` (``report``), ``comparison.png`` (``plots``), runs from W&B
(``wandb_runs``), the whole comparison (``run``) and the command (``cli``)."""
