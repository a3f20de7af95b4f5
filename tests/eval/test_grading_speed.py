"""Grading speed: 500 MATH-500 problems x 16 R1-format completions graded (extract, math-verify, cons@16) in < 60 s.

Run: python -m pytest tests/eval/test_grading_speed.py -q -m slow -s   (prints the time; ~30 s on a busy 2-core box)

The completions are synthetic (``tests/eval/synthetic.py``, wrong="realistic"): long reasoning, then a boxed answer
that is right about half the time, a same-kind slip of the gold, a random integer, a hedge, or missing.
"""

import time

import pytest

from r1.eval.grade import grade_benchmark
from r1.tasks import build_task
from tests.eval.synthetic import synthetic_completions


@pytest.mark.slow
def test_grade_500_x_16_under_60_s(shared_data):
    task = build_task("math500")
    samples = task.load("test")
    recs = [{"id": s.id, "answer": s.answer, "problem": s.problem, "solution": s.meta["solution"]} for s in samples]
    comps: dict[str, list[dict]] = {}
    for r in synthetic_completions(recs, k=16, seed=0):
        comps.setdefault(r["id"], []).append(r)
    t0 = time.perf_counter()
    rows, m = grade_benchmark(task, samples, comps)
    elapsed = time.perf_counter() - t0
    print(f"\ngraded {len(rows)} completions in {elapsed:.1f} s; pass@1 {m['pass@1']:.3f}, cons@16 {m['cons@16']:.3f}")
    assert len(rows) == 8000 and 0.3 < m["pass@1"] < 0.6
    assert elapsed < 60
