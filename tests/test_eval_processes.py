"""Evaluation across processes: ``accelerate launch --num_processes 2 -m lprecover.cli eval`` on two CPU processes
(gloo) writes the files a single process writes, byte for byte, and a launch killed mid-run resumes on relaunch."""

import json
import signal
import subprocess
import time

import psutil
import pytest
from launching import cli_command, cpu_env, run_cli
from tiny_models import save_organism_tiny

pytestmark = pytest.mark.slow

ARGS = ["eval.tasks=[organism]", "eval.num_problems=48", "eval.budgets=[4,8,16]", "eval.n_samples=4"]
ARGS += ["eval.batch_size=4", "eval.bootstrap=50", "report_to=none"]
FILES = ("samples.jsonl", "curves.json", "summary.json")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, organism_tokenizer):
    return save_organism_tiny(tmp_path_factory.mktemp("tiny") / "qwen3", organism_tokenizer)


def _args(model_dir, out) -> list[str]:
    return ["eval", f"model.name_or_path={model_dir}", *ARGS, f"output_dir={out}"]


def _run(model_dir, out, processes: int) -> str:
    return run_cli(_args(model_dir, out), processes)


@pytest.fixture(scope="module")
def single(model_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("single") / "eval"
    _run(model_dir, out, 1)
    return out


def test_two_processes_write_what_one_process_writes(model_dir, single, tmp_path):
    out = tmp_path / "two"
    _run(model_dir, out, 2)
    for name in FILES:
        assert (out / name).read_bytes() == (single / name).read_bytes(), name
    assert not list(out.glob("samples.shard-*"))  # merged, and the shards removed
    records = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(records) == 48 * 3 + 48 * 4
    assert {r["mode"] for r in records} == {"sequential", "parallel"}


def test_a_killed_launch_resumes_with_nothing_lost(model_dir, single, tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        cli_command(_args(model_dir, out), 2),
        env=cpu_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def lines() -> list[int]:
        return [p.read_text().count("\n") for p in sorted(out.glob("samples.shard-*.jsonl"))]

    def written() -> int:
        return sum(lines())

    deadline = time.time() + 300
    while time.time() < deadline and not (len(lines()) == 2 and min(lines()) >= 20):  # both processes under way
        time.sleep(0.2)
    launcher = psutil.Process(proc.pid)
    workers = launcher.children(recursive=True)  # they run in process groups of their own
    for p in [*workers, launcher]:
        p.send_signal(signal.SIGKILL)
    proc.wait()
    psutil.wait_procs(workers, timeout=30)
    partial = written()
    assert 40 <= partial < 48 * 7, "the kill should land mid-run"
    assert len(list(out.glob("samples.shard-*.jsonl"))) == 2 and not (out / "summary.json").exists()

    log = _run(model_dir, out, 2)
    assert log.count(f"Evaluation: {partial} records reused") == 2  # each process reads both shards back
    for name in FILES:
        assert (out / name).read_bytes() == (single / name).read_bytes(), name
