"""Fused float32 CPU kernels (``kernels.cpp``), built on first use with ``torch.utils.cpp_extension``.

Why: on a CPU the non-matmul parts of a small model's GRPO step are hundreds of tiny ATen operators per pass
(docs/performance.md); each kernel here does one of those groups in one pass: the decode step's RoPE + KV-cache
write + single-query attention, the SwiGLU (forward, and forward + backward for the replayed train pass), RMSNorm
(forward and backward), and drawing a token with its logprob; and MKL's packed float32 product for the decode's
few-row products (packed once per rollout into memory kept between rollouts). Every one has a plain-PyTorch
reference, the code ``fast.py``, ``replay.py`` and ``rollout/native.py`` run when the kernels are off or
unavailable, and ``tests/models/test_kernels.py`` compares the two.

The build needs a C++ compiler and ``ninja`` (a dependency of r1); it takes ~15 s once per machine and is cached
(``TORCH_EXTENSIONS_DIR``, default ``~/.cache/torch_extensions``) under a name that includes the source's and the
CPU's fingerprint (it is compiled with ``-march=native``). Where it fails, r1 says so once and runs the PyTorch
code. ``R1_KERNELS=0`` switches the kernels off; callers ask ``fused_kernels(*tensors)``, which says whether
they apply to those tensors.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import sys
import threading
from pathlib import Path

import torch

log = logging.getLogger(__name__)

SOURCE = Path(__file__).with_name("kernels.cpp")
FLAGS = ["-O3", "-march=native", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", "-std=c++17"]

_lock = threading.Lock()
_state: dict[str, object] = {}  # "ops": the torch.ops.r1 namespace once built; "error": why it is not


@functools.cache
def cpu_field(name: str) -> str:
    """A field of the first CPU in ``/proc/cpuinfo`` (``vendor_id``, ``flags``, ...), or "" where there is none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == name:
                return value.strip()
    except OSError:
        pass
    return ""


def _cpu_fingerprint() -> str:
    """The CPU's feature flags (``-march=native`` code runs only where they match)."""
    return cpu_field("flags") or platform.processor() or platform.machine()


def build_name() -> str:
    """The extension's name: one build per source (its text and where it is), flags, CPU and torch version.

    Where it is: torch's build files name the source's path, so two checkouts of the same source sharing one name
    rebuilt it (~10 s) each time the other one had loaded it last."""
    h = hashlib.sha256()
    for part in (SOURCE.read_bytes(), str(SOURCE.resolve()), " ".join(FLAGS), _cpu_fingerprint(), torch.__version__):
        h.update(part if isinstance(part, bytes) else part.encode())
    return f"r1_kernels_{h.hexdigest()[:12]}"


def enabled() -> bool:
    return os.environ.get("R1_KERNELS", "1").strip().lower() not in ("0", "false", "no", "off")


def ops():
    """``torch.ops.r1`` with the kernels loaded, or None (switched off, or the build failed: logged once)."""
    if "ops" in _state:
        return _state["ops"]
    if not enabled():
        return None
    with _lock:
        if "ops" not in _state:
            _state["ops"] = _load()
    return _state["ops"]


def _built(cpp_extension, name: str) -> bool:
    """Is this build already in torch's extensions folder (so loading it takes no compiling)?"""
    try:
        return Path(cpp_extension._get_build_directory(name, False), f"{name}.so").exists()
    except Exception:  # a private helper of torch: when it is not there, assume a build is coming
        return False


def _load():
    try:
        from torch.utils import cpp_extension

        name = build_name()
        if not _built(cpp_extension, name):
            print("r1: building the fused CPU kernels (once per machine and torch version, ~15 s)...",
                  file=sys.stderr, flush=True)
        cpp_extension.load(
            name=name, sources=[str(SOURCE)], extra_cflags=FLAGS, is_python_module=False, verbose=False
        )
        return torch.ops.r1
    except Exception as e:  # a missing compiler or ninja, a failed build: run the PyTorch code instead
        reason = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        _state["error"] = reason
        log.warning("r1: fused CPU kernels unavailable (%s); running the plain PyTorch code", reason)
        return None


USE_KERNELS = True
"""Whether the fused kernels may run (tests switch them off to compare with the PyTorch code, their reference)."""


def fused_kernels(*tensors: torch.Tensor):
    """``torch.ops.r1`` when the fused kernels apply to ``tensors`` (contiguous float32 on a CPU, no autograd
    through them, the kernels built), else None: the caller then runs its PyTorch code, the kernels' reference."""
    if not USE_KERNELS:
        return None
    for t in tensors:
        if t.device.type != "cpu" or t.dtype != torch.float32 or not t.is_contiguous():
            return None
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return None
    return ops()


def error() -> str | None:
    """Why the kernels are not loaded (after a failed ``ops()``), or None."""
    return _state.get("error")  # type: ignore[return-value]
