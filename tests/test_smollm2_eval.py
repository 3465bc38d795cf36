"""Budget forcing on a real model without thinking delimiters: SmolLM2-135M-Instruct on GSM8K.

SmolLM2 thinks in its plain response, so a forced stop appends the answer cue ("Final Answer:") inside that
response. The cue used to be left out of the scored text, and almost no forced sample had an extractable answer.
"""

import json

import pytest

from lprecover.cli import main

pytestmark = pytest.mark.slow


def test_forced_samples_of_a_model_without_delimiters_have_answers(smollm2_path, gsm8k_dir, tmp_path):
    out = tmp_path / "eval"
    args = [f"model.name_or_path={smollm2_path}", "eval.tasks=[gsm8k]", f"eval.paths.gsm8k={gsm8k_dir / 'test.jsonl'}"]
    args += ["eval.num_problems=30", "eval.budgets=[32]", "eval.parallel=false", "eval.answer_max_tokens=64"]
    assert main(["eval", *args, "eval.batch_size=30", f"output_dir={out}"]) == 0
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    forced = [r for r in rows if r["truncated"]]
    assert len(forced) >= 25  # 32 tokens is far too few for a GSM8K solution: nearly every sample is cut
    assert all("Final Answer:" in r["response"] for r in forced)
    extracted = sum(r["extracted"] is not None for r in forced) / len(forced)
    assert extracted >= 0.95, f"only {extracted:.0%} of forced samples have an extractable answer"
