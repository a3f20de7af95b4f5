"""Learning parity: the demo's RL stage run by ``r1`` and by TRL's ``GRPOTrainer``, both evaluated the demo's way.

    python benchmarks/demo_vs_trl.py                                # seeds 0,1,2, the demo's steps
    python benchmarks/demo_vs_trl.py --seeds 0 --steps 4 --threads 1   # quick look

Everything comes from the shipped demo config (``r1.config.load_demo_config``) and its pipeline
(``r1/pipeline/r1_zero_demo.yaml``, :func:`r1.pipeline.demo.pipeline_settings`), so this script follows the demo's
changes. For each seed N, both sides start from the same base model: the base stage of ``r1 demo run.seed=N`` (made
by the pipeline runner in the demo's ``cache_dir`` when absent, so ``r1 demo`` reuses it; ``--base-seed K``: one base
for every seed; ``--cache-dir``: another cache). Then:

- ``r1``: the demo pipeline's ``grpo`` stage config as is, with its in-training evaluation, sample tables and
  intermediate checkpoints off (TRL has none of them; the evaluation draws from its own generator, so the training
  is the same), ``run.seed=N``;
- TRL: ``GRPOTrainer`` on the same task's train split (prompts rendered by ``r1.generate.prompt_text``, tokenised
  alike: the script checks), r1's reward parts as its reward functions with the demo's weights
  (``reward_weights``), and the demo's hyper-parameters mapped by :func:`trl_settings`: prompts_per_step ×
  samples_per_prompt completions per step, max_new_tokens, temperature / top-p / top-k, β, clip ε low/high,
  token-mean loss (``loss_type="dapo"``), group-std advantages, μ, grad-norm clip, AdamW betas / eps / weight decay,
  ``seed=N``. The learning-rate schedule is r1's own (``r1.train.optim.lr_factor`` in a ``LambdaLR``): HF's
  ``constant_with_warmup`` starts at lr 0 and so runs one step behind r1's warm-up. Gradient checkpointing off.

Both trained models are then evaluated by the demo's ``eval_final`` stage config (same held-out problems, samples,
temperature and seed; ``r1 eval``) and summarised by :func:`r1.pipeline.demo.eval_records`. Reported per side:
accuracy, mean length and reflection rate as mean ± sd over the seeds, RL seconds (``train()`` alone, without
loading or evaluation) and each seed's numbers; ``--out`` writes them as JSON. Each run is its own subprocess; the
side that runs first alternates between seeds.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from grpo_vs_trl import _result  # noqa: E402

SIDES = ("r1", "trl")

# r1's switch values and TRL's names for them (trl.GRPOConfig: loss_type, scale_rewards)
LOSS_TYPES = {"token_mean": "dapo", "seq_mean_token_mean": "grpo", "constant": "dr_grpo"}
SCALE_REWARDS = {"group_std": "group", "batch_std": "batch", "none": "none"}


def demo_config(seed: int, threads: int, steps: int | None = None, cache_dir: str | None = None):
    """The shipped demo config with ``run.seed``, ``run.threads`` (and ``grpo.run.steps``, ``run.cache_dir``) set,
    progress off."""
    from r1.config import load_demo_config

    overrides = [f"run.seed={seed}", f"run.threads={threads}", "run.progress=false"]
    overrides += [f"grpo.run.steps={steps}"] if steps is not None else []
    return load_demo_config(None, overrides + ([f"run.cache_dir={cache_dir}"] if cache_dir else []))


def demo_pipeline(cfg, work: Path, name: str, only_base: bool = False):
    """The demo's pipeline (what ``r1 demo`` with ``cfg`` runs), its run folder ``work/name``; with ``only_base``
    every stage after the base is disabled. Loading writes nothing."""
    from r1.pipeline.demo import R1_ZERO_DEMO, pipeline_settings
    from r1.pipeline.runner import load_pipeline

    settings = pipeline_settings(cfg)
    settings.update(name=name, out_dir=str(work))
    if only_base:
        for s in ("eval_base", "grpo", "eval_final"):
            settings["stages"][s]["enabled"] = False
    return load_pipeline(R1_ZERO_DEMO, merge=settings)


def ensure_base(seed: int, threads: int, work: Path, cache_dir: str | None = None) -> str:
    """The base model of ``r1 demo run.seed=<seed>``: its cached folder, made by the demo's pipeline when absent."""
    from r1.pipeline.runner import execute

    pipe = demo_pipeline(demo_config(seed, threads, cache_dir=cache_dir), work, f"base_s{seed}", only_base=True)
    base = pipe.stages[0]
    if not (base.dir / "DONE").is_file():
        print(f"making the demo's base model for seed {seed} in {base.dir} (the demo's base stage)", flush=True)
        execute(pipe)
    return str(base.output)


def stage_config(pipe, name: str):
    """A copy of the config of stage ``name`` of ``pipe``."""
    return copy.deepcopy(next(s for s in pipe.stages if s.name == name).cfg)


def trl_settings(grpo_cfg) -> dict:
    """``trl.GRPOConfig`` keyword arguments for an r1 ``GRPOConfig`` (the demo's ``grpo`` section): what r1 does,
    in TRL's names. Settings TRL has no counterpart for raise ``SystemExit``."""
    g, r, o = grpo_cfg.grpo, grpo_cfg.rollout, grpo_cfg.optim
    unsupported = {
        "grpo.dynamic_sampling": g.dynamic_sampling,
        "grpo.overlong=shape": g.overlong == "shape",
        "rollout.stop": bool(r.stop),
        "grpo.loss_agg": g.loss_agg not in LOSS_TYPES,
        "grpo.adv_norm": g.adv_norm not in SCALE_REWARDS,
        "grpo.kl_estimator (TRL: k3)": g.kl_coef > 0 and g.kl_estimator != "k3",
    }
    bad = [k for k, v in unsupported.items() if v]
    if bad:
        raise SystemExit(f"the demo's {', '.join(bad)} has no TRL counterpart in this benchmark")
    completions = g.prompts_per_step * g.samples_per_prompt
    return {
        "per_device_train_batch_size": completions // g.num_minibatches,
        "steps_per_generation": g.num_minibatches,
        "gradient_accumulation_steps": 1,
        "num_generations": g.samples_per_prompt,
        "num_iterations": g.mu,
        "max_steps": grpo_cfg.run.steps * g.num_minibatches * g.mu,  # TRL counts optimizer steps, r1 rollouts
        "max_completion_length": r.max_new_tokens,
        "temperature": r.temperature,
        "top_p": r.top_p,
        "top_k": r.top_k,
        "beta": g.kl_coef,
        "epsilon": g.clip_low,
        "epsilon_high": g.clip_high,
        "loss_type": LOSS_TYPES[g.loss_agg],
        "scale_rewards": SCALE_REWARDS[g.adv_norm],
        "importance_sampling_level": g.is_level,
        "mask_truncated_completions": g.overlong == "mask",
        "reward_weights": [float(x.weight) for x in grpo_cfg.rewards],
        "learning_rate": o.lr,
        "adam_beta1": o.betas[0],
        "adam_beta2": o.betas[1],
        "adam_epsilon": o.eps,
        "weight_decay": o.weight_decay,
        "max_grad_norm": o.grad_clip,
        "gradient_checkpointing": False,
        "bf16": grpo_cfg.model.dtype == "bf16",
    }


# ---------------------------------------------------------------------------------------------------- workers
def train_r1(grpo_cfg, out: Path) -> tuple[str, float]:
    from r1.config import validate
    from r1.train.grpo import GRPOTrainer

    cfg = copy.deepcopy(grpo_cfg)
    cfg.run.out_dir, cfg.run.name, cfg.run.overwrite = str(out), "grpo", True
    cfg.eval.every = cfg.run.sample_every = cfg.run.save_every = cfg.run.log_every = 0  # the last step still saves
    validate(cfg)
    trainer = GRPOTrainer(cfg)
    t = time.perf_counter()
    run_dir = trainer.train()
    return str(run_dir), time.perf_counter() - t


def train_trl(grpo_cfg, threads: int, out: Path) -> tuple[str, float]:
    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from r1.generate import prompt_text, tokenize_prompt
    from r1.models import load, resolve_device, save
    from r1.rewards import CompositeReward
    from r1.tasks import build_task
    from r1.train.optim import lr_factor

    c = grpo_cfg
    seed = c.run.seed
    torch.manual_seed(seed)
    model, tok = load(c.model.path)
    task = build_task(c.task.name, c.task.data, **c.task.params)
    samples = task.load(c.task.train_split)
    prompts = [prompt_text(tok, c.task.template, task, s) for s in samples]
    for s, p in list(zip(samples, prompts))[:64]:  # TRL tokenises the text without special tokens
        if tok(p, add_special_tokens=False).input_ids != tokenize_prompt(tok, c.task.template, task, s):
            raise SystemExit(f"TRL would see other prompt tokens than r1 for {s.id!r}")
    data = Dataset.from_list([{"prompt": p, "sample_index": i} for i, p in enumerate(prompts)])

    reward = CompositeReward([(r.name, r.weight, r.params, r.label, r.source) for r in c.rewards], task)

    def part_fn(label, params, fn, source):
        def score(completions, sample_index, **kw) -> list[float | None]:
            out = []
            for text, i in zip(completions, sample_index):
                s = samples[i]
                out.append(None if source and s.meta.get("source") != source else fn(text, s, task=task, **params))
            return out

        score.__name__ = label
        return score

    reward_funcs = [part_fn(label, params, fn, source) for label, _, params, fn, source in reward.parts]
    kwargs = trl_settings(c)
    args = GRPOConfig(
        output_dir=str(out / "trl"), use_cpu=resolve_device(c.model.device).type == "cpu", seed=seed,
        logging_steps=max(1, kwargs["max_steps"]), report_to=[], save_strategy="no", disable_tqdm=True,
        dataloader_num_workers=0, **kwargs,
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=c.optim.lr, betas=tuple(c.optim.betas), eps=c.optim.eps,
                                  weight_decay=c.optim.weight_decay)
    # r1's warm-up + schedule, per optimizer step (r1.train.optim.lr_factor)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda k: lr_factor(k, kwargs["max_steps"], c.optim))
    trainer = GRPOTrainer(model=model, reward_funcs=reward_funcs, args=args, train_dataset=data,
                          processing_class=tok, optimizers=(optimizer, scheduler))
    torch.set_num_threads(threads)  # Trainer setup may reset it
    t = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - t
    return str(save(trainer.model, tok, out / "trl_model")), seconds


def evaluate_like_the_demo(cfg, model_dir: str, work: Path, label: str) -> dict:
    """The demo's ``eval_final`` stage (its config, ``r1 eval``) on ``model_dir``, summarised as ``r1 demo`` does."""
    from r1.eval import evaluate
    from r1.pipeline.demo import eval_records

    stage = next(s for s in demo_pipeline(cfg, work, "eval_config").stages if s.name == "eval_final")
    ecfg = copy.deepcopy(stage.cfg)
    ecfg.model.path = model_dir
    ecfg.run.out_dir, ecfg.run.name, ecfg.run.overwrite = str(work), f"eval_{label}", True
    evaluate(ecfg)
    return eval_records(dataclasses.replace(stage, cfg=ecfg, dir=work / f"eval_{label}"), label,
                        work / f"eval_{label}.jsonl")


def worker(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    cfg = demo_config(args.seed, args.threads, args.steps)
    grpo_cfg = stage_config(demo_pipeline(cfg, work, "grpo_config"), "grpo")  # the demo's RL stage, seed and all
    grpo_cfg.model.path = args.model_dir
    if args.worker == "r1":
        model_dir, seconds = train_r1(grpo_cfg, work)
    else:
        model_dir, seconds = train_trl(grpo_cfg, args.threads, work)
    metrics = evaluate_like_the_demo(cfg, model_dir, work, args.worker)
    res = {"rl_seconds": seconds, "eval": metrics, "peak_rss_mib": common.peak_rss_mib(),
           "load_1min": os.getloadavg()[0]}
    print("BENCH_JSON " + json.dumps(res), flush=True)


# ---------------------------------------------------------------------------------------------------- driver
COLUMNS = (("accuracy", "accuracy", 3), ("mean length", "response_length/mean", 1),
           ("reflection rate", "task/reflection", 3))
"""(column, metric of the demo's evaluation, digits)."""


def table_rows(results: dict[str, dict[int, dict]]) -> list[list[str]]:
    """The printed table: per side one row of mean ± sd over seeds, then one row per seed. ``results[side][seed]``
    is a worker's result (``{"rl_seconds": s, "eval": {metric: value}}``)."""
    from r1.report import format_mean_sd

    rows = []
    for side, by_seed in results.items():
        runs = list(by_seed.values())
        rows.append([side, "mean ± sd"] + [format_mean_sd([r["eval"].get(k) for r in runs], d) for _, k, d in COLUMNS]
                    + [format_mean_sd([r["rl_seconds"] for r in runs], 1)])
    for side, by_seed in results.items():
        for seed, r in by_seed.items():
            rows.append([side, str(seed)] + [format_mean_sd([r["eval"].get(k)], d) for _, k, d in COLUMNS]
                        + [f"{r['rl_seconds']:.1f}"])
    return rows


def print_table(rows: list[list[str]]) -> None:
    head = ["side", "seed"] + [c for c, _, _ in COLUMNS] + ["RL seconds"]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    for row in [head, *rows]:
        print("  ".join(str(x).ljust(w) if i < 2 else str(x).rjust(w) for i, (x, w) in enumerate(zip(row, widths))))


def run_one(side: str, seed: int, steps: int | None, threads: int, model_dir: str, work: Path) -> dict:
    cmd = [sys.executable, __file__, "--worker", side, "--seed", str(seed), "--threads", str(threads),
           "--model-dir", model_dir, "--work", str(work)] + (["--steps", str(steps)] if steps is not None else [])
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
    t = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    res = _result(f"{side} seed {seed}", proc.returncode, proc.stdout + proc.stderr)
    m = res["eval"]
    print(f"  {side} seed {seed}: accuracy {m['accuracy']:.3f}, length {m['response_length/mean']:.1f}, "
          f"reflection {m.get('task/reflection', 0.0):.3f}, RL {res['rl_seconds']:.1f}s "
          f"({time.perf_counter() - t:.0f}s with loading and evaluation, load {res['load_1min']:.2f})", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2", help="comma list of seeds (run.seed of the demo) for both sides")
    ap.add_argument("--steps", type=int, help="RL steps (default: the demo's grpo.run.steps)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads on both sides")
    ap.add_argument("--base-seed", type=int, help="one base model for every seed: the demo's with this run.seed "
                    "(default: each seed's own, as r1 demo run.seed=N makes it)")
    ap.add_argument("--cache-dir", help="where the base models are cached (default: the demo's run.cache_dir)")
    ap.add_argument("--out", help="write the results here (JSON)")
    ap.add_argument("--work-dir", help="keep the runs here (default: a temporary folder, removed at the end)")
    ap.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--model-dir", help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"--seeds must be a comma list of integers, got {args.seeds!r}") from None
    if not seeds or (args.steps is not None and args.steps < 1) or args.threads < 1:
        raise SystemExit("--seeds needs at least one seed; --steps and --threads must be >= 1")
    try:
        import trl
    except ImportError:
        print("TRL is not installed: skipping the demo's r1 vs TRL benchmark (pip install -e '.[bench]').")
        return
    import torch

    cfg = demo_config(seeds[0], args.threads, args.steps)
    g = cfg.grpo
    print(f"trl {trl.__version__}, torch {torch.__version__}, threads {args.threads}, load {os.getloadavg()[0]:.2f}")
    print(f"the demo's RL stage: {g.run.steps} steps of {g.grpo.prompts_per_step} x {g.grpo.samples_per_prompt} "
          f"completions (<= {g.rollout.max_new_tokens} tokens, temperature {g.rollout.temperature}), "
          f"lr {g.optim.lr:g}; evaluated on {cfg.eval.num_prompts} held-out problems x {cfg.eval.samples_per_prompt} "
          "samples")
    results: dict[str, dict[int, dict]] = {side: {} for side in SIDES}
    bases = {}
    with tempfile.TemporaryDirectory(prefix="demo_vs_trl_") as tmp:
        root = Path(args.work_dir or tmp)
        for k, seed in enumerate(seeds):
            base_seed = seed if args.base_seed is None else args.base_seed
            if base_seed not in bases:
                bases[base_seed] = ensure_base(base_seed, args.threads, root, args.cache_dir)
            for side in (SIDES if k % 2 == 0 else SIDES[::-1]):
                work = root / f"{side}_s{seed}"
                work.mkdir(parents=True, exist_ok=True)
                results[side][seed] = run_one(side, seed, args.steps, args.threads, bases[base_seed], work)
    print()
    print_table(table_rows(results))
    if args.out:
        Path(args.out).write_text(json.dumps({"steps": g.run.steps, "threads": args.threads, "bases": bases,
                                              "results": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
