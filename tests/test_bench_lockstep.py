"""``benchmarks/grpo_vs_trl.py --mode steps``: the settings' steps interleave one at a time.

Workers here are small Python scripts using the benchmark's own ``Gate``: each appends ``<setting> <step>`` to a
shared log while it holds the machine, so the log shows whether any two steps overlapped and in which order they ran.

Run: ``python -m pytest tests/test_bench_lockstep.py -q``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import grpo_vs_trl  # noqa: E402

WORKER = """
import json, sys, time
sys.path.insert(0, {bench!r})
from grpo_vs_trl import Gate
setting, gate_dir, log, steps, crash_at = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
gate = Gate(gate_dir)
times = []
for k in range(1, steps + 1):
    gate.wait()
    t = time.perf_counter()
    with open(log, "a") as f:
        f.write(f"{{setting}} {{k}} begin\\n")
    if k == crash_at:
        print("worker exploded on purpose", flush=True)
        sys.exit(3)
    time.sleep(0.02)  # a step: any other worker writing now would show up between begin and end
    with open(log, "a") as f:
        f.write(f"{{setting}} {{k}} end\\n")
    times.append(time.perf_counter() - t)
    gate.done(times[-1])
print("BENCH_JSON " + json.dumps({{"times": times, "setting": setting}}))
"""


def _command(tmp_path: Path, steps: int, crash: dict[str, int] | None = None):
    script = tmp_path / "worker.py"
    script.write_text(WORKER.format(bench=str(BENCH)))
    log = tmp_path / "log.txt"

    def command(setting: str, gate: str):
        argv = [sys.executable, str(script), setting, gate, str(log), str(steps), str((crash or {}).get(setting, 0))]
        return argv, dict(os.environ)

    return command, log


def test_steps_interleave_one_at_a_time_in_rotating_order(tmp_path):
    settings, steps = ["a", "b", "c"], 4
    command, log = _command(tmp_path, steps)
    out = grpo_vs_trl.lockstep(settings, steps, command)
    assert {s: out[s]["setting"] for s in settings} == {s: s for s in settings}
    assert all(len(out[s]["times"]) == steps for s in settings)
    lines = log.read_text().split()
    events = [tuple(lines[i : i + 3]) for i in range(0, len(lines), 3)]
    # Never two steps at once: every begin is followed by its own end.
    assert all(b[2] == "begin" and e[2] == "end" and b[:2] == e[:2] for b, e in zip(events[::2], events[1::2]))
    order = [f"{s}{k}" for s, k, _ in events[::2]]
    assert order == ["a1", "b1", "c1", "b2", "c2", "a2", "c3", "a3", "b3", "a4", "b4", "c4"]


def test_paired_speedups_pair_step_k_with_step_k():
    runs = {"r1": [{"times": [9.0, 1.0, 2.0]}, {"times": [9.0, 4.0, 1.0]}],
            "trl": [{"times": [9.0, 3.0, 4.0]}, {"times": [9.0, 2.0, 5.0]}]}
    assert grpo_vs_trl.paired_speedups(runs, "r1", "trl", warmup=1) == [3.0, 2.0, 0.5, 5.0]


def test_a_crashing_worker_stops_the_run_with_its_output(tmp_path):
    command, _ = _command(tmp_path, 3, crash={"b": 2})
    t = time.perf_counter()
    with pytest.raises(SystemExit, match=r"worker b failed \(exit 3\)(.|\n)*exploded on purpose"):
        grpo_vs_trl.lockstep(["a", "b"], 3, command)
    assert time.perf_counter() - t < 30  # the others, left blocked on their gates, are killed


def test_without_a_gate_folder_a_worker_runs_freely():
    gate = grpo_vs_trl.Gate(None)
    gate.wait()
    gate.done(1.0)  # no FIFO: nothing written, nothing blocks
    assert not gate.active and gate.go is None and gate.done_fd is None
