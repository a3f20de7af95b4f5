"""``python -m r1.sandbox``: print the isolation level this machine gives sandboxed programs, and time a few runs."""

import time

from r1.sandbox import Pool, isolation_info


def main() -> None:
    info = isolation_info()
    print(f"isolation: {info.describe()}")
    print(f"interpreter: {info.python}")
    for note in info.notes:
        print(f"note: {note}")
    with Pool() as pool:
        pool.map(["pass"] * pool.workers)
        n = 20 * pool.workers
        t0 = time.monotonic()
        results = pool.map(["print(1)"] * n)
        elapsed = time.monotonic() - t0
    bad = [r.status for r in results if r.status != "ok"]
    startup = sum(r.startup_s for r in results) / n
    print(f"throughput: {n / elapsed:.1f} trivial programs/s with {pool.workers} workers "
          f"(start-up {startup * 1000:.0f} ms per program){'; FAILED: ' + str(bad) if bad else ''}")


if __name__ == "__main__":
    main()
