"""Writing a file or a folder whole: whoever reads it, or relaunches after a crash, finds the old copy or the new one.

Every output of lprecover is written here, so there is one set of guarantees:

- a file is written to a temporary sibling in the same folder, flushed and fsynced, renamed over the target
  (``os.replace`` is atomic within one filesystem), and the folder is fsynced so the rename survives a power cut;
- a folder is built in a temporary sibling, every file in it is fsynced, and it is renamed into place. A previous
  copy is renamed aside first and removed only once the new one is in place, never before: a crash between the two
  renames leaves the previous copy whole, beside the target as ``.NAME.old-PID``.

A process killed outright (SIGKILL, out of memory) cannot clean up: its temporary folder stays. Temporary folders
carry their host and process id (``.NAME.tmp-HOST-PID-XXXX``), and the next folder built for the same ``NAME`` on that
host removes those whose process is gone (never another host's, never a live process's).

This module imports nothing from lprecover, so every layer (data_prep included) can use it.
"""

import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

# mkstemp/mkdtemp create private (0600/0700) entries; outputs get the permissions a plain open() would give them.
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE, _DIR_MODE = 0o666 & ~_UMASK, 0o777 & ~_UMASK


def _fsync_path(path: Path, directory: bool = False) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:  # a folder that cannot be opened for reading (some platforms): nothing to sync
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on folders; the data itself was synced
        pass
    finally:
        os.close(fd)


def sync_tree(folder: str | Path) -> None:
    """Flush every file under ``folder`` and the folders themselves to disk (deepest first)."""
    for root, _, files in os.walk(folder, topdown=False):
        for name in files:
            path = Path(root) / name
            if not path.is_symlink():
                _fsync_path(path)
        _fsync_path(Path(root), directory=True)


def write_file(path: str | Path, data: str | bytes | Callable[[BinaryIO], object]) -> Path:
    """Write ``path`` whole or not at all; on any error the previous file (if any) is untouched.

    Args:
        data: text (written as UTF-8), bytes, or a function that writes into the binary file it is given (e.g.
            ``lambda f: fig.savefig(f, format="png")``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _FILE_MODE)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_path(path.parent, directory=True)
    return path


def write_figure(path: str | Path, fig, **savefig_kwargs) -> Path:
    """Save a matplotlib figure whole, in the format its suffix names."""
    path = Path(path)
    return write_file(path, lambda f: fig.savefig(f, format=path.suffix.lstrip(".") or "png", **savefig_kwargs))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _host() -> str:
    return socket.gethostname().replace("-", "_")  # no '-': it separates host from pid in the folder name


def sweep_dead_temporaries(path: str | Path) -> list[Path]:
    """Remove the temporary folders for ``path`` left by killed processes of this host; returns what it removed."""
    path = Path(path)
    host = _host()
    removed = []
    for tmp in path.parent.glob(f".{path.name}.tmp-{host}-*"):
        pid = tmp.name[len(f".{path.name}.tmp-{host}-") :].split("-", 1)[0]
        if tmp.is_dir() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)
            removed.append(tmp)
    return removed


def new_folder_beside(path: str | Path) -> Path:
    """An empty temporary folder next to ``path`` (same filesystem, so it can be renamed into place), after sweeping
    away the ones killed processes left for it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_dead_temporaries(path)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-{_host()}-{os.getpid()}-"))
    os.chmod(tmp, _DIR_MODE)
    return tmp


def publish_folder(tmp: str | Path, path: str | Path) -> Path:
    """Move the finished folder ``tmp`` to ``path``, replacing a previous copy only once the new one is in place."""
    tmp, path = Path(tmp), Path(path)
    sync_tree(tmp)
    aside = None
    if path.exists() or path.is_symlink():
        aside = path.with_name(f".{path.name}.old-{os.getpid()}")
        if aside.exists():  # left by an earlier crash of this same process id; the target is the newer copy
            shutil.rmtree(aside)
        os.replace(path, aside)
    os.replace(tmp, path)
    _fsync_path(path.parent, directory=True)
    if aside is not None:
        shutil.rmtree(aside) if aside.is_dir() and not aside.is_symlink() else aside.unlink()
    return path


@contextmanager
def folder_written_whole(path: str | Path) -> Iterator[Path]:
    """Build a folder in a temporary sibling and publish it at ``path`` when the block ends without an error.

    An error inside the block removes the temporary folder and leaves ``path`` (old copy or nothing) untouched::

        with folder_written_whole(out) as tmp:
            model.save_pretrained(tmp)
    """
    tmp = new_folder_beside(path)
    try:
        yield tmp
        publish_folder(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class FolderBusy(RuntimeError):
    """Another live process is writing the same output folder."""


def _lock_dir() -> Path:
    # Never inside the output folder (a lock file there would make an empty output folder non-empty, and a folder
    # published whole, renamed into place, would drop it), nor in a cache a run may be told to leave untouched: the
    # machine's temporary folder (LPRECOVER_LOCKS overrides it). The lock is therefore per machine.
    override = os.environ.get("LPRECOVER_LOCKS")
    return Path(override) if override else Path(tempfile.gettempdir()) / f"lprecover-locks-{os.getuid()}"


@contextmanager
def exclusive_output(path: str | Path, what: str = "output_dir") -> Iterator[None]:
    """Hold ``path`` for this process alone while the block runs: a second writer is refused, never interleaved.

    The lock is an ``flock`` on a file named by the folder's resolved path, so the kernel releases it when the
    holder exits in any way (SIGKILL included): a relaunch after a kill finds it free and resumes. Under a launcher
    with several processes only the main one (``RANK`` 0) takes it: the others are the same job.

    Raises:
        FolderBusy: naming the folder and the process holding it.
    """
    import fcntl
    import hashlib

    if int(os.environ.get("RANK", "0")) != 0:
        yield
        return
    resolved = str(Path(path).expanduser().resolve())
    folder = _lock_dir()
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / (hashlib.sha256(resolved.encode()).hexdigest()[:24] + ".lock")
    with open(lock, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise FolderBusy(
                f"{what} '{path}' is being written by {holder}; wait for it to finish, or choose another {what}."
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"process {os.getpid()} on {_host()}")
        f.flush()
        try:
            yield
        finally:
            f.seek(0)
            f.truncate()
            fcntl.flock(f, fcntl.LOCK_UN)
