"""In-training evaluation: sample completions for held-out prompts and grade them with the task's grader.

Used by the GRPO trainer every ``eval.every`` steps and by ``r1 demo`` before and after RL. It reports accuracy
(mean grade over all completions = pass@1 averaged over k samples), mean response length, the share truncated, and
the task's own per-completion statistics (``task/<name>``, e.g. the reflection rate). The full evaluation harness
with pass@k, cons@k and standard errors is ``r1 eval``; this is the cheap version that runs inside training.
Sampling and grading are :func:`r1.generate.generate` with the task's grader and one random stream.
"""

from __future__ import annotations

from typing import Any

import torch

from r1.generate import generate
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
    outs = generate(
        engine, tokenizer, task, samples, sampling, k=k, template=template, prompts_per_batch=batch_prompts,
        generator=gen, grade=task.grade, progress=progress, label="eval",
    )
    records: list[dict[str, Any]] = []
    for s, recs in zip(samples, outs):
        for j, r in enumerate(recs):
            rec = {
                "id": s.id,
                "index": j,
                "question": task.question(s),
                "answer": s.answer,
                "completion": r["completion"],
                "score": r["score"],
                "length": r["num_tokens"],
                "finish_reason": r["finish_reason"],
            }
            rec.update({f"task/{n}": v for n, v in task.completion_metrics(r["completion"]).items()})
            records.append(rec)
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
