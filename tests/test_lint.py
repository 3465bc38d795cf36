import shutil
import subprocess

import pytest

from conftest import REPO


@pytest.mark.skipif(
    shutil.which("ruff") is None and not (REPO / ".venv/bin/ruff").exists(), reason="ruff not installed"
)
@pytest.mark.parametrize("args", [["check"], ["format", "--check"]])
def test_code_passes_ruff(args):
    ruff = shutil.which("ruff") or str(REPO / ".venv/bin/ruff")
    result = subprocess.run(
        [ruff, *args, "lprecover", "data_prep", "tests", "bench"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
