"""r1.sandbox.run: statuses, stdin/stdout, files, tests mode, limits, and the isolation report.

Run: pytest tests/sandbox/test_sandbox.py -q   (~10 s on 2 busy cores; every case runs at the active level and,
where namespaces work, at the rlimits fallback too)
"""

import pytest

from r1.errors import R1Error
from r1.sandbox import STATUSES, Result, check_output, isolation_info, isolation_level, run

FAST = dict(timeout_s=5, memory_mb=256)


def test_isolation_is_reported():
    info = isolation_info()
    assert isolation_level() == info.level in ("namespaces", "rlimits")
    assert info.describe().startswith(info.level)
    assert info.python


def test_stdin_stdout_roundtrip(level):
    r = run("import sys\nprint(sys.stdin.read()[::-1])", stdin="abc", level=level, **FAST)
    assert (r.status, r.stdout, r.exit_code, r.completed) == ("ok", "cba\n", 0, True)
    assert r.wall_s > 0 and r.startup_s > 0 and r.level == (level or isolation_level())


def test_large_stdin_and_stdout(level):
    data = "x" * (3 << 20)  # larger than any pipe buffer, both ways
    r = run("import sys\nsys.stdout.write(sys.stdin.read())", stdin=data, level=level, **FAST)
    assert r.status == "ok" and r.stdout == data


@pytest.mark.parametrize(
    "code, status, reason",
    [
        ("print(1)", "ok", ""),
        ("raise ValueError('boom')", "runtime_error", "uncaught ValueError"),
        ("import sys; sys.exit(3)", "runtime_error", "exit code 3"),
        ("def f(:\n  pass", "runtime_error", "uncaught SyntaxError"),
        ("x = [0] * (400 * 2**20)", "memory", "memory"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", "runtime_error", "SIGSEGV"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "killed", "SIGKILL"),
    ],
)
def test_statuses(level, code, status, reason):
    r = run(code, level=level, **FAST)
    assert r.status == status, (r.reason, r.stderr[-500:])
    assert reason in r.reason
    assert r.status in STATUSES


def test_sys_exit_zero_is_ok_without_tests(level):
    r = run("print('early'); import sys; sys.exit(0)", level=level, **FAST)
    assert r.status == "ok" and r.stdout == "early\n" and not r.completed


def test_tests_mode_counts_each_test(level):
    code = "def add(a, b):\n    return a + b if a != 2 else 0\n"
    tests = ["assert add(1, 1) == 2", "assert add(2, 2) == 4", "assert add(3, 1) == 4", "add(None, 1)"]
    r = run(code, tests=tests, level=level, **FAST)
    assert r.tests == ["pass", "fail", "pass", "error:TypeError"]
    assert r.num_tests_passed == 2 and r.status == "runtime_error" and r.completed
    r = run(code, tests=tests[:3], level=level, **FAST)
    assert r.status == "wrong_answer" and "1/3 tests failed" in r.reason
    r = run(code, tests=tests[::2][:1], level=level, **FAST)
    assert r.status == "ok" and r.tests == ["pass"]


@pytest.mark.parametrize("exit_call", ["import sys; sys.exit(0)", "import os; os._exit(0)", "exit()", "quit()"])
def test_exit_before_tests_is_not_a_pass(level, exit_call):
    """The classic reward hack: leave with status 0 before the asserts run."""
    r = run(f"def f():\n    return 0\n{exit_call}\n", tests=["assert f() == 1"], level=level, **FAST)
    assert r.status == "runtime_error" and "before its tests finished" in r.reason
    assert r.tests == ["not_run"] and not r.completed


def test_forged_status_lines_are_ignored(level):
    """Status lines without the secret nonce (which the program never sees) do not count."""
    forge = (
        "import os\nfor fd in range(3, 20):\n    try: os.write(fd, b'x D\\nx T 0 pass\\n')\n"
        "    except OSError: pass\nos._exit(0)"
    )
    r = run(forge, tests=["assert False"], level=level, **FAST)
    assert r.status == "runtime_error" and r.tests == ["not_run"]


def test_files_are_readable_and_cwd_writable(level):
    code = "print(open('data/in.txt').read()); open('out.txt', 'w').write('ok'); print(open('out.txt').read())"
    r = run(code, files={"data/in.txt": "hello"}, level=level, **FAST)
    assert r.status == "ok" and r.stdout == "hello\nok\n"


@pytest.mark.parametrize("name", ["/etc/x", "../x", "main.py", ""])
def test_bad_file_names(name):
    with pytest.raises(R1Error):
        run("pass", files={name: "x"}, **FAST)


def test_bad_limits():
    for kw in ({"timeout_s": 0}, {"memory_mb": 8}, {"max_procs": 0}):
        with pytest.raises(R1Error):
            run("pass", **{**FAST, **kw})


def test_timeout_counts_from_program_start(level):
    r = run("import time; time.sleep(0.3); print('done')", timeout_s=2, memory_mb=256, level=level)
    assert r.status == "ok" and 0.25 < r.wall_s < 2
    r = run("import time; time.sleep(30)", timeout_s=0.5, memory_mb=256, level=level)
    assert r.status == "timeout" and r.wall_s < 3


def test_cpu_limit_catches_busy_threads(level):
    """Two busy threads burn CPU twice as fast as the wall clock: RLIMIT_CPU stops them first or together."""
    code = "import threading\ndef spin():\n    while True: pass\n"
    code += "for _ in range(2):\n    threading.Thread(target=spin).start()"
    r = run(code, timeout_s=3, memory_mb=256, level=level)
    assert r.status == "timeout"


def test_output_cap(level):
    r = run("print('y' * 5000)", max_output_bytes=1000, level=level, **FAST)
    assert r.status == "killed" and r.truncated and len(r.stdout) == 1000


def test_check_output():
    ok = Result("ok", 0, "1 2\n3  \n\n")
    assert check_output(ok, "1 2\n3\n").status == "ok"  # whitespace tokens
    assert check_output(ok, "1 2 3").status == "ok"
    assert check_output(ok, "1 2\n4\n").status == "wrong_answer"
    assert check_output(ok, "1 2\n3\n", "exact").status == "wrong_answer"
    assert check_output(ok, "1 2\n3  \n\n", "exact").status == "ok"
    assert check_output(Result("timeout"), "x").status == "timeout"
    with pytest.raises(R1Error):
        check_output(ok, "x", "fuzzy")


def test_sandbox_error_when_the_sandbox_cannot_start(monkeypatch):
    """A broken sandbox is a sandbox_error, never a pass or a wrong answer."""
    from dataclasses import replace

    from r1.sandbox.core import _run_with

    broken = replace(isolation_info(), python="/nonexistent/python3")
    r = _run_with(broken, "print(1)", tests=["assert True"], timeout_s=5, memory_mb=256)
    assert r.status == "sandbox_error" and r.reason
