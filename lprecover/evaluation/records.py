"""``samples.jsonl``: one record per generation, appended and flushed as batches finish.

A relaunch reads the finished keys back and generates only what is missing; a line cut short by a kill is dropped
on open, so the file never holds a corrupt record and a finished record is never rewritten.
"""

import hashlib
import json
import os
from pathlib import Path

SAMPLES_FILE = "samples.jsonl"


def prompt_hash(ids: list[int]) -> str:
    return hashlib.sha256(json.dumps(ids).encode()).hexdigest()[:16]


def record_key(r: dict) -> tuple:
    return (r["task"], r["mode"], r["problem_id"], r["budget"], r["sample"])


class SampleStore:
    """Append-only store of generation records, keyed by (task, mode, problem, budget, sample)."""

    def __init__(self, output_dir: str | Path):
        self.path = Path(output_dir) / SAMPLES_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records: dict[tuple, dict] = {}
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # a kill mid-write left a partial last line: drop it
            with open(self.path, "r+b") as f:
                f.truncate(end)
        for line in data[:end].splitlines():
            if line.strip():
                r = json.loads(line)
                self.records[record_key(r)] = r

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
