"""``r1 demo``: R1-Zero's "self-evolution" in miniature, on a laptop CPU, with no downloads.

Stages (artifacts on disk under ``runs/<name>/``):

1. **pretrain** a tiny base model on the addition corpus (direct answers, often wrong; step-by-step traces, usually
   right; a few traces with reflection) — or reuse the cached one whose config hash matches
   (``<cache_dir>/base-<hash>``);
2. **evaluate** the base model on held-out problems (pass@1 over k samples; accuracy, response length, reflection
   rate, mode shares) → ``eval_base.jsonl``;
3. **R1-Zero GRPO** with the accuracy + format rewards → ``grpo/`` (metrics, held-out curves, checkpoints);
4. **evaluate** the trained model the same way → ``eval_final.jsonl``;
5. write ``summary.json``, print the before/after table, and build ``report.html`` (``r1 report``).

The paper's Figures 2/3 (accuracy and response length rising during RL) and the reflection rate are the curves in
the report. Left out: anything that needs a checkpoint from a hub.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from pathlib import Path

import torch

from r1.config import DemoConfig, save_config, validate
from r1.errors import R1Error
from r1.models import load as load_model
from r1.pipeline.stages import TRAIN_IRRELEVANT, config_key
from r1.generate import sampling_params
from r1.rollout import build_engine
from r1.runs import clear_run_dir, console, make_progress
from r1.tasks import build_task
from r1.train.grpo import train_grpo
from r1.train.quick_eval import quick_eval
from r1.train.sft import train_sft

def pretrain_key(cfg) -> str:
    """A hash of everything that determines the pretrained model (the one ``r1 pipeline`` gives a cached pretrain
    stage with the same config, so the demo and pipelines share one base model)."""
    d = config_key(cfg, TRAIN_IRRELEVANT)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def ensure_base_model(cfg: DemoConfig) -> tuple[Path, float, bool]:
    """Path of the (possibly cached) pretrained base model, seconds spent pretraining, and whether it was cached."""
    p = copy.deepcopy(cfg.pretrain)
    p.run.seed = cfg.run.seed
    p.run.threads = cfg.run.threads
    p.run.progress = cfg.run.progress
    key = pretrain_key(p)
    cache = Path(cfg.run.cache_dir) / f"base-{key}"
    if (cache / "DONE").is_file():
        console.print(f"[bold]pretrain[/]: reusing the cached base model {cache} (config hash {key})")
        return cache, 0.0, True
    console.print(f"[bold]pretrain[/]: training the base model ({p.run.steps} steps) → {cache}")
    p.run.out_dir, p.run.name, p.run.overwrite = str(cache.parent), cache.name, True
    t0 = time.perf_counter()
    train_sft(p)
    seconds = time.perf_counter() - t0
    (cache / "DONE").write_text(json.dumps({"seconds": seconds, "key": key}) + "\n")
    return cache, seconds, False


def evaluate_model(model_path: Path | str, cfg: DemoConfig, label: str, out: Path) -> dict:
    """Held-out evaluation of ``model_path``; writes one JSON line per completion to ``out``."""
    g = cfg.grpo
    task = build_task(g.task.name, g.task.data, **g.task.params)
    samples = task.load(cfg.eval.split)[: cfg.eval.num_prompts]
    if len(samples) < cfg.eval.num_prompts:
        console.print(f"[yellow]note[/]: split {cfg.eval.split!r} has only {len(samples)} problems")
    model, tok = load_model(str(model_path))
    model.eval()
    engine = build_engine(g.rollout.engine, model, tok)
    # the demo's own temperature and top-p, no top-k and no stop strings; the length is training's
    sampling = sampling_params(g.rollout, temperature=cfg.eval.temperature, top_p=cfg.eval.top_p, top_k=0, stop=[])
    with make_progress(cfg.run.progress) as progress:
        metrics, records = quick_eval(
            engine, tok, task, samples, g.task.template, sampling, k=cfg.eval.samples_per_prompt,
            seed=cfg.run.seed + 1, progress=progress,
        )
    with out.open("w") as f:
        for r in records:
            f.write(json.dumps({"model": label, **r}) + "\n")
    metrics["eval_prompts"] = len(samples)
    return metrics


def run_demo(cfg: DemoConfig) -> Path:
    """Run the whole demo; returns its run directory."""
    validate(cfg)  # the whole config (pretrain, grpo and eval sections), before anything is written or moved
    t_start = time.perf_counter()
    if cfg.run.threads > 0:
        torch.set_num_threads(cfg.run.threads)
    run_dir = Path(cfg.run.out_dir) / cfg.run.name
    if run_dir.exists():
        if not (run_dir / "demo_config.yaml").is_file() and any(run_dir.iterdir()):
            raise R1Error(f"{run_dir} exists and is not a demo run directory; pick another run.name")
        clear_run_dir(run_dir)  # an earlier demo is moved aside, never deleted
    run_dir.mkdir(parents=True)
    save_config(cfg, run_dir / "demo_config.yaml")

    base, pretrain_seconds, cached = ensure_base_model(cfg)

    console.rule("[bold]evaluate the base model")
    base_m = evaluate_model(base, cfg, "base", run_dir / "eval_base.jsonl")
    console.print(_metrics_line("base", base_m))

    console.rule("[bold]R1-Zero GRPO")
    g = copy.deepcopy(cfg.grpo)
    g.model.path = str(base)
    g.run.out_dir, g.run.name, g.run.overwrite = str(run_dir), "grpo", True
    g.run.seed, g.run.threads, g.run.progress = cfg.run.seed, cfg.run.threads, cfg.run.progress
    t0 = time.perf_counter()
    grpo_dir = train_grpo(g)
    rl_seconds = time.perf_counter() - t0

    console.rule("[bold]evaluate the trained model")
    final_m = evaluate_model(grpo_dir, cfg, "final", run_dir / "eval_final.jsonl")
    console.print(_metrics_line("final", final_m))

    summary = {
        "base_accuracy": base_m["accuracy"],
        "final_accuracy": final_m["accuracy"],
        "base_mean_length": base_m["response_length/mean"],
        "final_mean_length": final_m["response_length/mean"],
        "base_reflection_rate": base_m.get("task/reflection", 0.0),
        "final_reflection_rate": final_m.get("task/reflection", 0.0),
        "eval_prompts": base_m["eval_prompts"],
        "eval_samples_per_prompt": cfg.eval.samples_per_prompt,
        "eval_temperature": cfg.eval.temperature,
        "eval_top_p": cfg.eval.top_p,
        "base": base_m,
        "final": final_m,
        "base_model": str(base),
        "pretrain_cached": cached,
        "pretrain_seconds": pretrain_seconds,
        "rl_seconds": rl_seconds,
        "rl_steps": g.run.steps,
    }
    summary["wall_seconds"] = time.perf_counter() - t_start
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print_summary(summary)

    from r1.report import make_report

    report = make_report(run_dir)
    summary["wall_seconds"] = time.perf_counter() - t_start
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    console.print(f"report: {report}")
    console.print(f"demo finished in {summary['wall_seconds']:.0f}s; run directory: {run_dir}")
    return run_dir


def _metrics_line(label: str, m: dict) -> str:
    return (
        f"{label}: accuracy {m['accuracy']:.3f} | mean length {m['response_length/mean']:.1f} | "
        f"reflection rate {m.get('task/reflection', 0.0):.3f} | truncated {m['truncated_share']:.3f}"
    )


def print_summary(s: dict) -> None:
    from rich.table import Table

    t = Table(title=f"R1-Zero in miniature: {s['eval_prompts']} held-out problems × {s['eval_samples_per_prompt']} samples")
    t.add_column("")
    t.add_column("base", justify="right")
    t.add_column("after RL", justify="right")
    t.add_column("change", justify="right")
    rows = [
        ("accuracy (pass@1)", "base_accuracy", "final_accuracy", lambda a, b: f"{100 * (b - a):+.1f} pts"),
        ("mean response length", "base_mean_length", "final_mean_length",
         lambda a, b: f"{100 * (b - a) / a:+.0f}%" if a else "n/a"),
        ("reflection rate", "base_reflection_rate", "final_reflection_rate", lambda a, b: f"{100 * (b - a):+.1f} pts"),
    ]
    for name, ka, kb, change in rows:
        a, b = s[ka], s[kb]
        t.add_row(name, f"{a:.3f}", f"{b:.3f}", change(a, b))
    console.print(t)
    console.print(
        f"time: pretrain {s['pretrain_seconds']:.0f}s{' (cached)' if s['pretrain_cached'] else ''}, "
        f"RL {s['rl_seconds']:.0f}s, total {s['wall_seconds']:.0f}s"
    )
