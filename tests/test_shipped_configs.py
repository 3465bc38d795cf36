"""Every shipped config-group preset and task file loads into the schema that reads it, each of its keys landing."""

import pytest
import yaml

from lprecover.config import GROUPS_DIR, load_config
from lprecover.evaluation.task_specs import BUILTIN_DIR, find_spec, get_spec, known_names, read_task_file
from lprecover.organism.plugin import TASK_FILES
from lprecover.recovery.recipe import RecoveryConfig
from lprecover.study import StudyConfig, preset_args

PRESETS = sorted((p.parent.name, p.stem) for p in GROUPS_DIR.glob("*/*.yaml") if p.parent.name != "study")
STUDIES = sorted(p.stem for p in (GROUPS_DIR / "study").glob("*.yaml"))


def test_there_are_presets_in_every_group():
    assert {g for g, _ in PRESETS} == {"model", "data", "eval"} and len(PRESETS) >= 15
    assert "trace_length" in STUDIES


@pytest.mark.parametrize("name", STUDIES)
def test_every_study_preset_loads_and_each_key_lands(name):
    path = GROUPS_DIR / "study" / f"{name}.yaml"
    assert path.read_text().startswith(f"# {name}:")
    cfg = load_config(StudyConfig, preset_args([f"study={name}"]))
    for key, value in yaml.safe_load(path.read_text()).items():
        assert getattr(cfg, key) == value, f"study={name}: {key} did not land"


@pytest.mark.parametrize("group, name", PRESETS)
def test_every_preset_loads_and_each_key_lands(group, name):
    path = GROUPS_DIR / group / f"{name}.yaml"
    assert path.read_text().startswith("#"), f"{path.name} opens with a comment saying what it is"
    cfg = load_config(RecoveryConfig, [f"{group}={name}"])
    section = getattr(cfg, group)
    for key, value in yaml.safe_load(path.read_text()).items():
        loaded = getattr(section, key)
        loaded = vars(loaded) if hasattr(loaded, "__dataclass_fields__") else loaded  # a nested section
        assert loaded == value, f"{group}={name}: {key} did not land"


@pytest.mark.parametrize(
    "path", sorted([*BUILTIN_DIR.glob("*.yaml"), *TASK_FILES.glob("*.yaml")]), ids=lambda p: p.stem
)
def test_every_shipped_task_file_reads_and_is_known_by_its_name(path):
    spec = read_task_file(path)
    assert spec.name == path.stem and path.read_text().startswith("#")
    assert find_spec(spec.name) == spec and spec.name in known_names()
    get_spec(spec.name)


def test_the_built_in_tasks_are_the_seven_real_benchmarks():
    names = {p.stem for p in BUILTIN_DIR.glob("*.yaml")}
    assert names == {"gsm8k", "math500", "aime24", "aime25", "aime_nofigures", "gpqa_diamond", "mmlu"}
    assert {get_spec(n).kind for n in names} == {"math", "choice"}
