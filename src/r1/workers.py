"""Worker processes: a plain Python child started on a ``"module:function"`` entry, fed pickled frames over its pipes.

Used where work must run on a process's *main thread* — math-verify bounds its steps with ``SIGALRM``, which only the
main thread can use — from a thread or in parallel: the math grader's off-main-thread helper
(:mod:`r1.rewards.math_grader`) and evaluation's grading pool (:mod:`r1.eval.grade`).

Why not ``multiprocessing``: a spawned process re-imports the parent's ``__main__`` (a script without a main guard
breaks, and a CLI entry point would run again), and a forked one copies a process that may hold a model and torch
threads. A child here is ``python -c "from module import function; function()"`` with the parent's ``sys.path`` as
its ``PYTHONPATH``, so it imports only what its entry needs.

Protocol: each frame is an 8-byte little-endian length and a pickle. The parent :meth:`ChildProcess.send`\\ s a frame,
the child's :func:`serve` loop answers each with one frame, and :meth:`ChildProcess.receive` reads it, optionally
within a deadline (past it the child is killed: its state is unknown). A child that dies gives :class:`ChildDied`
with its exit code; its traceback is on the parent's stderr, which a trusted child shares.

A child that runs untrusted input (``plain=True``, ``max_frame_bytes``: :mod:`r1.tasks.reasoning_gym`'s scorer) may
be taken over by it, so the parent then reads only plain values (numbers, strings, bytes, lists, tuples, sets,
dicts: a pickle naming any class or function, which ``pickle.loads`` would call, is refused) and frames up to a size;
either breach kills the child and raises :class:`ChildError`. Its stderr is not the parent's (it could flood the
terminal or a log file): a thread drains it into a buffer that keeps the last :data:`STDERR_TAIL_BYTES`
(:meth:`ChildProcess.stderr_tail`; a :class:`ChildDied` names its last line).

Left out: restarts and scheduling (the callers decide: the math grader starts a fresh helper after a timeout, the
grading pool hands out chunks with :func:`wait_readable`), and any security boundary (see :mod:`r1.sandbox`).
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import select
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Sequence

_HEADER_BYTES = 8
#: Bytes of an untrusted child's stderr kept (its last ones); the rest is read and dropped.
STDERR_TAIL_BYTES = 4096


class ChildError(RuntimeError):
    """A worker process did not answer."""


class ChildDied(ChildError):
    """The child closed its output (it exited or crashed) before answering; ``returncode`` is its exit code."""

    def __init__(self, returncode: int | None, said: str = ""):
        super().__init__(f"worker process died (exit code {returncode})" + (f": {said}" if said else ""))
        self.returncode = returncode


class ChildTimeout(ChildError):
    """The child did not answer in time; it has been killed."""


class ChildProcess:
    """One worker process running ``entry`` (``"package.module:function"``; the function calls :func:`serve`).

    Example::

        child = ChildProcess("r1.rewards.math_grader:_serve")
        child.send(["1", "1.0", 5.0])
        child.receive(timeout_s=7.0)  # -> True
        child.close()
    """

    def __init__(self, entry: str, *, plain: bool = False, max_frame_bytes: int | None = None):
        module, function = entry.split(":")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self.entry = entry
        self.plain, self.max_frame_bytes = plain, max_frame_bytes  # see the module docstring (untrusted children)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", f"from {module} import {function}; {function}()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if plain else None,
            env=env,
        )
        self._tail = bytearray()
        self._drain = None
        if plain:  # its stderr is drained here, its last bytes kept (see the module docstring)
            self._drain = threading.Thread(target=self._drain_stderr, name=f"stderr of {entry}", daemon=True)
            self._drain.start()

    def _drain_stderr(self) -> None:
        fd = self.proc.stderr.fileno()
        while True:
            try:
                data = os.read(fd, 1 << 16)
            except OSError:
                return
            if not data:
                return
            self._tail += data
            del self._tail[:-STDERR_TAIL_BYTES]

    def stderr_tail(self, wait_s: float = 0.0) -> str:
        """The last :data:`STDERR_TAIL_BYTES` of an untrusted child's stderr (after waiting up to ``wait_s`` for
        the rest of it, e.g. once it has died), decoded with replacement characters; ``""`` for a trusted child."""
        if self._drain is not None and wait_s > 0:
            self._drain.join(wait_s)
        return bytes(self._tail).decode("utf-8", "replace")

    def _died(self) -> ChildDied:
        code = self.proc.wait()
        lines = self.stderr_tail(wait_s=1.0).strip().splitlines()
        return ChildDied(code, lines[-1][:200] if lines else "")

    def fileno(self) -> int:
        """The child's output pipe, readable when an answer arrives (for ``select``)."""
        return self.proc.stdout.fileno()

    def send(self, obj: Any) -> None:
        """Write one frame; raises :class:`ChildDied` if the child has gone (broken pipe, or killed here)."""
        frame = _frame(obj)
        try:
            self.proc.stdin.write(frame)
            self.proc.stdin.flush()
        except (OSError, ValueError):  # ValueError: the pipe was closed by kill() or close()
            raise ChildDied(self.proc.poll()) from None

    def receive(self, timeout_s: float | None = None) -> Any:
        """Read one frame. Raises :class:`ChildDied` if the child's output ends first, and :class:`ChildTimeout`
        (after killing the child) if the whole frame has not arrived within ``timeout_s`` seconds (None: wait)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        n = int.from_bytes(self._read_exact(_HEADER_BYTES, deadline), "little")
        if self.max_frame_bytes is not None and n > self.max_frame_bytes:
            self.kill()
            raise ChildError(f"worker process {self.entry} sent a frame of {n} bytes (at most {self.max_frame_bytes})")
        data = self._read_exact(n, deadline)
        if not self.plain:
            return pickle.loads(data)
        try:
            return _PlainUnpickler(io.BytesIO(data)).load()
        except Exception as e:  # noqa: BLE001 - a malformed or forged frame, whatever the unpickler says
            self.kill()
            raise ChildError(f"worker process {self.entry} sent a frame that is not plain values ({e})") from None

    def _read_exact(self, n: int, deadline: float | None) -> bytes:
        # os.read on the pipe itself, never the buffered reader: select then sees every byte not yet read.
        fd, parts = self.fileno(), []
        while n > 0:
            if deadline is not None:
                ready, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
                if not ready:
                    self.kill()
                    raise ChildTimeout(f"worker process {self.entry} did not answer in time")
            data = os.read(fd, min(n, 1 << 20))
            if not data:
                raise self._died()
            parts.append(data)
            n -= len(data)
        return b"".join(parts)

    def kill(self) -> None:
        """End the child now."""
        self.proc.kill()
        self.proc.wait()
        self._close_pipes()

    def close(self, timeout_s: float = 10.0) -> None:
        """Close its input (its :func:`serve` loop returns), wait up to ``timeout_s`` for it to exit, else kill it."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._close_pipes()

    def _close_pipes(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            try:
                pipe.close()
            except OSError:
                pass
        if self._drain is not None:  # the child is gone: its stderr ends, and the drain with it
            self._drain.join(1.0)
            if not self._drain.is_alive():
                self.proc.stderr.close()


class _PlainUnpickler(pickle.Unpickler):
    """Plain values only: every class or function a pickle names (``find_class``) is refused."""

    def find_class(self, module, name):
        raise pickle.UnpicklingError(f"names {module}.{name}")


def wait_readable(children: Sequence[ChildProcess], timeout_s: float | None = None) -> list[ChildProcess]:
    """The children whose answer (or end of output) has arrived, waiting up to ``timeout_s`` (None: until one has)."""
    ready, _, _ = select.select(list(children), [], [], timeout_s)
    return ready


def serve(handle: Callable[[Any], Any]) -> None:
    """A child's loop, on its main thread: each frame read from stdin is answered with the frame ``handle(frame)``;
    returns when stdin closes. Logging is set to errors only (a trusted child's stderr is the parent's)."""
    logging.basicConfig(level=logging.ERROR)
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            request = _read_frame(stdin)
        except EOFError:
            return
        stdout.write(_frame(handle(request)))
        stdout.flush()


def _frame(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(_HEADER_BYTES, "little") + data


def _read_frame(stream) -> Any:
    head = stream.read(_HEADER_BYTES)
    if len(head) < _HEADER_BYTES:
        raise EOFError
    n = int.from_bytes(head, "little")
    data = stream.read(n)
    if len(data) < n:
        raise EOFError
    return pickle.loads(data)


__all__ = ["ChildDied", "ChildError", "ChildProcess", "ChildTimeout", "STDERR_TAIL_BYTES", "serve", "wait_readable"]
