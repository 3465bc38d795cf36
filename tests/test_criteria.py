import copy

import pytest
import torch
from tiny_models import VOCAB, tiny_model
from transformers import AutoModelForCausalLM

from lprecover.config import ConfigError
from lprecover.pruning.calibration import build_calibration
from lprecover.pruning.config import PruneConfig
from lprecover.pruning.criteria import Calibration, boundary_distances, calibration_loss, decide, skipping
from lprecover.pruning.prune import prune_model
from lprecover.surgery import find_blocks


def _calibration(tokenizer, tmp_path, n=6):
    path = tmp_path / "cal.txt"
    path.write_text("\n".join(f"line {i}: the quick brown fox jumps over {i * 7} lazy dogs" for i in range(n)))
    return build_calibration(None, tokenizer, "text", str(path), num_samples=n, seq_len=64, batch_size=3)


@torch.no_grad()
def _make_identity(model, layers):
    """Zero the blocks' output projections: each then returns its input exactly (the residual alone)."""
    for i in layers:
        block = find_blocks(model)[1][i]
        block.self_attn.o_proj.weight.zero_()
        block.mlp.down_proj.weight.zero_()


@torch.no_grad()
def _own_traces(model, n=6, prompt=4, length=24) -> Calibration:
    """Calibration text the model itself wrote greedily, after sharpening its output layer.

    On its own greedy tokens a sharp model is near its best, so skipping any block that does something raises the
    loss (by 0.18 nats or more in these models), while skipping an identity block changes nothing.
    """
    model.lm_head.weight.mul_(30.0)
    ids = torch.randint(3, VOCAB, (n, prompt), generator=torch.Generator().manual_seed(0))
    out = model.generate(ids, max_new_tokens=length - prompt, do_sample=False, pad_token_id=0, eos_token_id=None)
    labels = out.clone()
    labels[:, :prompt] = -100  # the random prompt is not the model's own text
    return Calibration(
        [
            {
                "input_ids": out[i : i + 3],
                "attention_mask": torch.ones_like(out[i : i + 3]),
                "labels": labels[i : i + 3],
            }
            for i in range(0, n, 3)
        ]
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("identity", [2, 5])  # 5: the last block is scored too
def test_an_identity_block_is_the_first_one_every_data_criterion_removes(identity, dtype):
    model = tiny_model("llama", dtype=dtype)
    _make_identity(model, [identity])
    cal = _own_traces(model)
    others = [i for i in range(6) if i != identity]

    shortgpt = decide(model, cal, "shortgpt", 1)
    assert shortgpt.removed == [identity]
    assert shortgpt.scores[identity] == pytest.approx(0.0, abs=1e-6)
    assert min(shortgpt.scores[i] for i in others) > 0.02
    assert decide(model, cal, "angular", 1).removed == [identity]

    ppl = decide(model, cal, "ppl", 1)
    assert ppl.removed == [identity]
    assert ppl.scores[identity] == 0.0  # skipping it runs the very same computation
    assert min(ppl.scores[i] for i in others) > 0.1

    sleb = decide(model, cal, "sleb", 1)
    assert sleb.removed == [identity]
    assert sleb.scores[identity] == pytest.approx(calibration_loss(model, cal), abs=1e-6)


def test_angular_removes_the_window_of_identity_blocks():
    model = tiny_model("llama")
    _make_identity(model, [2, 3])
    decision = decide(model, _own_traces(model), "angular", 2)
    assert decision.removed == [2, 3]
    assert decision.scores[2] == pytest.approx(0.0, abs=1e-3)  # arccos of a cosine of 1 up to rounding
    assert min(decision.scores[i] for i in (0, 1, 3, 4)) > 0.05


def test_sleb_rescores_after_each_removal():
    model = tiny_model("llama")
    _make_identity(model, [1, 4])
    cal = _own_traces(model)
    base = calibration_loss(model, cal)
    decision = decide(model, cal, "sleb", 2)
    assert decision.removed == [1, 4]
    # the first round scores each layer alone: both identity blocks leave the loss where it was
    assert decision.scores[1] == pytest.approx(base, abs=1e-6)
    assert decision.scores[4] == pytest.approx(base, abs=1e-6)


def test_magnitude_scores_are_mean_abs_and_rms_weight():
    model = tiny_model("llama")
    before_l1 = decide(model, None, "magnitude_l1", 1).scores
    before_l2 = decide(model, None, "magnitude_l2", 1).scores
    with torch.no_grad():
        for w in find_blocks(model)[1][3].parameters():
            w.mul_(0.5)
    l1, l2 = decide(model, None, "magnitude_l1", 1), decide(model, None, "magnitude_l2", 1)
    assert l1.removed == l2.removed == [3]
    assert l1.scores == pytest.approx([s * (0.5 if i == 3 else 1.0) for i, s in enumerate(before_l1)], rel=1e-12)
    assert l2.scores == pytest.approx([s * (0.5 if i == 3 else 1.0) for i, s in enumerate(before_l2)], rel=1e-12)


@torch.no_grad()
def test_magnitude_ranks_bf16_layers_that_differ_by_a_tenth_of_a_percent():
    """Every matrix is 2**-6 with a fraction ``f`` of entries one bf16 step up: mean |w| = 2**-6 * (1 + f / 128).

    The layers' means differ by 0.08-0.31%, below bf16's resolution: summed in bf16 all four score the same.
    """
    config = tiny_model("llama").config
    config.num_hidden_layers = 4
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    low, high = 2.0**-6, 2.0**-6 + 2.0**-13  # adjacent bf16 values
    fractions = [0.3, 0.1, 0.4, 0.2]
    l1, l2 = [], []
    for block, f in zip(find_blocks(model)[1], fractions):
        weights = [w for w in block.parameters() if w.dim() >= 2]
        raised = [round(f * w.numel()) for w in weights]
        for w, k in zip(weights, raised):
            w.fill_(low).view(-1)[:k] = high
        total, up = sum(w.numel() for w in weights), sum(raised)
        l1.append((low * (total - up) + high * up) / total)
        l2.append(((low**2 * (total - up) + high**2 * up) / total) ** 0.5)

    assert decide(model, None, "magnitude_l1", 2).scores == pytest.approx(l1, rel=1e-12)
    assert decide(model, None, "magnitude_l2", 2).scores == pytest.approx(l2, rel=1e-12)
    assert decide(model, None, "magnitude_l1", 2).removed == [1, 3]
    assert decide(model, None, "magnitude_l2", 1).removed == [1]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_taylor_scores_a_block_that_does_nothing_zero(dtype):
    model = tiny_model("llama", dtype=dtype)
    _make_identity(model, [3])
    decision = decide(model, _own_traces(model), "taylor", 1)
    assert decision.removed == [3]
    assert decision.scores[3] == 0.0  # its zeroed projections cut every gradient through it
    assert min(s for i, s in enumerate(decision.scores) if i != 3) > 0


def test_taylor_sums_bf16_gradients_over_batches_in_float32_and_products_in_float64():
    """The gradient is summed over calibration batches: in bf16 (``.grad`` accumulating in the weights' dtype)
    every batch after the first lost its low bits."""
    model = tiny_model("llama", dtype=torch.bfloat16)
    cal = _own_traces(model)
    assert len(cal.batches) >= 2
    reference = copy.deepcopy(model)
    blocks = find_blocks(reference)[1]
    summed = [[None for _ in b.parameters()] for b in blocks]
    in_bf16 = copy.deepcopy(model)
    for batch in cal.batches:
        reference.zero_grad(set_to_none=True)
        reference(**batch, use_cache=False).loss.backward()  # one batch's gradient, exact in bf16 as computed
        for i, block in enumerate(blocks):
            for j, w in enumerate(block.parameters()):
                g = w.grad.double()
                summed[i][j] = g if summed[i][j] is None else summed[i][j] + g
        in_bf16(**batch, use_cache=False).loss.backward()  # the old way: .grad sums the batches in bf16

    def scores(weights_and_grads):
        return [sum(float((w.detach().double() * g).abs().sum()) for w, g in wg) for wg in weights_and_grads]

    expected = scores([zip(b.parameters(), summed[i]) for i, b in enumerate(blocks)])
    old = scores([[(w, w.grad.double()) for w in b.parameters()] for b in find_blocks(in_bf16)[1]])
    got = decide(model, cal, "taylor", 1).scores
    assert got == pytest.approx(expected, rel=1e-5)
    assert max(abs(o - e) / e for o, e in zip(old, expected)) > 10 * max(abs(g - e) / e for g, e in zip(got, expected))


def test_tail_and_selection_remove_what_they_name():
    model = tiny_model("llama")
    tail = decide(model, None, "tail", 2)
    assert tail.removed == [4, 5] and tail.scores == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    selection = decide(model, None, "selection", 2, layers=[4, 1])
    assert selection.removed == [1, 4] and selection.scores == [1.0, 0.0, 1.0, 1.0, 0.0, 1.0]


def test_laco_merges_from_the_top_reserving_differences(organism_tokenizer, tmp_path):
    model = tiny_model("llama")
    w = [b.mlp.up_proj.weight.detach().clone() for b in find_blocks(model)[1]]
    decision = decide(model, _calibration(organism_tokenizer, tmp_path), "laco", 2, threshold=-1.0)
    assert decision.merged == {3: [4, 5]} and decision.removed == [4, 5]
    merged = find_blocks(model)[1][3].mlp.up_proj.weight
    torch.testing.assert_close(merged, w[3] + (w[4] - w[3]) + (w[5] - w[3]))


def test_block_influence_ignores_padding(organism_tokenizer, tmp_path):
    model = tiny_model("qwen3")
    cal = _calibration(organism_tokenizer, tmp_path)
    padded = Calibration(
        [
            {k: torch.cat([v, torch.full((v.shape[0], 9), 0 if k != "labels" else -100)], dim=1) for k, v in b.items()}
            for b in cal.batches
        ]
    )
    for b in padded.batches:
        b["input_ids"][:, -9:] = 5  # junk tokens that a padding-blind score would count
    assert boundary_distances(model, cal) == pytest.approx(boundary_distances(model, padded), rel=1e-4)


def test_skipping_a_layer_matches_removing_it(organism_tokenizer, tmp_path):
    cal = _calibration(organism_tokenizer, tmp_path)
    model = tiny_model("llama")
    with skipping(model, [2]):
        skipped = calibration_loss(model, cal)
    prune_model(model, organism_tokenizer, PruneConfig(method="selection", layers=[2]))
    assert calibration_loss(model, cal) == pytest.approx(skipped, rel=1e-5)


def test_laco_refuses_when_threshold_is_unreachable(organism_tokenizer, tmp_path):
    with pytest.raises(ConfigError, match="laco_threshold"):
        decide(tiny_model("llama"), _calibration(organism_tokenizer, tmp_path), "laco", 2, threshold=1.01)


def test_random_is_seeded():
    model = tiny_model("llama")
    assert decide(model, None, "random", 2, seed=3).removed == decide(model, None, "random", 2, seed=3).removed


def test_taylor_restores_model_state(organism_tokenizer, tmp_path):
    model = tiny_model("llama")
    for p in model.parameters():
        p.requires_grad_(False)
    decide(model, _calibration(organism_tokenizer, tmp_path), "taylor", 1)
    assert not any(p.requires_grad for p in model.parameters())
    assert all(p.grad is None for p in model.parameters())
    assert len(find_blocks(model)[1]) == 6
