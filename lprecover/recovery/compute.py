"""The compute a recovery run spends, in FLOPs, by the usual 2N-per-token rule, and its measured seconds.

N is the non-embedding parameter count (the input embedding and the output projection left out, as in Kaplan et
al.'s 6N; LoRA adapters are not part of N). With T the training tokens the trainer counted (``num_tokens``:
packed rows for SFT and offline distillation; prompt plus completion for on-policy distillation) and G the tokens
the student generated:

    C = T * (4 N + 2 N_train)            the student: forward 2N, backward through the activations 2N, and the
                                         weight gradients of the N_train non-embedding parameters that train
                                         (full training: N_train = N, so 6N; LoRA: the adapters; partial: the
                                         layers bordering the gap). The backward pass is counted through the whole
                                         network, an upper bound for partial training, whose gradient need not
                                         reach the layers below its lowest trainable one.
      + T * 2 N_teacher                  the teacher's forward pass, for distillation that runs it (online: distill,
                                         distill_hidden, distill_onpolicy); 0 when the logits are read from a store
                                         (``distill.teacher_logits``), whose one-off cost is not counted here
      + G * 2 N                          generation, for on-policy distillation (the student's forward pass per
                                         generated token; attention over the cache left out, as in 2N)

Every term leaves out attention's sequence-length term (2 * layers * context * width per token), small at the
organism's and s1K's lengths against N. ``train_seconds`` is the measured wall clock of training (across resumes),
beside the formula, and is not reproducible from run to run.
"""

from lprecover.recovery.resume import history_totals, train_seconds


def _numel(p) -> int:
    return getattr(p, "ds_numel", p.numel())  # ZeRO-3 shards a parameter and keeps its full size in ds_numel


def _embeddings(model) -> set[int]:
    found = set()
    for get in ("get_input_embeddings", "get_output_embeddings"):
        module = getattr(model, get, lambda: None)()
        weight = getattr(module, "weight", None)
        if weight is not None:
            found.add(id(weight))
    return found


def parameter_counts(model) -> tuple[int, int]:
    """``(N, N_train)``: the non-embedding parameters (LoRA adapters left out) and the non-embedding ones that
    train (adapters included)."""
    skip = _embeddings(model)
    n = n_train = 0
    for name, p in model.named_parameters():
        if id(p) in skip:
            continue
        if "lora_" not in name:
            n += _numel(p)
        if p.requires_grad:
            n_train += _numel(p)
    return n, n_train


def profile(trainer, method: str, stored_logits: bool) -> dict:
    """What the compute formula needs of one run (module docstring): N, N_train, N_teacher and which terms apply."""
    n, n_train = parameter_counts(trainer.model)
    teacher = getattr(trainer, "teacher", None) or getattr(trainer, "teacher_model", None)
    teacher = getattr(teacher, "module", teacher)  # an accelerate / DeepSpeed wrapper
    n_teacher = parameter_counts(teacher)[0] if teacher is not None else 0
    return {
        "n_student": n,
        "n_trainable": n_train,
        "n_teacher": n_teacher,
        "teacher_online": method != "sft" and not stored_logits,
        "generates": method == "distill_onpolicy",
    }


def flops_per_token(p: dict) -> int:
    """FLOPs per training token: ``4 N + 2 N_train`` (+ ``2 N_teacher`` with the teacher online)."""
    return 4 * p["n_student"] + 2 * p["n_trainable"] + (2 * p["n_teacher"] if p["teacher_online"] else 0)


def training_flops(p: dict, tokens: float, generated: float = 0.0) -> float:
    """The run's compute after ``tokens`` training tokens and ``generated`` generated ones (module docstring)."""
    return tokens * flops_per_token(p) + (2 * p["n_student"] * generated if p["generates"] else 0.0)


def generated_tokens(log_history: list[dict], step: int, rows_per_step: int) -> float | None:
    """Tokens generated up to ``step``: each log's mean completion length times the rows of the steps it covers
    (TRL logs ``completions/mean_length``); None where nothing was logged."""
    total, previous, seen = 0.0, 0, False
    for entry in log_history:
        if entry.get("step", 0) > step:
            break
        if "completions/mean_length" in entry:
            total += entry["completions/mean_length"] * rows_per_step * (entry["step"] - previous)
            previous, seen = entry["step"], True
    return total if seen else None


def compute_record(trainer, p: dict, state) -> dict:
    """The ``compute`` entry of a ``recovery.json`` at ``state``'s step: tokens, generated tokens, FLOPs and
    seconds so far, with the profile they come from."""
    step = state.global_step
    tokens = getattr(trainer, "_total_train_tokens", None) or history_totals(state.log_history, step)[0]
    args = trainer.args
    rows = args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size
    generated = generated_tokens(state.log_history, step, rows) if p["generates"] else 0.0
    flops = None if tokens is None or generated is None else training_flops(p, float(tokens), generated)
    return p | {
        "flops_per_token": flops_per_token(p),
        "tokens": tokens,
        "generated_tokens": generated,
        "flops": flops,
        "train_seconds": train_seconds(trainer),
    }
