"""Sandbox hardening: bad ``files=`` names are one-line errors, ``python -m r1.sandbox --help`` prints help, the
rlimits level hides the host's ``/proc`` and leaves nothing behind when its parent is SIGKILLed, and ``memory_mb``
caps a sandbox as a whole.

Run: pytest tests/sandbox/test_hardening.py -q   (~10 s; cases run at the active level and, where namespaces
work, at the rlimits fallback too)
"""

import os
import subprocess
import sys
import tempfile
import time

import pytest

from r1.errors import R1Error
from r1.sandbox import isolation_level, run

from .conftest import leftover_processes

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


# ------------------------------------------------------------------------------------------------ parent SIGKILLed
PARENT = """
from r1.sandbox import run
code = "import os, time\\nif os.fork() == 0:\\n    time.sleep(600)\\ntime.sleep(600)"
run(code, level={level!r}, timeout_s=120, memory_mb=512, allow_fork=True)
"""


def _stat(pid) -> tuple[int, bytes]:
    """(parent pid, command line) of a live process."""
    with open(f"/proc/{pid}/stat") as f:
        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return ppid, f.read()


def _sandbox_processes(ancestor: int) -> dict[int, bytes]:
    """Live processes below ``ancestor`` that run the sandbox bootstrap (pid -> command line)."""
    out = {}
    for p in filter(str.isdigit, os.listdir("/proc")):
        try:
            ppid, cmd = _stat(p)
            chain = int(p)
            while chain not in (0, 1, ancestor):
                chain = _stat(chain)[0]
        except (OSError, ValueError, IndexError):
            continue
        if chain == ancestor and b"r1-sandbox-" in cmd:
            out[int(p)] = cmd
    return out


def test_a_sigkilled_parent_leaves_no_process_and_no_folder(level):
    # The program forks a grandchild and both sleep; the process running the sandbox is then SIGKILLed.
    parent = subprocess.Popen([sys.executable, "-c", PARENT.format(level=level)])
    try:
        deadline = time.monotonic() + 30
        procs = {}
        while len(procs) < 2 and time.monotonic() < deadline:  # the program and its child
            procs = _sandbox_processes(parent.pid)
            time.sleep(0.05)
        assert len(procs) >= 2, procs
        run_id = next(iter(procs.values())).split(b"\0")[-2].decode()
        assert run_id.startswith("r1-sandbox-")
        workdirs = set()
        for pid in procs:
            try:
                workdirs.add(os.readlink(f"/proc/{pid}/cwd"))
            except OSError:
                pass
        host_dirs = {d for d in workdirs if os.path.basename(d).startswith("r1-sandbox-")}
        assert host_dirs or (level or isolation_level()) == "namespaces"
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 5
    while (leftover_processes(run_id) or any(map(os.path.exists, host_dirs))) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert leftover_processes(run_id) == []
    assert not [d for d in host_dirs if os.path.exists(d)]


def test_stale_folders_of_dead_owners_are_swept(tmp_path, monkeypatch):
    import fcntl

    from r1.sandbox import reaper

    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setitem(reaper._state, "swept", False)
    monkeypatch.setitem(reaper._state, "token", "live0")
    dead = tmp_path / "r1-sandbox-dead0-abc"
    (dead / "sub").mkdir(parents=True)
    (dead / "sub" / "f").write_text("x")
    os.chmod(dead / "sub", 0o500)  # a program's chmod does not keep it
    (tmp_path / "r1-sandbox-dead0.lock").write_text("")
    alive = tmp_path / "r1-sandbox-other1-xyz"
    alive.mkdir()
    held = os.open(tmp_path / "r1-sandbox-other1.lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(held, fcntl.LOCK_EX)  # a process that still runs holds its lock (here: another open file)
    unrelated = tmp_path / "r1-sandbox-nolock-1"
    unrelated.mkdir()
    try:
        removed = reaper.sweep()
    finally:
        os.close(held)
    assert not dead.exists() and not (tmp_path / "r1-sandbox-dead0.lock").exists()
    assert alive.exists() and unrelated.exists()
    assert str(dead) in removed
    assert reaper.sweep() == []  # once per process


# ------------------------------------------------------------------------------------------------ /proc
def test_the_hosts_processes_are_unreadable(level):
    # Another process's command line holds a token; the sandboxed program looks for it everywhere in /proc.
    token = "r1-secret-" + os.urandom(6).hex()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; time.sleep(60)", token])
    try:
        code = (
            "import os\nfound = []\ntry:\n    pids = os.listdir('/proc')\nexcept OSError:\n    pids = []\n"
            f"pids.append('{holder.pid}')\n"
            "for p in pids:\n    try:\n        with open('/proc/%s/cmdline' % p, 'rb') as f:\n"
            f"            if b'{token}' in f.read():\n                found.append(p)\n"
            "    except OSError:\n        pass\nprint('FOUND' if found else 'hidden')"
        )
        r = run(code, level=level, **FAST)
    finally:
        holder.kill()
        holder.wait()
    assert r.status == "ok" and r.stdout == "hidden\n", (r.stdout, r.stderr[-300:])


def test_auto_detection_refuses_rlimits_without_landlock(monkeypatch):
    from r1.sandbox import isolation

    def probe(level, bwrap, seccomp):
        if level == "namespaces":
            return None, "runtime_error: no user namespaces"
        return isolation._make("rlimits", seccomp, None, (), landlock=False), ""

    monkeypatch.setattr(isolation, "_probe", probe)
    monkeypatch.setattr(isolation, "_cache", {})
    with pytest.raises(R1Error, match="no safe isolation.*level='rlimits'") as e:
        isolation.detect()
    assert "\n" not in str(e.value)
    with pytest.raises(R1Error, match="no safe isolation"):  # remembered, not probed again
        monkeypatch.setattr(isolation, "_probe", None)
        isolation.detect()
    monkeypatch.setattr(isolation, "_probe", probe)
    iso = isolation.detect("rlimits")  # the explicit opt-in runs, and says what it lacks
    assert iso.level == "rlimits" and any("/proc" in n for n in iso.notes)


# ------------------------------------------------------------------------------------------------ memory as a whole
# Each process tries to reserve 100 MB (address space: calloc'd pages are never touched) and reports whether it
# could; forks that fail stop the loop. The sum is what the sandbox could hold at once.
RESERVE = """import os
kids = []
for _ in range(8):
    try:
        pid = os.fork()
    except OSError:
        break
    if pid == 0:
        try:
            x = bytearray(100 * 2**20)
            os._exit(1)
        except MemoryError:
            os._exit(0)
    kids.append(pid)
held = sum(os.waitstatus_to_exitcode(os.waitpid(k, 0)[1]) for k in kids)
try:
    x = bytearray(100 * 2**20)
    held += 1
except MemoryError:
    pass
print(len(kids), held * 100)
"""


@pytest.mark.parametrize("allow_fork", [False, True])
def test_memory_mb_caps_the_sandbox_as_a_whole(level, allow_fork):
    # Before: every process had memory_mb of its own (9 x 100 MB "fitted" in 256 MB).
    r = run(RESERVE, level=level, timeout_s=10, memory_mb=256, allow_fork=allow_fork)
    assert r.status == "ok", (r.reason, r.stderr[-300:])
    forks, held_mb = map(int, r.stdout.split())
    assert held_mb <= 256
    if allow_fork:
        assert 1 <= forks <= 3  # 256 MB: at most 4 processes of 64 MB each
    else:
        assert forks == 0 and held_mb == 100  # one process: it has the whole 256 MB


def test_threads_work_without_forks(level):
    code = (
        "import threading\nout = []\nts = [threading.Thread(target=lambda: out.append(sum(range(10**5)))) "
        "for _ in range(8)]\nfor t in ts:\n    t.start()\nfor t in ts:\n    t.join()\nx = list(range(10**6))\n"
        "print(len(out))"
    )
    r = run(code, level=level, **FAST)
    assert r.status == "ok" and r.stdout == "8\n", (r.reason, r.stderr[-300:])


def test_fork_is_refused_unless_allowed(level):
    code = "import os\ntry:\n    pid = os.fork()\nexcept OSError as e:\n    print('refused', e.errno)\nelse:\n" \
           "    if pid == 0:\n        os._exit(0)\n    os.waitpid(pid, 0)\n    print('forked')"
    import errno

    assert run(code, level=level, **FAST).stdout == f"refused {errno.EAGAIN}\n"
    assert run(code, level=level, allow_fork=True, **FAST).stdout == "forked\n"


def test_fork_bomb_with_forks_allowed_is_contained(level):
    r = run("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass", level=level,
            timeout_s=2, memory_mb=512, allow_fork=True)
    assert r.status in ("runtime_error", "timeout") and leftover_processes(r.run_id) == []


def test_memory_shares():
    from r1.sandbox.core import memory_shares

    assert memory_shares(256, 16, one_process=True) == (16, 256)
    assert memory_shares(256, 16, one_process=False) == (4, 64)  # 4 processes x 64 MB = 256
    assert memory_shares(512, 4, one_process=False) == (4, 128)
    assert memory_shares(48, 16, one_process=False) == (1, 48)
    for mb in (32, 100, 256, 512, 4096):
        for procs in (1, 3, 16, 64):
            nproc, share = memory_shares(mb, procs, one_process=False)
            assert 1 <= nproc <= procs and nproc * share <= mb


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_seccomp_without_forks_allows_threads_only(machine):
    import errno

    from r1.sandbox.seccomp import _ARCHES, _SYSCALLS, RET_ALLOW, RET_ERRNO, build_filter

    from .test_seccomp import run_bpf

    prog = build_filter(machine, allow_fork=False)
    arch, col = _ARCHES[machine]
    nr = {name: nums[col] for name, nums in _SYSCALLS.items()}
    thread = 0x3D0F00  # glibc pthread_create: CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|...TID
    assert run_bpf(prog, nr["clone"], arch, (thread, 0, 0, 0, 0, 0)) == RET_ALLOW
    assert run_bpf(prog, nr["clone"], arch, (0x01200011, 0, 0, 0, 0, 0)) == RET_ERRNO | errno.EAGAIN  # fork()
    assert run_bpf(prog, nr["clone"], arch, (0x10000000 | thread, 0, 0, 0, 0, 0)) == RET_ERRNO | errno.EPERM
    if nr["fork"] is not None:
        assert run_bpf(prog, nr["fork"], arch) == RET_ERRNO | errno.EAGAIN
        assert run_bpf(prog, nr["vfork"], arch) == RET_ERRNO | errno.EAGAIN
        assert run_bpf(build_filter(machine), nr["fork"], arch) == RET_ALLOW
