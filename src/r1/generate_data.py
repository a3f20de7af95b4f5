"""``r1 generate``: sample k completions per prompt, grade them, filter them, write SFT data (rejection sampling).

DeepSeek-R1 (arXiv 2501.12948, section 2.3.3) collects its reasoning SFT data by rejection sampling from a
checkpoint: k samples per prompt, graded, the correct and readable ones kept. ``run_generate(cfg)`` is that stage:
the task's prompts go through :func:`r1.generate.generate` (the template and sampling code of training and
``r1 eval``), each completion is graded by the task's grader, and the filters (``r1.generate_filters``) run in order.

Run directory ``<run.out_dir>/<run.name>/``::

    config.yaml      resolved config (+ git_sha.txt)
    sampling.json    what the samples were drawn with; a resumed run must match it
    samples.jsonl    every sample, graded: id, index, completion, num_tokens, finish_reason, score (appended a batch at
                     a time, in prompt order at the end)
    data.jsonl       the kept samples, SFT-ready: prompt (rendered with the template), completion, id, index, score,
                     num_tokens, finish_reason, filters (each filter's verdict), source_model
    summary.json     samples, kept, and per filter: in, kept, dropped (in = kept + dropped; each filter sees what the
                     one before kept, so samples = kept + the drops); sampling seconds, tokens/s, workers

Prompts are cut into fixed batches of ``generate.prompts_per_batch``; batch ``b`` draws from its own generator seeded
from ``run.seed`` and ``b``, so a sample does not depend on which process drew it, nor on where a killed run stopped.
``run.workers > 1`` shares the batches out among that many worker processes (:class:`r1.workers.ChildProcess`, each
with its own copy of the model and ``run.threads / workers`` torch threads), one batch at a time to whichever is free;
the parent alone writes the run directory, so the files are those of a one-process run.

Resume: a re-run samples only prompts without k samples in ``samples.jsonl`` (each batch is appended whole and
flushed, so a kill loses at most the batches in flight); at the end ``samples.jsonl`` is rewritten in prompt order
and filtering re-runs over all samples. Left out: sharding across machines, and GPUs per worker.
"""

from __future__ import annotations

import json
import os
import sys
import time
import zlib
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

from r1.config import GenerateConfig, validate
from r1.errors import R1Error
from r1.generate import generate, prompt_text, read_done, sampling_params
from r1.workers import ChildDied, ChildProcess, serve, wait_readable


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
    if not samples:
        raise R1Error(f"task {cfg.task.name!r} split {cfg.generate.split!r} has no prompts")
    n = cfg.generate.num_prompts
    if n > len(samples):
        raise R1Error(f"generate.num_prompts={n} but task {cfg.task.name!r} split {cfg.generate.split!r} has "
                      f"{len(samples)} prompts (0 = all of them)")
    return task, samples[:n] if n else samples


class _Sampler:
    """A loaded model, engine and task that sample one batch of prompts at a time: in this process
    (``run.workers=1``) or in a worker process (:func:`_worker_main`)."""

    def __init__(self, cfg: GenerateConfig, task, model, tok):
        from r1.rollout import build_engine

        model.eval()
        model.config.use_cache = True
        self.cfg, self.task, self.tok = cfg, task, tok
        self.engine = build_engine(cfg.rollout.engine, model, tok)
        self.params = sampling_params(cfg.rollout)

    @classmethod
    def load(cls, cfg: GenerateConfig, threads: int, task=None) -> "_Sampler":
        import torch

        from r1.models import load as load_model
        from r1.models import resolve_device, resolve_dtype

        if threads > 0:
            torch.set_num_threads(threads)
        if task is None:
            from r1.tasks import build_task

            task = build_task(cfg.task.name, cfg.task.data, **cfg.task.params)
        model, tok = load_model(cfg.model.path, device=resolve_device(cfg.model.device),
                                dtype=resolve_dtype(cfg.model.dtype), seed=cfg.run.seed)
        return cls(cfg, task, model, tok)

    def batch(self, b: int, samples: list) -> list[list[dict[str, Any]]]:
        """k graded records for each of ``samples`` (batch ``b``'s prompts not sampled before)."""
        g = self.cfg.generate
        seed = _batch_seed(self.cfg.run.seed, b)
        return generate(self.engine, self.tok, self.task, samples, self.params, k=g.samples_per_prompt,
                        template=self.cfg.task.template, prompts_per_batch=len(samples), instruction=g.instruction,
                        batch_seed=lambda _: seed, grade=self.task.grade)


def _batch_seed(seed: int, b: int) -> int:
    return zlib.crc32(f"{seed}:generate:{b}".encode())


def _worker_main() -> None:
    """A worker process's entry: :func:`_worker_handler`'s answers to its frames until stdin closes."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent too, and it kills its workers
    serve(_worker_handler())


def _worker_handler():
    """A worker's frame handler: ``("load", cfg, threads)`` then ``("batch", b, samples)`` frames in, ``("ok",
    result)`` or ``("error", one line)`` out. Anything printed goes to stderr: stdout carries the frames."""
    state: dict[str, _Sampler] = {}

    def handle(job):
        try:
            with redirect_stdout(sys.stderr):
                if job[0] == "load":
                    state["sampler"] = _Sampler.load(job[1], job[2])
                    return "ok", None
                return "ok", state["sampler"].batch(job[1], job[2])
        except Exception as e:  # noqa: BLE001 - reported to the parent as one line
            return "error", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"

    return handle


def _answer(child: ChildProcess):
    try:
        status, value = child.receive()
    except ChildDied as e:
        raise R1Error(f"a generate worker died (exit code {e.returncode}); see its stderr above") from None
    if status != "ok":
        raise R1Error(f"a generate worker failed: {value}")
    return value


def _sample_in_workers(cfg: GenerateConfig, todo: list, threads: int, on_batch) -> None:
    """Sample the batches ``todo`` (``(b, samples)`` pairs) in ``run.workers`` processes, one batch at a time to
    whichever is free; ``on_batch(samples, records)`` runs here as each batch returns."""
    children = [ChildProcess("r1.generate_data:_worker_main") for _ in range(min(cfg.run.workers, len(todo)))]
    finished = False
    try:
        for child in children:
            child.send(("load", cfg, threads))
        for child in children:
            _answer(child)
        queue, busy = todo[::-1], {}
        for child in children:
            if queue:
                b, batch = queue.pop()
                child.send(("batch", b, batch))
                busy[child] = batch
        while busy:
            for child in wait_readable(list(busy)):
                batch = busy.pop(child)
                on_batch(batch, _answer(child))
                if queue:
                    b, nxt = queue.pop()
                    child.send(("batch", b, nxt))
                    busy[child] = nxt
        finished = True
    finally:
        for child in children:
            child.close() if finished else child.kill()  # a batch still in flight is lost either way


def _rewrite_in_order(path: Path, ids: list[str], done: dict[str, list[dict]]) -> None:
    """Rewrite ``samples.jsonl`` with this run's prompts in prompt order (workers append batches as they finish), then
    any others an earlier run sampled; written to a temporary file and renamed, so a kill here loses nothing."""
    order = ids + [i for i in done if i not in set(ids)]
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for sid in order:
            for j, r in enumerate(done[sid]):
                rec = {"id": sid, "index": j, **{k: v for k, v in r.items() if k not in ("id", "index")}}
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


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
    from r1.generate_rewrite import rewrite_records

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

    # the model loads here whatever run.workers is: a bad model path or template fails before the run directory
    total_threads = cfg.run.threads or torch.get_num_threads()
    workers = cfg.run.workers
    sampler = _Sampler.load(cfg, cfg.run.threads if workers == 1 else 0, task=task)
    tok = sampler.tok
    prompts = {s.id: prompt_text(tok, cfg.task.template, task, s, cfg.generate.instruction) for s in samples}

    if cfg.run.overwrite:
        clear_run_dir(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_run_metadata(run_dir, cfg)
    (run_dir / "sampling.json").write_text(json.dumps(key, indent=2) + "\n")
    samples_path = run_dir / "samples.jsonl"
    done = read_done(samples_path, k)
    ppb = cfg.generate.prompts_per_batch
    todo = [(b, batch) for b, start in enumerate(range(0, len(samples), ppb))
            if (batch := [s for s in samples[start : start + ppb] if s.id not in done])]
    new_tokens, t0 = 0, time.perf_counter()
    with make_progress(cfg.run.progress) as progress, open(samples_path, "a", encoding="utf-8") as f:
        bar = progress.add_task("generate", total=len(samples), info="",
                                completed=len(samples) - sum(len(batch) for _, batch in todo))

        def on_batch(batch, outs):
            nonlocal new_tokens
            for s, recs in zip(batch, outs):
                for j, r in enumerate(recs):
                    f.write(json.dumps({"id": s.id, "index": j, **r}, ensure_ascii=False) + "\n")
                    new_tokens += r["num_tokens"]
                done[s.id] = recs
            f.flush()
            rate = new_tokens / max(time.perf_counter() - t0, 1e-9)
            progress.update(bar, advance=len(batch), info=f"{rate:.0f} tokens/s")

        if workers == 1:
            for b, batch in todo:
                on_batch(batch, sampler.batch(b, batch))
        else:
            del sampler  # each worker holds its own copy
            _sample_in_workers(cfg, todo, max(1, total_threads // workers), on_batch)
    seconds = time.perf_counter() - t0
    _rewrite_in_order(samples_path, [s.id for s in samples], done)
    outs = [done[s.id] for s in samples]
    records = [
        {"id": s.id, "index": j, "problem": s.problem, "prompt": prompts[s.id], "completion": r["completion"],
         "num_tokens": r["num_tokens"], "finish_reason": r["finish_reason"], "score": r.get("score", 0.0)}
        for s, recs in zip(samples, outs) for j, r in enumerate(recs)
    ]
    kept, counts = apply_filters(records, [(f.name, dict(f.params)) for f in cfg.filters])
    kept, counts = rewrite_records(kept, counts, cfg.rewrite)  # R1's readable format; a no-op without a rewrite
    with open(run_dir / "data.jsonl", "w", encoding="utf-8") as f:
        for r in kept:
            row = {k_: v for k_, v in r.items() if k_ != "problem"}
            f.write(json.dumps({**row, "source_model": cfg.model.path}, ensure_ascii=False) + "\n")
    summary = {
        "samples": len(records), "kept": len(kept), "prompts": len(samples),
        "prompts_with_data": len({r["id"] for r in kept}), "filters": counts,
        "sample_s": round(seconds, 2), "tokens_per_s": round(new_tokens / seconds, 1) if seconds > 0 else None,
        "workers": workers,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    console.print(_summary_table(summary), soft_wrap=True)
    console.print(f"sampled {new_tokens} new tokens in {seconds:.1f}s ({summary['tokens_per_s']} tokens/s); "
                  f"wrote {run_dir}/: data.jsonl ({len(kept)} records), samples.jsonl, summary.json", soft_wrap=True)
    if not kept:
        console.print(_empty_message(summary), soft_wrap=True)
    return summary


def _empty_message(summary: dict[str, Any]) -> str:
    """One line for a run that kept nothing (there are samples and filters): r1 sft cannot train on an empty
    data.jsonl."""
    worst = max(summary["filters"], key=lambda c: c["dropped"])
    return (f"0 records kept; data.jsonl is empty, so r1 sft has nothing to train on: filter {worst['name']!r} "
            f"dropped {worst['dropped']} of {worst['in']} samples (relax it, or choose filters with "
            "filters=[...])")


__all__ = ["run_generate"]
