"""Offline distillation from the unpruned teacher: logits, and hidden states through the pruning provenance.

``DistillTrainer`` is TRL's SFTTrainer (same data path: chat template, assistant-only labels, packing) with the
loss replaced by

    kd_weight * T^2 * D(teacher || student)  +  ce_weight * CE  +  hidden_weight * H

where D is TRL's generalized JSD (beta 0: forward KL, 1: reverse KL) at temperature T, and H matches every kept
student layer's output to the output of the teacher layer it was in the unpruned model (``kept_to_original``).
Every term is a sum over the labelled (assistant) tokens divided by the batch's token count, like SFT's CE, so
gradient accumulation and data parallelism weight them alike; H is taken at the positions whose logits are
distilled, those that predict a labelled token. ``distill_loss`` computes the loss from both models' outputs.
The teacher is frozen and in eval mode; under ZeRO-3 it is sharded as a DeepSpeed inference engine rather than
copied whole onto each device. With ``distill.teacher_logits`` no teacher runs: D is taken between the student and
the teacher's stored top k plus a tail bucket (``teacher_logits``).
"""

import inspect
import os
from contextlib import contextmanager, nullcontext

import torch
import torch.nn.functional as F
from trl import SFTTrainer

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # we use one stable static method of the GKD trainer
from trl.experimental.gkd import GKDTrainer  # noqa: E402
from trl.models.utils import prepare_deepspeed  # noqa: E402

from lprecover.recovery.logit_store import StoredTeacher, TopK, buckets  # noqa: E402
from lprecover.recovery.recipe import DistillSettings  # noqa: E402
from lprecover.surgery import find_blocks, kept_to_original  # noqa: E402


@contextmanager
def layer_outputs(model: torch.nn.Module):
    """Collect each decoder block's output hidden states during a forward pass, in block order."""
    _, blocks = find_blocks(model)
    outputs: list[torch.Tensor | None] = [None] * len(blocks)

    def hook(i):
        def record(module, args, output):
            outputs[i] = output[0] if isinstance(output, tuple) else output

        return record

    handles = [block.register_forward_hook(hook(i)) for i, block in enumerate(blocks)]
    try:
        yield outputs
    finally:
        for h in handles:
            h.remove()


def hidden_state_loss(
    student: list[torch.Tensor], teacher: list[torch.Tensor], mapping: list[int], mask: torch.Tensor, kind: str
) -> torch.Tensor:
    """Per-token hidden-state distance summed over ``mask`` and averaged over the mapped layers.

    Args:
        mapping: for each student layer, the teacher layer whose output it should reproduce.
        kind: ``mse`` (squared error relative to the teacher state's squared norm, so layers of different scale
            weigh alike) or ``cosine`` (1 - cosine similarity).
    """
    total = 0.0
    for s_layer, t_layer in enumerate(mapping):
        s, t = student[s_layer][mask].float(), teacher[t_layer][mask].float()
        if kind == "cosine":
            per_token = 1 - F.cosine_similarity(s, t, dim=-1)
        else:
            per_token = (s - t).pow(2).sum(-1) / t.pow(2).sum(-1).clamp(min=1e-6)
        total = total + per_token.sum()
    return total / len(mapping)


def predicting_positions(labels: torch.Tensor) -> torch.Tensor:
    """The positions whose logits predict a label in some row: every ``t`` with ``labels[:, t + 1] != -100``."""
    return (labels[:, 1:] != -100).any(0).nonzero().squeeze(1)


def accepts_logits_to_keep(model: torch.nn.Module) -> bool:
    """Whether the model's forward can project onto the vocabulary at chosen positions only (``logits_to_keep``)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(type(base).forward).parameters


def distill_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor | TopK,
    labels: torch.Tensor,
    settings: DistillSettings,
    num_items_in_batch=None,
    hidden: tuple[list[torch.Tensor], list[torch.Tensor], list[int]] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The loss of one micro-batch, and each term's per-token mean over the micro-batch's labelled tokens (to log).

    Args:
        student_logits, teacher_logits: ``[batch, positions, vocab]`` at ``predicting_positions(labels)`` only; or,
            from a store (``distill.teacher_logits``), the teacher's top k at the selected positions, whose
            divergence is taken over k + 1 buckets (see ``teacher_logits``).
        labels: ``[batch, length]`` as SFTTrainer's collator gives them (unshifted; -100 where nothing is learnt).
        num_items_in_batch: the denominator, labelled tokens across the accumulated batch and the devices;
            default: this micro-batch's.
        hidden: ``(student_states, teacher_states, layer_map)`` for the hidden-state term: every layer's output
            ``[batch, length, dim]`` and, for each student layer, the teacher layer it should reproduce.
    """
    s = settings
    targets = labels[:, 1:][:, predicting_positions(labels)]
    selected = targets != -100
    student_logits = student_logits[selected]  # [tokens, vocab]
    stored = isinstance(teacher_logits, TopK)
    if stored and teacher_logits.ids.shape[0] != student_logits.shape[0]:
        raise ValueError(
            f"The store gave {teacher_logits.ids.shape[0]} positions for a batch with {student_logits.shape[0]}."
        )
    if not stored:
        teacher_logits = teacher_logits[selected].to(student_logits.dtype)
    local_tokens = selected.sum().clamp(min=1)
    n_tokens = local_tokens if num_items_in_batch is None else num_items_in_batch
    n_tokens = torch.as_tensor(n_tokens, device=labels.device).clamp(min=1)

    terms = {}
    if s.kd_weight > 0:
        student, teacher, temperature = student_logits, teacher_logits, s.temperature
        if stored:  # the store holds log-probabilities at the recipe's temperature: bucket the student's alike
            wide = student_logits.to(torch.promote_types(student_logits.dtype, torch.float32))
            student, teacher = buckets(F.log_softmax(wide / temperature, -1), teacher_logits)
            temperature = 1.0
        divergence = GKDTrainer.generalized_jsd_loss(
            student,
            teacher,
            beta=s.jsd_beta,
            temperature=temperature,
            num_items_in_batch=n_tokens,
        )
        terms["kd"] = (s.kd_weight, divergence * s.temperature**2)
    if s.ce_weight > 0:
        ce = F.cross_entropy(student_logits.float(), targets[selected], reduction="sum")
        terms["ce"] = (s.ce_weight, ce / n_tokens)
    if hidden is not None and s.hidden_weight > 0:
        # The state at position t produces the logit that predicts token t + 1: match states at the positions whose
        # logits are distilled (the last position predicts nothing).
        mask = F.pad(labels[:, 1:] != -100, (0, 1), value=False)
        student_states, teacher_states, layer_map = hidden
        h = hidden_state_loss(student_states, teacher_states, layer_map, mask, s.hidden_loss)
        terms["hidden"] = (s.hidden_weight, h / n_tokens)
    loss = sum(w * v for w, v in terms.values())
    logged = {name: value.detach() * n_tokens / local_tokens for name, (_, value) in terms.items()}
    return loss, logged


class DistillTrainer(SFTTrainer):
    """SFTTrainer whose loss distils a frozen teacher into the (pruned) student.

    Args:
        teacher: the teacher model, on CPU or already on device; or None with ``stored``.
        stored: the teacher's stored top-k log-probabilities (``distill.teacher_logits``) instead of the teacher.
        settings: the recipe's ``distill`` section.
        hidden: also match hidden states (``method=distill_hidden``).
    """

    def __init__(
        self,
        *args,
        teacher=None,
        settings: DistillSettings,
        hidden: bool = False,
        stored: StoredTeacher | None = None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.settings = settings
        self.stored = stored
        if stored is not None:
            # Refused now, not at the first batch the store lacks: data or train settings other than the store's.
            stored.check_covers(self.train_dataset, self.data_collator)
            self.teacher = None
        else:
            teacher.requires_grad_(False)
            teacher.eval()
            if self.is_deepspeed_enabled:
                self.teacher = prepare_deepspeed(teacher, self.accelerator)
            else:
                self.teacher = self.accelerator.prepare_model(teacher, evaluation_mode=True)
        student = self.accelerator.unwrap_model(self.model)
        self.layer_map = kept_to_original(student.config) if hidden else None
        self.logits_to_keep = accepts_logits_to_keep(student)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        mode = "train" if self.model.training else "eval"
        labels = inputs["labels"]
        # Project onto the vocabulary only where a label is predicted (the prompt's positions never need logits):
        # for real vocabularies the lm_head is a large share of both models' forward.
        keep = predicting_positions(labels)
        model_inputs = {k: v for k, v in inputs.items() if k != "labels"} | {"use_cache": False}
        if self.logits_to_keep:
            model_inputs["logits_to_keep"] = keep
        want_hidden = self.layer_map is not None and self.settings.hidden_weight > 0

        with layer_outputs(self.accelerator.unwrap_model(model)) if want_hidden else nullcontext() as student_states:
            outputs = model(**model_inputs)
        teacher_states = None
        if self.stored is not None:
            teacher_logits = self.stored.lookup(inputs, labels.device)
        else:
            with torch.no_grad():
                teacher_net = self.accelerator.unwrap_model(self.teacher)
                with layer_outputs(teacher_net) if want_hidden else nullcontext() as teacher_states:
                    teacher_logits = self.teacher(**model_inputs).logits
            if not self.logits_to_keep:
                teacher_logits = teacher_logits[:, keep]
        if not self.logits_to_keep:
            outputs.logits = outputs.logits[:, keep]
        hidden = (student_states, teacher_states, self.layer_map) if want_hidden else None
        loss, logged = distill_loss(outputs.logits, teacher_logits, labels, self.settings, num_items_in_batch, hidden)
        # As in SFTTrainer: with the global token count as denominator, DDP's gradient mean must be undone.
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes
        if mode == "train":  # tokens seen, as SFTTrainer counts them, so every recipe reports a training budget
            seen = inputs["attention_mask"].sum() if "attention_mask" in inputs else labels.new_tensor(labels.numel())
            self._total_train_tokens += self.accelerator.gather_for_metrics(seen).sum().item()
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
        for name, per_token in logged.items():
            self._metrics[mode][name].append(self.accelerator.gather_for_metrics(per_token).mean().item())
        return (loss, outputs) if return_outputs else loss
