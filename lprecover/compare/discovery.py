"""Finding the runs to compare: what each folder is (teacher, pruned base, recovered run) from what it saved, and
the roles named outright (``teacher=``, ``pruned=``)."""

import glob
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from lprecover.analysis import ANALYSIS_FILE
from lprecover.config import ConfigError, load_settings
from lprecover.log import get_logger
from lprecover.modeling import resolve_model_path
from lprecover.readers import read_json
from lprecover.recovery.outputs import (
    EVAL_DIR,
    METRICS_FILE,
    MODEL_DIR,
    RECOVERY_FILE,
    failure,
    progress_eval_dir,
    progress_model_dir,
    progress_steps_saved,
)
from lprecover.registry import model_source

logger = get_logger(__name__)


@dataclass
class Run:
    """One evaluated model and what it is: the teacher, a pruned base, or a recovered model."""

    name: str
    kind: str  # teacher | pruned | recovered
    path: str
    eval_dir: str | None
    curves: dict
    summary: dict
    source: str | None = None
    kept_layers: list[int] | None = None
    removed_layers: list[int] = field(default_factory=list)
    recipe: str | None = None
    training_tokens: int | None = None
    analysis: dict | None = None
    recovery: dict = field(default_factory=dict)
    # Evaluations along training (``evaluate_at``): {"step", "tokens", "eval_dir", "summary", "recovery"} each.
    progress: list[dict] = field(default_factory=list)
    compute: dict | None = None  # recovery.json's compute record of the final model (recovery/compute.py)
    reach: dict = field(default_factory=dict)  # tokens and compute to recover, per task (compare.reach)
    # Their crossings per resample, per task, to pair with another run's (evaluation.to_reach.paired_difference).
    reach_draws: dict = field(default_factory=dict)


def _read_json(path: Path):
    return read_json(path) if path.exists() else None


def _provenance(model_dir: Path) -> dict | None:
    config = _read_json(model_dir / "config.json") or {}
    return config.get("lprecover_pruning")


def _eval_run(eval_dir: Path, **fields) -> Run:
    curves, summary = _read_json(eval_dir / "curves.json"), _read_json(eval_dir / "summary.json")
    if curves is None or summary is None:
        raise ConfigError(f"{eval_dir} holds no finished evaluation (curves.json and summary.json).")
    return Run(
        eval_dir=str(eval_dir), curves=curves, summary=summary, analysis=_read_json(eval_dir / ANALYSIS_FILE), **fields
    )


def _recovered(path: Path) -> Run:
    record = json.loads((path / MODEL_DIR / RECOVERY_FILE).read_text())
    if not (path / EVAL_DIR / "curves.json").exists():
        raise ConfigError(f"Recovery run {path} was not evaluated: relaunch it with evaluate=true.")
    student = path / record["student"] if not Path(record["student"]).is_absolute() else Path(record["student"])
    prov = _provenance(path / MODEL_DIR) or _provenance(student) or {}
    history = _read_json(path / METRICS_FILE) or []
    tokens = [h["num_tokens"] for h in history if "num_tokens" in h]
    final_tokens = int(max(tokens)) if tokens else None
    progress = []
    for step in progress_steps_saved(path):
        eval_dir = path / progress_eval_dir(step)
        summary = _read_json(eval_dir / "summary.json")
        if summary is None or not (eval_dir / "curves.json").exists():
            continue  # saved but not evaluated (evaluate=false, or cut short): nothing to plot
        saved = json.loads((path / progress_model_dir(step) / RECOVERY_FILE).read_text())
        at = saved.get("num_tokens")
        if not at:  # a trainer that does not count its tokens (on-policy distillation): the training log's count
            logged = [h["num_tokens"] for h in history if "num_tokens" in h and h.get("step", 0) <= step]
            at = int(max(logged)) if logged else None
        progress.append(
            {
                "step": step,
                "tokens": at,
                "eval_dir": str(eval_dir),
                "summary": summary,
                "compute": saved.get("compute"),
            }
        )
    return _eval_run(
        path / EVAL_DIR,
        name=record.get("recipe") or record["run_name"],
        kind="recovered",
        path=str(path),
        source=prov.get("source_model") or record.get("source_model"),
        kept_layers=prov.get("kept_layers"),
        removed_layers=prov.get("removed_layers", []),
        recipe=record.get("recipe"),
        training_tokens=final_tokens,
        progress=progress,
        compute=record.get("compute"),
    )


def evaluated_model_dir(eval_dir: Path, saved: dict) -> Path:
    """Where the model an evaluation folder measured lies, whatever directory compare runs in.

    A relative ``model.name_or_path`` was relative to the directory ``lprecover eval`` ran in, and so was its
    relative ``output_dir``: the model therefore lies at the same relative place from the evaluation folder (which
    also holds when the whole study folder has been moved). Only when ``output_dir`` was absolute is the launch
    directory unknown, and the current one is tried.
    """
    name_or_path = (saved.get("model") or {}).get("name_or_path") or ""
    if model_source(name_or_path) is not None:  # a registered name (the organism): its source knows the folder
        return Path(resolve_model_path(name_or_path))
    model, out = Path(name_or_path), Path(saved.get("output_dir") or "")
    if model.is_absolute() or not name_or_path or out.is_absolute() or not saved.get("output_dir"):
        return model
    return eval_dir / os.path.relpath(model, out)


def _evaluated_model(path: Path) -> Run:
    saved = load_settings(path)
    name_or_path = (saved.get("model") or {}).get("name_or_path", "")
    model_dir = evaluated_model_dir(path, saved)
    prov = _provenance(model_dir) if model_dir.is_dir() else None
    if prov:
        n = len(prov["removed_layers"])
        return _eval_run(
            path,
            name=f"pruned-{n} ({prov['method']})",
            kind="pruned",
            path=str(path),
            source=prov.get("source_model"),
            kept_layers=prov["kept_layers"],
            removed_layers=prov["removed_layers"],
        )
    return _eval_run(path, name="teacher", kind="teacher", path=str(path), source=name_or_path or None)


def discover(path: str | Path) -> Run:
    """Recognise one folder from what it saved."""
    path = Path(path)
    if path.name == EVAL_DIR and (path.parent / MODEL_DIR / RECOVERY_FILE).exists():
        path = path.parent
    if (path / MODEL_DIR / RECOVERY_FILE).exists():
        return _recovered(path)
    if (path / "curves.json").exists():
        return _evaluated_model(path)
    if failed := failure(path):
        raise ConfigError(
            f"{path} holds no model to compare: its training diverged at step {failed['step']}: {failed['reason']}."
        )
    raise ConfigError(
        f"{path} is neither a recovery run (with {MODEL_DIR}/{RECOVERY_FILE}) nor an evaluation folder (with "
        "curves.json). Evaluate it first with `lprecover eval ... output_dir=DIR`."
    )


def collect(patterns: list[str] | str) -> list[Run]:
    """The runs named by folders and globs: a folder named outright must be a run; a glob skips what is not."""
    runs = []
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        if not any(c in pattern for c in "*?["):
            runs.append(discover(pattern))
            continue
        found = [Path(p) for p in sorted(glob.glob(pattern)) if Path(p).is_dir()]
        for path in found:
            try:
                runs.append(discover(path))
            except ConfigError:
                logger.info("Skipping %s: not an evaluated run.", path)
        if not found:
            raise ConfigError(f"runs pattern '{pattern}' matches nothing.")
    return runs


def with_roles(teacher: str, pruned: str, recovered: list[str] | str) -> list[Run]:
    """Runs whose roles are named outright: the teacher's and the pruned base's evaluation folders, and recovered
    models (evaluation folders, e.g. imported lm-eval logs, or recovery run folders), each named by its folder."""
    paths = [recovered] if isinstance(recovered, str) else list(recovered)
    found = [
        p for pattern in paths for p in (sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") else [pattern])
    ]
    runs = [_eval_run(Path(teacher), name="teacher", kind="teacher", path=teacher)]
    runs.append(_eval_run(Path(pruned), name="pruned", kind="pruned", path=pruned))
    for path in found:
        path = Path(path)
        if (path / MODEL_DIR / RECOVERY_FILE).exists() or (
            path.name == EVAL_DIR and (path.parent / MODEL_DIR).is_dir()
        ):
            run = discover(path)
            run.kept_layers = None  # scored against the pruned base named outright
        else:
            run = _eval_run(path, name=path.name, kind="recovered", path=str(path))
        runs.append(run)
    names = [r.name for r in runs]
    if len(set(names)) < len(names):
        raise ConfigError(f"Two compared runs share a name ({sorted(names)}); give each its own folder name.")
    if not found:
        raise ConfigError("runs= names no recovered evaluation to score against teacher= and pruned=.")
    return runs
