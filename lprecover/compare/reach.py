"""The comparison's tokens- and compute-to-recover part: per recipe, the training tokens and FLOPs at which its
recovery curve first won back 50% and 90% of what pruning lost (``evaluation/to_reach.py``), ranked, with the
settled pairs, beside the knowledge control before and after recovery.

Names in ``summary.json`` (each ``{value, ci_low, ci_high, resamples_reached, reason}``, in every recovered run's
row of each reasoning task): ``tokens_to_50``, ``compute_to_50``, ``tokens_to_90``, ``compute_to_90`` (the area
share), and ``tokens_to_50_slope``, ``compute_to_50_slope``, ``tokens_to_90_slope``, ``compute_to_90_slope`` (the
slope share). ``ranking_to_reach`` ranks by ``tokens_to_50`` and ``compute_to_50``. ``pairs_to_reach`` holds every
pair of a ranking, earlier run first: paired on the same resamples of problems where both runs were scored on the same
problems (``paired: true``; ``difference``: the 95% interval of the earlier run's crossing minus the later one's,
``first_share``: the share of resamples in which the earlier run reaches strictly first), else by their separate
intervals (``paired: false``). A pair is ``settled`` where the earlier run reaches first in at least 97.5% of the
resamples (paired), or where its interval lies wholly below the later run's (not paired); ``settled_pairs`` lists
the settled pairs. The measured seconds (``seconds_to_*``, ``train_seconds``) differ from run to
run, so they go to ``seconds.json`` and the report, never to ``summary.json``.
"""

import math

from lprecover.evaluation.to_reach import paired_difference, reach_measures

LEVELS = (50, 90)
REACH_KEYS = tuple(f"{a}_to_{lvl}{s}" for s in ("", "_slope") for lvl in LEVELS for a in ("tokens", "compute"))
SECONDS_KEYS = tuple(f"seconds_to_{lvl}{s}" for s in ("", "_slope") for lvl in LEVELS)
RANKED_BY = ("tokens_to_50", "compute_to_50")


def reach_points(run) -> list[dict]:
    """The run's evaluations in training order (``evaluate_at`` points, then the final model) with their tokens,
    FLOPs and seconds (``recovery.json``'s ``compute``; None where a run predates it)."""
    points = [{"eval_dir": p["eval_dir"], "tokens": p["tokens"]} | _spent(p.get("compute")) for p in run.progress]
    return points + [{"eval_dir": run.eval_dir, "tokens": run.training_tokens} | _spent(run.compute)]


def _spent(compute: dict | None) -> dict:
    compute = compute or {}
    return {"compute": compute.get("flops"), "seconds": compute.get("train_seconds")}


def score_reach(run, teacher, base, n_boot: int, draws_out: dict | None = None) -> dict:
    """``reach_measures`` of ``run`` against ``teacher`` and its pruned ``base`` (Run objects); each crossing's
    resamples go to ``draws_out`` where given."""
    return reach_measures(teacher.eval_dir, base.eval_dir, reach_points(run), n_boot=n_boot, draws_out=draws_out)


def reach_row(reach: dict, task: str) -> dict:
    """The ``summary.json`` entries of one run on ``task`` (None where it was not scored)."""
    measures = reach.get(task, {})
    return {k: measures.get(k) for k in REACH_KEYS}


def seconds_row(run, reach: dict, task: str) -> dict:
    """The measured seconds of one run on ``task``, for ``seconds.json`` (not reproducible)."""
    return {"train_seconds": (run.compute or {}).get("train_seconds")} | {
        k: reach.get(task, {}).get(k) for k in SECONDS_KEYS
    }


def lower(m: dict | None) -> float | None:
    """The lower bound: ``ci_low``, +inf where it is "not reached", None where there is no interval."""
    if not m:
        return None
    if m["ci_low"] is not None:
        return m["ci_low"]
    return math.inf if m.get("resamples_reached") is not None else None


def upper(m: dict | None) -> float | None:
    """The upper bound: ``ci_high``, +inf where it is "not reached", None where there is no interval."""
    if not m:
        return None
    if m["ci_high"] is not None:
        return m["ci_high"]
    return math.inf if m.get("resamples_reached") is not None else None


def separated(a: dict, b: dict) -> bool:
    """``a``'s interval lies wholly below ``b``'s (a reaches the level in fewer tokens, whatever the resample)."""
    hi, lo = upper(a), lower(b)
    return hi is not None and lo is not None and hi < lo


def _rankable(m: dict | None) -> bool:
    """Reached, or not reached by the last point (ranked last); not a crossing left undefined by nothing lost."""
    return bool(m) and (m["value"] is not None or (m["reason"] or "").startswith("not reached"))


def pair(a: dict, b: dict, task: str, key: str, draws: dict) -> dict:
    """The comparison of ranked entries ``a`` (earlier) and ``b`` on ``key`` (module docstring): paired where both
    runs' resamples of ``task`` are in ``draws`` and were drawn on the same problems, else by separate intervals."""
    da, db = (draws.get(x["run"], {}).get(task) for x in (a, b))
    out = {"faster": a["run"], "slower": b["run"]}
    if da and db and da["resamples"] == db["resamples"] and key in da["draws"] and key in db["draws"]:
        diff = paired_difference(da["draws"][key], db["draws"][key])
        va, vb = a[key]["value"], b[key]["value"]
        value = va - vb if va is not None and vb is not None else None
        interval = {"value": value, "ci_low": diff["ci_low"], "ci_high": diff["ci_high"]}
        return out | {
            "paired": True,
            "difference": interval,
            "first_share": diff["first_share"],
            "settled": diff["settled"],
        }
    return out | {"paired": False, "difference": None, "first_share": None, "settled": separated(a[key], b[key])}


def _ranked_rows(summary: dict, task: str, key: str) -> list[dict]:
    rows = [r["tasks"][task] for r in summary["runs"] if r["kind"] == "recovered" and task in r["tasks"]]
    rows = [t for t in rows if _rankable(t.get(key))]
    return sorted(rows, key=lambda t: (t[key]["value"] is None, t[key]["value"] or 0.0, t["run"]))


def reach_ranking(summary: dict, task: str, key: str, draws: dict | None = None) -> list[dict]:
    """Recovered runs on ``task`` by ``key`` (fewest tokens or FLOPs first; "not reached" last), each with
    ``separated_from_next``: it is settled before the next one (:func:`pair`; ``draws``: per run name, its
    crossings per resample by task, as ``reach_measures`` gives them)."""
    rows = _ranked_rows(summary, task, key)
    out = []
    for i, t in enumerate(rows):
        settled = i + 1 < len(rows) and pair(t, rows[i + 1], task, key, draws or {})["settled"]
        out.append({"run": t["run"], "ranked_by": key, key: t[key], "separated_from_next": settled})
    return out


def ranked_pairs(summary: dict, task: str, key: str, draws: dict | None = None) -> list[dict]:
    """Every pair of the ranking by ``key`` on ``task``, earlier run first (:func:`pair`)."""
    ranked = _ranked_rows(summary, task, key)
    return [pair(a, b, task, key, draws or {}) for i, a in enumerate(ranked) for b in ranked[i + 1 :]]


def add_reach(summary: dict, draws: dict | None = None) -> None:
    """``ranking_to_reach``, ``pairs_to_reach`` and ``settled_pairs`` (per task, per ranking key) into ``summary``;
    ``draws`` (per run name, as ``reach_measures`` gives them) pairs the comparisons."""
    tasks, keys = summary["tasks"], RANKED_BY
    summary["ranking_to_reach"] = {t: {k: reach_ranking(summary, t, k, draws) for k in keys} for t in tasks}
    summary["pairs_to_reach"] = {t: {k: ranked_pairs(summary, t, k, draws) for k in keys} for t in tasks}
    summary["settled_pairs"] = {
        t: {k: [[p["faster"], p["slower"]] for p in summary["pairs_to_reach"][t][k] if p["settled"]] for k in keys}
        for t in tasks
    }


def _number(x: float, unit: str) -> str:
    if math.isinf(x):
        return "not reached"
    return f"{x / 1e3:.1f}k" if unit == "tokens" else f"{x:.2e}"


def reach_text(m: dict | None, unit: str = "tokens") -> str:
    """``12.3k [8.1k, 15.0k]``; ``not reached`` for a value or bound never reached (alone where the interval is
    wholly unreached too); ``-`` where undefined."""
    if not m:
        return "-"
    if m["value"] is None and not (m["reason"] or "").startswith("not reached"):
        return "-"
    value = _number(m["value"] if m["value"] is not None else math.inf, unit)
    lo, hi = lower(m), upper(m)
    if m["value"] is None and lo == math.inf:
        return value  # no resample reached it either
    return value + (f" [{_number(lo, unit)}, {_number(hi, unit)}]" if lo is not None and hi is not None else "")


REACH_LEGEND = (
    "Tokens (and FLOPs) at which the area share of the lost area won back first reaches 50% and 90% "
    "(`evaluation/to_reach.py`): interpolated linearly between the evaluations along training, the curve starting at "
    "the pruned model (0 tokens, share 0); the first crossing where a curve crosses, falls back and crosses again; "
    "95% paired bootstrap intervals over problems, each resample recomputing every curve and its crossing (a "
    "resample that never reaches counts as infinite: a bound on such resamples reads `not reached`). Two recipes are "
    "settled where, on the same resamples, the earlier reaches first in at least 97.5% of them (runs scored on "
    "other problems: where their intervals lie apart). FLOPs: "
    "`T (4N + 2N_train) + T 2N_teacher (teacher online) + G 2N (generated)`, N non-embedding "
    "(`recovery/compute.py`). Seconds are measured wall clock (`seconds.json`), not reproducible."
)


def reach_lines(summary: dict, seconds: dict, control: str | None) -> list[str]:
    """The report's section: the table per task, the two rankings and the settled pairs in a sentence each."""
    lines = []
    for task in summary["tasks"]:
        rows = [r for r in summary["runs"] if r["kind"] == "recovered" and r["tasks"][task].get("tokens_to_50")]
        if not rows:
            continue
        lines += [f"## {task}: tokens and compute to recover", "", REACH_LEGEND, ""]
        head = ["run", "tokens to 50%", "FLOPs to 50%", "tokens to 90%", "FLOPs to 90%", "tokens to 50% (slope)"]
        head += ["seconds to 50% (measured)", "training seconds"]
        head += [f"{control} before -> after"] if control else []
        lines += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        pruned = {
            tuple(r["layers_removed"]): r["tasks"][task]["control_accuracy"]
            for r in summary["runs"]
            if r["kind"] == "pruned"
        }
        for r in rows:
            t = r["tasks"][task]
            s = seconds.get(r["run"], {}).get(task, {})
            cells = [r["run"], reach_text(t["tokens_to_50"]), reach_text(t["compute_to_50"], "flops")]
            cells += [reach_text(t["tokens_to_90"]), reach_text(t["compute_to_90"], "flops")]
            cells += [reach_text(t["tokens_to_50_slope"])]
            sec = (s.get("seconds_to_50") or {}).get("value")
            cells += [f"{sec:.0f}" if sec is not None else "-"]
            cells += [f"{s['train_seconds']:.0f}" if s.get("train_seconds") is not None else "-"]
            if control:
                before = pruned.get(tuple(r["layers_removed"]))
                after = t["control_accuracy"]
                cells.append(" -> ".join("-" if v is None else f"{v:.2f}" for v in (before, after)))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        for key in RANKED_BY:
            ranked = summary["ranking_to_reach"][task][key]
            if not ranked:
                continue
            unit = "tokens" if key.startswith("tokens") else "flops"
            order = [
                f"{i}. {r['run']} {reach_text(r[key], unit)}"
                + (" (settled before the next)" if r["separated_from_next"] else "")
                for i, r in enumerate(ranked, 1)
            ]
            lines += [f"Ranked by `{key}`: " + "; ".join(order) + ".", ""]
            pairs = summary["settled_pairs"][task][key]
            lines += [settled_sentence(pairs, key), ""]
    return lines


def settled_sentence(pairs: list[list[str]], key: str) -> str:
    """One plain sentence on which pairs the ranking by ``key`` settles."""
    if not pairs:
        return f"No pair of recipes is settled on `{key}`: no recipe reaches first in 97.5% of the resamples."
    listed = ", ".join(f"{a} before {b}" for a, b in pairs)
    return f"Settled on `{key}` (first in at least 97.5% of the resamples): {listed}."
