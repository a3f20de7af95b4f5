"""r1.workers: a child started on a "module:function" entry answers frames; a late answer kills it; a dead child's
exit code comes back.

Run: python -m pytest tests/test_workers.py -q
"""

import os
import time

import pytest

from r1.workers import ChildDied, ChildProcess, ChildTimeout, serve, wait_readable

# tests/ is on sys.path (pyproject's pytest pythonpath), so a child imports this module as `test_workers`.
ENTRY = "test_workers:_echo_main"


def _handle(request):
    kind, value = request
    if kind == "sleep":
        time.sleep(value)
    elif kind == "exit":
        os._exit(value)
    return value


def _echo_main() -> None:
    serve(_handle)


def test_a_child_echoes_frames_in_order():
    child = ChildProcess(ENTRY)
    try:
        big = b"x" * (3 << 20)  # larger than a pipe's buffer: read in several pieces
        for value in ([1, "two", {"3": 3.0}], big, None):
            child.send(("echo", value))
            assert child.receive(timeout_s=30.0) == value
    finally:
        child.close()
    assert child.proc.returncode == 0  # closing its input ends its serve loop


def test_a_late_answer_kills_the_child():
    child = ChildProcess(ENTRY)
    child.send(("echo", 1))
    assert child.receive(timeout_s=30.0) == 1  # started
    child.send(("sleep", 30.0))
    t0 = time.monotonic()
    with pytest.raises(ChildTimeout):
        child.receive(timeout_s=0.2)
    assert time.monotonic() - t0 < 5.0
    assert child.proc.returncode is not None  # killed
    with pytest.raises(ChildDied):
        child.send(("echo", 2))


def test_a_dead_child_gives_its_exit_code():
    children = [ChildProcess(ENTRY) for _ in range(2)]
    try:
        children[1].send(("exit", 3))
        ready = wait_readable(children, timeout_s=30.0)
        assert ready == [children[1]]  # its output closed; the other has nothing to say
        with pytest.raises(ChildDied) as e:
            children[1].receive()
        assert e.value.returncode == 3
        children[0].send(("echo", "alive"))
        assert children[0].receive(timeout_s=30.0) == "alive"
    finally:
        for child in children:
            child.close()
