"""Think/answer swap: one model thinks under budget forcing, another answers from that thinking.

The same ``force_budgets`` loop as ``lprecover eval`` drives both models: every call that may end at the
end-of-thinking delimiter (the thinking phase, wait strings included) goes to the thinker, every answer phase to the
answerer, fed the prompt, the thinker's thinking and the forced close and cue. ``run_eval`` records, scores and
resumes the cells as any evaluation; each record of ``swap_samples.jsonl`` adds ``thinker`` and ``answerer``.

With T the teacher, P the other model (pruned or recovered), and A(X thinks, Y answers) the area under the
sequential curve (``metrics.curve_area``):

    lost            = A(T, T) - A(P, P)
    answerer_share  = (A(P, T) - A(P, P)) / lost   # comes back when only the answering model is the teacher's
    thinker_share   = (A(T, P) - A(P, P)) / lost   # comes back when only the thinking model is the teacher's

Both are undefined (None) when nothing was lost (``lost <= 0``). ``thinker_share`` near 1 and ``answerer_share``
near 0 say the damage is in the thinking; the reverse, in turning thinking into an answer. Their 95% intervals
resample problems (the ratio recomputed on each resample, resamples with nothing lost left out).
"""

from pathlib import Path

import numpy as np

from lprecover.config import ConfigError
from lprecover.evaluation.budget_forcing import check_close, default_keys, force_budgets, hf_runner
from lprecover.evaluation.metrics import curve_area

ROLES = ("teacher", "other")
CELLS = [(t, a) for t in ROLES for a in ROLES]


def cell_name(thinker: str, answerer: str) -> str:
    return f"{thinker}-thinks_{answerer}-answers"


class SwapRunner:
    """A ``force_budgets`` runner whose thinking calls go to one runner and answer calls to another.

    A thinking call is told to stop at the end-of-thinking delimiter; an answer call is not (it stops at the end of
    the turn alone). Without a ``follow`` method, ``force_budgets`` generates answers from their full inputs.
    """

    def __init__(self, think_run, answer_run, close_ids: list[int]):
        self.think_run, self.answer_run, self.close = think_run, answer_run, set(close_ids)

    def __call__(self, seqs, rooms, stops, keys):
        run = self.think_run if self.close & set(stops) else self.answer_run
        return run(seqs, rooms, stops, keys)


class SwapEngine:
    """An evaluation engine (``run_eval`` accepts it as its model) in which ``thinker`` thinks and ``answerer``
    answers; the two share ``tokenizer``."""

    is_engine = True

    def __init__(self, thinker, answerer, tokenizer):
        self.thinker, self.answerer, self.tokenizer = thinker, answerer, tokenizer
        self.config = thinker.config

    def generate_budgets(
        self,
        prompts,
        budgets,
        fmt,
        answer_max_tokens=16,
        num_waits=0,
        batch_size=64,
        reuse_cache=True,
        temperature=0.0,
        top_p=1.0,
        keys=None,
        seed=0,
    ):
        """Generations at every budget, as ``HFEngine.generate_budgets`` (``reuse_cache`` cannot apply: the
        answering model did not write the thinking pass's cache)."""
        close_ids = check_close(self.tokenizer, fmt)
        if not close_ids:
            raise ConfigError(
                "The think/answer swap needs an end-of-thinking delimiter to hand thinking over; this model family "
                "has none (set model.think_close=...)."
            )
        think_run, eos_a = hf_runner(self.thinker, self.tokenizer, temperature, top_p, batch_size)
        answer_run, eos_b = hf_runner(self.answerer, self.tokenizer, temperature, top_p, batch_size)
        run = SwapRunner(think_run, answer_run, close_ids)
        keys = keys if keys is not None else default_keys(prompts, seed)
        results = [[] for _ in budgets]
        for s in range(0, len(prompts), batch_size):
            e = s + batch_size
            part = force_budgets(
                run, self.tokenizer, eos_a | eos_b, prompts[s:e], budgets, fmt, answer_max_tokens, num_waits, keys[s:e]
            )
            for result, gens in zip(results, part):
                result += gens
        return results

    def generate(self, prompts, budget, fmt, **kwargs):
        return self.generate_budgets(prompts, [budget], fmt, **kwargs)[0]


def check_tokenizers(a, b, what: str) -> None:
    """Refuse a swap between models whose tokenizers differ: one's thinking would be another's noise."""
    if a.get_vocab() != b.get_vocab():
        raise ConfigError(f"{what} has a different tokenizer from the model; the swap needs one tokenizer for both.")


def shares(per_problem_area: dict[tuple[str, str], np.ndarray], n_boot: int, seed: int) -> dict:
    """``lost``, ``answerer_share`` and ``thinker_share`` (module docstring), each ``{value, ci_low, ci_high}``.

    Args:
        per_problem_area: (thinker, answerer) -> each problem's area, problems aligned across cells.
    """
    tt, pp = per_problem_area[("teacher", "teacher")], per_problem_area[("other", "other")]
    pt, tp = per_problem_area[("other", "teacher")], per_problem_area[("teacher", "other")]

    def ratios(idx):
        lost = tt[idx].mean() - pp[idx].mean()
        if lost <= 0:
            return None
        return ((pt[idx].mean() - pp[idx].mean()) / lost, (tp[idx].mean() - pp[idx].mean()) / lost)

    n = len(tt)
    value = ratios(np.arange(n))
    rng = np.random.default_rng(seed)
    draws = [ratios(d) for d in rng.integers(0, n, size=(n_boot, n))] if value is not None and n >= 2 else []
    draws = np.array([d for d in draws if d is not None]).reshape(-1, 2)

    def entry(j):
        if value is None:
            return {"value": None, "ci_low": None, "ci_high": None}
        lo, hi = np.quantile(draws[:, j], [0.025, 0.975]) if len(draws) else (None, None)
        return {
            "value": float(value[j]),
            "ci_low": None if lo is None else float(lo),
            "ci_high": None if hi is None else float(hi),
        }

    lost = float(tt.mean() - pp.mean())
    return {"lost": lost, "answerer_share": entry(0), "thinker_share": entry(1)}


def problem_areas(curve_matrix: np.ndarray, budgets: list[int]) -> np.ndarray:
    return np.asarray(curve_area(budgets, curve_matrix))


def cell_folder(out: Path, thinker: str, answerer: str) -> Path:
    return out / "swap" / cell_name(thinker, answerer)
