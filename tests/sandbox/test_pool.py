"""r1.sandbox.Pool / run_many: ordering, bounded concurrency, runaway programs, and a throughput figure.

Run: pytest tests/sandbox/test_pool.py -q -s   (~10 s; -s prints programs/s and the per-program overhead)
"""

import time

from r1.sandbox import Job, Pool, default_pool, run_many


def test_map_keeps_order_and_accepts_jobs_dicts_and_source():
    jobs = [Job("print(1)"), {"code": "print(input())", "stdin": "2"}, "print(3)"]
    results = run_many(jobs, workers=2)
    assert [r.stdout for r in results] == ["1\n", "2\n", "3\n"]


def test_runaway_programs_do_not_stall_the_pool():
    with Pool(workers=2) as pool:
        jobs = [Job("while True: pass", timeout_s=1)] * 2 + [Job("print('ok')", timeout_s=5)] * 6
        t0 = time.monotonic()
        results = pool.map(jobs)
        elapsed = time.monotonic() - t0
    assert [r.status for r in results] == ["timeout"] * 2 + ["ok"] * 6
    assert elapsed < 1 + 6  # both workers are busy for ~1 s, then the quick jobs run


def test_concurrency_is_bounded():
    """With 2 workers, 4 programs sleeping 0.5 s take two rounds."""
    with Pool(workers=2) as pool:
        t0 = time.monotonic()
        pool.map([Job("import time; time.sleep(0.5)")] * 4)
        assert time.monotonic() - t0 > 1.0


def test_default_pool_is_shared():
    assert default_pool(2) is default_pool(2)


def test_throughput():
    """Trivial programs per second on this machine (printed; the floor only catches a broken pool)."""
    n = 40
    with Pool() as pool:
        pool.map(["pass"] * 4)  # warm up
        t0 = time.monotonic()
        results = pool.map(["print(1)"] * n)
        elapsed = time.monotonic() - t0
    assert all(r.status == "ok" for r in results)
    overhead = sum(r.startup_s for r in results) / n
    rate = n / elapsed
    print(f"\n{rate:.1f} trivial programs/s with {pool.workers} workers; sandbox start-up {overhead * 1000:.0f} ms")
    assert n / elapsed > 2
