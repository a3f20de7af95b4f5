"""Peak memory of a few whole GRPO steps with and without LoRA, at a real shape, one process per setting.

Run (the numbers go into docs/lora.md)::

    python benchmarks/memory_lora.py                          # Qwen2.5-0.5B's shape with 2 layers, r = 8
    python benchmarks/memory_lora.py --layers 4 --steps 3 --modes full lora lora-hf

The model is randomly initialised at Qwen2.5-0.5B's shape (hidden 896, 14 heads / 2 KV heads, intermediate 4864,
tied embeddings, vocabulary 151,936) with ``--layers`` decoder layers (the vocabulary alone is 136M parameters), saved
once as a Hugging Face directory with r1's byte tokenizer (ids beyond its 263 tokens decode to nothing). Each
setting runs ``--steps`` steps of the trainer itself (``GRPOTrainer.step``: rollout with the native sampler, rewards,
the reference pass, the policy's forward + backward, the AdamW step), 2 prompts × 8 samples of ``--length`` completion
tokens (a random model never stops early), fp32, β = 0.04 (so the full run holds a reference copy), in its own
process, so its peak RSS (``ru_maxrss``) is its own:

- ``full``: every weight trains (AdamW's two moments and a gradient per weight; the reference a second model);
- ``lora``: ``model.lora.r`` (default 8) on every linear layer of the decoder, the lean forward (``W + s·B·A``);
- ``lora-hf``: the same through the ``transformers`` forward with peft's layers (``PolicyForward.use_lean=False``).

Printed per setting: trainable parameters, RSS once the trainer is built, the peak, and seconds per step.
Not measured: a GPU, bf16, TRL.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HIDDEN, HEADS, KV_HEADS, INTERMEDIATE, VOCAB = 896, 14, 2, 4864, 151_936


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def make_model(path: Path, layers: int) -> None:
    """A random Qwen2 at Qwen2.5-0.5B's shape (``layers`` layers) + r1's byte tokenizer, as an HF directory."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from r1.models import save
    from r1.models.tokenizer import build_byte_tokenizer

    tok = build_byte_tokenizer()
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=VOCAB, hidden_size=HIDDEN, num_hidden_layers=layers, num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS, intermediate_size=INTERMEDIATE, tie_word_embeddings=True,
        max_position_embeddings=4096, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    save(AutoModelForCausalLM.from_config(config), tok, path)


def child(mode: str, model_dir: str, out_dir: str, args) -> dict:
    """``args.steps`` GRPO steps in ``mode`` (full | lora | lora-hf); returns its figures."""
    import torch

    from r1.config import GRPOConfig, load_config
    from r1.train.grpo import GRPOTrainer

    overrides = [
        f"model.path={model_dir}", "task.name=addition", "task.template=plain", "task.params={num_train: 64}",
        f"rollout.max_new_tokens={args.length}", "rollout.temperature=1.0", "grpo.prompts_per_step=2",
        "grpo.samples_per_prompt=8", "grpo.kl_coef=0.04", f"run.steps={args.steps}", f"run.out_dir={out_dir}",
        f"run.name={mode}", f"run.threads={args.threads}", "run.progress=false", "run.sample_every=0",
    ]
    if mode != "full":
        overrides += [f"model.lora.r={args.r}", f"model.lora.alpha={2 * args.r}"]
    t = GRPOTrainer(load_config(GRPOConfig, None, overrides))
    if mode == "lora-hf":
        t.policy_forward.use_lean = False
    built = rss_mib()
    times = []
    for step in range(1, args.steps + 1):
        t0 = time.perf_counter()
        t.step(step)
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    params = sum(p.numel() for p in t.model.parameters())
    trainable = sum(p.numel() for p in t.model.parameters() if p.requires_grad)
    return {"mode": mode, "params": params, "trainable": trainable, "built_mib": built, "peak_mib": peak,
            "step_s": times, "threads": torch.get_num_threads()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--length", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--r", type=int, default=8)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--modes", nargs="+", default=["full", "lora"], choices=["full", "lora", "lora-hf"])
    ap.add_argument("--child", nargs=3, metavar=("MODE", "MODEL", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args)))
        return
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "model"
        make_model(model_dir, args.layers)
        for mode in args.modes:
            cmd = [sys.executable, __file__, "--child", mode, str(model_dir), str(Path(tmp) / "runs"),
                   "--layers", str(args.layers), "--length", str(args.length), "--steps", str(args.steps),
                   "--r", str(args.r), "--threads", str(args.threads)]
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if out.returncode != 0:
                print(f"{mode}: failed (exit {out.returncode}): {out.stderr.strip().splitlines()[-3:]}")
                continue
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n{args.layers} layers, 16 rows x {args.length} tokens, {args.steps} GRPO steps, fp32, beta 0.04, "
          f"{args.threads} thread(s)\n")
    print("| setting | parameters | trainable | RSS once built | peak RSS | s/step (after the first) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in rows:
        later = r["step_s"][1:] or r["step_s"]
        print(f"| {r['mode']} | {r['params'] / 1e6:.1f}M | {r['trainable'] / 1e6:.2f}M | "
              f"{r['built_mib'] / 1024:.2f} GiB | {r['peak_mib'] / 1024:.2f} GiB | {sum(later) / len(later):.1f} |")


if __name__ == "__main__":
    main()
