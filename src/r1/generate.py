"""The generate engine: a task's prompts → k sampled completions each → grades, batched, resumable, with progress.

DeepSeek-R1 (arXiv 2501.12948) samples from a model in three places besides RL: evaluation (section 3.1: k samples
per problem, pass@1 over k), rejection sampling and distillation data (section 2.3.3). Each renders a task's
questions with a prompt template, samples k completions per prompt with a rollout engine and grades them with the
task's grader. This module is that loop, written once:

- :func:`tokenize_prompt`: a sample's question rendered with a template and tokenised. The GRPO trainer's prompts
  come from it too, so training, held-out eval and ``r1 eval`` show the model the same tokens.
- :func:`sampling_params`: the engine's :class:`~r1.rollout.SamplingParams` from a ``RolloutConfig``.
- :func:`generate`: the batched loop. Optionally it grades each completion as its batch is done, and appends each
  batch to a JSONL file that a re-run resumes from (:func:`read_done`: problems with all k samples are skipped).

Users: training's held-out eval (``r1.train.quick_eval``), ``r1 eval`` (``r1.eval.runner``) and the GRPO trainer's
prompts. Left out: evaluation's grading with an answer cache, worker processes and cons@k (``r1.eval.grade``, a
separate pass so ``r1 grade`` shares it), and data-parallel sampling over ranks.
"""

from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from r1.data.sample import Sample
from r1.data.templates import render_prompt
from r1.errors import R1Error

if TYPE_CHECKING:  # torch is imported where it is used, so ``r1 eval`` on a sampled run never loads it
    import torch

    from r1.config import RolloutConfig
    from r1.rollout import Engine, SamplingParams


def prompt_text(tokenizer, template: str, task, sample: Sample, instruction: str = "") -> str:
    """``sample``'s prompt as text: ``task.question(sample)`` (+ a blank line and ``instruction``, if given) rendered
    with the named template (``r1.data.templates``)."""
    question = task.question(sample)
    if instruction:
        question = f"{question}\n\n{instruction}"
    return render_prompt(template, question, tokenizer)


def tokenize_prompt(tokenizer, template: str, task, sample: Sample, instruction: str = "") -> list[int]:
    """Token ids of :func:`prompt_text`.

    A chat template's text already holds its BOS, so the tokenizer adds special tokens for the other templates only.
    Raises R1Error if the prompt has no tokens.
    """
    text = prompt_text(tokenizer, template, task, sample, instruction)
    ids = tokenizer(text, add_special_tokens=template != "chat").input_ids
    if not ids:
        raise R1Error(f"sample {sample.id!r} renders to an empty prompt")
    return ids


def sampling_params(rollout: RolloutConfig, **overrides) -> SamplingParams:
    """The engine's sampling settings from a ``RolloutConfig``; ``overrides`` replace fields (e.g. a held-out eval's
    own ``temperature`` and ``top_p``)."""
    from r1.rollout import SamplingParams

    params = SamplingParams(
        temperature=rollout.temperature,
        top_p=rollout.top_p,
        top_k=rollout.top_k,
        max_new_tokens=rollout.max_new_tokens,
        stop=list(rollout.stop),
    )
    return replace(params, **overrides)


def generate(
    engine: Engine | None,
    tokenizer,
    task,
    samples: list[Sample],
    sampling: SamplingParams | None,
    *,
    k: int,
    template: str,
    prompts_per_batch: int,
    instruction: str = "",
    generator: torch.Generator | None = None,
    batch_seed: Callable[[int], int] | None = None,
    grade: Callable[[str, Sample], float] | None = None,
    done: dict[str, list[dict]] | None = None,
    out: str | Path | None = None,
    progress=None,
    label: str = "sample",
) -> list[list[dict[str, Any]]]:
    """Sample ``k`` completions for each of ``samples`` (and grade them, if ``grade`` is given).

    Problems are cut into fixed batches of ``prompts_per_batch``; a batch's problems already in ``done`` are not
    sampled again (a batch with none left is skipped, and the engine, tokenizer and sampling are then never used).

    Args:
        engine: a rollout engine (``r1.rollout``); ``tokenizer`` turns prompts into ids and completions into text.
        task: gives each sample's question (:func:`tokenize_prompt`).
        sampling: the engine's settings (:func:`sampling_params`).
        k: completions per problem.
        template, instruction: the prompt (:func:`tokenize_prompt`).
        generator: one random stream for all batches (training's held-out eval: one seed per evaluation).
        batch_seed: instead, batch ``b`` draws from a fresh stream seeded with ``batch_seed(b)``, so the samples do not
            depend on where an interrupted run stopped (``r1 eval``). Exactly one of the two is given.
        grade: ``grade(completion, sample) -> float`` (the task's grader); each record then holds its ``score``.
        done: id → k records of problems sampled before (:func:`read_done`).
        out: a JSONL file each batch's records are appended to (``{"id", "index", **record}`` lines), flushed per
            batch, so a killed run loses at most the batch in flight.
        progress: a rich Progress (or None) for a bar named ``label`` over the problems.
    Returns:
        For each of ``samples``, its k records ``{"completion": str, "num_tokens": int, "finish_reason": str}``
        (+ ``"score"``), from ``done`` for problems sampled before.
    """
    import torch

    if (generator is None) == (batch_seed is None):
        raise ValueError("generate: give exactly one of generator and batch_seed")
    done = dict(done or {})
    todo = sum(1 for s in samples if s.id not in done)
    bar = None
    if progress is not None:
        bar = progress.add_task(label, total=len(samples), info="", completed=len(samples) - todo)
    with open(out, "a", encoding="utf-8") if out is not None else nullcontext() as f:
        for b, start in enumerate(range(0, len(samples), prompts_per_batch)):
            batch = [s for s in samples[start : start + prompts_per_batch] if s.id not in done]
            if not batch:
                continue
            prompts = [tokenize_prompt(tokenizer, template, task, s, instruction) for s in batch]
            gen = generator if batch_seed is None else torch.Generator(device="cpu").manual_seed(batch_seed(b))
            with torch.no_grad():
                outs = engine.generate(prompts, k, sampling, generator=gen)
            for s, comps in zip(batch, outs):
                recs = []
                for c in comps:
                    text = tokenizer.decode(c.token_ids, skip_special_tokens=True)
                    rec = {"completion": text, "num_tokens": len(c.token_ids), "finish_reason": c.finish_reason}
                    if grade is not None:
                        rec["score"] = float(grade(text, s))
                    recs.append(rec)
                if f is not None:
                    for j, rec in enumerate(recs):
                        f.write(json.dumps({"id": s.id, "index": j, **rec}, ensure_ascii=False) + "\n")
                done[s.id] = recs
            if f is not None:
                f.flush()
            if bar is not None:
                progress.advance(bar, len(batch))
    return [done[s.id] for s in samples]


def read_done(path: str | Path, k: int) -> dict[str, list[dict]]:
    """The problems a JSONL file of :func:`generate` (``out``) holds all ``k`` records of: id → records.

    The file is rewritten with those problems only: a torn last line (a killed run) is dropped, and so is a problem
    with fewer than k records (a batch is written whole, but a torn write may leave part of one). A missing file is
    created empty. A malformed line elsewhere is an R1Error.
    """
    path = Path(path)
    sampled: dict[str, list[dict]] = {}
    if path.is_file():
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                if i >= len(lines) - 2:  # the last line, cut off mid-write
                    break
                raise R1Error(f"{path}:{i + 1}: malformed JSON; delete the file or pass run.overwrite=true") from None
            sampled.setdefault(rec["id"], []).append(rec)
    done = {sid: recs[:k] for sid, recs in sampled.items() if len(recs) >= k}
    with open(path, "w", encoding="utf-8") as f:
        for recs in done.values():
            for r in recs:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return done


__all__ = ["generate", "prompt_text", "read_done", "sampling_params", "tokenize_prompt"]
