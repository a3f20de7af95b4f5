"""Benchmark tasks (r1.tasks.benchmarks, r1.tasks.gpqa): registry, the real files, multiple-choice prompts, letter
extraction and load errors.

Run: python -m pytest tests/tasks/test_benchmarks.py -q   (reads ../shared/data; GPQA stays gzipped, nothing printed)
"""

import gzip
import json

import pytest

from r1.errors import R1Error
from r1.tasks import TASKS, build_task
from r1.tasks import benchmarks, gpqa
from r1.tasks.gpqa import MultipleChoiceTask, extract_choice, read_letter

COUNTS = {"math500": 500, "aime24": 30, "aime25": 30, "amc23": 40, "gsm8k": 1319, "minerva_math": 272,
          "olympiadbench": 675, "gpqa": 198, "humaneval": 164, "mbpp": 500}


def test_registry_and_exports():
    for table in (benchmarks.TASKS_TABLE, gpqa.TASKS_TABLE):
        for name, cls in table.items():
            assert TASKS.get(name) is cls and cls.name == name and cls.version
    assert set(benchmarks.BENCHMARKS) == set(COUNTS)
    assert all(name in TASKS for name in benchmarks.BENCHMARKS)


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_real_files_load(shared_data, name):
    samples = build_task(name).load(benchmarks.BENCHMARKS[name])
    assert len(samples) == COUNTS[name]
    assert len({s.id for s in samples}) == len(samples) and all(s.answer for s in samples)


def test_any_file_in_the_schema(tmp_path):
    path = tmp_path / "aime_like.jsonl"
    path.write_text(json.dumps({"id": "p1", "problem": "2+2?", "answer": "4"}) + "\n")
    task = build_task("aime24", data=str(path))
    (s,) = task.load("test")
    assert task.grade("<think>…</think> \\boxed{4}", s) == 1.0


MC_ROWS = [
    {"id": "q1", "problem": "Which is a gas at room temperature?", "choices": ["Iron", "Neon", "Salt", "Wax"],
     "answer": "B"},
    {"id": "q2", "problem": "2+2?", "choices": ["3", "4"], "answer": "b"},  # two options; a lower-case letter
]


def _mc_file(tmp_path, rows=MC_ROWS, gz=False):
    path = tmp_path / ("mc.jsonl.gz" if gz else "mc.jsonl")
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_multiple_choice_from_any_path(tmp_path, gz):
    task = build_task("gpqa", data=str(_mc_file(tmp_path, gz=gz)))
    q1, q2 = task.load("test")
    assert (q1.answer, q2.answer) == ("B", "B")
    assert task.question(q1) == (
        "Which is a gas at room temperature?\n\nA) Iron\nB) Neon\nC) Salt\nD) Wax\n\n"
        "Answer with the letter of the correct option."
    )
    assert build_task("gpqa", data=str(_mc_file(tmp_path)), instruction="").question(q2).endswith("B) 4")
    assert task.grade("<think>neon is a noble gas</think> <answer>B</answer>", q1) == 1.0
    assert task.grade("<think>…</think> <answer>Neon</answer>", q1) == 1.0  # the option's text
    assert task.grade("<think>…</think> <answer>C</answer>", q2) == 0.0  # not an option of a 2-choice question


@pytest.mark.parametrize(
    "row, message",
    [
        ({"id": "x", "problem": "p", "choices": ["a", "b"], "answer": "C"}, r"mc\.jsonl:3: 'answer' must be one of A"),
        ({"id": "x", "problem": "p", "choices": "ab", "answer": "A"}, r":3: 'choices' must be a list of 2 to 26"),
        ({"id": "x", "problem": "p", "answer": "A"}, r":3: missing field\(s\) 'choices'"),
        ({"id": "q1", "problem": "p", "choices": ["a", "b"], "answer": "A"}, r":3: duplicate id 'q1'"),
    ],
)
def test_multiple_choice_load_errors(tmp_path, row, message):
    path = _mc_file(tmp_path, MC_ROWS + [row])
    with pytest.raises(R1Error, match=message):
        build_task("gpqa", data=str(path)).load("test")


CHOICES = ["5 mol", "10 mol", "A catalyst", "$v_0 t$"]


@pytest.mark.parametrize(
    "text, letter",
    [
        ("C", "C"), ("(C)", "C"), ("C)", "C"), ("C.", "C"), ("c", "C"), ("(d)", "D"), ("**B**", "B"),
        ("\\text{B}", "B"), ("\\boxed{\\text{C}}", "C"), ("$\\mathrm{A}$", "A"), ("option d", "D"),
        ("Choice (A)", "A"), ("C) A catalyst", "C"), ("A catalyst", "C"), ("5 mol", "A"), ("$v_0 t$", "D"),
        ("I think C", "C"),
        ("A or B", None), ("B, not A", None), ("E", None), ("", None), ("none of these", None),
    ],
)
def test_read_letter(text, letter):
    assert read_letter(text, CHOICES) == letter


@pytest.mark.parametrize(
    "completion, letter",
    [
        ("<think>…</think> <answer>(B)</answer>", "B"),
        ("<think>…</think> The correct answer is (D). It follows from …", "D"),
        ("<think>…</think>\n\n**Final Answer:** C", "C"),
        ("Reasoning, no tags.\nAnswer: B", "B"),  # openai/simple-evals' format, also without think tags
        ("<think>…</think> \\boxed{A}", "A"),
        ("<think>…</think> \\boxed{A} or \\boxed{B}", None),  # hedge
        ("<think>The answer is B</think>", None),  # only inside <think>
        ("<think>…</think> The answer is B. Wait, no: the answer is C.", "C"),  # a revision: the last phrase
        ("<think>…</think>\nD", "D"),  # a bare final line
        ("<think>… so it is <answer>A</answer>", None),  # reasoning never closed
    ],
)
def test_extract_choice(completion, letter):
    assert extract_choice(completion, CHOICES) == letter


def test_gpqa_default_file_stays_gzipped(shared_data):
    task = MultipleChoiceTask()
    assert task.data_path("test").name.endswith(".jsonl.gz")
