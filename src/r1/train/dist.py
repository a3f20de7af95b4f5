"""Data-parallel workers over ``torch.distributed``: process-group setup, spawning, and the collectives GRPO uses.

Two ways in:

- ``run.workers=N`` (``r1 grpo ... run.workers=2``): ``spawn`` starts N processes on this machine (gloo on CPU,
  one GPU each on CUDA) with a file rendezvous in a temporary folder; each gets ``threads // N`` CPU threads;
- ``torchrun --nproc-per-node N -m r1 grpo ...``: the process group comes from torchrun's environment
  (``init_from_env``), across machines too.

Why on a CPU: a 2-core machine runs a small model's matmuls at ~70 GFLOP/s per thread but only ~100-120 GFLOP/s
with both threads in one process, and the per-operator overhead of decoding is serial Python. Two workers with one
thread each run both halves of the batch side by side (see docs/performance.md for measured step times).

With one worker every function here is a no-op, so single-process code pays nothing.
"""

from __future__ import annotations

import os
import tempfile
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist

from r1.errors import R1Error

TIMEOUT = timedelta(hours=2)
"""Collective timeout: long enough for rank 0's held-out evaluation and checkpoint writes."""


def world() -> tuple[int, int]:
    """(rank, world size); (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main() -> bool:
    return world()[0] == 0


def init_from_env(device: torch.device) -> None:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1), once; no-op otherwise."""
    if dist.is_initialized() or int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(backend, timeout=TIMEOUT)


def _worker(rank: int, workers: int, rendezvous: str, error_dir: str, fn: Callable, args: tuple) -> None:
    backend = "nccl" if torch.cuda.is_available() and torch.cuda.device_count() >= workers else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(rank)
    os.environ["LOCAL_RANK"] = str(rank)
    dist.init_process_group(backend, init_method=f"file://{rendezvous}", rank=rank, world_size=workers,
                            timeout=TIMEOUT)
    try:
        fn(*args)
        # Both workers leave together: one that tears its connections down while the other still uses them can
        # abort the other process at exit (gloo: "terminate called without an active exception").
        dist.barrier()
    except R1Error as e:  # a one-line error: handed to the parent, which raises it as its own
        Path(error_dir, f"rank{rank}").write_text(str(e))
        raise SystemExit(2) from None
    except BaseException:
        Path(error_dir, f"rank{rank}").write_text(traceback.format_exc())
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def spawn(fn: Callable, workers: int, *args: Any) -> None:
    """Run ``fn(*args)`` in ``workers`` processes joined in one process group; re-raise the first error here."""
    import logging

    import torch.multiprocessing as mp

    # When one worker fails, torch terminates the others with a warning per process; the error we raise says it all.
    logging.getLogger("torch.multiprocessing.spawn").setLevel(logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="r1_dist_") as tmp:
        error_dir = Path(tmp, "errors")
        error_dir.mkdir()
        try:
            mp.start_processes(
                _worker,
                args=(workers, str(Path(tmp, "rendezvous")), str(error_dir), fn, args),
                nprocs=workers,
                start_method="spawn",
            )
        except Exception as e:  # noqa: BLE001 - any worker failure: report the first recorded error
            errors = sorted(error_dir.iterdir())
            if errors:
                message = errors[0].read_text().strip()
                if "\n" not in message:
                    raise R1Error(message) from None
                raise R1Error(f"worker {errors[0].name} failed:\n{message}") from None
            raise R1Error(f"a data-parallel worker died: {e}") from None


# ---------------------------------------------------------------------------------------------------- collectives
def all_reduce_sum_(tensors: list[torch.Tensor]) -> None:
    """Sum each tensor over the workers, in place (one flat buffer, one collective)."""
    if world()[1] == 1 or not tensors:
        return
    flat = torch.cat([t.reshape(-1) for t in tensors])
    dist.all_reduce(flat)
    offset = 0
    for t in tensors:
        t.copy_(flat[offset : offset + t.numel()].view_as(t))
        offset += t.numel()


def all_reduce_grads_(model: torch.nn.Module) -> None:
    """Sum parameter gradients over the workers (a missing gradient counts as zero)."""
    if world()[1] == 1:
        return
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    all_reduce_sum_([p.grad for p in params])


def all_gather_objects(obj: Any) -> list[Any]:
    """Every worker's ``obj``, in rank order (``[obj]`` with one worker)."""
    if world()[1] == 1:
        return [obj]
    out: list[Any] = [None] * world()[1]
    dist.all_gather_object(out, obj)
    return out


def broadcast_params_(model: torch.nn.Module) -> None:
    """Make every worker's weights rank 0's."""
    if world()[1] == 1:
        return
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            dist.broadcast(t.data, src=0)
            # Written behind autograd's back: count it, so what is cached by version (FastLM.weights, forward
            # records) sees the change.
            torch.autograd.graph.increment_version(t)


def barrier() -> None:
    if world()[1] > 1:
        dist.barrier()
