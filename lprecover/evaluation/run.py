"""Test-time scaling evaluation: sequential curves by budget forcing, parallel curves by sampling.

``run_eval`` generates whatever ``samples.jsonl`` in the output folder does not hold yet, then recomputes
``curves.json``, ``summary.json`` and ``curves.png`` from all records. ``lprecover eval`` and the recipes'
post-training evaluation both call it.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lprecover.config import atomic_write_text
from lprecover.evaluation.budget_forcing import ThinkFormat, prompt_ids
from lprecover.evaluation.engines import HFEngine
from lprecover.evaluation.metrics import (
    bootstrap_ci,
    cov_at_k,
    curve_area,
    maj_at_k,
    pass_at_k,
    scaling_slope,
)
from lprecover.evaluation.records import SampleStore, prompt_hash
from lprecover.evaluation.scoring import answers_match, canonical, extract_answer
from lprecover.evaluation.tasks import Task, check_task, load_task
from lprecover.log import get_logger, progress

logger = get_logger(__name__)

CURVES_FILE, SUMMARY_FILE, PLOT_FILE = "curves.json", "summary.json", "curves.png"
ENGINES = ("hf", "vllm")


@dataclass
class EvalConfig:
    """What to evaluate and how.

    Tasks: ``tasks`` (None: organism chains for the organism, GSM8K otherwise), ``num_problems`` each, local files in
    ``paths``. Sequential: thinking ``budgets`` (None: each task's defaults), greedy unless ``seq_temperature``,
    ``num_waits`` extensions. Parallel: ``n_samples`` per problem at ``temperature``/``top_p`` within
    ``parallel_budget`` thinking tokens, reported at ``k``. Statistics: ``bootstrap`` resamples over problems.
    """

    tasks: list[str] | None = field(default=None, metadata={"help": "Task names; None picks by model."})
    num_problems: int = field(default=100, metadata={"help": "Problems per task."})
    paths: dict[str, str] = field(default_factory=dict, metadata={"help": "Local jsonl per task, e.g. {gsm8k: FILE}."})
    sequential: bool = field(default=True, metadata={"help": "Run the budget-forced sequential curve."})
    budgets: list[int] | None = field(default=None, metadata={"help": "Thinking budgets in tokens."})
    seq_temperature: float = field(
        default=0.0, metadata={"help": "Sampling temperature of the sequential curve (0 = greedy)."}
    )
    num_waits: int = field(default=0, metadata={"help": "Times an early end of thinking is replaced by wait_text."})
    wait_text: str = field(default="Wait", metadata={"help": "Text that asks the model to keep thinking."})
    answer_max_tokens: int | None = field(default=None, metadata={"help": "Cap on the answer after thinking."})
    parallel: bool = field(default=True, metadata={"help": "Run the parallel (pass@k / maj@k) curve."})
    n_samples: int = field(default=8, metadata={"help": "Samples per problem for the parallel curve."})
    k: list[int] | None = field(default=None, metadata={"help": "k values; None: powers of two up to n_samples."})
    parallel_budget: int | None = field(
        default=None, metadata={"help": "Thinking budget when sampling; None: the largest budget."}
    )
    temperature: float = field(default=0.8, metadata={"help": "Temperature of the parallel samples."})
    top_p: float = field(default=0.95, metadata={"help": "Nucleus sampling of the parallel samples."})
    system_prompt: str | None = field(
        default=None, metadata={"help": "Optional system message, the same for every model."}
    )
    batch_size: int = field(default=64, metadata={"help": "Sequences generated together."})
    engine: str = field(default="hf", metadata={"help": "hf (transformers, CPU/GPU) or vllm (the vllm extra)."})
    vllm_tensor_parallel_size: int = field(default=1, metadata={"help": "vLLM: GPUs one model is sharded over."})
    vllm_kwargs: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "vLLM: extra LLM(...) arguments, e.g. {enforce_eager: true}."}
    )
    seed: int = field(default=0, metadata={"help": "Sampling and bootstrap seed."})
    bootstrap: int = field(default=1000, metadata={"help": "Bootstrap resamples for confidence intervals."})

    def __post_init__(self):
        for task in self.tasks or []:
            check_task(task)
        if self.budgets is not None:
            bad = [b for b in self.budgets if not isinstance(b, int) or b <= 0]
            if bad or not self.budgets:
                raise ValueError(f"eval.budgets must be positive token counts, got {self.budgets}.")
        if self.n_samples < 1 or self.num_problems < 1:
            raise ValueError("eval.n_samples and eval.num_problems must be at least 1.")
        if self.k is not None:
            too_big = [k for k in self.k if k > self.n_samples or k < 1]
            if too_big:
                raise ValueError(
                    f"eval.k {too_big} must lie in 1..n_samples ({self.n_samples}); raise eval.n_samples."
                )
        if self.engine not in ENGINES:
            raise ValueError(f"eval.engine must be one of {', '.join(ENGINES)}, got '{self.engine}'.")
        if not (self.sequential or self.parallel):
            raise ValueError("Nothing to do: eval.sequential and eval.parallel are both false.")

    def ks(self) -> list[int]:
        return self.k or [2**i for i in range(self.n_samples.bit_length()) if 2**i <= self.n_samples]


def think_format(tokenizer, model_cfg=None) -> ThinkFormat:
    """The model family's thinking delimiters: explicit ``model.think_*`` settings win, then the vocabulary.

    Qwen3, R1-distill and the organism think in ``<think>``/``</think>``; s1 is written as ``think_open`` =
    ``<|im_start|>think``, ``think_close`` = ``<|im_start|>``, ``answer_prefix`` = ``answer``. A model with no
    delimiters (e.g. SmolLM2-Instruct) has its whole response capped, then is asked for a final answer.
    """
    vocab = tokenizer.get_vocab()
    has_think = "<think>" in vocab and "</think>" in vocab
    open_ = getattr(model_cfg, "think_open", None) or ("<think>" if has_think else "")
    close = getattr(model_cfg, "think_close", None) or ("</think>" if has_think else None)
    prefix = getattr(model_cfg, "answer_prefix", "") or ("" if close else "\n\nFinal Answer: ")
    return ThinkFormat(open=open_, close=close, answer_prefix=prefix)


def _generate_records(engine, tokenizer, fmt, task: Task, mode: str, budget: int, jobs, cfg: EvalConfig, temperature):
    """Run budget forcing for ``jobs`` = [(problem, sample index)] and return their records."""
    prompts = [prompt_ids(tokenizer, p.prompt, fmt, cfg.system_prompt) for p, _ in jobs]
    answer_cap = cfg.answer_max_tokens or task.answer_max_tokens
    gens = engine.generate(
        prompts,
        budget,
        fmt,
        answer_max_tokens=answer_cap,
        num_waits=cfg.num_waits if mode == "sequential" else 0,
        batch_size=cfg.batch_size,
        temperature=temperature,
        top_p=cfg.top_p,
        seed=cfg.seed + budget,
    )
    records = []
    for (problem, sample), prompt, gen in zip(jobs, prompts, gens):
        # Score the answer after thinking; formats without delimiters answer inside the response itself.
        text = gen.answer if fmt.close else gen.thinking + gen.answer
        extracted = extract_answer(text, task.name)
        records.append(
            {
                "task": task.name,
                "mode": mode,
                "problem_id": problem.id,
                "budget": budget,
                "sample": sample,
                "prompt_hash": prompt_hash(prompt),
                "thinking_tokens": gen.thinking_tokens,
                "truncated": gen.truncated,
                "waits": gen.waits,
                "output": gen.raw,
                "extracted": extracted,
                "canonical": canonical(extracted, task.name),
                "gold": problem.gold,
                "correct": answers_match(extracted, problem.gold, task.name),
            }
        )
    return records


def _run_jobs(store, engine, tokenizer, fmt, task, mode, budget, jobs, cfg, temperature):
    pending = [(p, s) for p, s in jobs if (task.name, mode, p.id, budget, s) not in store]
    chunk = cfg.batch_size * 4  # flush to disk every few batches, so a kill loses little
    for start in progress(range(0, len(pending), chunk), desc=f"{task.name} {mode} B={budget}"):
        store.append(
            _generate_records(
                engine, tokenizer, fmt, task, mode, budget, pending[start : start + chunk], cfg, temperature
            )
        )


def sequential_curve(records: list[dict], problems, budgets, n_boot, seed) -> dict:
    out = {"budget": [], "accuracy": [], "ci_low": [], "ci_high": [], "thinking_tokens": [], "truncated": []}
    for b in budgets:
        rows = {r["problem_id"]: r for r in records if r["budget"] == b and r["sample"] == 0}
        per_problem = np.array([float(rows[p.id]["correct"]) for p in problems if p.id in rows])
        lo, hi = bootstrap_ci(per_problem, n_boot, seed)
        out["budget"].append(b)
        out["accuracy"].append(float(per_problem.mean()) if len(per_problem) else float("nan"))
        out["ci_low"].append(lo)
        out["ci_high"].append(hi)
        out["thinking_tokens"].append(float(np.mean([r["thinking_tokens"] for r in rows.values()])))
        out["truncated"].append(float(np.mean([r["truncated"] for r in rows.values()])))
    return out


def parallel_curve(records: list[dict], problems, n: int, ks: list[int], n_boot, seed) -> dict:
    by_problem = {p.id: [] for p in problems}
    for r in records:
        if r["problem_id"] in by_problem and r["sample"] < n:
            by_problem[r["problem_id"]].append(r)
    out = {
        "k": ks,
        "pass_at_k": [],
        "maj_at_k": [],
        "cov_at_k": [],
        "ci_low": [],
        "ci_high": [],
        "maj_ci_low": [],
        "maj_ci_high": [],
    }
    for k in ks:
        passes, majs, covs = [], [], []
        for rows in by_problem.values():
            rows = sorted(rows, key=lambda r: r["sample"])
            c = sum(r["correct"] for r in rows)
            passes.append(pass_at_k(len(rows), c, k))
            majs.append(maj_at_k([r["canonical"] for r in rows], [r["correct"] for r in rows], k, seed=seed))
            covs.append(cov_at_k(len(rows), sum(r["extracted"] is not None for r in rows), k))
        lo, hi = bootstrap_ci(np.array(passes), n_boot, seed)
        mlo, mhi = bootstrap_ci(np.array(majs), n_boot, seed)
        out["pass_at_k"].append(float(np.mean(passes)))
        out["maj_at_k"].append(float(np.mean(majs)))
        out["cov_at_k"].append(float(np.mean(covs)))
        out["ci_low"].append(lo)
        out["ci_high"].append(hi)
        out["maj_ci_low"].append(mlo)
        out["maj_ci_high"].append(mhi)
    return out


def summarize(curves: dict, records: list[dict]) -> dict:
    summary = {}
    for task in sorted(set(curves["sequential"]) | set(curves["parallel"])):
        s = {}
        seq = curves["sequential"].get(task)
        if seq:
            s["sequential_area"] = curve_area(seq["budget"], seq["accuracy"])
            s["accuracy_at_max_budget"] = seq["accuracy"][-1]
            s["accuracy_at_min_budget"] = seq["accuracy"][0]
            s["scaling_slope"] = scaling_slope(seq["budget"], seq["accuracy"])
        par = curves["parallel"].get(task)
        if par:
            s["pass_at_1"] = par["pass_at_k"][0]
            s["pass_at_k_max"] = par["pass_at_k"][-1]
            s["maj_at_k_max"] = par["maj_at_k"][-1]
            s["parallel_area"] = curve_area(par["k"], par["pass_at_k"])
        rows = [r for r in records if r["task"] == task]
        s["extraction_failure_rate"] = float(np.mean([r["extracted"] is None for r in rows])) if rows else float("nan")
        summary[task] = s
    return summary


def plot_curves(curves: dict, path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted(set(curves["sequential"]) | set(curves["parallel"]))
    fig, axes = plt.subplots(len(tasks), 2, figsize=(10, 3.2 * len(tasks)), squeeze=False)
    for row, task in zip(axes, tasks):
        seq, par = curves["sequential"].get(task), curves["parallel"].get(task)
        if seq:
            row[0].plot(seq["budget"], seq["accuracy"], marker="o")
            row[0].fill_between(seq["budget"], seq["ci_low"], seq["ci_high"], alpha=0.2)
            row[0].set_xscale("log", base=2)
        row[0].set(title=f"{task}: sequential", xlabel="thinking budget (tokens)", ylabel="accuracy", ylim=(0, 1.02))
        if par:
            row[1].plot(par["k"], par["pass_at_k"], marker="o", label="pass@k")
            row[1].fill_between(par["k"], par["ci_low"], par["ci_high"], alpha=0.2)
            row[1].plot(par["k"], par["maj_at_k"], marker="s", label="maj@k")
            row[1].set_xscale("log", base=2)
            row[1].legend()
        row[1].set(title=f"{task}: parallel", xlabel="samples k", ylabel="accuracy", ylim=(0, 1.02))
    fig.suptitle(title)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)


def default_tasks(model) -> list[str]:
    from lprecover.pruning.prune import is_organism

    return ["organism_long", "organism_shallow"] if is_organism(model) else ["gsm8k"]


def run_eval(model, tokenizer, cfg: EvalConfig, output_dir, model_cfg=None, title: str = "", on_start=None) -> dict:
    """Evaluate ``model`` into ``output_dir`` (resuming what is there) and return ``{"curves", "summary"}``.

    Args:
        model: a transformers model, or an engine from ``lprecover.evaluation.engines`` (e.g. ``VLLMEngine``).
        on_start: called once every input has been validated, just before the first generation (e.g. to save the
            resolved config, so that a relaunch can tell it is resuming the same evaluation).
    """
    out = Path(output_dir)
    engine = model if getattr(model, "is_engine", False) else HFEngine(model, tokenizer)
    fmt = think_format(tokenizer, model_cfg)
    tasks = [load_task(t, cfg.num_problems, cfg.paths.get(t)) for t in (cfg.tasks or default_tasks(engine))]
    for task in tasks:  # validate every prompt before any generation starts
        prompt_ids(tokenizer, task.problems[0].prompt, fmt, cfg.system_prompt)
    if on_start:
        on_start()
    store = SampleStore(out)
    done_before = len(store)
    curves = {"sequential": {}, "parallel": {}}
    for task in tasks:
        budgets = cfg.budgets or task.default_budgets
        if cfg.sequential:
            for b in budgets:
                _run_jobs(
                    store,
                    engine,
                    tokenizer,
                    fmt,
                    task,
                    "sequential",
                    b,
                    [(p, 0) for p in task.problems],
                    cfg,
                    cfg.seq_temperature,
                )
            curves["sequential"][task.name] = sequential_curve(
                store.select(task.name, "sequential"), task.problems, budgets, cfg.bootstrap, cfg.seed
            )
        if cfg.parallel:
            b = cfg.parallel_budget or max(budgets)
            jobs = [(p, s) for p in task.problems for s in range(cfg.n_samples)]
            _run_jobs(store, engine, tokenizer, fmt, task, "parallel", b, jobs, cfg, cfg.temperature)
            recs = [r for r in store.select(task.name, "parallel") if r["budget"] == b]
            curves["parallel"][task.name] = parallel_curve(
                recs, task.problems, cfg.n_samples, cfg.ks(), cfg.bootstrap, cfg.seed
            )
    logger.info("Evaluation: %d records reused, %d generated", done_before, len(store) - done_before)
    records = list(store.records.values())
    summary = summarize(curves, records)
    atomic_write_text(out / CURVES_FILE, json.dumps(curves, indent=1))
    atomic_write_text(out / SUMMARY_FILE, json.dumps(summary, indent=1))
    plot_curves(curves, out / PLOT_FILE, title)
    return {"curves": curves, "summary": summary}
