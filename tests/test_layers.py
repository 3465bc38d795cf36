"""The packages point one way (the order is written in ``lprecover/__init__.py``): read from the code's own imports,
those inside functions included, with no import cycle between modules and no private name used across modules."""

import ast
from pathlib import Path

import pytest

import lprecover

REPO = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(REPO / "lprecover").rglob("*.py"), *(REPO / "data_prep").rglob("*.py")])


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, list[str], bool, int]]:
    """``(module, names, inside_a_function, line)`` for each project import of the file."""
    tree = ast.parse(path.read_text())
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    found = []

    def visit(node, in_function):
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend((a.name, [], inside, child.lineno) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - child.level + 1]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                found.append((target, [a.name for a in child.names], inside, child.lineno))
            visit(child, inside)

    visit(tree, False)
    return [f for f in found if f[0].split(".")[0] in ("lprecover", "data_prep")]


def resolve(target: str, names: list[str]) -> list[str]:
    """The project modules an import reaches (``from pkg import mod`` reaches ``pkg.mod``)."""
    known = {module_name(p) for p in SOURCES}
    out = [f"{target}.{n}" for n in names if f"{target}.{n}" in known]
    return out or [target]


def level(module: str) -> int:
    if module == "lprecover":
        return 0  # the package's own __init__ holds only LAYERS
    for i, group in enumerate(lprecover.LAYERS):
        if any(module == m or module.startswith(m + ".") for m in group):
            return i
    pytest.fail(f"{module} is in no layer of lprecover.LAYERS; add it where it belongs")


GRAPH = {
    module_name(p): [(m, inside, line) for t, n, inside, line in imports(p) for m in resolve(t, n)] for p in SOURCES
}


def test_every_module_has_a_layer():
    for module in GRAPH:
        level(module)


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_module_imports_a_higher_layer(module):
    if module.endswith("__main__"):
        return  # entrances: ``python -m PACKAGE`` starts the command through the dispatch above it
    upward = [(m, line) for m, _, line in GRAPH[module] if level(m) > level(module)]
    assert not upward, f"{module} (layer {level(module)}) imports upward: {upward}"


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_project_imports_sit_at_the_top_of_the_file(module):
    inside = [(m, line) for m, fn, line in GRAPH[module] if fn]
    assert not inside, f"{module} imports project modules inside functions (a hidden layer crossing): {inside}"


def test_no_import_cycle():
    edges = {m: {t for t, _, _ in deps if t in GRAPH and t != m} for m, deps in GRAPH.items()}
    state, cycle = {}, []

    def walk(node, path):
        state[node] = "open"
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                cycle.extend(path[path.index(nxt) :] + [nxt])
                return True
            if nxt not in state and walk(nxt, [*path, nxt]):
                return True
        state[node] = "done"
        return False

    for m in sorted(edges):
        if m not in state and walk(m, [m]):
            break
    assert not cycle, " -> ".join(cycle)


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_private_name_crosses_modules(path):
    crossing = [(t, n) for t, names, _, _ in imports(path) for n in names if n.startswith("_") and n != "__version__"]
    tree = ast.parse(path.read_text())
    aliases = {a.asname or a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
    aliases |= {
        a.asname or a.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("lprecover", "data_prep"))
        for a in node.names
    }
    crossing += [
        (node.value.id, node.attr)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id in aliases
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
    ]
    assert not crossing, f"{path.name} uses private names of other modules: {crossing}"


def test_config_schemas_load_no_training_or_data_library():
    """Reading a recipe (and every schema it nests) imports neither trl, deepspeed, peft nor datasets."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from lprecover.config import load_config\n"
        "from lprecover.recovery.recipe import RecoveryConfig\n"
        "import data_prep.config, lprecover.evaluation.config, lprecover.pruning.config\n"
        "cfg = load_config(RecoveryConfig, ['recipe=lora_longcot', 'model=smollm2_135m'], recipe_key='recipe')\n"
        "assert cfg.trainable == 'lora'\n"
        "print(sorted(m for m in ('trl', 'deepspeed', 'peft', 'datasets') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"
