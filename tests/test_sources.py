"""Source parsers on planted rows shaped like each hub dataset (the hubs are not reachable here)."""

import pytest

from data_prep.sources import RowError, gsm8k, mapped, math_like, openr1, openthoughts, s1k


def test_s1k_takes_the_trajectory_and_the_attempt():
    row = {
        "question": "Q?",
        "deepseek_thinking_trajectory": "think hard",
        "deepseek_attempt": "so \\boxed{12}",
        "solution": "12",
    }
    ex = s1k(row, 0)
    assert (ex.problem, ex.answer, ex.trace, ex.final) == ("Q?", "12", "think hard", "so \\boxed{12}")
    long_solution = dict(row, solution="a long worked solution " * 10)
    assert s1k(long_solution, 0).answer == "12"  # falls back to the attempt's boxed answer


def test_openr1_keeps_the_first_verified_generation():
    row = {
        "problem": "P",
        "answer": "3",
        "generations": ["<think>wrong</think>\\boxed{4}", "<think>right</think>\\boxed{3}"],
        "correctness_math_verify": [False, True],
    }
    ex = openr1(row, 0)
    assert ex.trace == "right" and ex.final == "\\boxed{3}" and ex.answer == "3"
    with pytest.raises(RowError, match="row 5"):
        openr1(dict(row, correctness_math_verify=[False, False]), 5)


def test_openthoughts_splits_thought_and_solution():
    reply = (
        "<|begin_of_thought|>\nhmm\n<|end_of_thought|>\n<|begin_of_solution|>\nIt is \\boxed{7}.\n<|end_of_solution|>"
    )
    ex = openthoughts({"conversations": [{"from": "user", "value": "U"}, {"from": "assistant", "value": reply}]}, 0)
    assert (ex.problem, ex.trace.strip(), ex.answer) == ("U", "hmm", "7")


def test_math_takes_the_boxed_answer_and_gsm8k_the_hashes():
    assert math_like({"problem": "P", "solution": "thus $\\boxed{\\frac{1}{2}}$"}, 0).answer == "\\frac{1}{2}"
    ex = gsm8k({"question": "Q", "answer": "2 + 2 = <<2+2=4>>4\n#### 1,004"}, 0)
    assert ex.answer == "1004" and ex.trace == "2 + 2 = 4"
    with pytest.raises(RowError, match="####"):
        gsm8k({"question": "Q", "answer": "no final line"}, 0)


def test_field_mapping_reads_any_jsonl():
    parse = mapped({"question": "prompt", "answer": "target", "trace": "reasoning"})
    ex = parse({"prompt": "Q", "target": "9", "reasoning": "r"}, 0)
    assert (ex.problem, ex.answer, ex.trace) == ("Q", "9", "r")
    with pytest.raises(RowError, match="has no reasoning"):
        parse({"prompt": "Q", "target": "9"}, 3)
