"""A bounded pool of sandbox runs: many programs at once, at most ``workers`` alive at a time.

Each worker is a thread that spends its time waiting on a sandboxed child process (the GIL is released), so
threads are enough; every run enforces its own deadline, so a runaway program holds its worker for at most its
``timeout_s`` (plus the kill) and never stalls the pool. Rewards and graders share one process-wide pool
(:func:`default_pool`).

Throughput on the 2-core development VM, measured while a training run used both cores: 20-28 trivial programs
per second with 2 workers at the ``namespaces`` level (``python -m r1.sandbox`` measures it; ``docs/sandbox.md``).
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from r1.sandbox.core import Result, _check_args, _run_with
from r1.sandbox.isolation import detect


@dataclass
class Job:
    """The arguments of one :func:`r1.sandbox.run` call (see there)."""

    code: str
    stdin: str | bytes = ""
    timeout_s: float = 10.0
    memory_mb: int = 512
    files: Mapping[str, str | bytes] | None = None
    tests: list[str] | None = None
    max_procs: int = 16
    max_output_bytes: int = 8 << 20
    disk_mb: int = 64
    allow_fork: bool = False


def default_workers() -> int:
    """One worker per CPU this process may use (sandbox start-up is CPU-bound)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


class Pool:
    """Run sandboxed programs concurrently with at most ``workers`` at a time.

    Args:
        workers: concurrent sandboxes (default: :func:`default_workers`).
        level: isolation level for every run (None = the strongest available).

    Example::

        with Pool(workers=2) as pool:
            results = pool.map([Job("print(1)"), Job("print(2)")])
    """

    def __init__(self, workers: int | None = None, level: str | None = None):
        self.workers = workers or default_workers()
        self.level = level
        self._iso = detect(level)
        self._executor = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="r1-sandbox")

    def submit(self, job: Job | Mapping[str, Any] | str, **kwargs) -> Future:
        """Schedule one run; returns a Future of its :class:`Result`. ``job`` may be a Job, a dict, or source."""
        j = _as_job(job, **kwargs)
        _check_args(j.timeout_s, j.memory_mb, j.max_procs, j.max_output_bytes, j.disk_mb)
        return self._executor.submit(
            _run_with,
            self._iso,
            j.code,
            stdin=j.stdin,
            timeout_s=j.timeout_s,
            memory_mb=j.memory_mb,
            files=j.files,
            tests=j.tests,
            max_procs=j.max_procs,
            max_output_bytes=j.max_output_bytes,
            disk_mb=j.disk_mb,
            allow_fork=j.allow_fork,
        )

    def map(self, jobs: Iterable[Job | Mapping[str, Any] | str]) -> list[Result]:
        """Run all ``jobs``; results in input order."""
        futures = [self.submit(j) for j in jobs]
        return [f.result() for f in futures]

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "Pool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _as_job(job: Job | Mapping[str, Any] | str, **kwargs) -> Job:
    if isinstance(job, Job):
        return job
    if isinstance(job, str):
        return Job(code=job, **kwargs)
    return Job(**{**dict(job), **kwargs})


def run_many(
    jobs: Iterable[Job | Mapping[str, Any] | str], *, workers: int | None = None, level: str | None = None
) -> list[Result]:
    """Run ``jobs`` on a temporary :class:`Pool`; results in input order."""
    with Pool(workers=workers, level=level) as pool:
        return pool.map(jobs)


_default: dict[tuple, Pool] = {}
_default_lock = threading.Lock()


def default_pool(workers: int | None = None, level: str | None = None) -> Pool:
    """The process-wide pool for ``(workers, level)``, created on first use (rewards and graders share it)."""
    key = (workers or default_workers(), level)
    with _default_lock:
        if key not in _default:
            _default[key] = Pool(workers=key[0], level=level)
        return _default[key]


__all__ = ["Job", "Pool", "default_pool", "default_workers", "run_many"]
