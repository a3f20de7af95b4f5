"""The `code` reward: pass = 1, fail = 0, partial credit = share of tests passed, None on a sandbox error.

Run: pytest tests/rewards/test_code_reward.py -q   (~5 s: a few sandboxed programs)
"""

import json
from concurrent.futures import Future

import pytest

from r1.errors import R1Error
from r1.rewards import REWARDS, CompositeReward
from r1.sandbox import Result
from r1.tasks import build_task

PROBLEM = {
    "id": "double",
    "problem": "Print twice the input.",
    "tests": [{"input": "1", "output": "2"}, {"input": "2", "output": "4"}, {"input": "0", "output": "0"}],
}
GOOD = "<think>x2</think> <answer>```python\nprint(2 * int(input()))\n```</answer>"
PARTIAL = "```python\nn = int(input())\nprint(n * n if n else 0)\n```"  # right for 2 and 0, wrong for 1
BAD = "```python\nprint(7)\n```"


@pytest.fixture
def task(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps(PROBLEM) + "\n")
    return build_task("stdio", data=str(path), timeout_s=5)


def test_pass_fail_partial(task):
    code = REWARDS.get("code")
    s = task.load("train")[0]
    assert code(GOOD, s, task=task) == 1.0
    assert code(PARTIAL, s, task=task) == 0.0
    assert code(PARTIAL, s, task=task, partial=True) == pytest.approx(2 / 3)
    assert code(BAD, s, task=task, partial=True) == 0.0
    assert code(GOOD, s, task=task, partial=True) == 1.0


def test_in_a_composite_with_format(task):
    s = task.load("train")[0]
    reward = CompositeReward([("code", 1.0, {}), ("format", 0.5, {})], task)
    total, parts = reward(" " + GOOD, s)
    assert parts == {"code": 1.0, "format": 1.0} and total == 1.5


def test_sandbox_error_is_skipped_not_scored(task, monkeypatch):
    def broken(*a, **k):
        class P:
            def submit(self, job):
                f = Future()
                f.set_result(Result("sandbox_error", reason="broken"))
                return f

        return P()

    monkeypatch.setattr("r1.tasks.code.default_pool", broken)
    s = task.load("train")[0]
    assert REWARDS.get("code")(GOOD, s, task=task) is None
    assert REWARDS.get("code")(GOOD, s, task=task, partial=True) is None


HUMANEVAL_STYLE = {
    "id": "sq", "problem": "def sq(x):\n    \"\"\"x squared\"\"\"\n", "answer": "    return x * x\n",
    "entry_point": "sq",
    "test": "def check(candidate):\n    assert candidate(3) == 9\n    assert candidate(-2) == 4\n",
}


def test_faked_passes_get_zero_not_none(tmp_path):
    """A result that says it equals anything, or a forged "sandbox set-up failed" line (which would make the
    sample skipped rather than scored), earns 0.0."""
    path = tmp_path / "he.jsonl"
    path.write_text(json.dumps(HUMANEVAL_STYLE) + "\n")
    he = build_task("humaneval", data=str(path), timeout_s=5)
    s = he.load("test")[0]
    yes = "class Yes:\n    def __eq__(self, o): return True\ndef sq(x):\n    return Yes()\n"
    forge_setup_error = (
        "import sys, os\nf = sys._getframe(0)\nwhile 'cfg' not in f.f_locals:\n    f = f.f_back\n"
        "os.write(f.f_locals['st_fd'], f.f_locals['cfg']['nonce'].encode() + b' X forged\\n')\nos._exit(97)\n"
    )
    code = REWARDS.get("code")
    for program in (yes, "def sq(x):\n    return 0\n" + forge_setup_error):
        assert code(f"```python\n{program}```", s, task=he) == 0.0
        assert code(f"```python\n{program}```", s, task=he, partial=True) == 0.0
    assert code(he.reference_completion(s), s, task=he) == 1.0


def test_errors(task):
    s = task.load("train")[0]
    with pytest.raises(R1Error, match="valid: partial"):
        REWARDS.get("code")(GOOD, s, task=task, partail=True)
    with pytest.raises(R1Error, match="needs a code task"):
        REWARDS.get("code")(GOOD, s, task=build_task("addition"))
