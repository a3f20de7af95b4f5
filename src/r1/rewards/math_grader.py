"""Math answer grading: extract the final answer from a completion, then check it against the gold with math-verify.

One grader serves the RL accuracy reward and evaluation (through ``Task.grade``), so a reward of 1 in training
means exactly what a correct answer means in a report.

Pipeline: ``grade_math(completion, gold)`` = ``extract_answer(completion)`` → ``verify_math(gold, answer)``.

- **Extraction** runs an ordered list of extractors (``EXTRACTORS``); the first that finds something wins. Today:
  the last ``<answer>…</answer>`` block (R1-Zero format, arXiv 2501.12948 Table 1), else the last balanced
  ``\\boxed{…}`` after the reasoning (after the last ``</think>``, if any). Add an extractor by appending a
  ``fn(completion) -> str | None`` to the list.
- **Equivalence** is math-verify's ``parse`` + ``verify`` (huggingface/Math-Verify). The gold is wrapped as ``$gold$``
  (a bare string does not parse reliably: ``parse(r"\\left( 3, \\frac{\\pi}{2} \\right)")`` gives ``3``). The
  prediction is read according to what it looks like (:func:`_readings`): math-verify finds the math itself in text
  with ``$`` or ``\\boxed``; a math expression is wrapped in ``$…$`` (read bare only if that does not parse, because
  the bare reading takes the last number: ``\\frac 12`` → 12, ``1, 2`` → 2, ``3 \\pm 2\\sqrt{2}`` → 2); prose
  such as ``18 dollars`` is read bare (wrapped, it becomes 18·a·d·l²·o·r·s) and also wrapped, and either may match.
  On MATH-500 with each gold answer put in ``<answer>`` tags this accepts 500/500 and, with the answers shuffled
  across problems, accepts no pair of different answers; "bare, then wrapped if the bare parse is empty" accepts
  442/500 and two wrong pairs (``3 \\pm 2 \\sqrt{2}`` for 2, ``y = 2x + 3`` for 3).
- **Timeout**: math-verify bounds each ``parse`` and each comparison with ``signal.alarm`` (whole seconds, main
  thread only). ``verify_math`` runs those steps against one deadline of ``timeout_s`` and stops when it has passed,
  so a call returns within about ``timeout_s + 1`` s. Off the main thread, where signals cannot be used, the call is
  sent to a helper process (a plain subprocess, one per calling thread, started on first use in ~1-2 s) whose main
  thread runs the same code; if it does not answer in time it is killed and the next call starts a fresh one. A
  worker thread with ``join(timeout)`` does not work: sympy evaluating a power tower such as ``9^{9^{9^{9}}}`` sits
  in long C calls that hold the GIL, and such a join did not return within 30 s here. Without ``SIGALRM``
  (Windows) there is no timeout.

Deliberately left out (later work): "the answer is X" extraction, conflicting answers, multiple-choice letters,
units, and multi-part answers.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from typing import Callable, Optional

logger = logging.getLogger(__name__)

Extractor = Callable[[str], Optional[str]]

_ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_BOXED_OPEN = re.compile(r"\\boxed\s*\{")
_UNESCAPED_DOLLAR = re.compile(r"(?<!\\)\$")
_LATEX_NAMES = re.compile(r"\\(?:begin|end)\{[^}]*\}|\\[A-Za-z]+")  # \begin{pmatrix}, \frac, \text, ...
_WORD = re.compile(r"[A-Za-z]{2,}")

#: Seconds a helper process may take to start (Python + import of sympy/math-verify), checked once per helper.
_HELPER_START_TIMEOUT_S = 60.0
#: Extra seconds a helper gets beyond ``timeout_s`` before it is killed (IPC, rounding to whole-second alarms).
_HELPER_GRACE_S = 2.0
#: Timeout (s) for parsing a gold answer: golds come from trusted data files and are parsed once (cached).
_GOLD_PARSE_TIMEOUT_S = 5


# ---------------------------------------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------------------------------------


def extract_answer_tag(completion: str) -> str | None:
    """Content of the last ``<answer>…</answer>`` block, stripped; None if there is none or it is empty.

    Example: ``"<think>2+2</think> <answer>3</answer><answer> 4 </answer>"`` → ``"4"``.
    """
    blocks = _ANSWER_BLOCK.findall(completion)
    if not blocks:
        return None
    return blocks[-1].strip() or None


def extract_last_boxed(completion: str) -> str | None:
    """Content of the last ``\\boxed{…}`` with balanced braces, searched after the last ``</think>`` if there is one.

    A box inside the reasoning does not count once the reasoning is closed; an unbalanced (truncated) box is skipped
    in favour of an earlier complete one. Example: ``r"so \\boxed{\\frac{1}{2}}."`` → ``r"\\frac{1}{2}"``.
    """
    _, sep, tail = completion.rpartition("</think>")
    text = tail if sep else completion
    for m in reversed(list(_BOXED_OPEN.finditer(text))):
        content = _balanced_content(text, m.end())
        if content is not None and content.strip():
            return content.strip()
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


#: Extractors tried in order by :func:`extract_answer`; the first non-None result wins.
EXTRACTORS: list[Extractor] = [extract_answer_tag, extract_last_boxed]


def extract_answer(completion: str, extractors: list[Extractor] | None = None) -> str | None:
    """The final answer of a completion, or None if it states none.

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
    from math_verify import parse

    text = gold if _is_delimited(gold) else f"${gold}$"
    parsed = parse(text, parsing_timeout=_GOLD_PARSE_TIMEOUT_S if use_alarm else None)
    if not parsed:
        raise _GoldUnparsable(gold)
    return tuple(parsed)


def _can_use_alarm() -> bool:
    return hasattr(signal, "SIGALRM") and threading.current_thread() is threading.main_thread()


def _verify_here(gold: str, predicted: str, timeout_s: float) -> bool:
    """``verify_math`` in this thread, with math-verify's own alarms where possible. May raise."""
    from math_verify import parse, verify

    use_alarm = _can_use_alarm()
    deadline = time.monotonic() + timeout_s

    def budget() -> int | None:
        # math-verify passes its timeout to signal.alarm, which takes whole seconds.
        left = deadline - time.monotonic()
        if left <= 0:
            raise _OutOfTime
        return max(1, math.ceil(left)) if use_alarm else None

    golds = _parse_gold(gold, use_alarm)
    for alternatives in _readings(predicted):
        for text in alternatives:
            preds = parse(text, parsing_timeout=budget())
            if preds:
                break
        for pred in preds:
            for g in golds:
                # One verify call per pair (math-verify does the same product internally) so the deadline is
                # checked between comparisons.
                if verify(g, pred, timeout_seconds=budget()):
                    return True
    return False


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
    """Whether ``text`` has a word of 2+ letters outside LaTeX command and environment names."""
    return _WORD.search(_LATEX_NAMES.sub(" ", text)) is not None


_helpers = threading.local()
_warned_golds: set[str] = set()


class _Helper:
    """A child Python process that runs :func:`_serve`: one JSON request a line in, ``true``/``false`` a line out.

    A plain subprocess (not ``multiprocessing``) so that the parent's ``__main__`` is never re-imported.
    """

    def __init__(self):
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from r1.rewards.math_grader import _serve; _serve()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        if self.ask("1", "1", 5.0, wait_s=_HELPER_START_TIMEOUT_S) is not True:
            self.kill()
            raise RuntimeError("helper process did not start (see its stderr)")

    def ask(self, gold: str, predicted: str, timeout_s: float, wait_s: float) -> bool | None:
        """The helper's verdict, or None if it did not answer within ``wait_s`` seconds or died."""
        self.proc.stdin.write(json.dumps([gold, predicted, timeout_s]) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], wait_s)
        line = self.proc.stdout.readline() if ready else ""
        return {"true": True, "false": False}.get(line.strip())

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _serve() -> None:
    """Helper-process loop (its main thread, so math-verify's alarms work). Ends when stdin closes."""
    logging.basicConfig(level=logging.ERROR)
    for line in sys.stdin:
        gold, predicted, timeout_s = json.loads(line)
        ok = verify_math(gold, predicted, timeout_s)
        sys.stdout.write("true\n" if ok else "false\n")
        sys.stdout.flush()


def _verify_in_helper(gold: str, predicted: str, timeout_s: float) -> bool:
    helper = getattr(_helpers, "helper", None)
    if helper is None:
        try:
            helper = _helpers.helper = _Helper()
        except Exception as e:
            logger.warning("verify_math: cannot start a helper process for off-main-thread grading (%s); scoring 0", e)
            return False
    try:
        verdict = helper.ask(gold, predicted, timeout_s, wait_s=timeout_s + _HELPER_GRACE_S)
    except OSError:  # the helper died (broken pipe)
        verdict = None
    if verdict is None:  # too slow or dead: kill it, the next call starts a fresh one
        helper.kill()
        _helpers.helper = None
        return False
    return verdict


def verify_math(gold: str, predicted: str, timeout_s: float = 5.0) -> bool:
    """Whether ``predicted`` is mathematically equivalent to ``gold`` (math-verify), within ``timeout_s``.

    Args:
        gold: the reference answer, e.g. ``r"\\frac{1}{2}"``; wrapped as ``$gold$`` unless it has ``$`` or ``\\boxed``.
        predicted: an extracted answer, e.g. ``"0.5"``; read as described in the module docstring.
        timeout_s: deadline for the whole call (see the module docstring for how it is enforced).
    Returns:
        True if equivalent. Any error, an unparsable gold or prediction, or a timeout gives False.

    Example: ``verify_math(r"\\frac12", r"\\dfrac{1}{2}")`` → True; ``verify_math("3", "-3")`` → False.
    """
    try:
        if not gold.strip() or not predicted.strip():
            return False
        if _can_use_alarm() or not hasattr(signal, "SIGALRM"):
            return _verify_here(gold, predicted, timeout_s)
        return _verify_in_helper(gold, predicted, timeout_s)
    except _OutOfTime:
        return False
    except _GoldUnparsable:
        if gold not in _warned_golds:
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


def grade_math(completion: str, gold: str, timeout_s: float = 5.0) -> float:
    """1.0 if the answer extracted from ``completion`` verifies against ``gold``, else 0.0 (no answer → 0.0).

    Example: ``grade_math(" <think>1/2 = 0.5</think> <answer>0.5</answer>", r"\\frac{1}{2}")`` → 1.0.
    """
    answer = extract_answer(completion)
    if answer is None:
        return 0.0
    return 1.0 if verify_math(gold, answer, timeout_s=timeout_s) else 0.0


__all__ = [
    "EXTRACTORS",
    "extract_answer",
    "extract_answer_tag",
    "extract_last_boxed",
    "grade_math",
    "verify_math",
]
