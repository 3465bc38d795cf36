import json
import os
import signal
import subprocess
import sys
import time

import pytest
from tiny_models import save_organism_tiny, tiny_model
from transformers import AutoModelForCausalLM, AutoTokenizer

from lprecover.cli import main
from lprecover.evaluation.budget_forcing import ThinkFormat, budget_forced_generate, prompt_ids, think_format
from lprecover.evaluation.config import EvalConfig
from lprecover.evaluation.run import run_eval


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory, organism_tokenizer):
    return save_organism_tiny(tmp_path_factory.mktemp("tiny_qwen3"), organism_tokenizer)


def test_budget_forcing_caps_and_closes_thinking(tiny_dir):
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    prompts = [prompt_ids(tok, p, ThinkFormat()) for p in ["1a+2", "3a*4b-1", "2a-3b+3c*2"]]
    for budget in (3, 12):
        gens = budget_forced_generate(model, tok, prompts, budget, ThinkFormat(answer_prefix="="), answer_max_tokens=2)
        for g in gens:
            assert g.thinking_tokens <= budget
            if g.truncated:  # forced: the close and the answer prefix were appended for the model
                assert g.thinking_tokens == budget and "</think>=" in g.raw
    # Batched generation equals one-at-a-time generation: left padding and per-sequence stopping are right.
    batched = budget_forced_generate(model, tok, prompts, 12, ThinkFormat(), answer_max_tokens=2)
    single = [budget_forced_generate(model, tok, [p], 12, ThinkFormat(), answer_max_tokens=2)[0] for p in prompts]
    assert [g.raw for g in batched] == [g.raw for g in single]


def test_wait_extension_keeps_the_model_thinking(organism_tokenizer):
    model = tiny_model("qwen3")
    close = organism_tokenizer.convert_tokens_to_ids("</think>")

    def always_close(module, args, logits):  # this model ends its thinking at once, every time
        logits[..., close] = 1e4
        return logits

    model.lm_head.register_forward_hook(always_close)
    prompts = [prompt_ids(organism_tokenizer, "1a+2", ThinkFormat())]
    plain = budget_forced_generate(model, organism_tokenizer, prompts, 30, ThinkFormat(), answer_max_tokens=1)[0]
    waited = budget_forced_generate(
        model, organism_tokenizer, prompts, 30, ThinkFormat(), answer_max_tokens=1, num_waits=2
    )[0]
    assert plain.thinking_tokens == 0 and waited.waits == 2 and waited.thinking.count("Wait") == 2


def test_a_value_that_cannot_be_computed_is_written_as_null(tiny_dir, tmp_path):
    """One budget has no scaling slope: summary.json said NaN, which is not JSON (strict parsers refuse it)."""
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    cfg = EvalConfig(tasks=["organism_shallow"], num_problems=3, budgets=[4], parallel=False, bootstrap=20)
    result = run_eval(model, tok, cfg, tmp_path)
    text = (tmp_path / "summary.json").read_text()
    summary = json.loads(text, parse_constant=lambda c: pytest.fail(f"summary.json holds {c}"))
    assert summary["organism_shallow"]["scaling_slope"] is None and "NaN" not in text
    assert result["summary"]["organism_shallow"]["scaling_slope"] is None
    json.loads((tmp_path / "curves.json").read_text(), parse_constant=lambda c: pytest.fail(f"curves.json holds {c}"))


def test_eval_writes_curves_and_resumes_without_redoing(tiny_dir, tmp_path):
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    cfg = EvalConfig(tasks=["organism_shallow"], num_problems=6, budgets=[2, 4], n_samples=4, bootstrap=50)
    result = run_eval(model, tok, cfg, tmp_path)
    seq = result["curves"]["sequential"]["organism_shallow"]
    par = result["curves"]["parallel"]["organism_shallow"]
    assert seq["budget"] == [2, 4] and len(seq["accuracy"]) == 2
    assert par["k"] == [1, 2, 4] and par["pass_at_k"] == sorted(par["pass_at_k"])
    assert all(lo <= a <= hi for lo, a, hi in zip(seq["ci_low"], seq["accuracy"], seq["ci_high"]))
    lines = (tmp_path / "samples.jsonl").read_text().splitlines()
    assert len(lines) == 6 * 2 + 6 * 4
    record = json.loads(lines[0])
    for key in (
        "task",
        "problem_id",
        "budget",
        "sample",
        "prompt_hash",
        "thinking_tokens",
        "truncated",
        "output",
        "extracted",
        "correct",
    ):
        assert key in record
    summary = json.loads((tmp_path / "summary.json").read_text())["organism_shallow"]
    assert {"sequential_area", "pass_at_1", "scaling_slope", "extraction_failure_rate"} <= set(summary)
    assert (tmp_path / "curves.png").stat().st_size > 5000
    before = (tmp_path / "samples.jsonl").read_bytes()
    run_eval(model, tok, cfg, tmp_path)
    assert (tmp_path / "samples.jsonl").read_bytes() == before  # nothing regenerated, nothing rewritten


@pytest.mark.parametrize("sampled", [False, True], ids=["greedy", "sampled"])
def test_one_pass_evaluation_writes_the_records_of_per_budget_generation(tiny_dir, tmp_path, sampled):
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    extra = dict(seq_samples=2, seq_temperature=0.7) if sampled else {}
    cfg = dict(tasks=["organism"], num_problems=12, budgets=[3, 6, 12, 24], parallel=False, bootstrap=50, **extra)
    one = run_eval(model, tok, EvalConfig(**cfg), tmp_path / "one")
    each = run_eval(model, tok, EvalConfig(**cfg, one_pass=False), tmp_path / "each")
    assert one["curves"] == each["curves"] and one["summary"] == each["summary"]
    records = {name: sorted((tmp_path / name / "samples.jsonl").read_text().splitlines()) for name in ("one", "each")}
    assert records["one"] == records["each"] and len(records["one"]) == 12 * 4 * (2 if sampled else 1)


def test_killed_eval_resumes_where_it_stopped(tiny_dir, tmp_path):
    out = tmp_path / "eval"
    args = [
        "-m",
        "lprecover.cli",
        "eval",
        f"model.name_or_path={tiny_dir}",
        "eval.tasks=[organism]",
        "eval.num_problems=64",
    ]
    args += ["eval.budgets=[8,16,24,32]", "eval.parallel=false", "eval.batch_size=4", f"output_dir={out}"]
    env = dict(os.environ, CI="1")
    proc = subprocess.Popen([sys.executable, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = out / "samples.jsonl"
    deadline = time.time() + 600  # a loaded machine takes minutes to start the process
    while time.time() < deadline and (not samples.exists() or samples.read_text().count("\n") < 40):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = samples.read_text().splitlines()
    assert 40 <= len(partial) < 256, "the kill should land mid-run"
    subprocess.run([sys.executable, *args], env=env, check=True, capture_output=True)
    full = samples.read_text().splitlines()
    assert len(full) == 256
    keys = [(r["problem_id"], r["budget"]) for r in map(json.loads, full)]
    assert len(set(keys)) == 256
    # Records finished before the kill are kept as they were (the finished file is in the evaluation's own order).
    assert set(partial[: len(partial) - 1]) <= set(full)


@pytest.mark.parametrize(
    "args, message",
    [
        (["eval.tasks=[chess]"], "Unknown task 'chess'"),
        (["eval.budgets=[0,16]"], "every value of eval.budgets must be at least 1, got 0"),
        (["eval.n_samples=4", "eval.k=[8]"], "must lie in 1..n_samples"),
        (["eval.engin=hf"], "Did you mean 'eval.engine'"),
        (["eval.budgets=[5,5]"], "eval.budgets names 5 more than once"),
        (["eval.k=[4,2]"], "eval.k must be increasing"),
        (["eval.top_p=0"], "eval.top_p must lie in (0, 1]"),
        (["eval.seq_samples=3"], "set eval.seq_temperature above 0"),
        (["eval.wait_text=[]"], "eval.wait_text must be a non-empty string"),
        (["eval.answer_max_tokens=0"], "eval.answer_max_tokens must be at least 1"),
    ],
)
def test_bad_eval_input_fails_before_generation(args, message, tiny_dir, tmp_path, capsys):
    assert main(["eval", f"model.name_or_path={tiny_dir}", f"output_dir={tmp_path / 'o'}", *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_model_without_chat_template_is_refused(tiny_dir, tmp_path, capsys):
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    tok.chat_template = None
    tok.save_pretrained(tmp_path / "m")
    AutoModelForCausalLM.from_pretrained(tiny_dir).save_pretrained(tmp_path / "m")
    code = main(
        ["eval", f"model.name_or_path={tmp_path / 'm'}", "eval.tasks=[organism]", f"output_dir={tmp_path / 'o'}"]
    )
    assert code == 2 and "no chat template" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_think_format_follows_the_family(organism_tokenizer):
    fmt = think_format(organism_tokenizer)
    assert (fmt.open, fmt.close) == ("<think>", "</think>")
    from lprecover.modeling import ModelConfig

    s1 = think_format(
        organism_tokenizer, ModelConfig(think_open="<|assistant|>", think_close="<|end|>", answer_prefix="answer")
    )
    assert (s1.close, s1.answer_prefix) == ("<|end|>", "answer")


def _record(problem, sample, correct, extracted="1", temperature=0.8, budget=40):
    return {
        "task": "t",
        "problem_id": problem,
        "budget": budget,
        "sample": sample,
        "correct": correct,
        "extracted": extracted,
        "canonical": extracted,
        "sampling": {"temperature": temperature},
    }


def test_pass_at_1_is_mean_per_sample_correctness_whatever_k_holds():
    from lprecover.evaluation.curves import parallel_curve
    from lprecover.evaluation.tasks import Problem

    problems = [Problem("a", "", ""), Problem("b", "", "")]
    records = [_record("a", i, c) for i, c in enumerate([True, False, False, False])]
    records += [_record("b", i, c) for i, c in enumerate([True, True, True, False])]
    curve = parallel_curve(records, problems, 4, [2, 4], 10, 0)
    assert curve["pass_at_1"] == pytest.approx((1 / 4 + 3 / 4) / 2)  # was pass@k[0] = pass@2 here
    # pass@2: a: 1 - C(3,2)/C(4,2) = 1/2; b: 1. cov@2 (first two correct?): a 1, b 1.
    assert curve["pass_at_k"] == pytest.approx([0.75, 1.0]) and curve["cov_at_k"] == [1.0, 1.0]


def test_curves_refuse_records_of_mixed_sampling_settings():
    from lprecover.evaluation.curves import parallel_curve, sequential_curve
    from lprecover.evaluation.tasks import Problem

    problems = [Problem("a", "", "")]
    mixed = [_record("a", 0, True, temperature=0.8), _record("a", 1, False, temperature=1.0)]
    with pytest.raises(ValueError, match="different sampling settings"):
        parallel_curve(mixed, problems, 2, [1, 2], 10, 0)
    with pytest.raises(ValueError, match="several budgets"):
        parallel_curve([_record("a", 0, True), _record("a", 1, True, budget=20)], problems, 2, [1, 2], 10, 0)
    seq = [_record("a", 0, True, temperature=0.0, budget=5), _record("a", 0, False, temperature=0.7, budget=10)]
    with pytest.raises(ValueError, match="different sampling settings"):
        sequential_curve(seq, problems, [5, 10], 10, 0)
