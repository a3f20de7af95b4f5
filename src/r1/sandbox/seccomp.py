"""A seccomp-BPF deny-list for sandboxed programs, compiled in pure Python (no libseccomp).

The filter is installed by the sandbox bootstrap (``r1.sandbox.boot``) right before the untrusted code runs, so it
can forbid ``execve`` (the interpreter is already running). It returns an error for the listed system calls and
allows everything else; an unexpected architecture (x32, or a 32-bit ABI) kills the process.

What it denies and why:

- ``execve``/``execveat``: no shells, no other binaries, no re-exec of Python (``subprocess`` fails with EPERM).
- ``socket`` for any family but ``AF_UNIX``: no network even where no network namespace is available
  (``multiprocessing`` and ``socketpair`` keep working).
- ``clone`` with namespace flags, ``clone3`` (ENOSYS so glibc falls back to ``clone``, as Docker's default profile
  does; its flags live in memory a filter cannot read), ``unshare``, ``setns``: no new namespaces.
- ``setsid``/``setpgid``: a child cannot leave the process group the fallback level kills on exit.
- with ``allow_fork=False``: ``clone`` without ``CLONE_THREAD`` and ``fork``/``vfork`` (EAGAIN, as at the
  process limit): threads only, so the program stays one process and its address-space limit caps it whole.
- ``ptrace``, ``process_vm_*``, ``mount``/``umount2``/``pivot_root``/``chroot``, kernel keyrings, ``bpf``,
  ``perf_event_open``, ``userfaultfd``, ``io_uring_*`` (bypasses seccomp for its own operations), module loading,
  ``kexec``, ``reboot``, ``swapon``/``swapoff``, ``syslog``, ``acct``, ``quotactl``, ``*_by_handle_at``: kernel
  attack surface no test program needs.

Left out: an allow-list (brittle across Python and libc versions) and 32-bit architectures.
"""

from __future__ import annotations

import errno
import platform
import struct

# struct seccomp_data offsets: int nr; u32 arch; u64 instruction_pointer; u64 args[6] (little-endian targets only)
_OFF_NR, _OFF_ARCH, _OFF_ARG0 = 0, 4, 16
# BPF opcodes
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K
# seccomp return actions
RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000

#: CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET
CLONE_NS_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000
CLONE_THREAD = 0x00010000
AF_UNIX = 1

# name -> (x86_64, aarch64) syscall numbers (asm/unistd_64.h, asm-generic/unistd.h)
_SYSCALLS = {
    "socket": (41, 198),
    "clone": (56, 220),
    "clone3": (435, 435),
    "fork": (57, None),  # aarch64 has only clone
    "vfork": (58, None),
    "execve": (59, 221),
    "execveat": (322, 281),
    "setsid": (112, 157),
    "setpgid": (109, 154),
    "ptrace": (101, 117),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "mount": (165, 40),
    "umount2": (166, 39),
    "pivot_root": (155, 41),
    "chroot": (161, 51),
    "unshare": (272, 97),
    "setns": (308, 268),
    "keyctl": (250, 219),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "bpf": (321, 280),
    "perf_event_open": (298, 241),
    "userfaultfd": (323, 282),
    "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "kexec_load": (246, 104),
    "kexec_file_load": (320, 294),
    "init_module": (175, 105),
    "finit_module": (313, 273),
    "delete_module": (176, 106),
    "reboot": (169, 142),
    "swapon": (167, 224),
    "swapoff": (168, 225),
    "syslog": (103, 116),
    "acct": (163, 89),
    "quotactl": (179, 60),
    "open_by_handle_at": (304, 265),
    "name_to_handle_at": (303, 264),
}
#: machine -> (AUDIT_ARCH_*, column in _SYSCALLS)
_ARCHES = {"x86_64": (0xC000003E, 0), "amd64": (0xC000003E, 0), "aarch64": (0xC00000B7, 1), "arm64": (0xC00000B7, 1)}

#: Denied outright with EPERM (socket and clone are filtered on their first argument instead).
DENIED = tuple(n for n in _SYSCALLS if n not in ("socket", "clone", "clone3", "fork", "vfork"))


def _ins(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("<HBBI", code, jt, jf, k & 0xFFFFFFFF)


def build_filter(machine: str | None = None, allow_fork: bool = True) -> bytes | None:
    """The filter as raw ``struct sock_filter`` bytes for ``machine`` (default: this one); None if unsupported.
    ``allow_fork=False`` also refuses new processes (threads stay allowed).

    Layout: check the architecture (else kill), then one ``jeq nr`` test per rule; the argument-checking rules
    (``socket``, ``clone``) return on both branches, so the accumulator never needs reloading.
    """
    machine = (machine or platform.machine()).lower()
    if machine not in _ARCHES:
        return None
    audit_arch, col = _ARCHES[machine]
    nr = {name: nums[col] for name, nums in _SYSCALLS.items()}
    eperm = RET_ERRNO | errno.EPERM
    prog = [_ins(_LD_W_ABS, _OFF_ARCH), _ins(_JEQ_K, audit_arch, 1, 0), _ins(_RET_K, RET_KILL_PROCESS)]
    prog.append(_ins(_LD_W_ABS, _OFF_NR))
    if col == 0:  # x32 ABI calls carry bit 30 (__X32_SYSCALL_BIT); refuse them all
        prog += [_ins(_JGE_K, 0x40000000, 0, 1), _ins(_RET_K, eperm)]
    for name in DENIED:
        prog += [_ins(_JEQ_K, nr[name], 0, 1), _ins(_RET_K, eperm)]
    prog += [_ins(_JEQ_K, nr["clone3"], 0, 1), _ins(_RET_K, RET_ERRNO | errno.ENOSYS)]
    eagain = RET_ERRNO | errno.EAGAIN
    if not allow_fork:
        for name in ("fork", "vfork"):
            if nr[name] is not None:
                prog += [_ins(_JEQ_K, nr[name], 0, 1), _ins(_RET_K, eagain)]
    # socket(family, ...): only AF_UNIX
    prog += [
        _ins(_JEQ_K, nr["socket"], 0, 4),
        _ins(_LD_W_ABS, _OFF_ARG0),
        _ins(_JEQ_K, AF_UNIX, 0, 1),
        _ins(_RET_K, RET_ALLOW),
        _ins(_RET_K, RET_ERRNO | errno.EAFNOSUPPORT),
    ]
    # clone(flags, ...): no namespace flags (flags is the first argument on x86_64 and aarch64); without
    # allow_fork, CLONE_THREAD too (a thread, not a process)
    prog += [
        _ins(_JEQ_K, nr["clone"], 0, 4 if allow_fork else 6),
        _ins(_LD_W_ABS, _OFF_ARG0),
        _ins(_JSET_K, CLONE_NS_FLAGS, 0, 1),
        _ins(_RET_K, eperm),
    ]
    if not allow_fork:
        prog += [_ins(_JSET_K, CLONE_THREAD, 1, 0), _ins(_RET_K, eagain)]
    prog.append(_ins(_RET_K, RET_ALLOW))
    prog.append(_ins(_RET_K, RET_ALLOW))
    return b"".join(prog)


__all__ = ["DENIED", "build_filter"]
