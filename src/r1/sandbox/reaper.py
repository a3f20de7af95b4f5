"""Clean-up after the ``rlimits`` level when the process that ran the sandboxes dies without doing it (SIGKILL,
the OOM killer).

At the ``namespaces`` level the kernel does it: ``bwrap --die-with-parent`` takes the PID namespace's init and
with it every process in the namespace, and the working directory is a tmpfs of the mount namespace. At the
``rlimits`` level the program's processes live on the host: ``PR_SET_PDEATHSIG`` kills the program when its
parent dies, but not what the program forked (the signal is not inherited), and the working directory is a
folder in the host's temporary directory. Two mechanisms cover that:

- **a reaper process**, one per process that runs sandboxes, started with the first ``rlimits`` run. ``run``
  registers each sandbox (its process group, which seccomp keeps every descendant in, and its working directory)
  over a pipe and unregisters it when done. When the pipe reaches end-of-file (the parent is gone, however it
  died) the reaper SIGKILLs every group still registered and deletes their directories. It runs as the caller:
  as root, out of reach of sandboxed programs, which run under a random uid.
- **a sweep of stale working directories**: every process names its directories ``r1-sandbox-<token>-*`` and
  holds an exclusive ``flock`` on ``r1-sandbox-<token>.lock`` while it lives; the first ``rlimits`` run of a
  process deletes the directories of every token whose lock is free (its owner is dead; a lock works across PID
  namespaces, unlike a pid). That covers a reaper killed together with its parent.

Left out: a caller that is not root shares its uid with the sandboxed programs, which could then kill the reaper
(seccomp does not stop ``kill``); the sweep still removes their directories at the next start.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading

PREFIX = "r1-sandbox-"

# The reaper: reads "+"/"-" registrations until end-of-file, then kills what is left. Standard library only,
# started with -I -S (no environment, no site-packages), so it costs one interpreter start per parent process.
REAPER = r"""
import json, os, shutil, signal, stat, sys, time
live = {}
for line in sys.stdin.buffer:
    try:
        op, pgid, path = json.loads(line)
    except ValueError:
        continue
    if op == "+":
        live[pgid] = path
    else:
        live.pop(pgid, None)
for pgid, path in live.items():
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.0:  # until the group is empty (zombies of a non-reaping init may linger)
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            break
        time.sleep(0.005)
    def fix(func, p, _exc):
        try:
            os.chmod(os.path.dirname(p), stat.S_IRWXU)
            os.chmod(p, stat.S_IRWXU)
            func(p)
        except OSError:
            pass
    shutil.rmtree(path, onerror=fix)
"""

_lock = threading.Lock()
_state: dict = {"reaper": None, "token": None, "lock_fd": None, "swept": False}


def _reset_after_fork() -> None:
    # A forked child must not write into its parent's reaper pipe nor reuse its token: it starts its own, lazily.
    # (The inherited lock stays shared with the parent, which only delays a sweep of the parent's directories.)
    _state.update(reaper=None, token=None, lock_fd=None, swept=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def workdir_prefix() -> str:
    """``r1-sandbox-<token>-``: this process's prefix for working directories, its lock taken on first use."""
    with _lock:
        if _state["token"] is None:
            token = secrets.token_hex(6)
            fd = os.open(os.path.join(tempfile.gettempdir(), f"{PREFIX}{token}.lock"),
                         os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            _state.update(token=token, lock_fd=fd)
        return f"{PREFIX}{_state['token']}-"


def sweep() -> list[str]:
    """Delete the working directories (and lock files) of dead owners; once per process. Returns what it deleted."""
    with _lock:
        if _state["swept"]:
            return []
        _state["swept"] = True
    removed = []
    for lock in glob.glob(os.path.join(tempfile.gettempdir(), f"{PREFIX}*.lock")):
        token = os.path.basename(lock)[len(PREFIX) : -len(".lock")]
        if token == _state["token"]:
            continue
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: the owner lives
            os.close(fd)
            continue
        try:
            for d in glob.glob(os.path.join(tempfile.gettempdir(), f"{PREFIX}{token}-*")):
                rmtree(d)
                removed.append(d)
            os.unlink(lock)
            removed.append(lock)
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def track(pgid: int, workdir: str) -> None:
    """Register a sandbox's process group and working directory with the reaper (started on first use)."""
    _send(["+", pgid, workdir])


def untrack(pgid: int) -> None:
    """The sandbox is cleaned up: the reaper forgets it."""
    _send(["-", pgid, ""])


def _send(msg: list) -> None:
    line = (json.dumps(msg) + "\n").encode()
    with _lock:
        for _ in range(2):  # a reaper that died (killed from outside) is replaced once
            proc = _state["reaper"]
            if proc is None or proc.poll() is not None:
                proc = _state["reaper"] = _start()
            try:
                proc.stdin.write(line)
                proc.stdin.flush()
                return
            except (BrokenPipeError, OSError):
                _state["reaper"] = None


def _start() -> subprocess.Popen:
    exe = getattr(sys, "_base_executable", None) or sys.executable
    # Its own session: a Ctrl-C to the terminal's process group reaches the parent (which cleans up and closes the
    # pipe), not the reaper first.
    return subprocess.Popen([exe, "-I", "-S", "-B", "-c", REAPER], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)


def rmtree(path: str) -> None:
    """Delete ``path``, making read-only or unsearchable folders (a sandboxed program's chmod) writable first."""

    def fix(func, p, _exc):
        try:
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o700)
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=fix)


__all__ = ["PREFIX", "rmtree", "sweep", "track", "untrack", "workdir_prefix"]
