"""Pruning the real pretrained SmolLM2-135M-Instruct (30 Llama layers)."""

import copy
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from lprecover.cli import main
from lprecover.pruning.calibration import build_calibration
from lprecover.pruning.criteria import Decision, apply, calibration_loss

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smollm2(smollm2_path):
    return AutoModelForCausalLM.from_pretrained(smollm2_path).eval(), AutoTokenizer.from_pretrained(smollm2_path)


@pytest.fixture(scope="module")
def pruned_dir(smollm2_path, gsm8k_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("smollm2") / "shortgpt-4"
    args = [f"model.name_or_path={smollm2_path}", "prune.method=shortgpt", "prune.n_layers=4"]
    args += ["prune.calibration=problems", f"prune.calibration_path={gsm8k_dir / 'train.jsonl'}"]
    args += ["prune.num_samples=16", "prune.seq_len=192", f"output_dir={out}"]
    assert main(["prune", *args]) == 0
    return out


def test_block_influence_profile_is_saved_and_plotted(pruned_dir):
    scores = json.loads((pruned_dir / "prune_scores.json").read_text())
    assert len(scores["scores"]) == 30 and all(s > 0 for s in scores["scores"])
    lowest = sorted(range(30), key=scores["scores"].__getitem__)[:4]
    assert scores["removed_layers"] == sorted(lowest)
    assert scores["provenance"]["calibration"]["tokens"] > 1000
    assert (pruned_dir / "prune_scores.png").stat().st_size > 5000


def test_heldout_perplexity_rises_with_each_removed_layer(smollm2, pruned_dir, gsm8k_dir):
    model, tok = smollm2
    heldout = build_calibration(
        model, tok, "problems", str(gsm8k_dir / "test.jsonl"), num_samples=12, seq_len=192, batch_size=6, seed=1
    )
    scores = json.loads((pruned_dir / "prune_scores.json").read_text())["scores"]
    order = sorted(range(30), key=scores.__getitem__)
    losses = [calibration_loss(model, heldout)]
    for n in (1, 2, 4):
        pruned = copy.deepcopy(model)
        apply(pruned, Decision(scores, sorted(order[:n])), "shortgpt")
        losses.append(calibration_loss(pruned, heldout))
    ppl = [float(torch.tensor(x).exp()) for x in losses]
    assert ppl[0] < ppl[1] < ppl[2] < ppl[3], ppl


def test_reload_and_cache_equivalence_on_real_weights(smollm2, pruned_dir):
    model, tok = smollm2
    reloaded = AutoModelForCausalLM.from_pretrained(pruned_dir).eval()
    assert reloaded.config.num_hidden_layers == 26
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "What is 12 times 7?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    # Reloaded weights give the logits of the model pruned in memory.
    removed = json.loads((pruned_dir / "prune_scores.json").read_text())["removed_layers"]
    in_memory = copy.deepcopy(model)
    apply(in_memory, Decision([0.0] * 30, removed), "shortgpt")
    with torch.no_grad():
        assert torch.equal(in_memory(**ids).logits, reloaded(**ids).logits)
    cached = reloaded.generate(**ids, max_new_tokens=24, do_sample=False, use_cache=True)
    uncached = reloaded.generate(**ids, max_new_tokens=24, do_sample=False, use_cache=False)
    assert torch.equal(cached, uncached)


def test_trace_calibration_works_for_a_model_without_thinking_tokens(smollm2, gsm8k_dir):
    model, tok = smollm2
    cal = build_calibration(
        model, tok, "traces", str(gsm8k_dir / "train.jsonl"), num_samples=2, seq_len=96, batch_size=2
    )
    assert cal.source == "traces" and cal.batches[0]["input_ids"].shape == (2, 96)
    prompt = tok.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True)
    assert cal.num_tokens > 2 * len(tok.encode(prompt))  # the model's own continuation is in there
