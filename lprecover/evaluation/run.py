"""Test-time scaling evaluation: sequential curves by budget forcing, parallel curves by sampling.

``run_eval`` generates whatever ``samples.jsonl`` in the output folder does not hold yet, then recomputes
``curves.json``, ``summary.json`` and ``curves.png`` from all records. ``lprecover eval`` and the recipes'
post-training evaluation both call it.
"""

import json
from pathlib import Path

from lprecover.atomic import write_file
from lprecover.evaluation.budget_forcing import check_close, prompt_ids, sampling_key, think_format
from lprecover.evaluation.config import EvalConfig
from lprecover.evaluation.curves import parallel_curve, plot_curves, sequential_curve, summarize
from lprecover.evaluation.engines import HFEngine
from lprecover.evaluation.metrics import (
    finite,
)
from lprecover.evaluation.processes import Processes
from lprecover.evaluation.records import SampleStore, prompt_hash
from lprecover.evaluation.scoring import answers_match, canonical, extract_answer
from lprecover.evaluation.tasks import Task, load_task
from lprecover.log import get_logger, progress
from lprecover.registry import ModelTraits, model_traits

logger = get_logger(__name__)

CURVES_FILE, SUMMARY_FILE, PLOT_FILE = "curves.json", "summary.json", "curves.png"


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


def traits_of(model) -> ModelTraits:
    """The registered traits of the model (or engine) being evaluated; the defaults for one no plugin knows."""
    return model_traits(getattr(model, "config", None))


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
    traits = traits_of(engine)
    fmt = think_format(tokenizer, model_cfg, cfg.waits(), traits.answer_prefix)
    seq_names = cfg.tasks or list(traits.tasks)
    # A model's own parallel default applies only to its own default tasks (a control may need no samples).
    par_names = cfg.parallel_tasks or (
        list(traits.parallel_tasks) if not cfg.tasks and traits.parallel_tasks else seq_names
    )
    names = list(dict.fromkeys((seq_names if cfg.sequential else []) + (par_names if cfg.parallel else [])))
    tasks = [load_task(t, cfg.num_problems, cfg.paths.get(t), model_options=traits.task_options) for t in names]
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
