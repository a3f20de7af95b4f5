"""``keep_freed_memory``: freed tensors' memory is reused by the next step instead of being faulted in again.

Run: ``python -m pytest tests/train/test_memory.py -q``.
"""

import subprocess
import sys

import pytest

SCRIPT = """
import resource, sys, torch
from r1.train.common import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "1" else None
def step():  # a training step's worth of big temporaries: three 24 MiB blocks, every page written, then freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [torch.ones(6 << 20) for _ in range(3)]
    del blocks
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
step(); step()
print(applied, step())
"""


def faults(keep: bool) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, "1" if keep else "0"], capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_step_reuses_freed_memory_instead_of_faulting_it_in():
    applied, kept = faults(True)
    _, default = faults(False)
    assert applied == "True"
    pages = 3 * (24 << 20) // 4096
    assert default > pages // 2  # glibc's default: the blocks are mapped afresh every step
    assert kept < pages // 20, (kept, default)
