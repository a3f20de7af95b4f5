"""In-training evaluation: sample completions for held-out prompts and grade them with the task's grader.

Used by the GRPO trainer every ``eval.every`` steps and by ``r1 demo`` before and after RL. It reports accuracy
(mean grade over all completions = pass@1 averaged over k samples), mean response length, the share truncated, and
the task's own per-completion statistics (``task/<name>``, e.g. the reflection rate). The full evaluation harness
with pass@k, cons@k and standard errors is ``r1 eval``; this is the cheap version that runs inside training.
"""

from __future__ import annotations

from typing import Any

import torch

from r1.data.templates import render_prompt
from r1.rollout import SamplingParams


def quick_eval(
    engine,
    tokenizer,
    task,
    samples: list,
    template: str,
    sampling: SamplingParams,
    k: int = 1,
    seed: int = 0,
    batch_prompts: int = 64,
    progress=None,
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Grade ``k`` completions for each sample. Returns ``(metrics, records)``; one record per completion.

    Uses its own generator seeded with ``seed`` so an evaluation never disturbs the training RNG streams.
    """
    gen = torch.Generator().manual_seed(seed)
    records: list[dict[str, Any]] = []
    add_special = template != "chat"
    bar = progress.add_task("eval", total=len(samples), info="") if progress is not None else None
    for start in range(0, len(samples), batch_prompts):
        chunk = samples[start : start + batch_prompts]
        prompts = [
            tokenizer(render_prompt(template, task.question(s), tokenizer), add_special_tokens=add_special).input_ids
            for s in chunk
        ]
        outs = engine.generate(prompts, k, sampling, generator=gen)
        for s, comps in zip(chunk, outs):
            for j, cp in enumerate(comps):
                text = tokenizer.decode(cp.token_ids, skip_special_tokens=True)
                rec = {
                    "id": s.id,
                    "index": j,
                    "question": task.question(s),
                    "answer": s.answer,
                    "completion": text,
                    "score": float(task.grade(text, s)),
                    "length": len(cp.token_ids),
                    "finish_reason": cp.finish_reason,
                }
                rec.update({f"task/{n}": v for n, v in task.completion_metrics(text).items()})
                records.append(rec)
        if bar is not None:
            progress.update(bar, advance=len(chunk))
    return summarize(records), records


def summarize(records: list[dict[str, Any]]) -> dict[str, float]:
    n = max(len(records), 1)
    out = {
        "accuracy": sum(r["score"] for r in records) / n,
        "response_length/mean": sum(r["length"] for r in records) / n,
        "truncated_share": sum(r["finish_reason"] == "length" for r in records) / n,
        "num_completions": float(len(records)),
    }
    keys = sorted({k for r in records for k in r if k.startswith("task/")})
    for k in keys:
        out[k] = sum(r.get(k, 0.0) for r in records) / n
    return out
