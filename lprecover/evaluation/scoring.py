"""Answer extraction and scoring: one scorer for every task, no paid judge.

Task kinds (a task file's ``kind``): ``exact`` (the answer text must equal the gold), ``math`` (GSM8K, MATH-500, AIME:
the answer is extracted from ``\\boxed{}``, an ``Answer:`` line, ``#### N`` or bold, then compared by math-verify),
and ``choice`` (GPQA, MMLU: a strictly extracted letter).

How a math or choice generation is read (``extract_answer``), each rule for a class of texts, not one example:

- Unicode first: minus signs (U+2212 and kin, an en dash before a digit), fullwidth and other scripts' digits and
  signs (NFKC), non-breaking and thin spaces, superscript digits (``x²`` -> ``x^{2}``), vulgar fractions.
- The forced cue: text after the last "Final Answer:" (the cue budget forcing appends, lprecover's and s1's) is read
  first; what comes before it counts only when nothing after it is an answer.
- Later supersedes earlier: the last complete ``\\boxed{}`` (a box cut off by the token cap is skipped, an earlier
  complete one still counts); an answer statement written after it wins when it starts with its value.
- Negations and corrections: in "20, not 18", "18 (not 20)", "not 7 but 8", "20? No, 18", "(C) is the answer;
  (A) and (B) are wrong" the asserted value wins and a negated one is never read. A statement that only negates
  ("The answer is not 7."), or offers two values ("7 or 8"), is ambiguous: no answer rather than a guess, so it
  counts in ``extraction_failure_rate``.
- Choice letters are read inside ``\\text``/``\\textbf``/``\\mathrm``/``\\mathbf``... in a box; a statement
  ("Answer: C", "(C) is the correct answer") beats a letter merely mentioned ("**C**", "(C)").
"""

import itertools
import logging
import re
import unicodedata
from fractions import Fraction
from functools import lru_cache

import sympy
from math_verify import parse, verify

from lprecover.evaluation.task_specs import choice_letters, find_spec, task_kind

# With timeouts off (needed outside the main thread) math-verify warns on every parse; the warning is ours to heed.
logging.getLogger("math_verify").setLevel(logging.ERROR)


# Unicode. Superscripts and vulgar fractions are rewritten before NFKC, which would flatten x² into x2.
_SUPERSCRIPT_RUN = re.compile("[⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻]+")
_SUPERSCRIPTS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁺⁻", "0123456789+-")
_VULGAR = re.compile(r"([0-9]+)?[ \u00a0]?([\u00bc-\u00be\u2150-\u215e])")
_MINUS = str.maketrans(dict.fromkeys("\u2212\u2796\ufe63\uff0d\u02d7", "-") | {"×": " \\times ", "÷": " \\div "})
_DOT_TIMES = re.compile(r"(?<=[0-9)}])\s*[·⋅∙]\s*(?=[0-9(\\])")  # "6·10²"; a middle dot between words stays
_SIGN_DASH = re.compile(r"(?<![\w.)\]}])[\u2010-\u2013](?=\.?[0-9])")  # a dash where a sign stands: "is –7"
_OTHER_DIGIT = re.compile(r"(?![0-9])\d")  # Arabic-Indic, Devanagari, ... digits NFKC leaves alone
_INVISIBLE = re.compile("[\u00ad\u200b-\u200d\u2060\ufeff]")

# Reading a statement. A correction marker restarts it; a negation cuts it; a turn ("but") follows a negation.
_NEGATION = re.compile(r"\b(?:not|never|rather\s+than|instead\s+of)\b|n['’]t\b", re.IGNORECASE)
_CORRECTION = re.compile(
    r"\b(?:no|nope)\s*[,.!;:—-]|\b(?:wait|actually|sorry|correction|oops|i\s+mean)\b", re.IGNORECASE
)
_TURN = re.compile(r"\bbut\b|;|\binstead\b|,\s*(?:it\s*(?:is|['’]s)|rather)\b", re.IGNORECASE)
_REASON = re.compile(r"\b(?:because|since|which|given|as\s+(?:shown|computed|we|it))\b", re.IGNORECASE)
# Math also drops an aside in parentheses, "18 (9 * 2)"; in a choice statement "(C)" is the answer, not an aside.
_REASON_OR_ASIDE = re.compile(_REASON.pattern + r"|\(", re.IGNORECASE)
_EITHER = re.compile(r"\bor\b", re.IGNORECASE)
_NEGATION_WORD = (  # words that rule out what follows them: "not (B)", "eliminate (A) and (B)"
    r"(?:\b(?:not|never|neither|nor|except|excluding|eliminat\w*|rul(?:e|es|ed|ing)\s+out|rather\s+than|instead\s+of)"
    r"|n['’]t(?:\s+be)?)"
)

_STATEMENT = re.compile(
    r"(?i:\banswers?\b(?:\s+(?:to|for)\s+[^.:\n]{0,40}?)?)\s*(?:\*\*)?\s*"
    r"(?:(?i:is(?=n['’]t|\b)|would\s+be|should\s+be|must\s+be|will\s+be)\s*[:：]?|[:：=])|####"
    r"|(?i:\b(?:actually|wait|sorry|correction|oops|no)\b[,.!:;]?\s*(?:it\s+is|it['’]s|it\s+should\s+be|make\s+that))\b"
)
_MATH_SUBJECT = re.compile(
    r"\s+(?i:is|must\s+be|should\s+be)\s+(?i:the|my|our)\s+(?i:(?:final|correct|right)\s+)?(?i:answer)\b"
)
_CLAUSE_END = re.compile(r"[.;!?:\n](?:\s|$)|,\s|\s(?:so|thus|hence|therefore)\s", re.IGNORECASE)
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_SPACES = re.compile(r"\s*")
_PLUS = re.compile(r"^\+(?=\s*[0-9])")
_WORDS = re.compile(r"[A-Za-z]{3,}")
# A value a statement starts with: only such a statement may overrule an earlier box ("\boxed{18}. The answer is
# consistent with 2 checks" must not read 2).
_VALUE_START = re.compile(
    r"\s*(?:\*\*|\$|\\\(|\\\[|\\boxed\{|\\text\{)*\s*(?:[-+]?\.?[0-9]|\\(?:d?frac|sqrt|pi|infty)|[a-zA-Z]\s*=|\(|\[|\\\{)"
)
# The forced answer cue: "Final Answer:" (lprecover's and s1's), however the model bolds it.
_FORCED_CUE = re.compile(r"(?i:final\s+answer)\s*(?:\*\*)?\s*[:：]")
_BOX = re.compile(r"\\(?:boxed|fbox)\s*\{")
_NEGATED_BEFORE = re.compile(_NEGATION_WORD + r"\s*(?:(?:is|be)\s+)?(?:\$+|\\\(|\\\[|\s)*$", re.IGNORECASE)
_NEGATED_AFTER = re.compile(
    r"\s*(?:\$+|\\\)|\\\])?\s*,?\s*(?:is|was)\s+(?:(?:clearly|definitely|obviously)\s+)?(?:wrong|incorrect|false|not\b)",
    re.IGNORECASE,
)

# Strict letter patterns. The letter is a capital that stands alone: not the article "A" or the pronoun "I"
# starting a sentence ("Answer: I think it is B", "The answer is a bit unclear") and not lower case.
_ALONE = r"(?![\w'’-])(?!\s+[a-z])"
_OPTION = r"(?:(?i:option|choice)\s+)?"
_LETTER_START = re.compile(
    r"\s*(?:\*\*|\$|\\boxed\{|\\(?:text|textbf|mathrm|mathbf)\{)*\s*"
    + _OPTION
    + r"(?:\\?\(|\[)?([A-J])(?:\\?\)|\])?(?![)\]]|\\\))(?:\*\*|\}|\$)*"
    + _ALONE
)
_LETTER_SUBJECT = re.compile(
    _OPTION + r"(?<![\w(])(?:\(([A-J])\)|([A-J]))\s+(?i:(?:is|must\s+be|should\s+be|seems\s+to\s+be)\s+"
    r"(?:(?:the|my|our)\s+)?(?:(?:final|correct|right|best)\s+)?(?:answer|option|choice)\b|is\s+(?:correct|right|true)\b)"
)
_LETTER_MENTIONS = (  # weaker than a box or a statement, strongest first
    re.compile(r"\*\*\s*\(?([A-J])\)?\s*\*\*"),
    re.compile(r"(?<![\w(])\(([A-J])\)(?![\w)])"),
)
_LETTER_NEGATED_BEFORE = re.compile(
    _NEGATION_WORD + r"\s+(?:(?i:option|choice|answer)s?\s+)?(?:(?:is|be)\s+)?"
    r"(?:\(?[A-J]\)?\s*(?:,|or|and|nor)\s*" + _OPTION + r")*(?:\\?\(|\[|\*\*)?\s*$",
    re.IGNORECASE,
)
_LETTER_NEGATED_AFTER = re.compile(
    r"\s*(?:\\?\)|\]|\*\*)?(?:\s*(?:,|and|or|&)\s*"
    + _OPTION
    + r"\(?[A-J]\)?)*\s*(?:is|are|was|were|seems?|looks?)?\s*"
    r"(?:(?:clearly|definitely|also|both|all|obviously)\s+)?"
    r"(?:wrong|incorrect|false|invalid|impossible|eliminated|excluded|ruled\s+out|not\b|fails?\b|can(?:not|['’]t)\s+be)",
    re.IGNORECASE,
)
_LETTER_RULED_OUT = re.compile(r"(?<![\w(])\(?([A-J])(?=\)?" + _LETTER_NEGATED_AFTER.pattern + ")", re.IGNORECASE)
_VALUE_RULED_OUT = re.compile(
    r"(?<![\w.])(-?[0-9][0-9,]*(?:\.[0-9]+)?)\$?\s+(?:is|was)\s+(?:(?:clearly|definitely|obviously|also)\s+)?"
    r"(?:wrong|incorrect|not\s+(?:the\s+|my\s+)?(?:answer|correct|right))\b",
    re.IGNORECASE,
)
_TEXT_COMMAND = re.compile(
    r"\\(?:text|textbf|textit|textrm|textsf|texttt|textup|mathrm|mathbf|mathit|mathsf|mathtt|mathbb|mathcal|emph"
    r"|operatorname|mbox|boldsymbol|bm)\s*\{([^{}]*)\}|\{\\(?:bf|rm|it|sf|tt)\s+([^{}]*)\}"
)
_BOX_LETTER = re.compile(_OPTION + r"(?:\(([A-J])\)|\[([A-J])\]|([A-J])" + _ALONE + ")")

_AMBIGUOUS = object()  # a reading that commits to no single answer: scored as no answer, never as a guess


def normalize_unicode(text: str) -> str:
    """``text`` with Unicode numbers and signs in ASCII, so that every pattern and math-verify can read them.

    Minus signs (U+2212, U+FE63, U+FF0D, ...) and an en/figure dash or hyphen standing where a sign stands
    (before a digit, not after a word: "is –7", not "pages 3–5") become "-"; NFKC folds fullwidth digits, signs,
    letters and colons and the non-breaking and thin spaces; digits of other scripts become 0-9; superscripts
    become exponents (``x²`` -> ``x^{2}``); vulgar fractions become ``\\frac`` (``1½`` -> ``\\frac{3}{2}``);
    zero-width characters and soft hyphens are dropped.
    """
    if text.isascii():
        return text
    text = _SUPERSCRIPT_RUN.sub(lambda m: "^{" + m[0].translate(_SUPERSCRIPTS) + "}", text)
    text = _VULGAR.sub(_vulgar_fraction, text)
    text = unicodedata.normalize("NFKC", text).translate(_MINUS)
    text = _OTHER_DIGIT.sub(lambda m: str(unicodedata.digit(m[0], 0)), text)
    text = _DOT_TIMES.sub(lambda _: " \\cdot ", text)  # a function: in a template "\\c" would be an escape
    return _INVISIBLE.sub("", _SIGN_DASH.sub("-", text))


def _vulgar_fraction(m: re.Match) -> str:
    value = Fraction(m[1] or 0) + Fraction(unicodedata.numeric(m[2])).limit_denominator(10)
    return f"\\frac{{{value.numerator}}}{{{value.denominator}}}"


def _boxes(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, content)`` of every complete ``\\boxed{...}`` / ``\\fbox{...}``, nested braces balanced.

    A box the token cap cut off (its braces never close) is not listed, so an earlier complete box still counts.
    """
    found = []
    for m in _BOX.finditer(text):
        depth = 1
        for j in range(m.end(), len(text)):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    found.append((m.start(), j + 1, text[m.end() : j].strip()))
                    break
    return found


def last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` (or ``\\fbox{...}``), with nested braces balanced."""
    boxes = _boxes(text)
    return boxes[-1][2] if boxes else None


def _clean(ans: str) -> str:
    ans = ans.strip().strip("*").strip()
    ans = ans.split("\n")[0].strip()
    return ans.rstrip(".").strip().strip("$").strip()


def _letters(task: str) -> str:
    return choice_letters(task)


def _math_value(candidate: str) -> str | None:
    """The mathematical answer in a fallback candidate (an ``Answer:`` line, bold text), or None if it holds none.

    Plain prose after "Final Answer:" (a cut-off sentence, "The") is not an answer: counting it as one would hide
    an extraction failure behind a wrong answer.
    """
    found = parse(candidate, parsing_timeout=None)
    return str(found[1]) if len(found) > 1 and str(found[1]).strip() else None


def _math_read(portion: str) -> str | None:
    """The value a piece of a statement holds, as math-verify reads it, or None."""
    portion = portion.replace("\\$", "")  # an escaped dollar is currency (\$5), not a math delimiter
    line = portion.strip().strip("*").strip().split("\n")[0].strip().rstrip(".").strip()
    if "\\" in line and line.count("{") == line.count("}"):  # unbalanced: a box cut off, "20 \boxed{"
        # math-verify reads LaTeX ("2 \times 10^{3}") only between delimiters: keep them, or add them to bare math.
        if (line.count("$") and not line.count("$") % 2) or "\\(" in line or "\\[" in line:
            return _math_value(line)
        if "$" not in line and not _WORDS.search(re.sub(r"\\[a-zA-Z]+", "", line)):
            return _math_value(f"${line}$")
    line = _clean(portion)
    # math-verify reads no number after a leading plus sign ("+5", a fullwidth "＋5" after NFKC).
    return _math_value(_PLUS.sub("", line)) if line else None


def _letter_read(portion: str, letters: str) -> str | None:
    m = _LETTER_START.match(portion)
    return m[1] if m and m[1] in letters else None


def _asserted(statement: str, read, reasons: re.Pattern = _REASON):
    """What a statement asserts, read by ``read``: a value, ``_AMBIGUOUS``, or None when it states none.

    "18 because ...", "18, which is actually less than 20": a reason after the value is dropped (with ``reasons``
    = ``_REASON_OR_ASIDE``, a parenthesis too: "18 (9 * 2)", "18 (not 20)"). "20? No, 18" and "20, actually 18":
    the text after the last correction marker replaces what came before. "20, not 18", "20 rather than 18": the
    value before a negation wins. "not 7 but 8", "not 7; it is 8": the value after the turn wins. "not 7" alone,
    "7 or 8", or a correction followed by nothing are ambiguous.
    """

    def without_reason(text: str) -> str:
        for cut in reasons.finditer(text):
            if read(text[: cut.start()]) is not None:
                return text[: cut.start()]
        return text

    kept = without_reason(statement)
    corrections = list(_CORRECTION.finditer(kept))  # a marker inside a dropped reason corrects nothing
    if corrections:
        statement = without_reason(kept[corrections[-1].end() :])
    else:
        statement = kept
    negation = _NEGATION.search(statement)
    if negation is None:
        parts = [v for v in map(read, _EITHER.split(statement)) if v is not None]
        if len(set(parts)) > 1:
            return _AMBIGUOUS  # "7 or 8": two answers are none
        value = read(statement)
        return _AMBIGUOUS if value is None and corrections else value
    value = read(statement[: negation.start()])
    if value is not None:
        return value
    turn = _TURN.search(statement, negation.end())
    if turn and (value := read(statement[turn.end() :])) is not None:
        return value
    # Only a negation: ambiguous when it negates a value ("not 7"), no statement at all when it does not ("The
    # answer is not obvious").
    return _AMBIGUOUS if read(statement[negation.end() :]) is not None or corrections else None


def _statements(text: str, kind: str, letters: str, read):
    """``(position, what it asserts, whether it starts with its value)`` of the answer statements in ``text``,
    latest first, each read only when the caller gets to it (reading asks math-verify, a few ms a time).

    Forward statements ("Answer: X", "the answer is X", "#### X") run from the cue to the end of the line or the
    next statement; subject-first ones ("X is the answer", "(C) is correct") take the value before them.
    """
    starts = list(_STATEMENT.finditer(text))
    subject = _LETTER_SUBJECT if kind == "choice" else _MATH_SUBJECT
    found = [(m.start(), i, None) for i, m in enumerate(starts)] + [(m.start(), -1, m) for m in subject.finditer(text)]
    for position, i, m in sorted(found, key=lambda f: f[0], reverse=True):
        if m is None:
            first = _SPACES.match(text, starts[i].end()).end()  # "Final Answer:\n18": the value may be a line below
            end = text.find("\n", first)
            end = len(text) if end < 0 else end
            if i + 1 < len(starts):
                end = min(end, starts[i + 1].start())
            body = text[starts[i].end() : end]
            value = _asserted(body, read, _REASON_OR_ASIDE if kind == "math" else _REASON)
            if value is not None:
                clean = value is _AMBIGUOUS or bool(
                    _LETTER_START.match(body) if kind == "choice" else _VALUE_START.match(body)
                )
                yield position, value, clean
        elif kind == "choice":
            letter = m[1] or m[2]
            if letter in letters and not _letter_negated(text, m.start(1) if m[1] else m.start(2), m.end(0)):
                yield position, letter, True
        else:
            clause = text[max(0, position - 80) : position]
            ends = list(_CLAUSE_END.finditer(clause))
            value = read(clause[ends[-1].end() :] if ends else clause)
            if value is not None:
                yield position, value, True


def _letter_negated(text: str, start: int, end: int) -> bool:
    """Whether the letter at ``text[start:end]`` is named to be ruled out: "not (B)", "(A) and (B) are wrong"."""
    before = text[max(0, start - 80) : start]
    before = re.split(r"[.;!?:\n]|\bbut\b", before)[-1]
    return bool(_LETTER_NEGATED_BEFORE.search(before) or _LETTER_NEGATED_AFTER.match(text, end))


def _box_letter(content: str, letters: str) -> str | None:
    """The choice letter a box holds: ``C``, ``(C)``, ``\\textbf{C}``, ``\\mathrm{(C)}``, ``\\text{C. 42 m}``."""
    previous = None
    while previous != content:
        previous, content = content, _TEXT_COMMAND.sub(lambda m: m[1] if m[1] is not None else m[2], content)
    m = _BOX_LETTER.match(content.strip().strip("$*").strip())
    letter = m and (m[1] or m[2] or m[3])
    return letter if letter and letter in letters else None


def _ruled_out(text: str, kind: str, letters: str) -> list[tuple[int, str]]:
    """``(position, value)`` of every value ``text`` calls wrong: "7 is wrong", "(A) and (B) are incorrect"."""
    if kind == "choice":
        return [(m.start(1), m[1]) for m in _LETTER_RULED_OUT.finditer(text) if m[1] in letters]
    return [(m.start(1), m[1].replace(",", "")) for m in _VALUE_RULED_OUT.finditer(text)]


def _read_segment(text: str, kind: str, letters: str):
    """The answer ``text`` commits to (a value, ``_AMBIGUOUS``, or None), later writing superseding earlier."""
    read = _math_read if kind == "math" else lambda p: _letter_read(p, letters)
    ruled = _ruled_out(text, kind, letters)

    def committed(value, position: int):
        # "The answer is 7. Hmm, 7 is wrong." retracts 7 and names nothing in its place.
        plain = value if value is _AMBIGUOUS else value.replace(",", "").strip().strip("$").strip()
        return _AMBIGUOUS if any(p > position and v == plain for p, v in ruled) else value

    kept, negated = [], []  # complete boxes as (start, end, value)
    for start, end, content in _boxes(text):
        if kind == "choice":
            value = _box_letter(content, letters)
        elif _NEGATION.search(content) or _CORRECTION.search(content) or _EITHER.search(content):
            # "\boxed{20 \text{ (not 18)}}", "\boxed{7 \text{ or } 8}"
            value = _asserted(content, read, _REASON_OR_ASIDE)
        else:
            value = content or None
        if value is None:
            continue
        ruled_out = _NEGATED_BEFORE.search(text[max(0, start - 40) : start]) or _NEGATED_AFTER.match(text, end)
        (negated if ruled_out or value is _AMBIGUOUS else kept).append((start, end, value))
    box = kept[-1] if kept else None
    # "\boxed{8}, not \boxed{7}" keeps 8; a later negation of the kept value ("... it is not \boxed{8}") retracts
    # it, and negated boxes alone say only what the answer is not.
    if (box and any(n[0] > box[0] and n[2] == box[2] for n in negated)) or (negated and not kept):
        box = (*negated[-1][:2], _AMBIGUOUS)
    for position, value, clean in _statements(text, kind, letters, read):
        if box is not None and position < box[1]:
            break  # a statement before the last box: the box is the later word
        if box is None or clean:
            return committed(value, position)
    if box is not None:
        return committed(box[2], box[0])
    if kind == "choice":
        for pattern in _LETTER_MENTIONS:
            found = [m for m in pattern.finditer(text) if m[1] in letters and not _letter_negated(text, *m.span(1))]
            if found:
                return committed(found[-1][1], found[-1].start())
        return None
    for m in reversed(list(_BOLD.finditer(text))):
        if len(_WORDS.findall(re.sub(r"\\[a-zA-Z]+", "", m[1]))) > 1:
            continue  # a bold heading ("**Step 1: Understand**"), not a bold answer ("**42 eggs**")
        value = _asserted(m[1], read, _REASON_OR_ASIDE)
        if value is not None:
            return committed(value, m.start())
    return None


def extract_answer(text: str, task: str) -> str | None:
    """The final answer a generation commits to, or ``None`` when it commits to none (an extraction failure).

    Math: the last complete ``\\boxed{}`` unless a later answer statement starting with its value overrules it;
    else the last ``#### N``, ``Answer: ...`` / ``the answer is ...`` / ``N is the answer`` statement or bold text
    that holds a mathematical value (read by math-verify). Choice: the last complete box holding a letter, else the
    last statement ("Answer: C", "(C) is correct"), else the last ``**C**``, else the last ``(C)``, among the
    letters the task offers and never a letter ruled out ("not (B)", "(A) and (B) are wrong"). Both read the text
    after the last "Final Answer:" cue first, after normalising Unicode; an ambiguous reading is None (see the
    module docstring). Exact: the whole text.
    """
    kind = task_kind(task)
    if kind == "exact":
        ans = text.strip()
        return ans or None
    text = normalize_unicode(text)
    letters = _letters(task)
    for cue in reversed(list(_FORCED_CUE.finditer(text))):
        value = _read_segment(text[cue.start() :], kind, letters)
        if value is not None:
            return None if value is _AMBIGUOUS else value
        text = text[: cue.start()]  # nothing after the cue: the text before it is what the model committed to
    value = _read_segment(text, kind, letters)
    return None if value is _AMBIGUOUS else value


@lru_cache(maxsize=65536)
def _math_parse(answer: str):
    # parsing_timeout=None: math-verify's default timeout uses signals, which only work in the main thread.
    # Cached: a problem's samples repeat their answers, and parsing dominates the cost of voting.
    return parse(f"${normalize_unicode(answer)}$", parsing_timeout=None)


def _simplest(value):
    """``value`` in one form per number: ``x = 5`` -> 5, ``10^3`` -> 1000, ``25\\%`` and 0.25 -> 1/4, sqrt(18) ->
    3*sqrt(2); anything else as math-verify parsed it."""
    if isinstance(value, sympy.Eq) and isinstance(value.lhs, sympy.Symbol):
        value = value.rhs  # "x = 5" states 5, as math-verify's verify reads it
    if not isinstance(value, sympy.Expr) or not value.is_number:
        return value
    try:
        if not value.is_Number and _cheap_to_simplify(value):
            value = sympy.simplify(value)
        if value.is_Float:  # 42, 42.0 and 84/2 are one vote; 0.5 and 1/2 too
            value = sympy.nsimplify(sympy.Float(value, 12), rational=True)
    except (TypeError, ValueError, AttributeError, RecursionError):
        pass
    return value


def _cheap_to_simplify(value) -> bool:
    """Whether simplifying ``value`` stays cheap: a short expression, no huge power or factorial to evaluate
    (math-verify leaves ``2^{10^{10}}`` unevaluated; evaluating it would take gigabytes)."""
    if sympy.count_ops(value) > 40:
        return False
    powers = (p.exp for p in value.atoms(sympy.Pow))
    factorials = (f.args[0] for f in value.atoms(sympy.factorial))
    return all(not (e.is_number and abs(e) > 1000) for e in itertools.chain(powers, factorials))


def canonical(answer: str | None, task: str) -> str | None:
    """A canonical form for majority voting: equal answers written differently share it where it can tell.

    Math: math-verify's parse, simplified (``_simplest``): ``x = 5`` and ``5``, ``10^3`` and ``1000``, ``25\\%``,
    ``1/4`` and ``0.25`` each share one form. Forms math-verify holds equal yet cannot share a form (its percent
    leniency makes ``25\\%`` equal both ``25`` and ``0.25``) are merged in the vote by ``vote_keys``. Choice: the
    letter. Exact: the stripped text.
    """
    if answer is None:
        return None
    kind = task_kind(task)
    if kind == "choice":
        return answer.strip().upper()
    if kind != "math":
        return answer.strip()
    parsed = _math_parse(answer)
    if not parsed:
        return answer.strip()
    return str(_simplest(parsed[0]))


_INTEGER = re.compile(r"-?[0-9]+")


def vote_keys(answers: list[str | None], task: str, keys: list[str | None] | None = None) -> list[str | None]:
    """The key each answer votes under in maj@k: answers that math-verify holds equal share one key.

    Math: answers are grouped by canonical form (identical forms are one answer without asking math-verify); the
    groups, most frequent first and then by form, each join the first cluster whose representative math-verify
    holds equal to them (either way round), or found their own. A cluster's key is its representative's form.
    math-verify equality is not transitive (``25\\%`` equals both ``25`` and ``0.25``), so comparing with
    representatives in a fixed order is what makes the keys a function of the answers and not of their order; it
    costs one ``verify`` per (group, cluster), and none between two distinct integers, which are never equal.
    Exact and choice tasks, and task names scoring does not know (hand-made records), vote on the canonical form.

    Args:
        answers: each sample's extracted answer; ``None`` (no answer) keeps the key ``None``.
        keys: their canonical forms where already computed (records store them); None computes them.
    """
    known = find_spec(task) is not None
    if keys is None:
        keys = [canonical(a, task) for a in answers] if known else [None] * len(answers)
    keys = [None if a is None else (a.strip() if k is None else k) for a, k in zip(answers, keys)]
    if not known or task_kind(task) != "math":
        return keys
    members: dict[str, list[str]] = {}
    for answer, key in zip(answers, keys):
        if key is not None:
            members.setdefault(key, []).append(answer)
    label, representatives = {}, []
    for key in sorted(members, key=lambda k: (-len(members[k]), k)):
        parsed = _math_parse(min(members[key]))  # a fixed member: not whichever sample came first
        for rep_key, rep in representatives:
            if _INTEGER.fullmatch(key) and _INTEGER.fullmatch(rep_key):
                continue
            if (
                parsed
                and rep
                and (verify(rep, parsed, timeout_seconds=None) or verify(parsed, rep, timeout_seconds=None))
            ):
                label[key] = rep_key
                break
        else:
            representatives.append((key, parsed))
            label[key] = key
    return [None if k is None else label[k] for k in keys]


def answers_match(answer: str | None, gold: str, task: str) -> bool:
    """Compare an extracted answer with the gold answer."""
    if answer is None:
        return False
    kind = task_kind(task)
    if kind == "exact":
        return answer.strip() == gold.strip()
    if kind == "choice":
        return answer.upper() == gold.strip().upper()
    gold_parsed = _math_parse(gold)
    return bool(gold_parsed) and verify(gold_parsed, _math_parse(answer), timeout_seconds=None)


def is_correct(text: str, gold: str, task: str) -> bool:
    """Whether ``text`` (a generation's answer part) states the gold answer."""
    return answers_match(extract_answer(text, task), gold, task)
