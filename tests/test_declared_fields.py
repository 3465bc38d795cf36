"""Bad input handled by construction: a test generated from the field declarations of every command.

For every command and every field that declares what it accepts (``config.declare``), a value just outside the
declaration, and a value of the wrong type, is given to the real command line. Each must exit 2 with one line
naming the key, no traceback, and nothing written. A new command without a schema here, or a numeric field
without a declared range, fails ``test_every_field_declares_what_it_accepts``.
"""

import dataclasses
import math
import types
import typing

import pytest

from lprecover.cli import COMMANDS
from lprecover.cli import main as cli
from lprecover.config import _dataclass_fields, declared


def _schemas() -> dict:
    from data_prep.config import DataConfig
    from lprecover.analysis import AnalyzeCommand
    from lprecover.compare.config import CompareCommand
    from lprecover.diagnose.config import DiagnoseCommand
    from lprecover.evaluation.cli import EvalCommand
    from lprecover.export import ExportCommand
    from lprecover.organism.cli import OrganismCommand
    from lprecover.pruning.cli import PruneCommand
    from lprecover.recovery.recipe import RecoveryConfig
    from lprecover.recovery.teacher_logits import TeacherLogitsConfig
    from lprecover.study import StudyConfig

    # command -> (schema, the arguments before the key=value ones)
    return {
        "organism": (OrganismCommand, ["build"]),
        "prune": (PruneCommand, []),
        "data": (DataConfig, []),
        "eval": (EvalCommand, []),
        "study": (StudyConfig, []),
        "compare": (CompareCommand, []),
        "export": (ExportCommand, []),
        "analyze": (AnalyzeCommand, []),
        "diagnose": (DiagnoseCommand, []),
        "teacher-logits": (TeacherLogitsConfig, []),
        "train": (RecoveryConfig, []),
    }


SCHEMAS = _schemas()


def _leaves(cls, prefix=""):
    """(dotted key, field, its type) of every non-section field of a schema."""
    hints = _dataclass_fields(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _leaves(hints[f.name], f"{prefix}{f.name}.")
        else:
            yield prefix + f.name, f, hints[f.name]


def _base(tp):
    """The type without Optional: ``int | None`` -> int."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    union = typing.get_origin(tp) in (typing.Union, types.UnionType)
    return args[0] if union and len(args) == 1 else tp


def _scalar(tp):
    """The element type of a list or dict field, else the type."""
    base = _base(tp)
    origin = typing.get_origin(base)
    if origin is list:
        return _base(typing.get_args(base)[0]), "list"
    if origin is dict:
        return _base(typing.get_args(base)[1]), "dict"
    return base, None


def _wrap(value, shape):
    return [value] if shape == "list" else {"x": value} if shape == "dict" else value


def _yaml(value) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else "inf"
    if isinstance(value, list):
        return "[" + ",".join(_yaml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_yaml(v)}" for k, v in value.items()) + "}"
    return str(value)


def outside(key: str, f: dataclasses.Field, tp) -> list[tuple[str, str]]:
    """(why, value as typed on the command line) just outside each declared constraint, and a wrong type."""
    meta, (elem, shape) = f.metadata, _scalar(tp)
    cases = []
    numeric = elem in (int, float)
    step = 1 if elem is int else 1e-3
    if numeric:
        for name, value in (
            ("ge", meta.get("ge", None) is not None and meta["ge"] - step),
            ("gt", meta.get("gt")),
            ("le", meta.get("le", None) is not None and meta["le"] + step),
            ("lt", meta.get("lt")),
        ):
            if name in meta:
                cases.append((name, _yaml(_wrap(value, shape))))
        if elem is float and not meta.get("allow_inf"):
            cases += [("finite", _yaml(_wrap(float("nan"), shape))), ("finite", _yaml(_wrap(float("inf"), shape)))]
    if "choices" in meta:
        cases.append(("choices", _yaml(_wrap("not_a_choice_xyz", shape))))
    if meta.get("nonempty") and shape:
        cases.append(("nonempty", "[]" if shape == "list" else "{}"))
    if meta.get("unique") and shape == "list":
        sample = next(iter(meta.get("choices") or []), None) or (
            f.default_factory() if callable(f.default_factory) else None
        )
        sample = sample[0] if isinstance(sample, list) and sample else sample
        if sample is not None and not isinstance(sample, list):
            cases.append(("unique", _yaml([sample, sample])))
    if meta.get("output_dir"):
        cases += [("output_dir", "/proc/lprecover-cannot-be-made"), ("output_dir", "/etc/hostname")]
    if elem in (int, float, bool) and shape is None:
        cases.append(("type", "not-a-number-xyz"))
    return cases


def _cases():
    for command, (schema, before) in SCHEMAS.items():
        for key, f, tp in _leaves(schema):
            for why, value in outside(key, f, tp):
                yield pytest.param(command, before, key, value, id=f"{command}:{key}={value}[{why}]")


CASES = list(_cases())


@pytest.mark.parametrize("command, before, key, value", CASES)
def test_a_value_outside_its_declaration_exits_2_naming_the_key(
    tmp_path, monkeypatch, capsys, command, before, key, value
):
    monkeypatch.chdir(tmp_path)
    rc = cli([command, *before, f"{key}={value}"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert key in lines[0] and lines[0].startswith(f"lprecover {command}: "), lines[0]
    assert not any(tmp_path.iterdir()), f"{command} wrote {sorted(p.name for p in tmp_path.iterdir())}"


def test_the_generated_cases_cover_every_command_and_many_fields():
    keyed = set(COMMANDS) - {"recipes"}  # `lprecover recipes` takes an action and names, no key=value settings
    assert set(SCHEMAS) == keyed, "a command without a schema in SCHEMAS is not tested from its declarations"
    keys = {c.values[2] for c in CASES}
    assert {c.values[0] for c in CASES} == keyed
    assert len(keys) >= 100, len(keys)


@pytest.mark.parametrize("command", sorted(SCHEMAS))
def test_every_field_declares_what_it_accepts(command):
    """Every field documents itself, and every number declares its range: a new field without one fails here."""
    schema, _ = SCHEMAS[command]
    undocumented = [key for key, f, _ in _leaves(schema) if not f.metadata.get("help")]
    unbounded = [key for key, f, tp in _leaves(schema) if _scalar(tp)[0] in (int, float) and not declared(f)]
    assert not undocumented, f"{command}: fields without help text: {undocumented}"
    assert not unbounded, f"{command}: numeric fields without a declared range: {unbounded}"
