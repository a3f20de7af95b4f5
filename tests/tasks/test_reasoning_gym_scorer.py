"""reasoning-gym answers are scored out of reach of the answer: in a confined, time-limited worker process, with the
scorers' ``eval``/``parse_expr`` restricted (``r1.tasks.reasoning_gym.score_isolated``). A fake scorer (this module's
``FakeScorer``, built by the worker) hangs, raises, writes a file, starts a program; the real generators get the
hostile answers of ``docs/hostile-inputs.md`` when reasoning-gym is installed.

Run: ``python -m pytest tests/tasks/test_reasoning_gym_scorer.py -q``
"""

from __future__ import annotations

import ctypes
import logging
import os
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
        if answer == "stderr":  # a flood of the trainer's terminal or log file
            for _ in range(64):
                os.write(2, b"x" * (1 << 16))
            os.write(2, b"\nlast words\n")
            return 1.0
        if answer == "crash":
            os.write(2, b"Traceback: the scorer crashed\n")
            os._exit(3)
        if answer == "refuse":  # the screen refuses code; a scorer that catches the error scores it all the same
            from r1.tasks import reasoning_gym

            try:
                reasoning_gym.sys.modules["sympy"].parse_expr("x.func")
            except ValueError:
                return 0.5
        if answer == "queue":  # replies written ahead, for the requests to come, with this request's nonce if any
            frame = sys._getframe()
            while "request" not in frame.f_locals:
                frame = frame.f_back
            request = frame.f_locals["request"]
            reply = (1.0, "")
            if isinstance(request[0], int):
                reply = (request[0], reply)
            for _ in range(5):
                sys.stdout.buffer.write(_raw_frame(pickle.dumps(reply)))
            sys.stdout.buffer.flush()
            return 0.0
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


def _worker_pid() -> int | None:
    from r1.tasks import reasoning_gym

    worker = getattr(reasoning_gym._workers, "worker", None)
    return None if worker is None else worker.proc.pid


def test_a_worker_cannot_flood_the_trainers_stderr_and_its_last_words_name_a_crash(capfd):
    assert score_isolated(_spec(), "stderr", {"answer": "7"}) == (1.0, "")  # 4 MiB written to its stderr
    score, problem = score_isolated(_spec(), "crash", {"answer": "7"})
    assert score == 0.0 and problem.startswith("died") and "the scorer crashed" in problem, problem
    assert len(capfd.readouterr().err) < 1000  # none of it reached this process's stderr
    assert score_isolated(_spec(), "7", {"answer": "7"}) == (1.0, "")


def test_replies_queued_ahead_by_a_taken_over_worker_do_not_score_later_answers():
    score_isolated(_spec(), "queue", {"answer": "7"})  # its own score is the taken-over scorer's to give
    later = [score_isolated(_spec(), "8", {"answer": "7"}) for _ in range(3)]
    assert [score for score, _ in later] == [0.0, 0.0, 0.0], later
    assert later[0][1].startswith("error reply")  # the first forged frame did not echo the new request's nonce
    assert score_isolated(_spec(), "7", {"answer": "7"}) == (1.0, "")


@pytest.mark.parametrize("answer, said", [("raise", "error RuntimeError"), ("refuse", "refused (attribute access")])
def test_an_answer_that_fails_or_is_refused_scores_0_and_gets_a_fresh_worker(answer, said):
    assert score_isolated(_spec(), "7", {"answer": "7"}) == (1.0, "")
    before = _worker_pid()
    score, problem = score_isolated(_spec(), answer, {"answer": "7"})
    assert score == 0.0 and problem.startswith(said), problem  # refused: 0, though the scorer gave 0.5
    assert _worker_pid() is None  # dropped; the next answer starts a fresh one
    assert score_isolated(_spec(), "7", {"answer": "7"}) == (1.0, "")
    assert _worker_pid() not in (None, before)


def test_a_worker_is_replaced_after_restart_every_answers():
    pids = []
    for _ in range(5):
        assert score_isolated(_spec(), "7", {"answer": "7"}, restart_every=2) == (1.0, "")
        pids.append(_worker_pid())
    assert pids[0] is pids[2] is pids[4] is None  # replaced after the 2nd and 4th answer
    assert pids[1] is not None and pids[3] is not None


def test_a_machine_that_cannot_confine_the_scorer_refuses_the_task_unless_opted_in(monkeypatch, tmp_path, caplog):
    pytest.importorskip("reasoning_gym")
    from r1.errors import R1Error
    from r1.sandbox import confine
    from r1.tasks import build_task, reasoning_gym

    libc = confine._libc()
    assert confine.probe_guards() == {"no_new_privs": confine._has_no_new_privs(libc),
                                      "landlock": confine._landlock_abi(libc) >= 1,
                                      "seccomp": confine._has_seccomp_filter()}
    monkeypatch.setattr(confine, "_landlock_abi", lambda libc: -1)
    monkeypatch.setattr(confine, "_has_seccomp_filter", lambda: False)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(R1Error, match=r"cannot be confined here \(no landlock, seccomp\).*unconfined_scorer") as e:
        build_task("reasoning_gym", dataset="leg_counting", size=3, test_size=1)
    assert "\n" not in str(e.value) and list(tmp_path.iterdir()) == []
    monkeypatch.setattr(confine, "_has_no_new_privs", lambda libc: False)
    with pytest.raises(R1Error, match="no landlock, no_new_privs, seccomp"):
        build_task("reasoning_gym", dataset="leg_counting", size=3, test_size=1)
    monkeypatch.setattr(reasoning_gym, "_warned_guards", [])
    with caplog.at_level(logging.WARNING, logger="r1.tasks.reasoning_gym"):
        task = build_task("reasoning_gym", dataset="leg_counting", size=3, test_size=1, unconfined_scorer=True)
    assert task.unconfined_scorer and "runs without landlock, no_new_privs, seccomp" in caplog.text
    with pytest.raises(R1Error, match="unconfined_scorer must be true or false"):
        build_task("reasoning_gym", dataset="leg_counting", size=3, test_size=1, unconfined_scorer="yes")
    with pytest.raises(R1Error, match="scorer_restart_every must be an integer >= 1"):
        build_task("reasoning_gym", dataset="leg_counting", size=3, test_size=1, scorer_restart_every=0,
                   unconfined_scorer=True)


def test_a_worker_reporting_a_missing_guard_is_refused_unless_opted_in(monkeypatch):
    from r1.errors import R1Error
    from r1.tasks import reasoning_gym

    real = reasoning_gym._start_worker

    def unconfined_worker():
        worker = real()
        worker.guards = dict(worker.guards, landlock=False)  # as a kernel without it would report
        return worker

    monkeypatch.setattr(reasoning_gym, "_start_worker", unconfined_worker)
    reasoning_gym._drop_worker()
    with pytest.raises(R1Error, match="could not confine itself \\(no landlock\\)"):
        score_isolated(_spec(), "7", {"answer": "7"})
    assert _worker_pid() is None
    assert score_isolated(_spec(), "7", {"answer": "7"}, confined=False) == (1.0, "")
    reasoning_gym._drop_worker()


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
        assert task.scorer_failures == {"timeout": 1, "refused": 3}  # the power tower; the code, though caught
        said = [r.getMessage() for r in caplog.records if "scorer failed" in r.getMessage() and dataset in r.getMessage()]
        assert len(said) == 2 and any("refused" in m for m in said)  # once per kind


def test_the_installed_reasoning_gym_satisfies_the_pin():
    pytest.importorskip("reasoning_gym")
    import tomllib
    from importlib.metadata import version
    from pathlib import Path

    from packaging.requirements import Requirement

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    (pin,) = pyproject["project"]["optional-dependencies"]["reasoning_gym"]
    assert Requirement(pin).specifier.contains(version("reasoning-gym")), (pin, version("reasoning-gym"))
