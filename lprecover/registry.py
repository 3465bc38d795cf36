"""The registries: what the core looks up by name instead of knowing it.

- **Model sources** (``register_model``): a name that resolves to a checkpoint folder by a function of its own
  (built locally, or fetched with a fallback), e.g. ``organism``. Any other name is a path or a hub id.
- **Model traits** (``register_traits``): defaults a family of checkpoints carries for lprecover, recognised from
  the model's config: its default evaluation tasks, its answer cue after a forced end of thinking, the source of
  its calibration text, options its tasks take. A model no plugin recognises gets ``ModelTraits()``: GSM8K, the
  "Final Answer:" cue, calibration from problems.
- **Task sources** (``register_task_source``) and **task folders** (``register_task_dir``): a task is a YAML file
  (see ``lprecover.evaluation.task_specs``); its problems come from a jsonl/json/parquet ``path``, a ``hub``
  dataset, or a registered ``source`` that draws them (a synthetic task).
- **Calibration sources** (``register_calibration``): reasoning text for the pruning criteria that need it.
- **Data sources** (``register_data_source``): training problems a plugin draws (``lprecover data source=NAME``;
  their options, declared by the source as a dataclass, are ``options.KEY=VALUE``, in a recipe ``data.options.*``).
- **Knowledge sets** (``register_knowledge_set``): rows (messages schema) that recovery mixes back in
  (``data.replay``) so that what the model knew is not trained away.

Plugins fill them: a package names a ``register()`` function under the ``lprecover.plugins`` entry point group
(``pyproject.toml``), and :func:`load_plugins` calls each once, on the first lookup. The organism and SmolLM2 are
two such plugins; nothing in the core names either.
"""

import importlib
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lprecover.config import ConfigError
from lprecover.log import get_logger

logger = get_logger(__name__)

ENTRY_POINT_GROUP = "lprecover.plugins"


@dataclass(frozen=True)
class ModelSource:
    """A model name that resolves to a checkpoint folder by ``resolve()``.

    Args:
        resolve: returns the checkpoint folder (may build or copy it; it logs when that takes long).
        num_layers: the decoder layer count without resolving anything, when known (checks before any work).
        applies: for a name that is also a hub id, whether this source takes it (e.g. only offline).
    """

    resolve: Callable[[], Path]
    num_layers: Callable[[], int] | None = None
    applies: Callable[[], bool] = lambda: True


@dataclass(frozen=True)
class ModelTraits:
    """What a family of checkpoints asks of lprecover by default.

    Args:
        tasks: the sequential tasks evaluated when ``eval.tasks`` is empty (a reasoning task, then any control).
        parallel_tasks: the parallel (pass@k) tasks when ``eval.parallel_tasks`` is empty; None: ``tasks``.
        answer_prefix: the answer cue after a forced end of thinking when ``model.answer_prefix`` is unset; None:
            the default ("Final Answer:" on a line of its own).
        calibration: the registered calibration source that ``prune.calibration=auto`` uses; None: problems from
            ``prune.calibration_path`` or GSM8K.
        task_options: keyword options for the task sources (e.g. how many facts the model was trained on).
        verify_prompts: ``n -> [str]``, the prompts an export's verification generates from; None: general ones.
    """

    tasks: tuple[str, ...] = ("gsm8k",)
    parallel_tasks: tuple[str, ...] | None = None
    answer_prefix: str | None = None
    calibration: str | None = None
    task_options: dict[str, Any] = field(default_factory=dict)
    verify_prompts: Callable[[int], list[str]] | None = None


@dataclass(frozen=True)
class CalibrationSource:
    """Reasoning text for pruning criteria.

    Args:
        traces: ``(n, seed) -> [messages]``: gold chat conversations, thinking included.
        questions: ``(n, seed) -> [str]``: questions the model answers itself (``prune.calibration=traces``).
    """

    traces: Callable[[int, int], list[list[dict]]]
    questions: Callable[[int, int], list[str]]


@dataclass(frozen=True)
class DataSource:
    """Training problems a plugin draws.

    Args:
        examples: ``(options, split) -> [{"id", "problem", "trace", "answer"}]``: ``trace`` is the worked thinking
            (None for ``split=short``); ``options`` is an instance of ``options`` read from ``data.options``.
        options: the dataclass of the source's own keys (``data.options.KEY=VALUE``), declared with
            :func:`lprecover.config.declare` so that a bad value is refused before any work; None takes no options.
        version: what else decides the rows (e.g. the task's version): saved with a built data set, so one built
            from an older task is not reused.
        knowledge: the knowledge set replayed by default with this source's data (``data.replay_data`` unset).
    """

    examples: Callable[[Any, str], list[dict]]
    options: type | None = None
    version: int | str = 0
    knowledge: str | None = None


MODELS: dict[str, ModelSource] = {}
TRAITS: list[Callable[[Any], ModelTraits | None]] = []
TASK_SOURCES: dict[str, Any] = {}
TASK_DIRS: list[Path] = []
CALIBRATION: dict[str, CalibrationSource] = {}
DATA_SOURCES: dict[str, DataSource] = {}
KNOWLEDGE_SETS: dict[str, Callable[[], list[dict]]] = {}
DEFAULTS: dict[str, str] = {}  # "model" / "data_source" -> the registered name used when a config names none
DEFAULT_KINDS = ("model", "data_source")
_loaded = False


def lazy(target: str) -> Callable:
    """A function named ``"module:function"`` that is imported on its first call, as entry points are: a plugin
    registers, e.g., the build of its model without importing the training code to do so, so that reading a config
    that names the model stays light."""
    module, _, name = target.partition(":")
    loaded: list[Callable] = []

    def call(*args, **kwargs):
        if not loaded:
            loaded.append(getattr(importlib.import_module(module), name))
        return loaded[0](*args, **kwargs)

    call.__qualname__ = call.__name__ = name
    return call


def _add(table: dict, name: str, value, what: str) -> None:
    if name in table and table[name] is not value:
        raise ValueError(f"Two plugins register the {what} '{name}'; rename one of them.")
    table[name] = value


def register_model(name: str, source: ModelSource) -> None:
    _add(MODELS, name, source, "model")


def register_traits(recognise: Callable[[Any], ModelTraits | None]) -> None:
    """``recognise(model_config)`` returns the traits of a checkpoint it knows, else None."""
    if recognise not in TRAITS:
        TRAITS.append(recognise)


def register_task_source(name: str, source) -> None:
    """``source`` draws a task's problems; see ``lprecover.evaluation.task_specs.TaskSource``."""
    _add(TASK_SOURCES, name, source, "task source")


def register_task_dir(path: Path) -> None:
    """A folder of task YAML files, looked up after the built-in ones."""
    if Path(path) not in TASK_DIRS:
        TASK_DIRS.append(Path(path))


def register_calibration(name: str, source: CalibrationSource) -> None:
    _add(CALIBRATION, name, source, "calibration source")


def register_data_source(name: str, source: DataSource) -> None:
    _add(DATA_SOURCES, name, source, "data source")


def register_knowledge_set(name: str, rows: Callable[[], list[dict]]) -> None:
    """``rows()`` returns the set's rows in the messages schema (``{"messages": [...]}``)."""
    _add(KNOWLEDGE_SETS, name, rows, "knowledge set")


def register_default(kind: str, name: str) -> None:
    """Name the ``kind`` (``model`` or ``data_source``) that configs use when they name none: the plugin of the
    embedded test subject names its model and its training data."""
    if kind not in DEFAULT_KINDS:
        raise ValueError(f"Unknown default kind '{kind}'; one of {', '.join(DEFAULT_KINDS)}.")
    _add(DEFAULTS, kind, name, f"default {kind}")


def default(kind: str) -> str:
    """The registered default ``kind`` (``model`` or ``data_source``); "" where no plugin names one, which the
    config refuses as empty, asking for a name."""
    load_plugins()
    return DEFAULTS.get(kind, "")


def load_plugins() -> None:
    """Call every installed plugin's ``register()`` once (entry point group ``lprecover.plugins``)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    seen = set()
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.value in seen:  # the same distribution seen twice on sys.path (an editable and a wheel install)
            continue
        seen.add(entry.value)
        try:
            entry.load()()
        except Exception as e:  # a broken plugin must not look like a missing model or task
            raise RuntimeError(f"The lprecover plugin '{entry.name}' ({entry.value}) failed to register: {e}") from e


def model_source(name: str) -> ModelSource | None:
    load_plugins()
    source = MODELS.get(name)
    return source if source is not None and source.applies() else None


def model_traits(config) -> ModelTraits:
    """The traits of the model whose transformers config is ``config`` (None or unrecognised: the defaults)."""
    load_plugins()
    for recognise in TRAITS:
        traits = config is not None and recognise(config)
        if traits:
            return traits
    return ModelTraits()


def calibration_source(name: str) -> CalibrationSource:
    load_plugins()
    if name not in CALIBRATION:
        raise ConfigError(f"Unknown calibration source '{name}'. Known: {', '.join(sorted(CALIBRATION)) or 'none'}.")
    return CALIBRATION[name]


def task_source(name: str):
    load_plugins()
    return TASK_SOURCES.get(name)


def task_dirs() -> list[Path]:
    load_plugins()
    return list(TASK_DIRS)


def data_source(name: str) -> DataSource | None:
    load_plugins()
    return DATA_SOURCES.get(name)


def data_source_names() -> list[str]:
    load_plugins()
    return sorted(DATA_SOURCES)


def knowledge_set(name: str) -> Callable[[], list[dict]] | None:
    load_plugins()
    return KNOWLEDGE_SETS.get(name)
