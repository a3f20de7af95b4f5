"""reasoning-gym answers are scored out of reach of the answer: in a confined, time-limited worker process, with the
scorers' ``eval``/``parse_expr`` restricted (``r1.tasks.reasoning_gym.score_isolated``). A fake scorer (this module's
``FakeScorer``, built by the worker) hangs, raises, writes a file, starts a program; the real generators get the
hostile answers of ``docs/hostile-inputs.md`` when reasoning-gym is installed.

Run: ``python -m pytest tests/tasks/test_reasoning_gym_scorer.py -q``
"""

from __future__ import annotations

import ctypes
import logging
import pickle
import subprocess
import sys
import time

import pytest

from r1.tasks.reasoning_gym import ScorerSpec, check_expression_text, plain_eval, score_isolated

#: Answers a scorer saw in *this* process; a scorer run here (not in the worker) would append to it.
SEEN: list[str] = []


class FakeScorer:
    """A generator stand-in whose ``score_answer`` misbehaves on command."""

    def __init__(self, path: str = ""):
        self.path = path

    def score_answer(self, answer: str, entry: dict) -> float:
        SEEN.append(answer)
        if answer == "loop":
            while True:
                pass
        if answer == "raise":
            raise RuntimeError("scorer bug")
        if answer == "write":
            with open(self.path, "w") as f:
                f.write("reward hacked")
            return 1.0
        if answer == "exec":
            subprocess.run(["true"], check=True)
            return 1.0
        if answer == "memory":
            return float(len(bytearray(8 << 30)) > 0)
        if answer == "exit":
            sys.exit(0)
        if answer == "huge":
            return 7.5
        if answer in FORGED:  # what code that took the worker over could write to the parent
            sys.stdout.buffer.write(FORGED[answer])
            sys.stdout.buffer.flush()
            time.sleep(30)
        return float(answer == entry["answer"])


class _RunsInTheParent:
    """Unpickled, runs ``exec`` (a pickle may name any callable): code a taken-over worker would send the parent."""

    def __reduce__(self):
        return exec, ("import r1; r1.FORGED_PICKLE_RAN = True",)


def _raw_frame(data: bytes) -> bytes:
    return len(data).to_bytes(8, "little") + data


FORGED = {
    "pickle": _raw_frame(pickle.dumps((1.0, _RunsInTheParent()))),
    "oversized": (1 << 40).to_bytes(8, "little"),
    "not a string": _raw_frame(pickle.dumps((0.0, [1]))),
}

#: parse_expr evaluates Python: from names sympy exports, text builds the string "setattr(__import__('r1'),
#: 'pwned', 1)" without a string literal, underscore-led name or attribute access, and lambdify runs it.
_Q, _LP, _RP, _COMMA = "srepr(x)[7]", "srepr(x)[6]", "srepr(x)[10]", "srepr(Tuple(x, y))[17:19]"
LAMBDIFY_ESCAPE = "lambdify(x, " + " + ".join([
    "sstr(setattrq)[:7]", _LP, "sstr(a__import__)[1:]", _LP, _Q, "sstr(r1)", _Q, _RP, _COMMA, _Q, "sstr(pwned)", _Q,
    _COMMA, "sstr(1)", _RP]) + ")(1)"


def _spec(path: str = "") -> ScorerSpec:
    return ScorerSpec(f"{__name__}:FakeScorer", (), {"path": path})


def _landlock() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    syscall = ctypes.CDLL(None, use_errno=True).syscall
    syscall.restype = ctypes.c_long
    return syscall(ctypes.c_long(444), None, ctypes.c_size_t(0), ctypes.c_uint32(1)) >= 1


def test_a_normal_scorer_scores_in_the_worker():
    assert score_isolated(_spec(), "7", {"answer": "7"}) == (1.0, "")
    assert score_isolated(_spec(), "8", {"answer": "7"}) == (0.0, "")
    assert score_isolated(_spec(), "huge", {"answer": "7"}) == (1.0, "")  # clipped to [0, 1]
    assert SEEN == []  # never ran in this process


def test_an_endless_scorer_scores_0_within_the_budget_and_the_next_answer_still_scores():
    t0 = time.monotonic()
    score, problem = score_isolated(_spec(), "loop", {"answer": "7"}, timeout_s=1.0)
    assert (score, problem.split()[0]) == (0.0, "timeout")
    assert time.monotonic() - t0 < 3.0
    assert score_isolated(_spec(), "7", {"answer": "7"}) == (1.0, "")  # a fresh worker


@pytest.mark.parametrize("answer, problem", [
    ("raise", "error RuntimeError"),
    ("memory", "error MemoryError"),  # the worker's address space is capped
    ("exit", "died"),
])
def test_a_failing_scorer_scores_0_and_says_why(answer, problem):
    score, said = score_isolated(_spec(), answer, {"answer": answer})
    assert score == 0.0 and said.startswith(problem)
    assert score_isolated(_spec(), "7", {"answer": "7"}) == (1.0, "")


def test_a_scorer_cannot_write_files_or_start_programs(tmp_path):
    if not _landlock():
        pytest.skip("no Landlock on this kernel: file writes are not confined")
    target = tmp_path / "hacked.txt"
    assert score_isolated(_spec(str(target)), "write", {"answer": "write"}) == (0.0, "error PermissionError")
    assert not target.exists()
    score, problem = score_isolated(_spec(), "exec", {"answer": "exec"})
    assert score == 0.0 and problem.startswith("error")  # execve refused by seccomp
    assert SEEN == []


@pytest.mark.parametrize("text, value", [
    ("[[1, 0], [0, 1]]", [[1, 0], [0, 1]]),
    ("['a', 'b']", ["a", "b"]),
    ("(0x3 << 2) + -1", 11),
    ("{1: (2, 3.5)}", {1: (2, 3.5)}),
])
def test_plain_eval_evaluates_plain_values(text, value):
    assert plain_eval(text) == value


@pytest.mark.parametrize("text", [
    "__import__('os').system('true')", "open('x', 'w')", "().__class__", "[x for x in (1,)]", "lambda: 1",
    "a", "(1)[0]", "f'{1}'",
])
def test_plain_eval_refuses_code(text):
    with pytest.raises((ValueError, SyntaxError)):
        plain_eval(text)


@pytest.mark.parametrize("text", ["3*x**2 + sin(x) + C", "13*68 + 62 - 52 + 50", "Abs(x) + max(1, 2)", "3.5*y", "5!"])
def test_expression_check_lets_expressions_through(text):
    check_expression_text(text)


@pytest.mark.parametrize("text", [
    "__import__('os').system('true')", "x.func", "S('1')", "exec(1)", "getattr(x, 1)", "_x", "1 + (",
    "srepr(x)", "sstr(x)[0]", "lambdify(x, x)", "sympify(x)", "\uff45\uff56\uff41\uff4c(1)", LAMBDIFY_ESCAPE,
])
def test_expression_check_refuses_code(text):
    with pytest.raises(ValueError):
        check_expression_text(text)


def test_expression_check_lets_sympy_math_and_the_callers_names_through():
    check_expression_text("sqrt(x) + exp(-x)*log(2) + atan(x)/pi + Rational(1, 3) + E + I")
    check_expression_text("N + S*Q", allowed={"N": 1, "S": 2, "Q": 3})  # a scorer's local_dict: its variables
    with pytest.raises(ValueError):
        check_expression_text("N + S*Q")


def test_screened_parse_expr_does_not_run_the_lambdify_escape():
    sympy_parser = pytest.importorskip("sympy.parsing.sympy_parser")
    import r1
    from r1.tasks.reasoning_gym import _restrict_evaluation

    real = sympy_parser.parse_expr
    try:
        _restrict_evaluation()  # what the worker does (here: this test process's sympy)
        with pytest.raises(ValueError):
            sympy_parser.parse_expr(LAMBDIFY_ESCAPE)
        assert not hasattr(r1, "pwned")
        x = sympy_parser.parse_expr("x")
        assert sympy_parser.parse_expr("N*x", local_dict={"N": x}) == x**2
    finally:
        import sympy
        import sympy.parsing

        for owner in (sympy_parser, sympy, sympy.parsing):
            owner.parse_expr = real


@pytest.mark.parametrize("answer, said", [
    ("pickle", "died"), ("oversized", "died"), ("not a string", "error reply"),
])
def test_a_taken_over_worker_cannot_run_code_in_or_flood_or_crash_the_parent(answer, said):
    import r1

    t0 = time.monotonic()
    score, problem = score_isolated(_spec(), answer, {"answer": answer}, timeout_s=20.0)
    assert score == 0.0 and problem.startswith(said), problem
    assert time.monotonic() - t0 < 10.0  # refused at once, not read until the deadline
    assert not hasattr(r1, "FORGED_PICKLE_RAN")
    assert score_isolated(_spec(), "7", {"answer": "7"}) == (1.0, "")


def test_hostile_answers_to_real_generators_score_0(tmp_path, caplog):
    pytest.importorskip("reasoning_gym")
    from r1.tasks import build_task

    target = tmp_path / "hacked.txt"
    hostile = [f"__import__('builtins').open({str(target)!r}, 'w')", f"open({str(target)!r}, 'w')",
               "S('1').func", "(9**9)**(9**9)"]
    for dataset in ("n_queens", "puzzle24"):
        task = build_task("reasoning_gym", dataset=dataset, size=3, test_size=1, seed=0, score_timeout_s=1.5)
        s = task.load("test")[0]
        assert task.grade(f"<answer>{s.answer}</answer>", s) == 1.0
        with caplog.at_level(logging.WARNING, logger="r1.tasks.reasoning_gym"):
            scores = [task.grade(f"<answer>{a}</answer>", s) for a in hostile]
        assert all(x <= 0.01 for x in scores), (dataset, scores)  # puzzle24 gives 0.01 for a wrong expression
        assert not target.exists()
        assert task.scorer_failures["timeout"] == 1  # the power tower
        assert sum("scorer failed" in r.getMessage() and dataset in r.getMessage() for r in caplog.records) == 1


def test_the_installed_reasoning_gym_satisfies_the_pin():
    pytest.importorskip("reasoning_gym")
    import tomllib
    from importlib.metadata import version
    from pathlib import Path

    from packaging.requirements import Requirement

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    (pin,) = pyproject["project"]["optional-dependencies"]["reasoning_gym"]
    assert Requirement(pin).specifier.contains(version("reasoning-gym")), (pin, version("reasoning-gym"))
