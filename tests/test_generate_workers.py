"""``r1 generate`` sharded over ``run.workers`` processes and resumed after a kill (``r1.generate_data``).

Each worker process imports torch and transformers and loads the model (~4 s of CPU), so the tests that start them
are slow: python -m pytest tests/test_generate_workers.py -q -m slow   (tiny random model; 1-4 min on 2 cores)
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import r1.generate_data as gd
from r1.config import GenerateConfig, load_config
from r1.generate_data import run_generate

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "configs" / "generate" / "smoke.yaml")


def _cfg(out, *overrides):
    return load_config(GenerateConfig, SMOKE, [f"run.out_dir={out}", "run.progress=false", "run.threads=2",
                                               *overrides])


def _lines(path):
    return [json.loads(x) for x in Path(path).read_text().splitlines()]


@pytest.mark.slow
def test_two_workers_write_the_files_one_worker_writes(tmp_path):
    # 3 batches of 3 prompts: the workers share them out, and finish in whichever order
    over = ["generate.prompts_per_batch=3", "generate.num_prompts=8"]
    one = run_generate(_cfg(tmp_path / "one", *over))
    two = run_generate(_cfg(tmp_path / "two", "run.workers=2", *over))
    a, b = tmp_path / "one" / "generate_smoke", tmp_path / "two" / "generate_smoke"
    for name in ("samples.jsonl", "data.jsonl"):
        assert (a / name).read_text() == (b / name).read_text(), name
    ids = [r["id"] for r in _lines(b / "samples.jsonl")]
    assert ids == sorted(ids, key=ids.index) and len(ids) == 16 and len(set(ids)) == 8  # prompt order, k=2 each
    assert (two["workers"], one["workers"]) == (2, 1)
    assert {k: v for k, v in two.items() if k not in ("sample_s", "tokens_per_s", "workers")} == \
        {k: v for k, v in one.items() if k not in ("sample_s", "tokens_per_s", "workers")}


@pytest.mark.slow
def test_a_run_interrupted_in_its_workers_resumes_without_duplicates(tmp_path, monkeypatch):
    over = ["generate.prompts_per_batch=2", "run.workers=2"]
    run_generate(_cfg(tmp_path / "whole", *over))
    answers, real = [], gd._answer

    def interrupt_on_the_second_batch(child):
        answers.append(real(child))
        if len(answers) == 4:  # 2 loads, then batches: the first one is written, then a kill
            raise KeyboardInterrupt
        return answers[-1]

    monkeypatch.setattr(gd, "_answer", interrupt_on_the_second_batch)
    with pytest.raises(KeyboardInterrupt):
        run_generate(_cfg(tmp_path / "part", *over))
    part = tmp_path / "part" / "generate_smoke"
    assert len(_lines(part / "samples.jsonl")) == 4  # one batch: 2 prompts x 2 samples
    assert not (part / "data.jsonl").exists()
    monkeypatch.undo()
    run_generate(_cfg(tmp_path / "part", *over))
    whole = tmp_path / "whole" / "generate_smoke"
    assert (part / "samples.jsonl").read_text() == (whole / "samples.jsonl").read_text()
    assert (part / "data.jsonl").read_text() == (whole / "data.jsonl").read_text()


class _Child:
    def __init__(self, answer):
        self.answer = answer

    def receive(self):
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


def test_a_worker_that_fails_or_dies_is_one_line():
    from r1.errors import R1Error
    from r1.workers import ChildDied

    assert gd._answer(_Child(("ok", [1]))) == [1]
    with pytest.raises(R1Error, match=r"^a generate worker failed: OSError: disk full$"):
        gd._answer(_Child(("error", "OSError: disk full")))
    with pytest.raises(R1Error, match=r"^a generate worker died \(exit code -9\); see its stderr above$"):
        gd._answer(_Child(ChildDied(-9)))


def test_a_worker_process_reports_its_error_as_one_frame():
    """The worker's handler, in this process: an exception becomes an ("error", one line) answer."""
    handle = gd._worker_handler()
    frames = [handle(("batch", 0, [])), handle(("load", None, 1))]
    assert frames[0][0] == "error" and frames[0][1].startswith("KeyError")  # a batch before any load
    assert frames[1][0] == "error" and "\n" not in frames[1][1]


@pytest.mark.slow
def test_r1_generate_killed_with_sigkill_resumes_without_duplicates(tmp_path):
    """A real kill: the parent dies mid-run (its workers follow when their pipe closes); the rerun continues."""
    over = ["generate.prompts_per_batch=1", "generate.num_prompts=8", "run.workers=2", "rollout.max_new_tokens=64"]
    cmd = [sys.executable, "-m", "r1.cli", "generate", "-c", SMOKE, f"run.out_dir={tmp_path}", "run.progress=false",
           *over]
    samples = tmp_path / "generate_smoke" / "samples.jsonl"
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (samples.exists() and samples.read_text().count("\n") >= 4):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = samples.read_text().count("\n")
    assert 4 <= killed < 16, killed
    time.sleep(1)
    if _alive(proc.pid):  # a worker still finishing its batch: its output has no reader left
        os.killpg(proc.pid, signal.SIGKILL)
    assert subprocess.run(cmd).returncode == 0
    recs = [(r["id"], r["index"]) for r in _lines(samples)]
    assert len(recs) == len(set(recs)) == 16
    whole = run_generate(_cfg(tmp_path / "whole", *over[:-1], "rollout.max_new_tokens=64"))
    assert samples.read_text() == (tmp_path / "whole" / "generate_smoke" / "samples.jsonl").read_text()
    assert whole["samples"] == 16


def _alive(pgid):
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
