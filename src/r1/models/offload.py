"""A frozen model's weights kept in a file and read in only while a pass needs them (``grpo.reference_offload``).

Why: GRPO's reference model (β > 0) is a second full copy of the initial policy, held for the whole run although only
the reference pass, once a step, reads it. At Qwen2.5-0.5B's shape that is 2 GB of fp32 of a ~10 GB run, at 1.5B
6 GB: whether a run fits the machine. ``OffloadedWeights`` writes the model's parameters once to a safetensors file
(in the run directory), then leaves each parameter an empty tensor; ``loaded()`` maps the file back in for the pass
and empties the parameters again after it. The weights, and so the reference's logprobs, are exactly the same; the
memory is held during the reference pass instead of all the time, so the step's peak (the train pass's backward,
with its gradients and activations) no longer includes it. Cost: a read of the file per step, from the page cache
while the machine has memory to spare (safetensors maps it: pages are read as the pass touches them).

verl offloads its reference's parameters to host memory (``ref.fsdp_config.param_offload``) for the same reason on a
GPU; on a CPU the only place off the process is the disk. Left out: offloading the policy or AdamW's moments (they
are read and written every step), and the LoRA reference (the policy's own base weights: nothing to offload).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import torch

from r1.errors import R1Error


def _device_arg(device: torch.device) -> str | int:
    """safetensors' device argument: "cpu", or a CUDA device's index."""
    if device.type == "cuda":
        return device.index if device.index is not None else torch.cuda.current_device()
    return device.type


class OffloadedWeights:
    """``OffloadedWeights(model, path)``: write ``model``'s parameters to ``path`` (``write=False``: another process
    wrote it, e.g. rank 0 of data-parallel workers) and empty them; ``with w.loaded(): ...`` has them back inside.

    ``loaded`` nests: an inner ``with`` inside an outer one reads nothing (the trainer holds the weights over its
    whole reference pass, which enters once per micro-batch). ``on_release``: callbacks run each time the
    parameters are emptied (e.g. dropping a lean forward's copies of them). Tied parameters (a tied embedding and
    output head are one ``Parameter``) are written and restored once, and stay tied."""

    def __init__(self, model: torch.nn.Module, path: str | Path, write: bool = True):
        self.model, self.path = model, Path(path)
        self.params = dict(model.named_parameters())  # one name per Parameter object: tied weights once
        if any(p.requires_grad for p in self.params.values()):
            raise R1Error("reference offload: the model's parameters must be frozen (requires_grad_(False))")
        self.shapes = {n: (tuple(p.shape), p.dtype) for n, p in self.params.items()}
        self.device = next(iter(self.params.values())).device
        self.on_release: list[Callable[[], None]] = []
        self.depth = 0  # open ``loaded`` contexts
        if write:
            from safetensors.torch import save_file

            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            save_file({n: p.detach().contiguous().cpu() for n, p in self.params.items()}, str(tmp))
            tmp.replace(self.path)  # whole or absent: a crash while writing leaves no half file under the name
        self.release()

    @property
    def nbytes(self) -> int:
        """Bytes of parameters this offload keeps off the process between passes."""
        return sum(torch.Size(s).numel() * d.itemsize for s, d in self.shapes.values())

    def release(self) -> None:
        """Empty every parameter (the same ``Parameter`` objects, zero elements) and run ``on_release``."""
        for p in self.params.values():
            p.data = torch.empty(0, dtype=p.dtype, device=p.device)
        for fn in self.on_release:
            fn()

    def load(self) -> None:
        """Read every parameter back from the file (memory-mapped on a CPU), checking names, shapes and dtypes."""
        from safetensors import safe_open

        if not self.path.is_file():
            raise R1Error(f"{self.path}: the offloaded reference weights are gone (deleted while the run was going?)")
        try:
            with safe_open(str(self.path), framework="pt", device=_device_arg(self.device)) as f:
                for name, p in self.params.items():
                    t = f.get_tensor(name)
                    if (tuple(t.shape), t.dtype) != self.shapes[name]:
                        raise R1Error(
                            f"{self.path}: {name} is {tuple(t.shape)} {t.dtype}, the reference's is "
                            f"{self.shapes[name][0]} {self.shapes[name][1]} (the file was changed during the run)"
                        )
                    p.data = t
        except R1Error:
            self.release()
            raise
        except Exception as e:  # a truncated or foreign file: say which, leave the model empty (not half loaded)
            self.release()
            raise R1Error(f"{self.path}: cannot read the offloaded reference weights: {e}") from e

    @contextmanager
    def loaded(self):
        """The parameters in place for the ``with`` body (read at the outermost entry, emptied at its exit)."""
        if self.depth == 0:
            self.load()
        self.depth += 1
        try:
            yield self.model
        finally:
            self.depth -= 1
            if self.depth == 0:
                self.release()


__all__ = ["OffloadedWeights"]
