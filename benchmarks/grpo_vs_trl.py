"""GRPO step time: ``r1`` vs TRL's ``GRPOTrainer`` on the same model, data and settings.

    python benchmarks/grpo_vs_trl.py                              # tiny + small, 10 steps, 2 repeats
    python benchmarks/grpo_vs_trl.py --presets tiny --steps 4 --repeats 1   # quick look
    python benchmarks/grpo_vs_trl.py --presets real --layers 2 --max-new-tokens 256 --steps 3 --warmup 1 \
        --threads 1 --mem-limit-gib 14                                    # Qwen2.5-0.5B's shape, r1 vs TRL

``--presets real`` is Qwen2.5-0.5B's shape (vocabulary 151,936, ``common.REAL``, ``--layers`` of its 24 layers),
random init, 2 prompts × 8 samples (``--prompts``), completions to ``--max-new-tokens`` (default 256; a random model
runs every one to the limit), r1 with ``grpo.activation_checkpointing=true`` (TRL's gradient checkpointing is on by
default); settings ``r1,trl`` run one after another (``--mode runs``: one big process at a time), each under
``--mem-limit-gib`` of address space, and without the matmul floor (its timing loops would take longer than the
steps). A setting that fails (e.g. over the memory cap) is reported as failed; the others still run.

The model is built once (an ``r1`` preset, Qwen2 architecture, byte tokenizer) and saved as an HF directory that
both sides load. Every measurement runs in its own subprocess (clean peak RSS, no shared caches), and the sides
alternate within each repeat: ``r1`` (one process), ``r1_2w`` (two data-parallel workers, ``run.workers=2``, the
threads split between them), TRL with gradient checkpointing (TRL's default), TRL without it.

Mirrored setting: raw prompt ``"a+b="`` (no chat template), reward 1 if the completion starts with the sum;
8 prompts × 8 generations = 64 completions per step; max 32 new tokens; temperature 1.0; μ = 1; β = 0.04 (reference
model on, k3 estimator on both sides); lr 1e-5, constant; fp32 on CPU; per-sequence token-mean loss (TRL
``loss_type="grpo"`` = r1 ``seq_mean_token_mean``); group-std advantages; clip ε = 0.2; grad-norm clip 1.0.
Differences left in: TRL's AdamW betas (0.9, 0.999) vs r1's (0.9, 0.99), and TRL tokenises prompts without BOS.

Reported per preset and setting: median s/step over steps after the warm-up (pooled over repeats), generated
tokens per second of step time (generated tokens / step time, the same definition both sides), peak RSS, and for
``r1`` and TRL the rollout share (``r1``: its rollout phase; TRL: ``_generate_and_score_completions``, which also
holds the reference forward and rewards). Skips with a message when TRL is not installed (``pip install -e .[bench]``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

SETTINGS = ("r1", "r1_2w", "trl", "trl_no_gc", "r1_bf16", "trl_bf16", "trl_bf16_no_gc", "trl_mb")
"""``r1``: one process with all threads; ``r1_2w``: two data-parallel r1 workers (``run.workers=2``) with half
the threads each; ``trl``: TRL defaults (gradient checkpointing on) in fp32; ``trl_no_gc``: gradient checkpointing
off. The bf16 pair, both sides in bf16 mixed precision (fp32 weights and optimizer state, matmuls in bf16):
``r1_bf16`` (``model.dtype=bf16``) and ``trl_bf16`` (``bf16=True``, TRL's own default, gradient checkpointing on),
``trl_bf16_no_gc`` (gradient checkpointing off). ``trl_mb``: TRL's defaults with its own memory knob, the step's
batch trained in micro-batches of ``--trl-micro-rows`` rows (``gradient_accumulation_steps``, one generation per
optimizer step: ``steps_per_generation`` = the accumulation steps).
The default ``--settings`` leave it out; it pays only on CPUs with bf16 matmul units (AMX, AVX512-BF16)."""

DEFAULT_SETTINGS = ("r1", "r1_2w", "trl", "trl_no_gc")

PAIRS = (
    ("r1", "trl", "r1", "TRL", "TRL defaults, gradient checkpointing on"),
    ("r1", "trl_no_gc", "r1", "TRL", "gradient checkpointing off"),
    ("r1", "trl_mb", "r1", "TRL", "TRL in micro-batches"),
    ("r1_2w", "trl", "r1 2 workers", "TRL", "TRL defaults, gradient checkpointing on"),
    ("r1_2w", "trl_no_gc", "r1 2 workers", "TRL", "gradient checkpointing off"),
    ("r1_bf16", "trl_bf16", "r1 bf16", "TRL", "bf16 on both sides, TRL defaults otherwise"),
    ("r1_bf16", "trl_bf16_no_gc", "r1 bf16", "TRL", "bf16 on both sides, gradient checkpointing off"),
    ("r1", "r1@base", "r1", "the baseline r1", "fp32"),
    ("r1_bf16", "r1_bf16@base", "r1 bf16", "the baseline r1", "bf16"),
)
"""(r1 setting, other setting, r1 label, other's name, label): the ratios printed when both settings ran."""


# ---------------------------------------------------------------------------------------------------- workers
class Gate:
    """Lockstep (``--mode steps``): before step k a worker blocks on its ``go`` FIFO until the driver writes a byte;
    after it, it writes the step's seconds to its ``done`` FIFO. The settings' steps so interleave one by one, and
    the machine's drift hits each side alike. Waiting is a blocking read: a waiting process takes no CPU time. In
    ``r1_2w`` rank 0 reads the FIFO and the other rank waits in a barrier. No folder: every call returns at once
    (``--mode runs``)."""

    def __init__(self, folder: str | None):
        self.go = self.done_fd = None
        if folder:
            from r1.train import dist

            if dist.is_main():
                self.go = os.open(Path(folder, "go"), os.O_RDONLY)
                self.done_fd = os.open(Path(folder, "done"), os.O_WRONLY)
        self.active = bool(folder)

    def wait(self) -> None:
        if not self.active:
            return
        if self.go is not None and not os.read(self.go, 1):
            raise SystemExit("the benchmark driver went away")
        import torch.distributed as tdist

        if tdist.is_initialized() and tdist.get_world_size() > 1:
            tdist.barrier()

    def done(self, seconds: float) -> None:
        if self.done_fd is not None:
            os.write(self.done_fd, f"{seconds!r}\n".encode())


def run_r1(model_dir: str, steps: int, threads: int, out: str | None = None, extra: tuple = (),
           gate: Gate | None = None) -> dict:
    from r1.train import dist

    gate = gate or Gate(None)
    trainer = common.build_r1_trainer(model_dir, steps, threads, out=out, extra=extra)
    times, tokens, rollout, phases = [], [], [], {}
    for step in range(1, steps + 1):
        gate.wait()
        m = trainer.step(step)
        if dist.is_main():
            gate.done(m["time/step"])
        times.append(m["time/step"])
        tokens.append(m["response_length/mean"] * common.PROMPTS_PER_STEP * common.SAMPLES_PER_PROMPT)
        rollout.append(m.get("time/rollout", 0.0))
        for k, v in m.items():
            if k.startswith("time/"):
                phases.setdefault(k[5:], []).append(v)
    return {"times": times, "tokens": tokens, "rollout": rollout, "phases": phases}


def _r1_dp_worker(model_dir: str, steps: int, threads: int, out_dir: str, result_file: str, gate: str | None) -> None:
    """One of the ``r1_2w`` workers (``r1.train.dist.spawn`` calls it in each process); rank 0 writes the result."""
    from r1.train import dist

    res = run_r1(model_dir, steps, threads, out=out_dir, extra=("run.workers=2",), gate=Gate(gate))
    rss = dist.all_gather_objects(common.peak_rss_mib())
    if dist.is_main():
        res["peak_rss_mib"] = sum(rss)  # both workers' processes
        Path(result_file).write_text(json.dumps(res))


def run_r1_dp(model_dir: str, steps: int, threads: int, gate: str | None = None) -> dict:
    from r1.train import dist

    with tempfile.TemporaryDirectory(prefix="r1_bench_dp_") as tmp:
        result = Path(tmp, "result.json")
        dist.spawn(_r1_dp_worker, 2, model_dir, steps, max(1, threads // 2), str(Path(tmp, "run")), str(result), gate)
        return json.loads(result.read_text())


def run_trl(model_dir: str, steps: int, threads: int, gradient_checkpointing: bool, gate: Gate | None = None,
            bf16: bool = False, micro_rows: int = 0) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    data = Dataset.from_list([{"prompt": p, "answer": a} for p, a in common.make_problems()])

    def reward_sum(completions, answer, **kw) -> list[float]:
        return [float(c.startswith(a)) for c, a in zip(completions, answer)]

    times, tokens, rollout = [], [], []
    t0 = [0.0]
    gate = gate or Gate(None)

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kw):
            gate.wait()
            t0[0] = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            times.append(time.perf_counter() - t0[0])
            gate.done(times[-1])

    out = tempfile.mkdtemp(prefix="trl_bench_")
    rows = common.PROMPTS_PER_STEP * common.SAMPLES_PER_PROMPT
    accumulate = rows // micro_rows if micro_rows else 1
    args = GRPOConfig(
        output_dir=out,
        per_device_train_batch_size=rows // accumulate,
        gradient_accumulation_steps=accumulate,
        num_generations=common.SAMPLES_PER_PROMPT,
        max_completion_length=common.MAX_NEW_TOKENS,
        temperature=common.TEMPERATURE,
        beta=common.KL_COEF,
        learning_rate=common.LR,
        lr_scheduler_type="constant",
        loss_type="grpo",
        num_iterations=1,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        bf16=bf16,
        gradient_checkpointing=gradient_checkpointing,
        max_steps=steps,
        save_strategy="no",
        disable_tqdm=True,
        seed=0,
        dataloader_num_workers=0,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward_sum,
        args=args,
        train_dataset=data,
        processing_class=tok,
        callbacks=[StepTimer()],
    )
    original = trainer._generate_and_score_completions

    def timed_generate(inputs):
        t = time.perf_counter()
        batch = original(inputs)
        rollout.append(time.perf_counter() - t)
        tokens.append(float(batch["completion_mask"].sum()))
        return batch

    trainer._generate_and_score_completions = timed_generate
    torch.set_num_threads(threads)  # Trainer setup may reset it
    trainer.train()
    return {"times": times, "tokens": tokens, "rollout": rollout, "phases": {}}


def worker(args) -> None:
    common.limit_memory(args.mem_limit_gib)
    common.PROMPTS_PER_STEP, common.MAX_NEW_TOKENS = args.prompts, args.max_new_tokens  # this run's shape
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.worker in ("r1", "r1_bf16"):
        extra = (("model.dtype=bf16",) if args.worker == "r1_bf16" else ()) + tuple(args.r1_extra or ())
        res = run_r1(args.model_dir, args.steps, args.threads, extra=extra, gate=Gate(args.gate))
    elif args.worker == "r1_2w":
        res = run_r1_dp(args.model_dir, args.steps, args.threads, gate=args.gate)
    else:
        trl_gc = args.worker in ("trl", "trl_bf16")
        res = run_trl(args.model_dir, args.steps, args.threads, gradient_checkpointing=trl_gc or args.worker == "trl_mb",
                      gate=Gate(args.gate), bf16=args.worker.startswith("trl_bf16"),
                      micro_rows=args.trl_micro_rows if args.worker == "trl_mb" else 0)
    res.setdefault("peak_rss_mib", common.peak_rss_mib())
    res["load_1min"] = os.getloadavg()[0]  # other work on the machine inflates step times; reported beside them
    print("BENCH_JSON " + json.dumps(res), flush=True)


# ---------------------------------------------------------------------------------------------------- driver
WORKER_ARGS: list[str] = []
"""The run's shape and limits, passed on to every worker (``main`` sets them)."""

BASELINE = "@base"
"""A setting name ending in this (``r1@base``, ``r1_bf16@base``) runs that setting with ``r1`` imported from
``--baseline-src`` (the ``src`` folder of another checkout, e.g. ``git worktree add /tmp/base HEAD~1``): the steps of
two versions of r1 interleaved, so a change is measured against the code before it on the same drifting machine."""


def _worker_cmd(setting: str, model_dir: str, steps: int, threads: int, gate: str | None = None,
                baseline_src: str | None = None):
    worker = setting.removesuffix(BASELINE)
    cmd = [sys.executable, __file__, "--worker", worker, "--model-dir", model_dir, "--steps", str(steps)]
    cmd += ["--threads", str(threads)] + (["--gate", gate] if gate else []) + WORKER_ARGS
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    if setting.endswith(BASELINE):
        if not baseline_src or not Path(baseline_src, "r1", "__init__.py").is_file():
            raise SystemExit(f"setting {setting} needs --baseline-src: the src folder of another r1 checkout")
        env["PYTHONPATH"] = os.pathsep.join([str(Path(baseline_src).resolve()), env.get("PYTHONPATH", "")])
    return cmd, env


def _result(setting: str, returncode: int, output: str) -> dict:
    for line in output.splitlines():
        if line.startswith("BENCH_JSON "):
            return json.loads(line[len("BENCH_JSON ") :])
    tail = "\n".join(output.splitlines()[-25:])
    raise SystemExit(f"worker {setting} failed (exit {returncode}):\n{tail}")


def spawn(setting: str, model_dir: str, steps: int, threads: int, baseline_src: str | None = None) -> dict:
    """``--mode runs``: one whole run of ``setting`` in its own subprocess, alone on the machine."""
    cmd, env = _worker_cmd(setting, model_dir, steps, threads, baseline_src=baseline_src)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    return _result(setting, proc.returncode, proc.stdout + proc.stderr)


def lockstep(settings: list[str], steps: int, command) -> dict[str, dict]:
    """``--mode steps``: one subprocess per setting, all started, their steps interleaved one at a time (the others
    block on their ``Gate``); the order rotates every step. ``command(setting, gate_folder)`` → (argv, env) of the
    worker, which prints ``BENCH_JSON {...}`` at the end. Returns each setting's result."""
    import select

    with tempfile.TemporaryDirectory(prefix="bench_lockstep_") as tmp:
        procs = {}
        try:
            for s in settings:
                gate = Path(tmp, s)
                gate.mkdir()
                os.mkfifo(gate / "go")
                os.mkfifo(gate / "done")
                # O_RDWR opens of a FIFO never block, so the worker's own opens find their other end.
                go, done = os.open(gate / "go", os.O_RDWR), os.open(gate / "done", os.O_RDWR)
                cmd, env = command(s, str(gate))
                log = open(Path(tmp, f"{s}.log"), "w+")
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, text=True, env=env)
                procs[s] = (proc, log, go, done)
            for k in range(steps):
                shift = k % len(settings)
                for s in settings[shift:] + settings[:shift]:
                    proc, log, go, done = procs[s]
                    os.write(go, b"g")
                    while not select.select([done], [], [], 1.0)[0]:
                        if proc.poll() is not None:
                            log.seek(0)
                            _result(s, proc.returncode, log.read())  # raises with the worker's output
                    os.read(done, 4096)  # one short line per step
            out = {}
            for s, (proc, log, _, _) in procs.items():
                proc.wait()
                log.seek(0)
                out[s] = _result(s, proc.returncode, log.read())
            return out
        finally:
            for proc, log, go, done in procs.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                log.close()
                os.close(go)
                os.close(done)


def paired_speedups(runs: dict[str, list[dict]], mine: str, other: str, warmup: int) -> list[float]:
    """``other``'s step time over ``mine``'s, step by step (step k of repeat r against step k of repeat r): in
    ``--mode steps`` the two ran seconds apart, so each ratio sees the same machine."""
    out = []
    for a, b in zip(runs[mine], runs[other]):
        out += [tb / ta for ta, tb in zip(a["times"][warmup:], b["times"][warmup:])]
    return out


def summarise(runs: list[dict], warmup: int) -> dict:
    times = [t for r in runs for t in r["times"][warmup:]]
    tok = [x for r in runs for x in r["tokens"][warmup:]]
    roll = [x for r in runs for x in r["rollout"][warmup:]]
    med = common.median(times)
    out = {
        "s_per_step": med,
        "gen_tok_per_s": common.median([k / t for k, t in zip(tok, times)]) if tok else float("nan"),
        "rollout_s": common.median(roll) if roll else float("nan"),
        "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
        "num_steps": len(times),
        "load_1min": max(r["load_1min"] for r in runs),
    }
    phases: dict[str, list[float]] = {}
    for r in runs:
        for k, v in r["phases"].items():
            phases.setdefault(k, []).extend(v[warmup:])
    out["phases"] = {k: common.median(v) for k, v in phases.items()}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="tiny,small", help="comma list of: " + ", ".join([*common.PRESETS, "real"]))
    ap.add_argument("--steps", type=int, default=10, help="steps per run (the first --warmup are not timed)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2, help="runs per setting, alternating between settings")
    ap.add_argument("--mode", choices=("steps", "runs"), default="steps",
                    help="steps: every setting's process alive, their steps interleaved one by one (drift cancels in "
                    "the paired ratios); runs: whole runs one after another, each process alone on the machine")
    ap.add_argument("--settings", default=",".join(DEFAULT_SETTINGS), help="comma list of: " + ", ".join(SETTINGS))
    ap.add_argument("--threads", type=int, default=2, help="torch threads on both sides")
    ap.add_argument("--json", help="also write the results here")
    ap.add_argument("--layers", type=int, default=2, help="real: decoder layers (Qwen2.5-0.5B has 24)")
    ap.add_argument("--max-new-tokens", type=int, help=f"completion limit (default {common.MAX_NEW_TOKENS}; real 256)")
    ap.add_argument("--prompts", type=int, help=f"prompts per step (default {common.PROMPTS_PER_STEP}; real 2)")
    ap.add_argument("--mem-limit-gib", type=float, default=0.0,
                    help="address-space cap of every worker (RLIMIT_AS), 0 = none: a run over it fails, not the machine")
    ap.add_argument("--r1-extra", nargs="*", help="dotted overrides for the r1 settings "
                    "(default: real grpo.activation_checkpointing=true, else none)")
    ap.add_argument("--trl-micro-rows", type=int, default=4, help="trl_mb: rows per TRL micro-batch")
    ap.add_argument("--baseline-src", help=f"for settings ending in {BASELINE}: the src folder of the r1 to run there")
    ap.add_argument("--worker", choices=SETTINGS, help=argparse.SUPPRESS)
    ap.add_argument("--model-dir", help=argparse.SUPPRESS)
    ap.add_argument("--gate", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    real = "real" in args.presets.split(",")
    if real and args.presets != "real":
        raise SystemExit("--presets real runs alone (its shape and defaults differ from the small presets')")
    if real:  # one big process at a time, no floor; the default settings those of the target
        args.mode = "runs"
        if args.settings == ",".join(DEFAULT_SETTINGS):
            args.settings = "r1,trl"
    prompts = args.prompts or (2 if real else common.PROMPTS_PER_STEP)
    max_new = args.max_new_tokens or (256 if real else common.MAX_NEW_TOKENS)
    r1_extra = args.r1_extra if args.r1_extra is not None else (["grpo.activation_checkpointing=true"] if real else [])
    common.PROMPTS_PER_STEP, common.MAX_NEW_TOKENS = prompts, max_new
    WORKER_ARGS[:] = ["--prompts", str(prompts), "--max-new-tokens", str(max_new), "--mem-limit-gib",
                      str(args.mem_limit_gib), "--trl-micro-rows", str(args.trl_micro_rows), "--r1-extra", *r1_extra]
    if args.steps <= args.warmup:
        raise SystemExit(f"--steps ({args.steps}) must exceed --warmup ({args.warmup})")
    settings = [s for s in args.settings.split(",") if s]
    unknown = [s for s in settings if s.removesuffix(BASELINE) not in SETTINGS]
    if unknown:
        raise SystemExit(f"unknown setting(s) {', '.join(unknown)}: choose from {', '.join(SETTINGS)} "
                         f"(r1 settings may end in {BASELINE})")
    if any(s.startswith("trl") for s in settings):
        try:
            import trl  # noqa: F401
        except ImportError:
            print("TRL is not installed: skipping the r1 vs TRL benchmark (pip install -e '.[bench]').")
            return
        print(f"trl {trl.__version__}")
    import torch

    print(f"torch {torch.__version__}, threads {args.threads}, load {os.getloadavg()[0]:.2f}, mode {args.mode}; "
          f"{prompts} prompts x {common.SAMPLES_PER_PROMPT} samples, {max_new} new tokens"
          + (f", {args.layers} layers" if real else "") + (f"; r1 {' '.join(r1_extra)}" if r1_extra else ""))
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench_model_") as tmp:
        for preset in [p for p in args.presets.split(",") if p]:
            model_dir = common.save_preset(preset, Path(tmp) / preset, layers=args.layers)
            runs = {s: [] for s in settings}
            floors = [] if real else [preset_floor(model_dir, args.threads)]
            for rep in range(args.repeats):
                if args.mode == "steps":
                    t = time.perf_counter()
                    res = lockstep(settings, args.steps, lambda s, gate: _worker_cmd(
                        s, model_dir, args.steps, args.threads, gate, args.baseline_src))
                    for s in settings:
                        runs[s].append(res[s])
                    meds = ", ".join(f"{s} {common.median(res[s]['times'][args.warmup:]):.3f}" for s in settings)
                    print(f"  [{preset}] repeat {rep + 1}, steps interleaved: {meds} s/step "
                          f"({time.perf_counter() - t:.0f}s, load {max(res[s]['load_1min'] for s in settings):.2f})")
                    continue
                order = settings if rep % 2 == 0 else settings[::-1]
                for s in order:
                    t = time.perf_counter()
                    try:
                        runs[s].append(spawn(s, model_dir, args.steps, args.threads, args.baseline_src))
                    except SystemExit as e:  # e.g. over --mem-limit-gib: reported, the other settings still run
                        print(f"  [{preset}] {s} repeat {rep + 1}: FAILED ({time.perf_counter() - t:.0f}s)\n{e}")
                        continue
                    med = common.median(runs[s][-1]["times"][args.warmup :])
                    load = runs[s][-1]["load_1min"]
                    took = time.perf_counter() - t
                    print(f"  [{preset}] {s} repeat {rep + 1}: {med:.3f} s/step ({took:.0f}s, load {load:.2f})")
            if not real:
                floors.append(preset_floor(model_dir, args.threads))
            summary = {s: summarise(runs[s], args.warmup) for s in settings if runs[s]}
            results[preset] = {"summary": summary, "runs": runs, "gemm_floor_s": floors}
            if summary:
                print_table(preset, summary)
            if args.mode == "steps":
                print_paired(preset, runs, args.warmup)
            if floors:
                print_bound(preset, summary, floors)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


def preset_floor(model_dir: str, threads: int) -> dict[str, float]:
    """The matmul floor of r1's step on this preset, per phase (``flops.step_gemms``/``gemm_floor``), timed here."""
    import torch
    from transformers import AutoConfig

    import flops

    torch.set_num_threads(threads)
    gemms = flops.step_gemms(
        AutoConfig.from_pretrained(model_dir),
        common.PROMPTS_PER_STEP,
        common.PROMPTS_PER_STEP * common.SAMPLES_PER_PROMPT,
        common.PROMPT_TOKENS,
        common.MAX_NEW_TOKENS,
    )
    out = {phase: flops.gemm_floor(g) for phase, g in gemms.items()}
    out["step"] = sum(out.values())
    return out


def print_bound(preset: str, summary: dict, floors: list[dict[str, float]]) -> None:
    """The most r1 could gain: its step's matrix products alone, with everything else free. The machine's speed
    drifts, so the floor is timed before and after the runs and the lower time is kept (per phase)."""
    floor = {k: min(f[k] for f in floors) for k in floors[0] if k != "step"}
    floor["step"] = sum(floor.values())
    print(f"r1 matmul floor ({preset}): {floor['step']:.3f} s/step = its step's matrix products alone, back to back "
          f"(attention, norms, sampling, optimizer and Python left out): "
          + ", ".join(f"{k} {v:.3f}" for k, v in floor.items() if k != "step"))
    for mine in ("r1", "r1_2w"):  # the floor is float32's
        if mine in summary:
            ph = summary[mine]["phases"]
            at = ", ".join(f"{k} {floor[k] / ph[k]:.0%}" for k in ("rollout", "ref", "train") if ph.get(k))
            print(f"{mine} runs at {floor['step'] / summary[mine]['s_per_step']:.0%} of the floor's speed ({at})")
    for s, label in (("trl", "TRL defaults"), ("trl_no_gc", "gradient checkpointing off")):
        if s in summary:
            print(f"most speedup r1 can reach vs TRL ({preset}, {label}) at the floor: "
                  f"{summary[s]['s_per_step'] / floor['step']:.2f}x")


def print_paired(preset: str, runs: dict[str, list[dict]], warmup: int) -> None:
    """Speedups from the step-by-step pairs (``--mode steps``): median and interquartile range over the pairs."""
    for mine, s, who, other, label in PAIRS:
        if mine in runs and s in runs:
            x = sorted(paired_speedups(runs, mine, s, warmup))
            q1, q3 = x[len(x) // 4], x[(3 * len(x)) // 4]
            print(f"paired speedup {who} vs {other} ({preset}, {label}): {common.median(x):.2f}x "
                  f"(interquartile {q1:.2f}-{q3:.2f}x over {len(x)} step pairs)")


def print_table(preset: str, summary: dict) -> None:
    name = f"{preset} ({common.PRESETS.get(preset, preset)})"
    print(f"\n{name}: median over {summary[next(iter(summary))]['num_steps']} timed steps")
    print(f"{'setting':<12}{'s/step':>9}{'gen tok/s':>11}{'rollout s':>11}{'peak RSS MiB':>14}{'max load':>10}")
    for s, r in summary.items():
        print(f"{s:<12}{r['s_per_step']:>9.3f}{r['gen_tok_per_s']:>11.0f}{r['rollout_s']:>11.3f}"
              f"{r['peak_rss_mib']:>14.0f}{r['load_1min']:>10.2f}")
    for mine in [x for x in summary if x.startswith("r1")]:
        if summary[mine]["phases"]:
            ph = summary[mine]["phases"]
            print(f"{mine} phases (median s): " + ", ".join(f"{k} {v:.3f}" for k, v in ph.items() if k != "step"))
    for mine, s, who, other, label in PAIRS:
        if mine in summary and s in summary:
            x = summary[s]["s_per_step"] / summary[mine]["s_per_step"]
            print(f"speedup {who} vs {other} ({preset}, {label}): {x:.2f}x")


if __name__ == "__main__":
    main()
