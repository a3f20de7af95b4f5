"""The demo's whole pretraining stage, this checkout's r1 against another checkout's (A/B in one run).

    git worktree add /tmp/base eccf074                                  # r1 before issue 21
    python benchmarks/pretrain_stage.py --baseline-src /tmp/base/src    # turns, each side at the demo's threads
    python benchmarks/pretrain_stage.py --baseline-src /tmp/base/src --mode together --threads 1

Each side runs ``python -m r1 pretrain -c <the demo's pretrain section>`` (``r1/pipeline/demo.yaml``: qwen2-1m,
64,000 examples of the addition corpus, 1000 steps of 64) as a user's command would, from process start to the
final checkpoint: making and tokenizing the corpus, building the model, training, saving. ``--steps`` shortens it.

Modes: ``turns`` (default): the sides one after another, ``--repeats`` times (base, r1, base, r1, ...), each with
``--threads`` torch threads (0: torch's default, the demo's own setting; so a side has the machine to itself, as a
user's demo does); ``together``: both sides started at once with ``--threads`` each (1 on a 2-core machine), so
whatever else loads the machine loads both alike.

Reported per run: wall seconds, peak RSS; and the ratio base wall / r1 wall (per pair, and of the medians). Each
side first builds its C++ kernels in an untimed 2-step run. A side whose command fails stops the benchmark with its
stderr's last lines.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"


def stage_config(folder: Path, threads: int, steps: int | None) -> Path:
    """The demo's ``pretrain`` section (this checkout's) as an ``r1 pretrain`` config file. The YAML as written, not
    a dump of r1's parsed config: that would spell out every default, keys an older checkout may not know."""
    import yaml

    demo = yaml.safe_load((SRC / "r1" / "pipeline" / "demo.yaml").read_text())
    cfg = demo["pretrain"]
    cfg["run"] = {**cfg.get("run", {}), "threads": threads, "progress": False, "log_every": 0, "save_every": 0,
                  "out_dir": str(folder / "runs"), "overwrite": True, "seed": demo.get("run", {}).get("seed", 0)}
    if steps is not None:
        cfg["run"]["steps"] = steps
    path = folder / f"pretrain-{steps}.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def worker(a) -> None:
    """Run one side's command as a child; print its wall time and peak RSS (this process's only child)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # 0 threads: torch's own default
    env["PYTHONPATH"] = a.src
    if a.threads:
        env["OMP_NUM_THREADS"] = str(a.threads)
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "r1", "pretrain", "-c", a.config, f"run.name={a.name}"],
                       env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        tail = "\n".join((p.stderr or p.stdout).strip().splitlines()[-8:])
        print(json.dumps({"error": f"{a.name}: exit {p.returncode}\n{tail}"}))
        return
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"wall": wall, "rss_mib": rss}))


def launch(name: str, src: str, config: Path, threads: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, __file__, "--worker", "--src", src, "--config", str(config), "--name", name,
         "--threads", str(threads)],
        stdout=subprocess.PIPE, text=True,
    )


def result(p: subprocess.Popen) -> dict:
    out, _ = p.communicate()
    r = json.loads(out.strip().splitlines()[-1])
    if "error" in r:
        sys.exit(f"pretrain_stage: {r['error']}")
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline-src", help="the src folder of the r1 to compare with (e.g. a git worktree's)")
    ap.add_argument("--mode", choices=["turns", "together"], default="turns")
    ap.add_argument("--threads", type=int, default=0, help="torch threads a side (0: torch's default)")
    ap.add_argument("--repeats", type=int, default=1, help="turns: pairs of runs")
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: the demo's 1000)")
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--src", help=argparse.SUPPRESS)
    ap.add_argument("--config", help=argparse.SUPPRESS)
    ap.add_argument("--name", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker(a)
    if not a.baseline_src or not (Path(a.baseline_src) / "r1").is_dir():
        sys.exit("pretrain_stage: --baseline-src must be the src folder of another r1 checkout (it has no r1/ package)")
    sides = {"base": str(Path(a.baseline_src).resolve()), "r1": str(SRC)}
    with tempfile.TemporaryDirectory(prefix="r1-pretrain-stage-") as tmp:
        folder = Path(tmp)
        warm = stage_config(folder, a.threads, 2)
        for name, src in sides.items():  # builds each side's kernels (cached per source), untimed
            result(launch(f"{name}-warmup", src, warm, a.threads))
        config = stage_config(folder, a.threads, a.steps)
        runs: dict[str, list[dict]] = {name: [] for name in sides}
        for rep in range(a.repeats if a.mode == "turns" else 1):
            if a.mode == "together":
                procs = {name: launch(name, src, config, a.threads) for name, src in sides.items()}
                got = {name: result(p) for name, p in procs.items()}
            else:
                got = {name: result(launch(name, src, config, a.threads)) for name, src in sides.items()}
            for name, r in got.items():
                runs[name].append(r)
            print(f"repeat {rep + 1}: base {got['base']['wall']:.1f} s, r1 {got['r1']['wall']:.1f} s, "
                  f"base / r1 {got['base']['wall'] / got['r1']['wall']:.2f}x", flush=True)
    med = {name: statistics.median(r["wall"] for r in rs) for name, rs in runs.items()}
    print(f"\nthe demo's pretraining stage ({a.steps or 'its'} steps), mode {a.mode}, threads {a.threads or 'default'}:")
    print(f"{'side':<6} {'wall s (median)':>16} {'runs':>24} {'peak RSS MiB':>13}")
    for name, rs in runs.items():
        walls = ", ".join(f"{r['wall']:.1f}" for r in rs)
        print(f"{name:<6} {med[name]:>16.1f} {walls:>24} {max(r['rss_mib'] for r in rs):>13.0f}")
    pairs = [b["wall"] / r["wall"] for b, r in zip(runs["base"], runs["r1"])]
    print(f"base / r1: {med['base'] / med['r1']:.2f}x (per pair: {', '.join(f'{x:.2f}' for x in pairs)})")
    if a.out:
        Path(a.out).write_text(json.dumps({"mode": a.mode, "threads": a.threads, "steps": a.steps, "runs": runs,
                                           "ratio": med["base"] / med["r1"], "pairs": pairs}, indent=1))


if __name__ == "__main__":
    main()
