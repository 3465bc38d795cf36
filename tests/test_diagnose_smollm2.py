"""``lprecover diagnose`` on a real model: the NLL sweep and criterion fidelity over all 30 layers of SmolLM2-135M.

With ``LPRECOVER_DOC_FIGURES=1`` the run's figure is copied to docs/figures/diagnose-smollm2.png (docs/diagnose.md).
"""

import json
import math
import os
import shutil
from pathlib import Path

import pytest

from lprecover.cli import main

DOC_FIGURE = Path(__file__).resolve().parents[1] / "docs" / "figures" / "diagnose-smollm2.png"


@pytest.mark.slow
def test_nll_sweep_and_fidelity_over_all_30_layers(smollm2_path, gsm8k_dir, tmp_path):
    train = gsm8k_dir / "train.jsonl"
    out = tmp_path / "out"
    args = [
        "model=smollm2_135m",
        "model.dtype=float32",
        "generation=false",
        f"traces={train}",
        "num_traces=8",
        "trace_max_tokens=160",
        "calibration=problems",
        f"calibration_path={train}",
        "calibration_samples=4",
        "calibration_seq_len=96",
        "eval.bootstrap=300",
        f"output_dir={out}",
    ]
    assert main(["diagnose", *args]) == 0
    if os.environ.get("LPRECOVER_DOC_FIGURES"):
        DOC_FIGURE.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(out / "damage.png", DOC_FIGURE)
        shutil.copy(out / "report.md", DOC_FIGURE.with_suffix(".md"))
        shutil.copy(out / "diagnosis.json", DOC_FIGURE.with_suffix(".json"))
    d = json.loads((out / "diagnosis.json").read_text())
    assert [e["layer"] for e in d["layers"]] == list(range(30))
    for e in d["layers"]:
        assert e["reasoning_area_drop"] is None and e["knowledge_drop"] is None  # generation=false
        for part in ("total", "thinking", "answer"):
            assert math.isfinite(e["trace_nll_increase"][part]["value"])
    nll = [e["trace_nll_increase"]["total"]["value"] for e in d["layers"]]
    assert max(nll) > 1.0 and nll.index(max(nll)) in (0, 1, 29)  # the first and last layers carry the most
    influence = d["criteria"]["shortgpt"]
    rho = influence["spearman_nll"]
    assert rho["ci_low"] <= rho["value"] <= rho["ci_high"] and rho["value"] > 0.3
    assert influence["spearman_reasoning"] is None and len(influence["scores"]) == 30
    assert d["criteria"]["ppl"]["spearman_nll"]["value"] > 0.3
