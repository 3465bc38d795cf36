"""``lprecover analyze``: why pruned models stop scaling, read off their reasoning traces. No downloads, no paid judge.

    lprecover analyze samples=runs/study-organism-shortgpt/eval-pruned-2/samples.jsonl
    lprecover analyze samples=lm_eval_out/samples_gsm8k_2026-01-01.jsonl output_dir=OUT     (lm-eval --log_samples)
    lprecover analyze samples=S judge.url=http://localhost:8000/v1 judge.model=Qwen/Qwen3-8B   (optional LLM judge)

Per task it measures, on the thinking part of each trace (before the end-of-thinking delimiter):

- **self-BLEU**: the mean sentence-BLEU (sacrebleu, no data downloads) of each segment of a trace against the
  trace's other segments. High means the trace keeps saying the same thing. Segments are sentences (split on
  ``.!?`` and newlines); a trace without them is cut into the organism's labelled steps, else into 8-word chunks.
- **markers** per trace, from the lexicon below (case-insensitive, whole words): reflection, backtracking and
  verification.
- **repetition rate**: the fraction of repeated n-grams (4 words; 8 characters for text without spaces), and the
  **loop rate**: the share of traces whose last third repeats at least half of its n-grams.
- **thinking length**: its distribution, the mean for correct and incorrect answers, and their correlation.

Writes ``analysis.json`` and ``analysis.png`` beside the samples (or in ``output_dir``); ``lprecover compare``
adds the columns when it finds ``analysis.json`` in an evaluation folder.
"""

import json
import os
import re
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lprecover.atomic import write_figure, write_file
from lprecover.config import ConfigError, declare, load_config
from lprecover.evaluation.importer import file_task
from lprecover.log import get_logger
from lprecover.readers import read_jsonl

logger = get_logger(__name__)

ANALYSIS_FILE, PLOT_FILE = "analysis.json", "analysis.png"
LEXICON = {
    "reflection": [
        "wait",
        "hmm",
        "hold on",
        "on second thought",
        "let me reconsider",
        "let me think again",
        "actually",
    ],
    "backtracking": [
        "alternatively",
        "let me try",
        "try another",
        "instead",
        "go back",
        "start over",
        "that's wrong",
        "that is wrong",
        "mistake",
    ],
    "verification": [
        "let me check",
        "let me verify",
        "double-check",
        "double check",
        "verify",
        "confirm",
        "sanity check",
    ],
}
LM_EVAL_SCORES = ("exact_match", "acc", "math_verify", "pass@1", "correct")
# A compact trace (no spaces, no sentence ends; the organism's) is cut at its labelled steps: ``a+3=``.
_LABELLED_STEP = re.compile(r"(?=[a-p][-+*]\d=)")


@dataclass
class JudgeConfig:
    """An optional LLM judge behind an OpenAI-compatible endpoint (vLLM, TGI, llama.cpp, or a hosted API)."""

    url: str | None = declare(None, help="Base URL, e.g. http://localhost:8000/v1.")
    model: str = declare("", help="Model name the endpoint serves.")
    api_key_env: str = declare("OPENAI_API_KEY", help="Environment variable holding the key.")
    max_traces: int = declare(50, help="Traces per task sent to the judge.", ge=1)


@dataclass
class AnalyzeCommand:
    """``lprecover analyze``: the samples file, where to write, and the optional judge."""

    samples: str = declare("", help="samples.jsonl of lprecover eval, or lm-eval --log_samples.")
    output_dir: str | None = declare(None, help="Default: the samples file's folder.", output_dir=True)
    think_close: str = declare("</think>", help="End-of-thinking delimiter.")
    max_traces: int = declare(400, help="Traces per task for self-BLEU (evenly subsampled).", ge=1)
    judge: JudgeConfig = field(default_factory=JudgeConfig)

    def __post_init__(self):
        if not self.samples or not Path(self.samples).is_file():
            raise ValueError(f"samples='{self.samples}' is not a file; give a samples.jsonl.")


def read_traces(path: Path, think_close: str) -> list[dict]:
    """``{task, text, thinking_tokens, correct}`` per generation, from our records or lm-eval's ``--log_samples``."""
    out, first_filter = [], None
    lm_eval_task = file_task(path) or path.stem  # lm-eval's own rule: samples_<task>_<timestamp>.jsonl
    for i, r in enumerate(read_jsonl(path, "samples", allow_empty=False)):
        if "output" in r and "task" in r:
            text, task, correct, tokens = r["output"], r["task"], bool(r.get("correct")), r.get("thinking_tokens")
        elif isinstance(r.get("resps"), list) and r["resps"]:
            first_filter = first_filter or r.get("filter")
            if r.get("filter") != first_filter:
                continue  # the main harness repeats each document once per filter, with the same responses
            resp = r["resps"][0]
            text = resp[0] if isinstance(resp, list) else resp
            score = next((r[k] for k in LM_EVAL_SCORES if k in r), None)
            task, correct, tokens = lm_eval_task, bool(score) if score is not None else None, None
        else:
            raise ConfigError(
                f"Row {i} of samples '{path}' is neither an lprecover record (task, output) nor an lm-eval sample "
                "(resps)."
            )
        if not isinstance(text, str):  # lprecover never writes one: the file was cut or edited, so refuse, not skip
            what = "output" if "output" in r and "task" in r else "its first response"
            raise ConfigError(
                f"Row {i} of samples '{path}' has {what} {json.dumps(text)}, not the generated text; regenerate the "
                "file or remove the row."
            )
        thinking = text.split(think_close)[0] if think_close and think_close in text else text
        if tokens is None:
            tokens = len(thinking.split()) if " " in thinking else len(thinking)
        out.append({"task": task, "text": thinking, "thinking_tokens": tokens, "correct": correct})
    return out


def segments(text: str) -> list[str]:
    parts = [p.strip() for p in re.split(r"(?<=[.!?])\s+|\n+", text) if p.strip()]
    if len(parts) >= 2:
        return parts
    if " " not in text.strip():
        return [p for p in _LABELLED_STEP.split(text) if p]
    words = text.split()
    return [" ".join(words[i : i + 8]) for i in range(0, len(words), 8)]


def self_bleu(text: str, max_segments: int = 64) -> float | None:
    """Mean BLEU of each segment against the trace's other segments (None for fewer than two segments)."""
    from sacrebleu.metrics import BLEU

    parts = segments(text)
    if len(parts) < 2:
        return None
    if len(parts) > max_segments:
        parts = [parts[int(i)] for i in np.linspace(0, len(parts) - 1, max_segments)]
    bleu = BLEU(effective_order=True, tokenize="char" if " " not in text.strip() else "13a")
    scores = [bleu.sentence_score(p, parts[:i] + parts[i + 1 :]).score for i, p in enumerate(parts)]
    return float(np.mean(scores)) / 100


def _units(text: str) -> tuple[list[str], int]:
    return (text.split(), 4) if " " in text.strip() else (list(text), 8)


def repetition_rate(text: str) -> float:
    units, n = _units(text)
    grams = [tuple(units[i : i + n]) for i in range(len(units) - n + 1)]
    return 1 - len(set(grams)) / len(grams) if grams else 0.0


def loops(text: str) -> bool:
    units, _ = _units(text)
    tail = units[2 * len(units) // 3 :]
    joiner = " " if " " in text.strip() else ""
    return len(tail) >= 12 and repetition_rate(joiner.join(tail)) >= 0.5


def marker_counts(text: str) -> dict[str, int]:
    lower = text.lower()
    return {
        kind: sum(len(re.findall(rf"(?<![a-z]){re.escape(w)}(?![a-z])", lower)) for w in words)
        for kind, words in LEXICON.items()
    }


def judge_counts(text: str, judge: JudgeConfig) -> dict[str, int] | None:
    """Ask the judge endpoint to count the three behaviours; None when it answers with something unreadable."""
    prompt = (
        "Count the reflection, backtracking and verification steps in this reasoning trace. Answer with JSON only: "
        '{"reflection": N, "backtracking": N, "verification": N}.\n\nTrace:\n' + text[:12000]
    )
    body = {"model": judge.model, "messages": [{"role": "user", "content": prompt}], "temperature": 0}
    request = urllib.request.Request(
        judge.url.rstrip("/") + "/chat/completions",
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {os.environ.get(judge.api_key_env, '')}",
        },
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        content = json.loads(response.read())["choices"][0]["message"]["content"]
    match = re.search(r"\{.*\}", content, re.S)
    try:
        counts = json.loads(match.group(0)) if match else None
        return {k: int(counts[k]) for k in LEXICON} if counts else None
    except (ValueError, KeyError, TypeError):
        return None


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else None


def analyze_task(traces: list[dict], max_traces: int, judge: JudgeConfig) -> dict:
    lengths = np.array([t["thinking_tokens"] for t in traces], dtype=float)
    correct = [t["correct"] for t in traces]
    picked = [traces[int(i)] for i in np.linspace(0, len(traces) - 1, min(max_traces, len(traces)))]
    markers = [marker_counts(t["text"]) for t in traces]
    out = {
        "n": len(traces),
        "self_bleu": _mean(self_bleu(t["text"]) for t in picked),
        "repetition_rate": _mean(repetition_rate(t["text"]) for t in traces),
        "loop_rate": _mean(float(loops(t["text"])) for t in traces),
        **{f"{k}_per_trace": _mean(m[k] for m in markers) for k in LEXICON},
        "thinking_tokens_mean": float(lengths.mean()),
        "thinking_tokens_p50": float(np.percentile(lengths, 50)),
        "thinking_tokens_p90": float(np.percentile(lengths, 90)),
        "length_histogram": np.histogram(lengths, bins=10)[0].tolist(),
        "length_bins": np.histogram(lengths, bins=10)[1].tolist(),
    }
    if all(c is not None for c in correct):
        c = np.array(correct, dtype=float)
        out["accuracy"] = float(c.mean())
        out["correct_mean_length"] = float(lengths[c == 1].mean()) if c.any() else None
        out["incorrect_mean_length"] = float(lengths[c == 0].mean()) if (c == 0).any() else None
        varies = c.std() > 0 and lengths.std() > 0
        out["length_correct_correlation"] = float(np.corrcoef(lengths, c)[0, 1]) if varies else None
    if judge.url:
        judged = [judge_counts(t["text"], judge) for t in picked[: judge.max_traces]]
        judged = [j for j in judged if j]
        out |= {f"judge_{k}_per_trace": _mean(j[k] for j in judged) for k in LEXICON} | {"judged": len(judged)}
    return out


def plot(by_task: dict[str, list[dict]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(by_task), figsize=(5 * len(by_task), 3.4), squeeze=False)
    for ax, (task, traces) in zip(axes[0], by_task.items()):
        lengths = np.array([t["thinking_tokens"] for t in traces], dtype=float)
        correct = np.array([bool(t["correct"]) for t in traces])
        bins = np.histogram_bin_edges(lengths, bins=15)
        ax.hist(lengths[correct], bins=bins, alpha=0.6, label="correct")
        ax.hist(lengths[~correct], bins=bins, alpha=0.6, label="incorrect")
        ax.set_title(task)
        ax.set_xlabel("thinking tokens")
        ax.legend(fontsize=8)
    fig.tight_layout()
    write_figure(path, fig, dpi=110)
    plt.close(fig)


def analyze(cfg: AnalyzeCommand) -> dict:
    samples = Path(cfg.samples)
    out = Path(cfg.output_dir) if cfg.output_dir else samples.parent
    traces = read_traces(samples, cfg.think_close)
    by_task: dict[str, list[dict]] = {}
    for t in traces:
        by_task.setdefault(t["task"], []).append(t)
    result = {
        "samples": str(samples),
        "lexicon": LEXICON,
        "tasks": {task: analyze_task(ts, cfg.max_traces, cfg.judge) for task, ts in sorted(by_task.items())},
    }
    out.mkdir(parents=True, exist_ok=True)
    plot(by_task, out / PLOT_FILE)
    write_file(out / ANALYSIS_FILE, json.dumps(result, indent=2))
    return result


CONFIG = AnalyzeCommand  # the keys `--help` lists


def main(argv: list[str]) -> int:
    """Run the command on its ``key=value`` arguments (``lprecover.command.run`` adds ``--help`` and error lines)."""
    result = analyze(load_config(AnalyzeCommand, argv))
    for task, a in result["tasks"].items():
        keys = ("self_bleu", "repetition_rate", "reflection_per_trace", "thinking_tokens_mean", "accuracy")
        print(task, " ".join(f"{k}={a[k]:.3f}" for k in keys if a.get(k) is not None))
    return 0
