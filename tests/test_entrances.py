"""Every command starts the same way from every entrance: `lprecover NAME`, `python -m`, and a file path."""

import subprocess
import sys
from pathlib import Path

import pytest

from lprecover.cli import COMMANDS, main

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_answers_help_from_the_one_dispatch(name, capsys):
    assert main([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.strip(), f"`lprecover {name} --help` printed nothing"
    if name not in ("organism", "teacher-logits", "recipes"):  # these list actions or recipes, not keys
        assert "keys: " in out


@pytest.mark.parametrize(
    "argv, expect",
    [
        (["-m", "lprecover.evaluation", "--help"], "keys: "),
        (["-m", "lprecover.train", "--help"], "recipes: "),
        (["-m", "lprecover.study", "--help"], "recover_from"),
        (["-m", "lprecover.pruning", "--help"], "prune.method"),
        (["-m", "lprecover", "--help"], "commands:"),
        (["lprecover/train.py", "--help"], "recipes: "),
    ],
)
def test_module_and_file_entrances(argv, expect):
    done = subprocess.run([sys.executable, *argv], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert expect in done.stdout


def test_a_users_mistake_is_one_line_from_a_module_entrance():
    done = subprocess.run(
        [sys.executable, "-m", "lprecover.evaluation", "eval.budgets=[20,5]"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("lprecover eval: ") and "Traceback" not in done.stderr
    assert "budgets" in done.stderr
