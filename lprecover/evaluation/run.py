"""Test-time scaling evaluation: sequential curves by budget forcing, parallel curves by sampling.

``run_eval`` generates whatever ``samples.jsonl`` in the output folder does not hold yet, then recomputes
``curves.json``, ``summary.json`` and ``curves.png`` from all records. ``lprecover eval`` and the recipes'
post-training evaluation both call it.
"""

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lprecover.atomic import write_figure, write_file
from lprecover.config import declare
from lprecover.evaluation.budget_forcing import ThinkFormat, check_close, prompt_ids, sampling_key
from lprecover.evaluation.engines import HFEngine
from lprecover.evaluation.metrics import (
    accuracy_ci,
    answered_at_k,
    cov_at_k,
    curve_area,
    finite,
    maj_at_k,
    maj_at_k_first,
    pass_at_k,
    scaling_slope,
)
from lprecover.evaluation.processes import Processes
from lprecover.evaluation.records import SampleStore, one_setting, prompt_hash
from lprecover.evaluation.scoring import answers_match, canonical, extract_answer, vote_keys
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

    tasks: list[str] | None = declare(
        None, help="Task names; None picks by model (an empty list is refused).", nonempty=True, unique=True
    )
    num_problems: int = declare(100, help="Problems per task.", ge=1)
    paths: dict[str, str] = declare(default_factory=dict, help="Local jsonl per task, e.g. {gsm8k: FILE}.")
    sequential: bool = declare(True, help="Run the budget-forced sequential curve.")
    budgets: list[int] | None = declare(
        None,
        help="Thinking budgets in tokens, increasing (the organism's facts keep their one budget).",
        ge=1,
        nonempty=True,
        unique=True,
    )
    seq_temperature: float = declare(0.0, help="Sampling temperature of the sequential curve (0 = greedy).", ge=0)
    seq_samples: int = declare(
        1, help="Sequential samples per problem and budget, averaged (the seed repository's 3 seeds: 3).", ge=1
    )
    num_waits: int = declare(0, help="Times an early end of thinking is replaced by wait_text.", ge=0)
    wait_text: Any = declare("Wait", help="Text (or a list, used in turn) that asks the model to keep thinking.")
    answer_max_tokens: int | None = declare(
        None, help="Cap on the answer phase after thinking; None: the task's (1024+ on real tasks).", ge=1
    )
    parallel: bool = declare(True, help="Run the parallel (pass@k / maj@k) curve.")
    parallel_tasks: list[str] | None = declare(
        None, help="Tasks of the parallel curve; None: the same as tasks.", nonempty=True, unique=True
    )
    n_samples: int = declare(8, help="Samples per problem for the parallel curve.", ge=1)
    k: list[int] | None = declare(
        None,
        help="k values, increasing, each at most n_samples; None: powers of two up to n_samples.",
        ge=1,
        nonempty=True,
        unique=True,
    )
    parallel_budget: int | None = declare(
        None, help="Thinking budget when sampling, in tokens; None: the largest budget.", ge=1
    )
    temperature: float = declare(0.8, help="Temperature of the parallel samples (0 = greedy).", ge=0)
    top_p: float = declare(0.95, help="Nucleus sampling of the parallel samples.", gt=0, le=1)
    system_prompt: str | None = declare(None, help="Optional system message, the same for every model.")
    batch_size: int = declare(64, help="Sequences generated together.", ge=1)
    one_pass: bool = declare(
        True,
        help="Generate the sequential curve's thinking once, to the largest budget, and take each smaller "
        "budget's as its prefix (the same records as generating each budget on its own, in fewer tokens).",
    )
    reuse_cache: bool = declare(
        True,
        help="transformers engine, without num_waits: each answer phase continues its thinking pass's KV "
        "cache instead of re-reading its prompt and thinking (the same records up to floating-point ties; "
        "false is the check).",
    )
    engine: str = declare("hf", help="hf (transformers, CPU/GPU) or vllm (the vllm extra).", choices=ENGINES)
    vllm_tensor_parallel_size: int = declare(1, help="vLLM: GPUs one model is sharded over.", ge=1)
    vllm_kwargs: dict[str, Any] = declare(
        default_factory=dict, help="vLLM: extra LLM(...) arguments, e.g. {enforce_eager: true}."
    )
    seed: int = declare(0, help="Sampling and bootstrap seed.", ge=0)
    bootstrap: int = declare(1000, help="Bootstrap resamples for confidence intervals.", ge=1)

    def __post_init__(self):
        for task in self.tasks or []:
            check_task(task, "eval.tasks")
        for task in self.parallel_tasks or []:
            check_task(task, "eval.parallel_tasks")
        if self.budgets is not None:
            _check_increasing("eval.budgets", self.budgets, "positive token counts")
        if self.seq_samples > 1 and self.seq_temperature == 0:
            raise ValueError("eval.seq_samples > 1 repeats greedy decoding; set eval.seq_temperature above 0.")
        if self.k is not None:
            _check_increasing("eval.k", self.k, "sample counts")
            too_big = [k for k in self.k if k > self.n_samples]
            if too_big:
                raise ValueError(
                    f"eval.k {too_big} must lie in 1..n_samples ({self.n_samples}); raise eval.n_samples."
                )
        waits = self.waits()
        if not waits or not all(isinstance(w, str) and w for w in waits):
            raise ValueError(f"eval.wait_text must be a non-empty string or a list of them, got {self.wait_text!r}.")
        if not (self.sequential or self.parallel):
            raise ValueError("Nothing to do: eval.sequential and eval.parallel are both false.")
        for task, path in self.paths.items():
            check_task(task, f"eval.paths.{task}")
            if not Path(path).is_file():
                raise ValueError(f"eval.paths.{task}: no such file '{path}'.")

    def ks(self) -> list[int]:
        return self.k or [2**i for i in range(self.n_samples.bit_length()) if 2**i <= self.n_samples]

    def waits(self) -> list[str]:
        return [self.wait_text] if isinstance(self.wait_text, str) else list(self.wait_text or [])


# Settings of how records are generated that do not change them: a relaunch may change these and still resume.
GENERATION_ONLY = ("one_pass", "reuse_cache")


def _check_increasing(name: str, values, what: str) -> None:
    """Refuse a list that is empty, holds a non-positive or non-integer value, or is not strictly increasing."""
    if not values or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in values):
        raise ValueError(f"{name} must be positive {what}, got {list(values or [])}.")
    if list(values) != sorted(set(values)):
        raise ValueError(
            f"{name} must be increasing with no repeats, got {list(values)}; write {sorted(set(values))}."
        )


ANSWER_CUE = "Final Answer:"  # s1's cue after a forced end of thinking (see ThinkFormat.answer_prefix)


def think_format(tokenizer, model_cfg=None, wait: list[str] | None = None, organism: bool = False) -> ThinkFormat:
    """The model family's thinking delimiters and answer cue: explicit ``model.*`` settings win, then the vocabulary.

    Qwen3, R1-distill and the organism think in ``<think>``/``</think>``; s1 (``model=s1_1_7b``) thinks after
    ``<|im_start|>think`` until ``<|im_start|>``, answers after ``<|im_start|>answer`` (``answer_open``). A model
    with no delimiters (e.g. SmolLM2-Instruct) has its whole response capped, then is asked for a final answer.

    The answer cue after a forced close (``model.answer_prefix``; None: the default) is s1's "Final Answer:" on a
    line of its own (s1's fork appends ``<|im_start|>answer\nFinal Answer:``). The organism, trained to answer
    right after ``</think>``, gets none.
    """
    vocab = tokenizer.get_vocab()
    has_think = "<think>" in vocab and "</think>" in vocab
    open_ = getattr(model_cfg, "think_open", None) or ("<think>" if has_think else "")
    close = getattr(model_cfg, "think_close", None) or ("</think>" if has_think else None)
    prefix = getattr(model_cfg, "answer_prefix", None)
    if prefix is None:
        prefix = "" if organism else "\n\n" + ANSWER_CUE
    answer_open = getattr(model_cfg, "answer_open", "") or ""
    return ThinkFormat(open_, close, answer_open, prefix, tuple(wait or ("Wait",)))


def _generate_records(engine, tokenizer, fmt, task: Task, mode: str, budgets, jobs, cfg: EvalConfig, temperature):
    """Run budget forcing for ``jobs`` = [(problem, sample index)] at every budget and return their records."""
    prompts = [prompt_ids(tokenizer, p.prompt, fmt, cfg.system_prompt) for p, _ in jobs]
    answer_cap = cfg.answer_max_tokens or task.answer_max_tokens
    num_waits = cfg.num_waits if mode == "sequential" else 0
    kwargs = dict(
        answer_max_tokens=answer_cap,
        num_waits=num_waits,
        batch_size=cfg.batch_size,
        reuse_cache=cfg.reuse_cache,
        temperature=temperature,
        top_p=cfg.top_p,
        # A sample's random stream is named by what it is, not by where it ran: the same (problem, sample) draws
        # the same tokens at every budget and in every batch.
        keys=[sampling_key(cfg.seed, task.name, p.id, sample) for p, sample in jobs],
    )
    if cfg.one_pass and hasattr(engine, "generate_budgets"):
        per_budget = engine.generate_budgets(prompts, budgets, fmt, **kwargs)
    else:
        per_budget = [engine.generate(prompts, b, fmt, **kwargs) for b in budgets]
    settings = _sampling_settings(cfg, temperature, answer_cap, num_waits)
    records = []
    for budget, gens in zip(budgets, per_budget):
        for (problem, sample), prompt, gen in zip(jobs, prompts, gens):
            extracted = extract_answer(gen.response, task.name)
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
                    "answer_tokens": gen.answer_tokens,
                    "answer_truncated": gen.answer_truncated,
                    "output": gen.raw,
                    "response": gen.response,
                    "extracted": extracted,
                    "canonical": canonical(extracted, task.name),
                    "gold": problem.gold,
                    "correct": answers_match(extracted, problem.gold, task.name),
                    "sampling": settings,
                }
            )
    return records


def _sampling_settings(cfg: EvalConfig, temperature: float, answer_cap: int, num_waits: int) -> dict:
    """What decides a record's text besides the model and prompt: records that differ here must not share a curve."""
    return {
        "temperature": temperature,
        "top_p": cfg.top_p if temperature > 0 else 1.0,
        "seed": cfg.seed,
        "answer_max_tokens": answer_cap,
        "num_waits": num_waits,
        "wait_text": cfg.waits() if num_waits else [],
    }


def _run_jobs(store, engine, tokenizer, fmt, task, mode, budgets, jobs, cfg, temperature):
    """Generate the records of ``jobs`` at ``budgets`` that the store lacks, a few batches of jobs at a time.

    A job missing any budget is generated at all of them in one thinking pass; only the missing records are kept.
    """
    pending = [(p, s) for p, s in jobs if any((task.name, mode, p.id, b, s) not in store for b in budgets)]
    chunk = cfg.batch_size * 4  # flush to disk every few batches, so a kill loses little
    desc = f"{task.name} {mode} B={','.join(map(str, budgets))}"
    for start in progress(range(0, len(pending), chunk), desc=desc):
        records = _generate_records(
            engine, tokenizer, fmt, task, mode, budgets, pending[start : start + chunk], cfg, temperature
        )
        store.append(records)  # the store keeps only the records it lacks


def _mean(values) -> float:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else float("nan")


def sequential_curve(records: list[dict], problems, budgets, n_boot, seed, samples: int = 1) -> dict:
    """Accuracy at each budget (increasing), with a 95% interval over problems that stays honest at 0 and 1.

    A problem's accuracy is the mean over its first ``samples`` samples (one per seed in the seed repository's
    protocol). ``ci_low``/``ci_high`` come from ``metrics.accuracy_ci`` over the n problems, and ``ci_method`` names
    how: ``"wilson"`` where every problem scores 0 or 1 (the Wilson score interval of the proportion, so 100 of 100
    correct reads [0.963, 1], never [1, 1]); ``"wilson+bootstrap"`` where samples disagree within a problem (the
    union of Wilson at the mean and the bootstrap resampling problems, each problem's samples kept together).
    """
    budgets = sorted(budgets)
    wanted = {p.id for p in problems}
    rows_all = [r for r in records if r["budget"] in budgets and r["sample"] < samples and r["problem_id"] in wanted]
    one_setting(rows_all, "sequential")
    out = {"budget": [], "accuracy": [], "ci_low": [], "ci_high": [], "ci_method": [], "thinking_tokens": []}
    out |= {"truncated": [], "answer_tokens": [], "answer_truncated": []}
    for b in budgets:
        rows = [r for r in rows_all if r["budget"] == b]
        by_problem: dict[str, list[float]] = {}
        for r in rows:
            by_problem.setdefault(r["problem_id"], []).append(float(r["correct"]))
        per_problem = np.array([np.mean(by_problem[p.id]) for p in problems if p.id in by_problem])
        lo, hi, method = accuracy_ci(per_problem, n_boot, seed)
        out["budget"].append(b)
        out["accuracy"].append(float(per_problem.mean()) if len(per_problem) else float("nan"))
        out["ci_low"].append(lo)
        out["ci_high"].append(hi)
        out["ci_method"].append(method)
        for name in ("thinking_tokens", "truncated", "answer_tokens", "answer_truncated"):
            out[name].append(_mean(r.get(name) for r in rows))
    return out


def parallel_curve(records: list[dict], problems, n: int, ks: list[int], n_boot, seed) -> dict:
    """pass@k, maj@k, cov@k and answered@k over each problem's first ``n`` samples at one budget.

    - ``pass_at_k``: unbiased pass@k over all n samples (Chen et al. 2021), as lm-eval and the seed repository.
    - ``maj_at_k``: majority vote averaged over subsets of k samples; answers math-verify holds equal vote together
      (``scoring.vote_keys``), a failed extraction votes "no answer", and the value ignores sample order.
    - ``maj_first_at_k``: the references' maj@k, the vote of the first k samples (lm-eval ``take_first_k``).
    - ``cov_at_k``: s1's cov@k, whether any of the first k samples is correct.
    - ``answered_at_k``: the chance that k samples include an extractable answer.
    - ``pass_at_1``: mean per-sample correctness, whatever ``ks`` holds.
    - ``ci_low``/``ci_high`` (pass@k) and ``maj_ci_low``/``maj_ci_high`` (maj@k): 95% intervals over problems from
      ``metrics.accuracy_ci``, named by ``ci_method``/``maj_ci_method``: Wilson where every problem scores 0 or 1
      (pass@n always does), else the union of Wilson and the bootstrap, so all problems at 1 never read [1, 1].
    """
    if len({r["budget"] for r in records}) > 1:
        raise ValueError("parallel_curve was given records of several budgets; pass the records of one.")
    by_problem = {p.id: [] for p in problems}
    for r in records:
        if r["problem_id"] in by_problem and r["sample"] < n:
            by_problem[r["problem_id"]].append(r)
    one_setting([r for rows in by_problem.values() for r in rows], "parallel")
    by_problem = {p: sorted(rows, key=lambda r: r["sample"]) for p, rows in by_problem.items() if rows}
    short = {p: len(rows) for p, rows in by_problem.items() if len(rows) < max(ks)}
    if short:
        raise ValueError(f"Problems {sorted(short)[:5]} have fewer samples than k={max(ks)}; finish the evaluation.")
    names = ("pass_at_k", "maj_at_k", "maj_first_at_k", "cov_at_k", "answered_at_k", "ci_low", "ci_high")
    names += ("maj_ci_low", "maj_ci_high", "ci_method", "maj_ci_method")
    out = {"k": list(ks), **{name: [] for name in names}}
    correct = {p: [bool(r["correct"]) for r in rows] for p, rows in by_problem.items()}
    # Clustered once per problem, not per k: "x = 5", "5" and "5.0" are one vote.
    keys = {
        p: vote_keys([r["extracted"] for r in rows], rows[0]["task"], [r.get("canonical") for r in rows])
        for p, rows in by_problem.items()
    }
    for k in ks:
        passes, majs, firsts, covs, answered = [], [], [], [], []
        for p, rows in by_problem.items():
            c, votes = correct[p], keys[p]
            passes.append(pass_at_k(len(c), sum(c), k))
            majs.append(maj_at_k(votes, c, k, seed=seed))
            firsts.append(maj_at_k_first(votes, c, k))
            covs.append(cov_at_k(c, k))
            answered.append(answered_at_k(len(rows), sum(r["extracted"] is not None for r in rows), k))
        lo, hi, method = accuracy_ci(np.array(passes), n_boot, seed)
        mlo, mhi, maj_method = accuracy_ci(np.array(majs), n_boot, seed)
        values = (np.mean(passes), np.mean(majs), np.mean(firsts), np.mean(covs), np.mean(answered), lo, hi)
        for name, value in zip(names, values):
            out[name].append(float(value))
        out["maj_ci_low"].append(mlo)
        out["maj_ci_high"].append(mhi)
        out["ci_method"].append(method)
        out["maj_ci_method"].append(maj_method)
    out["pass_at_1"] = _mean(np.mean(c) for c in correct.values())
    return out


def summarize(curves: dict, records: list[dict]) -> dict:
    summary = {}
    for task in sorted(set(curves["sequential"]) | set(curves["parallel"])):
        s = {}
        seq = curves["sequential"].get(task)
        if seq:
            s["sequential_area"] = curve_area(seq["budget"], seq["accuracy"])
            s["accuracy_at_max_budget"] = seq["accuracy"][int(np.argmax(seq["budget"]))]
            s["accuracy_at_min_budget"] = seq["accuracy"][int(np.argmin(seq["budget"]))]
            s["scaling_slope"] = scaling_slope(seq["budget"], seq["accuracy"])
        par = curves["parallel"].get(task)
        if par:
            s["pass_at_1"] = par["pass_at_1"]
            s["pass_at_k_max"] = par["pass_at_k"][-1]
            s["maj_at_k_max"] = par["maj_at_k"][-1]
            s["parallel_area"] = curve_area(par["k"], par["pass_at_k"])
        rows = [r for r in records if r["task"] == task]
        s["extraction_failure_rate"] = _mean(r["extracted"] is None for r in rows)
        # An answer cut by its cap is scored on what it wrote so far: report how often, beside extraction failures.
        s["answer_truncation_rate"] = _mean(r.get("answer_truncated") for r in rows)
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
    write_figure(path, fig, dpi=110)
    plt.close(fig)


def _is_organism(model) -> bool:
    from lprecover.pruning.prune import is_organism

    return getattr(model, "config", None) is not None and is_organism(model)


def organism_facts(model) -> int | None:
    """How many facts an organism model was trained on (its config records it; 100 before it did), else None."""
    if not _is_organism(model):
        return None
    from lprecover.organism.task import N_FACTS
    from lprecover.pruning.prune import ORGANISM_MARKER

    return (getattr(model.config, ORGANISM_MARKER, None) or {}).get("facts", N_FACTS)


def default_tasks(model) -> list[str]:
    if not _is_organism(model):
        return ["gsm8k"]
    return ["organism_long", "organism_facts"] if organism_facts(model) else ["organism_long"]


def run_eval(
    model,
    tokenizer,
    cfg: EvalConfig,
    output_dir,
    model_cfg=None,
    title: str = "",
    on_start=None,
    processes: Processes | None = None,
) -> dict:
    """Evaluate ``model`` into ``output_dir`` (resuming what is there) and return ``{"curves", "summary"}``.

    Args:
        model: a transformers model, or an engine from ``lprecover.evaluation.engines`` (e.g. ``VLLMEngine``).
        on_start: called once every input has been validated, just before the first generation (e.g. to save the
            resolved config, so that a relaunch can tell it is resuming the same evaluation).
        processes: this process's place when every process of a launch runs this evaluation
            (``processes.launched_processes``): each generates its share, the main one merges and writes the
            results, and all return them. Default: one process.
    """
    out = Path(output_dir)
    procs = processes or Processes()
    engine = model if getattr(model, "is_engine", False) else HFEngine(model, tokenizer)
    fmt = think_format(tokenizer, model_cfg, cfg.waits(), organism=_is_organism(engine))
    seq_names = cfg.tasks or default_tasks(engine)
    # The organism's knowledge control needs no samples: the parallel curve is of its long chains unless tasks are
    # named.
    par_names = cfg.parallel_tasks or (seq_names[:1] if not cfg.tasks and _is_organism(engine) else seq_names)
    names = list(dict.fromkeys((seq_names if cfg.sequential else []) + (par_names if cfg.parallel else [])))
    tasks = [load_task(t, cfg.num_problems, cfg.paths.get(t), facts=organism_facts(engine)) for t in names]
    check_close(tokenizer, fmt)  # validate the delimiter and every prompt before any generation starts
    for task in tasks:
        prompt_ids(tokenizer, task.problems[0].prompt, fmt, cfg.system_prompt)
    if on_start and procs.main:
        on_start()
    store = SampleStore(out, procs.shard)
    done_before = len(store)
    plans = []  # (task, mode, budgets, jobs, temperature), in the order records are written
    for task in tasks:
        budgets = task.default_budgets if task.fixed_budgets else cfg.budgets or task.default_budgets
        if cfg.sequential and task.name in seq_names:
            jobs = [(p, s) for p in task.problems for s in range(cfg.seq_samples)]
            plans.append((task, "sequential", budgets, jobs, cfg.seq_temperature))
        if cfg.parallel and task.name in par_names:
            jobs = [(p, s) for p in task.problems for s in range(cfg.n_samples)]
            budget = max(budgets) if task.fixed_budgets else cfg.parallel_budget or max(budgets)
            plans.append((task, "parallel", [budget], jobs, cfg.temperature))
    for task, mode, budgets, jobs, temperature in plans:
        _run_jobs(store, engine, tokenizer, fmt, task, mode, budgets, procs.share(jobs), cfg, temperature)
    logger.info("Evaluation: %d records reused, %d generated", done_before, len(store) - done_before)
    procs.wait()  # every share generated
    if procs.main:
        order = [(t.name, mode, p.id, b, s) for t, mode, budgets, jobs, _ in plans for p, s in jobs for b in budgets]
        records = store.merge(order)
        result = write_results(out, _curves(plans, records, cfg), records, title)
    procs.wait()  # the results written
    return result if procs.main else saved_results(out)


def _curves(plans, records: list[dict], cfg: EvalConfig) -> dict:
    curves = {"sequential": {}, "parallel": {}}
    for task, mode, budgets, _, _ in plans:
        mine = [r for r in records if r["task"] == task.name and r["mode"] == mode]
        if mode == "sequential":
            curves[mode][task.name] = sequential_curve(
                mine, task.problems, budgets, cfg.bootstrap, cfg.seed, cfg.seq_samples
            )
        else:
            mine = [r for r in mine if r["budget"] == budgets[0]]
            curves[mode][task.name] = parallel_curve(
                mine, task.problems, cfg.n_samples, cfg.ks(), cfg.bootstrap, cfg.seed
            )
    return curves


def write_results(out: Path, curves: dict, records: list[dict], title: str, extra: dict | None = None) -> dict:
    """Write ``curves.json``, ``curves.png`` and, last, ``summary.json`` (per task, ``extra[task]`` merged in).

    ``summary.json`` goes last: its presence says the evaluation finished (``saved_results``).
    """
    summary = summarize(curves, records)
    for task, values in (extra or {}).items():
        summary.setdefault(task, {}).update(values)
    plot_curves(curves, out / PLOT_FILE, title)  # matplotlib leaves NaN out of a curve
    curves, summary = finite(curves), finite(summary)  # valid JSON: what could not be computed is null, not NaN
    write_file(out / CURVES_FILE, json.dumps(curves, indent=1, allow_nan=False))
    write_file(out / SUMMARY_FILE, json.dumps(summary, indent=1, allow_nan=False))
    return {"curves": curves, "summary": summary}


def saved_results(out: str | Path) -> dict | None:
    """The ``{"curves", "summary"}`` of a finished evaluation in ``out``, or None when it has not finished."""
    out = Path(out)
    if not (out / SUMMARY_FILE).exists():
        return None
    return {
        "curves": json.loads((out / CURVES_FILE).read_text()),
        "summary": json.loads((out / SUMMARY_FILE).read_text()),
    }
