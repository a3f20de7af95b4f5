"""``r1 generate``: sample k completions per prompt, grade them, filter them, write SFT data (rejection sampling).

DeepSeek-R1 (arXiv 2501.12948, section 2.3.3) collects its reasoning SFT data by rejection sampling from a
checkpoint: k samples per prompt, graded, the correct and readable ones kept. ``run_generate(cfg)`` is that stage:
the task's prompts go through :func:`r1.generate.generate` (the template and sampling code of training and
``r1 eval``), each completion is graded by the task's grader, and the filters (``r1.generate_filters``) run in order.

Run directory ``<run.out_dir>/<run.name>/``::

    config.yaml      resolved config (+ git_sha.txt)
    sampling.json    what the samples were drawn with; a resumed run must match it
    samples.jsonl    every sample, graded: id, index, completion, num_tokens, finish_reason, score (append-only)
    data.jsonl       the kept samples, SFT-ready: prompt (rendered with the template), completion, id, index, score,
                     num_tokens, finish_reason, filters (each filter's verdict), source_model
    summary.json     samples, kept, and per filter: in, kept, dropped (in = kept + dropped)

Resume: a re-run samples only prompts without k samples in ``samples.jsonl`` (batch seeds make the result the same
as an uninterrupted run); filtering always re-runs over all samples. Left out: sharding over ``run.workers``.
"""

from __future__ import annotations

import json
import time
import zlib
from pathlib import Path
from typing import Any

from r1.config import GenerateConfig, validate
from r1.errors import R1Error
from r1.generate import generate, prompt_text, read_done, sampling_params


def _sampling_key(cfg: GenerateConfig) -> dict[str, Any]:
    r, g = cfg.rollout, cfg.generate
    return {
        "model": cfg.model.path, "dtype": cfg.model.dtype, "engine": r.engine, "temperature": r.temperature,
        "top_p": r.top_p, "top_k": r.top_k, "max_new_tokens": r.max_new_tokens, "stop": list(r.stop),
        "task": cfg.task.name, "data": cfg.task.data, "params": dict(cfg.task.params), "template": cfg.task.template,
        "split": g.split, "instruction": g.instruction, "samples_per_prompt": g.samples_per_prompt,
        "prompts_per_batch": g.prompts_per_batch, "seed": cfg.run.seed,
    }


def _load_prompts(cfg: GenerateConfig):
    from r1.tasks import build_task

    task = build_task(cfg.task.name, cfg.task.data, **cfg.task.params)
    samples = task.load(cfg.generate.split)
    if cfg.generate.num_prompts:
        samples = samples[: cfg.generate.num_prompts]
    if not samples:
        raise R1Error(f"task {cfg.task.name!r} split {cfg.generate.split!r} has no prompts")
    return task, samples


def _summary_table(summary: dict[str, Any]):
    from rich.table import Table

    t = Table(title=f"r1 generate: {summary['kept']} of {summary['samples']} samples kept")
    for col in ("filter", "in", "kept", "dropped"):
        t.add_column(col, justify="left" if col == "filter" else "right")
    for c in summary["filters"]:
        t.add_row(c["name"], str(c["in"]), str(c["kept"]), str(c["dropped"]))
    return t


def run_generate(cfg: GenerateConfig) -> dict[str, Any]:
    """Run ``r1 generate`` (module docstring). Bad input (config, model path, task, filters) fails with one line
    before anything is written. Returns the ``summary.json`` dict."""
    from r1.runs import clear_run_dir, console, make_progress, write_run_metadata

    validate(cfg)  # the whole config, with the machine's files, before anything is loaded or written
    from r1.generate_filters import apply_filters

    # a bad filter value (dedupe mode=fuzzy) fails here, on no records, before anything is written
    apply_filters([], [(f.name, dict(f.params)) for f in cfg.filters])
    task, samples = _load_prompts(cfg)
    run_dir = Path(cfg.run.out_dir) / cfg.run.name
    key = _sampling_key(cfg)
    if not cfg.run.overwrite:
        from r1.runs import check_same_sampling

        check_same_sampling(run_dir, key)
    k = cfg.generate.samples_per_prompt

    import torch

    from r1.models import load as load_model
    from r1.models import resolve_device, resolve_dtype
    from r1.rollout import build_engine

    if cfg.run.threads > 0:
        torch.set_num_threads(cfg.run.threads)
    model, tok = load_model(cfg.model.path, device=resolve_device(cfg.model.device),
                            dtype=resolve_dtype(cfg.model.dtype), seed=cfg.run.seed)
    model.eval()
    model.config.use_cache = True
    engine = build_engine(cfg.rollout.engine, model, tok)
    prompts = {s.id: prompt_text(tok, cfg.task.template, task, s, cfg.generate.instruction)
               for s in samples}  # a template the tokenizer cannot render fails here, before the run directory

    if cfg.run.overwrite:
        clear_run_dir(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_run_metadata(run_dir, cfg)
    (run_dir / "sampling.json").write_text(json.dumps(key, indent=2) + "\n")
    samples_path = run_dir / "samples.jsonl"
    done = read_done(samples_path, k)
    t0 = time.perf_counter()
    with make_progress(cfg.run.progress) as progress:
        outs = generate(
            engine, tok, task, samples, sampling_params(cfg.rollout), k=k, template=cfg.task.template,
            prompts_per_batch=cfg.generate.prompts_per_batch, instruction=cfg.generate.instruction,
            batch_seed=lambda b: zlib.crc32(f"{cfg.run.seed}:generate:{b}".encode()), grade=task.grade,
            done=done, out=samples_path, progress=progress, label="generate",
        )
    seconds = time.perf_counter() - t0
    new_tokens = sum(r["num_tokens"] for s, recs in zip(samples, outs) if s.id not in done for r in recs)
    records = [
        {"id": s.id, "index": j, "problem": s.problem, "prompt": prompts[s.id], "completion": r["completion"],
         "num_tokens": r["num_tokens"], "finish_reason": r["finish_reason"], "score": r.get("score", 0.0)}
        for s, recs in zip(samples, outs) for j, r in enumerate(recs)
    ]
    kept, counts = apply_filters(records, [(f.name, dict(f.params)) for f in cfg.filters])
    with open(run_dir / "data.jsonl", "w", encoding="utf-8") as f:
        for r in kept:
            row = {k_: v for k_, v in r.items() if k_ != "problem"}
            f.write(json.dumps({**row, "source_model": cfg.model.path}, ensure_ascii=False) + "\n")
    summary = {
        "samples": len(records), "kept": len(kept), "prompts": len(samples),
        "prompts_with_data": len({r["id"] for r in kept}), "filters": counts,
        "sample_s": round(seconds, 2), "tokens_per_s": round(new_tokens / seconds, 1) if seconds > 0 else None,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    console.print(_summary_table(summary), soft_wrap=True)
    console.print(f"sampled {new_tokens} new tokens in {seconds:.1f}s ({summary['tokens_per_s']} tokens/s); "
                  f"wrote {run_dir}/: data.jsonl ({len(kept)} records), samples.jsonl, summary.json", soft_wrap=True)
    return summary


__all__ = ["run_generate"]
