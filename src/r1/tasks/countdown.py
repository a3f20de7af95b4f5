"""Countdown (TinyZero's task): reach a target with the given numbers and + - * /, each number used exactly once.

A problem is a few numbers (``min_numbers..max_numbers`` of them, each in ``min_number..max_number``) and a target
that some expression over all of them reaches; the prompt shows both::

    Using the numbers [44, 19, 35], create an equation that equals 28. You can use basic arithmetic operations
    (+, -, *, /) and each number must be used exactly once. ...

and the answer is the expression in ``<answer>…</answer>`` (``<answer>(44 + 19) - 35</answer>``). The grader
(TinyZero ``countdown.compute_score``'s rule: the numbers written are exactly the given ones, and the value equals
the target) evaluates the expression **without eval**: :func:`evaluate_expression` parses it with :mod:`ast` and
accepts only non-negative integer literals, binary ``+ - * /`` and parentheses (no names, calls, attributes,
unary signs, ``**`` or ``//``), in exact :class:`fractions.Fraction` arithmetic, so ``1/3*3`` is exactly 1 and a
division by zero is a wrong answer. Its input is bounded (:data:`MAX_EXPRESSION_CHARS`), and it counts the literals
before evaluating, so a hostile answer cannot hang the grader or make huge numbers. ``×``, ``÷`` and ``−`` are read
as ``*``, ``/`` and ``-``.

Generation (seeded, reproducible): draw the numbers, combine them in a random order with random operators into a
random binary tree, and keep the problem when its value is an integer in ``min_target..max_target`` (the tree is the
witness, the sample's ``answer``). Test problems are drawn first and never repeat in train (a problem is its sorted
numbers and target).

Deliberately left out: the TV game's rules that intermediate results stay positive integers and that numbers may be
left unused, TinyZero's 0.1 format score (the ``format`` reward's job), and answers written as equations
(``… = 28`` is not an expression, so it is wrong).
"""

from __future__ import annotations

import ast
import random
import re
from fractions import Fraction

from r1.data.sample import Sample
from r1.errors import R1Error
from r1.tasks.base import Task, last_answer_block

MAX_EXPRESSION_CHARS = 256
"""Longest answer the grader parses (a right answer over 6 numbers below 100 needs under 40 characters)."""

PROMPT = (
    "Using the numbers {numbers}, create an equation that equals {target}. You can use basic arithmetic operations "
    "(+, -, *, /) and each number must be used exactly once. Give the expression in <answer> </answer> tags, "
    "for example <answer> (1 + 2) / 3 </answer>."
)
"""The question (TinyZero's, with "exactly once" for its grader's rule)."""

_OPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_ALLOWED_CHARS = re.compile(r"[0-9+\-*/()\s]*")
_LOOKALIKES = str.maketrans({"×": "*", "÷": "/", "−": "-"})
_MAX_TRIES = 10_000


class CountdownTask(Task):
    """Countdown problems with ``min_numbers..max_numbers`` numbers and a reachable target.

    Args:
        min_numbers: the fewest numbers a problem gives (at least 2).
        max_numbers: the most numbers a problem gives (at most 6, so generation and grading stay cheap).
        min_number: the smallest number (at least 1).
        max_number: the largest number.
        min_target: the smallest target.
        max_target: the largest target.
        num_train: number of train problems (the RL prompts).
        num_test: number of test problems (never in train).
        seed: seed of the problem generator; the splits are a pure function of the parameters.

    Example:
        >>> t = CountdownTask(num_train=4, num_test=2)
        >>> s = Sample("x", "...", "(44 + 19) - 35", {"numbers": [44, 19, 35], "target": 28})
        >>> t.grade("<think>63-35</think> <answer>44 + 19 - 35</answer>", s), t.grade("<answer>44 - 16</answer>", s)
        (1.0, 0.0)
    """

    name = "countdown"
    version = "1"

    def __init__(
        self,
        min_numbers: int = 3,
        max_numbers: int = 4,
        min_number: int = 1,
        max_number: int = 99,
        min_target: int = 1,
        max_target: int = 100,
        num_train: int = 10000,
        num_test: int = 256,
        seed: int = 0,
    ):
        ints = dict(min_numbers=min_numbers, max_numbers=max_numbers, min_number=min_number, max_number=max_number,
                    min_target=min_target, max_target=max_target, num_train=num_train, num_test=num_test, seed=seed)
        for key, value in ints.items():
            if isinstance(value, bool) or not isinstance(value, int):
                raise R1Error(f"countdown: {key} must be an integer, got {value!r}")
        if not 2 <= min_numbers <= max_numbers <= 6:
            raise R1Error(f"countdown: need 2 <= min_numbers <= max_numbers <= 6, got {min_numbers}..{max_numbers}")
        if not 1 <= min_number <= max_number:
            raise R1Error(f"countdown: need 1 <= min_number <= max_number, got {min_number}..{max_number}")
        if min_target > max_target:
            raise R1Error(f"countdown: need min_target <= max_target, got {min_target}..{max_target}")
        if num_train < 0 or num_test < 0:
            raise R1Error(f"countdown: num_train and num_test must be >= 0, got {num_train}, {num_test}")
        self.min_numbers, self.max_numbers, self.min_number, self.max_number = (
            min_numbers, max_numbers, min_number, max_number)
        self.min_target, self.max_target = min_target, max_target
        self.num_train, self.num_test, self.seed = num_train, num_test, seed
        self._splits: dict[str, list[Sample]] | None = None

    # ---- the Task contract -------------------------------------------------------------------------------------

    def load(self, split: str) -> list[Sample]:
        """Samples of ``"train"`` or ``"test"``: distinct problems, deterministic in the constructor parameters."""
        if split not in ("train", "test"):
            raise R1Error(f"countdown: unknown split {split!r}; valid: test, train")
        if self._splits is None:
            rng = random.Random(f"countdown/{self.seed}")
            seen: set[tuple] = set()
            # test first, so its problems do not depend on num_train
            test = [self._fresh_sample(rng, seen, "test", i) for i in range(self.num_test)]
            train = [self._fresh_sample(rng, seen, "train", i) for i in range(self.num_train)]
            self._splits = {"train": train, "test": test}
        return list(self._splits[split])

    def grade(self, completion: str, sample: Sample) -> float:
        """1.0 iff the last ``<answer>`` block is an expression that uses every given number exactly once and
        equals the target (:func:`grade_expression`); else 0.0."""
        return self.grade_answer(self.extract_answer(completion, sample), sample)

    def extract_answer(self, completion: str, sample: Sample) -> str | None:
        return last_answer_block(completion)

    def grade_answer(self, answer: str | None, sample: Sample) -> float:
        return grade_expression(answer, sample.meta["numbers"], sample.meta["target"])

    def same_answer(self, a: str, b: str, sample: Sample) -> bool:
        """Two answers agree when both are valid expressions over the numbers with the same value (``44+19-35`` and
        ``19-35+44``), or, when either is not, when they are the same text up to whitespace."""
        va, vb = (evaluate_expression(x, sample.meta["numbers"]) for x in (a, b))
        if va is not None and vb is not None:
            return va == vb
        return "".join(a.split()) == "".join(b.split())

    # ---- generation --------------------------------------------------------------------------------------------

    def _fresh_sample(self, rng: random.Random, seen: set[tuple], split: str, i: int) -> Sample:
        for _ in range(_MAX_TRIES):
            numbers = [rng.randint(self.min_number, self.max_number)
                       for _ in range(rng.randint(self.min_numbers, self.max_numbers))]
            text, value = random_expression(numbers, rng)
            key = (tuple(sorted(numbers)), value)
            if value is None or value.denominator != 1 or not self.min_target <= value <= self.max_target:
                continue
            if key in seen:
                continue
            seen.add(key)
            target = int(value)
            return Sample(id=f"countdown/{split}/{i}", problem=PROMPT.format(numbers=numbers, target=target),
                          answer=text, meta={"numbers": numbers, "target": target})
        raise R1Error(
            f"countdown: found no new problem in {_MAX_TRIES} tries after {len(seen)} problems; ask for fewer "
            f"(num_train + num_test = {self.num_train + self.num_test}) or widen the number or target ranges"
        )


def random_expression(numbers: list[int], rng: random.Random) -> tuple[str, Fraction | None]:
    """A random expression over all of ``numbers`` and its exact value (None after a division by zero).

    Repeatedly joins two random sub-expressions with a random operator; a compound operand is parenthesised, so the
    text reads as the tree. Example: ``[44, 19, 35]`` → ``("(44 + 19) - 35", Fraction(28))`` for one draw.
    """
    parts: list[tuple[str, Fraction | None]] = [(str(n), Fraction(n)) for n in numbers]
    while len(parts) > 1:
        (ta, va), (tb, vb) = (parts.pop(rng.randrange(len(parts))) for _ in range(2))
        op = rng.choice("+-*/")
        value = _apply(op, va, vb) if va is not None and vb is not None else None
        ta, tb = (t if t.isdigit() else f"({t})" for t in (ta, tb))
        parts.append((f"{ta} {op} {tb}", value))
    return parts[0]


# ---- the safe evaluator ----------------------------------------------------------------------------------------


def parse_expression(text: str) -> ast.Expression | None:
    """The syntax tree of ``text`` if it is an arithmetic expression of non-negative integer literals, binary
    ``+ - * /`` and parentheses, at most :data:`MAX_EXPRESSION_CHARS` long; else None.

    Checked before parsing: the length and the characters (digits, operators, parentheses, whitespace), so no name,
    call, attribute, string or float reaches :func:`ast.parse`; after: every node is one of the allowed kinds (so
    ``**``, ``//`` and unary ``-`` are refused). ``ast.parse`` never evaluates anything.

    >>> parse_expression("__import__('os')") is None, parse_expression("2**99") is None
    (True, True)
    """
    if not isinstance(text, str) or len(text) > MAX_EXPRESSION_CHARS:
        return None
    text = text.translate(_LOOKALIKES).strip()
    if not text or not _ALLOWED_CHARS.fullmatch(text):
        return None
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # e.g. "too many nested parentheses"
        return None
    for node in ast.walk(tree):  # breadth-first and iterative: no recursion on a deep tree
        if isinstance(node, ast.Constant):
            if type(node.value) is not int:
                return None
        elif not isinstance(node, (ast.Expression, ast.BinOp, *_OPS)):
            return None
    return tree


def evaluate_expression(text: str | None, numbers: list[int]) -> Fraction | None:
    """The exact value of ``text`` if it is an expression (:func:`parse_expression`) whose literals are exactly
    ``numbers`` (each used once, in any order); None if it is not, or on a division by zero.

    The literals are counted before anything is computed, so the tree has ``len(numbers)`` leaves and the value
    stays as small as the given numbers allow.

    >>> evaluate_expression("(44 + 19) - 35", [19, 35, 44]), evaluate_expression("44 + 44 - 35", [19, 35, 44])
    (Fraction(28, 1), None)
    """
    tree = parse_expression(text) if text is not None else None
    if tree is None:
        return None
    literals = sorted(n.value for n in ast.walk(tree) if isinstance(n, ast.Constant))
    if literals != sorted(numbers):
        return None
    return _evaluate(tree.body)


def grade_expression(answer: str | None, numbers: list[int], target: int) -> float:
    """1.0 iff ``answer`` uses each of ``numbers`` exactly once and equals ``target`` exactly; else 0.0."""
    value = evaluate_expression(answer, numbers)
    return 1.0 if value is not None and value == target else 0.0


def _evaluate(node: ast.expr) -> Fraction | None:
    """Value of a checked tree (depth <= its number of literals); None after a division by zero."""
    if isinstance(node, ast.Constant):
        return Fraction(node.value)
    a, b = _evaluate(node.left), _evaluate(node.right)
    if a is None or b is None:
        return None
    return _apply(_OPS[type(node.op)], a, b)


def _apply(op: str, a: Fraction, b: Fraction) -> Fraction | None:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    return a / b if b != 0 else None


TASKS_TABLE = {"countdown": CountdownTask}

__all__ = [
    "CountdownTask",
    "MAX_EXPRESSION_CHARS",
    "PROMPT",
    "TASKS_TABLE",
    "evaluate_expression",
    "grade_expression",
    "parse_expression",
    "random_expression",
]
