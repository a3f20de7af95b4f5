"""Sandbox hardening: bad ``files=`` names are one-line errors, ``python -m r1.sandbox --help`` prints help, the
rlimits level hides the host's ``/proc`` and leaves nothing behind when its parent is SIGKILLed, and ``memory_mb``
caps a sandbox as a whole.

Run: pytest tests/sandbox/test_hardening.py -q   (~10 s; cases run at the active level and, where namespaces
work, at the rlimits fallback too)
"""

import subprocess
import sys

import pytest

from r1.errors import R1Error
from r1.sandbox import run

FAST = dict(timeout_s=5, memory_mb=256)


@pytest.mark.parametrize(
    "name",
    ["a\x00b", "", "/", "/etc/passwd", "..", "../x", "a/../../x", "a/", ".", "./main.py", "x" * 300, 3],
    ids=["nul", "empty", "slash", "absolute", "dotdot", "dotdot-x", "escape", "folder", "dot", "main", "long",
         "not-str"],
)
def test_bad_file_names_are_one_line_errors(level, name):
    with pytest.raises(R1Error, match="^sandbox file name") as e:
        run("print(1)", files={name: "x"}, level=level, **FAST)
    assert "\n" not in str(e.value)


def test_bad_file_contents_and_clashes_are_one_line_errors(level):
    with pytest.raises(R1Error, match="content must be str or bytes"):
        run("print(1)", files={"a": 10**9}, level=level, **FAST)  # not a gigabyte of zeros
    with pytest.raises(R1Error, match="also the folder of another file"):
        run("print(1)", files={"a": "x", "a/b": "y"}, level=level, **FAST)
    with pytest.raises(R1Error, match="same file"):
        run("print(1)", files={"a/b": "x", "a//b": "y"}, level=level, **FAST)


def test_good_file_names_still_work(level):
    code = "print(open('sub/data.txt').read(), open('b.bin', 'rb').read())"
    r = run(code, files={"sub/data.txt": "hi", "./b.bin": b"\x00\x01"}, level=level, **FAST)
    assert r.status == "ok" and r.stdout == "hi b'\\x00\\x01'\n"


def test_module_help_prints_help_without_running_the_benchmark():
    out = subprocess.run([sys.executable, "-m", "r1.sandbox", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "usage: python -m r1.sandbox" in out.stdout
    assert "throughput" not in out.stdout and "isolation:" not in out.stdout
    bad = subprocess.run([sys.executable, "-m", "r1.sandbox", "--bogus"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unrecognized arguments" in bad.stderr


def test_module_info_prints_the_level_only():
    out = subprocess.run([sys.executable, "-m", "r1.sandbox", "--info"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("isolation: ") and "throughput" not in out.stdout
