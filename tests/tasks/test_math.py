"""Math JSONL tasks (math, gsm8k, math500): loading, errors, default data folder, and oracle checks of the grader.

Run: pytest tests/tasks/test_math.py -q   (the oracle checks read ../shared/data; ~20 s on a busy 2-core machine)
"""

import json
import random

import pytest

from r1.errors import R1Error
from r1.tasks import TASKS, build_task
from r1.tasks import math as math_tasks
from r1.tasks.math import GSM8KTask, Math500Task, MathTask, default_data_dir


def write_jsonl(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def rec(**kw):
    return json.dumps(kw)


GOOD = [
    rec(id="a", problem="1+1?", answer="2", level=1),
    rec(id="b", problem="Half of 1?", answer="\\frac{1}{2}", solution="1/2"),
    "",  # blank lines are skipped
    rec(id="c", problem="6*7?", answer=42),  # numbers are accepted as text
]


def test_load_any_split_returns_the_file(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", GOOD)
    task = build_task("math", data=str(path))
    assert isinstance(task, MathTask) and task.name == "math" and task.version
    for split in ("train", "test", "anything"):
        samples = task.load(split)
        assert [s.id for s in samples] == ["a", "b", "c"]
    a, b, c = samples
    assert (a.problem, a.answer, a.meta) == ("1+1?", "2", {"level": 1})
    assert b.meta == {"solution": "1/2"}
    assert c.answer == "42"


def test_grade_is_the_math_grader(tmp_path):
    task = build_task("math", data=str(write_jsonl(tmp_path / "d.jsonl", GOOD)))
    _, half, _ = task.load("test")
    assert task.grade(" <think>one half</think> <answer>0.5</answer>", half) == 1.0
    assert task.grade(" <think>one half</think> <answer>0.25</answer>", half) == 0.0
    assert task.grade(" <think>no answer</think>", half) == 0.0


def test_malformed_line_names_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [GOOD[0], GOOD[1], '{"id": "c", "problem": '])
    with pytest.raises(R1Error, match=r"bad\.jsonl:3") as e:
        build_task("math", data=str(path)).load("test")
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("field", ["id", "problem", "answer"])
def test_missing_field_is_named(tmp_path, field):
    record = {"id": "x", "problem": "p", "answer": "1"}
    del record[field]
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD[0], json.dumps(record)])
    with pytest.raises(R1Error, match=rf"d\.jsonl:2: missing field\(s\) '{field}'"):
        build_task("math", data=str(path)).load("test")


@pytest.mark.parametrize(
    "line, message",
    [
        (rec(id="x", problem=["not", "text"], answer="1"), r":2: field 'problem' must be a string"),
        (rec(id="x", problem="p", answer=None), r":2: field 'answer' must be a string"),
        (rec(id="a", problem="p", answer="1"), r":2: duplicate id 'a' \(first on line 1\)"),
        ("[1, 2]", r":2: expected a JSON object"),
    ],
)
def test_bad_record(tmp_path, line, message):
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD[0], line])
    with pytest.raises(R1Error, match=message):
        build_task("math", data=str(path)).load("test")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(R1Error, match=r"empty\.jsonl: no records"):
        build_task("math", data=str(path)).load("test")


def test_missing_file(tmp_path):
    with pytest.raises(R1Error, match="not found"):
        build_task("math", data=str(tmp_path / "nope.jsonl")).load("test")


def test_math_needs_data():
    with pytest.raises(R1Error, match=r"task\.data=PATH"):
        build_task("math")


def test_unknown_task_lists_valid_names():
    with pytest.raises(R1Error) as e:
        build_task("nope")
    msg = str(e.value)
    assert "'nope'" in msg and all(name in msg for name in ("gsm8k", "math", "math500"))


def test_registry_entries_and_exports():
    for name, cls in math_tasks.TASKS_TABLE.items():
        assert TASKS.get(name) is cls and cls.name == name and cls.version


def test_gsm8k_unknown_split(tmp_path, monkeypatch):
    monkeypatch.setenv("R1_DATA_DIR", str(tmp_path))
    with pytest.raises(R1Error, match=r"no split 'validation'; valid: test, train"):
        GSM8KTask().load("validation")


def test_default_data_dir_from_env(tmp_path, monkeypatch):
    write_jsonl(tmp_path / "math500.jsonl", GOOD)
    monkeypatch.setenv("R1_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path
    assert [s.id for s in Math500Task().load("train")] == ["a", "b", "c"]  # every split is the whole file
    monkeypatch.setenv("R1_DATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(R1Error, match="R1_DATA_DIR=.*task.data=PATH"):
        default_data_dir()


def test_default_data_dir_next_to_repo(shared_data, monkeypatch):
    monkeypatch.delenv("R1_DATA_DIR", raising=False)
    assert default_data_dir() == shared_data.resolve()
    assert len(build_task("gsm8k").load("train")) == 7473
    assert len(build_task("gsm8k").load("test")) == 1319


# --- oracle checks on the real benchmark files: the grader accepts every gold answer and rejects shuffled ones ---


def test_math500_boxed_gold_scores_one(shared_data):
    task = build_task("math500", data=str(shared_data / "math500.jsonl"))
    samples = task.load("test")
    assert len(samples) == 500
    completions = [f" <think>...</think> The answer is \\boxed{{{s.answer}}}." for s in samples]
    failed = [s.id for c, s in zip(completions, samples) if task.grade(c, s) != 1.0]
    assert failed == []


def test_gsm8k_answer_tag_gold_scores_one(shared_data):
    task = build_task("gsm8k", data=str(shared_data / "gsm8k_test.jsonl"))
    samples = task.load("test")
    assert len(samples) == 1319
    failed = [s.id for s in samples if task.grade(f" <think>...</think> <answer>{s.answer}</answer>", s) != 1.0]
    assert failed == []


@pytest.mark.parametrize("file, task_name", [("math500.jsonl", "math500"), ("gsm8k_test.jsonl", "gsm8k")])
def test_shuffled_answers_score_about_zero(shared_data, file, task_name):
    task = build_task(task_name, data=str(shared_data / file))
    samples = task.load("test")[:500]
    answers = [s.answer for s in samples]
    random.Random(0).shuffle(answers)
    scores = [task.grade(f"<think>...</think> <answer>{a}</answer>", s) for a, s in zip(answers, samples)]
    assert sum(scores) / len(samples) < 0.05
    # every accepted pair is a coincidence of equal answers, not a grader false positive
    accepted = [(a, s.answer) for a, s, score in zip(answers, samples, scores) if score]
    assert all(a.replace(" ", "") == g.replace(" ", "") for a, g in accepted)


def test_answer_functions_are_the_math_grader_in_halves(tmp_path):
    from r1.data.sample import Sample

    task = build_task("math", data=str(write_jsonl(tmp_path / "d.jsonl", GOOD)))
    extract, grade_answer, same = task.answer_functions()
    s = Sample(id="b", problem="Half of 1?", answer="\\frac{1}{2}")
    for completion in ("<answer>0.5</answer>", "\\boxed{1/2}", "<answer>2</answer>", "no answer"):
        assert grade_answer(extract(completion, s), s) == task.grade(completion, s)
    assert extract("<answer>0.5</answer>", s) == "0.5" and same("0.5", "\\frac{1}{2}", s)

    class OwnGrader(MathTask):  # a subclass with its own grade has no math halves: evaluation grades completions
        def grade(self, completion, sample):
            return 1.0

    assert OwnGrader(data="d.jsonl").answer_functions() is None
