"""The ``reasoning_gym`` adapter: hand cases with two generators (when the optional package is installed) and the
one-line error without it.

Run: ``python -m pytest tests/tasks/test_reasoning_gym.py -q``
"""

from __future__ import annotations

import sys

import pytest

from r1.errors import R1Error
from r1.tasks import build_task


def test_without_the_package_the_error_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "reasoning_gym", None)  # import reasoning_gym now raises ImportError
    with pytest.raises(R1Error, match=r"needs the reasoning-gym package: pip install 'r1\[reasoning_gym\]'") as e:
        build_task("reasoning_gym", dataset="leg_counting")
    assert "\n" not in str(e.value)


def test_leg_counting_graded_by_its_scorer():
    pytest.importorskip("reasoning_gym")
    task = build_task("reasoning_gym", dataset="leg_counting", size=20, test_size=5, seed=1,
                      min_animals=2, max_animals=2, max_instances=3)
    train, test = task.load("train"), task.load("test")
    assert len(test) == 5 and 0 < len(train) <= 20
    assert not {s.problem for s in train} & {s.problem for s in test}
    s = test[0]
    assert s.id == "leg_counting/test/0" and "legs" in s.problem
    animals = s.meta["entry"]["metadata"]["animals"]
    assert len(animals) == 2 and all(1 <= n <= 3 for n in animals.values())  # the generator kwargs reached it
    right = int(s.answer)
    assert task.grade(f"<think>count</think> <answer>{right}</answer>", s) == 1.0
    assert task.grade(f"<think>count</think> <answer> {right} </answer>", s) == 1.0  # block text is stripped
    assert task.grade(f"<answer>{right + 1}</answer>", s) == 0.0
    assert task.grade(f"{right}", s) == 0.0  # no answer block
    again = build_task("reasoning_gym", dataset="leg_counting", size=20, test_size=5, seed=1,
                       min_animals=2, max_animals=2, max_instances=3)
    assert [x.problem for x in again.load("train")] == [x.problem for x in train]  # reproducible


def test_basic_arithmetic_and_partial_credit_come_from_the_generator():
    pytest.importorskip("reasoning_gym")
    task = build_task("reasoning_gym", dataset="basic_arithmetic", size=5, test_size=3, seed=0)
    s = task.load("test")[0]
    assert task.grade(f"<answer>{s.answer}</answer>", s) == 1.0
    # the default scorer: an answer that contains the gold gets len(gold) / len(answer)
    padded = f"x = {s.answer}"
    assert task.grade(f"<answer>{padded}</answer>", s) == pytest.approx(len(s.answer) / len(padded))
    assert task.answer_functions() is not None and task.extract_answer("<answer>7</answer>", s) == "7"


@pytest.mark.parametrize("params, match", [
    ({"dataset": "no_such_generator"}, "must name a generator"),
    ({}, "must name a generator"),
    ({"dataset": "leg_counting", "bogus": 1}, "bad parameters for generator 'leg_counting'"),
    ({"dataset": "leg_counting", "min_animals": 5, "max_animals": 2}, "bad parameters for generator"),
    ({"dataset": "leg_counting", "size": 0}, "size must be an integer >= 1"),
])
def test_bad_params_are_one_line(params, match):
    pytest.importorskip("reasoning_gym")
    with pytest.raises(R1Error, match=match) as e:
        build_task("reasoning_gym", **params)
    assert "\n" not in str(e.value)
