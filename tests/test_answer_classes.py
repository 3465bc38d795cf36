"""Answer extraction and voting, one table per class of text the scorer must read right.

Each row is a case of its class, not the class's one example: other numbers, wordings and LaTeX forms. Every
expected value is written by hand.
"""

import itertools

import pytest

from lprecover.evaluation.metrics import maj_at_k
from lprecover.evaluation.scoring import (
    answers_match,
    canonical,
    extract_answer,
    is_correct,
    last_boxed,
    normalize_unicode,
    vote_keys,
)

MATH, CHOICE = "gsm8k", "gpqa_diamond"


@pytest.mark.parametrize(
    "text, task, expected",
    [
        ("The answer is 20, not 18.", MATH, "20"),
        ("The answer is 12 (not 21).", MATH, "12"),
        ("The answer is 7 (not 8 or 9).", MATH, "7"),
        ("The answer is not 7 but 8.", MATH, "8"),
        ("The answer is not 3; it is 4.", MATH, "4"),
        ("The answer is not 3, it's 4.", MATH, "4"),
        ("The answer is 20? No, 18.", MATH, "18"),
        ("The answer is 30, actually 36.", MATH, "36"),
        ("The answer is 20.\nWait, actually it's 18.", MATH, "18"),
        ("\\boxed{20}. Wait, no, the answer is 18.", MATH, "18"),
        ("The answer is \\boxed{8}, not \\boxed{7}.", "math500", "8"),
        ("It can't be 7. The answer is 8.", MATH, "8"),
        ("The answer is not obvious, so let me compute: \\boxed{5}", MATH, "5"),  # negates no value
        ("(C) is the answer; (A) and (B) are wrong.", CHOICE, "C"),
        ("Answer: (D), not (A)", CHOICE, "D"),
        ("The correct answer is B; A and C are incorrect.", CHOICE, "B"),
        ("(B) is correct; (A) is wrong.", "mmlu", "B"),
        ("Options (A), (B) and (C) are all wrong, so (D).", CHOICE, "D"),
        ("I eliminate (A) and (B); the answer is (C).", CHOICE, "C"),
        ("It is not (A) but (C).", CHOICE, "C"),
        ("Not (A). The answer is (D).", CHOICE, "D"),
        ("The answer is \\boxed{\\text{B}}, not \\boxed{\\text{A}}.", CHOICE, "B"),
    ],
)
def test_the_asserted_value_wins_over_a_negated_or_corrected_one(text, task, expected):
    assert extract_answer(text, task) == expected


@pytest.mark.parametrize(
    "text, task",
    [
        ("The answer is not 7.", MATH),
        ("The answer isn't 12.", MATH),
        ("The answer is definitely not 40.", MATH),
        ("The answer is either 4 or 5.", MATH),
        ("\\boxed{7 \\text{ or } 8}", "math500"),
        ("The answer is not \\boxed{7}.", "math500"),
        ("The answer is 7. Hmm, 7 is wrong.", MATH),
        ("\\boxed{12}. But 12 is not the answer.", MATH),
        ("Final Answer: not 9", MATH),
        ("The answer is not B.", CHOICE),
        ("Option (C) seems odd. The answer is not (B).", CHOICE),  # the statement retracts; (C) is a mention
        ("Answer: A or B", CHOICE),
        ("The answer is (B) or (C).", CHOICE),
        ("\\boxed{B}. Hmm, the answer is not B.", CHOICE),
    ],
)
def test_an_ambiguous_reading_is_no_answer(text, task):
    assert extract_answer(text, task) is None
    assert not is_correct(text, "7", task) and not is_correct(text, "B", task)


def test_extraction_failure_rate_counts_ambiguous_readings():
    from lprecover.evaluation.curves import parallel_curve, summarize  # imports torch: only for the tests that need it
    from lprecover.evaluation.tasks import Problem

    texts = ["The answer is not 7.", "The answer is 7 or 8.", "\\boxed{7}", "The answer is 20, not 7."]
    problems = [Problem("p", "", "7")]
    records = []
    for i, text in enumerate(texts):
        extracted = extract_answer(text, MATH)
        records.append(_record("p", i, extracted, answers_match(extracted, "7", MATH), MATH))
    curve = parallel_curve(records, problems, 4, [4], 10, 0)
    summary = summarize({"sequential": {}, "parallel": {MATH: curve}}, records)
    assert summary[MATH]["extraction_failure_rate"] == pytest.approx(2 / 4)  # the two ambiguous readings


@pytest.mark.parametrize(
    "text, task, expected",
    [
        ("The answer is \u22127", MATH, "-7"),  # MINUS SIGN
        ("\\boxed{\u22123}", "math500", "-3"),
        ("Answer: \uff0d\uff15", MATH, "-5"),  # fullwidth minus and digit
        ("The answer is \uff11\uff12.", MATH, "12"),
        ("The answer is \u0664\u0662.", MATH, "42"),  # Arabic-Indic digits
        ("The answer is \u20137", MATH, "-7"),  # an en dash where a minus stands
        ("The answer is 3\u2009000.", MATH, "3000"),  # thin space between thousands
        ("The answer is 1\u00a0000.", MATH, "1000"),  # no-break space
        ("The answer is 4\u200b2.", MATH, "42"),  # zero-width space
        ("\\boxed{x\u00b2}", "math500", "x^{2}"),  # superscript two
        ("The answer is 1\u00bd.", MATH, "\\frac{3}{2}"),  # a mixed number with a vulgar fraction
        ("Answer\uff1a\uff23", CHOICE, "C"),  # fullwidth colon and letter
        ("The answer is \uff0b5", MATH, "5"),  # fullwidth plus
        ("The answer is 2\u00d710\u00b3", "math500", "2 \\times 10^{3}"),  # multiplication sign, superscripts
        ("The answer is 6\u00b710\u00b2", "math500", "6 \\cdot 10^{2}"),  # middle dot between numbers
    ],
)
def test_unicode_numbers_and_signs_are_read(text, task, expected):
    assert extract_answer(text, task) == expected


def test_unicode_answers_score_against_ascii_gold():
    assert is_correct("The answer is \u22127", "-7", MATH)
    assert is_correct("The answer is 1\u00bd cups.", "3/2", "math500")
    assert answers_match("\u22127", "-7", MATH)  # a stored answer, read again
    assert normalize_unicode("pages 3\u20135") == "pages 3\u20135"  # a range between numbers keeps its dash
    assert normalize_unicode("10\u207b\u00b3") == "10^{-3}"
    assert normalize_unicode("a \u00b7 b") == "a \u00b7 b"  # a middle dot between words is punctuation
    assert is_correct("The answer is 2\u00d710\u00b3", "2000", "math500")


@pytest.mark.parametrize(
    "text, task, expected",
    [
        ("\\boxed{12} and \\boxed{", MATH, "12"),
        ("\\boxed{\\frac{1}{2}} so far; checking: \\boxed{\\frac{3", "math500", "\\frac{1}{2}"),
        ("So \\boxed{5}. Double-check: \\boxed{5", MATH, "5"),
        ("\\boxed{\\sqrt{2}} then $\\boxed{\\sqrt{", "math500", "\\sqrt{2}"),
        ("\\boxed{C} ... \\boxed{\\text{", CHOICE, "C"),
        ("Only a cut box: \\boxed{4", MATH, None),
    ],
)
def test_the_last_complete_box_counts_when_a_later_one_is_cut_off(text, task, expected):
    assert extract_answer(text, task) == expected


def test_last_boxed_skips_a_cut_off_box():
    assert last_boxed("\\boxed{12} and \\boxed{") == "12"
    assert last_boxed("\\boxed{\\frac{1}{2}} \\fbox{3") == "\\frac{1}{2}"
    assert last_boxed("\\boxed{") is None


@pytest.mark.parametrize(
    "text, task, expected",
    [
        ("Maybe \\boxed{20}? No: 9 * 2 = 18.\n\nFinal Answer: 18", MATH, "18"),
        ("\\boxed{3} is my guess.\n\nFinal Answer: \\boxed{4}", "math500", "4"),
        ("The answer is 7.\n\nFinal Answer: The answer is 9.", MATH, "9"),
        ("So **25**... then 5 * 6 = 30.\n\n**Final Answer:** 30", MATH, "30"),
        ("Final Answer: 20\n\nFinal Answer: 18", MATH, "18"),  # the last cue
        ("\\boxed{A} at first sight.\n\nFinal Answer: C", CHOICE, "C"),
        ("The answer is (B).\n\nFinal Answer: \\boxed{\\text{D}}", CHOICE, "D"),
        ("\\boxed{20}\n\nFinal Answer: The", MATH, "20"),  # nothing after the cue: the earlier box stands
        ("\\boxed{20}\n\nFinal Answer: not 20", MATH, None),  # the cue's answer retracts it
    ],
)
def test_the_answer_after_the_forced_cue_wins_over_earlier_text(text, task, expected):
    assert extract_answer(text, task) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("\\boxed{\\textbf{C}}", "C"),
        ("\\boxed{\\textbf{(C)}}", "C"),
        ("\\boxed{\\mathrm{B}}", "B"),
        ("$\\boxed{\\mathrm{(A)}}$", "A"),
        ("\\boxed{\\mathbf{D}}", "D"),
        ("\\boxed{\\textit{D}}", "D"),
        ("\\boxed{\\text{(A)}}", "A"),
        ("\\boxed{\\text{\\textbf{B}}}", "B"),
        ("\\boxed{{\\bf C}}", "C"),
        ("\\boxed{\\text{Option C}}", "C"),
        ("\\boxed{\\text{C. 42 m/s}}", "C"),
        ("\\boxed{\\text{E}}", None),  # GPQA offers A-D
        ("\\boxed{\\textbf{A and B}}", None),
    ],
)
def test_choice_letters_are_read_inside_text_commands_in_a_box(text, expected):
    assert extract_answer(text, CHOICE) == expected


@pytest.mark.parametrize(
    "first, second",
    [
        ("x = 5", "5"),
        ("10^3", "1000"),
        ("2^{10}", "1024"),
        ("25\\%", "0.25"),
        ("\\frac{1}{2}", "0.5"),
        ("\\dfrac{3}{4}", "0.75"),
        ("\\sqrt{8}", "2\\sqrt{2}"),
        ("\u22127", "-7"),
        ("\\frac{\\pi}{2}", "\\pi/2"),
        ("42.0", "\\frac{84}{2}"),
    ],
)
def test_answers_math_verify_holds_equal_share_a_canonical_form(first, second):
    assert answers_match(first, second, "math500")  # the premise: math-verify holds them equal
    assert canonical(first, "math500") == canonical(second, "math500")
    assert vote_keys([first, second], "math500")[0] == vote_keys([first, second], "math500")[1]


def test_vote_keys_cluster_by_math_verify_in_an_order_free_way():
    assert vote_keys(["x = 5", "5", "7", None], "math500") == ["5", "5", "7", None]
    # Records written by an older canonical ("Eq(x, 5)") still vote with "5": math-verify decides, not the string.
    assert vote_keys(["x = 5", "5"], "math500", ["Eq(x, 5)", "5"]) == ["5", "5"]
    # math-verify's percent leniency is not transitive (25% = 25 and 25% = 0.25, but 25 != 0.25): the keys must
    # still not depend on sample order. The bigger group (25%, 0.25 as 1/4) is clustered first, its representative
    # the least spelling, "0.25", which 25 does not equal.
    expected = {"25\\%": "1/4", "0.25": "1/4", "25": "25"}
    for order in itertools.permutations(["25\\%", "0.25", "25"]):
        assert dict(zip(order, vote_keys(list(order), "math500"))) == expected
    assert vote_keys([" C", "C"], CHOICE) == ["C", "C"]
    assert vote_keys(["a", "a "], "hand_made") == ["a", "a"]  # a task scoring does not know: the stripped text


def _record(problem, sample, extracted, correct, task=MATH, canonical_form=None):
    return {
        "task": task,
        "problem_id": problem,
        "budget": 64,
        "sample": sample,
        "extracted": extracted,
        "canonical": canonical(extracted, task) if canonical_form is None else canonical_form,
        "correct": correct,
        "sampling": {"temperature": 0.8},
    }


def _curve(texts, gold, task, ks):
    from lprecover.evaluation.curves import parallel_curve
    from lprecover.evaluation.tasks import Problem

    records = []
    for i, text in enumerate(texts):
        extracted = extract_answer(text, task)
        records.append(_record("p", i, extracted, answers_match(extracted, gold, task), task))
    return parallel_curve(records, [Problem("p", "", gold)], len(texts), ks, 10, 0)


def test_maj_at_k_through_parallel_curve_votes_equal_answers_together():
    # 5 and x = 5 are one vote: k=1 is 2/3; k=2: {x=5, 5} wins (1), {x=5, 7} and {5, 7} tie (1/2 each) -> 2/3;
    # k=3: 5 wins 2-1. Voting on the strings "x = 5" and "5" gave 2/3 at k=3.
    curve = _curve(["\\boxed{x = 5}", "\\boxed{5}", "\\boxed{7}"], "5", MATH, [1, 2, 3])
    assert curve["maj_at_k"] == pytest.approx([2 / 3, 2 / 3, 1.0])
    # 25% and 0.25 vote together against 0.3 (gold 1/4).
    curve = _curve(["\\boxed{25\\%}", "\\boxed{0.25}", "\\boxed{0.3}"], "\\frac{1}{4}", "math500", [3])
    assert curve["maj_at_k"] == pytest.approx([1.0])
    # 10^3 and 1000 outvote 999 and 998 (one vote each) at k=4.
    curve = _curve(["\\boxed{999}", "\\boxed{10^3}", "\\boxed{998}", "\\boxed{1000}"], "1000", MATH, [4])
    assert curve["maj_at_k"] == pytest.approx([1.0])


@pytest.mark.parametrize(
    "answers, correct, k, expected",
    [
        # One answer whose samples disagree on correctness is worth their share, 1/2, whichever comes last.
        (["5", "5"], [True, False], 2, 0.5),
        (["5", "5"], [True, False], 1, 0.5),
        # a worth 1/2, b and "no answer" 0. k=2, 6 pairs: {a,a} 1/2; four a-with-other ties 1/4; {b,None} 0.
        (["a", "a", "b", None], [True, False, False, False], 2, (0.5 + 4 * 0.25) / 6),
        # k=3, 4 triples: {a,a,b} and {a,a,None} 1/2; two three-way ties (1/2 + 0 + 0)/3.
        (["a", "a", "b", None], [True, False, False, False], 3, (0.5 + 0.5 + 2 / 6) / 4),
        # x worth 1, y and z 0; of C(5,3) = 10 triples x wins 3, y wins 3, 4 are x-y-z ties worth 1/3.
        (["x", "y", "y", "x", "z"], [True, False, False, True, False], 3, (3 + 4 / 3) / 10),
    ],
)
def test_maj_at_k_is_the_same_for_every_order_of_the_samples(answers, correct, k, expected):
    pairs = list(zip(answers, correct))
    for order in itertools.permutations(pairs):
        assert maj_at_k([a for a, _ in order], [c for _, c in order], k) == pytest.approx(expected)


def test_sampled_maj_at_k_is_the_same_for_every_order_of_the_samples():
    # C(12, 6) = 924 subsets, 50 sampled: the sampled subsets must not follow the input order.
    answers, correct = ["a"] * 9 + ["b"] * 3, [True] * 9 + [False] * 3
    value = maj_at_k(answers, correct, 6, max_subsets=50)
    assert value == pytest.approx(1 - 42 / 924, abs=0.1)  # the exact value (test_scoring_metrics), estimated
    for shift in range(1, 12):
        rotated = answers[shift:] + answers[:shift], correct[shift:] + correct[:shift]
        assert maj_at_k(*rotated, 6, max_subsets=50) == value
    assert maj_at_k(answers[::-1], correct[::-1], 6, max_subsets=50) == value
