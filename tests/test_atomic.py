"""Writing whole (``lprecover.atomic``): a failure at any step leaves the old copy or the new one, never a mix."""

import os
import shutil

import pytest

import lprecover.atomic as atomic
from lprecover.atomic import folder_written_whole, publish_folder, write_figure, write_file

OLD = {"model.safetensors": b"old weights " * 50, "config.json": b'{"layers": 8}', "sub/tok.json": b"old"}
NEW = {"model.safetensors": b"new weights " * 40, "config.json": b'{"layers": 6}', "sub/tok.json": b"new", "x": b""}


def _write_tree(folder, files):
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


def _read_tree(folder):
    if not folder.is_dir():
        return None
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _siblings(path):
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


def test_a_file_write_that_fails_midway_leaves_the_old_file(tmp_path):
    path = tmp_path / "summary.json"
    write_file(path, '{"accuracy": 0.5}')

    def half_then_fail(f):
        f.write(b'{"accuracy": 0.')
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_file(path, half_then_fail)
    assert path.read_text() == '{"accuracy": 0.5}' and _siblings(path) == []

    write_file(path, b"\x00bytes")
    assert path.read_bytes() == b"\x00bytes"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask, "a plain file's permissions, not mkstemp's 0600"


def test_a_file_is_flushed_to_disk_before_it_replaces_the_old_one(tmp_path, monkeypatch):
    events = []
    fsync, replace = os.fsync, os.replace
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (events.append("fsync"), fsync(fd))[1])
    monkeypatch.setattr(atomic.os, "replace", lambda a, b: (events.append("replace"), replace(a, b))[1])
    write_file(tmp_path / "a.txt", "text")
    assert events == ["fsync", "replace", "fsync"], "data synced, renamed, then the folder synced"

    def failing_replace(a, b):
        raise OSError("rename failed")

    monkeypatch.setattr(atomic.os, "replace", failing_replace)
    with pytest.raises(OSError, match="rename failed"):
        write_file(tmp_path / "a.txt", "other")
    assert (tmp_path / "a.txt").read_text() == "text" and _siblings(tmp_path / "a.txt") == []


def test_a_figure_is_written_whole(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([1, 2], [3, 4])
    write_figure(tmp_path / "curves.png", fig, dpi=50)
    plt.close(fig)
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert _siblings(tmp_path / "curves.png") == []


def _invariant(target):
    """The target holds the old or the new copy whole, or (between the two renames) the old one waits beside it."""
    held = _read_tree(target)
    if held is not None:
        return held in (OLD, NEW)
    return any(_read_tree(p) == OLD for p in target.parent.glob(f".{target.name}.old-*"))


def _destructive_steps(monkeypatch, target, fail_at=None):
    """Check the invariant around every rename and removal ``publish_folder`` makes; raise at step ``fail_at``."""
    steps = []
    real = {"replace": os.replace, "rmtree": shutil.rmtree}

    def wrap(name):
        def step(*args, **kwargs):
            assert _invariant(target), f"before {name} {args}"
            if len(steps) == fail_at:
                raise OSError(f"crash at step {fail_at} ({name})")
            steps.append(name)
            result = real[name](*args, **kwargs)
            assert _invariant(target), f"after {name} {args}"
            return result

        return step

    monkeypatch.setattr(atomic.os, "replace", wrap("replace"))
    monkeypatch.setattr(atomic.shutil, "rmtree", wrap("rmtree"))
    return steps


def test_publishing_over_an_old_folder_leaves_a_whole_copy_at_every_step(tmp_path, monkeypatch):
    target = tmp_path / "model"
    target.mkdir()
    _write_tree(target, OLD)
    with monkeypatch.context() as m:
        steps = _destructive_steps(m, target)
        with folder_written_whole(target) as tmp:
            _write_tree(tmp, NEW)
    assert steps[:2] == ["replace", "replace"], "the old copy is moved aside, never deleted before the new one lands"
    assert _read_tree(target) == NEW and _siblings(target) == []

    # A crash at each step in turn: the disk still holds a whole copy, and no half-built folder takes the name.
    for fail_at in range(len(steps)):
        for p in [target, *tmp_path.glob(".model.*")]:
            shutil.rmtree(p, ignore_errors=True)
        target.mkdir()
        _write_tree(target, OLD)
        with monkeypatch.context() as m:
            _destructive_steps(m, target, fail_at)
            with pytest.raises(OSError, match=f"crash at step {fail_at}"):
                with folder_written_whole(target) as tmp:
                    _write_tree(tmp, NEW)
        assert _invariant(target), f"crash at step {fail_at}"


def test_a_failed_build_leaves_the_old_folder_and_no_temporary(tmp_path):
    target = tmp_path / "pruned"
    target.mkdir()
    _write_tree(target, OLD)
    with pytest.raises(ValueError, match="calibration failed"):
        with folder_written_whole(target) as tmp:
            _write_tree(tmp, {"model.safetensors": b"half"})
            raise ValueError("calibration failed")
    assert _read_tree(target) == OLD and _siblings(target) == []

    publish_folder(_fresh(tmp_path / ".built", NEW), tmp_path / "first")  # no previous copy: a plain rename
    assert _read_tree(tmp_path / "first") == NEW and not (tmp_path / ".built").exists()


def _fresh(folder, files):
    folder.mkdir()
    _write_tree(folder, files)
    return folder


def test_a_killed_build_leaves_a_temporary_that_the_next_build_removes(tmp_path):
    """SIGKILL runs no cleanup: the killed process's temporary folder stayed forever. The next build of the same
    folder on this host removes it, and never one whose process is still running."""
    import signal
    import subprocess
    import sys

    from lprecover.atomic import folder_written_whole, new_folder_beside

    target = tmp_path / "model"
    script = (
        "import sys, time\n"
        "from lprecover.atomic import folder_written_whole\n"
        f"with folder_written_whole({str(target)!r}) as tmp:\n"
        "    (tmp / 'weights.bin').write_bytes(b'x' * 1000)\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "writing"
    child.send_signal(signal.SIGKILL)
    child.wait()
    left = [p for p in tmp_path.iterdir() if p.name.startswith(".model.tmp-")]
    assert len(left) == 1 and (left[0] / "weights.bin").exists() and not target.exists()

    live = new_folder_beside(target)  # a build still running in this (live) process
    with folder_written_whole(target) as tmp:
        (tmp / "weights.bin").write_bytes(b"y")
    assert not left[0].exists(), "the killed build's temporary is still there"
    assert live.exists() and (target / "weights.bin").read_bytes() == b"y"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model", live.name])
