"""``r1 eval`` and ``r1 grade``: sample → grade → metrics → report, with DeepSeek-R1's protocol.

``evaluate(cfg)`` (R1 report, arXiv 2501.12948 section 3.1): for each benchmark, sample k completions per problem
with a rollout engine (temperature 0.6, top-p 0.95 by default), then grade them with the task's grader and report
pass@1 (mean over k) ± standard error, unbiased pass@k, cons@k, mean length and the share truncated
(``r1.eval.metrics``). ``grade_file(...)`` runs the same grading and reporting on completions made elsewhere.

Run directory ``<run.out_dir>/<run.name>/``::

    config.yaml            resolved config (+ git_sha.txt)
    results.json           every benchmark's metrics (r1.eval.report)
    results.md             the table that is printed
    <benchmark>/completions.jsonl   raw samples: id, index, completion, num_tokens, finish_reason (append-only)
    <benchmark>/samples.jsonl       graded: id, index, answer, score, num_tokens, finish_reason, completion
    <benchmark>/sampling.json       what the samples were drawn with (model, sampling, template, k, task, data, ...)

**Resume.** Sampling (:func:`r1.generate.generate`) appends each batch's completions to ``completions.jsonl`` as
soon as the batch is done. A re-run reads the file back and samples only problems that do not yet have k
completions (a torn last line from a killed run is dropped). Problems are cut into fixed batches of
``eval.prompts_per_batch`` and each batch draws from a generator seeded with ``(run.seed, benchmark, batch number)``,
so the samples do not depend on where a run was interrupted (raising a benchmark's ``limit`` re-samples a last
batch that was cut short with fewer rows, so those problems get other, equally valid, draws). A re-run whose
sampling settings differ from ``sampling.json`` is an error (``run.overwrite=true`` starts over). Grading always
re-runs over all samples (it is fast and cached).

Left out: data-parallel sampling over ranks and vLLM (an engine name away once ``r1.rollout`` has them).
"""

from __future__ import annotations

import json
import time
import zlib
from pathlib import Path
from typing import Any

from r1.config import BenchmarkConfig, EvalConfig, validate
from r1.errors import R1Error
from r1.eval.grade import grade_benchmark, read_completions
from r1.eval.report import results_header, write_results, write_samples
from r1.generate import generate, read_done, sampling_params


def _benchmark_name(b: BenchmarkConfig) -> str:
    return b.name or b.task


def _validate(cfg: EvalConfig) -> None:
    if not cfg.benchmarks:
        raise R1Error("benchmarks is empty: list at least one, e.g. benchmarks=[{task: math500, limit: 20}]")
    names = [_benchmark_name(b) for b in cfg.benchmarks]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise R1Error(f"benchmark names must be unique, repeated: {', '.join(dup)} (set benchmarks.N.name)")
    for n in names:
        if not n or "/" in n or n.startswith("."):
            raise R1Error(f"bad benchmark name {n!r}: it names a folder")
    if cfg.eval.samples_per_problem < 1:
        raise R1Error("eval.samples_per_problem must be >= 1")
    if cfg.eval.prompts_per_batch < 1:
        raise R1Error("eval.prompts_per_batch must be >= 1")
    if any(k < 1 for k in cfg.eval.pass_k):
        raise R1Error(f"eval.pass_k must hold positive integers, got {list(cfg.eval.pass_k)}")
    if cfg.rollout.max_new_tokens < 1:
        raise R1Error("rollout.max_new_tokens must be >= 1")
    for b in cfg.benchmarks:
        if b.limit < 0:
            raise R1Error(f"benchmark {_benchmark_name(b)!r}: limit must be >= 0")


def _load_benchmark(b: BenchmarkConfig, reflection_words: list[str] | None = None):
    from r1.tasks import build_task

    task = build_task(b.task, b.data, reflection_words=reflection_words, **b.params)
    samples = task.load(b.split)
    if b.limit:
        samples = samples[: b.limit]
    return task, samples


def _data_location(task, b: BenchmarkConfig) -> str | None:
    """The problems file behind a benchmark, for the report (tasks spell ``data_path`` with or without a split)."""
    fn = getattr(task, "data_path", None)
    if fn is None:
        return b.data
    try:
        try:
            path = fn(b.split)
        except TypeError:
            path = fn()
        return str(Path(path).resolve())
    except R1Error:
        return b.data


def _rollout_summary(cfg: EvalConfig) -> dict[str, Any]:
    """The model and sampling settings every benchmark of a run shares."""
    r = cfg.rollout
    return {
        "model": cfg.model.path,
        "dtype": cfg.model.dtype,
        "engine": r.engine,
        "temperature": r.temperature,
        "top_p": r.top_p,
        "top_k": r.top_k,
        "max_new_tokens": r.max_new_tokens,
        "stop": list(r.stop),
        "template": cfg.eval.template,
        "samples_per_problem": cfg.eval.samples_per_problem,
        "prompts_per_batch": cfg.eval.prompts_per_batch,
        "seed": cfg.run.seed,
    }


def _sampling_key(cfg: EvalConfig, b: BenchmarkConfig, task) -> dict[str, Any]:
    """What a benchmark's samples depend on; a resumed run must match it."""
    return {
        **_rollout_summary(cfg),
        "task": b.task,
        "task_version": getattr(task, "version", None),
        "data": _data_location(task, b),
        "split": b.split,
        "instruction": b.instruction,
        "params": dict(b.params),
    }


class _Sampler:
    """The model, tokenizer, engine and sampling settings, loaded on first use (a fully sampled run never loads the
    model)."""

    def __init__(self, cfg: EvalConfig):
        self.cfg = cfg
        self.engine = self.tok = self.sampling = None

    def load(self) -> None:
        if self.engine is not None:
            return
        import torch

        from r1.models import load as load_model
        from r1.models import resolve_device, resolve_dtype
        from r1.rollout import build_engine

        c = self.cfg
        if c.run.threads > 0:
            torch.set_num_threads(c.run.threads)
        device, dtype = resolve_device(c.model.device), resolve_dtype(c.model.dtype)
        self.model, self.tok = load_model(c.model.path, device=device, dtype=dtype, seed=c.run.seed)
        self.model.eval()
        self.model.config.use_cache = True
        self.engine = build_engine(c.rollout.engine, self.model, self.tok)
        self.sampling = sampling_params(c.rollout)


def _batch_seed(seed: int, bench: str, batch: int) -> int:
    return zlib.crc32(f"{seed}:{bench}:{batch}".encode())


def _prepare_run_dir(cfg: EvalConfig) -> Path:
    from r1.runs import clear_run_dir, write_run_metadata

    run_dir = Path(cfg.run.out_dir) / cfg.run.name
    if cfg.run.overwrite:
        clear_run_dir(run_dir)  # an earlier run's samples are moved aside, never deleted
    run_dir.mkdir(parents=True, exist_ok=True)

    write_run_metadata(run_dir, cfg)
    return run_dir


def _check_resume(bench_dir: Path, key: dict[str, Any]) -> None:
    """Refuse to mix samples: an existing ``sampling.json`` must match ``key``."""
    from r1.runs import check_same_sampling

    check_same_sampling(bench_dir, key)


def _scores(cfg: EvalConfig, task, samples, rows) -> dict[str, float]:
    """``eval.scores``: each reward's mean over the graded completions, as ``score/<label>``."""
    if not cfg.eval.scores:
        return {}
    from r1.rewards import CompositeReward

    reward = CompositeReward([(r.name, r.weight, r.params, r.label) for r in cfg.eval.scores], task)
    by_id = {s.id: s for s in samples}
    values: dict[str, list[float]] = {name: [] for name in reward.names}
    for row in rows:
        _, parts = reward(row.completion, by_id[row.id])
        for name, v in parts.items():
            if v is not None:
                values[name].append(v)
    return {f"score/{k}": sum(v) / len(v) for k, v in values.items() if v}


def evaluate(cfg: EvalConfig) -> dict[str, Any]:
    """Run ``r1 eval``: sample, grade, write the run directory (module docstring), print the table.

    Returns the ``results.json`` dict.
    """
    from r1.runs import console, make_progress

    validate(cfg)  # the whole config, before anything is loaded, written or moved
    _validate(cfg)
    # fail on bad tasks/files before loading a model
    loaded = [(b, *_load_benchmark(b, cfg.eval.reflection_words)) for b in cfg.benchmarks]
    keys = {_benchmark_name(b): _sampling_key(cfg, b, task) for b, task, _ in loaded}
    if not cfg.run.overwrite:
        for name, key in keys.items():
            _check_resume(Path(cfg.run.out_dir) / cfg.run.name / name, key)
    run_dir = _prepare_run_dir(cfg)
    sampler = _Sampler(cfg)
    k = cfg.eval.samples_per_problem
    results = results_header(_rollout_summary(cfg))
    t_start = time.perf_counter()
    with make_progress(cfg.run.progress) as progress:
        for b, task, samples in loaded:
            name = _benchmark_name(b)
            bench_dir = run_dir / name
            key = keys[name]
            bench_dir.mkdir(parents=True, exist_ok=True)
            (bench_dir / "sampling.json").write_text(json.dumps(key, indent=2) + "\n")
            comp_path = bench_dir / "completions.jsonl"
            done = read_done(comp_path, k)
            t0 = time.perf_counter()
            if any(s.id not in done for s in samples):
                sampler.load()
            outs = generate(
                sampler.engine,
                sampler.tok,
                task,
                samples,
                sampler.sampling,
                k=k,
                template=cfg.eval.template,
                prompts_per_batch=cfg.eval.prompts_per_batch,
                instruction=b.instruction,
                batch_seed=lambda bi: _batch_seed(cfg.run.seed, name, bi),
                done=done,
                out=comp_path,
                progress=progress,
                label=f"sample {name}",
            )
            sample_s = time.perf_counter() - t0
            sampled = {s.id: recs for s, recs in zip(samples, outs)}
            t0 = time.perf_counter()
            rows, metrics = grade_benchmark(
                task,
                samples,
                sampled,
                pass_ks=list(cfg.eval.pass_k) or None,
                workers=cfg.eval.grade_workers,
                progress=progress,
                label=f"grade {name}",
            )
            metrics.update(_scores(cfg, task, samples, rows))
            metrics["time/sample_s"] = round(sample_s, 2)
            metrics["time/grade_s"] = round(time.perf_counter() - t0, 2)
            write_samples(bench_dir / "samples.jsonl", rows, include_completion=True)
            results["benchmarks"][name] = {
                "task": b.task,
                "version": getattr(task, "version", None),
                "data": key["data"],
                "split": b.split,
                "metrics": metrics,
            }
            write_results(run_dir, results)  # a partial report survives an interrupted multi-benchmark run
    results["time_s"] = round(time.perf_counter() - t_start, 2)
    table = write_results(run_dir, results)
    console.print(table, soft_wrap=True)
    names = ", ".join(f"{_benchmark_name(b)}/samples.jsonl" for b in cfg.benchmarks)
    console.print(f"wrote {run_dir}/: results.json, results.md, {names}", soft_wrap=True)
    return results


def grade_file(
    task_name: str,
    completions: str | Path,
    *,
    data: str | None = None,
    out_dir: str | Path | None = None,
    split: str | None = None,
    pass_ks: list[int] | None = None,
    workers: int = 0,
    params: dict[str, Any] | None = None,
    progress: bool = True,
    only_given: bool = False,
) -> dict[str, Any]:
    """Run ``r1 grade``: grade completions made elsewhere with a task's grader, write the same outputs as ``r1 eval``.

    Args:
        task_name: a registered task (``math`` or ``gpqa`` read any file given as ``data``).
        completions: JSONL of ``{"id": ..., "completion": ...}`` lines (see :func:`r1.eval.grade.read_completions`).
        data: the problems file (default: the task's own file).
        out_dir: where ``results.json``, ``results.md`` and ``samples.jsonl`` go (default:
            ``runs/grade/<completions file stem>``).
        split: split of the task (default: the benchmark's evaluation split, ``test``).
        pass_ks: ks of pass@k (default 1, 2, 4, ... up to the samples per problem).
        workers: grading processes (0 = in this process).
        params: task constructor parameters.
        only_given: metrics over the problems that have completions only (default: the others count as wrong).
    Returns:
        The ``results.json`` dict.
    """
    from r1.tasks import build_task
    from r1.tasks.benchmarks import BENCHMARKS
    from r1.runs import console, make_progress

    task = build_task(task_name, data, **(params or {}))
    split = split or BENCHMARKS.get(task_name, "test")
    samples = task.load(split)
    comp = read_completions(completions, samples, task_name)
    out = Path(out_dir) if out_dir is not None else Path("runs") / "grade" / Path(completions).name.split(".")[0]
    t0 = time.perf_counter()
    with make_progress(progress) as bar:
        rows, metrics = grade_benchmark(task, samples, comp, pass_ks=pass_ks, workers=workers, progress=bar,
                                        label=f"grade {task_name}", only_given=only_given)
    metrics["time/grade_s"] = round(time.perf_counter() - t0, 2)
    write_samples(out / "samples.jsonl", rows, include_completion=False)
    results = results_header({"completions": str(Path(completions).resolve())})
    b = BenchmarkConfig(task=task_name, data=data, split=split)
    results["benchmarks"][task_name] = {
        "task": task_name,
        "version": getattr(task, "version", None),
        "data": _data_location(task, b),
        "split": split,
        "metrics": metrics,
    }
    table = write_results(out, results)
    console.print(table, soft_wrap=True)  # with a line on missing problems and unequal samples, if any
    console.print(f"wrote {out}/: results.json, results.md, samples.jsonl", soft_wrap=True)
    return results


__all__ = ["evaluate", "grade_file"]
