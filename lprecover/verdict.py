"""Did test-time scaling come back? One code and one sentence per recovered run and reasoning task.

The verdict reads the sequential recovery measures (``evaluation.recovery_measures``), in this order:

1. ``nothing_to_recover``: pruning lost no measurable area and no measurable slope (each loss below its minimum, or
   its paired interval reaching 0). Nothing to win back, whatever the recovered curve does; the sentence says
   where the recovered curve stands against the teacher instead.
2. The share won back, ``share``: ``area_recovered_share`` where the area loss is measurable, else
   ``slope_recovered_share`` (pruning cost slope but not area). The teacher-slope share,
   ``rho = slope_ratio_to_teacher = S_r / S_t``, is defined where the teacher scales.
3. ``returned``: ``share >= RETURNED_SHARE`` (0.7) and, where rho is defined, ``rho >= SLOPE_RETURNED`` (0.5).
   ``not_returned``: ``share < PARTLY_SHARE`` (0.3), or the curve is *flat*: ``rho < SLOPE_FLAT`` (0.25: under a
   quarter of the teacher's slope, the one definition of "flat" used here, in the collapse sentence and the
   slope leader).
   ``partly``: the rest.

The area share alone can mislead (a flat curve above a pruned model answering below chance wins back area without
any test-time scaling), and the slope share alone too (a pruned model steeper than its teacher), so the teacher's
slope is the yardstick for "does the curve still rise".
"""

from lprecover.evaluation.recovery_measures import MIN_AREA, MIN_SLOPE, measurable

RETURNED, PARTLY, NOT_RETURNED, NOTHING = "returned", "partly", "not_returned", "nothing_to_recover"
VERDICTS = (RETURNED, PARTLY, NOT_RETURNED, NOTHING)

RETURNED_SHARE, PARTLY_SHARE = 0.7, 0.3  # shares of the loss won back: at least RETURNED_SHARE; below PARTLY_SHARE
SLOPE_RETURNED, SLOPE_FLAT = 0.5, 0.25  # shares of the teacher's slope: needed to return; below: flat


def slope_share_of_teacher(slope: float | None, teacher_slope: float | None) -> float | None:
    """``S / S_t``: a curve's slope as a share of the teacher's, or None where the teacher does not scale
    (``S_t < MIN_SLOPE`` accuracy per doubling) and the share would divide by noise."""
    if slope is None or teacher_slope is None or teacher_slope < MIN_SLOPE:
        return None
    return slope / teacher_slope


def is_flat(share_of_teacher: float | None) -> bool:
    """Under a quarter of the teacher's slope (``SLOPE_FLAT``); False where the teacher's slope is no yardstick."""
    return share_of_teacher is not None and share_of_teacher < SLOPE_FLAT


def _value(measures: dict, key: str):
    return (measures.get(key) or {}).get("value")


def decide(measures: dict) -> str:
    """The verdict code of one recovered run on one task, from its sequential recovery measures (module docstring)."""
    area_lost = measurable(measures["area_lost"], MIN_AREA)
    slope_lost = "slope_lost" in measures and measurable(measures["slope_lost"], MIN_SLOPE)
    if not area_lost and not slope_lost:
        return NOTHING
    share = _value(measures, "area_recovered_share" if area_lost else "slope_recovered_share")
    rho = _value(measures, "slope_ratio_to_teacher")
    if share >= RETURNED_SHARE and (rho is None or rho >= SLOPE_RETURNED):
        return RETURNED
    if share < PARTLY_SHARE or is_flat(rho):
        return NOT_RETURNED
    return PARTLY


def _fixed(value: float, digits: int) -> str:
    """``value`` to ``digits`` decimals, without the sign of a value that rounds to zero ("-0.000")."""
    text = f"{value:.{digits}f}"
    return text.lstrip("-") if float(text) == 0 else text


def _pct(m: dict | None) -> str:
    """A share as a percentage with its interval where one exists: ``24% [13, 37]``."""
    if not m or m.get("value") is None:
        return "undefined"
    ci = f" [{_fixed(100 * m['ci_low'], 0)}, {_fixed(100 * m['ci_high'], 0)}]" if m.get("ci_low") is not None else ""
    return f"{_fixed(100 * m['value'], 0)}%{ci}"


def measure_text(m: dict | None, digits: int = 2, missing: str = "undefined") -> str:
    """A measure with its interval where one exists: ``0.40 [0.24, 0.55]``; ``missing`` where it is undefined."""
    if not m or m.get("value") is None:
        return missing
    ci = f" [{_fixed(m['ci_low'], digits)}, {_fixed(m['ci_high'], digits)}]" if m.get("ci_low") is not None else ""
    return f"{_fixed(m['value'], digits)}{ci}"


def _against_teacher(measures: dict) -> str:
    """Where the recovered curve ends up against the teacher's: its area as a ratio, its slope as a share."""
    ratio, rho = measures.get("area_ratio_to_teacher"), measures.get("slope_ratio_to_teacher")
    parts = []
    if ratio and ratio["value"] is not None:
        above = ratio["ci_low"] is not None and ratio["ci_low"] > 1
        parts.append(
            f"its area is {measure_text(ratio)} times the teacher's" + (" (above the teacher)" if above else "")
        )
    else:
        parts.append(
            f"its area is {measure_text(measures.get('recovered_area'))} against the teacher's "
            f"{measure_text(measures.get('teacher_area'))}"
        )
    if rho and rho["value"] is not None:
        parts.append(f"its slope {_pct(rho)} of the teacher's")
    elif "teacher_slope" in measures:
        parts.append(
            f"the teacher's curve does not rise (slope {measure_text(measures['teacher_slope'], 3)} per doubling)"
        )
    return ", ".join(parts)


def sentence(name: str, task: str, measures: dict, code: str) -> str:
    """The verdict in words, every number named and with its interval (``decide`` gives ``code``)."""
    problems = measures.get("problems")
    where = f"{name} on {task} ({problems} problem{'s' if problems != 1 else ''})"
    if code == NOTHING:
        return (
            f"{where}: pruning lost nothing measurable (area lost {measure_text(measures['area_lost'])}"
            + (f", slope lost {measure_text(measures['slope_lost'], 3)}" if "slope_lost" in measures else "")
            + f"), so there was nothing to recover; {_against_teacher(measures)}."
        )
    share = measures["area_recovered_share"]
    what = "area"
    if share["value"] is None:
        share, what = measures["slope_recovered_share"], "slope"
    state = {
        RETURNED: "scaling returned",
        PARTLY: "scaling partly returned",
        NOT_RETURNED: "scaling did not return",
    }[code]
    notes = []
    if code == NOT_RETURNED and is_flat(_value(measures, "slope_ratio_to_teacher")):
        notes.append("its curve is flat: under a quarter of the teacher's slope")
    below = (_value(measures, "pruned_area") or 0) - (_value(measures, "recovered_area") or 0)
    if what == "area" and below >= MIN_AREA:
        notes.append(f"its area is {below:.2f} below the pruned model's")
    state += f" ({'; '.join(notes)})" if notes else ""
    lost = measure_text(measures[f"{what}_lost"], 2 if what == "area" else 3)
    unit = "of area" if what == "area" else "of slope per doubling"
    return f"{where}: {state}. Recovery won back {_pct(share)} of the {lost} {unit} that pruning lost; {_against_teacher(measures)}."
