"""Run a diagnosis into ``output_dir``, resuming what is there.

Layout: ``teacher/`` (the unpruned model's evaluation, ``run_eval``'s files), ``teacher_nll.json``,
``layers/<i>/nll.json`` and ``layers/<i>/eval/`` (layer i removed), ``layers/<i>/damage.json`` (its damages with the
per-problem values, written once both are there), ``criteria/<name>.json`` (scores), ``swap/<cell>/`` (one
evaluation per think/answer cell), then ``diagnosis.json``, ``report.md``, ``damage.png`` and ``swap_samples.jsonl``.
Every file is written whole (``atomic.write_file``); a rerun reads each finished piece back instead of redoing it.
"""

import copy
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from lprecover.atomic import write_file
from lprecover.config import ConfigError, reuse_or_refuse, save_settings, to_dict
from lprecover.diagnose import report, swap
from lprecover.diagnose.config import DiagnoseCommand
from lprecover.diagnose.cosine import hidden_cosine
from lprecover.diagnose.fidelity import fidelity
from lprecover.diagnose.nll import PARTS, layer_nll, traces_from_file, traces_from_records
from lprecover.diagnose.sweep import (
    criterion_scores,
    evaluate_removed,
    knowledge_damage,
    problem_curves,
    reasoning_damage,
)
from lprecover.evaluation.budget_forcing import think_format
from lprecover.evaluation.records import read_samples
from lprecover.evaluation.run import run_eval, saved_results, traits_of
from lprecover.evaluation.tasks import load_task
from lprecover.log import get_logger
from lprecover.modeling import (
    ModelConfig,
    default_device,
    load_model,
    load_model_and_tokenizer,
    load_tokenizer,
    read_model_config,
)
from lprecover.pruning.calibration import build_calibration
from lprecover.pruning.criteria import NEEDS_CALIBRATION
from lprecover.surgery import layer_count, remove_layers, validate_layers

logger = get_logger(__name__)

SWAP_SAMPLES = "swap_samples.jsonl"
# Settings that may change between launches of one diagnosis: which layers and criteria are added to it (each is
# stored apart), whether generation runs (its results are stored apart from the NLL's), and how records are made.
RESUMABLE = ("overwrite", "layers", "stride", "pairs", "criteria", "generation", "eval.one_pass", "eval.reuse_cache")


def check_inputs(cfg: DiagnoseCommand) -> tuple[list[int], int]:
    """The layers to sweep and the model's layer count, from its config alone; refuse impossible layer choices before
    loading weights."""
    n = layer_count(read_model_config(cfg.model))
    if n < 2:
        raise ConfigError(f"The model has {n} layer; removing it would leave none. Diagnose a model of 2 or more.")
    bad = [i for i in cfg.layers or [] if i >= n]
    if bad:
        raise ConfigError(f"layers {bad} out of range: the model has {n} layers, indexed 0..{n - 1}.")
    if cfg.swap_layers:
        try:
            validate_layers(cfg.swap_layers, n, "swap_layers")
        except ValueError as e:
            raise ConfigError(str(e)) from None
    if (cfg.swap_layers or cfg.swap_with) and not think_format(load_tokenizer(cfg.model), cfg.model).close:
        raise ConfigError(
            "The think/answer swap hands one model's thinking to another at the end-of-thinking delimiter, and this "
            "model family has none; set model.think_close=... or drop swap_layers/swap_with."
        )
    if cfg.swap_with:
        read_model_config(ModelConfig(name_or_path=cfg.swap_with), what="swap_with")
        swap.check_tokenizers(
            load_tokenizer(cfg.model), load_tokenizer(_other_cfg(cfg)), f"swap_with '{cfg.swap_with}'"
        )
    return sorted(cfg.layers or range(n))[:: cfg.stride], n


def _other_cfg(cfg: DiagnoseCommand) -> ModelConfig:
    return replace(cfg.model, name_or_path=cfg.swap_with)


def _write_json(path: Path, value) -> None:
    write_file(path, json.dumps(value, indent=1, allow_nan=False))


def _read_json(path: Path):
    return json.loads(path.read_text())


def diagnose(cfg: DiagnoseCommand) -> dict:
    """Diagnose as ``cfg`` says into ``cfg.output_dir`` (resuming) and return the ``diagnosis.json`` content."""
    started = time.perf_counter()
    swept, n = check_inputs(cfg)
    pairs = [(i, i + 1) for i in swept if i + 1 < n and n > 2] if cfg.pairs else []
    removals = [(i,) for i in swept] + pairs
    out = Path(cfg.output_dir)
    settings = to_dict(cfg)
    if reuse_or_refuse(out, settings, "a diagnosis", cfg.overwrite, ignore=RESUMABLE) == "fresh" and out.exists():
        shutil.rmtree(out)
    save_settings(out, settings)
    model, tokenizer = load_model_and_tokenizer(cfg.model, default_device())
    traits = traits_of(model)
    defaults = list(traits.tasks)
    task = cfg.task or defaults[0]
    control = cfg.control or (defaults[1] if len(defaults) > 1 and defaults[1] != task else None)
    tasks = [task] + ([control] if control else [])
    eval_cfg = replace(cfg.eval, tasks=tasks, parallel=False, sequential=True)
    fmt = think_format(tokenizer, cfg.model, cfg.eval.waits(), traits.answer_prefix)

    teacher_records, budgets = [], {}
    if cfg.generation or not cfg.traces:
        result = saved_results(out / "teacher") or run_eval(
            model, tokenizer, eval_cfg, out / "teacher", cfg.model, title="teacher"
        )
        teacher_records = read_samples(out / "teacher")
        budgets = {t: result["curves"]["sequential"][t]["budget"] for t in tasks}

    seconds = {"load_and_teacher_eval": time.perf_counter() - started}

    def lap(name):
        seconds[name] = time.perf_counter() - started - sum(seconds.values())

    traces = _traces(cfg, tokenizer, fmt, task, teacher_records, budgets, model)
    nll = _nll_sweep(cfg, model, tokenizer, traces, removals, out)
    lap("nll_sweep")
    damages = {}
    for removal in removals:
        damages[removal] = _layer_damage(
            cfg, model, tokenizer, eval_cfg, removal, out, teacher_records, budgets, task, control, nll
        )
    lap("layer_evals")
    scores = _criteria(cfg, model, tokenizer, out)
    criteria = _fidelity(cfg, swept, damages, scores)
    lap("criteria")
    swap_result = (
        _swap(cfg, model, tokenizer, eval_cfg, out, teacher_records, budgets, task, traces) if _swaps(cfg) else None
    )
    lap("swap")
    diagnosis = report.assemble(
        cfg, removals, task, control, budgets, teacher_records, nll, damages, criteria, swap_result, len(traces)
    )
    seconds["total"] = time.perf_counter() - started
    diagnosis["seconds"] = seconds  # this run's own: pieces read back from an earlier run cost nothing here
    report.write(out, diagnosis)
    return diagnosis


def _swaps(cfg: DiagnoseCommand) -> bool:
    return bool(cfg.swap_layers or cfg.swap_with) and cfg.generation


def _traces(cfg, tokenizer, fmt, task, teacher_records, budgets, model):
    if cfg.traces:
        return traces_from_file(cfg.traces, tokenizer, fmt, cfg.num_traces, cfg.trace_max_tokens)
    top = max(budgets[task])
    options = traits_of(model).task_options
    problems = load_task(task, cfg.eval.num_problems, cfg.eval.paths.get(task), model_options=options)
    prompts = {p.id: p.prompt for p in problems.problems}
    rows = [r for r in teacher_records if r["task"] == task and r["budget"] == top and r["sample"] == 0]
    traces = traces_from_records(rows, prompts, tokenizer, fmt, cfg.num_traces, cfg.trace_max_tokens)
    if not traces:
        raise ConfigError(
            f"None of the model's {task} records fits trace_max_tokens={cfg.trace_max_tokens}; raise it or give "
            "traces=FILE."
        )
    return traces


def _folder(out: Path, removal: tuple[int, ...]) -> Path:
    return out / "layers" / "-".join(map(str, removal))


def _nll_sweep(cfg, model, tokenizer, traces, removals, out: Path) -> dict:
    """``{"teacher": rows, removal: rows}``: each removal's per-trace NLL, computed once and stored apart."""
    missing = [r for r in removals if not (_folder(out, r) / "nll.json").exists()]
    teacher_file = out / "teacher_nll.json"
    if missing or not teacher_file.exists():
        logger.info("NLL sweep over %d traces: removing %s", len(traces), missing)
        got = layer_nll(model, tokenizer, traces, missing, cfg.nll_batch_size)
        ids = [t.id for t in traces]
        _write_json(teacher_file, {"traces": ids, "nll": got["teacher"]})
        for r in missing:
            _write_json(_folder(out, r) / "nll.json", {"layers": list(r), "traces": ids, "nll": got[r]})
    nll = {"teacher": _read_json(teacher_file)["nll"]}
    for r in removals:
        nll[r] = _read_json(_folder(out, r) / "nll.json")["nll"]
    return nll


def _layer_damage(cfg, model, tokenizer, eval_cfg, removal, out, teacher_records, budgets, task, control, nll) -> dict:
    """The per-problem damages of removing ``removal`` (a tuple of layers), from its ``damage.json`` once written."""
    path = _folder(out, removal) / "damage.json"
    if path.exists():
        done = _read_json(path)
        if not cfg.generation or "reasoning_area" in done:  # a generation=false piece lacks what generation adds
            return done
    damage = {f"nll_{part}": [p[part] - t[part] for p, t in zip(nll[removal], nll["teacher"])] for part in PARTS}
    if cfg.generation:
        records = evaluate_removed(
            model, tokenizer, list(removal), eval_cfg, _folder(out, removal) / "eval", cfg.model
        )
        r = reasoning_damage(teacher_records, records, task, budgets[task], cfg.eval.seq_samples)
        damage |= {
            "reasoning_ids": r["ids"],
            "reasoning_area": r["area"].tolist(),
            "reasoning_slope": r["slope"].tolist(),
        }
        if control:
            damage["knowledge"] = knowledge_damage(
                teacher_records, records, control, budgets[control], cfg.eval.seq_samples
            ).tolist()
    _write_json(path, damage)
    return damage


def _criteria(cfg, model, tokenizer, out: Path) -> dict:
    """``{name: {"scores", "direction"}}``, each scored once on the unpruned model and stored."""
    found, cal = {}, None
    for name in cfg.criteria:
        path = out / "criteria" / f"{name}.json"
        if not path.exists():
            if name in NEEDS_CALIBRATION and cal is None:
                cal = build_calibration(
                    model,
                    tokenizer,
                    cfg.calibration,
                    cfg.calibration_path,
                    cfg.calibration_samples,
                    cfg.calibration_seq_len,
                    8,
                    cfg.eval.seed,
                )
            scores, sign = criterion_scores(model, cal, name)
            _write_json(path, {"scores": scores, "direction": sign})
        found[name] = _read_json(path)
    return found


def _fidelity(cfg, swept, damages, scores) -> dict:
    def matrix(key):
        if any(key not in damages[(i,)] for i in swept):
            return None
        return np.array([damages[(i,)][key] for i in swept], dtype=float)

    per_problem = {"reasoning": matrix("reasoning_area"), "knowledge": matrix("knowledge"), "nll": matrix("nll_total")}
    out = {}
    for name, s in scores.items():
        swept_scores = [s["scores"][i] for i in swept]
        f = fidelity(swept_scores, s["direction"], per_problem, cfg.eval.bootstrap, cfg.eval.seed)
        f["scores"] = {str(i): s["scores"][i] for i in range(len(s["scores"]))}
        f["first_pick"] = swept[f.pop("first_pick_index")]
        f.pop("importance")
        out[name] = f
    return out


def _swap(cfg, model, tokenizer, eval_cfg, out, teacher_records, budgets, task, traces) -> dict:
    """The four think/answer cells on the reasoning task, their curves and the shares (``swap`` module)."""
    models = {"teacher": model}

    def other():  # built only when a cell still needs generating
        if "other" not in models:
            if cfg.swap_layers:
                models["other"] = copy.deepcopy(model)
                remove_layers(models["other"], cfg.swap_layers, method="selection")
            else:
                models["other"] = load_model(_other_cfg(cfg), default_device()).eval()
        return models["other"]

    other_name = f"without layers {sorted(cfg.swap_layers)}" if cfg.swap_layers else cfg.swap_with
    one = replace(eval_cfg, tasks=[task])
    records = {("teacher", "teacher"): [r for r in teacher_records if r["task"] == task]}
    for thinker, answerer in swap.CELLS:
        if (thinker, answerer) in records:
            continue
        folder = swap.cell_folder(out, thinker, answerer)
        if saved_results(folder) is None:
            pick = {"teacher": model, "other": other()}
            engine = (
                pick[thinker] if thinker == answerer else swap.SwapEngine(pick[thinker], pick[answerer], tokenizer)
            )
            run_eval(engine, tokenizer, one, folder, cfg.model, title=swap.cell_name(thinker, answerer))
        records[(thinker, answerer)] = read_samples(folder)
    b = budgets[task]
    ids, _ = problem_curves(records[("teacher", "teacher")], task, b, cfg.eval.seq_samples)
    curves, areas = {}, {}
    for cell, rows in records.items():
        _, m = problem_curves(rows, task, b, cfg.eval.seq_samples, ids)
        areas[cell] = swap.problem_areas(m, b)
        curves[swap.cell_name(*cell)] = {
            "thinker": cell[0],
            "answerer": cell[1],
            "budget": b,
            "accuracy": m.mean(axis=0).tolist(),
            "area": float(areas[cell].mean()),
        }
    tagged = [r | {"thinker": t, "answerer": a} for (t, a), rows in records.items() for r in rows]
    write_file(out / SWAP_SAMPLES, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in tagged))
    cosine_file = out / "swap" / "hidden_cosine.json"
    if not cosine_file.exists():
        cos = hidden_cosine(model, other(), tokenizer, traces, cfg.nll_batch_size)
        _write_json(cosine_file, {str(o): c for o, c in cos.items()})
    names = {"teacher": cfg.model.name_or_path, "other": other_name}
    shares = swap.shares(areas, cfg.eval.bootstrap, cfg.eval.seed)
    return {"models": names, "task": task, "curves": curves, **shares, "hidden_cosine": _read_json(cosine_file)}
