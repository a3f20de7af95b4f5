"""Evaluation grading (r1.eval.grade): the eval grader equals the RL reward's ``task.grade``, cons@k, completions from
files, the grading pool.

Run: python -m pytest tests/eval/test_grade.py -q   (~15 s on a busy 2-core machine; reads ../shared/data)
"""

import json
import random

import pytest

from r1.data.sample import Sample
from r1.errors import R1Error
from r1.eval.grade import AnswerGrader, WorkerPool, grade_benchmark, read_completions, vote_score
from r1.eval.metrics import majority_vote
from r1.tasks import build_task
from r1.tasks.base import Task
from tests.eval.synthetic import synthetic_completions, write_jsonl

MATH_BENCHMARKS = ["math500", "aime24", "aime25", "amc23", "gsm8k", "minerva_math", "olympiadbench"]


def _records(task, n):
    return [{"id": s.id, "answer": s.answer, "problem": s.problem, "solution": s.meta.get("solution")}
            for s in task.load("test")[:n]]


@pytest.mark.parametrize("name", MATH_BENCHMARKS)
def test_eval_grader_is_the_rl_grader(shared_data, name):
    """``score(extract(c)) == task.grade(c)`` (the accuracy reward) on varied completions of real problems."""
    task = build_task(name)
    samples = {s.id: s for s in task.load("test")[:6]}
    grader = AnswerGrader(task)
    for rec in synthetic_completions(_records(task, 6), k=6, seed=1):
        s = samples[rec["id"]]
        assert grader.grade(rec["completion"], s)[1] == task.grade(rec["completion"], s)


def test_eval_grader_is_the_rl_grader_gpqa(shared_data):
    task = build_task("gpqa")
    rng = random.Random(0)
    forms = ["<answer>{}</answer>", "<think>x</think> The answer is ({}).", "Answer: {}", "\\boxed{{{}}}", "{} or A"]
    for s in task.load("test")[:20]:
        for form in forms:
            c = form.format(rng.choice("ABCD"))
            assert AnswerGrader(task).grade(c, s)[1] == task.grade(c, s)


class ExactTask(Task):
    """A toy task: the answer is the text after 'ans=', equal answers are identical strings."""

    name = "exact"

    def extract_answer(self, completion, sample):
        return completion.split("ans=")[1] if "ans=" in completion else None

    def grade_answer(self, answer, sample):
        return float(answer == sample.answer)

    def same_answer(self, a, b, sample):
        return a == b

    def grade(self, completion, sample):
        return self.grade_answer(self.extract_answer(completion, sample), sample)


def test_vote_score_equals_plain_majority_vote():
    """The grader-partitioned vote (correct answers are one cluster) gives the plain vote's verdict."""
    rng = random.Random(0)
    task, s = ExactTask(), Sample(id="p", problem="?", answer="a")
    for _ in range(300):
        answers = [rng.choice(["a", "b", "c", "d", None]) for _ in range(rng.randint(1, 8))]
        win = majority_vote(answers, lambda x, y: x == y)
        expected = 0.0 if win is None else float(answers[win] == "a")
        assert vote_score(AnswerGrader(task), s, answers) == expected


def _math_file(tmp_path):
    rows = [{"id": "half", "problem": "Half of 1?", "answer": "\\frac{1}{2}"},
            {"id": "seven", "problem": "3+4?", "answer": "7"}]
    return write_jsonl(tmp_path / "p.jsonl", rows)


def test_cons_at_k_hand_case(tmp_path):
    task = build_task("math", data=str(_math_file(tmp_path)))
    samples = task.load("test")
    box = lambda a: {"completion": f"<think>…</think> \\boxed{{{a}}}"}  # noqa: E731
    comps = {
        # "half": 0.5 and \dfrac{1}{2} are one cluster (2), "3" is a cluster of 3 -> the vote picks 3: cons 0
        "half": [box("0.5"), box("\\dfrac{1}{2}"), box("3"), box("3"), box("3")],
        # "seven": 7, 7.0 (2) vs 6, 8 (1 each) and one without an answer -> 7 wins: cons 1
        "seven": [box("6"), box("7"), {"completion": "no answer"}, box("7.0"), box("8")],
    }
    rows, m = grade_benchmark(task, samples, comps, pass_ks=[1, 5])
    # pass@1 = mean(2/5, 2/5) = 0.4; cons@5 = mean(0, 1) = 0.5; pass@5 = 1 for both
    assert m["pass@1"] == pytest.approx(0.4) and m["cons@5"] == 0.5 and m["pass@5"] == 1.0
    assert m["no_answer_share"] == pytest.approx(0.1)
    assert [r.answer for r in rows[:2]] == ["0.5", "\\dfrac{1}{2}"] and [r.index for r in rows[:3]] == [0, 1, 2]


def test_problems_without_completions_count_as_wrong(tmp_path):
    task = build_task("math", data=str(_math_file(tmp_path)))
    comps = {"seven": [{"completion": "\\boxed{7}"}, {"completion": "\\boxed{7}"}]}
    rows, m = grade_benchmark(task, task.load("test"), comps)
    # per-problem values: seven 1.0, half (no completions) 0.0 -> pass@1 0.5, s.e. std([1, 0], ddof=1)/sqrt(2) = 0.5
    assert (m["num_problems"], m["num_problems_missing"], m["missing_counted_as_wrong"]) == (2, 1, True)
    assert m["pass@1"] == 0.5 and m["pass@1_stderr"] == pytest.approx(0.5)
    assert m["pass@2"] == 0.5 and m["cons@2"] == 0.5 and len(rows) == 2
    _, sub = grade_benchmark(task, task.load("test"), comps, only_given=True)  # the subset, on request
    assert (sub["num_problems"], sub["num_problems_missing"], sub["pass@1"]) == (1, 1, 1.0)
    assert sub["missing_counted_as_wrong"] is False


def test_task_without_extraction_grades_whole_completions():
    class GradeOnly(Task):
        def grade(self, completion, sample):
            return float(completion.strip() == sample.answer)

    s = Sample(id="x", problem="?", answer="yes")
    rows, m = grade_benchmark(GradeOnly(), [s], {"x": [{"completion": "yes"}, {"completion": "no"}]})
    assert [r.score for r in rows] == [1.0, 0.0] and rows[0].answer is None
    assert m["pass@1"] == 0.5 and m["no_answer_share"] is None and not any(k.startswith("cons@") for k in m)


def test_read_completions(tmp_path):
    task = build_task("math", data=str(_math_file(tmp_path)))
    samples = task.load("test")
    path = write_jsonl(tmp_path / "c.jsonl", [
        {"id": "seven", "completion": "a"},
        {"id": "seven", "completion": "b", "num_tokens": 3, "truncated": True},
        {"id": "half", "completion": "c", "finish_reason": "stop"},
    ])
    comps = read_completions(path, samples, "math")
    assert [c["completion"] for c in comps["seven"]] == ["a", "b"]
    assert comps["seven"][1] == {"completion": "b", "num_tokens": 3, "finish_reason": "length"}


@pytest.mark.parametrize(
    "lines, message",
    [
        (['{"id": "seven", "completion": "x"}', '{"id": "nope", "completion": "x"}'], r"c\.jsonl:2: unknown id 'nope'"),
        (['{"id": "seven", "completion": "x"}', '{"id": "seven", "completion": '], r"c\.jsonl:2: malformed JSON"),
        (['{"id": "seven"}'], r"c\.jsonl:1: missing field 'completion'"),
        (['{"id": "seven", "completion": 5}'], r"c\.jsonl:1: field 'completion' must be a string"),
        (["", " "], r"no completions"),
    ],
)
def test_read_completions_errors(tmp_path, lines, message):
    task = build_task("math", data=str(_math_file(tmp_path)))
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(R1Error, match=message) as e:
        read_completions(path, task.load("test"), "math")
    assert "\n" not in str(e.value)


def test_pool_gives_the_same_scores(shared_data, monkeypatch):
    monkeypatch.setattr("r1.eval.grade.CHUNK_PAIRS", 8)  # small chunks, so 20 problems use the pool
    task = build_task("math500")
    samples = task.load("test")[:20]
    recs = synthetic_completions(_records(task, 20), k=6, seed=2)
    comps = {}
    for r in recs:
        comps.setdefault(r["id"], []).append(r)
    serial, m0 = grade_benchmark(task, samples, comps)
    pooled, m2 = grade_benchmark(task, samples, comps, workers=2)
    assert [r.score for r in serial] == [r.score for r in pooled]
    assert m0["pass@1"] == m2["pass@1"] and m0["cons@6"] == m2["cons@6"]



def test_a_dead_pool_worker_is_a_one_line_error():
    with WorkerPool(1) as pool:  # an unknown job name: the worker's KeyError ends it (traceback on stderr)
        with pytest.raises(RuntimeError, match=r"a grading worker died \(exit code 1\)") as e:
            pool.run("no such job", None, [[1]], lambda i, result: None)
    assert "\n" not in str(e.value)

def test_completion_metrics_are_averaged():
    class WithStats(ExactTask):
        def completion_metrics(self, completion):
            return {"long": float(len(completion) > 5)}

    s = Sample(id="p", problem="?", answer="a")
    _, m = grade_benchmark(WithStats(), [s], {"p": [{"completion": "ans=a"}, {"completion": "xx ans=b"}]})
    assert m["task/long"] == 0.5 and m["cons@2"] == 1.0  # a 1-1 tie goes to the cluster formed first: "a", correct


def test_json_roundtrip_of_samples(tmp_path):
    from r1.eval.report import write_samples

    task = build_task("math", data=str(_math_file(tmp_path)))
    rows, _ = grade_benchmark(task, task.load("test"), {"seven": [{"completion": "\\boxed{7}", "num_tokens": 4}]})
    write_samples(tmp_path / "s.jsonl", rows, include_completion=False)
    line = json.loads((tmp_path / "s.jsonl").read_text())
    assert line == {"id": "seven", "index": 0, "answer": "7", "score": 1.0, "num_tokens": 4, "finish_reason": None}


def test_a_pathological_answer_cannot_hang_grading(tmp_path):
    """9^(9^(9^9)) parses, but sympy cannot compare it with anything: each math-verify step stops at its deadline,
    in scoring and in majority voting (two such wrong answers outvote one right answer, so they are compared)."""
    import time

    task = build_task("math", data=str(_math_file(tmp_path)), timeout_s=1.0)
    comps = {"seven": [{"completion": f"\\boxed{{{a}}}"} for a in ("9^{9^{9^{9}}}", "7", "8^{9^{9^{9}}}")]}
    t0 = time.monotonic()
    rows, m = grade_benchmark(task, task.load("test"), comps)
    assert [r.score for r in rows] == [0.0, 1.0, 0.0]
    assert time.monotonic() - t0 < 30  # about 1 s per comparison that times out
