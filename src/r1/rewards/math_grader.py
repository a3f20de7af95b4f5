"""Math answer grading: extract the final answer from a completion, then check it against the gold with math-verify.

One grader serves the RL accuracy reward and evaluation (through ``Task.grade``), so a reward of 1 in training
means exactly what a correct answer means in a report.

Pipeline: ``grade_math(completion, gold)`` = ``extract_answer(completion)`` → ``verify_math(gold, answer)``.

- **Extraction** (:func:`extract_answer`) reads only the *final region* of a completion (:func:`final_region`):
  the text after the last ``</think>``; nothing if a ``<think>`` was never closed (an answer only inside the
  reasoning is not an answer); the whole text if there are no think tags. In it, an ordered list of extractors
  (``EXTRACTORS``, the first that finds something wins) follows the prompt formats: the last ``<answer>…</answer>``
  block (R1-Zero template, arXiv 2501.12948 Table 1), else the last balanced ``\\boxed{…}``, else — R1 format only,
  i.e. after ``</think>`` — "the answer is X" / "Final answer: X", else a short bare line after ``</think>``, else —
  plain completions only, without think tags — a closing sentence "So the final answer is $X$." whose X is math
  and after which nothing follows (:func:`extract_answer_sentence`: a hedge or a revision after it gives nothing).
  Add an extractor by appending a ``fn(completion) -> str | None`` to the list.
- **Conflicting answers.** A later answer replaces an earlier one (``\\boxed{1}. Wait: \\boxed{2}`` → 2; the last
  ``<answer>`` block). Answers stated *together* — boxes joined only by connectives (``\\boxed{3} or \\boxed{4}``,
  ``x=\\boxed{2}, x=\\boxed{3}``) or alternatives in one answer (``3 or 4``, ``3 and 4``, ``3 \\lor 4``) — become
  one set answer ``"3, 4"``, which math-verify compares with the gold as a whole: it never matches a single-valued
  gold (math-verify alone accepts ``3 or 4`` for the gold 4), it does match a gold that is that set, and equal
  values count once (a MATH solution's ``\\boxed{15\\frac{39}{40}}, or \\boxed{\\frac{639}{40}}`` still matches ``\\frac{639}{40}``).
- **Equivalence** is math-verify's ``parse`` + ``verify`` (huggingface/Math-Verify). The gold is wrapped as ``$gold$``
  (a bare string does not parse reliably: ``parse(r"\\left( 3, \\frac{\\pi}{2} \\right)")`` gives ``3``). The
  prediction is read according to what it looks like (:func:`_readings`): math-verify finds the math itself in text
  with ``$`` or ``\\boxed``; a math expression is wrapped in ``$…$`` (read bare only if that does not parse, because
  the bare reading takes the last number: ``\\frac 12`` → 12, ``1, 2`` → 2, ``3 \\pm 2\\sqrt{2}`` → 2); prose
  such as ``18 dollars`` is read bare (wrapped, it becomes 18·a·d·l²·o·r·s) and also wrapped, and either may match.
  On MATH-500 with each gold answer put in ``<answer>`` tags this accepts 500/500 and, with the answers shuffled
  across problems, accepts no pair of different answers; "bare, then wrapped if the bare parse is empty" accepts
  442/500 and two wrong pairs (``3 \\pm 2 \\sqrt{2}`` for 2, ``y = 2x + 3`` for 3).
- **Hedges math-verify accepts.** Against a single-valued gold, math-verify keeps one side of most separators it
  does not know (``3 \\to 4``, ``3 \\sim 4``, ``3 \\\\ 4``, ``3 hence 4`` → 4; ``3 ? 4`` → 3; ``3 4`` → 7) and
  reads an equation as its right side (``5 = 4`` → 4) and text with a word as prose, taking one number out of it
  (``3 \\cdot 4 \\text{ cm}`` → 4). So an answer that states two values with such a token, a connective word or
  any word beside them (:func:`_states_several_values`), a false equation with a number on the left, a chained or
  compound statement (``x = 3 = 4``) and a wrong approximation (``3 \\approx 4``) are not credited. One value is
  credited with a unit in text at its end, graded without it (:func:`_without_unit`:
  ``\\frac{9}{2}\\text{ cm}^2``, ``1\\frac{1}{2}\\text{ hours}``), and with a decimal of its value after
  ``\\approx`` (:func:`_approximates`: ``\\sqrt{2} \\approx 1.414`` is graded as ``\\sqrt{2}``); a whole
  ``\\frac``, ``\\sqrt``, ``\\binom`` or ``1.5 \\times 10^{3}`` is one value, not its digits. ``x = 4``,
  ``2 + 2 = 4`` are credited, and tokens the gold itself uses (``\\cup`` of an interval answer) are allowed.
- **Speed** (same verdicts): two plain integers are compared as integers; a prediction that is the gold's own text
  is accepted once the gold parses; parses are cached by text (:func:`_parse_prediction`), since the same answer
  recurs across samples and problems. :func:`equivalent_math_answers` (majority voting only) also rules out two
  small constants with different values without a math-verify call. A pathological prediction that is cheap to
  recognise (:func:`_too_costly`: a numeric power tower, a 6-digit exponent, a huge factorial, a bracket to a
  3-digit power, nesting deeper than :data:`MAX_NESTING`, more than :data:`MAX_ANSWER_CHARS` characters) scores 0
  in microseconds instead of costing the whole timeout.
- **Timeout**: math-verify bounds each ``parse`` and each comparison with ``signal.alarm`` (whole seconds, main
  thread only). ``verify_math`` runs those steps against one deadline of ``timeout_s`` and stops when it has passed,
  so a call returns within about ``timeout_s + 1`` s. Off the main thread, where signals cannot be used, the call is
  sent to a helper process (an :class:`r1.workers.ChildProcess`, one per calling thread, started on first use in
  ~1-2 s) whose main thread runs the same code; if it does not answer in time it is killed and the next call starts a
  fresh one. A worker thread with ``join(timeout)`` does not work: sympy evaluating a power tower such as
  ``9^{9^{9^{9}}}`` sits in long C calls that hold the GIL, and such a join did not return within 30 s here. Without
  ``SIGALRM`` (Windows) there is no timeout. Inside a reward batch's budget
  (:meth:`r1.rewards.base.CompositeReward.budget`) the timeout is at most what is left of it.

Deliberately left out: other prose in a plain completion ("the answer is 4 because ..." is not read), numeric
tolerance beyond math-verify's rounding (Minerva's official grader allows some), and unit conversion.
Multiple-choice letters are extracted by ``r1.tasks.gpqa``.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import signal
import threading
import time
from typing import Callable, Optional

from r1.rewards.base import time_left
from r1.rewards.rules import DEFAULT_EOS_TEXTS
from r1.workers import ChildError, ChildProcess, serve

logger = logging.getLogger(__name__)

Extractor = Callable[[str], Optional[str]]

_ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_BOXED_OPEN = re.compile(r"\\(?:boxed|fbox)\s*\{")
# What may stand between two boxes that state one answer together: math-mode and spacing marks, punctuation,
# "or"/"and", line breaks and alignment of an align block, and a variable being assigned ("x = ").
_CONNECTIVES = re.compile(
    r"\$|\\[,;:! ]|\\q?quad|\\\\|&|\\[\[\]()]|\\(?:begin|end)\{[A-Za-z*]+\}"
    r"|\\(?:text|textrm|mathrm)\s*\{\s*(?:or|and)?\s*\}|\b(?:or|and)\b|[,;.:]"
    r"|[A-Za-z](?:_\{?\w+\}?)?\s*=",
    re.IGNORECASE,
)
# Alternatives or a list stated in one answer: "or"/"and" as words or in \text{}, and the logic symbols (math-verify
# reads "3 \lor 4" as 4 and "3 and 4" in prose as 4).
_OR = re.compile(
    r"\s*(?:\\q?quad\s*)?(?:\\(?:text|textrm|mathrm)\s*\{\s*(?:or|and)\s*\}|\b(?:or|and)\b"
    r"|\\(?:lor|vee|land|wedge)(?![A-Za-z]))(?:\s*\\q?quad)?\s*"
)
_CANON_DROP = re.compile(r"\s+|\$|\\left(?![a-z])|\\right(?![a-z])|\\[!,;: ]")
_CANON_FRAC = re.compile(r"\\[dt]frac")
_ANSWER_PHRASE = re.compile(r"(?:\bthe\s+)?(?:\bfinal\s+)?\banswer\b\**\s*(?:is\b|:|=)\s*:?", re.IGNORECASE)
_TAG = re.compile(r"</?[A-Za-z_]+>")
_MATHY = re.compile(r"[0-9\\$]")
_SENTENCE_END = re.compile(r"\.(?=\s|$)")
# One whole math span: $…$, $$…$$, \(…\), \[…\] (no $ inside a $-span).
_MATH_SPAN = re.compile(r"\$\$([^$]+)\$\$|\$([^$]+)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", re.DOTALL)
_INTEGER = re.compile(r"\s*[-+]?\d{1,18}\s*")
_SCIENTIFIC = re.compile(r"\s*([-+]?(?:\d+\.?\d*|\.\d+))\s*[eE]\s*([-+]?\d+)\s*")
_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")
_LATEX_NAMES = re.compile(r"\\(?:begin|end)\{[^}]*\}|\\[A-Za-z]+")  # \begin{pmatrix}, \frac, \text, ...
# A word: 2+ letters standing alone (not glued to digits or operators, as the variables of 2RC+R+C are).
_WORD = re.compile(r"(?:^|(?<=[\s{(,;:]))[A-Za-z]{2,}(?=$|[\s}),.;:!?])")

#: Seconds a helper process may take to start (Python + import of sympy/math-verify), checked once per helper.
_HELPER_START_TIMEOUT_S = 60.0
#: Extra seconds a helper gets beyond ``timeout_s`` before it is killed (IPC, rounding to whole-second alarms).
_HELPER_GRACE_S = 2.0
#: Timeout (s) for parsing a gold answer: golds come from trusted data files and are parsed once (cached).
_GOLD_PARSE_TIMEOUT_S = 5


# ---------------------------------------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------------------------------------


def final_region(completion: str) -> str:
    """The part of a completion that may state the final answer.

    The text after the last ``</think>`` (R1 and R1-Zero formats); ``""`` when a ``<think>`` was opened and never
    closed (the reasoning was cut off, so any answer in it is only a thought); the whole completion when it has no
    think tags. A ``<think>`` re-opened after the last ``</think>`` ends the region. Trailing end-of-sequence texts
    (``<|im_end|>``, ``</s>``, ...) are dropped.

    Examples: ``"<think>\\boxed{1}</think> \\boxed{2}"`` → ``" \\boxed{2}"``; ``"<think>so \\boxed{1}"`` → ``""``.
    """
    head, sep, tail = completion.rpartition("</think>")
    if sep:
        region = tail
    elif "<think>" in completion:
        return ""
    else:
        region = completion
    region = region.split("<think>", 1)[0]
    stripped = region.rstrip()
    for eos in DEFAULT_EOS_TEXTS:
        if stripped.endswith(eos):
            return stripped[: -len(eos)]
    return region


def _find_boxes(text: str) -> list[tuple[int, int, str]]:
    """Complete, non-nested ``\\boxed{…}`` / ``\\fbox{…}`` of ``text``: ``(start, end, content)`` left to right.

    A box whose braces never close (a truncated completion) is skipped; a box inside another box is part of the
    outer one's content.
    """
    boxes, pos = [], 0
    while True:
        m = _BOXED_OPEN.search(text, pos)
        if m is None:
            return boxes
        content = _balanced_content(text, m.end())
        if content is None:
            pos = m.end()
            continue
        end = m.end() + len(content) + 1
        boxes.append((m.start(), end, content.strip()))
        pos = end


def _canonical(answer: str) -> str:
    """A spelling-insensitive key for "is this the same answer text": no spaces, ``$``, ``\\left``/``\\right``,
    thin spaces or trailing period; ``\\dfrac``/``\\tfrac`` → ``\\frac``."""
    key = _CANON_DROP.sub("", answer)
    key = _CANON_FRAC.sub(r"\\frac", key)
    return key.rstrip(".")


def _join_answers(answers: list[str]) -> str | None:
    """One answer from several stated together: the answer itself if they are all the same text, else the set
    ``"a, b"`` (math-verify compares it with the gold as a whole, so it never matches a single-valued gold)."""
    answers = [a for a in answers if a]
    if not answers:
        return None
    distinct: dict[str, str] = {}
    for a in answers:
        distinct.setdefault(_canonical(a), a)
    if len(distinct) == 1:
        return answers[-1]
    return ", ".join(distinct.values())


def _final_box_group(text: str) -> str | None:
    """The final answer stated in boxes: the last complete, non-empty box and the boxes joined to it by connectives
    only (``$\\boxed{2}$ or $\\boxed{3}$``, ``x=\\boxed{2}, x=\\boxed{3}``), combined by :func:`_join_answers`.
    Boxes separated by other words (``\\boxed{1}. Wait, no: \\boxed{2}``) are revisions: the last one counts."""
    boxes = [b for b in _find_boxes(text) if b[2]]
    if not boxes:
        return None
    group = [boxes[-1]]
    for prev in reversed(boxes[:-1]):
        between = text[prev[1] : group[0][0]]
        if _CONNECTIVES.sub("", between).strip():
            break
        group.insert(0, prev)
    return _join_answers([_split_alternatives(b[2]) for b in group])


def _split_alternatives(answer: str) -> str:
    """``3 or 4`` / ``x=3 \\text{ or } x=4`` / ``3 \\lor 4`` / ``3 and 4`` → ``3, 4``: alternatives (and a list)
    are one set answer, so a hedge between a right and a wrong value does not match a single gold (math-verify alone
    accepts ``3 or 4`` and ``3 \\lor 4`` for the gold 4)."""
    return _OR.sub(", ", answer).strip()


def extract_answer_tag(completion: str) -> str | None:
    """Content of the last ``<answer>…</answer>`` block of the final region, stripped; None if none or empty.

    A later block replaces an earlier one (the strict format reward asks for exactly one). Inside the block, one box
    is kept as is (math-verify reads it); several boxes are combined as in :func:`extract_last_boxed`; ``A or B`` is
    the set ``A, B``. Example: ``"<think>2+2</think> <answer>3</answer><answer> 4 </answer>"`` → ``"4"``.
    """
    blocks = _ANSWER_BLOCK.findall(final_region(completion))
    if not blocks:
        return None
    block = blocks[-1].strip()
    if not block:
        return None
    if len(_find_boxes(block)) > 1:
        return _final_box_group(block)
    return _split_alternatives(block) or None


def extract_last_boxed(completion: str) -> str | None:
    """The final boxed answer of the final region (see :func:`final_region`): the content of the last complete
    ``\\boxed{…}``, or the set of the boxes stated together with it.

    A box inside closed reasoning does not count; an unbalanced (truncated) or empty box is skipped in favour of an
    earlier complete one; boxes joined only by connectives (``,``, ``or``, ``and``, ``$``, ``x =``) are one answer,
    so ``\\boxed{3} or \\boxed{4}`` gives ``3, 4`` (a set, never equal to a single gold), while equal boxes count once
    (``\\boxed{2}`` … ``\\boxed{2}``). Example: ``r"so \\boxed{\\frac{1}{2}}."`` → ``r"\\frac{1}{2}"``.
    """
    return _final_box_group(final_region(completion))


def extract_answer_phrase(completion: str) -> str | None:
    """R1 format only (reasoning closed by ``</think>``): the answer stated in words after the reasoning, e.g.
    ``"the answer is 42."``, ``"Final answer: $x=3$"``, ``"**Answer:** 7"``; the last such phrase counts.

    The answer runs to the end of its sentence (a period followed by a space or the end) or line; if the phrase ends
    its line (``"The final answer is:"``), the next non-empty line is the answer. Without ``</think>`` this extractor
    finds nothing: a plain completion's prose is not read (the R1-Zero template asks for tags, the R1 summary ends
    its reasoning with ``</think>``).
    """
    if "</think>" not in completion:
        return None
    region = final_region(completion)
    matches = list(_ANSWER_PHRASE.finditer(region))
    if not matches:
        return None
    rest = region[matches[-1].end() :]
    lines = rest.split("\n")
    first = lines[0].strip()
    if not first.strip("*:. "):
        first = next((ln.strip() for ln in lines[1:] if ln.strip()), "")
    answer = _SENTENCE_END.split(first, 1)[0]
    answer = answer.strip().strip("*").strip().rstrip(".").strip()
    return _split_alternatives(answer) or None


def extract_after_think(completion: str) -> str | None:
    """R1 format only: the whole text after ``</think>`` when it is one short line (at most
    :data:`MAX_BARE_ANSWER_CHARS` characters) that is math, not prose: it has a digit, a LaTeX command or ``$``, and
    no word of two letters outside LaTeX commands unless the math is in ``$…$``. ``"<think>…</think>\\n\\n42"`` → ``"42"``; ``"…</think> I am done"``
    → None; ``"…</think> So we get $x=5$."`` → ``"So we get $x=5$"`` (math-verify reads the ``$…$``)."""
    if "</think>" not in completion:
        return None
    tail = final_region(completion).strip()
    if not tail or "\n" in tail or len(tail) > MAX_BARE_ANSWER_CHARS:
        return None
    if (_is_prose(tail) and not _is_delimited(tail)) or _TAG.search(tail) or not _MATHY.search(tail):
        return None  # prose, an (empty) <answer> block, or no digit, LaTeX or $ at all: not a bare answer
    return _split_alternatives(tail.rstrip(".").strip()) or None


def extract_answer_sentence(completion: str) -> str | None:
    """Plain completions only (no think tags): the answer stated by a closing sentence "the (final) answer is X" /
    "Final answer: X", e.g. ``"... So the final answer is $4$."`` → ``"4"``.

    Stricter than :func:`extract_answer_phrase`, since a plain completion's prose is also its reasoning: the sentence
    must be the last thing in the completion (after it only whitespace, ``*``, ``.``), and X must be one math span
    (``$…$``, ``\\(…\\)``, ``\\[…\\]``, optionally bold ``**…**``) or a bare math expression without words. So
    ``"the answer is 4. Or maybe 5."``, ``"the answer is not 4"``, ``"the answer is 4 or 5"`` and ``"the answer is 4,
    I think"`` give None (no credit for a hedge), and a later "the answer is" replaces an earlier one.
    """
    if "<think>" in completion or "</think>" in completion:
        return None  # the R1 formats have their own extractors; an unclosed <think> has no final answer
    region = final_region(completion).rstrip()
    matches = list(_ANSWER_PHRASE.finditer(region))
    if not matches:
        return None
    rest = region[matches[-1].end() :].lstrip(" \t*:")
    answer = _SENTENCE_END.split(rest, 1)[0].split("\n", 1)[0]
    if rest[len(answer) :].strip(" \t\n*."):
        return None  # more text after the answer sentence: a revision or a hedge may follow
    answer = answer.strip().strip("*").strip().rstrip(".").strip()
    m = _MATH_SPAN.fullmatch(answer)
    if m is not None:
        answer = next(g for g in m.groups() if g is not None).strip()
    elif _is_prose(answer) or _UNESCAPED_DOLLAR.search(answer) or not _MATHY.search(answer):
        return None  # words around the math, several math spans, or no math at all
    return _split_alternatives(answer) or None


#: Longest text after ``</think>`` that :func:`extract_after_think` takes as a bare answer.
MAX_BARE_ANSWER_CHARS = 80

#: Extractors tried in order by :func:`extract_answer`; the first non-None result wins.
EXTRACTORS: list[Extractor] = [
    extract_answer_tag,
    extract_last_boxed,
    extract_answer_phrase,
    extract_after_think,
    extract_answer_sentence,
]


def extract_answer(completion: str, extractors: list[Extractor] | None = None) -> str | None:
    """The final answer of a completion, or None if it states none.

    Tries :data:`EXTRACTORS` in order (``<answer>`` block, boxed, "the answer is", bare text after ``</think>``, a
    plain completion's closing answer sentence), each reading only :func:`final_region`. Several answers stated together become one set answer (``"3, 4"``),
    which does not match a single-valued gold, so hedging is never rewarded.

    Args:
        completion: the generated text (after the prompt).
        extractors: override of :data:`EXTRACTORS` (tried in order).
    Returns:
        The answer text (not yet normalized), e.g. ``r"\\dfrac{1}{2}"``, or None.
    """
    for extract in EXTRACTORS if extractors is None else extractors:
        answer = extract(completion)
        if answer is not None:
            return answer
    return None


def _balanced_content(text: str, start: int) -> str | None:
    """The text from ``start`` up to the ``}`` that closes the ``{`` just before ``start``; None if unbalanced."""
    depth, i = 1, start
    while i < len(text):
        c = text[i]
        if c == "\\":  # an escaped character (\{, \}, \\) never opens or closes a group
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[start:i]
        i += 1
    return None


# ---------------------------------------------------------------------------------------------------------------------
# Equivalence
# ---------------------------------------------------------------------------------------------------------------------


def _is_delimited(text: str) -> bool:
    """Whether math-verify can find the math itself: an unescaped ``$`` or a ``\\boxed`` (``\\$5`` is a price)."""
    return "\\boxed" in text or _UNESCAPED_DOLLAR.search(text) is not None


class _GoldUnparsable(Exception):
    """Raised (never cached) when a gold answer does not parse."""


class _OutOfTime(Exception):
    """The call's deadline has passed."""


@functools.lru_cache(maxsize=1 << 16)  # a training run grades each gold answer many times
def _parse_gold(gold: str, use_alarm: bool) -> tuple:
    text = gold if _is_delimited(gold) else f"${gold}$"
    parsed = _parse_prediction(text, _GOLD_PARSE_TIMEOUT_S if use_alarm else None)  # shares the parse cache
    if not parsed:
        raise _GoldUnparsable(gold)
    return parsed


#: Parsed predictions by text: math-verify's ``parse`` costs ~3-10 ms and the same answer text recurs across the
#: samples of a problem and across problems. A parse that times out raises and is not cached.
_PARSE_CACHE: dict[str, tuple] = {}
_PARSE_CACHE_MAX = 1 << 16


def _parse_prediction(text: str, timeout: int | None) -> tuple:
    hit = _PARSE_CACHE.get(text)
    if hit is not None:
        return hit
    from math_verify import parse

    try:
        parsed = tuple(parse(text, parsing_timeout=timeout, raise_on_error=True))
    except Exception:  # unparsable: as math-verify's own parse (raise_on_error=False) would return []
        parsed = ()
    if len(_PARSE_CACHE) >= _PARSE_CACHE_MAX:
        _PARSE_CACHE.clear()
    _PARSE_CACHE[text] = parsed
    return parsed


def _can_use_alarm() -> bool:
    return hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()


def _verify_here(gold: str, predicted: str, timeout_s: float) -> bool:
    """``verify_math`` in this thread, with math-verify's own alarms where possible. May raise."""
    from math_verify import verify

    use_alarm = _can_use_alarm()
    deadline = time.monotonic() + timeout_s

    def budget() -> int | None:
        # math-verify passes its timeout to signal.alarm, which takes whole seconds.
        left = deadline - time.monotonic()
        if left <= 0:
            raise _OutOfTime
        return max(1, math.ceil(left)) if use_alarm else None

    golds = _parse_gold(gold, use_alarm)
    single = _is_single_value(golds[0])
    sides = _split_approximation(predicted)
    if sides is not None:
        if not _approximates(*sides):
            return False  # "3 \\approx 4", "\\sqrt{2} \\approx 1.7": not the value of the answer before it
        predicted = sides[0]  # the exact form is the answer; a decimal of its value after it is not a second one
    # Without a unit in text at its end the answer is read as math, not as prose (read as prose, "2k \\text{ cm}" is 2).
    predicted = _without_unit(predicted) or predicted
    if single and _states_several_values(predicted, gold):
        return False  # "3 \\to 4", "3 hence 4", "3 ? 4": math-verify would read one of the values and ignore the other
    for alternatives in _readings(predicted):
        for text in alternatives:
            preds = _parse_prediction(text, budget())
            if preds:
                break
        for pred in preds:
            for g in golds:
                # One verify call per pair (math-verify does the same product internally) so the deadline is
                # checked between comparisons.
                if single and _is_compound_statement(pred):
                    continue  # "x = 3 = 4" is Eq(3, 4) & Eq(x, 3), which math-verify accepts for the gold 4
                if verify(g, pred, timeout_seconds=budget()):
                    if single and _is_constant_equation(pred) and not verify(g, pred.lhs, timeout_seconds=budget()):
                        continue  # "5 = 4": math-verify reads an equation as its right side; a false one is no answer
                    return True
    return False


def _is_single_value(parsed) -> bool:
    """Whether a parsed gold is one value or expression (``4``, ``\\frac{\\sqrt 3}{2}``, ``x^2+1``), not a set, tuple,
    interval, matrix, equation or inequality."""
    import sympy

    return isinstance(parsed, sympy.Expr) and not isinstance(parsed, sympy.MatrixBase | sympy.MatrixExpr)


def _is_compound_statement(parsed) -> bool:
    """A conjunction or disjunction of statements (a chained equation ``x = 3 = 4``, ``x < 1 \\lor x > 2``)."""
    from sympy.logic.boolalg import BooleanFunction

    return isinstance(parsed, BooleanFunction)


def _is_constant_equation(parsed) -> bool:
    """``5 = 4`` or ``2 + 2 = 4`` (an equation whose left side is a number), not ``x = 4`` or ``f(2) = 4``."""
    import sympy

    return isinstance(parsed, sympy.Eq) and bool(getattr(parsed.lhs, "is_number", False))


# Tokens of an answer, for :func:`_states_several_values`. A number may have thousands separators (1,000, 1{,}000,
# 10,\\! 080).
_LEX = re.compile(
    r"(?P<num>\d+(?:(?:,|\{,\}|,\\!\s*|\\,)\d{3})*(?:\.\d+)?|\.\d+)|(?P<cmd>\\[A-Za-z]+)|(?P<esc>\\.)"
    r"|(?P<word>[A-Za-z]+)|(?P<space>\s+|~)|(?P<other>.)",
    re.DOTALL,
)
#: LaTeX commands that keep an answer one value: arithmetic, functions, formatting, Greek letters, inequalities.
#: Others (arrows, logic, set relations, ``\\sim``, a second ``\\approx``, ``\\quad``, ...) are read by math-verify
#: as separators: it keeps one side and drops the other.
_VALUE_COMMANDS = frozenset(
    """frac dfrac tfrac cfrac sqrt cdot times div pm mp over left right bigl bigr Bigl Bigr big Big bigg Bigg pi infty
    circ degree text textrm textnormal mathrm mathbf mathit mathsf mathbb mathcal textbf textit emph mbox operatorname
    boxed fbox displaystyle sin cos tan cot sec csc arcsin arccos arctan sinh cosh tanh log ln lg exp binom dbinom
    tbinom sum prod int lim max min gcd lcm mod bmod pmod overline underline bar hat vec dot ddot tilde widehat
    widetilde prime le ge leq geq lt gt neq ne alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota
    kappa lambda mu nu xi rho varrho sigma tau upsilon phi varphi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma
    Upsilon Phi Psi Omega""".split()
)
_VALUE_ESCAPES = frozenset(["\\{", "\\}", "\\%", "\\$", "\\,", "\\!", "\\;", "\\:", "\\ "])
_SPACING = frozenset(["\\,", "\\!", "\\;", "\\:", "\\ ", "\\quad", "\\qquad"])
_VALUE_CHARS = frozenset("+-*/=<>!'()[]{}.,;:%|^_$" + "π√°×−·∞÷±")
_FUNCTION_WORDS = frozenset("sin cos tan cot sec csc log ln exp max min gcd lcm mod deg".split())
#: Commands whose arguments are part of one value with them: ``\\frac{1}{2}`` is one value, not the numbers 1 and 2.
_COMPOUND_VALUES = {"frac": 2, "dfrac": 2, "tfrac": 2, "cfrac": 2, "binom": 2, "dbinom": 2, "tbinom": 2, "sqrt": 1}
#: Commands whose argument is text: its words are units (``\\text{ cm}``, ``\\text{ of them}``) unless they are
#: :data:`_HEDGE_WORDS`.
_TEXT_COMMANDS = frozenset("text textrm textnormal textbf textit textsf mbox mathrm emph".split())
#: Words that join, weigh or negate values (a hedge or a revision), in ``\\text{}`` or bare: never a unit.
_HEDGE_WORDS = frozenset(
    """and or nor but not no to then either vs versus maybe perhaps possibly probably hence so thus therefore else
    otherwise if unless instead rather than wait actually alternatively correction implies""".split()
)
_TIMES_TEN = frozenset(["\\times", "\\cdot", "×", "·"])


def _argument(tokens: list[tuple[str, str]], i: int) -> tuple[list[tuple[str, str]], int]:
    """The argument of a command or script at ``tokens[i]``: the tokens inside a ``{...}`` group, or one token;
    and the index after it."""
    while i < len(tokens) and tokens[i][0] == "space":
        i += 1
    if i >= len(tokens):
        return [], i
    if tokens[i][1] != "{":
        return [tokens[i]], i + 1
    depth, start = 0, i
    while i < len(tokens):
        depth += {"{": 1, "}": -1}.get(tokens[i][1], 0)
        i += 1
        if depth == 0:
            break
    return tokens[start + 1 : i - 1], i


def _answer_items(tokens: list[tuple[str, str]], gold_tokens: set[str], in_text: bool = False) -> list[str]:
    """The kinds of the items an answer is made of, for :func:`_states_several_values`: ``num`` (a number, with its
    ``\\times 10^{k}``), ``compound`` (a whole ``\\frac``, ``\\sqrt``, ``\\binom`` with its arguments), ``word`` (a
    word of two or more letters, or any in ``\\text{}``), ``bar``, ``foreign`` (a token that is not part of one
    value, a hedge word), ``script`` (``^``/``_`` with its argument, part of what it follows), ``space`` and ``op``
    (anything else: arithmetic, a one-letter variable)."""
    items: list[str] = []
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        i += 1
        if text in ("^", "_"):
            inner, i = _argument(tokens, i)
            items += [k for k in _answer_items(inner, gold_tokens) if k == "foreign"]
            items.append("script")
        elif kind == "num":
            items.append("num")
            j = i  # "1.5 \\times 10^{3}": the power of ten is part of the number
            while j < len(tokens) and tokens[j][0] == "space":
                j += 1
            if j + 1 < len(tokens) and tokens[j][1] in _TIMES_TEN:
                k = j + 1
                while k < len(tokens) and tokens[k][0] == "space":
                    k += 1
                if k + 1 < len(tokens) and tokens[k][1] == "10" and tokens[k + 1][1] == "^":
                    i = k + 1
        elif kind == "cmd" and text[1:] in _COMPOUND_VALUES:
            args = _COMPOUND_VALUES[text[1:]]
            j = i
            while j < len(tokens) and tokens[j][0] == "space":
                j += 1
            if text == "\\sqrt" and j < len(tokens) and tokens[j][1] == "[":  # \\sqrt[3]{8}: the index
                while j < len(tokens) and tokens[j][1] != "]":
                    j += 1
                i = j + 1
            inner: list[tuple[str, str]] = []
            while args > 0:
                arg, i = _argument(tokens, i)
                inner += arg
                bare_number = len(arg) == 1 and arg[0][0] == "num" and tokens[i - 1][1] != "}"
                args -= len(arg[0][1]) if bare_number else 1  # \\frac12: one token, both arguments
            items += [k for k in _answer_items(inner, gold_tokens) if k == "foreign"]
            items.append("compound")
        elif kind == "cmd" and text[1:] in _TEXT_COMMANDS:
            inner, i = _argument(tokens, i)
            items += _answer_items(inner, gold_tokens, in_text=True)
        elif kind == "space" or text in _SPACING:
            foreign = text in _SPACING and text not in _VALUE_ESCAPES and not in_text and text not in gold_tokens
            items.append("foreign" if foreign else "space")  # \\quad between values
        elif kind == "word":
            if text.lower() in _HEDGE_WORDS:
                items.append("foreign")
            elif text in gold_tokens or (not in_text and text in _FUNCTION_WORDS):
                items.append("op")
            else:
                items.append("word" if in_text or len(text) > 1 else "op")
        elif in_text and kind in ("other", "esc"):
            items.append("space")  # punctuation in text: "\\text{ m/s}", "\\text{, so }" (the word decides)
        elif text == "|":
            items.append("bar")
        elif text in gold_tokens:
            items.append("op")
        elif kind == "cmd":
            items.append("op" if text[1:] in _VALUE_COMMANDS else "foreign")
        elif kind == "esc":
            items.append("op" if text in _VALUE_ESCAPES else "foreign")
        else:
            items.append("op" if text in _VALUE_CHARS else "foreign")
    return items


def _states_several_values(predicted: str, gold: str) -> bool:
    """Whether an answer states two or more values side by side rather than one value. A value is a number (with
    its exponent or ``\\times 10^{k}``), or a whole ``\\frac{..}{..}``, ``\\sqrt[..]{..}``, ``\\binom{..}{..}``;
    a number right before a fraction or root is part of it (``1\\frac{1}{2}``, ``2\\sqrt{3}``).

    Several values are: two with a token that is not arithmetic between or around them (``3 \\to 4``, ``3 \\lor
    4``, ``3 ? 4``, ``3 \\\\ 4``, an unmatched ``|``) or a hedge word (:data:`_HEDGE_WORDS`: ``3 hence 4``,
    ``\\text{not } 3 \\text{ but } 4``); two numbers with only space between them (``3 4``, which math-verify reads
    as 7); a word next to two values or parts of one (``3 \\cdot 4 \\text{ cm}``, ``3\\sqrt{16} cm``), since
    math-verify reads text with a word as prose and takes one number out of it (4, 3). For a single-valued gold
    these are hedges. :func:`_verify_here` asks this about the answer without its unit (:func:`_without_unit`),
    so ``\\frac{9}{2}\\text{ cm}^2`` is one value. Tokens that the gold itself uses are not counted against the
    answer. ``2+2``, ``\\frac{8}{2}``, ``4.5 \\times 10^{33}``, ``1{,}000``, ``6 \\cdot 7 = 42`` state one value.
    """
    gold_tokens = {m.group() for m in _LEX.finditer(gold)}
    items = _answer_items([(m.lastgroup, m.group()) for m in _LEX.finditer(predicted)], gold_tokens)
    values = parts = bars = 0
    foreign = words = spaced = False
    last: str | None = None  # the last item that is not space
    for kind in items:
        if kind == "space":
            spaced = True
            continue
        if kind == "num" and last == "num" and spaced:
            return True  # "3 4": two numbers with only space between them
        if kind in ("num", "compound"):
            parts += 1
            values += not (kind == "compound" and last == "num" and not spaced)  # 2\\sqrt{3}, 1\\frac{1}{2}
        bars += kind == "bar"
        foreign = foreign or kind == "foreign"
        words = words or kind == "word"
        last, spaced = kind, False
    return (values >= 2 and (foreign or bars % 2 == 1)) or (parts >= 2 and words)


_APPROX = re.compile(r"\\approx(?![A-Za-z])|≈")
_ASSIGNMENT = re.compile(r"\s*[A-Za-z](?:_\{?\w+\}?)?\s*=")
# A decimal approximation, optionally with "..." and a unit: 1.414, 3.1415\\ldots, 0.71 \\text{ m}^2.
_DECIMAL_APPROXIMATION = re.compile(
    r"\s*([-+]?\d+(?:\.(\d+))?)\s*(?:\\[lc]?dots|\.\.\.)?\s*(?:\\(?:text|mbox|mathrm)\s*\{[^{}$]*\}(?:\^\{?\d\}?)?)?\s*"
)


# A unit in text at the end of an answer: "\\text{ cm}^2", "\\,\\mathrm{m/s}", "\\text{ of them}" (letters, spaces,
# / and . only).
_TRAILING_UNIT = re.compile(
    r"(?P<answer>.*?\S)(?:\s|\\[,;: ]|~)*\\(?:text|textrm|textnormal|textbf|textit|textsf|mbox|mathrm|emph)\s*"
    r"\{(?P<unit>(?:[A-Za-z ./]|\\[,;: ])*[A-Za-z](?:[A-Za-z ./]|\\[,;: ])*)\}(?:\s*\^\s*\{?\s*\d\s*\}?)?\s*",
    re.DOTALL,
)


def _without_unit(predicted: str) -> str | None:
    """The answer without a unit in text at its end (``\\frac{9}{2}\\text{ cm}^2`` → ``\\frac{9}{2}``), which is
    graded instead of the whole answer: math-verify reads text with a word as prose and takes one number out of it
    (``2k \\text{ cm}`` → 2), and it reads a unit it does not know as a factor (``\\text{east}\\cdot\\text{cm}``).
    None if there is none, or if its words include a hedge word (``3 \\text{ maybe}``)."""
    m = _TRAILING_UNIT.fullmatch(predicted)
    if m is None or any(w.lower() in _HEDGE_WORDS for w in re.findall(r"[A-Za-z]+", m.group("unit"))):
        return None
    return m.group("answer")


def _split_approximation(predicted: str) -> tuple[str, str] | None:
    """``\\sqrt{2} \\approx 1.414`` → ``("\\sqrt{2}", "1.414")``: the sides of the one ``\\approx`` outside braces,
    or None if there is none or more than one."""
    spots = []
    for m in _APPROX.finditer(predicted):
        before = re.sub(r"\\[{}]", "", predicted[: m.start()])
        if before.count("{") == before.count("}"):
            spots.append(m)
    if len(spots) != 1:
        return None
    return predicted[: spots[0].start()].strip(), predicted[spots[0].end() :].strip()


def _approximates(exact: str, approximation: str) -> bool:
    """Whether ``approximation`` is a decimal that is the value of ``exact`` rounded or truncated to its last digit:
    ``1.414`` of ``\\sqrt{2}``, ``3.1415`` of ``\\pi``, ``0.5`` of ``x = \\frac{1}{2}``; not ``4`` of ``3`` nor
    ``2`` or ``1.5`` of ``\\sqrt{2}`` nor ``x``. Main thread only (the parse needs its alarm); elsewhere False."""
    m = _DECIMAL_APPROXIMATION.fullmatch(approximation)
    if m is None or not exact:
        return False
    exact = _without_unit(exact) or exact
    values = _constant_values(_ASSIGNMENT.sub("", exact, count=1) if _ASSIGNMENT.match(exact) else exact)
    if values is None or len(values) != 1 or abs(values[0].imag) > 1e-12:
        return False
    unit = 10.0 ** -len(m.group(2) or "")  # of the last digit
    error = values[0].real - float(m.group(1))
    rounded = abs(error) <= unit / 2 * (1 + 1e-9)
    truncated = 0 <= math.copysign(1.0, values[0].real) * error < unit
    return rounded or truncated


def _readings(predicted: str) -> list[list[str]]:
    """How to read a prediction: a list of readings, each a list of texts of which the first that parses is used.

    The prediction matches if any reading matches. Examples: ``"$x$"`` → ``[["$x$"]]``;
    ``r"\\frac 12"`` → ``[["$\\frac 12$", "\\frac 12"]]``; ``"18 dollars"`` → ``[["18 dollars"], ["$18 dollars$"]]``.
    """
    if _is_delimited(predicted):
        return [[predicted]]
    wrapped = f"${predicted}$"
    if _is_prose(predicted):
        return [[predicted], [wrapped]]
    return [[wrapped, predicted]]


def _is_prose(text: str) -> bool:
    """Whether ``text`` has a word (2+ letters between spaces, braces or punctuation) outside LaTeX command and
    environment names: ``18 dollars`` and ``\\text{east}`` are prose, ``2RC+R+C`` and ``ab+c`` are not (read bare,
    math-verify would take the first number of ``2RC+R+C`` and accept it for the gold 2)."""
    return _WORD.search(_LATEX_NAMES.sub(" ", text)) is not None


_helpers = threading.local()
_warned_golds: set[str] = set()


def _start_helper() -> ChildProcess:
    """A helper process running :func:`_serve`, checked with one request (it must start within
    :data:`_HELPER_START_TIMEOUT_S`)."""
    helper = ChildProcess("r1.rewards.math_grader:_serve")
    try:
        helper.send(("1", "1", 5.0))
        ok = helper.receive(timeout_s=_HELPER_START_TIMEOUT_S) is True
    except ChildError:
        ok = False
    if not ok:
        helper.kill()
        raise RuntimeError("helper process did not start (see its stderr)")
    return helper


def _serve() -> None:
    """Helper-process loop (its main thread, so math-verify's alarms work): ``(gold, predicted, timeout_s)`` in,
    the verdict out. Ends when stdin closes."""
    serve(lambda request: verify_math(*request))


def _verify_in_helper(gold: str, predicted: str, timeout_s: float) -> bool:
    helper = getattr(_helpers, "helper", None)
    if helper is None:
        try:
            helper = _helpers.helper = _start_helper()
        except Exception as e:
            logger.warning("verify_math: cannot start a helper process for off-main-thread grading (%s); scoring 0", e)
            return False
    try:
        helper.send((gold, predicted, timeout_s))
        return bool(helper.receive(timeout_s=timeout_s + _HELPER_GRACE_S))
    except ChildError:  # too slow (killed) or dead: the next call starts a fresh one
        helper.kill()
        _helpers.helper = None
        return False


def verify_math(gold: str, predicted: str, timeout_s: float = 5.0, *, warn: bool = True) -> bool:
    """Whether ``predicted`` is mathematically equivalent to ``gold`` (math-verify), within ``timeout_s``.

    Args:
        gold: the reference answer, e.g. ``r"\\frac{1}{2}"``; wrapped as ``$gold$`` unless it has ``$`` or ``\\boxed``.
            A plain number in e-notation (``4.5e33``, as in Minerva's golds) is read as ``4.5\\times 10^{33}``, on
            both sides.
        predicted: an extracted answer, e.g. ``"0.5"``; read as described in the module docstring.
        timeout_s: deadline for the whole call (see the module docstring for how it is enforced).
        warn: log (once per gold) that a gold does not parse; off when comparing two predictions.
    Returns:
        True if equivalent. Any error, an unparsable gold or prediction, or a timeout gives False.

    Example: ``verify_math(r"\\frac12", r"\\dfrac{1}{2}")`` → True; ``verify_math("3", "-3")`` → False.
    """
    try:
        if not gold.strip() or not predicted.strip():
            return False
        gold, predicted = _scientific_to_latex(gold), _scientific_to_latex(predicted)
        if _INTEGER.fullmatch(gold) and _INTEGER.fullmatch(predicted):  # fast path, same verdict as math-verify
            return int(gold) == int(predicted)
        if predicted.strip() == gold.strip() and _can_use_alarm():  # the gold's own text, once it parses
            return bool(_parse_gold(gold, True))
        costly = _too_costly(predicted, gold)
        if costly is not None:
            logger.debug("verify_math: %s; scoring 0 without math-verify", costly)
            return False
        left = time_left()  # a reward batch's budget (r1.rewards.base.CompositeReward.budget)
        if left is not None:
            if left <= 0:
                return False
            timeout_s = min(timeout_s, left)
        if _can_use_alarm() or not hasattr(signal, "SIGALRM"):
            return _verify_here(gold, predicted, timeout_s)
        return _verify_in_helper(gold, predicted, timeout_s)
    except _OutOfTime:
        return False
    except _GoldUnparsable:
        if warn and gold not in _warned_golds:
            _warned_golds.add(gold)
            logger.warning("verify_math: gold answer %r does not parse; every prediction scores 0", gold)
        return False
    except Exception:
        logger.debug("verify_math failed", exc_info=True)
        return False
    except BaseException as e:
        from math_verify.errors import TimeoutException  # derives from BaseException, so not caught above

        if isinstance(e, TimeoutException):
            return False
        raise


#: Longest prediction math-verify is asked about: this many characters, or 4x the gold's length if that is longer.
MAX_ANSWER_CHARS = 500
#: Deepest nesting of (), [] and {} in a prediction (the benchmark golds nest at most 4 deep).
MAX_NESTING = 10
_NUMERIC_TOWER = re.compile(r"\^\s*\{[^{}]*?(?:\d|\\pi|\be\b)\s*\^|\d\s*\^\s*\d+\s*\^")
_HUGE_EXPONENT = re.compile(r"\^\s*\{?\s*\d{6,}")
_HUGE_FACTORIAL = re.compile(r"\d{6,}\s*!")
_HIGH_POWER_OF_GROUP = re.compile(r"[)\]]\s*\^\s*\{?\s*\d{3,}")
_BIG_COMBINATORICS = re.compile(r"\\(?:[dt]?binom|Gamma|choose)(?![A-Za-z])")


def _nesting(text: str) -> int:
    """Deepest nesting of unescaped brackets in ``text``."""
    depth = deepest = 0
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c in "{([":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "})]":
            depth -= 1
        i += 1
    return deepest


def _factorial_of_big_group(text: str) -> bool:
    """A factorial of a group that holds a power or another factorial: ``(10!)!``, ``(2^{64})!``."""
    for m in re.finditer(r"(?<!\\)[)}\]]\s*!", text):
        close = m.start()
        depth, j = 0, close
        while j >= 0:
            depth += {")": 1, "}": 1, "]": 1, "(": -1, "{": -1, "[": -1}.get(text[j], 0)
            if depth == 0:
                break
            j -= 1
        group = text[max(j, 0) : close]
        if "^" in group or re.search(r"(?<!\\)!", group):
            return True
    return False


def _cost_flags(text: str) -> set[str]:
    """Cheap signs that sympy may spend seconds or more on an expression (each costs math-verify its whole
    timeout: ``9^{9^{9}}``, ``1000000!``, ``(10!)!``, ``\\binom{10^9}{10^5}``, ``(x+1)^{1000}``, 30 nested
    braces)."""
    flags = set()
    if _nesting(text) > MAX_NESTING:
        flags.add(f"nested more than {MAX_NESTING} deep")
    if _NUMERIC_TOWER.search(text):
        flags.add("a power tower of numbers")
    if _HUGE_EXPONENT.search(text):
        flags.add("an exponent of 6 or more digits")
    if _HIGH_POWER_OF_GROUP.search(text):
        flags.add("a bracket raised to a power of 3 or more digits")
    if _HUGE_FACTORIAL.search(text) or _factorial_of_big_group(text):
        flags.add("a factorial of a huge number")
    if _BIG_COMBINATORICS.search(text) and ("^" in text or re.search(r"\d{6,}", text)):
        flags.add("a binomial or Gamma of a power")
    return flags


def _too_costly(predicted: str, gold: str) -> str | None:
    """Why a prediction is not worth a math-verify call (a reason), or None. Checked in microseconds before parsing,
    so a pathological answer scores 0 at once instead of after ``timeout_s``: longer than :data:`MAX_ANSWER_CHARS`
    (or 4x the gold), or a sign of :func:`_cost_flags` that the gold does not share (a gold that is a power tower
    is still compared, under the timeout)."""
    if len(predicted) > max(MAX_ANSWER_CHARS, 4 * len(gold)):
        return f"the answer is {len(predicted)} characters long"
    flags = _cost_flags(predicted) - _cost_flags(gold) if predicted else set()
    return f"the answer has {sorted(flags)[0]}" if flags else None


def grade_math_answer(answer: str | None, gold: str, timeout_s: float = 5.0) -> float:
    """1.0 if an extracted ``answer`` verifies against ``gold``, else 0.0 (None → 0.0). ``grade_math`` = this after
    :func:`extract_answer`; evaluation calls the two halves separately to cache by ``(gold, answer)``."""
    if answer is None:
        return 0.0
    return 1.0 if verify_math(gold, answer, timeout_s=timeout_s) else 0.0


def grade_math(completion: str, gold: str, timeout_s: float = 5.0) -> float:
    """1.0 if the answer extracted from ``completion`` verifies against ``gold``, else 0.0 (no answer → 0.0).

    Example: ``grade_math(" <think>1/2 = 0.5</think> <answer>0.5</answer>", r"\\frac{1}{2}")`` → 1.0.
    """
    return grade_math_answer(extract_answer(completion), gold, timeout_s=timeout_s)


def equivalent_math_answers(a: str, b: str, timeout_s: float = 5.0) -> bool:
    """Whether two extracted answers state the same value (for majority voting, cons@k).

    The same text up to spacing and ``\\dfrac`` (:func:`_canonical`) → True; two constant values (numbers, or
    expressions without variables such as ``\\frac{\\sqrt{3}}{2}``) that differ by more than a relative 1e-6 →
    False, without a math-verify call (most wrong answers are numbers); else math-verify either way round (it is not
    quite symmetric: ``x=5`` matches the gold ``5`` but not the reverse).
    """
    if _canonical(a) == _canonical(b):
        return True
    if _too_costly(a, b) or _too_costly(b, a):
        return False  # one of them is pathological (and the other is not the same text)
    x, y = _constant_values(a), _constant_values(b)
    if x is not None and y is not None and not _same_values(x, y):
        return False
    if (x is not None and _is_variable_expression(b)) or (y is not None and _is_variable_expression(a)):
        return False  # constants never equal an expression in variables (6r^2-4r-24 vs 106)
    return verify_math(a, b, timeout_s, warn=False) or verify_math(b, a, timeout_s, warn=False)


def _same_values(xs: tuple[complex, ...], ys: tuple[complex, ...]) -> bool:
    """Whether two sets of values are equal up to a relative 1e-6 (a value and a set of copies of it are equal)."""

    def close(x: complex, y: complex) -> bool:
        return abs(x - y) <= 1e-6 * max(1.0, abs(x), abs(y))

    return all(any(close(x, y) for y in ys) for x in xs) and all(any(close(x, y) for x in xs) for y in ys)


def _parsed_expression(text: str):
    """math-verify's first parse of an answer (main thread only, 1 s alarm), or None."""
    if not _can_use_alarm():
        return None
    from math_verify.errors import TimeoutException

    try:
        parsed = _parse_prediction(text if _is_delimited(text) else f"${text}$", 1)
    except (Exception, TimeoutException):  # noqa: BLE001 - no fast path; math-verify decides
        return None
    return parsed[0] if parsed else None


def _is_variable_expression(text: str) -> bool:
    """Whether an answer parses to an algebraic expression with variables (not an equation, set, or text)."""
    import sympy

    expr = _parsed_expression(text)
    return isinstance(expr, sympy.Expr) and bool(expr.free_symbols) and not isinstance(expr, sympy.Symbol)


@functools.lru_cache(maxsize=1 << 16)
def _constant_values(text: str) -> tuple[complex, ...] | None:
    """The values of an answer that is a constant (``7``, ``\\frac{1}{2}``, ``2\\sqrt{3}``) or a set of constants
    (``1, 2``), else None. Main thread only (the parse needs its alarm); elsewhere None."""
    text = _scientific_to_latex(text)
    if _INTEGER.fullmatch(text):
        return (complex(int(text)),)
    import sympy

    expr = _parsed_expression(text)
    items = list(expr.args) if isinstance(expr, sympy.FiniteSet) else [expr]
    values = []
    for item in items:
        if not _is_small_constant(item):
            return None
        try:
            value = complex(item.evalf(15))
        except (TypeError, ValueError, ArithmeticError):
            return None
        if value != value or abs(value) == float("inf"):
            return None
        values.append(value)
    return tuple(values) or None


def _is_small_constant(expr, depth: int = 0) -> bool:
    """Whether ``expr`` is a constant that evaluates fast: moderate numbers, π, e, i, sums, products and powers with
    small rational exponents (radicals). Anything else (a power tower such as ``9^{9^{9^{9}}}``, whose evaluation
    sits in one long C call that no alarm interrupts, functions, symbols) is left to math-verify."""
    import sympy

    if depth > 12:
        return False
    if isinstance(expr, sympy.Rational):  # Integer too
        return abs(expr.p) < 10**40 and expr.q < 10**40
    if isinstance(expr, sympy.Float):
        return True
    if expr in (sympy.pi, sympy.E, sympy.I):
        return True
    if isinstance(expr, sympy.Pow):
        base, exponent = expr.args
        return isinstance(exponent, sympy.Rational) and abs(exponent) <= 64 and _is_small_constant(base, depth + 1)
    if isinstance(expr, (sympy.Add, sympy.Mul)):
        return all(_is_small_constant(a, depth + 1) for a in expr.args)
    return False


def _scientific_to_latex(text: str) -> str:
    """``"4.5e33"`` → ``"4.5\\times 10^{33}"``; any other text unchanged. math-verify reads e-notation as a float
    that never equals the LaTeX spelling (``4.5e33`` vs ``4.5 \\times 10^{33}`` is False), so both sides are
    rewritten."""
    m = _SCIENTIFIC.fullmatch(text)
    if m is None:
        return text
    return f"{m.group(1)}\\times 10^{{{int(m.group(2))}}}"


__all__ = [
    "EXTRACTORS",
    "MAX_BARE_ANSWER_CHARS",
    "equivalent_math_answers",
    "extract_after_think",
    "extract_answer",
    "extract_answer_phrase",
    "extract_answer_sentence",
    "extract_answer_tag",
    "extract_last_boxed",
    "final_region",
    "grade_math",
    "grade_math_answer",
    "verify_math",
]
