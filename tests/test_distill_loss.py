"""The distillation loss by value: divergences, temperature, masks and normalisers against numbers computed here
from their definitions, and the hidden-state term's positions and layer alignment on a pruned model."""

import copy
import math

import pytest
import torch
from datasets import Dataset
from tiny_models import tiny_model

from lprecover.organism.task import make_problems, to_record
from lprecover.recovery.distill import DistillTrainer, distill_loss, hidden_state_loss
from lprecover.recovery.recipe import DistillSettings
from lprecover.recovery.sft import has_generation_markers, sft_args, sft_trainer
from lprecover.recovery.train_config import TrainConfig
from lprecover.surgery import kept_to_original, remove_layers


def softmax(logits: list[float], temperature: float = 1.0) -> list[float]:
    e = [math.exp(z / temperature) for z in logits]
    return [x / sum(e) for x in e]


def kl(p: list[float], q: list[float]) -> float:
    """KL(p || q) = sum_i p_i log(p_i / q_i)."""
    return sum(a * math.log(a / b) for a, b in zip(p, q))


def jsd(p_teacher: list[float], p_student: list[float], beta: float) -> float:
    """The generalized JSD of Agarwal et al. (2306.13649, eq. 1) as TRL weighs it: mixture M = beta T + (1 - beta) S,
    beta KL(T || M) + (1 - beta) KL(S || M)."""
    m = [beta * t + (1 - beta) * s for t, s in zip(p_teacher, p_student)]
    return beta * kl(p_teacher, m) + (1 - beta) * kl(p_student, m)


def settings(**kw) -> DistillSettings:
    return DistillSettings(**{"kd_weight": 1.0, "ce_weight": 0.0, **kw})


# Two labelled tokens over a three-word vocabulary; labels are unshifted, so the logits at positions 0 and 1
# predict labels[1] = 0 and labels[2] = 2.
STUDENT = [[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]]
TEACHER = [[0.0, 1.0, 0.0], [2.0, 0.0, 1.0]]
LABELS = [[-100, 0, 2]]


def _loss(student=STUDENT, teacher=TEACHER, labels=LABELS, num_items_in_batch=None, **kw):
    s, t = torch.tensor(student), torch.tensor(teacher)
    if s.dim() == 2:
        s, t = s[None], t[None]
    loss, logged = distill_loss(s, t, torch.tensor(labels), settings(**kw), num_items_in_batch)
    return loss.item(), {k: v.item() for k, v in logged.items()}


def test_divergences_on_two_words_match_hand_computed_values():
    # Student uniform, teacher (3/4, 1/4): forward KL = 3/4 ln(3/2) + 1/4 ln(1/2); reverse KL = 1/2 ln(2/3) +
    # 1/2 ln 2; JSD at 1/2 mixes into (5/8, 3/8).
    student, teacher, labels = [[0.0, 0.0]], [[math.log(3), 0.0]], [[-100, 1]]
    assert _loss(student, teacher, labels, divergence="forward_kl")[0] == pytest.approx(0.1308120, abs=1e-6)
    assert _loss(student, teacher, labels, divergence="reverse_kl")[0] == pytest.approx(0.1438410, abs=1e-6)
    assert _loss(student, teacher, labels, divergence="jsd", beta=0.5)[0] == pytest.approx(0.0338221, abs=1e-6)


@pytest.mark.parametrize(
    "divergence, per_token",
    [
        ("forward_kl", lambda t, s: kl(t, s)),
        ("reverse_kl", lambda t, s: kl(s, t)),
        ("jsd", lambda t, s: jsd(t, s, 0.5)),
    ],
)
def test_divergence_is_the_mean_over_labelled_tokens(divergence, per_token):
    expected = sum(per_token(softmax(t), softmax(s)) for s, t in zip(STUDENT, TEACHER)) / 2
    loss, logged = _loss(divergence=divergence)
    assert loss == pytest.approx(expected, rel=1e-5)
    assert logged == {"kd": pytest.approx(expected, rel=1e-5)}


def test_jsd_beta_weighs_teacher_and_student_as_trl_does():
    # beta = 0.9 puts the mixture near the teacher, so the loss is dominated by KL(S || M) weighted 0.1 and
    # KL(T || M) weighted 0.9: an asymmetric beta tells the two roles apart.
    expected = sum(jsd(softmax(t), softmax(s), 0.9) for s, t in zip(STUDENT, TEACHER)) / 2
    swapped = sum(jsd(softmax(s), softmax(t), 0.9) for s, t in zip(STUDENT, TEACHER)) / 2
    assert _loss(divergence="jsd", beta=0.9)[0] == pytest.approx(expected, rel=1e-5)
    assert abs(expected - swapped) > 1e-3


def test_temperature_softens_both_and_scales_by_its_square():
    expected = 4 * sum(kl(softmax(t, 2.0), softmax(s, 2.0)) for s, t in zip(STUDENT, TEACHER)) / 2
    assert _loss(temperature=2.0)[0] == pytest.approx(expected, rel=1e-5)


def test_unlabelled_positions_are_left_out():
    # Row 0 labels only its first predicted position, row 1 only its second; the other two positions carry logits
    # that disagree wildly and must not count.
    wild_s, wild_t = [10.0, -10.0, 0.0], [-10.0, 10.0, 0.0]
    student = [[STUDENT[0], wild_s], [wild_s, STUDENT[1]]]
    teacher = [[TEACHER[0], wild_t], [wild_t, TEACHER[1]]]
    labels = [[-100, 0, -100], [-100, -100, 2]]
    expected = sum(kl(softmax(t), softmax(s)) for s, t in zip(STUDENT, TEACHER)) / 2
    assert _loss(student, teacher, labels)[0] == pytest.approx(expected, rel=1e-5)


def test_normaliser_is_the_batch_token_count_and_logs_stay_per_token():
    total = sum(kl(softmax(t), softmax(s)) for s, t in zip(STUDENT, TEACHER))
    loss, logged = _loss(num_items_in_batch=5)
    assert loss == pytest.approx(total / 5, rel=1e-5)
    assert logged["kd"] == pytest.approx(total / 2, rel=1e-5)


def test_cross_entropy_mixes_in_by_its_weight():
    kd = sum(kl(softmax(t), softmax(s)) for s, t in zip(STUDENT, TEACHER)) / 2
    ce = -(math.log(softmax(STUDENT[0])[0]) + math.log(softmax(STUDENT[1])[2])) / 2
    loss, logged = _loss(kd_weight=0.5, ce_weight=2.0)
    assert loss == pytest.approx(0.5 * kd + 2.0 * ce, rel=1e-5)
    assert logged == {"kd": pytest.approx(kd, rel=1e-5), "ce": pytest.approx(ce, rel=1e-5)}
    assert _loss(kd_weight=0.0, ce_weight=1.0)[0] == pytest.approx(ce, rel=1e-5)


def test_hidden_state_distances_by_value():
    # One token, teacher layers 0..2, student layers mapped to teacher layers 0 and 2.
    student = [torch.tensor([[[1.0, 2.0]]]), torch.tensor([[[3.0, 4.0]]])]
    teacher = [torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[9.0, 9.0]]]), torch.tensor([[[0.0, 2.0]]])]
    mask = torch.tensor([[True]])
    # mse: |s - t|^2 / |t|^2 -> (0 + 4) / 1 = 4 and (9 + 4) / 4 = 3.25, averaged over the two layers.
    assert hidden_state_loss(student, teacher, [0, 2], mask, "mse").item() == pytest.approx((4 + 3.25) / 2)
    # cosine: 1 - s.t / (|s||t|) -> 1 - 1/sqrt(5) and 1 - 8/(5 * 2).
    expected = ((1 - 1 / math.sqrt(5)) + (1 - 0.8)) / 2
    assert hidden_state_loss(student, teacher, [0, 2], mask, "cosine").item() == pytest.approx(expected)
    assert hidden_state_loss(student, teacher, [0, 2], torch.tensor([[False]]), "mse").item() == 0


def test_hidden_term_covers_the_positions_whose_logits_are_distilled():
    # labels[2..4] are the span, so the logits at positions 1..3 predict it. The states differ only at position 1
    # (distilled), 4 (a label, but its logit predicts nothing labelled) and 5 (the last): only position 1 counts.
    labels = torch.tensor([[-100, -100, 5, 6, 7, -100]])
    teacher = torch.ones(1, 6, 2)
    student = teacher.clone()
    student[0, 1] = torch.tensor([1.0, 3.0])  # |s - t|^2 / |t|^2 = 4 / 2
    student[0, 4] = torch.tensor([5.0, 1.0])  # 16 / 2
    student[0, 5] = torch.tensor([1.0, 9.0])  # 64 / 2
    logits = torch.zeros(1, 3, 8)
    cfg = settings(kd_weight=0.0, hidden_weight=1.0)
    loss, logged = distill_loss(logits, logits, labels, cfg, hidden=([student], [teacher], [0]))
    assert loss.item() == pytest.approx(2 / 3)  # position 1's distance over the 3 distilled tokens
    assert logged == {"hidden": pytest.approx(2 / 3)}


@pytest.fixture()
def make_trainer(organism_tokenizer, tmp_path):
    """A DistillTrainer on given student and teacher, with the project's SFT arguments and a few organism rows."""
    tok = organism_tokenizer
    rows = Dataset.from_list([to_record(p, "longcot") for p in make_problems(8, 1, 3, seed=0)])
    args = sft_args(
        TrainConfig(max_steps=1, packing=False, max_length=128),
        str(tmp_path),
        assistant_masks=has_generation_markers(tok),
    )

    def make(student, teacher, hidden, **kw):
        return sft_trainer(
            student,
            tok,
            rows,
            args,
            trainer_class=DistillTrainer,
            teacher=teacher,
            settings=settings(**kw),
            hidden=hidden,
        )

    return make


def _batch(seed=0):
    """Two rows of 10 tokens with different label spans (one of them touching the last position)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 100, (2, 10), generator=g)
    labels = torch.full_like(ids, -100)
    labels[0, 3:7], labels[1, 6:10] = ids[0, 3:7], ids[1, 6:10]
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}


def _block_outputs(model, ids) -> list[torch.Tensor]:
    outs = []
    handles = [
        b.register_forward_hook(lambda m, a, o: outs.append(o[0] if isinstance(o, tuple) else o))
        for b in model.model.layers
    ]
    with torch.no_grad():
        model(input_ids=ids)
    for h in handles:
        h.remove()
    return outs


def test_trainer_loss_is_the_same_with_and_without_logits_to_keep(make_trainer):
    teacher, student = tiny_model("llama", seed=0), tiny_model("llama", seed=1)
    trainer = make_trainer(student, teacher, hidden=False, kd_weight=1.0, ce_weight=0.5)
    batch = _batch()
    assert trainer.logits_to_keep  # Llama's forward takes it, so the first loss projects only kept positions
    with torch.no_grad():
        kept = trainer.compute_loss(trainer.model, batch).item()
        trainer.logits_to_keep = False
        full = trainer.compute_loss(trainer.model, batch).item()

        # Independently: full logits, shifted by one, at the labelled positions.
        s = student(input_ids=batch["input_ids"]).logits[:, :-1].double()
        t = teacher(input_ids=batch["input_ids"]).logits[:, :-1].double()
    target = batch["labels"][:, 1:]
    on = target != -100
    p_s, p_t = s[on].softmax(-1), t[on].softmax(-1)
    kd = (p_t * (p_t.log() - p_s.log())).sum(-1).mean()
    ce = -p_s.log().gather(1, target[on][:, None]).mean()
    assert kept == pytest.approx(full, rel=1e-6)
    assert kept == pytest.approx((kd + 0.5 * ce).item(), rel=1e-5)


def test_hidden_term_matches_each_kept_layer_to_its_original_teacher_layer(make_trainer):
    teacher = tiny_model("llama", seed=0)
    student = copy.deepcopy(teacher)
    remove_layers(student, [2, 3])
    trainer = make_trainer(student, teacher, hidden=True, kd_weight=0.0, hidden_weight=1.0)
    assert trainer.layer_map == kept_to_original(student.config) == [0, 1, 4, 5]

    batch = _batch()
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, batch).item()
    s_states, t_states = _block_outputs(student, batch["input_ids"]), _block_outputs(teacher, batch["input_ids"])
    positions = [(b, p) for b in range(2) for p in range(9) if batch["labels"][b, p + 1] != -100]
    expected = 0.0
    for i, j in enumerate([0, 1, 4, 5]):
        for b, p in positions:
            s, t = s_states[i][b, p].double(), t_states[j][b, p].double()
            expected += ((s - t) ** 2).sum().item() / (t**2).sum().item() / 4
    assert loss == pytest.approx(expected / len(positions), rel=1e-5)


def test_a_student_equal_to_its_teacher_minus_identity_layers_has_zero_loss(make_trainer):
    # Zeroing the output projections makes teacher layers 2 and 3 pass their input through, so the pruned student
    # computes exactly what the teacher does: every aligned layer agrees, and so do the logits.
    teacher = tiny_model("llama", seed=0)
    for layer in teacher.model.layers[2:4]:
        torch.nn.init.zeros_(layer.self_attn.o_proj.weight)
        torch.nn.init.zeros_(layer.mlp.down_proj.weight)
    student = copy.deepcopy(teacher)
    remove_layers(student, [2, 3])
    trainer = make_trainer(student, teacher, hidden=True, kd_weight=1.0, hidden_weight=1.0)
    batch = _batch()
    with torch.no_grad():
        assert trainer.compute_loss(trainer.model, batch).item() == pytest.approx(0.0, abs=1e-6)
    # Matched by index instead (student layer 2 against teacher layer 2), the same states are apart: 0.1 a token.
    s_states, t_states = _block_outputs(student, batch["input_ids"]), _block_outputs(teacher, batch["input_ids"])
    mask = torch.ones(2, 10, dtype=torch.bool)
    assert hidden_state_loss(s_states, t_states, [0, 1, 2, 3], mask, "mse").item() / 20 > 0.01
    assert hidden_state_loss(s_states, t_states, [0, 1, 4, 5], mask, "mse").item() == 0
