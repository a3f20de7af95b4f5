"""A local sandbox for untrusted (model-written) Python programs: ``run``, a bounded ``Pool``, and the isolation level.

    from r1.sandbox import run
    res = run("print(input()[::-1])", stdin="abc", timeout_s=2, memory_mb=256)
    res.status, res.stdout   # ('ok', 'cba\\n')

Every run gets a fresh sandbox with wall/CPU time limits, an address-space limit, a process cap, output caps, no
network, a private working directory deleted afterwards, an empty environment, no view of the user's files and
no process left behind. The strongest available level is used (``namespaces`` via bubblewrap, else ``rlimits``,
with a warning) and reported by :func:`isolation_level`; ``docs/sandbox.md`` lists what each level guarantees.
"""

from r1.sandbox.core import MAIN, STATUSES, Result, SandboxError, check_output, run
from r1.sandbox.isolation import Isolation, detect
from r1.sandbox.pool import Job, Pool, default_pool, default_workers, run_many


def isolation_level(level: str | None = None) -> str:
    """The active level: ``namespaces`` or ``rlimits`` (probed once per process; see :func:`isolation_info`)."""
    return detect(level).level


def isolation_info(level: str | None = None) -> Isolation:
    """Details of the active level: seccomp on/off, the bwrap binary, uid handling, and why stronger levels failed."""
    return detect(level)


__all__ = [
    "MAIN",
    "STATUSES",
    "Isolation",
    "Job",
    "Pool",
    "Result",
    "SandboxError",
    "check_output",
    "default_pool",
    "default_workers",
    "isolation_info",
    "isolation_level",
    "run",
    "run_many",
]
