"""``diagnosis.json``, ``report.md`` and ``damage.png`` from the measured pieces (docs/diagnose.md defines every
field)."""

import json
from pathlib import Path

import numpy as np

from lprecover.atomic import write_figure, write_file
from lprecover.diagnose.nll import PARTS
from lprecover.diagnose.sweep import interval, problem_curves
from lprecover.evaluation.metrics import curve_area, finite, scaling_slope

DIAGNOSIS_FILE, REPORT_FILE, FIGURE_FILE = "diagnosis.json", "report.md", "damage.png"
DAMAGES = (
    ("reasoning", "reasoning_area_drop"),
    ("knowledge", "knowledge_drop"),
    ("nll", "trace_nll_increase"),
)


def _teacher(records, task, control, budgets, samples, nll_rows) -> dict:
    out = {"trace_nll": {k: float(np.mean([r[k] for r in nll_rows])) for k in ("total", "thinking", "answer")}}
    if records:
        _, m = problem_curves(records, task, budgets[task], samples)
        out["reasoning_area"] = float(curve_area(budgets[task], m.mean(axis=0)))
        out["reasoning_slope"] = float(scaling_slope(budgets[task], m.mean(axis=0)))
        if control:
            _, k = problem_curves(records, control, [max(budgets[control])], samples)
            out["knowledge_accuracy"] = float(k.mean())
    return out


def _entry(d: dict, n_boot: int, seed: int) -> dict:
    """One removal's damages as intervals."""
    entry = {}
    for key, name in (("reasoning_area", "reasoning_area_drop"), ("reasoning_slope", "reasoning_slope_drop")):
        entry[name] = interval(d[key], n_boot, seed) if key in d else None
    entry["knowledge_drop"] = interval(d["knowledge"], n_boot, seed) if "knowledge" in d else None
    entry["trace_nll_increase"] = {p: interval(d[f"nll_{p}"], n_boot, seed) for p in ("total", "thinking", "answer")}
    return entry


def assemble(cfg, removals, task, control, budgets, records, nll, damages, criteria, swap, n_traces) -> dict:
    """The content of ``diagnosis.json``: ``layers`` from the single removals, ``pairs`` from the contiguous ones."""
    n_boot, seed = cfg.eval.bootstrap, cfg.eval.seed
    layers = [{"layer": r[0], **_entry(damages[r], n_boot, seed)} for r in removals if len(r) == 1]
    pairs = [{"layers": list(r), **_entry(damages[r], n_boot, seed)} for r in removals if len(r) == 2]
    return finite(
        {
            "model": cfg.model.name_or_path,
            "task": task if cfg.generation else None,
            "control": control if cfg.generation else None,
            "budgets": budgets,
            "num_traces": n_traces,
            "teacher": _teacher(
                records if cfg.generation else [], task, control, budgets, cfg.eval.seq_samples, nll["teacher"]
            ),
            "layers": layers,
            "pairs": pairs if cfg.pairs else None,
            "criteria": criteria,
            "swap": swap,
        }
    )


def _value(x):
    return None if x is None else x["value"]


def _fmt(x, digits=3) -> str:
    if x is None or x.get("value") is None:
        return "-"
    if x.get("ci_low") is None:
        return f"{x['value']:.{digits}f}"
    return f"{x['value']:.{digits}f} [{x['ci_low']:.{digits}f}, {x['ci_high']:.{digits}f}]"


def _damage_row(label: str, e: dict) -> str:
    """One row of the damage tables: a removed layer (or pair) and its four damages."""
    n = e["trace_nll_increase"]
    cells = [e["reasoning_area_drop"], e["reasoning_slope_drop"], e["knowledge_drop"], *(n[k] for k in PARTS)]
    return f"| {label} | " + " | ".join(_fmt(c) for c in cells) + " |"


def markdown(d: dict) -> str:
    """``report.md``: the damage per layer, the criteria ranked by fidelity, and the swap."""
    lines = [f"# Diagnosis of {d['model']}", ""]
    t = d["teacher"]
    measured = [
        f"{name} {t[key]:.3f}"
        for name, key in (
            ("area", "reasoning_area"),
            ("slope", "reasoning_slope"),
            ("knowledge", "knowledge_accuracy"),
        )
        if t.get(key) is not None
    ]
    nll = t["trace_nll"]
    measured.append(f"trace NLL {nll['total']:.3f} (thinking {nll['thinking']:.3f}, answer {nll['answer']:.3f})")
    lines.append(
        f"Reasoning task: {d['task'] or '-'}; knowledge control: {d['control'] or '-'}; {d['num_traces']} reference "
        f"traces. Teacher: {', '.join(measured)}."
    )
    lines += ["", "## Damage of removing each layer alone (teacher minus pruned; 95% interval over problems)", ""]
    header = "| {} | reasoning area drop | slope drop | knowledge drop | NLL increase | thinking | answer |"
    lines += [header.format("layer"), "|---|---|---|---|---|---|---|"]
    lines += [_damage_row(str(e["layer"]), e) for e in d["layers"]]
    if d.get("pairs"):
        lines += ["", "## Damage of removing each contiguous pair", ""]
        lines += [header.format("layers"), "|---|---|---|---|---|---|---|"]
        lines += [_damage_row(f"{e['layers'][0]}, {e['layers'][1]}", e) for e in d["pairs"]]
    for damage, title in (("reasoning", "reasoning damage"), ("knowledge", "knowledge damage"), ("nll", "NLL damage")):
        ranked = sorted(
            d["criteria"].items(),
            key=lambda kv: -((kv[1].get(f"spearman_{damage}") or {}).get("value") or -2),
        )
        if not ranked or all(c.get(f"spearman_{damage}") is None for _, c in ranked):
            continue
        lines += ["", f"## Criteria ranked by how well they predict {title}", ""]
        lines.append("| criterion | Spearman (95% interval) | first pick | its rank (1 = least damaging) |")
        lines.append("|---|---|---|---|")
        for name, c in ranked:
            rank = c["first_pick_rank"].get(damage)
            lines.append(
                f"| {name} | {_fmt(c.get(f'spearman_{damage}'), 2)} | {c['first_pick']} | "
                f"{'-' if rank is None else format(rank, 'g')} of {len(d['layers'])} |"
            )
    s = d.get("swap")
    if s:
        lines += [
            "",
            f"## Think/answer swap on {s['task']} (teacher = {s['models']['teacher']}, other = "
            f"{s['models']['other']})",
            "",
        ]
        budgets = next(iter(s["curves"].values()))["budget"]
        lines.append("| thinker | answerer | area | " + " | ".join(f"B={b}" for b in budgets) + " |")
        lines.append("|---|---|---|" + "---|" * len(budgets))
        for c in s["curves"].values():
            accs = " | ".join(f"{a:.3f}" for a in c["accuracy"])
            lines.append(f"| {c['thinker']} | {c['answerer']} | {c['area']:.3f} | {accs} |")
        lines += [
            "",
            f"Area lost by the other model: {s['lost']:.3f}. Share back when only the answerer is the teacher's: "
            f"{_fmt(s['answerer_share'], 2)}; when only the thinker is: {_fmt(s['thinker_share'], 2)}.",
            "",
            "Hidden-state cosine of the other model's blocks with the teacher's, by original layer: "
            + ", ".join(f"{o}: {c:.4f}" for o, c in s["hidden_cosine"].items())
            + ".",
        ]
    return "\n".join(lines) + "\n"


def plot(d: dict, path: Path) -> None:
    """The three damages per layer side by side, with their 95% intervals."""
    import matplotlib  # noqa: PLC0415 - optional heavy dependency, loaded only to draw

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415 - as above

    layers = [e["layer"] for e in d["layers"]]
    panels = [
        ("reasoning area drop", [e["reasoning_area_drop"] for e in d["layers"]]),
        ("knowledge drop", [e["knowledge_drop"] for e in d["layers"]]),
    ]
    panels = [(t, v) for t, v in panels if any(x is not None for x in v)]
    width = max(4.2, 0.22 * len(layers))
    fig, axes = plt.subplots(1, len(panels) + 2, figsize=(width * (len(panels) + 1) + 4.5, 3.6), squeeze=False)
    x = np.arange(len(layers))

    def bars(ax, at, values, width=0.8, label=None):
        v = np.array([np.nan if e is None or e["value"] is None else e["value"] for e in values])
        lo = np.array([np.nan if e is None or e["ci_low"] is None else e["ci_low"] for e in values])
        hi = np.array([np.nan if e is None or e["ci_high"] is None else e["ci_high"] for e in values])
        err = np.nan_to_num(np.vstack([v - lo, hi - v]))
        ax.bar(at, v, width, yerr=err, capsize=2, label=label)

    for ax, (title, values) in zip(axes[0], panels):
        bars(ax, x, values)
        ax.set(title=title, xlabel="removed layer")
    ax = axes[0][len(panels)]
    for k, part in enumerate(("thinking", "answer")):
        bars(ax, x + (k - 0.5) * 0.4, [e["trace_nll_increase"][part] for e in d["layers"]], 0.4, part)
    ax.set(title="trace NLL increase (nats/token)", xlabel="removed layer")
    ax.legend()
    step = max(1, len(layers) // 15)
    for ax in axes[0][: len(panels) + 1]:
        ax.axhline(0, color="grey", lw=0.6)
        ax.set_xticks(x[::step], [str(i) for i in layers[::step]])
    ax = axes[0][-1]  # how well each criterion's scores rank the layers by each damage
    names = list(d["criteria"])
    kinds = [k for k in ("reasoning", "knowledge", "nll") if any(d["criteria"][n].get(f"spearman_{k}") for n in names)]
    for j, kind in enumerate(kinds):
        at = np.arange(len(names)) + (j - (len(kinds) - 1) / 2) * 0.8 / max(1, len(kinds))
        bars(ax, at, [d["criteria"][n].get(f"spearman_{kind}") for n in names], 0.8 / max(1, len(kinds)), kind)
    ax.set_xticks(np.arange(len(names)), names, rotation=45, ha="right")
    ax.set(title="criterion fidelity (Spearman)", ylim=(-1.05, 1.05))
    ax.axhline(0, color="grey", lw=0.6)
    if kinds:
        ax.legend(fontsize=7)
    fig.suptitle(f"{d['model']}: damage of removing one layer, and which criteria predict it", fontsize=10)
    fig.tight_layout()
    write_figure(path, fig, dpi=110)
    plt.close(fig)


def write(out: Path, d: dict) -> None:
    plot(d, out / FIGURE_FILE)
    write_file(out / REPORT_FILE, markdown(d))
    write_file(out / DIAGNOSIS_FILE, json.dumps(d, indent=1, allow_nan=False))  # last: its presence says finished
