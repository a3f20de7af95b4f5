"""Resident memory of whole r1 GRPO steps at a real shape, phase by phase: where the peak is and how long each takes.

Run (the numbers go into docs/performance.md, section 4)::

    python benchmarks/grpo_memory_phases.py --layers 4 --max-new-tokens 256 --steps 2
    python benchmarks/grpo_memory_phases.py --layers 4 --max-new-tokens 4096 --steps 1   # ~30 min a step, one core

The model is ``benchmarks/common.py``'s ``real`` preset (Qwen2.5-0.5B's shape: hidden 896, 14 / 2 heads,
intermediate 4864, tied embeddings, vocabulary 151,936; ``--layers`` of its 24, random init, so every completion
runs to the limit) and the trainer is ``grpo_vs_trl.py``'s r1 side (2 prompts × 8 samples, fp32, β = 0.04, μ = 1,
``grpo.activation_checkpointing=true`` unless ``--r1-extra`` says otherwise). A thread reads the process's resident
set every 2 ms and files it under the phase running then: ``rollout`` (the engine's ``generate``), ``ref`` (the
reference pass), ``train`` (the policy's forward + backward, micro-batch by micro-batch), ``optimizer`` (clipping
and AdamW's step), ``other`` (everything else in the step). Printed per step: each phase's seconds; at the end each
phase's peak RSS over all steps, and the kernel's own peak (``VmHWM``). AdamW allocates its two moments at its first
step, so a first step's train phase does not hold them yet: run two steps for a later step's peak.

Not measured here: TRL (``grpo_vs_trl.py --presets real`` measures both sides' whole-run peaks).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import common

PHASES = ("rollout", "ref", "train", "optimizer", "other")


def rss_gib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**30


def hwm_gib() -> float:
    with open("/proc/self/status") as f:
        kib = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
    return kib / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, default=4, help="decoder layers of the real shape (Qwen2.5-0.5B has 24)")
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--prompts", type=int, default=2, help="prompts per step (8 samples each)")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--mem-limit-gib", type=float, default=22, help="address-space cap (RLIMIT_AS), 0 = none")
    ap.add_argument("--r1-extra", nargs="*", default=["grpo.activation_checkpointing=true"],
                    help="dotted overrides for the r1 trainer")
    a = ap.parse_args()
    common.MAX_NEW_TOKENS, common.PROMPTS_PER_STEP = a.max_new_tokens, a.prompts
    common.limit_memory(a.mem_limit_gib)
    work = Path(tempfile.mkdtemp(prefix="r1_memphases_"))
    model_dir = common.save_preset("real", work / "model", layers=a.layers)
    trainer = common.build_r1_trainer(model_dir, a.steps, a.threads, out=str(work / "run"), extra=tuple(a.r1_extra))
    print(f"real shape, {a.layers} layers; {a.prompts} x {common.SAMPLES_PER_PROMPT} completions of "
          f"{a.max_new_tokens} tokens; {a.threads} thread(s); r1 {' '.join(a.r1_extra)}; RSS before the first step "
          f"{rss_gib():.2f} GiB", flush=True)

    phase = ["other"]
    peaks = dict.fromkeys(PHASES, 0.0)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            p = phase[0]
            peaks[p] = max(peaks[p], rss_gib())
            time.sleep(0.002)

    def label(obj, name: str, tag: str) -> None:
        fn = getattr(obj, name)

        def wrapped(*args, **kwargs):
            phase[0] = tag
            try:
                return fn(*args, **kwargs)
            finally:
                phase[0] = "other"

        setattr(obj, name, wrapped)

    label(trainer.engine, "generate", "rollout")
    label(trainer, "ref_logprobs", "ref")
    label(trainer, "minibatch_losses", "train")
    label(trainer, "update", "optimizer")
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    for step in range(1, a.steps + 1):
        t0 = time.perf_counter()
        m = trainer.step(step)
        times = " ".join(f"{k[len('time/'):]} {v:.1f}" for k, v in m.items()
                         if k.startswith("time/") and k != "time/step" and v >= 0.05)
        print(f"step {step}: {time.perf_counter() - t0:.1f} s ({times})", flush=True)
    done.set()
    sampler.join()
    print("peak RSS by phase: " + ", ".join(f"{p} {peaks[p]:.2f} GiB" for p in PHASES))
    print(f"peak RSS (VmHWM): {hwm_gib():.2f} GiB")


if __name__ == "__main__":
    main()
