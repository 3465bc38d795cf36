"""Two writers, one folder: the second is refused with a sentence before it writes; a killed holder frees it."""

import os
import signal
import subprocess
import sys
import time

import pytest

from lprecover.atomic import FolderBusy, exclusive_output
from lprecover.cli import main as cli


@pytest.fixture(autouse=True)
def _own_lock_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("LPRECOVER_LOCKS", str(tmp_path / "locks"))


@pytest.mark.parametrize(
    "command, args",
    [
        ("eval", ["eval.num_problems=2"]),
        ("train", ["recipe=sft_short", "train.max_steps=1"]),
        ("data", ["source=organism", "split=short"]),
        ("study", ["steps=2"]),
    ],
)
def test_a_second_writer_is_refused_naming_the_folder_and_the_holder(tmp_path, capsys, command, args):
    out = tmp_path / "out"
    with exclusive_output(out):  # the first writer, still running
        rc = cli([command, *args, f"output_dir={out}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert err[0] == (
        f"lprecover {command}: output_dir '{out}' is being written by process {os.getpid()} on "
        f"{os.uname().nodename}; wait for it to finish, or choose another output_dir."
    )
    assert not out.exists(), "the refused writer wrote into the folder"


def test_the_same_folder_by_another_spelling_is_the_same_lock(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with exclusive_output(tmp_path / "out"), pytest.raises(FolderBusy, match="is being written by"):
        with exclusive_output("./sub/../out"):
            pass
    with exclusive_output("out"):  # released when the first writer finished
        pass


def test_a_killed_holder_leaves_the_folder_free(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from lprecover.atomic import exclusive_output\n"
            f"with exclusive_output({str(tmp_path / 'out')!r}):\n    print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ | {"LPRECOVER_LOCKS": str(tmp_path / "locks")},
    )
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(FolderBusy, match=f"process {holder.pid} "):
        with exclusive_output(tmp_path / "out"):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    deadline = time.monotonic() + 10
    while True:  # the kernel drops the dead process's flock; a relaunch then proceeds
        try:
            with exclusive_output(tmp_path / "out"):
                break
        except FolderBusy:
            assert time.monotonic() < deadline, "the lock outlived its killed holder"
            time.sleep(0.1)
