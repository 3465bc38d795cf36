"""One config system for every command: YAML mapped onto typed dataclasses, with dotted ``key=value`` overrides.

Precedence, lowest first: the dataclass defaults, the recipe file (``recipe=NAME``), config groups
(``model=NAME`` picks ``lprecover/configs/model/NAME.yaml``), then the dotted overrides in the order given.
Every key is checked against the dataclasses before anything runs, and an unknown key is named together with the
nearest valid one.

Fields declare what they accept in their metadata, beside their help text (``declare``): a range (``ge``, ``gt``,
``le``, ``lt``), ``choices``, ``nonempty``, ``unique``, and relations to a sibling field (``le_field``,
``lt_field``). Float fields refuse NaN and infinity unless they declare ``allow_inf``. One validator
(``check_declared``) reads the declarations for the whole resolved config, naming the dotted key the user typed,
before any ``__post_init__`` runs (those keep the relations a declaration cannot say) and so before any folder is
made or model loaded.
"""

import dataclasses
import difflib
import math
import os
import tempfile
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

import yaml
from omegaconf import OmegaConf

from lprecover.atomic import write_file
from lprecover.log import get_logger

logger = get_logger(__name__)

T = TypeVar("T")
PACKAGE_DIR = Path(__file__).resolve().parent
GROUPS_DIR = PACKAGE_DIR / "configs"


def _shipped(folder: str) -> Path:
    """A folder that sits at the top of a checkout and inside the package of an installed wheel (see setup.py)."""
    installed = PACKAGE_DIR / folder
    return installed if installed.is_dir() else PACKAGE_DIR.parent / folder


RECIPES_DIR = _shipped("recipes")
ACCELERATE_CONFIGS_DIR = _shipped("accelerate_configs")
CONFIG_FILE = "config.yaml"


def cache_root() -> Path:
    """Where lprecover keeps what it builds once (teachers, converted checkpoints, recovery data):
    ``$LPRECOVER_CACHE``, default ``~/.cache/lprecover``."""
    return Path(os.environ.get("LPRECOVER_CACHE", Path.home() / ".cache" / "lprecover"))


class ConfigError(ValueError):
    """A config the user wrote is wrong; the message says how to fix it."""


# The metadata keys a field may declare, beside "help" (see the module docstring).
CONSTRAINTS = (
    "ge",
    "gt",
    "le",
    "lt",
    "choices",
    "nonempty",
    "unique",
    "le_field",
    "lt_field",
    "allow_inf",
    "output_dir",
)


def declare(default=dataclasses.MISSING, *, help: str, default_factory=dataclasses.MISSING, **constraints):
    """A dataclass field with its help text and what it accepts, e.g. ``declare(0.95, help="...", gt=0, le=1)``.

    Range and choice constraints apply to the value, or to every element of a list or value of a dict.
    """
    unknown = set(constraints) - set(CONSTRAINTS)
    if unknown:
        raise TypeError(f"declare() got unknown constraints {sorted(unknown)}; known: {', '.join(CONSTRAINTS)}.")
    metadata = {"help": help, **constraints}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _range_text(meta: dict) -> str | None:
    """The declared range in words: "lie in (0, 1]", "be at least 1", "be below 2"."""
    low = ("ge", meta["ge"]) if "ge" in meta else ("gt", meta["gt"]) if "gt" in meta else None
    high = ("le", meta["le"]) if "le" in meta else ("lt", meta["lt"]) if "lt" in meta else None
    if low and high:
        return f"lie in {'[' if low[0] == 'ge' else '('}{low[1]}, {high[1]}{']' if high[0] == 'le' else ')'}"
    if low:
        return f"be {'at least' if low[0] == 'ge' else 'above'} {low[1]}"
    if high:
        return f"be {'at most' if high[0] == 'le' else 'below'} {high[1]}"
    return None


def _in_range(value, meta: dict) -> bool:
    return not (
        ("ge" in meta and value < meta["ge"])
        or ("gt" in meta and value <= meta["gt"])
        or ("le" in meta and value > meta["le"])
        or ("lt" in meta and value >= meta["lt"])
    )


def _check_output_dir(key: str, value) -> None:
    """An output folder must be one that can be made: not a file, under a folder where one can be created (tried
    with a temporary folder of its own, removed at once: permissions alone do not tell, e.g. under /proc)."""
    path = Path(value).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{key} '{value}' is a file, not a folder; choose a folder path.")
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{key} '{value}' cannot be made: '{parent}' is a file; choose a folder path.")
    before = parent.stat()
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".lprecover-probe-", dir=parent))
        os.utime(parent, ns=(before.st_atime_ns, before.st_mtime_ns))  # the probe leaves no trace, not even a time
    except OSError as e:
        raise ConfigError(
            f"{key} '{value}' cannot be made under '{parent}' ({e.strerror}); choose another path."
        ) from None


def _check_value(key: str, value, meta: dict) -> None:
    """Refuse ``value`` of ``key`` where it breaks the field's declaration (None is always accepted: unset)."""
    if value is None:
        return
    if meta.get("output_dir") and isinstance(value, str) and value:
        _check_output_dir(key, value)
    items = list(value.values()) if isinstance(value, dict) else value if isinstance(value, list) else [value]
    whole = isinstance(value, (list, dict))
    what = f"every value of {key}" if whole else key
    if meta.get("nonempty") and whole and not items:
        raise ConfigError(f"{key} must not be empty; leave it unset for the default.")
    if meta.get("unique") and isinstance(value, list) and len(set(map(repr, value))) < len(value):
        twice = sorted({repr(v) for v in value if sum(repr(w) == repr(v) for w in value) > 1})
        raise ConfigError(f"{key} names {', '.join(twice)} more than once; list each once.")
    for item in items:
        if isinstance(item, float) and not math.isfinite(item) and not meta.get("allow_inf"):
            raise ConfigError(f"{what} must be a finite number, got {item}.")
        if "choices" in meta and item not in meta["choices"]:
            raise ConfigError(f"{what} must be one of {', '.join(map(str, meta['choices']))}; got {item!r}.")
        numeric = isinstance(item, (int, float)) and not isinstance(item, bool)
        if numeric and not _in_range(item, meta):
            raise ConfigError(f"{what} must {_range_text(meta)}, got {item}.")


def check_declared(schema, tree: dict, prefix: str = "") -> None:
    """Check every value of ``tree`` (a resolved config as a dict) against the declarations of ``schema``'s fields.

    Raises:
        ConfigError: naming the dotted key, what it accepts and what it got.
    """
    types = _dataclass_fields(schema)
    for f in dataclasses.fields(schema):
        key, value, meta = prefix + f.name, tree.get(f.name), f.metadata
        if dataclasses.is_dataclass(types[f.name]):
            if isinstance(value, dict):
                check_declared(types[f.name], value, key + ".")
            continue
        _check_value(key, value, meta)
        for rel, test, words in (
            ("le_field", lambda a, b: a <= b, "at most"),
            ("lt_field", lambda a, b: a < b, "below"),
        ):
            other = meta.get(rel)
            if other and value is not None and tree.get(other) is not None and not test(value, tree[other]):
                raise ConfigError(
                    f"{key} ({value}) must be {words} {prefix}{other} ({tree[other]}); raise {prefix}{other} or lower "
                    f"{key}."
                )


def declared(f: dataclasses.Field) -> bool:
    """Whether a field declares what it accepts beyond its type."""
    return any(k in f.metadata for k in CONSTRAINTS if k != "allow_inf")


def group_choices(group: str) -> list[str]:
    """The names a config group offers, e.g. ``group_choices('model')``."""
    return sorted(p.stem for p in (GROUPS_DIR / group).glob("*.yaml"))


def _dataclass_fields(cls) -> dict[str, Any]:
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def valid_keys(cls, prefix: str = "") -> list[str]:
    """Every dotted key a dataclass schema accepts, nested sections included."""
    keys = []
    for name, tp in _dataclass_fields(cls).items():
        keys.append(prefix + name)
        if dataclasses.is_dataclass(tp):
            keys.extend(valid_keys(tp, f"{prefix}{name}."))
    return keys


def _unknown_key_error(key: str, cls, where: str) -> ConfigError:
    keys = valid_keys(cls)
    near = difflib.get_close_matches(key, keys, n=1, cutoff=0.5)
    if not near:  # a misspelt leaf in a known section, e.g. prune.n_layer
        leaf = key.rsplit(".", 1)[-1]
        near = difflib.get_close_matches(leaf, [k.rsplit(".", 1)[-1] for k in keys], n=1, cutoff=0.6)
        near = [k for k in keys if k.endswith("." + near[0]) or k == near[0]][:1] if near else []
    hint = (
        f" Did you mean '{near[0]}'?"
        if near
        else f" Valid top-level keys: {', '.join(sorted(_dataclass_fields(cls)))}."
    )
    return ConfigError(f"Unknown config key '{key}' in {where}.{hint}")


def _check_keys(tree: dict, root, where: str, cls=None, prefix: str = "") -> None:
    fields = _dataclass_fields(cls or root)
    for key, value in tree.items():
        if key not in fields:
            raise _unknown_key_error(prefix + key, root, where)
        tp = fields[key]
        if dataclasses.is_dataclass(tp) and isinstance(value, dict):
            _check_keys(value, root, where, tp, f"{prefix}{key}.")


def _read_yaml(path: Path) -> dict:
    with open(path) as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of config keys, not {type(data).__name__}.")
    return data


def _expand_groups(tree: dict, schema, where: str) -> dict:
    """Replace ``model: NAME`` style group choices by the group file's contents."""
    fields = _dataclass_fields(schema)
    out = {}
    for key, value in tree.items():
        if (
            key in fields
            and dataclasses.is_dataclass(fields[key])
            and isinstance(value, str)
            and (GROUPS_DIR / key).is_dir()
        ):
            path = GROUPS_DIR / key / f"{value}.yaml"
            if not path.exists():
                choices = ", ".join(group_choices(key))
                raise ConfigError(
                    f"Unknown {key} '{value}' in {where}. Choose one of: {choices}; or set {key}.<field>=... directly."
                )
            value = _read_yaml(path)
        out[key] = value
    return out


def recipe_choices() -> list[str]:
    return sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def recipe_path(name: str) -> Path:
    """The file of recipe ``name``: a shipped recipe's name, or the path of a YAML file (a copy being edited).

    Raises:
        ConfigError: naming the recipes there are, when ``name`` is neither.
    """
    name = str(name)
    if name.endswith((".yaml", ".yml")):
        path = Path(name).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"Recipe file '{name}' does not exist; `lprecover recipes copy NAME` writes one to edit."
            )
        return path
    path = RECIPES_DIR / f"{name}.yaml"
    if not path.exists():
        raise ConfigError(
            f"Unknown recipe '{name}'. Recipes: {', '.join(recipe_choices())}, or a path to a .yaml file."
        )
    return path


def _parse_override(arg: str) -> tuple[str, Any]:
    if "=" not in arg or arg.startswith("="):
        raise ConfigError(
            f"Cannot read the argument '{arg}': arguments are dotted key=value pairs, e.g. prune.n_layers=2."
        )
    key, raw = arg.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else None
    except yaml.YAMLError as e:  # e.g. an unclosed [ or {, or a mapping written {a:b} without the space
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(
            f"Cannot read the value of '{key.strip()}': {raw!r} is not valid YAML ({problem}). Quote it, or write "
            "lists as [a,b] and mappings as {key: value}."
        ) from None
    return key.strip(), value


def _nest(key: str, value: Any) -> dict:
    for part in reversed(key.split(".")):
        value = {part: value}
    return value


def load_section(schema: type[T], tree: dict, prefix: str) -> T:
    """A ``schema`` instance from ``tree``, one section's values (unset keys take their defaults), checked as
    :func:`load_config` checks a whole config; ``prefix`` (e.g. ``"data.options."``) names the keys in errors.

    Raises:
        ConfigError: for an unknown key, a value of the wrong type, or one its declaration refuses.
    """
    where = prefix.rstrip(".")
    known = _dataclass_fields(schema)
    for key in tree:
        if key not in known:
            near = difflib.get_close_matches(str(key), known, n=1, cutoff=0.5)
            hint = f" Did you mean '{prefix}{near[0]}'?" if near else f" Its keys: {', '.join(known)}."
            raise ConfigError(f"Unknown key '{prefix}{key}' in {where}.{hint}")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), tree)
    except Exception as e:  # omegaconf's validation errors carry the key and expected type
        raise ConfigError(f"Invalid value in {where}: {e}".split("\n")[0]) from None
    check_declared(schema, OmegaConf.to_container(merged, resolve=True), prefix)
    return OmegaConf.to_object(merged)


def load_config(schema: type[T], args: list[str], recipe_key: str | None = None) -> T:
    """Build a ``schema`` instance from a recipe, config groups and dotted overrides.

    Args:
        schema: the command's config dataclass.
        args: ``key=value`` strings, e.g. ``["recipe=lora_longcot", "model=organism", "train.lr=1e-4"]``.
        recipe_key: the argument naming a recipe file in ``recipes/`` (``"recipe"`` for training), if the command has one.

    Raises:
        ConfigError: for an unknown key, group choice or recipe, or a value of the wrong type.
    """
    layers: list[tuple[str, dict]] = []
    overrides = [_parse_override(a) for a in args]
    if recipe_key:
        names = [v for k, v in overrides if k == recipe_key]
        if names:
            path = recipe_path(names[-1])
            layers.append((f"recipe {path.name}", _read_yaml(path)))
    for key, value in overrides:
        layers.append((f"the argument '{key}={value}'", _nest(key, value)))

    merged = OmegaConf.structured(schema)
    for where, tree in layers:
        tree = _expand_groups(tree, schema, where)
        _check_keys(tree, schema, where)
        try:
            merged = OmegaConf.merge(merged, tree)
        except Exception as e:  # omegaconf's validation errors carry the key and expected type
            raise ConfigError(f"Invalid value in {where}: {e}".split("\n")[0]) from None
    check_declared(schema, OmegaConf.to_container(merged, resolve=True))
    try:
        return OmegaConf.to_object(merged)
    except ValueError as e:  # the __post_init__ checks judge the values in sentences; other errors are bugs
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(str(e).split("\n")[0]) from None


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def save_settings(folder: str | Path, settings: dict) -> Path:
    """Write ``settings`` whole as ``folder/config.yaml``: what ``reuse_or_refuse`` compares on the next run."""
    return write_file(Path(folder) / CONFIG_FILE, yaml.safe_dump(settings, sort_keys=False))


def load_settings(folder: str | Path) -> dict:
    """What ``save_settings`` wrote in ``folder`` ({} when it wrote nothing there)."""
    path = Path(folder) / CONFIG_FILE
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def save_config(cfg, output_dir: str | Path) -> Path:
    """Save the resolved config as ``config.yaml`` in ``output_dir``."""
    return save_settings(output_dir, to_dict(cfg))


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class _Absent:
    def __repr__(self) -> str:
        return "(absent)"


_ABSENT = _Absent()  # a key one side's settings do not have (e.g. saved before a field existed)


def _off(value) -> bool:
    """None, false or empty: a new option at such a value leaves an earlier output as it was (0 is a value)."""
    return value is None or value is False or (isinstance(value, (str, list, dict)) and not value)


def settings_diff(saved: dict, settings: dict, ignore: tuple[str, ...] = ()) -> str:
    """The keys where ``settings`` differ from ``saved`` (a config.yaml as read back), as ``key: old -> new; ...``
    (at most eight named), or "" when they agree. Dotted keys or whole sections in ``ignore`` are not compared.

    An option added since ``saved`` was written, left off now (``distill.teacher_logits=None``), made no difference
    then and is not a difference; one set to a value (``absent -> 3``) is.
    """

    def comparable(tree: dict) -> dict:
        flat = _flatten(yaml.safe_load(yaml.safe_dump(tree)) or {})  # the types a saved config.yaml reads back as
        return {k: v for k, v in flat.items() if not any(k == i or k.startswith(i + ".") for i in ignore)}

    old, new = comparable(saved), comparable(settings)
    differs = sorted(
        k
        for k in old.keys() | new.keys()
        if old.get(k, _ABSENT) != new.get(k, _ABSENT) and not (k not in old and _off(new[k]))
    )
    shown = [f"{k}: {old.get(k, _ABSENT)!r} -> {new.get(k, _ABSENT)!r}" for k in differs[:8]]
    more = f" (and {len(differs) - 8} more)" if len(differs) > 8 else ""
    return "; ".join(shown) + more


def reuse_or_refuse(
    folder: str | Path, settings: dict, what: str, overwrite: bool = False, ignore: tuple[str, ...] = ()
) -> str:
    """The one rule for "may I reuse this earlier output?": compare ``folder/config.yaml`` with ``settings``.

    Args:
        settings: what made the output (a nested dict, e.g. ``to_dict(cfg)``), as ``save_settings`` stores it.
        what: the output in words, for the error ("the pruned model", "the study").
        overwrite: when the folder holds something else, answer "fresh" instead of refusing.
        ignore: dotted keys (whole sections too, e.g. ``"wandb"``) that may differ without changing the output.

    Returns:
        ``"reuse"`` when the saved settings equal ``settings``; ``"fresh"`` when the folder is missing or empty, or
        when ``overwrite`` is set and it holds something else (the caller then replaces it).

    Raises:
        ConfigError: naming every differing key with its saved and current value, and saying that
            ``overwrite=true`` starts over.
    """
    folder = Path(folder)
    if not folder.is_dir() or not any(folder.iterdir()):
        return "fresh"
    saved_file = folder / CONFIG_FILE
    if not saved_file.exists():
        if overwrite:
            return "fresh"
        raise ConfigError(
            f"{folder} is not empty and records no settings ({CONFIG_FILE} is missing), so it cannot be reused as "
            f"{what}. Choose another output_dir, or pass overwrite=true to start over."
        )

    differs = settings_diff(load_settings(folder), settings, ignore)
    if not differs:
        return "reuse"
    if overwrite:
        return "fresh"
    raise ConfigError(
        f"{folder} holds {what} made with different settings ({differs}); reusing it would mix them. "
        "Keep the earlier settings, choose another output_dir, or pass overwrite=true to start over."
    )
