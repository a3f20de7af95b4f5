"""Oracle checks on the real benchmark files, through evaluation's grading path (``grade_benchmark``): each
benchmark's own reference answers score 100%, answers shuffled across problems score about 0%.

Run: python -m pytest tests/eval/test_oracle.py -q   (reads ../shared/data; ~25 s on a busy 2-core machine)
"""

import random
import re

import pytest

from r1.eval.grade import grade_benchmark
from r1.tasks import build_task

MATH = ["math500", "aime24", "aime25", "amc23", "gsm8k", "minerva_math", "olympiadbench"]
FORMATS = [
    " <think>…</think> <answer>{}</answer>",  # R1-Zero
    "<think>…</think>\nThe final answer is $\\boxed{{{}}}$.",  # R1 summary
    "Reasoning without tags. So the answer is \\boxed{{{}}}",  # a plain completion from another tool
]


def _grade(task, samples, texts):
    comps = {s.id: [{"completion": t}] for s, t in zip(samples, texts)}
    rows, metrics = grade_benchmark(task, samples, comps)
    return rows, metrics


def test_math500_reference_solutions_score_100(shared_data):
    task = build_task("math500")
    samples = task.load("test")
    rows, m = _grade(task, samples, [s.meta["solution"] for s in samples])
    assert [r.id for r in rows if r.score != 1.0] == []
    assert m["pass@1"] == 1.0 and m["num_problems"] == 500


@pytest.mark.parametrize("name", MATH)
def test_gold_answers_score_100(shared_data, name):
    task = build_task(name)
    samples = task.load("test")
    texts = [FORMATS[i % 3].format(s.answer) for i, s in enumerate(samples)]
    rows, m = _grade(task, samples, texts)
    assert [r.id for r in rows if r.score != 1.0] == []


def test_gpqa_correct_letters_score_100(shared_data):
    task = build_task("gpqa")
    samples = task.load("test")
    assert len(samples) == 198
    forms = ["<think>…</think> <answer>{}</answer>", "<think>…</think> The answer is ({}).", "Answer: {}"]
    rows, m = _grade(task, samples, [forms[i % 3].format(s.answer) for i, s in enumerate(samples)])
    assert m["pass@1"] == 1.0


def _loose(answer: str) -> str:
    """An answer's text without spaces, a leading '+' or a leading 'k=' (math-verify reads x=5 as 5)."""
    return re.sub(r"^[A-Za-z]=|^\+", "", answer.replace(" ", ""))


def _check_shuffled(name: str, limit: int | None) -> None:
    task = build_task(name)
    samples = task.load("test")[:limit]
    answers = [s.answer for s in samples]
    random.Random(0).shuffle(answers)
    rows, m = _grade(task, samples, [f"<think>…</think> <answer>{a}</answer>" for a in answers])
    if name == "gpqa":  # four letters: a shuffled letter is right about a quarter of the time
        assert 0.1 < m["pass@1"] < 0.4
        return
    # a shuffled answer is accepted exactly when it happens to be the same answer (AMC 2023's 40 small integers
    # coincide 4 times), never because the grader is lenient: about 0% on every benchmark but AMC
    golds = {s.id: s.answer for s in samples}
    assert [r.score for r in rows] == [float(_loose(r.answer) == _loose(golds[r.id])) for r in rows]
    assert m["pass@1"] <= (0.15 if name == "amc23" else 0.05)


# every benchmark: its answers shuffled across problems (the first 100 problems; all of them with -m slow)
@pytest.mark.parametrize("name", MATH + ["gpqa"])
def test_shuffled_answers_score_about_zero(shared_data, name):
    _check_shuffled(name, 100)


@pytest.mark.slow
@pytest.mark.parametrize("name", MATH + ["gpqa"])
def test_shuffled_answers_score_about_zero_all_problems(shared_data, name):
    _check_shuffled(name, None)
