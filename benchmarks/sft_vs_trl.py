"""SFT throughput: ``r1 sft`` vs TRL's ``SFTTrainer`` on the same model and data, packed and unpacked.

    python benchmarks/sft_vs_trl.py                       # the demo's pretraining: qwen2-1m + its addition corpus
    python benchmarks/sft_vs_trl.py --real --layers 2     # Qwen2.5-0.5B's shape (vocabulary 151,936), random init
    python benchmarks/sft_vs_trl.py --settings r1,r1@base --baseline-src /tmp/base/src   # r1 before/after

Data: the demo's pretraining corpus (``r1.pipeline.demo.yaml``'s ``pretrain`` section: 4-digit additions, its
mix of answer modes), generated once by r1 and written as prompt/completion JSONL that both sides read; the loss on
completion tokens only (r1 ``data.completion_only``, TRL's default for prompt/completion data), EOS appended, at
most ``--max-length`` tokens; ``--examples-per-step`` examples a step (TRL packed: as many rows of ``max_length``
as hold that many tokens on average). Optimizer as the demo's: AdamW lr 1e-3, betas (0.9, 0.95), weight decay 0.1,
grad-norm clip 1.0; fp32 on the CPU.

Settings (each run in its own subprocess; every repeat runs every setting once, in turn, so the machine's load
hits all of them alike): ``r1`` (packed: ``data.packing`` unset, r1's default), ``r1_unpacked``
(``data.packing=false``: one padded row per example), ``r1@base`` (the demo's settings on another checkout's r1,
``--baseline-src``: e.g. ``git worktree add /tmp/base <commit>``), ``trl`` (TRL's defaults: no packing, gradient
checkpointing on), ``trl_no_gc``, ``trl_packed`` (``packing=True``: TRL's best-fit-decreasing packing, padding-free
with position ids), ``trl_packed_no_gc``.

Reported: median s/step after ``--warmup`` steps, tokens/s (each side's own count of the real, non-padding tokens
of its steps over their wall time, step end to step end), peak RSS, and per repeat the ratios of r1's tokens/s to
each other setting's (the median over repeats printed). A random model: the benchmark times machinery, not
learning. Skips with a message when TRL is not installed (``pip install -e .[bench]``).
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

SETTINGS = ("r1", "r1_unpacked", "r1@base", "trl", "trl_no_gc", "trl_packed", "trl_packed_no_gc")
DEFAULT_SETTINGS = ("r1", "r1_unpacked", "trl", "trl_no_gc", "trl_packed", "trl_packed_no_gc")
REAL = {"vocab_size": 151_936, "hidden_size": 896, "num_attention_heads": 14, "num_key_value_heads": 2,
        "intermediate_size": 4864}
"""Qwen2.5-0.5B's shape (as ``benchmarks/memory_real_shape.py``); ``--layers`` of its 24 layers."""
LR, BETAS, WEIGHT_DECAY = 1e-3, (0.9, 0.95), 0.1


def prepare(folder: Path, real: bool, layers: int, num_examples: int) -> tuple[str, str, float]:
    """The model directory, the data file (the demo's corpus) and its mean tokens per example (r1's tokenization)."""
    import torch

    from r1.config import load_demo_config
    from r1.models import build_preset
    from r1.train.sft import load_records, tokenize_records

    model, tok = build_preset("qwen2-1m", **({**REAL, "num_hidden_layers": layers} if real else {}))
    model_dir = folder / "model"
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    cfg = load_demo_config(None, [f"pretrain.data.num_examples={num_examples}"]).pretrain
    records = load_records(cfg, tok)
    data = folder / "data.jsonl"
    data.write_text("".join(json.dumps({"prompt": r["prompt"], "completion": r["completion"]}) + "\n" for r in records))
    lengths = [len(ids) for ids, _ in tokenize_records(records, tok, cfg)]
    del model, torch
    return str(model_dir), str(data), sum(lengths) / len(lengths)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_r1(a) -> dict:
    """``r1 sft`` with the demo's pretraining settings on the benchmark's model and data."""
    import torch

    from r1.config import SFTConfig, load_config
    from r1.train.sft import SFTTrainer

    torch.set_num_threads(a.threads)
    ov = [f"model.path={a.model_dir}", "data.source=jsonl", f"data.path={a.data}", "data.completion_only=true",
          f"data.max_length={a.max_length}", "data.batching=random", f"data.examples_per_step={a.examples}",
          f"optim.lr={LR}", f"optim.betas=[{BETAS[0]},{BETAS[1]}]", f"optim.weight_decay={WEIGHT_DECAY}",
          "optim.grad_clip=1.0", f"run.steps={a.warmup + a.steps}", f"run.threads={a.threads}", "run.progress=false",
          "run.log_every=0", "run.save_every=0", f"run.out_dir={a.tmp}", "run.name=r1", "run.overwrite=true"]
    if a.worker == "r1_unpacked":
        ov.append("data.packing=false")
    trainer = SFTTrainer(load_config(SFTConfig, None, ov))
    trainer.checkpoint = lambda step: None  # no final checkpoint inside the timing
    times, tokens = [], []
    last = time.perf_counter()

    def on_step_end(step, m):
        nonlocal last
        now = time.perf_counter()
        times.append(now - last)
        tokens.append(m["throughput/tokens_per_s"] * m["time/step"])
        last = now

    trainer.train(on_step_end=on_step_end)
    return {"times": times, "tokens": tokens, "rss_mib": _peak_rss_mib()}


def run_trl(a) -> dict:
    """TRL's ``SFTTrainer`` on the same model, data and optimizer settings."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    torch.set_num_threads(a.threads)
    packed = a.worker.startswith("trl_packed")
    rows = max(1, round(a.examples * a.mean_tokens / a.max_length)) if packed else a.examples
    records = [json.loads(line) for line in Path(a.data).read_text().splitlines()]
    args = SFTConfig(
        output_dir=a.tmp, per_device_train_batch_size=rows, max_steps=a.warmup + a.steps, learning_rate=LR,
        adam_beta1=BETAS[0], adam_beta2=BETAS[1], weight_decay=WEIGHT_DECAY, max_grad_norm=1.0,
        lr_scheduler_type="constant", max_length=a.max_length, packing=packed, completion_only_loss=True,
        gradient_checkpointing=not a.worker.endswith("no_gc"), use_cpu=True, bf16=False, fp16=False,
        save_strategy="no", report_to=[], logging_steps=10_000, dataloader_num_workers=0, seed=0,
        include_num_input_tokens_seen="non_padding", disable_tqdm=True,
    )
    times, tokens = [], []

    class Timer(TrainerCallback):
        last, seen = 0.0, 0

        def on_train_begin(self, args, state, control, **kw):
            self.last = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            now = time.perf_counter()
            times.append(now - self.last)
            tokens.append(state.num_input_tokens_seen - self.seen)
            self.last, self.seen = now, state.num_input_tokens_seen

    model = AutoModelForCausalLM.from_pretrained(a.model_dir, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(a.model_dir)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(records), processing_class=tok,
                         callbacks=[Timer()])
    trainer.train()
    return {"times": times, "tokens": tokens, "rss_mib": _peak_rss_mib()}


def worker(a) -> None:
    res = run_r1(a) if a.worker.startswith("r1") else run_trl(a)
    print("RESULT " + json.dumps(res))


def spawn(setting: str, a, model_dir: str, data: str, mean_tokens: float) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    if setting.endswith("@base"):
        if not a.baseline_src or not Path(a.baseline_src, "r1", "__init__.py").is_file():
            raise SystemExit(f"setting {setting} needs --baseline-src: the src folder of another r1 checkout")
        env["PYTHONPATH"] = os.pathsep.join([str(Path(a.baseline_src).resolve()), env.get("PYTHONPATH", "")])
    with tempfile.TemporaryDirectory(prefix="sft-bench-") as tmp:
        cmd = [sys.executable, __file__, "--worker", setting.replace("@base", ""), "--model-dir", model_dir,
               "--data", data, "--mean-tokens", str(mean_tokens), "--tmp", tmp, "--threads", str(a.threads),
               "--steps", str(a.steps), "--warmup", str(a.warmup), "--examples-per-step", str(a.examples),
               "--max-length", str(a.max_length)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    out = proc.stdout + proc.stderr
    lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{setting} failed (exit {proc.returncode}):\n{out[-3000:]}")
    res = json.loads(lines[-1][len("RESULT "):])
    t, n = res["times"][a.warmup:], res["tokens"][a.warmup:]
    res.update(s_per_step=statistics.median(t), tokens_per_s=sum(n) / sum(t), load=os.getloadavg()[0])
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--settings", default=",".join(DEFAULT_SETTINGS), help=f"comma list of {', '.join(SETTINGS)}")
    ap.add_argument("--real", action="store_true", help="Qwen2.5-0.5B's shape (vocabulary 151,936) instead of qwen2-1m")
    ap.add_argument("--layers", type=int, default=2, help="--real: decoder layers (the model has 24)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per run (default 10; --real 3)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--examples-per-step", dest="examples", type=int, default=None, help="default 64 (--real: 16)")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--num-examples", type=int, default=4000, help="corpus size")
    ap.add_argument("--baseline-src", help="for r1@base: the src folder of the r1 to compare with")
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--model-dir", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--mean-tokens", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--tmp", help=argparse.SUPPRESS)
    a = ap.parse_args()
    a.steps = a.steps if a.steps is not None else (3 if a.real else 10)
    a.examples = a.examples if a.examples is not None else (16 if a.real else 64)
    if a.worker:
        return worker(a)
    settings = [s.strip() for s in a.settings.split(",") if s.strip()]
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise SystemExit(f"unknown settings {unknown}; valid: {', '.join(SETTINGS)}")
    if any(s.startswith("trl") for s in settings):
        try:
            import trl  # noqa: F401
        except ImportError:
            print("TRL is not installed (pip install -e '.[bench]'): skipping")
            return
    shape = f"Qwen2.5-0.5B shape, {a.layers} layers" if a.real else "qwen2-1m (the demo's)"
    print(f"{shape}; {a.examples} examples/step, max_length {a.max_length}; {a.steps} steps after {a.warmup} "
          f"warm-up, {a.repeats} repeats, {a.threads} thread(s); load {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="sft-bench-") as folder:
        model_dir, data, mean_tokens = prepare(Path(folder), a.real, a.layers, a.num_examples)
        print(f"corpus: {a.num_examples} examples, {mean_tokens:.1f} tokens each on average")
        runs: dict[str, list[dict]] = {s: [] for s in settings}
        for r in range(a.repeats):
            for s in settings:
                res = spawn(s, a, model_dir, data, mean_tokens)
                runs[s].append(res)
                print(f"  repeat {r + 1} {s:<18} {res['s_per_step']:.3f} s/step {res['tokens_per_s']:>9.0f} tok/s "
                      f"rss {res['rss_mib']:.0f} MiB load {res['load']:.2f}", flush=True)
    print(f"\n| setting | s/step | tokens/s | peak RSS MiB |\n|---|---:|---:|---:|")
    for s in settings:
        st = statistics.median(x["s_per_step"] for x in runs[s])
        tps = statistics.median(x["tokens_per_s"] for x in runs[s])
        print(f"| {s} | {st:.3f} | {tps:.0f} | {max(x['rss_mib'] for x in runs[s]):.0f} |")
    mine = [s for s in ("r1", "r1_unpacked") if s in settings]
    for m in mine:
        for o in settings:
            if o in mine:
                continue
            ratios = [x["tokens_per_s"] / y["tokens_per_s"] for x, y in zip(runs[m], runs[o])]
            print(f"{m} / {o}: {statistics.median(ratios):.2f}x tokens/s (per repeat: "
                  f"{', '.join(f'{q:.2f}' for q in ratios)})")
    if a.out:
        Path(a.out).write_text(json.dumps({"args": {k: v for k, v in vars(a).items() if k != "worker"}, "runs": runs},
                                          indent=1))


if __name__ == "__main__":
    main()
