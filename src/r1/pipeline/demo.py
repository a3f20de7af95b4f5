"""``r1 demo``: R1-Zero's "self-evolution" in miniature, on a laptop CPU, with no downloads.

The demo is a pipeline (``r1/pipeline/r1_zero_demo.yaml``, run by :mod:`r1.pipeline.runner` like any other) whose
settings are :class:`r1.config.DemoConfig` (``r1/pipeline/demo.yaml`` + ``-c`` + overrides). Stages, with artifacts
under ``runs/<name>/``:

1. **base**: pretrain a tiny base model on the addition corpus (direct answers, often wrong; step-by-step traces,
   usually right; a few traces with reflection), cached under ``<cache_dir>/base-<hash>`` by its config hash;
2. **eval_base**: ``r1 eval`` of the base model on held-out problems (pass@1 over k samples; response length,
   reflection rate, mode shares);
3. **grpo**: R1-Zero GRPO with the accuracy + format rewards (metrics, held-out curves, checkpoints);
4. **eval_final**: the trained model evaluated the same way;

then ``eval_base.jsonl`` / ``eval_final.jsonl`` (every graded completion with its question), ``summary.json``, the
before/after table, and ``report.html`` (``r1 report``). A rerun with the same settings skips every finished stage
(a changed setting reruns its stage and what follows; an interrupted stage continues).

The paper's Figures 2/3 (accuracy and response length rising during RL) and the reflection rate are the curves in
the report. Left out: anything that needs a checkpoint from a hub.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import torch

from r1.config import DemoConfig, save_config, validate
from r1.errors import R1Error
from r1.pipeline.runner import execute, holds_other_files, load_pipeline
from r1.pipeline.stages import TRAIN_IRRELEVANT, config_key
from r1.runs import clear_run_dir, console
from r1.tasks import build_task
from r1.train.metrics import curve_peak, read_metrics
from r1.train.quick_eval import summarize

R1_ZERO_DEMO = Path(__file__).parent / "r1_zero_demo.yaml"
"""The demo's stages (``configs/pipeline/r1_zero_demo.yaml`` is a link to it)."""


def _points(a: float, b: float) -> str:
    return f"{100 * (b - a):+.1f} pts"


def _percent(a: float, b: float) -> str:
    return f"{100 * (b - a) / a:+.0f}%" if a else "n/a"


TABLE_METRICS = (
    ("accuracy (pass@1)", "accuracy", "accuracy", _points),
    ("mean response length", "mean_length", "response_length/mean", _percent),
    ("reflection rate", "reflection_rate", "task/reflection", _points),
)
"""The before/after table's rows: (label, ``summary.json`` name, eval metric, change). ``summary.json`` holds
``base_<name>``, ``final_<name>`` and, from the GRPO run's held-out curve ``eval/<metric>``, ``peak_<name>`` and
``peak_<name>_step`` (the curve's highest value, its earliest step; null without a curve)."""


def curve_peaks(rows: list[dict]) -> dict:
    """``peak_<name>`` and ``peak_<name>_step`` of each table metric's held-out curve in ``rows`` (the GRPO run's
    ``metrics.jsonl``; the step-0 evaluation counts, so a curve that only falls peaks at step 0)."""
    out = {}
    for _, name, metric, _ in TABLE_METRICS:
        peak = curve_peak(rows, f"eval/{metric}")
        out[f"peak_{name}"], out[f"peak_{name}_step"] = peak if peak else (None, None)
    return out


def pretrain_key(cfg) -> str:
    """A hash of everything that determines the pretrained model (the folder name of the cached base model)."""
    d = config_key(cfg, TRAIN_IRRELEVANT)
    return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def pipeline_settings(cfg: DemoConfig) -> dict:
    """``cfg`` as a mapping merged over ``r1_zero_demo.yaml``: each stage's whole config, the run-wide seed, threads
    and progress in every stage, and the evaluation built from ``cfg.eval`` and the GRPO task."""
    common = {"seed": cfg.run.seed, "threads": cfg.run.threads, "progress": cfg.run.progress}
    pretrain = dataclasses.asdict(cfg.pretrain)
    grpo = dataclasses.asdict(cfg.grpo)
    del grpo["model"]["path"]  # the base model, wired in the pipeline file
    for section in (pretrain, grpo):
        section["run"].update(common)
    g, e = cfg.grpo, cfg.eval
    evaluation = {
        "benchmarks": [{"task": g.task.name, "data": g.task.data, "split": e.split, "limit": e.num_prompts,
                        "params": dict(g.task.params)}],
        "rollout": {"engine": g.rollout.engine, "temperature": e.temperature, "top_p": e.top_p, "top_k": 0,
                    "max_new_tokens": g.rollout.max_new_tokens, "stop": []},
        "eval": {"samples_per_problem": e.samples_per_prompt, "template": g.task.template},
    }
    return {
        "name": cfg.run.name, "out_dir": cfg.run.out_dir, "cache_dir": cfg.run.cache_dir, **common,
        # each section is the whole config: no file below it (a dict the user replaced, e.g. the corpus mix, is not
        # merged with the file's)
        "stages": {"base": {"config": [], "set": pretrain}, "grpo": {"config": [], "set": grpo},
                   "eval_base": {"set": evaluation}, "eval_final": {"set": evaluation}},
    }


def eval_records(stage, label: str, out: Path) -> dict:
    """The eval stage's graded completions as the demo's records (with question and gold answer), written to
    ``out``; returns their metrics (accuracy, mean length, truncated share, the task's own rates)."""
    ecfg = stage.cfg
    b = ecfg.benchmarks[0]
    task = build_task(b.task, b.data, **b.params)
    problems = {s.id: s for s in task.load(b.split)}
    name = b.name or b.task
    rows = [json.loads(line) for line in (stage.dir / name / "samples.jsonl").read_text().splitlines() if line]
    records = []
    for r in rows:
        s = problems[r["id"]]
        rec = {"id": r["id"], "index": r["index"], "question": task.question(s), "answer": s.answer,
               "completion": r["completion"], "score": r["score"], "length": r["num_tokens"],
               "finish_reason": r["finish_reason"]}
        rec.update({f"task/{n}": v for n, v in task.completion_metrics(r["completion"]).items()})
        records.append(rec)
    with out.open("w") as f:
        for rec in records:
            f.write(json.dumps({"model": label, **rec}) + "\n")
    metrics = summarize(records)
    metrics["eval_prompts"] = len({r["id"] for r in records})
    return metrics


def run_demo(cfg: DemoConfig) -> Path:
    """Run the whole demo (or continue it); returns its run directory."""
    validate(cfg)  # the whole config (pretrain, grpo and eval sections), before anything is written or moved
    t_start = time.perf_counter()
    if cfg.run.threads > 0:
        torch.set_num_threads(cfg.run.threads)
    pipe = load_pipeline(R1_ZERO_DEMO, merge=pipeline_settings(cfg))
    run_dir = pipe.run_dir
    if holds_other_files(run_dir):
        if not (run_dir / "demo_config.yaml").is_file():
            raise R1Error(f"{run_dir} exists and is not a demo run directory; pick another run.name")
        clear_run_dir(run_dir)  # a demo from before the pipeline runner: moved aside, never deleted
    pipe_summary = execute(pipe)
    save_config(cfg, run_dir / "demo_config.yaml")
    stages = {s.name: s for s in pipe.stages}
    recs = {s["name"]: s for s in pipe_summary["stages"]}
    base_m = eval_records(stages["eval_base"], "base", run_dir / "eval_base.jsonl")
    final_m = eval_records(stages["eval_final"], "final", run_dir / "eval_final.jsonl")
    cached = bool(recs["base"].get("cached"))
    summary = {}
    for _, name, metric, _ in TABLE_METRICS:
        summary[f"base_{name}"], summary[f"final_{name}"] = base_m.get(metric, 0.0), final_m.get(metric, 0.0)
    summary.update(curve_peaks(read_metrics(stages["grpo"].dir)))
    summary |= {
        "eval_prompts": base_m["eval_prompts"],
        "eval_samples_per_prompt": cfg.eval.samples_per_prompt,
        "eval_temperature": cfg.eval.temperature,
        "eval_top_p": cfg.eval.top_p,
        "base": base_m,
        "final": final_m,
        "base_model": str(stages["base"].dir),
        "pretrain_cached": cached,
        "pretrain_seconds": 0.0 if cached else recs["base"].get("seconds", 0.0),
        "rl_seconds": recs["grpo"].get("seconds", 0.0),
        "rl_steps": cfg.grpo.run.steps,
        "stages": pipe_summary["stages"],
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


def print_summary(s: dict) -> None:
    from rich.table import Table

    t = Table(title=f"R1-Zero in miniature: {s['eval_prompts']} held-out problems × {s['eval_samples_per_prompt']} samples")
    t.add_column("")
    t.add_column("base", justify="right")
    t.add_column("after RL", justify="right")
    t.add_column("change", justify="right")
    t.add_column("peak during RL (step)", justify="right")
    for label, name, _, change in TABLE_METRICS:
        a, b, peak = s[f"base_{name}"], s[f"final_{name}"], s.get(f"peak_{name}")
        at_peak = "n/a" if peak is None else f"{peak:.3f} ({s[f'peak_{name}_step']})"
        t.add_row(label, f"{a:.3f}", f"{b:.3f}", change(a, b), at_peak)
    console.print(t)
    console.print(
        f"time: pretrain {s['pretrain_seconds']:.0f}s{' (cached)' if s['pretrain_cached'] else ''}, "
        f"RL {s['rl_seconds']:.0f}s, total {s['wall_seconds']:.0f}s"
    )
