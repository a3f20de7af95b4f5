"""Machinery only the trainers use: mixed precision, the bf16 speed check, the glibc memory switch, phase timing.

Run directories, the console, progress, seeding and metadata live in :mod:`r1.runs` (shared with eval/ and pipeline/)."""

from __future__ import annotations

import ctypes
import sys
import time
from contextlib import contextmanager, nullcontext

import torch

from r1.runs import console


def autocast_context(device: torch.device, dtype: torch.dtype):
    """Mixed precision for ``dtype`` on ``device`` (fp32: no-op). Weights and optimizer state stay fp32."""
    if dtype == torch.float32:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def bf16_is_slow_here(device: torch.device, dtype: torch.dtype) -> bool:
    """True for bf16 on a CPU whose oneDNN has no bf16 kernels (no AVX-512/AMX: an AVX2-only machine measured
    1.4 GFLOP/s for bf16 matmuls against ~150 in fp32); the trainers then warn once."""
    if device.type != "cpu" or dtype != torch.bfloat16:
        return False
    try:
        return not torch.ops.mkldnn._is_mkldnn_bf16_supported()
    except (AttributeError, RuntimeError):
        return True


def warn_if_bf16_is_slow(device: torch.device, dtype: torch.dtype) -> None:
    if bf16_is_slow_here(device, dtype):
        console.print("[yellow]warning:[/] model.dtype=bf16 on a CPU without bf16 matrix units (no AVX-512/AMX): "
                      "expect it to be far slower than model.dtype=fp32")


_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # glibc mallopt parameters (malloc.h)


def keep_freed_memory() -> bool:
    """Let glibc keep the memory a training step frees, for the next step: blocks up to 32 MiB come from the heap
    (not a fresh ``mmap`` each), and free heap memory is not returned to the OS (up to 1 GiB).

    Why: by default glibc maps big blocks afresh and unmaps them when freed, so every step of a CPU run page-faults
    its activations back in. Measured on the small benchmark preset (2-core VM): 88k page faults and 0.6 s of system
    time per step, ~0 with this. It is what ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` do, set from the
    process itself (the ``mallopt`` call of glibc). Linux with glibc only; returns False where it does not apply.
    The cost: the process's resident memory stays at its peak.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(
        mallopt(param, value) == 1
        for param, value in ((_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, 1 << 30), (_M_TOP_PAD, 64 << 20))
    )


class PhaseTimer:
    """Wall time of named phases within one step: ``with timer("rollout"): ...``; ``timer.times`` sums repeats."""

    def __init__(self):
        self.times: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.times[name] = self.times.get(name, 0.0) + time.perf_counter() - t0


def setup_compute(run, model) -> tuple[torch.device, torch.dtype]:
    """A trainer's process setup from its ``run`` and ``model`` config sections: CPU threads, device and dtype (with
    the slow-bf16 warning), and on CPU the allocator kept from returning memory to the OS. Returns (device, dtype)."""
    from r1.models import resolve_device, resolve_dtype

    if run.threads > 0:
        torch.set_num_threads(run.threads)
    device, dtype = resolve_device(model.device), resolve_dtype(model.dtype)
    warn_if_bf16_is_slow(device, dtype)
    if run.keep_freed_memory and device.type == "cpu":
        keep_freed_memory()
    return device, dtype


def open_run(run, resume) -> tuple["Path", "Path | None"]:
    """The trainers' run directory and the checkpoint to resume from: ``resume``'s latest checkpoint, or a fresh
    ``<run.out_dir>/<run.name>`` (``r1.runs.check_run_dir``: an earlier run is moved aside only with
    ``run.overwrite``) and None. Seeds every generator with ``run.seed`` afterwards."""
    from pathlib import Path

    from r1.runs import check_run_dir, seed_everything
    from r1.train.checkpoint import latest_checkpoint

    if resume is not None:
        run_dir = Path(resume)
        ckpt = latest_checkpoint(run_dir)
    else:
        run_dir, ckpt = check_run_dir(run.out_dir, run.name, overwrite=run.overwrite), None
    seed_everything(run.seed)
    return run_dir, ckpt
