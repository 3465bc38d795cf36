"""The main job, ``lprecover/train.py``: bad input refused up front, the real launch, W&B, resume, ZeRO on CPU."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from lprecover.cli import main as cli
from lprecover.recovery.outputs import (
    COMPLETE_FILE,
    is_complete,
    last_checkpoint,
    load_recovered,
    mark_complete,
    remove_partial_checkpoints,
)
from lprecover.recovery.partial import border_layers
from lprecover.tracking import read_offline_run

REPO = Path(__file__).resolve().parents[1]
ACCELERATE = str(Path(sys.executable).parent / "accelerate")
FAST = ["train.max_steps=3", "train.per_device_batch_size=4", "train.logging_steps=1", "data.options.n=200"]


def _train(args, capsys) -> tuple[int, str]:
    code = cli(["train", *args])
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def other_vocab_teacher(tmp_path_factory, teacher_path):
    """A teacher whose vocabulary differs from the organism's."""
    from transformers import AutoConfig, AutoModelForCausalLM

    from lprecover.organism.tokenizer import build_tokenizer

    path = tmp_path_factory.mktemp("teacher")
    config = AutoConfig.from_pretrained(teacher_path)
    config.vocab_size += 16
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    build_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def bad_rows(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "rows.jsonl"
    good = {"messages": [{"role": "user", "content": "1a+1"}, {"role": "assistant", "content": "2"}]}
    bad = {"messages": [{"role": "user", "content": "1a+2"}]}
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    return path


@pytest.mark.parametrize(
    "args, message",
    [
        (["recipe=sft_verylong"], "Unknown recipe 'sft_verylong'. Recipes: distill, distill_hidden"),
        (["recipe=distill", "distill.temprature=2"], "Did you mean 'distill.temperature'?"),
        (["recipe=lora_longcot", "lora.target_modules=[q_proj,qkv_proj]"], "['qkv_proj'] match no module"),
        (["recipe=partial", "prune.n_layers=6"], "would remove every layer"),
        (["recipe=distill", "distill.divergence=kl"], "distill.divergence must be one of forward_kl"),
        (["recipe=sft_longcot", "model.name_or_path=/nonexistent/model"], "nonexistent"),
    ],
)
def test_bad_input_fails_before_writing(args, message, teacher_path, tmp_path, capsys):
    out = tmp_path / "run"
    code, err = _train([*args, f"output_dir={out}", "report_to=none"], capsys)
    assert code == 2 and message in err
    assert not out.exists()


def test_teacher_with_another_vocabulary_is_refused(other_vocab_teacher, tmp_path, capsys):
    out = tmp_path / "run"
    code, err = _train(["recipe=distill", f"teacher={other_vocab_teacher}", f"output_dir={out}"], capsys)
    assert code == 2 and "vocabulary of" in err and "one tokenizer" in err
    assert not out.exists()


def test_row_missing_a_field_is_named(bad_rows, teacher_path, tmp_path, capsys):
    out = tmp_path / "run"
    code, err = _train(["recipe=sft_longcot", f"data.dataset={bad_rows}", f"output_dir={out}"], capsys)
    assert code == 2 and "Row 1 of" in err and "no assistant turn" in err
    assert not out.exists()
    # On-policy distillation needs only the prompt, so the same rows pass its check (and train).
    code, err = _train(["recipe=distill_onpolicy", f"data.dataset={bad_rows}", *FAST, f"output_dir={out}"], capsys)
    assert code == 0, err


def test_offload_strategy_without_gpu_is_refused(teacher_path, tmp_path, capsys, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("the machine has a GPU")
    monkeypatch.setenv("ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE", "cpu")
    code, err = _train(["recipe=distill", f"output_dir={tmp_path / 'run'}"], capsys)
    assert code == 2 and "zero3_offload" in err and "no GPU" in err


def test_other_run_in_output_dir_is_refused(teacher_path, tmp_path, capsys, caplog):
    out = tmp_path / "run"
    assert _train(["recipe=sft_short", *FAST, "report_to=none", f"output_dir={out}"], capsys)[0] == 0
    code, err = _train(["recipe=sft_short", *FAST, "train.learning_rate=1e-4", f"output_dir={out}"], capsys)
    assert code == 2 and "train.learning_rate: 0.001 -> 0.0001" in err and "overwrite=true" in err
    # The same command again finds the finished model and does not train twice.
    before = (out / "model" / "model.safetensors").stat().st_mtime_ns
    code, err = _train(["recipe=sft_short", *FAST, "report_to=none", f"output_dir={out}"], capsys)
    assert code == 0 and "skipping training" in caplog.text
    assert (out / "model" / "model.safetensors").stat().st_mtime_ns == before


def test_partial_borders_every_gap():
    class Config:
        def __init__(self, kept, n):
            self.lprecover_pruning = {"kept_layers": kept, "source_num_layers": n}
            self.num_hidden_layers = len(kept)

    assert border_layers(Config([0, 1, 2, 5, 6, 7], 8), 1) == [2, 3]
    assert border_layers(Config([0, 1, 2, 5, 6, 7], 8), 2) == [1, 2, 3, 4]
    assert border_layers(Config([0, 1, 2, 3], 6), 1) == [3]  # cut from the top: the last kept layer
    assert border_layers(Config([2, 3, 4, 5], 6), 1) == [0]
    assert border_layers(Config([0, 2, 4, 5], 6), 1) == [0, 1, 2]


def test_interrupted_checkpoint_is_never_resumed(tmp_path):
    for step in (10, 20, 30, 40):
        ckpt = tmp_path / f"checkpoint-{step}"
        ckpt.mkdir()
        (ckpt / "model.safetensors").write_bytes(b"x" * 64)
        (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}))
        if step < 40:  # checkpoint-40: every file there, but the save never finished (no marker)
            mark_complete(ckpt, step)
    # checkpoint-30 was marked, then its trainer state was cut short (the Trainer does not write it atomically).
    (tmp_path / "checkpoint-30" / "trainer_state.json").write_text('{"global_st')
    assert is_complete(tmp_path / "checkpoint-20") and not is_complete(tmp_path / "checkpoint-30")
    assert last_checkpoint(tmp_path).name == "checkpoint-20"
    remove_partial_checkpoints(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-10", "checkpoint-20"]


def test_resume_skips_a_torn_checkpoint(teacher_path, tmp_path, capsys, caplog):
    out = tmp_path / "run"
    args = [
        "recipe=sft_short",
        *FAST,
        "train.max_steps=4",
        "train.save_steps=1",
        "report_to=none",
        f"output_dir={out}",
    ]
    assert _train(args, capsys)[0] == 0
    kept = sorted(out.glob("checkpoint-*"))
    assert [p.name for p in kept] == ["checkpoint-3", "checkpoint-4"], "save_total_limit=2 complete checkpoints kept"
    assert all(is_complete(p) for p in kept)

    # A crash: the final model never written, checkpoint-4's trainer state cut short after its marker, and a
    # checkpoint-5 whose files are all there but whose save never finished (no marker).
    shutil.rmtree(out / "model")
    state = out / "checkpoint-4" / "trainer_state.json"
    state.write_text(state.read_text()[:40])
    shutil.copytree(out / "checkpoint-3", out / "checkpoint-5")
    (out / "checkpoint-5" / COMPLETE_FILE).unlink()
    code, err = _train(args, capsys)
    assert code == 0, err[-2000:]
    assert f"Resuming from {out / 'checkpoint-3'} at step 3 of 4" in caplog.text
    assert not (out / "checkpoint-5").exists() and is_complete(out / "checkpoint-4")
    assert json.loads((out / "model" / "recovery.json").read_text())["steps"] == 4


def test_resumed_run_records_the_tokens_loss_and_seconds_of_the_whole_run(teacher_path, tmp_path, capsys, caplog):
    out = tmp_path / "run"
    # Logged every 4 steps, saved every 3: the checkpoint's step is logged anyway, so its counts are exact.
    args = ["recipe=lora_longcot", "train.max_steps=6", "train.per_device_batch_size=4", "train.logging_steps=4"]
    args += ["train.save_steps=3", "train.save_total_limit=3", "data.options.n=200", "report_to=none"]
    assert _train([*args, f"output_dir={out}"], capsys)[0] == 0
    whole = json.loads((out / "metrics.json").read_text())

    # Killed after checkpoint-3 (no final model, no later checkpoint), having trained 1000 s by then.
    shutil.rmtree(out / "model")
    shutil.rmtree(out / "checkpoint-6")
    (out / "metrics.json").unlink()
    state_file = out / "checkpoint-3" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    assert [h["step"] for h in state["log_history"] if "loss" in h] == [3]
    state["stateful_callbacks"]["lprecover_counters"]["train_seconds"] = 1000.0
    state_file.write_text(json.dumps(state))
    mark_complete(out / "checkpoint-3", 3)  # its trainer state changed size: marked again, or it is not resumed
    start = time.time()
    assert _train([*args, f"output_dir={out}"], capsys)[0] == 0
    relaunch_seconds = time.time() - start
    assert f"Resuming from {out / 'checkpoint-3'} at step 3 of 6" in caplog.text
    resumed = json.loads((out / "metrics.json").read_text())

    def tokens(history):
        return max(h["num_tokens"] for h in history if "num_tokens" in h)

    assert [h.get("loss") for h in resumed] == [h.get("loss") for h in whole], "the resume trained the same steps"
    assert tokens(resumed) == tokens(whole) > tokens(state["log_history"])
    assert resumed[-1]["train_loss"] == pytest.approx(whole[-1]["train_loss"], rel=1e-6)
    assert 1000 < resumed[-1]["train_runtime"] < 1000 + relaunch_seconds
    assert resumed[-1]["train_steps_per_second"] == pytest.approx(6 / resumed[-1]["train_runtime"], abs=1e-3)


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "WANDB_"))}
    return env | {"OMP_NUM_THREADS": "1", "WANDB_MODE": "offline", "TOKENIZERS_PARALLELISM": "false"} | extra


def _launch(config: str, args: list[str], processes: int = 1, **env) -> subprocess.CompletedProcess:
    cmd = [ACCELERATE, "launch", "--config_file", str(REPO / "accelerate_configs" / config)]
    if processes > 1:
        cmd += ["--num_processes", str(processes)]
    return subprocess.run(
        [*cmd, str(REPO / "lprecover" / "train.py"), *args],
        cwd=REPO,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=900,
    )


_BARRIER = """
import sys, time
from lprecover.launch import distributed_state
state = distributed_state(float(sys.argv[1]))
if state.is_main_process:
    time.sleep(float(sys.argv[2]))  # one-process work (pruning, an evaluation) while the other waits
state.wait_for_everyone()
print('through the barrier')
"""


@pytest.mark.parametrize("minutes, passes", [(0.05, False), (1.0, True)])
def test_processes_wait_for_the_main_process_up_to_launch_timeout_minutes(minutes, passes, tmp_path):
    script = tmp_path / "barrier.py"
    script.write_text(_BARRIER)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script)]
    result = subprocess.run(
        [*cmd, str(minutes), "6"], cwd=REPO, env=_env(), capture_output=True, text=True, timeout=300
    )
    output = result.stdout + result.stderr
    if passes:  # 6 s of main-process work within a 1-minute timeout
        assert result.returncode == 0 and output.count("through the barrier") == 2, output[-3000:]
    else:  # a 3 s timeout: the waiting process gives up
        assert result.returncode != 0 and "Timed out waiting 3000ms" in output, output[-3000:]


def test_accelerate_launch_writes_a_whole_run_logged_to_wandb(teacher_path, tmp_path):
    out = tmp_path / "run"
    args = ["recipe=lora_longcot", *FAST, "evaluate=true", "eval=sequential", "eval.num_problems=8"]
    result = _launch("cpu.yaml", [*args, "eval.budgets=[5,40]", f"output_dir={out}"])
    assert result.returncode == 0, result.stderr[-3000:]

    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["recipe"] == "lora_longcot" and saved["trainable"] == "lora"
    assert (out / "pruned" / "prune_scores.json").exists()
    assert (out / "model" / "adapter_model.safetensors").exists()
    assert {p.name for p in (out / "model").glob("*.bin")} <= {"training_args.bin"}, "weights are safetensors only"
    history = json.loads((out / "metrics.json").read_text())
    assert [h["step"] for h in history if "loss" in h] == [1, 2, 3]
    summary = json.loads((out / "eval" / "summary.json").read_text())
    assert set(summary) == {"organism_long", "organism_facts"}

    model, _ = load_recovered(out)  # adapters merged onto the pruned base
    assert model.config.num_hidden_layers == 4 and not hasattr(model, "peft_config")

    (run_dir,) = (out / "wandb").glob("offline-run-*")
    run = read_offline_run(run_dir)
    assert run["name"] == "lora_longcot-organism-shortgpt2" and run["group"] == "organism-shortgpt2"
    assert {"sft", "lora", "prune:shortgpt2", "model:organism"} <= set(run["tags"])
    assert [h["train/global_step"] for h in run["history"] if "train/loss" in h] == [1, 2, 3]


@pytest.mark.slow
# ZeRO-2 with SFT, and ZeRO-3 with online distillation, whose frozen teacher is sharded beside the student (the other
# two pairings add no path: stored-logit distillation under ZeRO-3 is tested below).
@pytest.mark.parametrize("recipe, strategy", [("sft_longcot", "zero2.yaml"), ("distill", "zero3.yaml")])
def test_zero_on_two_cpu_processes_saves_loadable_weights(strategy, recipe, teacher_path, tmp_path):
    out = tmp_path / "run"
    result = _launch(
        strategy, [f"recipe={recipe}", *FAST, f"output_dir={out}"], processes=2, ACCELERATE_USE_CPU="true"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert list((out / "checkpoint-3").glob("global_step3")), "checkpoints are DeepSpeed's, so ZeRO really ran"
    model, _ = load_recovered(out)
    from transformers import AutoModelForCausalLM

    pruned = AutoModelForCausalLM.from_pretrained(out / "pruned")
    assert model.num_parameters() == pruned.num_parameters()
    assert any(not torch.equal(a, b) for a, b in zip(model.parameters(), pruned.parameters()))


@pytest.mark.slow
def test_zero3_distils_from_stored_teacher_logits_without_a_teacher(teacher_path, tmp_path):
    """Two ZeRO-3 processes read one store (no teacher loaded, so none is sharded) and train the student."""
    store, out = tmp_path / "store", tmp_path / "run"
    assert cli(["teacher-logits", "recipe=distill", *FAST, f"store.out={store}", "store.k=8"]) == 0
    args = ["recipe=distill", *FAST, f"distill.teacher_logits={store}", f"output_dir={out}"]
    result = _launch("zero3.yaml", args, processes=2, ACCELERATE_USE_CPU="true")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no teacher loaded" in result.stderr
    history = json.loads((out / "metrics.json").read_text())
    assert len([h["kd"] for h in history if "kd" in h]) == 3
    model, _ = load_recovered(out)
    from transformers import AutoModelForCausalLM

    pruned = AutoModelForCausalLM.from_pretrained(out / "pruned")
    assert any(not torch.equal(a, b) for a, b in zip(model.parameters(), pruned.parameters()))


@pytest.mark.slow
@pytest.mark.parametrize(
    "config, processes, env",
    [("cpu_ddp.yaml", 1, {}), ("ddp.yaml", 2, {"ACCELERATE_USE_CPU": "true"})],  # ddp.yaml's GPUs become gloo CPUs
)
def test_ddp_runs_two_processes(config, processes, env, teacher_path, tmp_path):
    out = tmp_path / "run"
    result = _launch(config, ["recipe=sft_longcot", *FAST, f"output_dir={out}"], processes, **env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert (out / "checkpoint-3" / "rng_state_1.pth").exists(), "a second process ran"
    marked = json.loads((out / "checkpoint-3" / COMPLETE_FILE).read_text())["files"]
    assert is_complete(out / "checkpoint-3") and "rng_state_1.pth" in marked, "marked once both processes saved"


@pytest.mark.slow
def test_killed_run_resumes_from_its_last_checkpoint(teacher_path, tmp_path):
    out = tmp_path / "run"
    cmd = [
        ACCELERATE,
        "launch",
        "--config_file",
        str(REPO / "accelerate_configs" / "cpu.yaml"),
        str(REPO / "lprecover" / "train.py"),
        "recipe=sft_longcot",
        "train.max_steps=150",
        "train.save_steps=10",
        "train.logging_steps=5",
        "report_to=none",
        f"output_dir={out}",
    ]
    first = subprocess.Popen(
        cmd, cwd=REPO, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.time() + 600
    while not is_complete(out / "checkpoint-20"):
        assert first.poll() is None and time.time() < deadline, "the first launch ended before its second checkpoint"
        time.sleep(0.1)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    assert not (out / "model").exists()
    killed_at = max(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*") if is_complete(p))

    second = subprocess.run(cmd, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    assert f"Resuming from {out / f'checkpoint-{killed_at}'} at step {killed_at} of 150" in second.stderr
    record = json.loads((out / "model" / "recovery.json").read_text())
    assert record["steps"] == 150
    steps = [h["step"] for h in json.loads((out / "metrics.json").read_text()) if "loss" in h]
    assert steps == list(range(5, 151, 5)), "the history continues the killed run's, without repeats"


@pytest.mark.slow
def test_hidden_state_distillation_on_real_pretrained_weights(smollm2_gsm8k_args, tmp_path, capsys):
    """SmolLM2 (30 layers) pruned by two middle layers, distilled on GSM8K traces from its unpruned self.

    Its chat template has no ``{% generation %}`` markers, so this also covers the prompt/completion data path.
    """
    out = tmp_path / "run"
    args = [
        "recipe=distill_hidden",
        *smollm2_gsm8k_args,
        "data.limit=48",
        "train.max_steps=4",
        "train.per_device_batch_size=2",
        "train.max_length=256",
        "train.learning_rate=5e-5",
        "train.logging_steps=1",
        "report_to=none",
        f"output_dir={out}",
    ]
    code, err = _train(args, capsys)
    assert code == 0, err[-2000:]
    history = [h for h in json.loads((out / "metrics.json").read_text()) if "kd" in h]
    assert history[-1]["kd"] < history[0]["kd"]
    assert history[0]["hidden"] > 0, "the kept layers after the gap start away from their teacher layers"
    model, _ = load_recovered(out)
    assert model.config.num_hidden_layers == 28
    assert model.config.lprecover_pruning["kept_layers"][14] == 16
