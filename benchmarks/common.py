"""Shared pieces of the benchmark scripts: the ``bench_sum`` task, the r1 GRPO config, peak RSS.

The task is a raw prompt ``"a+b="`` with two random two-digit numbers; reward 1 if the completion starts with the
right sum (``"57+38="`` → ``"95..."``). It is registered at runtime, so it never enters ``r1.tasks``. A random
model scores ~0 on it; the benchmarks time the machinery, not learning.

Not a package module: the scripts put this folder on ``sys.path`` (``python benchmarks/<script>.py``).
"""

from __future__ import annotations

import random
import resource
import sys
import tempfile
from pathlib import Path

PRESETS = {"tiny": "qwen2-3m", "small": "qwen2-23m"}
"""Benchmark preset name → r1 model preset (``r1.models.PRESETS``)."""

REAL = {"vocab_size": 151_936, "hidden_size": 896, "num_attention_heads": 14, "num_key_value_heads": 2,
        "intermediate_size": 4864, "max_position_embeddings": 32_768}
"""The ``real`` preset: Qwen2.5-0.5B's shape (tied embeddings, as every preset), random init, ``layers`` of its 24
decoder layers (``save_preset``); the byte tokenizer (ids past its 263 decode to nothing, so a random model's
completions run to the length limit)."""

NUM_PROBLEMS = 1024
PROMPTS_PER_STEP = 8
SAMPLES_PER_PROMPT = 8
MAX_NEW_TOKENS = 32
PROMPT_TOKENS = 6
"""Every prompt is ``"ab+cd="``: 6 byte tokens (the byte tokenizer adds no special tokens to it)."""
TEMPERATURE = 1.0
KL_COEF = 0.04
LR = 1e-5


def make_problems(n: int = NUM_PROBLEMS, seed: int = 0) -> list[tuple[str, str]]:
    """``n`` pairs ``(prompt, answer)``, e.g. ``("57+38=", "95")``; deterministic in ``seed``."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        out.append((f"{a}+{b}=", str(a + b)))
    return out


def register_bench_task() -> None:
    """Register ``bench_sum`` in ``r1.tasks.TASKS`` (idempotent)."""
    from r1.data.sample import Sample
    from r1.tasks import TASKS, Task

    class BenchSumTask(Task):
        name = "bench_sum"
        version = "1"
        default_template = "plain"

        def load(self, split: str) -> list[Sample]:
            return [Sample(id=f"{i}", problem=p, answer=a) for i, (p, a) in enumerate(make_problems())]

        def grade(self, completion: str, sample: Sample) -> float:
            return float(completion.startswith(sample.answer))

    try:
        TASKS.register("bench_sum", BenchSumTask)
    except Exception:  # noqa: BLE001 - already registered in this process
        pass


def r1_overrides(model_dir: str, steps: int, threads: int, out_dir: str, engine: str = "native") -> list[str]:
    """Dotted overrides for ``load_config(GRPOConfig, None, ...)``: the setting mirrored on both sides (the shape
    from this module's ``PROMPTS_PER_STEP`` and ``MAX_NEW_TOKENS``, which a ``real`` run sets)."""
    return [
        f"model.path={model_dir}",
        "model.dtype=fp32",
        "model.device=cpu",
        "task.name=bench_sum",
        "task.template=plain",
        f"rollout.engine={engine}",
        f"rollout.temperature={TEMPERATURE}",
        f"rollout.max_new_tokens={MAX_NEW_TOKENS}",
        f"grpo.prompts_per_step={PROMPTS_PER_STEP}",
        f"grpo.samples_per_prompt={SAMPLES_PER_PROMPT}",
        "grpo.mu=1",
        f"grpo.kl_coef={KL_COEF}",
        f"optim.lr={LR}",
        "optim.schedule=constant",
        f"run.steps={steps}",
        f"run.threads={threads}",
        f"run.out_dir={out_dir}",
        "run.name=bench",
        "run.overwrite=true",
        "run.sample_every=0",
        "run.log_every=0",
        "run.progress=false",
    ]


def build_r1_trainer(
    model_dir: str, steps: int, threads: int, engine: str = "native", out: str | None = None, extra: tuple = ()
):
    """An ``r1`` ``GRPOTrainer`` on ``bench_sum`` with its run directory in ``out`` (default: a temporary folder);
    ``extra``: more dotted overrides (e.g. ``run.workers=2`` inside data-parallel workers)."""
    from r1.config import GRPOConfig, load_config
    from r1.train.grpo import GRPOTrainer

    register_bench_task()
    out = out or tempfile.mkdtemp(prefix="r1_bench_")
    cfg = load_config(GRPOConfig, None, r1_overrides(model_dir, steps, threads, out, engine) + list(extra))
    return GRPOTrainer(cfg)


def save_preset(preset: str, path: str | Path, seed: int = 0, layers: int = 2) -> str:
    """Build the r1 preset once and save it as an HF directory both sides load (``real``: ``REAL`` with
    ``layers`` decoder layers)."""
    from r1.models import build_preset, save

    over = {**REAL, "num_hidden_layers": layers} if preset == "real" else {}
    model, tok = build_preset(PRESETS.get(preset, "qwen2-1m" if preset == "real" else preset), seed=seed, **over)
    save(model, tok, path)
    return str(path)


def limit_memory(gib: float) -> None:
    """Cap this process's address space (``RLIMIT_AS``) at ``gib`` GiB, 0 = no cap: on a shared machine a run that
    would outgrow it fails with a MemoryError instead of pushing the machine into the OOM killer. (Address space
    exceeds resident memory by the libraries' and threads' mappings, ~1-2 GiB for torch.)"""
    if gib > 0:
        cap = int(gib * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def peak_rss_mib() -> float:
    """This process's peak resident set size in MiB (``ru_maxrss`` is KiB on Linux, bytes on macOS)."""
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / (1024 * 1024) if sys.platform == "darwin" else r / 1024


def median(xs: list[float]) -> float:
    s = sorted(xs)
    n = len(s)
    if n == 0:
        return float("nan")
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])
