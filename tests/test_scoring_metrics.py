import math

import numpy as np
import pytest

from lprecover.evaluation import scoring
from lprecover.evaluation.metrics import (
    answered_at_k,
    bootstrap_ci,
    cov_at_k,
    maj_at_k,
    maj_at_k_first,
    pass_at_k,
    scaling_slope,
)
from lprecover.evaluation.scoring import canonical, extract_answer, is_correct


def test_pass_at_k_matches_hand_values():
    assert pass_at_k(8, 6, 2) == pytest.approx(27 / 28)
    assert pass_at_k(10, 0, 5) == 0.0
    assert pass_at_k(5, 1, 1) == pytest.approx(0.2)
    assert pass_at_k(4, 2, 3) == 1.0  # any 3 of 4 include one of the 2 correct
    assert pass_at_k(100, 3, 10) == pytest.approx(1 - math.comb(97, 10) / math.comb(100, 10))
    with pytest.raises(ValueError, match="1 <= k <= n"):
        pass_at_k(4, 1, 5)


def test_maj_at_k_votes_on_canonical_answers():
    # The right answer "42" is written three ways; the wrong "7" appears twice as often as any single spelling.
    answers = [canonical(a, "gsm8k") for a in ["42", "42.0", "\\frac{84}{2}", "7", "7"]]
    correct = [True, True, True, False, False]
    assert maj_at_k(answers, correct, 5) == 1.0
    assert maj_at_k(["7", "7", "42", None], [False, False, True, False], 1) == pytest.approx(0.25)
    assert maj_at_k([None, None], [False, False], 2) == 0.0
    # All C(4,3) subsets: two hold both a's (a wins); two are three-way ties worth 1/3 each.
    assert maj_at_k(["a", "a", "b", "c"], [True, True, False, False], 3) == pytest.approx(2 / 3)


def test_maj_at_k_samples_subsets_when_there_are_too_many_and_estimates_the_exact_value():
    # 12 samples, 9 say "a" (correct), 3 say "b"; k = 6. The only loss is a 3-3 tie, worth 1/2:
    # P(tie) = C(9,3) C(3,3) / C(12,6) = 84 / 924, so maj@6 = 1 - 42/924.
    answers, correct = ["a"] * 9 + ["b"] * 3, [True] * 9 + [False] * 3
    exact = maj_at_k(answers, correct, 6, max_subsets=924)  # all 924 subsets
    assert exact == pytest.approx(1 - 42 / 924)
    sampled = maj_at_k(answers, correct, 6)  # 256 seeded subsets of the 924
    assert sampled != exact and sampled == pytest.approx(exact, abs=0.03)
    assert maj_at_k(answers, correct, 6, seed=0) == sampled  # seeded: the same subsets every time


def test_a_failed_extraction_votes_and_never_wins():
    """[no answer, correct] used to score 1: failed extractions were dropped from the vote."""
    assert maj_at_k([None, "42"], [False, True], 2) == pytest.approx(0.5)  # a tie: half the leaders are correct
    # Subsets of 2 from [None, None, 42]: {N,N} -> 0, {N,42} twice -> 1/2 each; all three: "no answer" wins 2-1.
    assert maj_at_k([None, None, "42"], [False, False, True], 2) == pytest.approx(1 / 3)
    assert maj_at_k([None, None, "42"], [False, False, True], 3) == 0.0
    # The references' form: the first k samples, ties to the answer seen first.
    assert maj_at_k_first([None, "42"], [False, True], 2) == 0.0
    assert maj_at_k_first(["42", None], [True, False], 2) == 1.0
    assert maj_at_k_first(["844", "756", "756"], [False, True, True], 2) == 0.0  # the seed's own record: 0
    assert maj_at_k_first(["844", "756", "756"], [False, True, True], 3) == 1.0


def test_cov_at_k_is_the_references_coverage_and_answered_at_k_counts_answers():
    # s1's cov@k: is any of the first k samples correct.
    assert cov_at_k([False, False, True, False], 2) == 0.0 and cov_at_k([False, False, True, False], 3) == 1.0
    # answered@k = 1 - C(n - a, k) / C(n, k): with 1 answered of 4, k = 2 -> 1 - 3/6.
    assert answered_at_k(4, 1, 2) == pytest.approx(0.5)
    assert answered_at_k(4, 0, 4) == 0.0 and answered_at_k(4, 1, 4) == 1.0


@pytest.mark.parametrize(
    "text, expected",
    [
        ("so the total is \\boxed{\\frac{3}{4}}.", "\\frac{3}{4}"),
        ("Step 1 ... Final Answer: 18", "18"),
        ("The answer is: $1,250$.", "1250"),
        ("Final Answer: The", None),  # a cut-off sentence is not an answer
        ("**Step 1: Understand the problem.** She sells 9 eggs.", None),  # a bold heading is not an answer
        ("Final Answer: The total is 18 dollars.", "18"),
        ("Therefore **42** eggs.", "42"),
        ("She makes 9 * 2 = 18 dollars.\n#### 18", "18"),
        ("I am not sure what the question asks.", None),
        ("", None),
    ],
)
def test_math_extraction(text, expected):
    assert extract_answer(text, "gsm8k") == expected


def test_math_correctness_uses_math_verify():
    assert is_correct("\\boxed{0.5}", "1/2", "math500")
    assert is_correct("Final Answer: 1,250", "1250", "gsm8k")
    assert not is_correct("\\boxed{3}", "4", "gsm8k")
    assert not is_correct("no answer here", "4", "gsm8k")


def test_math_verify_works_outside_the_main_thread():
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        assert pool.submit(is_correct, "\\boxed{\\sqrt{4}}", "2", "math500").result()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Answer: C", "C"),
        ("... so the answer is (B).", "B"),
        ("\\boxed{D}", "D"),
        ("\\boxed{\\text{B}}", "B"),
        ("(C)", "C"),
        ("**C**", "C"),
        ("So the final answer is: **D**", "D"),
        ("Final Answer: (A)", "A"),
        ("Answer: B, because the field vanishes.", "B"),
        ("answer: [D]", "D"),
        ("Options (A) and (B) fail, so the answer is C.", "C"),
        # Negative cases: articles, pronouns, ordinary words, lower case, letters the question does not offer.
        ("The answer is a bit unclear... (C)", "C"),
        ("Answer: I think it is B", None),
        ("Answer: A is the best guess, but I cannot tell", None),
        ("I think A or maybe B", None),
        ("A bit of both.", None),
        ("Answer: c", None),
        ("The answer is E", None),
        ("Answer: Interesting question.", None),
    ],
)
def test_strict_letter_extraction(text, expected):
    assert extract_answer(text, "gpqa_diamond") == expected


def test_organism_is_exact_match():
    assert is_correct("3", "3", "organism_long") and not is_correct("3 ", "4", "organism")
    with pytest.raises(ValueError, match="Unknown task 'chess'"):
        scoring.task_kind("chess")


def test_bootstrap_interval_brackets_the_mean():
    values = np.array([1.0] * 30 + [0.0] * 70)
    lo, hi = bootstrap_ci(values, 2000, seed=0)
    assert lo < 0.3 < hi and hi - lo < 0.25
    assert bootstrap_ci(np.ones(10)) == (1.0, 1.0)


def test_scaling_slope_is_gain_per_doubling():
    assert scaling_slope([512, 1024, 2048, 4096], [0.2, 0.3, 0.4, 0.5]) == pytest.approx(0.1)
    assert scaling_slope([10, 20], [0.5, 0.5]) == pytest.approx(0.0)
