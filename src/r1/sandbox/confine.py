"""Confine the *current* process before it handles untrusted input: no file writes, no new programs or processes,
no network, bounded memory.

For a trusted worker process (an :class:`r1.workers.ChildProcess`) that must run a library function on text a
model wrote, e.g. reasoning-gym's scorers, which ``eval`` or ``sympy.parse_expr`` the answer
(:mod:`r1.tasks.reasoning_gym`). The worker imports what it needs first, then calls :func:`confine_self` once;
the limits hold for the rest of its life and cannot be lifted. It uses the same kernel features as the sandbox's
bootstrap (:mod:`r1.sandbox.boot`), minus what needs a fresh process (namespaces, a uid change, a private
working directory):

- Landlock (Linux >= 5.13): every filesystem write is refused (create, write, truncate, remove, rename, link,
  mkdir, mknod); reads stay allowed, and so do writes to descriptors already open (the worker's pipes);
- the seccomp deny-list of :mod:`r1.sandbox.seccomp` with ``allow_fork=False``: no ``execve``, no new processes
  (threads only), no sockets but ``AF_UNIX``, no namespaces, no ``ptrace``;
- ``RLIMIT_AS``: the address space may grow by ``memory_mb`` beyond what is mapped now (a larger allocation raises
  ``MemoryError``); ``RLIMIT_CORE`` 0.

:func:`probe_guards` says, without changing the calling process, whether this kernel offers the three (its caller,
:mod:`r1.tasks.reasoning_gym`, refuses to score without them unless the user opts in).

Left out: a time limit (the parent's: :meth:`r1.workers.ChildProcess.receive` with a timeout kills the worker) and
hiding the user's files from reads (the sandbox's ``namespaces`` level does that for whole programs).
"""

from __future__ import annotations

import ctypes
import os
import resource
import sys

from r1.sandbox.seccomp import build_filter

_PR_SET_NO_NEW_PRIVS, _PR_GET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 39, 22, 2
_SYS_LANDLOCK_CREATE_RULESET, _SYS_LANDLOCK_RESTRICT_SELF = 444, 446  # same number on x86_64 and aarch64
# LANDLOCK_ACCESS_FS_*: WRITE_FILE (1<<1), REMOVE_DIR .. MAKE_SYM (1<<4 .. 1<<12); REFER (1<<13, ABI 2),
# TRUNCATE (1<<14, ABI 3). EXECUTE, READ_FILE and READ_DIR are not handled, so they stay allowed.
_WRITES_V1 = (1 << 1) | sum(1 << b for b in range(4, 13))


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def _vm_size_bytes() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def _landlock_abi(libc) -> int:
    """Landlock's ABI version (>= 1), or a negative number where the kernel lacks or disables it."""
    return libc.syscall(ctypes.c_long(_SYS_LANDLOCK_CREATE_RULESET), None, ctypes.c_size_t(0), ctypes.c_uint32(1))


def _has_no_new_privs(libc) -> bool:
    return libc.prctl(ctypes.c_int(_PR_GET_NO_NEW_PRIVS), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0),
                      ctypes.c_ulong(0)) >= 0


def _has_seccomp_filter() -> bool:
    if build_filter(allow_fork=False) is None:  # an architecture the filter does not know
        return False
    try:
        with open("/proc/self/status") as f:
            return any(line.startswith("Seccomp:") for line in f)  # the kernel has CONFIG_SECCOMP
    except OSError:
        return False


def probe_guards() -> dict[str, bool]:
    """Which of :func:`confine_self`'s kernel guards this machine offers, ``{"no_new_privs": ..., "landlock": ...,
    "seccomp": ...}``, read without confining the calling process (all False off Linux)."""
    if not sys.platform.startswith("linux"):
        return {"no_new_privs": False, "landlock": False, "seccomp": False}
    libc = _libc()
    return {"no_new_privs": _has_no_new_privs(libc), "landlock": _landlock_abi(libc) >= 1,
            "seccomp": _has_seccomp_filter()}


def confine_self(memory_mb: int = 1024) -> dict[str, bool]:
    """Confine this process for good (see the module docstring); returns which guards are on:
    ``{"no_new_privs": ..., "landlock": ..., "seccomp": ..., "memory": ...}``. A guard the kernel or platform lacks
    stays off (the caller decides whether to go on); nothing here raises for that."""
    on = {"no_new_privs": False, "landlock": False, "seccomp": False, "memory": False}
    sys.dont_write_bytecode = True  # later imports would try (and fail) to write .pyc files
    try:
        limit = _vm_size_bytes() + memory_mb * (1 << 20)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        on["memory"] = True
    except (OSError, ValueError):
        pass
    if not sys.platform.startswith("linux"):
        return on
    libc = _libc()
    syscall = libc.syscall
    ul = ctypes.c_ulong
    if libc.prctl(ctypes.c_int(_PR_SET_NO_NEW_PRIVS), ul(1), ul(0), ul(0), ul(0)) != 0:
        return on
    on["no_new_privs"] = True
    abi = _landlock_abi(libc)
    if abi >= 1:
        handled = ctypes.c_uint64(_WRITES_V1 | ((1 << 13) if abi >= 2 else 0) | ((1 << 14) if abi >= 3 else 0))
        rs = syscall(ctypes.c_long(_SYS_LANDLOCK_CREATE_RULESET), ctypes.byref(handled), ctypes.c_size_t(8),
                     ctypes.c_uint32(0))
        if rs >= 0:  # no rules: every handled access is refused everywhere
            on["landlock"] = syscall(ctypes.c_long(_SYS_LANDLOCK_RESTRICT_SELF), ctypes.c_int(rs),
                                     ctypes.c_uint32(0)) == 0
            os.close(rs)
    prog = build_filter(allow_fork=False)
    if prog is not None:
        buf = ctypes.create_string_buffer(prog, len(prog))
        fprog = _SockFprog(len(prog) // 8, ctypes.addressof(buf))
        on["seccomp"] = libc.prctl(ctypes.c_int(_PR_SET_SECCOMP), ul(_SECCOMP_MODE_FILTER), ctypes.byref(fprog),
                                   ul(0), ul(0)) == 0
    return on


__all__ = ["confine_self", "probe_guards"]
