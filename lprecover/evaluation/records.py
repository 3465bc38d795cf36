"""``samples.jsonl``: one record per generation, appended and flushed as batches finish.

A relaunch reads the finished keys back and generates only what is missing; a line cut short by a kill is dropped
on open, so the file never holds a corrupt record and a finished record is never rewritten.

Under a launcher with several processes (``accelerate launch``, ``torchrun``), process ``i`` appends to a shard of
its own, ``samples.shard-i.jsonl``; every process reads every shard on open (so a relaunch, with any process count,
generates only what no shard holds), and the main process merges them into ``samples.jsonl`` when all have
finished (``SampleStore.merge``): written whole, in the evaluation's own order, so the file is the same whatever the
number of processes.
"""

import hashlib
import json
import os
from pathlib import Path

from lprecover.atomic import write_file

SAMPLES_FILE = "samples.jsonl"
SHARD_GLOB = "samples.shard-*.jsonl"


def prompt_hash(ids: list[int]) -> str:
    return hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:16]


def record_key(r: dict) -> tuple:
    return (r["task"], r["mode"], r["problem_id"], r["budget"], r["sample"])


def _complete_lines(path: Path, truncate: bool) -> list[dict]:
    """The records of ``path``'s complete lines; a partial last line (a kill mid-write) is skipped, and cut from the
    file when ``truncate`` (only the file's own writer may: another process may be writing that line now)."""
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if truncate and end < len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
    return [json.loads(line) for line in data[:end].splitlines() if line.strip()]


class SampleStore:
    """Append-only store of generation records, keyed by (task, mode, problem, budget, sample).

    Args:
        shard: this process's index when the evaluation runs in several processes (it then appends to its own
            shard file); None for one process, which appends to ``samples.jsonl``.
    """

    def __init__(self, output_dir: str | Path, shard: int | None = None):
        self.out = Path(output_dir)
        self.main = self.out / SAMPLES_FILE
        self.path = self.main if shard is None else self.out / f"samples.shard-{shard}.jsonl"
        self.out.mkdir(parents=True, exist_ok=True)
        self.records: dict[tuple, dict] = {}
        for path in [self.main, *sorted(self.out.glob(SHARD_GLOB))]:
            if path.exists():
                for r in _complete_lines(path, truncate=path == self.path):
                    self.records.setdefault(record_key(r), r)

    def __contains__(self, key: tuple) -> bool:
        return key in self.records

    def __len__(self) -> int:
        return len(self.records)

    def append(self, records: list[dict]) -> None:
        new = [r for r in records if record_key(r) not in self.records]
        if not new:
            return
        with open(self.path, "a") as f:
            f.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in new))
            f.flush()
            os.fsync(f.fileno())
        for r in new:
            self.records[record_key(r)] = r

    def select(self, task: str, mode: str) -> list[dict]:
        return [r for r in self.records.values() if r["task"] == task and r["mode"] == mode]

    def merge(self, order: list[tuple]) -> list[dict]:
        """Write every record (this store's and every shard's, read afresh) to ``samples.jsonl`` whole, keys in
        ``order`` first and any others after them as found; then remove the shards. Only the main process calls it,
        once every process has finished. Returns the records in file order."""
        shards = sorted(self.out.glob(SHARD_GLOB))
        for path in shards:
            for r in _complete_lines(path, truncate=False):
                self.records.setdefault(record_key(r), r)
        rank = {key: i for i, key in enumerate(order)}
        records = sorted(self.records.values(), key=lambda r: rank.get(record_key(r), len(rank)))
        write_file(self.main, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        for path in shards:
            path.unlink()
        return records


def read_samples(output_dir: str | Path) -> list[dict]:
    """Every record of an evaluation folder's ``samples.jsonl``, in file order."""
    path = Path(output_dir) / SAMPLES_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"{output_dir} holds no {SAMPLES_FILE}: evaluate it first (lprecover eval ... output_dir={output_dir})."
        )
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def one_setting(records: list[dict], what: str) -> None:
    """Refuse to build one curve from records generated under different sampling settings."""
    seen = {json.dumps(r.get("sampling"), sort_keys=True) for r in records}
    if len(seen) > 1:
        raise ValueError(
            f"The {what} records were generated with different sampling settings ({'; '.join(sorted(seen))}); "
            "a curve over them would mix protocols. Evaluate into a new output_dir."
        )
