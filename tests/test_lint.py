import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUFF = shutil.which("ruff") or str(REPO / ".venv" / "bin" / "ruff")


@pytest.mark.skipif(not Path(RUFF).exists(), reason="ruff is not installed (pip install -e '.[dev]')")
@pytest.mark.parametrize("args", [["check"], ["format", "--check"]])
def test_code_passes_ruff(args):
    result = subprocess.run(
        [RUFF, *args, "lprecover", "data_prep", "tests", "bench"], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
