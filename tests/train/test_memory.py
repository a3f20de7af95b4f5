"""``keep_freed_memory``: freed tensors' memory is reused by the next step instead of being faulted in again.

Run: ``python -m pytest tests/train/test_memory.py -q``.
"""

import json
import subprocess
import sys

import pytest

SCRIPT = """
import json, resource, sys, torch
from r1.train.common import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "1" else None
def step(k):  # a step's big temporaries: six ~16 MiB blocks, a little longer each step (as sequence lengths vary)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    blocks = [torch.ones((4 << 20) + k * 16384) for _ in range(6)]  # every page written
    del blocks
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps([applied, [step(k) for k in range(8)]]))
"""


def faults(keep: bool) -> tuple[bool | None, list[int]]:
    out = subprocess.run([sys.executable, "-c", SCRIPT, "1" if keep else "0"], capture_output=True, text=True,
                         check=True).stdout
    applied, per_step = json.loads(out)
    return applied, per_step


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_step_reuses_freed_memory_instead_of_faulting_it_in():
    applied, kept = faults(True)
    _, default = faults(False)
    assert applied is True
    pages = 6 * (16 << 20) // 4096
    steady = slice(4, None)  # after the heap has grown to the step's size
    assert min(default[steady]) > pages // 2, (kept, default)  # glibc's default: mapped afresh, faulted in again
    assert max(kept[steady]) < pages // 20, (kept, default)
