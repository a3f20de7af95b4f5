"""The hostile-code suite: each attack is contained, ends with the right status within its timeout, and leaves the
machine as it was (no leftover process, no file outside the sandbox's directory).

Run: pytest tests/sandbox/test_hostile.py -q   (~30 s on 2 busy cores). Every case runs at the active isolation
level and, where namespaces work, at the rlimits fallback as well (``level`` fixture). Memory attacks are stopped
by the address-space limit before any memory is touched: nothing here really allocates gigabytes.
"""

import os
import socket
import time

import pytest

from r1.sandbox import isolation_info, run

from .conftest import leftover_processes

TIMEOUT = 2.0
GRACE = 4.0  # start-up + kill + reap on a loaded 2-core machine


def run_hostile(code, level, **kw):
    timeout_s = kw.pop("timeout_s", TIMEOUT)
    t0 = time.monotonic()
    r = run(code, timeout_s=timeout_s, memory_mb=kw.pop("memory_mb", 256), level=level, **kw)
    elapsed = time.monotonic() - t0
    assert elapsed < timeout_s + GRACE, f"took {elapsed:.1f}s"
    assert leftover_processes(r.run_id) == [], "processes left behind"
    return r


def test_infinite_loop(level):
    r = run_hostile("while True:\n    pass", level)
    assert r.status == "timeout"


def test_sleeping_forever(level):
    r = run_hostile("import time\ntime.sleep(10**6)", level)
    assert r.status == "timeout"


@pytest.mark.parametrize(
    "code",
    [
        "import os\nwhile True:\n    os.fork()",
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
    ],
    ids=["fork-bomb", "fork-bomb-that-retries"],
)
def test_fork_bomb(level, code):
    r = run_hostile(code, level, max_procs=16)
    assert r.status in ("runtime_error", "timeout")


def test_process_cap_is_enforced(level):
    code = (
        "import os, time\nn = 0\nfor _ in range(200):\n    try:\n        pid = os.fork()\n    except OSError:\n"
        "        break\n    if pid == 0:\n        time.sleep(30)\n        os._exit(0)\n    n += 1\nprint(n)"
    )
    r = run_hostile(code, level, max_procs=8, memory_mb=1024, allow_fork=True)
    # the cap counts the main process (and bwrap's init in a user namespace)
    assert r.status == "ok" and 0 < int(r.stdout) <= 8


def test_background_children_are_killed_on_exit(level):
    code = "import os, time\nfor _ in range(3):\n    if os.fork() == 0:\n        time.sleep(600)\nprint('bye')"
    r = run_hostile(code, level, memory_mb=512, allow_fork=True)
    assert r.status == "ok" and r.stdout.count("bye") == 1


def test_child_cannot_leave_the_process_group(level):
    code = (
        "import os, time\nif os.fork() == 0:\n    try:\n        os.setsid()\n    except OSError:\n        pass\n"
        "    time.sleep(600)\nprint('bye')"
    )
    r = run_hostile(code, level, memory_mb=512, allow_fork=True)
    assert r.status == "ok"


def test_allocating_10_gib(level):
    r = run_hostile("x = bytearray(10 * 2**30)", level)
    assert r.status == "memory"


def test_growing_memory(level):
    # This one touches what it allocates (up to the limit): a small limit and a roomy clock, so that a machine
    # reclaiming memory for a large test process does not turn "memory" into "timeout" (it takes ~0.1 s idle).
    code = "chunks = []\nwhile True:\n    chunks.append(bytearray(2**20))"
    r = run_hostile(code, level, memory_mb=96, timeout_s=8.0)
    assert r.status == "memory", (r.status, r.reason)


def test_printing_1_gb(level):
    code = "import sys\nblock = 'x' * 2**20\nfor _ in range(1024):\n    sys.stdout.write(block)"
    r = run_hostile(code, level, max_output_bytes=4 << 20)
    assert r.status == "killed" and "output limit" in r.reason and len(r.stdout) == 4 << 20


def test_huge_file_in_the_work_dir(level):
    code = "with open('big', 'wb') as f:\n    for _ in range(200):\n        f.write(b'x' * 2**20)"
    r = run_hostile(code, level, disk_mb=16)
    assert r.status in ("runtime_error", "killed")


def test_writing_outside_the_sandbox(level, tmp_path):
    targets = [tmp_path / "pwned", "/tmp/r1-hostile-pwned", os.path.expanduser("~/r1-hostile-pwned")]
    targets = [str(t) for t in targets]
    code = (
        f"targets = {targets!r} + ['../r1-hostile-pwned', '/r1-hostile-pwned']\n"
        "wrote = []\nfor t in targets:\n    try:\n        open(t, 'w').write('x')\n        wrote.append(t)\n"
        "    except OSError:\n        pass\nprint(wrote)"
    )
    tmp_before = set(os.listdir("/tmp"))
    r = run_hostile(code, level)
    assert r.status == "ok"
    for t in targets + ["/r1-hostile-pwned"]:
        assert not os.path.exists(t), t
    assert not [d for d in set(os.listdir("/tmp")) - tmp_before if d.startswith("r1-sandbox-")]


def test_reading_the_users_files(level, tmp_path):
    secret = tmp_path / "private" / "key"
    secret.parent.mkdir(mode=0o700)
    secret.write_text("r1-secret-key-material")
    iso = isolation_info(level)
    if iso.level == "rlimits" and not (iso.drop_uid or iso.landlock):
        pytest.skip("rlimits level without a uid drop or Landlock: the caller's files are readable (documented)")
    paths = [str(secret), os.path.expanduser("~/.bashrc"), os.path.abspath("pyproject.toml"), "/etc/shadow"]
    code = (
        f"out = []\nfor p in {paths!r}:\n    try:\n        out.append(open(p).read())\n    except OSError as e:\n"
        "        out.append(type(e).__name__)\nprint(out)"
    )
    r = run_hostile(code, level)
    assert r.status == "ok"
    assert "r1-secret-key-material" not in r.stdout and "[project]" not in r.stdout and "root:" not in r.stdout


def test_parent_environment_is_invisible(level, monkeypatch):
    monkeypatch.setenv("R1_HOSTILE_SECRET", "r1-env-secret-value")
    code = (
        "import os, glob\nprint(dict(os.environ))\nfor p in glob.glob('/proc/*/environ'):\n    try:\n"
        "        print(p, open(p, 'rb').read())\n    except OSError:\n        pass"
    )
    r = run_hostile(code, level)
    assert r.status == "ok" and "r1-env-secret-value" not in r.stdout
    assert "R1_HOSTILE_SECRET" not in r.stdout


def test_no_network(level):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    code = (
        f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\ns.sendall(b'leak')\n"
        "print('connected')"
    )
    try:
        r = run_hostile(code, level)
        with pytest.raises(socket.timeout):
            server.accept()
    finally:
        server.close()
    assert r.status == "runtime_error" and "connected" not in r.stdout


def test_no_network_udp_or_dns(level):
    code = (
        "import socket\nout = []\nfor fam, kind in [(socket.AF_INET, socket.SOCK_DGRAM), (socket.AF_INET6, "
        "socket.SOCK_STREAM)]:\n    try:\n        s = socket.socket(fam, kind)\n        s.connect(('1.1.1.1' if fam == "
        "socket.AF_INET else '::1', 53))\n        s.send(b'x')\n        out.append('sent')\n    except OSError as e:\n"
        "        out.append(type(e).__name__)\ntry:\n    socket.getaddrinfo('example.com', 80)\n    out.append('dns')\n"
        "except OSError as e:\n    out.append(type(e).__name__)\nprint(out)"
    )
    r = run_hostile(code, level)
    assert r.status == "ok" and "sent" not in r.stdout and "dns" not in r.stdout


def test_subprocess_shell(level):
    flag = "/tmp/r1-hostile-shell-flag"
    code = f"import subprocess\nprint(subprocess.run('echo pwned; touch {flag}', shell=True, capture_output=True))"
    r = run_hostile(code, level)
    assert r.status == "runtime_error" and "pwned" not in r.stdout
    assert not os.path.exists(flag)
    r = run_hostile(f"import os\nprint(os.system('touch {flag}'))", level)
    assert not os.path.exists(flag)


def test_namespaces_cannot_be_reentered(level):
    code = (
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
        "print(libc.unshare(0x10000000), libc.unshare(0x40000000))"  # CLONE_NEWUSER, CLONE_NEWNET
    )
    r = run_hostile(code, level)
    if isolation_info(level).seccomp:
        assert r.status == "ok" and r.stdout.split() == ["-1", "-1"]
