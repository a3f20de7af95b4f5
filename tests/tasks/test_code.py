"""Code tasks (humaneval, mbpp, stdio): code extraction, loading and errors, and oracle checks against the sandbox.

Run: pytest tests/tasks/test_code.py -q   (~25 s on 2 busy cores: all 164 HumanEval references and a 150-problem
MBPP subset). The full MBPP sweep (974 references, ~55 s) is slow: pytest tests/tasks/test_code.py -q -m slow
"""

import collections
import json
from concurrent.futures import Future

import pytest

from r1.errors import R1Error
from r1.sandbox import Result, SandboxError, default_pool
from r1.tasks import TASKS, build_task
from r1.tasks.code import HumanEvalTask, MBPPTask, StdioTask, extract_code


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("```python\nprint(1)\n```", "print(1)\n"),
        ("text\n```py\na = 1\n```\nmore\n```python\nb = 2\n```\nbye", "b = 2\n"),  # the last block
        ("```\nx = 3\n```", "x = 3\n"),  # no language tag
        ("<think>```python\nwrong()\n```</think> <answer>```python\nright()\n```</answer>", "right()\n"),
        ("<think>plan</think>\n<answer>\nprint(2)\n</answer>", "print(2)\n"),  # answer without a fence
        ("<think>a</think> ```python\nok()\n```", "ok()\n"),
        ("    return a + b\n", "    return a + b\n"),  # a HumanEval body stays indented
        ("Here:\n```python\ndef f():\n    return 1", "def f():\n    return 1"),  # unclosed (truncated) fence
        ("", ""),
        ("<think>never closed", "<think>never closed\n"),
    ],
)
def test_extract_code(completion, expected):
    assert extract_code(completion) == expected


def test_registered():
    for name, cls in (("humaneval", HumanEvalTask), ("mbpp", MBPPTask), ("stdio", StdioTask)):
        assert TASKS.get(name) is cls and cls.version


# ---------------------------------------------------------------------------------------------------- HumanEval
@pytest.fixture(scope="module")
def humaneval(shared_data):
    task = build_task("humaneval", data=str(shared_data / "humaneval.jsonl"))
    return task, task.load("test")


def test_humaneval_all_references_pass(humaneval):
    """164/164 canonical solutions pass, as base-model bodies (the run also exercises the pool)."""
    task, samples = humaneval
    assert len(samples) == 164
    verdicts = task.run_tests_many([task.reference_completion(s) for s in samples], samples)
    failed = [(s.id, v.status) for s, v in zip(samples, verdicts) if not v.all_passed]
    assert failed == []


def test_humaneval_completion_forms(humaneval):
    task, samples = humaneval
    s = samples[0]
    full = f"<think>easy</think> <answer>```python\n{s.problem}{s.answer}```</answer>"
    assert task.grade(full, s) == 1.0  # a full definition replaces the stub, the prompt's imports stay
    assert task.grade(s.answer, s) == 1.0  # body
    assert task.grade("    return False\n", s) == 0.0  # wrong
    assert task.grade("```python\nimport sys\nsys.exit(0)\n```", s) == 0.0  # exiting before check() is a fail
    assert task.grade("no code at all", s) == 0.0
    v = task.run_tests("    return False\n", s)
    assert (v.passed, v.total, v.status) == (0, 1, "wrong_answer")


HONEST_OTHER_TYPES = [
    # (problem, program, score): correct programs whose results are no plain builtin values, judged as Python would
    ("HumanEval/2", "from fractions import Fraction\ndef truncate_number(number):\n    f = Fraction(number)\n"
                    "    return f - int(f)\n", 1.0),
    ("HumanEval/33", "def sort_third(l):\n    t = sorted(l[::3])\n"
                     "    return (t[i // 3] if i % 3 == 0 else x for i, x in enumerate(l))\n", 1.0),  # tuple(gen)
    ("HumanEval/37", "def sort_even(l):\n    ev = iter(sorted(l[::2]))\n"
                     "    return map(lambda ix: next(ev) if ix[0] % 2 == 0 else ix[1], enumerate(l))\n", 1.0),
    # Decimal - float raises TypeError in Python: the test's abs(candidate(x) - y) fails, here too
    ("HumanEval/4", "from decimal import Decimal\ndef mean_absolute_deviation(numbers):\n"
                    "    m = sum(numbers) / len(numbers)\n"
                    "    return Decimal(sum(abs(x - m) for x in numbers) / len(numbers))\n", 0.0),
]


def test_humaneval_results_of_other_types(humaneval):
    """Fractions, generators and map objects pass where the original assert passes them (replay problems)."""
    task, samples = humaneval
    by_id = {s.id: s for s in samples}
    cases = [(f"```python\n{code}```", by_id[pid]) for pid, code, _ in HONEST_OTHER_TYPES]
    assert task.grade_many([c for c, _ in cases], [s for _, s in cases]) == [x for _, _, x in HONEST_OTHER_TYPES]


def test_compare_mode_keeps_pythons_equality_for_other_types(tmp_path):
    """Against a literal: Fraction(1, 2) == 0.5, Decimal('1.5') == 1.5, dict keys == a set, tuple(generator) ==
    a tuple are True as in Python; a generator == a list is False as in Python."""
    test = ("def check(candidate):\n    assert candidate(0) == 0.5\n    assert candidate(1) == 1.5\n"
            "    assert candidate(2) == {1, 2}\n    assert tuple(candidate(3)) == (1, 2)\n"
            "    assert list(candidate(3)) == [1, 2]\n")
    rec = {"id": "t/0", "problem": "def f(k):\n    \"\"\"The k-th value.\"\"\"\n", "entry_point": "f", "test": test,
           "answer": "    return [0.5, 1.5, {1, 2}, [1, 2]][k]\n"}
    task = build_task("humaneval", data=write(tmp_path / "t.jsonl", [rec]), timeout_s=5)
    s = task.load("test")[0]
    assert task.test_plan(s).mode == "compare"
    good = ("from fractions import Fraction\nfrom decimal import Decimal\n"
            "def f(k):\n    return [Fraction(1, 2), Decimal('1.5'), {1: 0, 2: 0}.keys(), (i for i in (1, 2))][k]\n")
    listed = "def f(k):\n    return [0.5, 1.5, {1, 2}, (i for i in (1, 2))][k]\n"
    assert task.grade_many([f"```python\n{good}```", task.reference_completion(s)], [s, s]) == [1.0, 1.0]
    rec2 = dict(rec, id="t/1", test="def check(candidate):\n    assert candidate(3) == [1, 2]\n")
    task2 = build_task("humaneval", data=write(tmp_path / "t2.jsonl", [rec2]), timeout_s=5)
    s2 = task2.load("test")[0]
    assert task2.grade_many([f"```python\n{listed}```", task2.reference_completion(s2)], [s2, s2]) == [0.0, 1.0]


def test_humaneval_questions(humaneval, shared_data):
    task, samples = humaneval
    q = task.question(samples[0])
    assert samples[0].problem.strip() in q and "```python" in q
    raw = build_task("humaneval", data=str(shared_data / "humaneval.jsonl"), prompt_style="completion")
    assert raw.question(samples[0]) == samples[0].problem


# --------------------------------------------------------------------------------------------------------- MBPP
@pytest.fixture(scope="module")
def mbpp(shared_data, monkeypatch_module):
    monkeypatch_module.setenv("R1_DATA_DIR", str(shared_data))
    task = build_task("mbpp")
    return task, task.load("full")


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_mbpp_splits(mbpp):
    task, full = mbpp
    counts = {split: len(task.load(split)) for split in ("test", "train", "validation", "prompt")}
    assert counts == {"test": 500, "train": 374, "validation": 90, "prompt": 10} and len(full) == 974
    with pytest.raises(R1Error, match="no split 'dev'"):
        task.load("dev")


def _check_references(task, samples):
    verdicts = task.run_tests_many([task.reference_completion(s) for s in samples], samples)
    return [(s.id, v.status, v.results[0].reason if v.results else "") for s, v in zip(samples, verdicts)
            if not v.all_passed]


def test_mbpp_reference_subset_passes(mbpp):
    """Every 7th problem plus the two whose setup code uses the solution's classes (the full sweep is slow)."""
    task, full = mbpp
    subset = [s for i, s in enumerate(full) if i % 7 == 0 or s.meta.get("test_setup_code")]
    assert len(subset) >= 140
    assert _check_references(task, subset) == []


@pytest.mark.slow
def test_mbpp_all_references_pass(mbpp):
    task, full = mbpp
    assert _check_references(task, full) == []


def test_every_benchmark_problem_is_judged_outside(humaneval, mbpp):
    """No HumanEval or MBPP problem falls back to a verdict made inside the program's process."""
    for (task, samples), modes in ((humaneval, {"compare": 152, "replay": 12}), (mbpp, {"compare": 973, "replay": 1})):
        assert task.prepare(samples) == [None] * len(samples)
        assert collections.Counter(task.test_plan(s).mode for s in samples) == modes


def test_mbpp_partial_and_wrong(mbpp):
    task, full = mbpp
    s = next(x for x in full if x.id == "mbpp-2")  # similar_elements, three asserts
    assert task.grade(task.reference_completion(s), s) == 1.0
    assert "similar_elements" in task.question(s) and "```python" in task.question(s)
    half = "```python\ndef similar_elements(a, b):\n    return (4, 5) if 5 in a else (3, 4)\n```"
    v = task.run_tests(half, s)
    assert (v.passed, v.total, v.status) == (2, 3, "wrong_answer") and abs(v.fraction - 2 / 3) < 1e-9
    assert task.grade(half, s) == 0.0
    challenge = build_task("mbpp", challenge_tests=True)
    with_challenge = next(x for x in full if x.meta.get("challenge_test_list"))
    assert challenge.num_tests(with_challenge) > task.num_tests(with_challenge)


# -------------------------------------------------------------------------------------------------------- stdio
def write(path, records):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return str(path)


SUM = {
    "id": "sum",
    "problem": "Print a+b.",
    "tests": [{"input": "1 2\n", "output": "3\n"}, {"input": "5 5", "output": "10"}],
}
SORT = {"id": "sort", "problem": "Sort.", "tests": [{"input": "3\n3 1 2\n", "output": "1 2 3\n"}]}


def test_stdio_grading(tmp_path):
    task = build_task("stdio", data=write(tmp_path / "p.jsonl", [SUM, SORT]), timeout_s=5)
    s_sum, s_sort = task.load("test")
    good = "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    assert task.grade(good, s_sum) == 1.0
    assert task.grade("```python\nprint(3)\n```", s_sum) == 0.0
    v = task.run_tests("```python\nprint(3)\n```", s_sum)
    assert (v.passed, v.total, v.status) == (1, 2, "wrong_answer")
    spaced = "```python\ninput()\nprint(*sorted(map(int, input().split())), sep='   ', end=' \\n\\n')\n```"
    assert task.grade(spaced, s_sort) == 1.0  # whitespace-normalised by default
    exact = build_task("stdio", data=str(tmp_path / "p.jsonl"), compare="exact")
    assert exact.grade(spaced, s_sort) == 0.0
    assert exact.grade("```python\ninput()\nprint(*sorted(map(int, input().split())))\n```", s_sort) == 1.0


def test_stdio_timeout_is_a_fail(tmp_path):
    task = build_task("stdio", data=write(tmp_path / "p.jsonl", [SUM]), timeout_s=0.5)
    v = task.run_tests("```python\nwhile True: pass\n```", task.load("x")[0])
    assert v.status == "timeout" and v.passed == 0


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"id": "a", "problem": "p", "tests": [{"input": "1"}]', "malformed JSON"),
        ('{"id": "a", "problem": "p"}', "missing field(s) 'tests'"),
        ('{"id": "a", "problem": "p", "tests": []}', "non-empty list"),
        ('{"id": "a", "problem": "p", "tests": [{"input": "1"}]}', "'input' and 'output'"),
        ('{"id": "a", "problem": "p", "tests": [{"input": 1, "output": "1"}]}', "must be strings"),
        ('{"id": "a", "problem": 3, "tests": [{"input": "1", "output": "1"}]}', "'problem' must be a string"),
    ],
)
def test_stdio_errors_name_file_and_line(tmp_path, line, message):
    path = write(tmp_path / "bad.jsonl", [SUM, line])
    with pytest.raises(R1Error, match=r"bad\.jsonl:2") as e:
        build_task("stdio", data=path).load("test")
    assert message in str(e.value) and "\n" not in str(e.value)


def test_duplicate_ids_and_missing_data(tmp_path):
    with pytest.raises(R1Error, match="duplicate id 'sum'"):
        build_task("stdio", data=write(tmp_path / "d.jsonl", [SUM, SUM])).load("test")
    with pytest.raises(R1Error, match="needs a data file"):
        build_task("stdio")
    with pytest.raises(R1Error, match="bad.jsonl:1: missing field"):
        build_task("humaneval", data=write(tmp_path / "bad.jsonl", [{"id": "x", "problem": "p"}])).load("test")
    with pytest.raises(R1Error, match="unknown compare"):
        build_task("stdio", data="x.jsonl", compare="fuzzy")


# ------------------------------------------------------------------------------------------------ sandbox errors
class BrokenPool:
    def __init__(self):
        self.calls = 0

    def submit(self, job):
        self.calls += 1
        f = Future()
        f.set_result(Result("sandbox_error", reason="sandbox did not start"))
        return f


def test_sandbox_error_is_never_scored(tmp_path, monkeypatch):
    pool = BrokenPool()
    monkeypatch.setattr("r1.tasks.code.default_pool", lambda *a, **k: pool)
    task = build_task("stdio", data=write(tmp_path / "p.jsonl", [SORT]))
    s = task.load("test")[0]
    v = task.run_tests("print(1)", s)
    assert v.status == "sandbox_error" and pool.calls == 2  # retried once
    with pytest.raises(SandboxError, match="sandbox did not start"):
        task.grade("print(1)", s)
    with pytest.raises(SandboxError):
        task.grade_many(["print(1)"], [s])


class TimedOutJudgePool:
    """The real pool, except that every judge's run of a ``replay`` problem times out (a busy machine)."""

    def __init__(self, pool):
        self.pool, self.judge_calls = pool, 0

    def submit(self, job):
        if "__r1_judge__" in job.code:
            self.judge_calls += 1
            f = Future()
            f.set_result(Result("timeout", reason="wall-clock limit of 10 s exceeded"))
            return f
        return self.pool.submit(job)


def test_judge_that_times_out_leaves_the_verdict_unknown(humaneval, monkeypatch):
    """A judge's run holds the tests and the reference, none of the program's code: when it gives no verdict it
    is retried once, then the verdict is unknown (SandboxError, reward None), never a fail of the program."""
    task, samples = humaneval
    s = next(x for x in samples if x.id == "HumanEval/2")
    assert task.test_plan(s).mode == "replay"
    pool = TimedOutJudgePool(default_pool(task.workers, task.isolation))
    monkeypatch.setattr("r1.tasks.code.default_pool", lambda *a, **k: pool)
    v = task.run_tests(task.reference_completion(s), s)
    assert v.status == "sandbox_error" and pool.judge_calls == 2
    with pytest.raises(SandboxError, match="judge's run failed"):
        task.grade(task.reference_completion(s), s)


def test_eval_protocol_matches_grade(tmp_path):
    """r1.eval grades answer by answer: grade(c) == grade_answer(extract_answer(c)); equal programs are one answer."""
    task = build_task("stdio", data=write(tmp_path / "p.jsonl", [SUM]))
    s = task.load("test")[0]
    good = "<think>add</think> <answer>```python\na, b = map(int, input().split())\nprint(a + b)\n```</answer>"
    for c in (good, "```python\nprint(3)\n```", "no code", ""):
        assert task.grade(c, s) == task.grade_answer(task.extract_answer(c, s), s)
    assert task.extract_answer("", s) is None and task.grade_answer(None, s) == 0.0
    assert task.same_answer(task.extract_answer(good, s), task.extract_answer(good + "\n", s), s)
    assert task.grade_many([good, "print(1)", ""], [s, s, s]) == [1.0, 0.0, 0.0]
    assert task.run_tests("", s).status == "runtime_error"
