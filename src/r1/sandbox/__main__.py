"""``python -m r1.sandbox``: print the isolation level this machine gives sandboxed programs, and time a few runs.

``--help`` lists the options; ``--info`` prints the level only (no benchmark).
"""

import argparse
import sys
import time

from r1.errors import R1Error
from r1.sandbox import Pool, isolation_info


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m r1.sandbox",
        description="Print the sandbox isolation level of this machine (and why stronger levels are unavailable), "
        "then time trivial sandboxed programs.",
    )
    p.add_argument("--level", choices=["auto", "namespaces", "rlimits"], default="auto",
                   help="isolation level to report and time (default: the strongest that works)")
    p.add_argument("--info", action="store_true", help="print the isolation level only, no benchmark")
    p.add_argument("--runs", type=int, default=20, metavar="N",
                   help="timed programs per worker (default: 20)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="concurrent sandboxes (default: one per CPU)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.runs < 1 or (args.workers is not None and args.workers < 1):
        print("python -m r1.sandbox: error: --runs and --workers must be >= 1", file=sys.stderr)
        return 2
    level = None if args.level == "auto" else args.level
    try:
        info = isolation_info(level)
    except R1Error as e:
        print(f"python -m r1.sandbox: error: {e}", file=sys.stderr)
        return 2
    print(f"isolation: {info.describe()}")
    print(f"interpreter: {info.python}")
    for note in info.notes:
        print(f"note: {note}")
    if args.info:
        return 0
    with Pool(workers=args.workers, level=level) as pool:
        pool.map(["pass"] * pool.workers)
        n = args.runs * pool.workers
        t0 = time.monotonic()
        results = pool.map(["print(1)"] * n)
        elapsed = time.monotonic() - t0
    bad = [r.status for r in results if r.status != "ok"]
    startup = sum(r.startup_s for r in results) / n
    print(f"throughput: {n / elapsed:.1f} trivial programs/s with {pool.workers} workers "
          f"(start-up {startup * 1000:.0f} ms per program){'; FAILED: ' + str(bad) if bad else ''}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
