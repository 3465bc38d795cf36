"""Distillation from stored teacher logits: the bucketed loss by value, exactness against online distillation on the
organism when k is the vocabulary, the store's resume and its refusals."""

import json
import math
import shutil

import pytest
import torch
from launching import run_cli
from safetensors.torch import load_file

from lprecover.cli import main as cli
from lprecover.config import load_config, load_settings, save_settings
from lprecover.pruning.prune import prune_source
from lprecover.recovery.data import load_training_data
from lprecover.recovery.distill import distill_loss
from lprecover.recovery.logit_store import FLOOR, MANIFEST, TopK, buckets, sequences, tail_from_top, top_k
from lprecover.recovery.methods import build_trainer
from lprecover.recovery.recipe import DistillSettings, RecoveryConfig

P_TEACHER = [0.5, 0.3, 0.15, 0.05]


def _kd(student_probs, teacher: TopK, **kw) -> float:
    """The KD term of ``distill_loss`` for one labelled position whose student has ``student_probs``."""
    logits = torch.tensor(student_probs, dtype=torch.float64).log()[None, None]
    labels = torch.tensor([[-100, 0]])
    settings = DistillSettings(kd_weight=1.0, ce_weight=0.0, **kw)
    loss, _ = distill_loss(logits, teacher, labels, settings)
    return loss.item()


def _stored(probs, k) -> TopK:
    return top_k(torch.tensor([probs], dtype=torch.float64).log(), k)


def test_top_k_keeps_the_tail_mass():
    t = _stored(P_TEACHER, 2)
    assert t.ids.tolist() == [[0, 1]]
    assert t.logprobs.exp().tolist()[0] == pytest.approx([0.5, 0.3])
    assert t.tail.exp().item() == pytest.approx(0.2)
    # k = vocabulary: the tail is empty, floored where exp is exactly 0.
    assert _stored(P_TEACHER, 4).tail.item() == FLOOR and math.exp(FLOOR) == 0.0


def test_a_tail_from_float32_top_k_is_floored_at_their_rounding_not_at_empty():
    # vLLM's path: the tail is 1 minus the top k's mass. A tail of 0.01 is found; one below float32's rounding of
    # the top-1 probability (here log p rounds to 0) is floored at k * 2^-24, not at FLOOR as if it were empty.
    found = torch.tensor([[math.log(0.6), math.log(0.39)], [0.0, -30.0]], dtype=torch.float32)
    tail = tail_from_top(found)
    assert tail[0].item() == pytest.approx(math.log(0.01), rel=1e-4)
    assert tail[1].item() == pytest.approx(math.log(2 * 2.0**-24))
    # Reverse KL of a student with 1e-3 on token 1 and 1e-3 outside the top 2: about 0.03 (a FLOOR tail: about 10).
    teacher = TopK(torch.tensor([[0, 1]]), found[1:], tail[1:])
    expected = 0.998 * math.log(0.998) + 0.001 * (math.log(0.001) + 30) + 0.001 * math.log(0.001 / (2 * 2.0**-24))
    assert _kd([0.998, 0.001, 0.0005, 0.0005], teacher, divergence="reverse_kl") == pytest.approx(expected, rel=1e-3)


def test_bucketed_divergences_match_hand_computed_values():
    # Teacher buckets (0.5, 0.3 | 0.2), uniform student (0.25, 0.25 | 0.5).
    t, q = _stored(P_TEACHER, 2), [0.25] * 4
    forward = 0.5 * math.log(0.5 / 0.25) + 0.3 * math.log(0.3 / 0.25) + 0.2 * math.log(0.2 / 0.5)
    reverse = 0.25 * math.log(0.25 / 0.5) + 0.25 * math.log(0.25 / 0.3) + 0.5 * math.log(0.5 / 0.2)
    assert _kd(q, t) == pytest.approx(forward, rel=1e-9)
    assert _kd(q, t, divergence="reverse_kl") == pytest.approx(reverse, rel=1e-9)
    m = [0.5 * a + 0.5 * b for a, b in zip([0.5, 0.3, 0.2], [0.25, 0.25, 0.5])]
    jsd = 0.5 * sum(a * math.log(a / c) for a, c in zip([0.5, 0.3, 0.2], m))
    jsd += 0.5 * sum(b * math.log(b / c) for b, c in zip([0.25, 0.25, 0.5], m))
    assert _kd(q, t, divergence="jsd", beta=0.5) == pytest.approx(jsd, rel=1e-9)


def test_k_equal_to_the_vocabulary_is_the_full_divergence():
    q = [0.1, 0.2, 0.3, 0.4]
    full = sum(p * math.log(p / s) for p, s in zip(P_TEACHER, q))
    assert _kd(q, _stored(P_TEACHER, 4)) == pytest.approx(full, rel=1e-9)


def test_the_tail_is_matched_as_a_whole_but_not_within():
    # Same top two, same tail mass spread otherwise: nothing to learn. More tail mass than the teacher: a loss.
    assert _kd([0.5, 0.3, 0.1, 0.1], _stored(P_TEACHER, 2)) == pytest.approx(0.0, abs=1e-12)
    heavier = [0.4, 0.2, 0.2, 0.2]
    expected = 0.5 * math.log(0.5 / 0.4) + 0.3 * math.log(0.3 / 0.2) + 0.2 * math.log(0.2 / 0.4)
    assert _kd(heavier, _stored(P_TEACHER, 2)) == pytest.approx(expected, rel=1e-9)


def test_bucketed_forward_kl_never_exceeds_the_full_one():
    # The data-processing inequality: merging outcomes can only lose divergence, and loses none at k = vocabulary.
    g = torch.Generator().manual_seed(0)
    p = torch.randn(64, 50, generator=g, dtype=torch.float64).mul(2).log_softmax(-1)
    q = torch.randn(64, 50, generator=g, dtype=torch.float64).mul(2).log_softmax(-1)
    full = (p.exp() * (p - q)).sum(-1)
    for k in (1, 5, 20, 49, 50):
        s, t = buckets(q, top_k(p, k))
        bucketed = (t.exp() * (t - s)).sum(-1)
        assert (bucketed <= full + 1e-12).all()
    assert torch.allclose(bucketed, full, atol=1e-12)


def test_sequences_follow_the_order_the_loss_selects_positions():
    # One packed row of three sequences (5, 4 and 3 tokens); the collator leaves each one's first token unlabelled.
    ids = torch.arange(10, 22)[None]
    pos = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3, 0, 1, 2]])
    labels = torch.full_like(ids, -100)
    labels[0, [2, 3, 4, 7, 8]] = ids[0, [2, 3, 4, 7, 8]]  # the third sequence has nothing to learn
    found = sequences({"input_ids": ids, "labels": labels, "position_ids": pos})
    assert [n for _, n in found] == [3, 2]
    # The same tokens unpacked, as padded rows: the same keys (a sequence is its tokens and labels, not its row).
    rows = torch.zeros(2, 5, dtype=torch.long)
    rows[0], rows[1, :4] = ids[0, :5], ids[0, 5:9]
    row_labels = torch.full_like(rows, -100)
    row_labels[0, 2:5], row_labels[1, 2:4] = rows[0, 2:5], rows[1, 2:4]
    mask = torch.tensor([[1] * 5, [1, 1, 1, 1, 0]])
    assert sequences({"input_ids": rows, "labels": row_labels, "attention_mask": mask}) == found


@pytest.fixture(scope="module")
def organism(tmp_path_factory, teacher_path):
    """The organism pruned by two layers, and the distill recipe's settings."""
    d = tmp_path_factory.mktemp("stored")
    base = ["recipe=distill", "report_to=none", "train.max_steps=2", "train.save_steps=0"]
    cfg = load_config(RecoveryConfig, [*base, f"output_dir={d / 'run'}"], recipe_key="recipe")
    return d, base, prune_source(cfg.model, cfg.prune, d / "pruned")


def _store(d, args, name, *extra) -> tuple[int, object]:
    out = d / name
    code = cli(["teacher-logits", *args, f"student={d / 'pruned'}", f"store.out={out}", *extra])
    return code, out


@pytest.mark.parametrize("packing", [True, False])
def test_k_equal_to_the_vocabulary_gives_online_distillations_loss(organism, packing):
    d, base, student = organism
    args = [*base, f"train.packing={str(packing).lower()}"]
    code, store = _store(d, args, f"full-{packing}", "store.k=100000", "store.dtype=float32")
    assert code == 0
    manifest = json.loads((store / MANIFEST).read_text())
    assert manifest["k"] == manifest["vocab_size"] == 104

    def trainer(*extra):
        cfg = load_config(RecoveryConfig, [*args, f"student={student}", f"output_dir={d}/t", *extra], "recipe")
        return build_trainer(cfg, student, load_training_data(cfg.data, cfg.model), d / "t", "none")

    online, stored = trainer(), trainer(f"distill.teacher_logits={store}")
    assert stored.teacher is None
    batches = iter(online.get_train_dataloader())
    for _ in range(3):
        batch = next(batches)
        assert ("position_ids" in batch) == packing
        losses, grads = [], []
        for t in (online, stored):
            t.model.zero_grad()
            loss = t.compute_loss(t.model, batch)
            loss.backward()
            losses.append(loss.item())
            grads.append(torch.cat([p.grad.flatten() for p in t.model.parameters() if p.grad is not None]))
        assert losses[1] == pytest.approx(losses[0], rel=1e-5, abs=1e-7)
        assert torch.allclose(grads[1], grads[0], rtol=1e-4, atol=1e-7)
        assert losses[0] > 1e-3  # a pruned student: there is something to distil


def test_the_store_resumes_only_its_missing_shards_and_refuses_other_settings(organism, capsys, caplog):
    d, base, _ = organism
    code, store = _store(d, base, "resume", "store.k=8", "store.rows_per_shard=64")
    assert code == 0
    manifest = json.loads((store / MANIFEST).read_text())
    shards = manifest["shard_files"]
    assert len(shards) == -(-manifest["rows"] // 64) >= 3
    assert manifest["bytes_per_position"] < 8 * (2 + 2) + 2 + 1  # uint16 ids, float16 values and tail, + index
    before = {name: load_file(store / name) for name in shards}
    # What a crash leaves: some shards written whole, the rest and the manifest absent.
    for name in (shards[1], shards[-1], MANIFEST):
        (store / name).unlink()
    caplog.clear()
    assert _store(d, base, "resume", "store.k=8", "store.rows_per_shard=64")[0] == 0
    assert f"{len(shards)} shards, 2 to write" in caplog.text
    for name in shards:
        after = load_file(store / name)
        assert after.keys() == before[name].keys()
        assert all(torch.equal(after[key], before[name][key]) for key in after)
    assert json.loads((store / MANIFEST).read_text())["positions"] == manifest["positions"]

    assert _store(d, base, "resume", "store.k=4", "store.rows_per_shard=64")[0] == 2
    assert "holds a teacher-logit store made with different settings (k: 8 -> 4)" in capsys.readouterr().err
    # What the teacher computes with counts too: a relaunch in another dtype would mix shards.
    assert _store(d, base, "resume", "store.k=8", "store.rows_per_shard=64", "model.dtype=bfloat16")[0] == 2
    assert "model.dtype: 'auto' -> 'bfloat16'" in capsys.readouterr().err
    assert _store(d, base, "resume", "store.k=4", "store.rows_per_shard=64", "overwrite=true")[0] == 0
    assert json.loads((store / MANIFEST).read_text())["k"] == 4


@pytest.mark.slow
def test_two_processes_write_the_store_one_process_writes_and_resume_it(organism):
    d, base, _ = organism
    args = ["teacher-logits", *base, f"student={d / 'pruned'}", "store.k=8", "store.rows_per_shard=32"]
    one, two = d / "one-process", d / "two-processes"
    run_cli([*args, f"store.out={one}"], 1)
    log = run_cli([*args, f"store.out={two}"], 2)
    expected = json.loads((one / MANIFEST).read_text())
    shards = expected["shard_files"]
    assert len(shards) >= 5
    n = len(shards)
    for i in range(2):  # each process wrote its own share: shards i, i + 2, ...
        assert f"process {i} of 2 writes {len(range(i, n, 2))} of them" in log

    def same_store():
        found = json.loads((two / MANIFEST).read_text())
        timing = ("teacher_seconds", "bytes", "bytes_per_position")  # the shards' metadata hold their own seconds
        assert {k: v for k, v in found.items() if k not in timing} == {
            k: v for k, v in expected.items() if k not in timing
        }
        for name in shards:
            a, b = load_file(one / name), load_file(two / name)
            assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a), name

    same_store()
    # A launch cut short: three shards and the manifest lost; two processes write back only those three.
    for name in (shards[0], shards[2], shards[-1], MANIFEST):
        (two / name).unlink()
    log = run_cli([*args, f"store.out={two}"], 2)
    assert f"{n} shards, 3 to write" in log
    assert "process 0 of 2 writes 2 of them" in log and "process 1 of 2 writes 1 of them" in log
    same_store()


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["distill.temperature=2.0"], "holds log-probabilities at temperature 1.0, the recipe distils at"),
        (["train.max_length=24"], "other training data than this run's (train.max_length: 256 -> 24)"),
        (["data.split=short"], "other training data than this run's (data.split: 'longcot' -> 'short')"),
    ],
)
def test_training_refuses_a_store_made_for_other_settings_before_writing_anything(
    organism, extra, fragment, tmp_path, capsys
):
    d, base, student = organism
    store = _refusals_store(d, base)
    args = [*base, f"student={student}", f"distill.teacher_logits={store}", f"output_dir={tmp_path / 'run'}"]
    assert cli(["train", *args, *extra]) == 2
    assert fragment in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # refused before config.yaml, so the corrected relaunch is not refused


def test_training_refuses_a_store_that_lacks_its_sequences_under_the_same_settings(organism, tmp_path, capsys):
    """Settings that agree while the rows do not (an edited data file): the exact check on the prepared data."""
    d, base, student = organism
    store = tmp_path / "store"
    shutil.copytree(_refusals_store(d, base), store)
    saved = load_settings(store)
    saved["data"]["split"] = "short"  # the store claims the short split; its sequences are the long traces
    save_settings(store, saved)
    args = [*base, f"student={student}", f"distill.teacher_logits={store}", f"output_dir={tmp_path / 'run'}"]
    assert cli(["train", *args, "data.split=short"]) == 2
    assert "training sequences are not in the store" in capsys.readouterr().err
    assert not (tmp_path / "run" / "model").exists()


def _refusals_store(d, base):
    store = d / "for-refusals"
    if not (store / MANIFEST).exists():
        assert _store(d, base, "for-refusals", "store.k=4")[0] == 0
    return store


@pytest.mark.slow
def test_stored_logits_on_real_pretrained_weights(smollm2_gsm8k_args, tmp_path):
    """SmolLM2 (49,152 tokens) pruned by two middle layers, on GSM8K traces (its template has no generation
    markers: the prompt/completion path). A store of the whole vocabulary gives online distillation's loss and
    gradients; a top 64 in float16 gives a forward KL just below it (bucketing can only lose divergence)."""
    args = [
        "recipe=distill",
        *smollm2_gsm8k_args,
        "data.limit=6",
        "train.per_device_batch_size=2",
        "train.max_length=256",
        "report_to=none",
    ]
    cfg = load_config(RecoveryConfig, [*args, f"output_dir={tmp_path}/run"], recipe_key="recipe")
    student = prune_source(cfg.model, cfg.prune, tmp_path / "pruned")
    stores = {}
    for k, dtype in ((49152, "float32"), (64, "float16")):
        stores[k] = tmp_path / f"k{k}"
        store_args = [f"store.out={stores[k]}", f"store.k={k}", f"store.dtype={dtype}", f"student={student}"]
        assert cli(["teacher-logits", *args, *store_args]) == 0
    # 4k + 2 bytes a position (uint16 ids), plus the index (24 bytes a sequence) and the file headers
    assert json.loads((stores[64] / MANIFEST).read_text())["bytes_per_position"] < 64 * 4 + 2 + 2

    def trainer(*extra):
        run = load_config(RecoveryConfig, [*args, f"student={student}", f"output_dir={tmp_path}/t", *extra], "recipe")
        return build_trainer(run, student, load_training_data(run.data, run.model), tmp_path / "t", "none")

    trainers = [trainer(), trainer(f"distill.teacher_logits={stores[49152]}")]
    trainers.append(trainer(f"distill.teacher_logits={stores[64]}"))
    batch = next(iter(trainers[0].get_train_dataloader()))
    losses, grads = [], []
    for t in trainers:
        t.model.zero_grad()
        loss = t.compute_loss(t.model, batch)
        loss.backward()
        losses.append(loss.item())
        grads.append(torch.cat([p.grad.flatten() for p in t.model.parameters() if p.grad is not None]))
    online, full, top64 = losses
    assert full == pytest.approx(online, rel=1e-5)
    assert ((grads[1] - grads[0]).norm() / grads[0].norm()).item() < 1e-4  # float32 sums over 49k tokens
    assert 0.9 * online < top64 <= online * (1 + 1e-3), losses
