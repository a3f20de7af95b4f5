"""The physical limit: this machine's matmul peak and the model-FLOPs utilisation (MFU) of an ``r1`` GRPO step.

    python benchmarks/flops.py                        # peak fp32/bf16, then MFU of the tiny preset, 6 steps
    python benchmarks/flops.py --presets tiny,small --steps 4 --warmup 1
    python benchmarks/flops.py --presets real --layers 2 --max-new-tokens 256 --steps 2 --warmup 1 --threads 1

``--presets real``: Qwen2.5-0.5B's shape (``common.REAL``, vocabulary 151,936, ``--layers`` of its 24), 2 prompts ×
8 samples, completions to ``--max-new-tokens`` (a random model runs each to the limit), ``r1`` with
``grpo.activation_checkpointing=true``; no floor (``--floor`` times it: minutes of timing loops at this shape), and
the attention score FLOPs, no longer negligible at long completions, still left out.

Peak: the best of ``--matmul-repeats`` timed loops (~0.5 s each) of square matmuls (``--matmul-sizes``) per dtype,
``2·n³`` FLOPs each, at ``--threads`` torch threads. It is what ``torch.matmul`` reaches here, not a datasheet number.

Model FLOPs of one GRPO step (the standard ``2·params·tokens`` forward estimate, Kaplan et al. 2020,
arXiv:2001.08361; ×3 for forward + backward), counted from the workload as a plain implementation would process it
(r1's reference and train passes compute each prompt once per group and skip the last completion token, so they do
~15% fewer FLOPs than counted here on 6-token prompts; MFU is the usual "model FLOPs" figure, comparable across
implementations):

- rollout: ``2·N·(prompt tokens of each distinct prompt + generated tokens)`` (a cache makes each token one forward);
- reference: ``2·N·(prompt + completion tokens of every row)``;
- train: ``6·N·(prompt + completion tokens of every row)`` (μ = 1: one forward + backward).

``N`` is the parameter count with the tied embedding counted once (it is the LM head's matmul; the lookup is free).
Attention score FLOPs are left out (sequences here are ≤ ~40 tokens, under 2% of the total). MFU = model FLOPs /
(step time · peak), per phase and for the whole step, against the fp32 peak (the benchmarks' dtype), or with
``--dtype bf16`` (the steps under bf16 autocast) against the bf16 peak, the floor's products then in bf16.

Floor: the time of the step's matrix products alone (``step_gemms``: the shapes r1 runs, forward and backward), each
timed back to back (``gemm_floor``: the better of all threads on one product, or one thread per product with the
products spread perfectly over the threads), with no attention, norms, sampling or Python: what the step would take
if everything but the matmuls were free. ``grpo_vs_trl.py`` prints it beside TRL's time too.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402


def matmul_peak(dtype, sizes: list[int], repeats: int) -> tuple[float, int]:
    """Best sustained FLOP/s of ``a @ b`` over square sizes; returns ``(flops_per_s, best_size)``."""
    import torch

    best, best_n = 0.0, 0
    for n in sizes:
        a = torch.randn(n, n, dtype=dtype)
        b = torch.randn(n, n, dtype=dtype)
        t = time.perf_counter()
        a @ b  # warm-up (thread pool, packing buffers); also sizes the timed loop
        inner = max(1, int(0.5 / max(time.perf_counter() - t, 1e-6)))  # ~0.5 s per timed sample
        for _ in range(repeats):
            t = time.perf_counter()
            for _ in range(inner):
                a @ b
            rate = inner * 2 * n**3 / (time.perf_counter() - t)
            if rate > best:
                best, best_n = rate, n
    return best, best_n


def step_gemms(config, prompts: int, rows: int, prompt_len: int, gen_len: int, replay: bool = True) -> dict[str, dict]:
    """The matrix products of one ``r1`` GRPO step, as r1 runs them, per phase: ``{phase: {(M, K, N): count}}`` for
    ``(M, K) @ (K, N)``, phases ``rollout``, ``ref`` and ``train``.

    ``config``: the model's HF config (Llama-family fields); ``prompts`` distinct prompts of ``prompt_len`` tokens,
    ``rows`` completions of ``gen_len`` tokens each. Rollout: one prefill of the prompts (LM head on their last
    token), then ``gen_len - 1`` decode steps of ``rows`` rows. Reference and train passes (``train_logits``): the
    prompts once, then ``gen_len - 1`` completion tokens per row, LM head on every predicting position; train adds
    the backward (``dX = dY W`` and ``dW = dYᵀ X`` per weight). With ``replay`` (``grpo.replay_rollout``, the
    default) the train pass is that backward alone, over the prompt and completion tokens as one matrix (the gate and
    up projections as two products), and the LM head's forward and backward on the ``rows * gen_len`` predicting
    positions. Attention scores, norms and activations are left out, so the time these products take is
    a floor under the step's time, not an estimate of it.
    """
    from collections import Counter

    E, V, L = config.hidden_size, config.vocab_size, config.num_hidden_layers
    H = config.num_attention_heads
    KV = getattr(config, "num_key_value_heads", None) or H
    D = getattr(config, "head_dim", None) or E // H
    weights = [(E, (H + 2 * KV) * D), (H * D, E), (E, 2 * config.intermediate_size), (config.intermediate_size, E)]

    def forward(out: Counter, m: int, head_rows: int, backward: bool = False) -> None:
        for k, n in weights + [(E, V)]:
            times, mm = (1, head_rows) if n == V else (L, m)
            out[(mm, k, n)] += times
            if backward:
                out[(mm, n, k)] += times  # dX
                out[(n, mm, k)] += times  # dW

    phases = {"rollout": Counter(), "ref": Counter(), "train": Counter()}
    forward(phases["rollout"], prompts * prompt_len, prompts)  # prefill
    for _ in range(gen_len - 1):
        forward(phases["rollout"], rows, rows)  # decode
    c = rows * (gen_len - 1)
    for phase, backward in (("ref", False), ("train", True)):
        if phase == "train" and replay:
            m = prompts * prompt_len + c
            I = config.intermediate_size
            for k, n in [w for w in weights if w[1] != 2 * I] + [(E, I), (E, I)]:  # gate and up apart
                phases[phase][(m, n, k)] += L  # dX
                phases[phase][(n, m, k)] += L  # dW
            # the LM head (r1.algo.logprobs.head_logprobs) on the predicting positions' recorded hidden states:
            # forward, dX, dW (a block at a time for a large vocabulary, its forward recomputed in the backward)
            h = rows * gen_len
            phases[phase][(h, E, V)] += 1
            phases[phase][(h, V, E)] += 1
            phases[phase][(V, h, E)] += 1
            continue
        forward(phases[phase], prompts * prompt_len, prompts, backward=backward)
        forward(phases[phase], c, c, backward=backward)
    return {k: dict(v) for k, v in phases.items()}


def _best_time(a, b, repeats: int, inner: int) -> float:
    a @ b  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            a @ b
        best = min(best, (time.perf_counter() - t) / inner)
    return best


def gemm_floor(gemms: dict[tuple[int, int, int], int], repeats: int = 3, dtype=None) -> float:
    """Seconds the products take run alone, back to back, each shape at its best of ``repeats`` timed loops.

    Each shape counts at the better of: all torch threads on one product, or one thread per product with the
    products spread perfectly over the threads (one-thread time / threads), as data-parallel workers could run them.
    """
    import torch

    threads = torch.get_num_threads()
    total = 0.0
    try:
        for (m, k, n), count in gemms.items():
            a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
            inner = max(1, min(count, 50))
            torch.set_num_threads(threads)
            best = _best_time(a, b, repeats, inner)
            if threads > 1:
                torch.set_num_threads(1)
                best = min(best, _best_time(a, b, repeats, inner) / threads)
            total += best * count
    finally:
        torch.set_num_threads(threads)
    return total


def step_mfu(preset: str, steps: int, warmup: int, threads: int, peak: float, dtype: str = "fp32", layers: int = 2,
             floor: bool = True) -> dict:
    """Median per-phase times and MFUs of ``r1`` GRPO steps on ``bench_sum`` (``dtype``: ``model.dtype``; ``real``:
    ``layers`` decoder layers, activation checkpointing on)."""
    import torch

    extra = (f"model.dtype={dtype}",) + (("grpo.activation_checkpointing=true",) if preset == "real" else ())
    trainer = common.build_r1_trainer(
        common.save_preset(preset, Path(tempfile.mkdtemp(prefix="flops_model_")) / preset, layers=layers), steps,
        threads, extra=extra,
    )
    N = sum(p.numel() for p in trainer.model.parameters())  # shared (tied) tensors are yielded once
    rows = common.PROMPTS_PER_STEP * common.SAMPLES_PER_PROMPT
    prompt_len = len(trainer.prompt_ids(0))  # every bench_sum prompt has the same length ("ab+cd=")
    per_step = []
    for step in range(1, steps + 1):
        m = trainer.step(step)
        gen = m["response_length/mean"] * rows
        seq_tokens = gen + rows * prompt_len
        flops = {
            "rollout": 2 * N * (common.PROMPTS_PER_STEP * prompt_len + gen),
            "ref": 2 * N * seq_tokens,
            "train": 6 * N * seq_tokens,
        }
        flops["step"] = sum(flops.values())
        per_step.append({k: (flops[k], m[f"time/{k}"]) for k in flops})
    timed = per_step[warmup:]
    out = {"params": N, "prompt_len": prompt_len}
    gemms = step_gemms(trainer.model.config, common.PROMPTS_PER_STEP, rows, prompt_len, common.MAX_NEW_TOKENS)
    mm_dtype = torch.bfloat16 if dtype == "bf16" else torch.float32
    out["floor_s"] = {k: gemm_floor(v, dtype=mm_dtype) if floor else float("nan") for k, v in gemms.items()}
    out["floor_s"]["step"] = sum(out["floor_s"].values())
    for k in ("rollout", "ref", "train", "step"):
        t = common.median([s[k][1] for s in timed])
        f = common.median([s[k][0] for s in timed])
        out[k] = {"time_s": t, "gflop": f / 1e9, "gflops_per_s": f / t / 1e9, "mfu": f / t / peak}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="tiny", help="comma list of: " + ", ".join([*common.PRESETS, "real"]))
    ap.add_argument("--layers", type=int, default=2, help="real: decoder layers (Qwen2.5-0.5B has 24)")
    ap.add_argument("--max-new-tokens", type=int, help=f"completion limit (default {common.MAX_NEW_TOKENS}; real 256)")
    ap.add_argument("--floor", action=argparse.BooleanOptionalAction, default=None,
                    help="time the matmul floor (default: on, off for real)")
    ap.add_argument("--mem-limit-gib", type=float, default=0.0, help="address-space cap (RLIMIT_AS), 0 = none")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--matmul-sizes", default="512,1024,2048")
    ap.add_argument("--matmul-repeats", type=int, default=3)
    ap.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32",
                    help="the steps' model.dtype (bf16: autocast); MFU and the floor are then bf16's")
    args = ap.parse_args()
    if args.steps <= args.warmup:
        raise SystemExit(f"--steps ({args.steps}) must exceed --warmup ({args.warmup})")

    common.limit_memory(args.mem_limit_gib)
    real = "real" in args.presets.split(",")
    if real and args.presets != "real":
        raise SystemExit("--presets real runs alone (its shape differs from the small presets')")
    if real:
        common.PROMPTS_PER_STEP = 2
    common.MAX_NEW_TOKENS = args.max_new_tokens or (256 if real else common.MAX_NEW_TOKENS)
    floor = args.floor if args.floor is not None else not real
    import torch

    torch.set_num_threads(args.threads)
    sizes = [int(x) for x in args.matmul_sizes.split(",") if x]
    print(f"torch {torch.__version__}, threads {args.threads}, load {os.getloadavg()[0]:.2f}")
    peaks = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        rate, n = matmul_peak(dtype, sizes, args.matmul_repeats)
        peaks[name] = rate
        print(f"matmul peak {name}: {rate / 1e9:.1f} GFLOP/s (n = {n})")
    results = {}
    for preset in [p for p in args.presets.split(",") if p]:
        results[preset] = step_mfu(preset, args.steps, args.warmup, args.threads, peaks[args.dtype], args.dtype,
                                   args.layers, floor)
    # A shared machine's speed drifts: measure the peak again after the steps and keep the higher one, so MFU is
    # never flattered by a peak measured in a slow moment.
    again, n = matmul_peak(torch.bfloat16 if args.dtype == "bf16" else torch.float32, sizes, args.matmul_repeats)
    print(f"matmul peak {args.dtype} after the steps: {again / 1e9:.1f} GFLOP/s (n = {n}); MFU uses the higher")
    peak = max(peaks[args.dtype], again)
    for preset, r in results.items():
        print(f"\n{preset} ({common.PRESETS.get(preset, preset)}): {r['params'] / 1e6:.2f} M params, "
              f"prompt {r['prompt_len']} tokens, median of {args.steps - args.warmup} steps, {args.dtype}, "
              f"{common.PROMPTS_PER_STEP * common.SAMPLES_PER_PROMPT} x {common.MAX_NEW_TOKENS} new tokens, "
              f"peak RSS {common.peak_rss_mib() / 1024:.2f} GiB")
        print(f"{'phase':<9}{'s':>8}{'GFLOP':>9}{'GFLOP/s':>10}{'MFU':>8}{'floor s':>9}{'of floor':>10}")
        for k in ("rollout", "ref", "train", "step"):
            p = r[k]
            mfu = p["gflops_per_s"] * 1e9 / peak
            fl = r["floor_s"][k]
            print(f"{k:<9}{p['time_s']:>8.3f}{p['gflop']:>9.1f}{p['gflops_per_s']:>10.1f}{mfu:>8.1%}"
                  f"{fl:>9.3f}{fl / p['time_s']:>10.0%}")
    print("floor s: the phase's matrix products alone, as r1 runs them (step_gemms), timed back to back on this "
          "machine; 'of floor': floor / measured time")
    print(f"(load {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
