"""Fixtures for the sandbox tests: the isolation levels this machine offers."""

import os

import pytest

from r1.sandbox import isolation_info


def _levels():
    out = ["auto"]
    try:
        active = isolation_info().level
    except Exception:  # noqa: BLE001 - reported by the tests that use it
        return out
    if active == "namespaces":
        out.append("rlimits")  # the fallback is tested here too
    return out


@pytest.fixture(params=_levels())
def level(request):
    """Each level to test: the active one ("auto") and, where namespaces work, the rlimits fallback."""
    return None if request.param == "auto" else request.param


def leftover_processes(run_id: str) -> list[str]:
    """Command lines of live (non-zombie) processes whose command line holds ``run_id``."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/cmdline", "rb") as f:
                cmd = f.read()
            with open(f"/proc/{p}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if run_id.encode() in cmd and state != "Z":
            out.append(f"{p}: {cmd[:120]!r}")
    return out
