"""The wheel works on its own: built, installed into a fresh venv outside the checkout, it finds its recipes and
accelerate configs and trains and evaluates the organism from there."""

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FAST = ["train.max_steps=2", "train.per_device_batch_size=4", "data.options.n=100", "report_to=none"]
EVAL = ["eval.tasks=[organism_long]", "eval.num_problems=4", "eval.budgets=[5,40]", "eval.parallel=false"]


def _run(cmd: list, cwd: Path, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{cmd}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory, teacher_path):
    """A venv holding only the built wheel; its dependencies are read from this interpreter's site-packages."""
    root = tmp_path_factory.mktemp("wheel")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "WANDB_", "PYTHONPATH"))}
    env |= {"OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "TOKENIZERS_PARALLELISM": "false"}
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", root / "dist", REPO],
        root,
        env,
    )
    (wheel,) = (root / "dist").glob("lprecover-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", venv], root, env)
    python = venv / "bin" / "python"
    site = Path(
        _run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], root, env).stdout.strip()
    )
    # A path line, so this interpreter's packages are importable but its .pth hooks (the editable checkout) are not.
    (site / "deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    _run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", wheel], root, env)
    env["PATH"] = f"{venv / 'bin'}:{env['PATH']}"
    return venv, root, env


def test_the_installed_wheel_is_not_the_checkout(installed):
    venv, root, env = installed
    where = _run([venv / "bin" / "python", "-c", "import lprecover; print(lprecover.__file__)"], root, env).stdout
    assert str(venv) in where and str(REPO) not in where


def test_the_installed_wheel_lists_and_copies_its_recipes(installed):
    venv, root, env = installed
    listing = _run([venv / "bin" / "lprecover", "recipes"], root, env).stdout
    assert "lora_longcot" in listing and "distill_onpolicy" in listing
    assert f"{venv}" in listing and "accelerate_configs/zero3.yaml" in listing, "the configs come from the install"
    copy = _run([venv / "bin" / "lprecover", "recipes", "copy", "lora_longcot", root], root, env).stdout.strip()
    assert Path(copy).read_text().startswith("# lora_longcot:")


def test_the_installed_wheel_trains_a_recipe_and_evaluates_the_organism(installed):
    venv, root, env = installed
    out = root / "run"
    _run([venv / "bin" / "lprecover", "train", "recipe=lora_longcot", *FAST, f"output_dir={out}"], root, env)
    history = json.loads((out / "metrics.json").read_text())
    assert [h["step"] for h in history if "loss" in h][-1] == 2
    assert (out / "model" / "adapter_model.safetensors").exists()

    evaluated = root / "eval"
    _run([venv / "bin" / "lprecover", "eval", "model=organism", *EVAL, f"output_dir={evaluated}"], root, env)
    summary = json.loads((evaluated / "summary.json").read_text())
    assert set(summary) == {"organism_long"}


def test_accelerate_launch_of_the_installed_module(installed):
    venv, root, env = installed
    out = root / "launched"
    config = _run([venv / "bin" / "lprecover", "recipes"], root, env).stdout.split("accelerate_configs/cpu.yaml")[0]
    config = config.rsplit(" ", 1)[-1] + "accelerate_configs/cpu.yaml"
    launch = [venv / "bin" / "python", "-m", "accelerate.commands.launch", "--config_file", config]
    _run([*launch, "-m", "lprecover.train", "recipe=sft_short", *FAST, f"output_dir={out}"], root, env)
    assert (out / "model" / "model.safetensors").exists()
