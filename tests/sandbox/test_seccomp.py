"""The seccomp filter, checked with a small BPF interpreter (the reference) on x86_64 and aarch64 syscall numbers.

Run: pytest tests/sandbox/test_seccomp.py -q   (< 1 s; no sandbox is started)
"""

import errno
import struct

import pytest

from r1.sandbox.seccomp import (
    AF_UNIX,
    CLONE_NS_FLAGS,
    RET_ALLOW,
    RET_ERRNO,
    RET_KILL_PROCESS,
    _ARCHES,
    _SYSCALLS,
    build_filter,
)


def run_bpf(prog: bytes, nr: int, arch: int, args=(0,) * 6) -> int:
    """Interpret classic BPF over a ``struct seccomp_data`` (only the opcodes the filter uses)."""
    data = struct.pack("<iIQ6Q", nr, arch, 0, *args)
    ins = [struct.unpack_from("<HBBI", prog, i) for i in range(0, len(prog), 8)]
    acc, pc = 0, 0
    while True:
        code, jt, jf, k = ins[pc]
        if code == 0x20:
            acc = struct.unpack_from("<I", data, k)[0]
            pc += 1
        elif code in (0x15, 0x35, 0x45):
            hit = acc == k if code == 0x15 else acc >= k if code == 0x35 else bool(acc & k)
            pc += 1 + (jt if hit else jf)
        elif code == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")


@pytest.mark.parametrize("machine", ["x86_64", "aarch64"])
def test_filter_decisions(machine):
    prog = build_filter(machine)
    assert prog is not None and len(prog) % 8 == 0 and len(prog) // 8 < 256
    arch, col = _ARCHES[machine]
    nr = {name: nums[col] for name, nums in _SYSCALLS.items()}
    eperm = RET_ERRNO | errno.EPERM
    assert run_bpf(prog, 0 if col == 0 else 63, arch) == RET_ALLOW  # read
    assert run_bpf(prog, nr["socket"], arch, (AF_UNIX, 1, 0, 0, 0, 0)) == RET_ALLOW
    assert run_bpf(prog, nr["socket"], arch, (2, 1, 0, 0, 0, 0)) == RET_ERRNO | errno.EAFNOSUPPORT  # AF_INET
    assert run_bpf(prog, nr["socket"], arch, (10, 2, 0, 0, 0, 0)) == RET_ERRNO | errno.EAFNOSUPPORT  # AF_INET6
    assert run_bpf(prog, nr["clone"], arch, (0x11, 0, 0, 0, 0, 0)) == RET_ALLOW  # fork-like clone (SIGCHLD)
    assert run_bpf(prog, nr["clone"], arch, (0x10000000 | 0x11, 0, 0, 0, 0, 0)) == eperm  # CLONE_NEWUSER
    assert run_bpf(prog, nr["clone3"], arch) == RET_ERRNO | errno.ENOSYS
    for name in ("execve", "execveat", "ptrace", "setsid", "setpgid", "unshare", "mount", "bpf", "io_uring_setup"):
        assert run_bpf(prog, nr[name], arch) == eperm, name
    assert run_bpf(prog, 0, 0x40000003) == RET_KILL_PROCESS  # i386 calls on an x86_64 filter, or any other arch
    if col == 0:
        assert run_bpf(prog, 0x40000000 | 1, arch) == eperm  # x32 ABI


def test_unknown_machine_has_no_filter():
    assert build_filter("riscv64") is None
    assert CLONE_NS_FLAGS & 0x10000000
