"""Assert-based tests judged outside the program (r1.tasks.assert_tests): which asserts split into an observed
expression + an expected literal, the replay of other test code, and the in-process fallback.

Run: pytest tests/tasks/test_assert_tests.py -q   (~4 s: a few sandboxed programs)
"""

import ast
import json

import pytest

from r1.sandbox import Result
from r1.tasks import build_task
from r1.tasks import assert_tests as at
from r1.tasks.assert_tests import WRAPPERS, assert_form, judge_replay, split_asserts, split_check


def form(src, names=("f",)):
    got = assert_form(ast.parse(src).body[0].test, set(names), WRAPPERS)
    return got if got in (None, "always") else (ast.unparse(got[0]), got[1], got[2])


@pytest.mark.parametrize(
    "src, expected",
    [
        ("assert f(1, [2]) == (3, 'a')", ("f(1, [2])", "eq", (3, "a"))),
        ("assert {1: 2.5} == f(x=1)", ("f(x=1)", "eq", {1: 2.5})),
        ("assert tuple(f([1])) == (1,)", ("tuple(f([1]))", "eq", (1,))),
        ("assert sorted(set(f(1))) == [1]", ("sorted(set(f(1)))", "eq", [1])),
        ("assert f('<>')", ("f('<>')", "truthy", None)),
        ("assert not f('<')", ("f('<')", "falsy", None)),
        ("assert f(3) is True", ("f(3)", "is", True)),
        ("assert f(3) is None", ("f(3)", "is", None)),
        ("assert True", "always"),
        # the expected side is code, or the comparison would run in the program's process: not this form
        ("assert f(1) == g(1)", None),
        ("assert f(1) == 2 / 3", None),
        ("assert abs(f(1) - 0.5) < 1e-6", None),
        ("assert math.isclose(f(1), 0.5)", None),  # the expected value would sit inside the observed expression
        ("assert round(f(1), 2) == 0.5", None),  # a wrapper with a second argument
        ("assert f(1) == 1 == 1", None),
        ("assert f(1) is 1", None),
        ("assert g(f(1)) == 1", None),  # g is no wrapper
        ("assert False", None),
    ],
)
def test_assert_forms(src, expected):
    assert form(src) == expected


def test_split_check_names_only_the_candidate_and_builtins():
    ok = "def check(candidate):\n    'doc'\n    assert candidate(1) == 2\n    assert list(candidate(2)) == []\n"
    assert split_check(ok, "f") == ((0, "candidate(1)", {"candidate": "f"}, "eq", 2),
                                    (0, "list(candidate(2))", {"candidate": "f"}, "eq", []))
    for body in ("x = 1\n    assert candidate(x) == 2",  # a local of check does not exist in the program
                 "assert candidate(helper(1)) == 2",  # nor does the test code's helper
                 "for i in range(3):\n        assert candidate(i) == i"):
        assert split_check(f"def check(candidate):\n    {body}\n", "f") is None
    assert split_check("tuple = list\ndef check(candidate):\n    assert tuple(candidate(1)) == (1,)\n", "f") is None
    assert split_check("def check(candidate, extra):\n    assert candidate(1) == 2\n", "f") is None


def test_split_asserts_mbpp():
    assert split_asserts(["assert f(1) == 2", "assert int(f(2)) == 3"], {"f"}) == (
        (0, "f(1)", {}, "eq", 2), (1, "int(f(2))", {}, "eq", 3))
    assert split_asserts(["assert f(1) == 2", "assert f(2) == sys.getsizeof(2)"], {"f"}) is None
    assert split_asserts(["assert f(1) == 2\nassert f(2) == 3"], {"f"}) is None


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


HELPER_PROMPT = 'def helper(x):\n    return x * x + 0.1\n\n\ndef f(x):\n    """helper(x), or ValueError if x < 0"""\n'
HELPER_TEST = (
    "def check(candidate):\n    try:\n        candidate(-1)\n        assert False, 'no ValueError'\n"
    "    except ValueError:\n        pass\n    import random\n    for _ in range(20):\n"
    "        x = random.random()\n        assert abs(candidate(x) - helper(x)) < 1e-9\n"
)


@pytest.fixture
def helper_task(tmp_path):
    rec = {"id": "h/0", "problem": HELPER_PROMPT, "entry_point": "f", "test": HELPER_TEST,
           "answer": "    if x < 0:\n        raise ValueError(x)\n    return helper(x)\n"}
    task = build_task("humaneval", data=_write(tmp_path / "he.jsonl", [rec]), timeout_s=5)
    return task, task.load("test")[0]


def test_replay_keeps_the_tests_semantics(helper_task):
    """Exceptions the test expects, random inputs, the prompt's helper, a tolerance: judged with the original code,
    the program's values replayed; redefining the helper the test uses gains nothing."""
    task, s = helper_task
    done = "    if x < 0:\n        raise ValueError('negative')\n    return x * x + 0.1 + 1e-12\n"
    cases = {
        done: 1.0,
        task.reference_completion(s): 1.0,
        "    return helper(x)\n": 0.0,  # no ValueError
        "    if x < 0:\n        raise TypeError\n    return helper(x)\n": 0.0,  # the wrong exception
        "    if x < 0:\n        raise ValueError\n    return x * x\n": 0.0,  # outside the tolerance
        "```python\ndef helper(x):\n    return 0\ndef f(x):\n    if x < 0:\n        raise ValueError\n"
        "    return 0\n```": 0.0,
    }
    assert task.grade_many(list(cases), [s] * len(cases)) == list(cases.values())
    assert task.test_plan(s).mode == "replay"


FORGE_VALUES = """```python
import sys, os
def f(x):
    fr = sys._getframe(1)
    while fr is not None and "say" not in fr.f_locals:
        fr = fr.f_back
    say, encode = fr.f_locals["say"], fr.f_globals["encode"]
    for i, t in enumerate(fr.f_locals["tests"]):
        say("V %d %s" % (i, {bad} if t[2][0] < 0 else encode(helper(*t[2]))))
    say("D")
    os._exit(0)
```"""


@pytest.mark.parametrize("bad", ["'[\"x\"]'", "'[\"s\",\"%s\"]' % ('61' * (1 << 20))"])
def test_replay_value_that_cannot_be_decoded_is_no_expected_exception(helper_task, bad):
    """The test expects ValueError from candidate(-1); a malformed or oversized value written in its place makes the
    judge's decoder raise ValueError, which must fail the test, not pass as the exception the test wanted."""
    task, s = helper_task
    assert task.grade(FORGE_VALUES.format(bad=bad), s) == 0.0


def test_judge_without_a_verdict_leaves_it_unknown():
    """The judge's run holds no code of the program's: its timeout, memory or kill is no fail of the program."""
    plan = at.TestPlan("replay", 1, probe_tests=[0])
    program_run = Result("ok", tests=["value"], completed=True, values=['["i","1"]'])
    for status in ("timeout", "memory", "killed", "sandbox_error"):
        assert judge_replay(plan, program_run, Result(status, reason="busy")).status == "sandbox_error", status
    judged = Result("ok", tests=["value"], completed=True, values=['["b",0]'])
    assert judge_replay(plan, program_run, judged).status == "wrong_answer"


def test_replay_records_only_the_tests_calls(tmp_path):
    """A recursive reference calls itself by name: those inner calls are not the test's, so a correct iterative
    program passes too."""
    rec = {"id": "fib", "problem": "def fib(n):\n", "entry_point": "fib",
           "answer": "    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
           "test": "def check(candidate):\n    for n in range(8):\n"
                   "        assert candidate(n) == [0, 1, 1, 2, 3, 5, 8, 13][n]\n"}
    task = build_task("humaneval", data=_write(tmp_path / "fib.jsonl", [rec]), timeout_s=5)
    s = task.load("test")[0]
    loop = "    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n"
    cases = [task.reference_completion(s), loop, "    return n\n"]
    assert task.grade_many(cases, [s] * 3) == [1.0, 1.0, 0.0]
    assert task.test_plan(s).mode == "replay" and len(task.test_plan(s).probes) == 8


def test_inprocess_fallback_warns_and_wants_plain_results(tmp_path):
    """Tests that call the program on objects of its own class with a computed expected value can be judged only in
    the program's process: a warning names the problem, and results must still be plain builtin values."""
    rec = {"id": "box", "problem": "Add the boxes.", "test_list": ["assert total([Box(2), Box(3)]) == Box(5).v"],
           "answer": "class Box:\n    def __init__(self, v):\n        self.v = v\n\ndef total(bs):\n"
                     "    return sum(b.v for b in bs)\n"}
    task = build_task("mbpp", data=_write(tmp_path / "m.jsonl", [rec]), timeout_s=5)
    s = task.load("test")[0]
    with pytest.warns(RuntimeWarning, match="'box' is graded inside the program's process"):
        assert task.grade(task.reference_completion(s), s) == 1.0
    assert task.test_plan(s).mode == "inprocess"
    box = "class Box:\n    def __init__(self, v):\n        self.v = v\n"
    hacks = [
        box + "class Yes:\n    def __eq__(self, o): return True\ndef total(bs):\n    return Yes()\n",
        box + "class S(int):\n    def __eq__(self, o): return True\n    __hash__ = int.__hash__\n"
              "def total(bs):\n    return S(0)\n",
        box + "def total(bs):\n    return 0\nimport builtins\nbuiltins.exec = lambda *a, **k: None\n",
    ]
    assert task.grade_many([f"```python\n{h}```" for h in hacks], [s] * len(hacks)) == [0.0] * len(hacks)
