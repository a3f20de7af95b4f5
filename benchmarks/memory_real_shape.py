"""Peak memory of one GRPO train step at a real shape: the fused output head against full logits, in one run.

Run (about 20 minutes on one thread of a shared 2-core Xeon at load ~4, 9 of them the 1024-token logits path; the
numbers go into docs/performance.md, section 4)::

    python benchmarks/memory_real_shape.py                      # completion lengths 256 and 1024, 2 layers
    python benchmarks/memory_real_shape.py --lengths 256 --layers 4

The shape is Qwen2.5-0.5B's (hidden 896, 14 heads / 2 KV heads, intermediate 4864, tied embeddings, vocabulary
151,936) with fewer layers to fit the CPU, randomly initialised; 2 prompts × 8 samples (16 rows) of 16-token
prompts and completions that all run to the length limit (as a random model's do), fp32, β = 0.04, the trainer's
default micro-batch budget (``optim.tokens_per_micro_batch`` = 8192 tokens). One step is the trainer's own code,
``GRPOTrainer.ref_logprobs`` (the reference pass, no grad) then ``GRPOTrainer.minibatch_losses`` (the policy's
forward + backward, micro-batch by micro-batch), without the rollout and the optimizer step: the rollout of 16 ×
1024 tokens would take longer than everything else together here, and neither holds ``(rows, tokens, vocabulary)``
tensors any more (the sampler's logits are one step's ``(rows, vocabulary)``; the record keeps no logits).

Each (path, length) runs in its own process (``--child``), so its peak RSS (``getrusage``'s ``ru_maxrss``) is its
own: ``plain`` is the logits path (``PolicyForward.fused_head = False``: ``FastLM.train_logits`` then
``gather_logprobs``), ``fused`` the hidden-state path (``FastLM.train_hidden`` then ``head_logprobs``). Printed: the
RSS once the models and batch exist, the peak, the peak minus that baseline, and the seconds of each phase.

Not measured here: TRL (``grpo_vs_trl.py``), the rollout, bf16, a GPU.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import resource
import subprocess
import sys
import time

HIDDEN, HEADS, KV_HEADS, INTERMEDIATE, VOCAB = 896, 14, 2, 4864, 151_936
PROMPTS, SAMPLES, PROMPT_TOKENS = 2, 8, 16


def rss_mib() -> float:
    """This process's resident set now (MiB), from /proc."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def child(path: str, length: int, layers: int, threads: int) -> dict:
    """One train step's reference pass + forward + backward on ``path`` (plain | fused); returns its figures."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from r1.algo import compute_group_advantages
    from r1.config import GRPOConfig, load_config
    from r1.models.policy import PolicyForward
    from r1.train.common import autocast_context
    from r1.train.grpo import GRPOTrainer, Rollouts, TrainBatch, _TRAIN_SUMS

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=layers, num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS, intermediate_size=INTERMEDIATE, tie_word_embeddings=True,
        max_position_embeddings=4096 + PROMPT_TOKENS,
    )
    model = AutoModelForCausalLM.from_config(config)
    reference = copy.deepcopy(model).eval().requires_grad_(False)
    cfg = load_config(GRPOConfig, None, ["grpo.kl_coef=0.04", f"rollout.max_new_tokens={length}",
                                         f"grpo.prompts_per_step={PROMPTS}", f"grpo.samples_per_prompt={SAMPLES}"])

    class Step(GRPOTrainer):
        """The trainer's phases over given models: only what ``ref_logprobs`` and ``minibatch_losses`` read."""

        def __init__(self):
            self.cfg, self.device, self.dtype = cfg, torch.device("cpu"), torch.float32
            self.model, self.ref_model = model, reference
            self.policy_forward = PolicyForward(model, reference, 0, self.device)
            self.policy_forward.fused_head = path == "fused"

        def autocast(self):
            return autocast_context(self.device, self.dtype)

    step = Step()
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(1, VOCAB, (PROMPT_TOKENS,), generator=g).tolist() for _ in range(PROMPTS)]
    comps = [torch.randint(1, VOCAB, (length,), generator=g).tolist() for _ in range(PROMPTS * SAMPLES)]
    n = len(comps)
    r = Rollouts(
        prompt_ids=[p for p in prompts for _ in range(SAMPLES)], completion_ids=comps,
        old_logps=[-12 * torch.rand(length, generator=g) for _ in range(n)], finish_reasons=["length"] * n,
        texts=[""] * n, sample_idx=[0] * n, rewards=torch.rand(n, generator=g), reward_parts={},
    )
    b = TrainBatch(
        rollouts=r, completion_ids=torch.tensor(comps), mask=torch.ones(n, length, dtype=torch.bool),
        old_logps=torch.stack(r.old_logps), advantages=compute_group_advantages(r.rewards, SAMPLES, "group_std", 1e-6),
        lengths=[PROMPT_TOKENS + length] * n, completion_lengths=[length] * n, temperature=1.0,
    )
    base = rss_mib()
    t0 = time.perf_counter()
    b.ref_logps = step.ref_logprobs(b)
    t1 = time.perf_counter()
    model.train()
    acc = {k: torch.zeros(()) for k in _TRAIN_SUMS}
    loss = step.minibatch_losses(b, list(range(n)), first_pass=True, acc=acc)
    t2 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {
        "path": path, "length": length, "layers": layers, "base_mib": base, "peak_mib": peak,
        "ref_s": t1 - t0, "train_s": t2 - t1, "loss": float(loss),
        "kl": float(acc["kl"] / acc["tokens"]), "entropy": float(acc["entropy"] / acc["tokens"]),
        "grad_norm": float(torch.cat([p.grad.flatten() for p in model.parameters()]).norm()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lengths", type=int, nargs="+", default=[256, 1024])
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--paths", nargs="+", default=["plain", "fused"], choices=["plain", "fused"])
    ap.add_argument("--child", nargs=2, metavar=("PATH", "LENGTH"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.layers, args.threads)))
        return
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    rows = []
    for length in args.lengths:
        for path in args.paths:
            cmd = [sys.executable, __file__, "--child", path, str(length), "--layers", str(args.layers),
                   "--threads", str(args.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if out.returncode != 0:
                print(f"{path} {length}: failed (exit {out.returncode}): {out.stderr.strip().splitlines()[-1:]}")
                continue
            res = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append(res)
            print(json.dumps(res), flush=True)
    logits_gib = {L: SAMPLES * PROMPTS * L * VOCAB * 4 / 2**30 for L in args.lengths}
    print(f"\n{args.layers} layers, {PROMPTS * SAMPLES} rows, fp32, {args.threads} thread(s)\n")
    print("| completion length | path | RSS before the step | peak RSS | peak − before | ref pass s | train pass s "
          "| full logits (one copy) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['length']} | {r['path']} | {r['base_mib'] / 1024:.2f} GiB | {r['peak_mib'] / 1024:.2f} GiB | "
              f"{(r['peak_mib'] - r['base_mib']) / 1024:.2f} GiB | {r['ref_s']:.1f} | {r['train_s']:.1f} | "
              f"{logits_gib[r['length']]:.1f} GiB |")


if __name__ == "__main__":
    main()
