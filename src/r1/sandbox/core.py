"""``run``: execute untrusted Python source in a sandbox and classify what happened.

One call = one fresh sandbox (no reuse between programs, so nothing leaks from one program to the next). The parent
side here spawns the sandbox (bubblewrap at the ``namespaces`` level, a plain child process at the ``rlimits``
level; see :mod:`r1.sandbox.isolation`), feeds stdin, reads stdout/stderr/status with size caps, enforces the wall
clock, and on return guarantees the program and every process it started are gone and its working directory is
deleted. Limits inside the sandbox are set by the bootstrap (:mod:`r1.sandbox.boot`).

Statuses (``Result.status``):

- ``ok``: exit code 0 (and, with ``tests``, every snippet passed and every probe returned a value).
- ``wrong_answer``: a test failed an assertion (``run``) or the output differs (:func:`check_output`).
- ``runtime_error``: an uncaught exception, a crash signal, a non-zero exit, or an exit before the tests finished.
- ``timeout``: the wall-clock limit (``timeout_s``, counted from the moment the program starts) or the CPU limit.
- ``memory``: ``MemoryError`` (the address-space limit ``memory_mb``).
- ``killed``: stopped by the sandbox for another limit (output size, file size) or killed by SIGKILL/SIGTERM.
- ``sandbox_error``: the sandbox itself failed (could not start, setup failed). Never a pass, never a wrong answer:
  callers must skip it (the code reward returns None, graders raise :class:`SandboxError`).

Deliberately left out: languages other than Python, reuse of warm sandboxes (a fork server would cut the 45-75 ms
start-up but share state between programs), and per-sandbox cgroups (not available without delegation).
"""

from __future__ import annotations

import json
import marshal
import math
import os
import random
import secrets
import select
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Mapping

from r1.errors import R1Error
from r1.sandbox.boot import BOOT
from r1.sandbox import reaper
from r1.sandbox.isolation import Isolation, bwrap_supports, detect, python_binds
from r1.sandbox.seccomp import build_filter

STATUSES = ("ok", "wrong_answer", "runtime_error", "timeout", "memory", "killed", "sandbox_error")

#: Working directory inside the sandbox at the ``namespaces`` level.
SANDBOX_DIR = "/sandbox"
#: File the program is written to (inside the working directory).
MAIN = "main.py"
#: Seconds the sandbox may take to start before it counts as a sandbox error (not charged to ``timeout_s``).
STARTUP_TIMEOUT_S = 30.0


class SandboxError(RuntimeError):
    """The sandbox failed (``Result.status == 'sandbox_error'``): the program's verdict is unknown."""


@dataclass
class Result:
    """What happened to one program.

    Attributes:
        status: one of :data:`STATUSES`.
        exit_code: the program's exit code (128 + N or -N for signal N), None if it never started.
        stdout, stderr: decoded output (UTF-8, invalid bytes replaced), at most ``max_output_bytes`` each.
        wall_s: seconds from the program's start (after sandbox set-up) to its end.
        reason: one line explaining a non-ok status ("" when ok).
        tests: with ``tests``: per item ``pass`` | ``fail`` (assertion) | ``error:<Exception>`` | ``not_run``, or
            ``value`` for a probe that returned one (its encoded value is in ``values``).
        values: with ``tests``: per item the probe's value as :func:`r1.sandbox.values.encode` text (None for
            snippets and probes that raised). What the program claims: decode it and judge it outside.
        completed: the program ran to its end (and through its tests), not cut short by an exit call.
        truncated: an output stream hit its cap.
        level: the isolation level it ran at.
        startup_s: seconds from spawning the sandbox to the program's start (the per-program overhead).
    """

    status: str
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    wall_s: float = 0.0
    reason: str = ""
    tests: list[str] | None = None
    completed: bool = False
    truncated: bool = False
    level: str = ""
    startup_s: float = 0.0
    #: a public tag in the sandbox's command line (to look for leftover processes)
    run_id: str = field(default="", repr=False)
    #: the bootstrap's "ready" line: which of seccomp / Landlock it installed ("1 0")
    guards: str = field(default="", repr=False)
    values: list[str | None] | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def num_tests_passed(self) -> int:
        return sum(t == "pass" for t in self.tests or [])


@dataclass
class _Streams:
    out: bytearray = field(default_factory=bytearray)
    err: bytearray = field(default_factory=bytearray)
    status: bytearray = field(default_factory=bytearray)
    info: bytearray = field(default_factory=bytearray)


def run(
    code: str,
    *,
    stdin: str | bytes = "",
    timeout_s: float = 10.0,
    memory_mb: int = 512,
    files: Mapping[str, str | bytes] | None = None,
    tests: list[str] | None = None,
    max_procs: int = 16,
    max_output_bytes: int = 8 << 20,
    disk_mb: int = 64,
    level: str | None = None,
    allow_fork: bool = False,
) -> Result:
    """Run Python source ``code`` in a fresh sandbox and return its :class:`Result`.

    Args:
        code: the program (written to ``main.py`` in the working directory and run as ``__main__``).
        stdin: the program's standard input.
        timeout_s: wall-clock limit from the program's start; the CPU-time limit is ``ceil(timeout_s) + 1``.
        memory_mb: memory of the whole sandbox, as address space (``RLIMIT_AS``): allocations beyond it raise
            MemoryError. The program is one process (see ``allow_fork``), so its limit is the sandbox's.
        files: extra files for the working directory, ``{relative path: content}`` (read-only to the program).
        tests: items run one by one after the program, in its namespace: snippets (``"assert f(1) == 2"``, judged
            inside the program's process, so a hostile program can fake the outcome) or probes (tuples, see
            :mod:`r1.sandbox.boot`) whose encoded values come back in ``Result.values`` to be judged outside; each
            outcome lands in ``Result.tests``; the status is ``ok`` only if every snippet passed and every probe
            returned an encodable value.
        max_procs: processes + threads the program may have at once (``RLIMIT_NPROC``; stops fork bombs).
        max_output_bytes: cap per output stream; a program writing more is killed (status ``killed``).
        disk_mb: size of the working directory (a tmpfs at the ``namespaces`` level) and the file-size limit.
        level: ``namespaces`` | ``rlimits`` to force an isolation level; None = the strongest available.
        allow_fork: let the program start processes (``os.fork``, ``multiprocessing``). Off, creating one fails
            with EAGAIN (seccomp; threads still work). On (and wherever seccomp is unavailable), ``memory_mb`` is
            shared out: at most ``memory_mb // 64`` processes and threads (and ``max_procs``), each with an equal
            share of the address space, so that together they stay within ``memory_mb``.

    Returns:
        The :class:`Result`; ``sandbox_error`` if the sandbox itself failed (never raises for the program's sake).

    Example: ``run("print(input()[::-1])", stdin="abc\\n", timeout_s=2, memory_mb=256).stdout == "cba\\n"``.
    """
    _check_args(timeout_s, memory_mb, max_procs, max_output_bytes, disk_mb)
    return _run_with(
        detect(level),
        code,
        stdin=stdin,
        timeout_s=timeout_s,
        memory_mb=memory_mb,
        files=files,
        tests=tests,
        max_procs=max_procs,
        max_output_bytes=max_output_bytes,
        disk_mb=disk_mb,
        allow_fork=allow_fork,
    )


#: The smallest address-space share of one process when ``memory_mb`` is shared out (the interpreter alone maps
#: ~15 MB; a list of a million ints needs ~60).
MIN_PROCESS_MB = 64


def memory_shares(memory_mb: int, max_procs: int, one_process: bool) -> tuple[int, int]:
    """``(RLIMIT_NPROC, RLIMIT_AS in MB)`` that keep a sandbox within ``memory_mb`` as a whole.

    The kernel limits address space per process, and no cgroup is used (it would need delegation), so a sandbox of
    several processes could hold ``processes × memory_mb``. When seccomp keeps the program one process
    (``one_process``), its threads share one address space: the limit is ``memory_mb`` and ``max_procs`` counts
    threads. Otherwise processes × share ≤ ``memory_mb``: at most ``memory_mb // MIN_PROCESS_MB`` of them (and
    ``max_procs``; ``RLIMIT_NPROC`` counts threads too), each with ``memory_mb // that``.

    Example: ``memory_shares(256, 16, False) == (4, 64)``; ``memory_shares(256, 16, True) == (16, 256)``.
    """
    if one_process:
        return max_procs, memory_mb
    nproc = max(1, min(max_procs, memory_mb // MIN_PROCESS_MB))
    return nproc, memory_mb // nproc


def _check_args(timeout_s, memory_mb, max_procs, max_output_bytes, disk_mb) -> None:
    if not timeout_s > 0:
        raise R1Error(f"sandbox timeout_s must be > 0, got {timeout_s}")
    if memory_mb < 32:
        raise R1Error(f"sandbox memory_mb must be >= 32 (the interpreter needs ~20 MB), got {memory_mb}")
    if max_procs < 1 or max_output_bytes < 1 or disk_mb < 1:
        raise R1Error("sandbox max_procs, max_output_bytes and disk_mb must be >= 1")


def _check_files(files: Mapping[str, str | bytes] | None) -> dict[str, bytes]:
    """``files`` as ``{normalised relative path: bytes}``; R1Error (one line) for a name that is not a plain
    relative file path below the working directory or content that is not text or bytes."""
    out = {}
    for name, content in (files or {}).items():
        bad = _bad_file_name(name)
        if bad:
            raise R1Error(f"sandbox file name {name!r}: {bad}")
        if not isinstance(content, (str, bytes, bytearray, memoryview)):
            # bytes(10**9) would be a gigabyte of zeros, not an error
            raise R1Error(f"sandbox file {name!r}: content must be str or bytes, got {type(content).__name__}")
        norm = os.path.normpath(name)
        if norm in out:
            raise R1Error(f"sandbox file name {name!r} names the same file as another entry")
        out[norm] = content.encode("utf-8", "surrogatepass") if isinstance(content, str) else bytes(content)
    folders = {d for n in out for d in _ancestors("/" + n)}
    clash = next((n for n in out if "/" + n in folders), None)
    if clash is not None:
        raise R1Error(f"sandbox file name {clash!r} is also the folder of another file")
    return out


def _bad_file_name(name) -> str:
    """Why ``name`` cannot be a file of the working directory ("" when it can)."""
    if not isinstance(name, str):
        return f"must be a str, got {type(name).__name__}"
    if not name or "\x00" in name:
        return "must be a non-empty path without NUL characters"
    parts = name.split("/")
    if name.startswith("/") or ".." in parts:
        return "must be a relative path inside the working directory (no leading '/', no '..')"
    if name.endswith("/") or all(p in ("", ".") for p in parts):
        return "must name a file, not a directory"
    if os.path.normpath(name) == MAIN:
        return f"{MAIN} is the program itself"
    if any(len(p.encode("utf-8", "surrogatepass")) > 255 for p in parts):
        return "a path component is longer than 255 bytes"
    return ""


def _memfd(name: str, data: bytes) -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _bwrap_argv(iso: Isolation, disk_mb: int, file_fds: dict[str, int], info_fd: int) -> list[str]:
    bw = iso.bwrap
    argv = [bw, "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    argv += ["--die-with-parent", "--new-session", "--clearenv", "--info-fd", str(info_fd)]
    if iso.as_root:
        # no user namespace: a root-mapped one is exempt from RLIMIT_NPROC; the bootstrap drops to a random uid
        argv += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        argv += ["--unshare-user", "--uid", "65534", "--gid", "65534"]
        if bwrap_supports(bw, "--disable-userns"):
            argv.append("--disable-userns")
    made: set[str] = set()
    for kind, path in python_binds(iso.python):
        # bwrap creates missing parents 0700, which the dropped uid could not traverse: make them 0755 first
        parents = [p for p in _ancestors(path) if p not in made]
        for p in parents:
            argv += ["--perms", "0755", "--dir", p]
        made.update(parents)
        argv += ["--ro-bind", path, path] if kind == "ro" else ["--symlink", os.readlink(path), path]
    argv += ["--proc", "/proc", "--dev", "/dev"]
    if bwrap_supports(bw, "--size"):
        argv += ["--size", str(disk_mb << 20)]
    argv += ["--perms", "0777", "--tmpfs", SANDBOX_DIR]
    for name, fd in file_fds.items():
        argv += ["--perms", "0444" if name == MAIN else "0644", "--file", str(fd), f"{SANDBOX_DIR}/{name}"]
    argv += ["--chdir", SANDBOX_DIR]
    for k, v in _sandbox_env(SANDBOX_DIR).items():
        argv += ["--setenv", k, v]
    return argv


def _ancestors(path: str) -> list[str]:
    """``/a/b/c`` -> ``["/a", "/a/b"]``."""
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


def _sandbox_env(workdir: str) -> dict[str, str]:
    return {"HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8", "PATH": "/usr/bin:/bin"}


def _run_with(
    iso: Isolation,
    code: str,
    *,
    stdin: str | bytes = "",
    timeout_s: float = 10.0,
    memory_mb: int = 512,
    files: Mapping[str, str | bytes] | None = None,
    tests: list[str] | None = None,
    max_procs: int = 16,
    max_output_bytes: int = 8 << 20,
    disk_mb: int = 64,
    allow_fork: bool = False,
) -> Result:
    all_files = _check_files(files)
    all_files[MAIN] = code.encode("utf-8", "surrogatepass")
    stdin_b = stdin.encode() if isinstance(stdin, str) else bytes(stdin)
    nonce = secrets.token_hex(16)
    run_id = "r1-sandbox-" + secrets.token_hex(8)
    ns = iso.level == "namespaces"
    uid = random.randrange(1 << 30, (1 << 31) - 2) if iso.drop_uid else None  # a fresh uid: its own NPROC count
    cpu = math.ceil(timeout_s) + 1
    seccomp = build_filter(allow_fork=allow_fork) if iso.seccomp else None
    nproc, as_mb = memory_shares(memory_mb, max_procs, one_process=seccomp is not None and not allow_fork)
    cfg = {
        "nonce": nonce,
        "uid": uid,
        "gid": uid,
        "nproc": nproc,
        "nproc_relative": not ns and uid is None,  # the caller's own uid: count its tasks too
        "rlimits": [
            ["RLIMIT_AS", as_mb << 20, as_mb << 20],
            ["RLIMIT_CPU", cpu, cpu + 1],
            ["RLIMIT_FSIZE", disk_mb << 20, disk_mb << 20],
            ["RLIMIT_NOFILE", 256, 256],
            ["RLIMIT_CORE", 0, 0],
        ],
        "pdeathsig": not ns,
        "ppid": None if ns else os.getpid(),
        "seccomp": seccomp.hex() if seccomp else None,
        "main": MAIN,
        "tests": list(tests) if tests is not None else None,
        "landlock": None,  # the working directory at the rlimits level (set below)
        # not /proc: the host's processes (their command lines, tokens included) stay unreadable
        "landlock_read": [p for kind, p in python_binds(iso.python) if kind == "ro"] + ["/dev"],
        "landlock_required": bool(iso.landlock),
    }
    to_close: list[int] = []
    workdir = None
    proc = None
    try:
        st_r, st_w = os.pipe()
        to_close += [st_r, st_w]
        child_fds = [st_w]
        info_r = info_w = -1
        if ns:
            info_r, info_w = os.pipe()
            to_close += [info_r, info_w]
            file_fds = {name: _memfd("r1-file", data) for name, data in all_files.items()}
            to_close += list(file_fds.values())
            child_fds += [info_w, *file_fds.values()]
            argv = _bwrap_argv(iso, disk_mb, file_fds, info_w)
            cwd, env = None, {}
        else:
            reaper.sweep()  # working directories of processes that died without cleaning up (once per process)
            workdir = tempfile.mkdtemp(prefix=reaper.workdir_prefix())
            for name, data in all_files.items():
                path = os.path.join(workdir, name)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(data)
            if uid is not None:
                os.chown(workdir, uid, uid)
                os.chmod(workdir, 0o700)
            argv, cwd, env = [], workdir, _sandbox_env(workdir)
            if iso.landlock is not False:
                cfg["landlock"] = workdir
        cfg_fd = _memfd("r1-cfg", marshal.dumps(cfg, 2))  # version 2: readable by any Python 3
        to_close.append(cfg_fd)
        child_fds.append(cfg_fd)
        # the run id is a public tag (tests look for leftover processes by it), unlike the nonce
        argv += [iso.python, "-I", "-S", "-B", "-c", BOOT, str(cfg_fd), str(st_w), run_id]
        t_spawn = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                pass_fds=child_fds,
                start_new_session=True,
                cwd=cwd,
                env=env,
            )
        except OSError as e:
            return Result("sandbox_error", reason=f"could not start the sandbox: {e}", level=iso.level, run_id=run_id)
        if workdir is not None:  # if this process dies now, the reaper kills the group and deletes the folder
            reaper.track(proc.pid, workdir)
        for fd in child_fds:
            os.close(fd)
            to_close.remove(fd)
        res = _supervise(proc, iso, st_r, info_r, stdin_b, timeout_s, max_output_bytes, tests, nonce, t_spawn, uid)
        res.run_id = run_id
        return res
    finally:
        for fd in to_close:
            try:
                os.close(fd)
            except OSError:
                pass
        if proc is not None:
            for s in (proc.stdin, proc.stdout, proc.stderr):
                try:
                    s.close()
                except OSError:
                    pass
        if workdir is not None:
            reaper.rmtree(workdir)
            if proc is not None:
                reaper.untrack(proc.pid)


def _supervise(proc, iso, st_r, info_r, stdin_b, timeout_s, cap, tests, nonce, t_spawn, uid) -> Result:
    """Pump the pipes until the program ends or a limit is hit; kill and reap everything; classify."""
    ns = iso.level == "namespaces"
    s = _Streams()
    fds = {proc.stdout.fileno(): s.out, proc.stderr.fileno(): s.err, st_r: s.status}
    if info_r >= 0:
        fds[info_r] = s.info
    poller = select.poll()
    for fd in fds:
        poller.register(fd, select.POLLIN)
    stdin_fd = proc.stdin.fileno()
    os.set_blocking(stdin_fd, False)
    stdin_view = memoryview(stdin_b)
    if stdin_view:
        poller.register(stdin_fd, select.POLLOUT)
    else:
        proc.stdin.close()
    try:
        pidfd = os.pidfd_open(proc.pid)
        poller.register(pidfd, select.POLLIN)
    except (AttributeError, OSError):
        pidfd = -1
    open_fds = set(fds)
    ns_pidfd = -1
    t_ready = None
    killed_for = ""  # why we killed it: "timeout" | "output" | "startup"
    exited_at = None
    prefix = nonce.encode() + b" "
    try:
        while True:
            now = time.monotonic()
            if ns and ns_pidfd < 0 and s.info.rstrip().endswith(b"}") and exited_at is None:
                ns_pidfd = _open_ns_pidfd(s.info)
            if t_ready is None and prefix + b"R" in s.status:
                t_ready = now
            if exited_at is None and proc.poll() is not None:
                exited_at = now
                if not ns:  # orphans of the rlimits level would keep the pipes open
                    _kill_group(proc.pid)
            if exited_at is not None and (not open_fds or now - exited_at > 2.0):
                break
            if killed_for:
                if not open_fds or now - kill_time > 5.0:
                    break
                deadline = kill_time + 5.0
            elif t_ready is None:
                deadline = t_spawn + STARTUP_TIMEOUT_S
            else:
                deadline = t_ready + timeout_s
            if exited_at is None and not killed_for and now >= deadline:
                killed_for = "timeout" if t_ready is not None else "startup"
                kill_time = _kill(proc, ns_pidfd)
                continue
            wait_ms = max(0.0, min(deadline - now, 0.25 if pidfd < 0 or exited_at else 5.0)) * 1000
            for fd, ev in poller.poll(wait_ms):
                if fd == pidfd:
                    poller.unregister(pidfd)
                    continue
                if fd == stdin_fd:
                    try:
                        stdin_view = stdin_view[os.write(stdin_fd, stdin_view[: 1 << 16]) :]
                    except (BrokenPipeError, OSError):
                        stdin_view = memoryview(b"")
                    if not stdin_view:
                        poller.unregister(stdin_fd)
                        proc.stdin.close()
                    continue
                try:
                    chunk = os.read(fd, 1 << 16)
                except OSError:
                    chunk = b""
                if not chunk:
                    poller.unregister(fd)
                    open_fds.discard(fd)
                    continue
                buf = fds[fd]
                room = cap - len(buf)
                buf += chunk[: max(room, 0)]
                if room < len(chunk) and not killed_for:
                    killed_for = "output"
                    kill_time = _kill(proc, ns_pidfd)
        end = exited_at if exited_at is not None else time.monotonic()
        proc.wait()
        if ns:
            _wait_pidfd(ns_pidfd)
        else:
            _kill_group(proc.pid)
            if uid is not None and not iso.seccomp:
                _kill_uid(uid)
    finally:
        if proc.poll() is None:
            _kill(proc, ns_pidfd)
            proc.wait()
            _wait_pidfd(ns_pidfd)
        for fd in (pidfd, ns_pidfd):
            if fd >= 0:
                os.close(fd)
    return _classify(proc.returncode, s, prefix, t_spawn, t_ready, end, killed_for, tests, timeout_s, cap, iso.level)


def _kill(proc, ns_pidfd: int) -> float:
    """SIGKILL the sandbox: the namespace's init (which takes every process in the namespace with it) and the
    launcher's process group. Returns the time of the kill."""
    if ns_pidfd >= 0:
        try:
            signal.pidfd_send_signal(ns_pidfd, signal.SIGKILL)
        except (ProcessLookupError, PermissionError, OSError):
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    return time.monotonic()


def _open_ns_pidfd(info: bytearray) -> int:
    """A pidfd of the PID namespace's init, from bwrap's ``--info-fd`` JSON (-1 if not yet known).

    Opened while bwrap still runs, so the pid cannot have been reaped and reused: bwrap returns as soon as the
    program's exit status is known, before the init has finished killing the rest, and the init is then
    reparented; waiting on this pidfd is how ``run`` knows the namespace is empty.
    """
    try:
        pid = int(json.loads(bytes(info).decode())["child-pid"])
        return os.pidfd_open(pid)
    except (ValueError, KeyError, TypeError, OSError, AttributeError):
        return -1


def _wait_pidfd(fd: int, timeout_s: float = 5.0) -> None:
    if fd >= 0:
        select.select([fd], [], [], timeout_s)


def _kill_group(pgid: int) -> None:
    """SIGKILL the process group until it is empty (children cannot leave it: seccomp denies setsid/setpgid)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.0:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            return
        time.sleep(0.002)


def _kill_uid(uid: int) -> None:
    """SIGKILL every process owned by ``uid`` (the rlimits level without seccomp: children may leave the group)."""
    for _ in range(50):
        found = False
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                if os.stat(f"/proc/{p}").st_uid == uid:
                    found = True
                    os.kill(int(p), signal.SIGKILL)
            except OSError:
                pass
        if not found:
            return
        time.sleep(0.01)


_SIG_TIMEOUT = {signal.SIGXCPU}
_SIG_KILLED = {signal.SIGKILL, signal.SIGTERM, signal.SIGXFSZ, signal.SIGPIPE}


def _signal_of(rc: int | None, ns: bool) -> int | None:
    if rc is None:
        return None
    if rc < 0:
        return -rc
    if ns and rc > 128:  # bwrap exits with 128 + N when its child dies of signal N
        return rc - 128
    return None


def _classify(
    rc, s: _Streams, prefix: bytes, t_spawn, t_ready, end, killed_for, tests, timeout_s, cap, level
) -> Result:
    """The Result of a finished run, from its exit code, status lines and why (if at all) it was killed."""
    raw = bytes(s.status).split(b"\n")
    lines = [ln[len(prefix) :].decode("utf-8", "replace") for ln in raw if ln.startswith(prefix)]
    kinds = [ln.split(" ", 1) for ln in lines]
    # the bootstrap writes R once, before the program runs: R and X lines after it come from the program
    first_r = next((n for n, k in enumerate(kinds) if k[0] == "R"), len(kinds))
    ready = first_r < len(kinds)
    setup_error = next((k[1] for k in kinds[:first_r] if k[0] == "X" and len(k) > 1), None)
    after = kinds[first_r + 1 :]
    exc = next((k[1] for k in after if k[0] == "E" and len(k) > 1), None)
    done = any(k[0] == "D" for k in after)
    test_out, values = _test_outcomes(after, tests)
    out = bytes(s.out).decode("utf-8", "replace")
    err = bytes(s.err).decode("utf-8", "replace")
    wall = max(0.0, end - t_ready) if t_ready is not None else 0.0
    truncated = len(s.out) >= cap or len(s.err) >= cap
    res = Result("ok", rc, out, err, wall, "", test_out, False, truncated, level)
    res.values = values
    res.startup_s = (t_ready - t_spawn) if t_ready is not None else 0.0
    res.guards = kinds[first_r][1] if ready and len(kinds[first_r]) > 1 else ""
    sig = _signal_of(rc, level == "namespaces")

    def done_with(status: str, reason: str = "") -> Result:
        res.status, res.reason = status, reason
        return res

    if setup_error is not None:
        return done_with("sandbox_error", f"sandbox set-up failed: {setup_error}")
    if not ready:
        if killed_for == "startup":
            return done_with("sandbox_error", f"sandbox did not start within {STARTUP_TIMEOUT_S:.0f} s")
        tail = (err.strip().splitlines() or [""])[-1][:300]
        return done_with("sandbox_error", f"sandbox failed to start (exit {rc}): {tail}")
    res.completed = done
    if killed_for == "output":
        return done_with("killed", f"output limit exceeded ({cap} bytes per stream)")
    if killed_for == "timeout":
        return done_with("timeout", f"wall-clock limit of {timeout_s:g} s exceeded")
    memory_error = exc == "MemoryError" or any(t == "error:MemoryError" for t in test_out or [])
    if memory_error or (rc != 0 and sig is None and "MemoryError" in err[-2000:]):
        return done_with("memory", "memory limit exceeded (MemoryError)")
    if sig in _SIG_TIMEOUT:
        return done_with("timeout", "CPU-time limit exceeded")
    if sig in _SIG_KILLED:
        return done_with("killed", f"killed by {signal.Signals(sig).name}")
    if sig is not None:
        return done_with("runtime_error", f"crashed with {_signame(sig)}")
    if rc != 0:
        return done_with("runtime_error", f"uncaught {exc}" if exc else f"exit code {rc}")
    if tests is not None:
        if not done:
            return done_with("runtime_error", "the program exited before its tests finished")
        failed = [f"{i}:{t}" for i, t in enumerate(test_out) if t not in ("pass", "value")]
        if failed:
            errors = [t for t in test_out if t.startswith("error:")]
            status = "runtime_error" if errors else "wrong_answer"
            return done_with(status, f"{len(failed)}/{len(tests)} tests failed ({', '.join(failed[:5])})")
    return res


def _test_outcomes(kinds: list[list[str]], tests) -> tuple[list[str] | None, list[str | None] | None]:
    """Per test item: ``pass`` | ``fail`` | ``error:<type>`` | ``value`` | ``not_run``, and each probe's encoded value.

    Two different reports for one item (a program writing lines of its own) make it ``error:Conflict``.
    """
    if tests is None:
        return None, None
    out, values = ["not_run"] * len(tests), [None] * len(tests)
    for k in kinds:
        if k[0] not in ("T", "V") or len(k) < 2:
            continue
        parts = k[1].split(" ", 2 if k[0] == "T" else 1)
        try:
            i = int(parts[0])
        except ValueError:
            continue
        if not 0 <= i < len(tests) or len(parts) < 2:
            continue
        if k[0] == "V":
            outcome, value = "value", parts[1]
        elif parts[1] in ("pass", "fail"):
            outcome, value = parts[1], None
        else:
            outcome, value = "error:" + (parts[2] if len(parts) > 2 else "?"), None
        if out[i] != "not_run" and (out[i], values[i]) != (outcome, value):
            outcome, value = "error:Conflict", None
        out[i], values[i] = outcome, value
    return out, values


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def check_output(result: Result, expected: str, compare: str = "whitespace") -> Result:
    """Turn an ``ok`` run of a stdin/stdout program into ``wrong_answer`` if its output differs from ``expected``.

    ``compare``: ``exact`` (byte for byte after decoding) | ``whitespace`` (the same whitespace-separated tokens:
    trailing spaces, blank lines and line breaks between tokens are ignored, as Codeforces' default checker does).
    Other statuses are returned unchanged.
    """
    if compare not in ("exact", "whitespace"):
        raise R1Error(f"unknown output comparison {compare!r}; valid: exact, whitespace")
    if result.status != "ok":
        return result
    same = result.stdout == expected if compare == "exact" else result.stdout.split() == expected.split()
    if same:
        return result
    from dataclasses import replace

    return replace(result, status="wrong_answer", reason=f"output differs from the expected output ({compare})")


__all__ = ["MAIN", "STATUSES", "Result", "SandboxError", "check_output", "run"]
