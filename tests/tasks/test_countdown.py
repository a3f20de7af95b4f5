"""The ``countdown`` task: splits, the safe expression grader (hand cases, hostile input), generation.

Run: ``python -m pytest tests/tasks/test_countdown.py -q``
"""

from __future__ import annotations

import random
import time
from fractions import Fraction

import pytest

from r1.data.sample import Sample
from r1.errors import R1Error
from r1.tasks import build_task
from r1.tasks.countdown import (
    MAX_EXPRESSION_CHARS,
    CountdownTask,
    evaluate_expression,
    parse_expression,
    random_expression,
)

# 44 + 19 - 35 = 28; the hand cases below grade answers to this problem
SAMPLE = Sample("cd/0", "...", "(44 + 19) - 35", {"numbers": [44, 19, 35], "target": 28})


@pytest.mark.parametrize("answer, expected", [
    ("(44 + 19) - 35", 1.0),
    ("44 + 19 - 35", 1.0),               # order of operations: (44 + 19) - 35
    ("19 - 35 + 44", 1.0),               # any order of the numbers
    (" 44+19-35 ", 1.0),                 # whitespace
    ("((44) + (19)) - (35)", 1.0),       # redundant parentheses
    ("44 × 1 + 19 − 35", 0.0),           # lookalike operators read as * and -, but 1 is not a given number
    ("44 + 19 + 35", 0.0),               # wrong value (98)
    ("44 - 19 + 35", 0.0),               # wrong value (60)
    ("44 + 44 - 60", 0.0),               # a number reused, another missing
    ("44 + 19", 0.0),                    # a number missing (63)
    ("44 + 19 - 35 + 0", 0.0),           # an extra number (value still 28)
    ("44 + 19 - 35 * 1", 0.0),           # an extra number (value still 28)
    ("4 4 + 19 - 35", 0.0),              # not an expression
    ("44 + 19 - 35 = 28", 0.0),          # an equation, not an expression
    ("-35 + 44 + 19", 0.0),              # unary minus is not an allowed operation
    ("44 + 19 - 35.0", 0.0),             # floats are not the given integers
    ("4_4 + 19 - 35", 0.0),              # 4_4 is 44 to Python, not to the grader
    ("44 + 19 - 0x23", 0.0),             # hex literal of 35
    ("28", 0.0),                         # the target alone
    ("", 0.0),
])
def test_grade_hand_cases(answer, expected):
    task = CountdownTask(num_train=0, num_test=0)
    assert task.grade(f"<think>63 - 35 = 28</think> <answer>{answer}</answer>", SAMPLE) == expected


def test_grade_reads_the_last_answer_block_and_needs_one():
    task = CountdownTask(num_train=0, num_test=0)
    assert task.grade("<answer>44 + 19 + 35</answer> <answer>44 + 19 - 35</answer>", SAMPLE) == 1.0
    assert task.grade("<answer>44 + 19 - 35</answer> <answer>44 + 19 + 35</answer>", SAMPLE) == 0.0
    assert task.grade("44 + 19 - 35", SAMPLE) == 0.0  # no block
    assert task.grade("<answer>44 + 19 - 35", SAMPLE) == 0.0  # truncated block


def test_exact_fractions_and_division_by_zero():
    # 3 / 7 * 14 = 6 exactly (in floats 3/7*14 is 6.000000000000001)
    s = Sample("cd/1", "...", "3 / 7 * 14", {"numbers": [3, 7, 14], "target": 6})
    task = CountdownTask(num_train=0, num_test=0)
    assert task.grade("<answer>3 / 7 * 14</answer>", s) == 1.0
    assert evaluate_expression("(3 / 7) * 14", [3, 7, 14]) == Fraction(6)
    # 5 / (3 - 3) divides by zero: wrong, not an exception
    assert evaluate_expression("5 / (3 - 3)", [5, 3, 3]) is None
    z = Sample("cd/2", "...", "", {"numbers": [5, 3, 3], "target": 0})
    assert task.grade("<answer>5 / (3 - 3)</answer>", z) == 0.0
    assert task.grade("<answer>(3 - 3) / 5</answer>", z) == 1.0  # 0 / 5 = 0 is fine


@pytest.mark.parametrize("hostile", [
    "__import__('os').system('echo pwned')",
    "open('/etc/passwd').read()",
    "(lambda: 28)()",
    "[44, 19, 35]",
    "44 + 19 - 35 if True else 0",
    "2 ** 10 ** 10 ** 10",               # power: refused before anything is computed
    "9 ** 9 ** 9",
    "44 // 19",
    "44 % 19",
    "44 << 19",
    "'44' + '19'",
])
def test_non_arithmetic_code_is_refused(hostile):
    assert parse_expression(hostile) is None
    assert evaluate_expression(hostile, [44, 19, 35]) is None


def test_hostile_sizes_return_fast():
    t0 = time.perf_counter()
    deep = "(" * 100 + "44" + ")" * 100 + " + 19 - 35"  # within the length limit: parses, and is right
    assert len(deep) <= MAX_EXPRESSION_CHARS and evaluate_expression(deep, [44, 19, 35]) == 28
    too_deep = "(" * 200 + "44" + ")" * 200          # past the length limit (and Python's nesting limit)
    assert parse_expression(too_deep) is None
    assert parse_expression("1+" * 5000 + "1") is None  # long chains are refused by length, not by recursion
    assert parse_expression("9" * 5000) is None        # a huge literal is never converted
    assert evaluate_expression("99*99*99*99*99*99", [99, 99]) is None  # literals counted before computing
    assert time.perf_counter() - t0 < 1.0


def test_same_answer_compares_values():
    task = CountdownTask(num_train=0, num_test=0)
    assert task.same_answer("44 + 19 - 35", "19 - 35 + 44", SAMPLE)
    assert not task.same_answer("44 + 19 - 35", "44 - 19 + 35", SAMPLE)
    assert task.same_answer("x y", "xy", SAMPLE) and not task.same_answer("x", "44+19-35", SAMPLE)


def test_random_expression_text_matches_its_value():
    rng = random.Random(0)
    for _ in range(200):
        numbers = [rng.randint(1, 20) for _ in range(rng.randint(2, 5))]
        text, value = random_expression(numbers, rng)
        assert evaluate_expression(text, numbers) == value  # None (a division by zero) both ways too


def test_splits_are_deterministic_disjoint_and_solvable():
    task = build_task("countdown", num_train=300, num_test=40, seed=3, max_target=50)
    train, test = task.load("train"), task.load("test")
    assert len(train) == 300 and len(test) == 40
    key = lambda s: (tuple(sorted(s.meta["numbers"])), s.meta["target"])  # noqa: E731
    assert not {key(s) for s in train} & {key(s) for s in test}
    assert len({key(s) for s in train}) == 300
    for s in train + test:
        assert 3 <= len(s.meta["numbers"]) <= 4 and all(1 <= n <= 99 for n in s.meta["numbers"])
        assert 1 <= s.meta["target"] <= 50
        assert str(s.meta["numbers"]) in s.problem and f"equals {s.meta['target']}." in s.problem
        assert task.grade(f"<answer>{s.answer}</answer>", s) == 1.0  # the witness solves it
    again = build_task("countdown", num_train=10, num_test=40, seed=3, max_target=50)
    assert again.load("test") == test  # test does not depend on num_train
    assert build_task("countdown", num_train=10, num_test=40, seed=4, max_target=50).load("test") != test


@pytest.mark.parametrize("params, match", [
    ({"min_numbers": 1}, "min_numbers"),
    ({"max_numbers": 7}, "max_numbers <= 6"),
    ({"min_number": 0}, "1 <= min_number"),
    ({"min_target": 10, "max_target": 5}, "min_target <= max_target"),
    ({"num_train": -1}, "num_train"),
    ({"seed": "a"}, "seed must be an integer"),
])
def test_bad_params_are_one_line(params, match):
    with pytest.raises(R1Error, match=match):
        build_task("countdown", **params)


def test_impossible_requests_fail_instead_of_looping():
    # two numbers in 1..2 make 7 problems in all: {1,1} -> 1, 2; {1,2} -> 1, 2, 3; {2,2} -> 1, 4
    with pytest.raises(R1Error, match="found no new problem"):
        build_task("countdown", min_numbers=2, max_numbers=2, max_number=2, num_train=50, num_test=0).load("train")
    with pytest.raises(R1Error, match="unknown split"):
        build_task("countdown", num_train=1, num_test=1).load("dev")
