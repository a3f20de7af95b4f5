"""Run machinery shared by training, evaluation and the pipeline: the run directory, the console and progress
(rich's bar on a terminal, plain lines in a log file: :func:`make_progress`), seeding, the git SHA and the run's
metadata.

A run directory is ``<out_dir>/<name>``. A fresh run never deletes an earlier one: :func:`check_run_dir` refuses
(before any model is loaded) unless ``overwrite``, and :func:`clear_run_dir` then moves it aside. The one thing
removed outright is what a start that failed before its first step leaves (:func:`left_by_a_failed_start`).
Training-only helpers (mixed precision, the glibc memory switch, phase timing) stay in ``r1.train.common``.
"""

from __future__ import annotations

import math
import random
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from r1.config import save_config
from r1.errors import R1Error

console = Console(highlight=False)
_console = console  # what make_progress shows on unless told otherwise (its parameter is also named console)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


#: What a start that failed before its first step leaves in a run directory (with metrics.jsonl empty, samples/
#: empty, tb/ holding only event files, wandb/ the W&B run opened with run.wandb): such a directory is removed rather
#: than kept or moved aside.
_LEFT_BY_A_FAILED_START = {"config.yaml", "git_sha.txt", "metrics.jsonl", "samples", "tb", "wandb", "demo_config.yaml"}


def left_by_a_failed_start(run_dir: Path) -> bool:
    """True when ``run_dir`` holds nothing but what a failed start leaves (no checkpoint, no metrics line)."""
    for p in Path(run_dir).iterdir():
        if p.name not in _LEFT_BY_A_FAILED_START or p.is_symlink():
            return False
        if p.name == "metrics.jsonl" and (not p.is_file() or _holds_text(p)):
            return False
        if p.name == "samples" and (not p.is_dir() or any(p.iterdir())):
            return False
        if p.name == "tb" and (not p.is_dir() or any(not q.name.startswith("events.") for q in p.iterdir())):
            return False
    return True


def _holds_text(path: Path) -> bool:
    """Whether a file holds anything but whitespace (read a block at a time: a long run's metrics are not loaded)."""
    with open(path, "rb") as f:
        while block := f.read(1 << 16):
            if block.strip():
                return True
    return False


def holds_a_run(run_dir: Path) -> bool:
    """True when ``run_dir`` exists with something in it that a fresh run must not lose."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise R1Error(f"run directory {run_dir} is a file; pick another run.name or run.out_dir")
    return run_dir.is_symlink() or (run_dir.is_dir() and not left_by_a_failed_start(run_dir))


def clear_run_dir(run_dir: Path) -> Path | None:
    """Make way for a fresh run in ``run_dir``: what a failed start left is removed; an earlier run (anything else)
    is moved aside to ``<run_dir>.old-<time>``, never deleted, and one line says where. Returns that path or None."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        return None
    if not holds_a_run(run_dir):
        shutil.rmtree(run_dir)
        return None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = run_dir.with_name(f"{run_dir.name}.old-{stamp}")
    n = 1
    while aside.exists():
        n += 1
        aside = run_dir.with_name(f"{run_dir.name}.old-{stamp}-{n}")
    run_dir.rename(aside)
    console.print(f"moved the earlier run in {run_dir} aside to {aside} (delete it when no longer needed)",
                  soft_wrap=True)
    return aside


def check_run_dir(out_dir: str, name: str, *, overwrite: bool) -> Path:
    """Fail early (before any model is loaded) if a fresh run would replace an earlier run without ``overwrite``."""
    run_dir = Path(out_dir) / name
    if not overwrite and holds_a_run(run_dir):
        raise R1Error(
            f"run directory {run_dir} is not empty; resume it with --resume {run_dir}, pick another run.name, "
            "or pass run.overwrite=true (the earlier run is then moved aside, not deleted)"
        )
    return run_dir


def prepare_run_dir(out_dir: str, name: str, cfg, *, overwrite: bool) -> Path:
    """Create ``<out_dir>/<name>`` for a fresh run and save the resolved config (+ git SHA when available).

    Called once the config is validated and the model and data have loaded, so bad input leaves an earlier run as
    it was; with ``overwrite`` that run is moved aside (:func:`clear_run_dir`), never deleted."""
    run_dir = check_run_dir(out_dir, name, overwrite=overwrite)
    clear_run_dir(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_run_metadata(run_dir, cfg)
    return run_dir


def write_run_metadata(run_dir: Path, cfg) -> None:
    """``config.yaml`` (the resolved config) and ``git_sha.txt`` (when the code is a git checkout)."""
    save_config(cfg, Path(run_dir) / "config.yaml")
    sha = git_sha()
    if sha:
        (Path(run_dir) / "git_sha.txt").write_text(sha + "\n")


def check_same_sampling(out_dir: Path, key: dict) -> None:
    """Refuse to mix samples: an existing ``out_dir/sampling.json`` must match ``key`` (what the samples depend on)."""
    meta = Path(out_dir) / "sampling.json"
    if not meta.is_file():
        return
    import json

    old = json.loads(meta.read_text())
    diff = [k for k in key if old.get(k) != key[k]]
    if diff:
        k = diff[0]
        raise R1Error(
            f"{out_dir} holds samples drawn with {k}={old.get(k)!r}, not {key[k]!r}; use another run.name, "
            f"or run.overwrite=true to discard them"
        )


def git_sha() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, cwd=Path(__file__).parent
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


#: Seconds between two plain progress lines of a task when the console is not a terminal.
PROGRESS_LINE_INTERVAL = 15.0


def make_progress(
    enabled: bool, *, interval: float = PROGRESS_LINE_INTERVAL, console: Console | None = None, get_time=None
) -> Progress:
    """The progress display of a long command: rich's bar on a terminal (or in Jupyter); elsewhere (nohup, CI,
    ``> log.txt``), where the bar draws nothing until the end, a :class:`LineProgress` printing plain lines.
    ``enabled=False`` (``run.progress=false``) shows nothing on either. Callers put a step's key metrics in the task's
    ``info`` field (``progress.update(task, advance=1, info="loss 0.31")``); both displays show it."""
    out = console if console is not None else _console
    if enabled and not (out.is_terminal or out.is_jupyter):
        return LineProgress(console=out, interval=interval, get_time=get_time)
    return Progress(
        # descriptions (run.name) and metrics are shown as they are: "[/]" in a run name is not rich markup
        TextColumn("{task.description}", style="bold", markup=False),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}", markup=False),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=out,
        disable=not enabled,
        transient=False,
        get_time=get_time,
    )


class LineProgress(Progress):
    """A rich ``Progress`` that draws no bar and prints a plain line per task instead: at most one every
    ``interval`` seconds while the task advances, one when it completes, and one on leaving the ``with`` block for a
    task stopped part-way (an error, Ctrl-C) that advanced since its last line::

        grpo 13/20 (65%) | 0:00:15 elapsed | ETA 0:00:35 | 5.00 s/it | reward 0.500 acc 0.250
        grpo 20/20 done in 0:00:50 | 5.00 s/it | reward 0.625 acc 0.375

    The rate and ETA are over this run's steps (a resumed task's earlier steps do not count), not a moving window:
    one step of a real model may take longer than rich's 30 s speed window. Lines are printed from ``update`` and
    ``advance``, so no thread runs beside the command.
    """

    def __init__(self, *, console: Console, interval: float, get_time=None):
        super().__init__(console=console, disable=True, get_time=get_time)
        self.interval = interval
        self._lines: dict = {}  # task id -> [completed when added, time of the last line, completed then, done]

    def add_task(self, description, start=True, total=100.0, completed=0, visible=True, **fields):
        task_id = super().add_task(description, start, total, completed, visible, **fields)
        self._lines[task_id] = [completed, self.get_time(), completed, False]
        return task_id

    def update(self, task_id, **kwargs) -> None:
        super().update(task_id, **kwargs)
        self._maybe_print(task_id)

    def advance(self, task_id, advance=1) -> None:
        super().advance(task_id, advance)
        self._maybe_print(task_id)

    def stop(self) -> None:
        with self._lock:
            for task_id, (_, _, last_completed, done) in self._lines.items():
                task = self._tasks.get(task_id)
                if task is not None and not done and task.completed != last_completed:
                    self._print(task_id)
        super().stop()

    def _maybe_print(self, task_id) -> None:
        with self._lock:
            task, state = self._tasks[task_id], self._lines[task_id]
            if state[3]:
                return
            if task.finished or self.get_time() - state[1] >= self.interval:
                self._print(task_id)

    def _print(self, task_id) -> None:
        task, state = self._tasks[task_id], self._lines[task_id]
        now = self.get_time()
        elapsed = (task.finished_time if task.finished else task.elapsed) or 0.0
        steps = task.completed - state[0]
        rate = steps / elapsed if steps > 0 and elapsed > 0 else None
        total = f"/{task.total:g}" if task.total is not None else ""
        parts = [f"{task.description} {task.completed:g}{total}"]
        if task.finished:
            parts[0] += f" done in {_clock(elapsed)}"
        else:
            if task.total:
                parts[0] += f" ({100 * task.completed / task.total:.0f}%)"
            parts.append(f"{_clock(elapsed)} elapsed")
            if rate and task.total is not None:
                parts.append(f"ETA {_clock(math.ceil(max(task.total - task.completed, 0) / rate))}")
        if rate:
            parts.append(f"{rate:.2f} it/s" if rate >= 1 else f"{1 / rate:.2f} s/it")
        info = str(task.fields.get("info") or "").strip()
        if info:
            parts.append(info)
        state[1:] = [now, task.completed, task.finished]
        # the description and metrics are shown as they are: no rich markup, highlighting or wrapping in a log file
        self.console.print(" | ".join(parts), markup=False, highlight=False, emoji=False, soft_wrap=True)


def _clock(seconds: float) -> str:
    """``H:MM:SS``, as rich's bar shows times."""
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}"
