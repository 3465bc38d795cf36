import pytest
import torch
from tiny_models import tiny_model

from lprecover.pruning import CRITERIA, PruneConfig, prune_model
from lprecover.pruning.calibration import Calibration, build_calibration
from lprecover.pruning.criteria import boundary_distances, calibration_loss, decide, skipping
from lprecover.surgery import find_blocks


def _calibration(tokenizer, tmp_path, n=6):
    path = tmp_path / "cal.txt"
    path.write_text("\n".join(f"line {i}: the quick brown fox jumps over {i * 7} lazy dogs" for i in range(n)))
    return build_calibration(None, tokenizer, "text", str(path), num_samples=n, seq_len=64, batch_size=3)


@pytest.mark.parametrize("method", sorted(CRITERIA))
def test_every_criterion_removes_the_requested_count(method, organism_tokenizer, tmp_path):
    model = tiny_model("llama")
    cal = _calibration(organism_tokenizer, tmp_path)
    kwargs = {"layers": [1, 4]} if method == "selection" else {}
    kwargs |= {"threshold": -1.0} if method == "laco" else {}
    decision = decide(model, cal, method, 2, **kwargs)
    assert len(decision.removed) == 2 and len(set(decision.removed)) == 2
    assert all(0 <= i < 6 for i in decision.removed)
    assert len(decision.scores) == (5 if method == "angular" else 6)


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


def test_block_influence_scores_the_last_layer(organism_tokenizer, tmp_path):
    model = tiny_model("llama")
    scores = boundary_distances(model, _calibration(organism_tokenizer, tmp_path))
    assert len(scores) == 6 and scores[-1] > 0


def test_angular_removes_a_contiguous_block(organism_tokenizer, tmp_path):
    decision = decide(tiny_model("llama"), _calibration(organism_tokenizer, tmp_path), "angular", 3)
    start = decision.removed[0]
    assert decision.removed == [start, start + 1, start + 2]
    assert decision.scores[start] == min(decision.scores)


def test_skipping_a_layer_matches_removing_it(organism_tokenizer, tmp_path):
    cal = _calibration(organism_tokenizer, tmp_path)
    model = tiny_model("llama")
    with skipping(model, [2]):
        skipped = calibration_loss(model, cal)
    prune_model(model, organism_tokenizer, PruneConfig(method="selection", layers=[2]))
    assert calibration_loss(model, cal) == pytest.approx(skipped, rel=1e-5)


def test_sleb_rescoring_and_ppl_pick_lowest_loss(organism_tokenizer, tmp_path):
    cal = _calibration(organism_tokenizer, tmp_path)
    model = tiny_model("llama")
    ppl = decide(model, cal, "ppl", 1)
    assert ppl.removed == [min(range(6), key=ppl.scores.__getitem__)]
    sleb = decide(model, cal, "sleb", 1)
    assert sleb.removed == ppl.removed  # one step of SLEB is the ppl criterion


def test_laco_refuses_when_threshold_is_unreachable(organism_tokenizer, tmp_path):
    with pytest.raises(ValueError, match="laco_threshold"):
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
