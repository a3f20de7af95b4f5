"""Per-step metrics: one JSON line per step in ``metrics.jsonl``, TensorBoard scalars, and (``run.wandb=true``) a
Weights & Biases run.

On resume, lines after the checkpoint's step are dropped (they belong to steps that will be re-run) and TensorBoard
events after it are purged.

NaN and inf are written as ``null`` (JSON has neither; a strict parser rejects Python's ``NaN``) and left out of
TensorBoard. A training step whose loss or gradient norm was not finite says so in numbers: ``nonfinite_steps`` (its
optimizer steps skipped, see ``r1.train.optim.NonFiniteGuard``) and ``nonfinite_steps_total`` (over the run), so a
``null`` loss is never mistaken for a missing value.

W&B (optional, off by default): the run is ``run.name`` in project ``run.wandb_project`` with the resolved config,
its files under ``<run dir>/wandb``, logged offline (``wandb sync <run dir>/wandb/offline-run-*`` uploads it) unless
the user's ``WANDB_MODE`` says otherwise; each step's finite numbers are logged with ``step=``. A resumed run is a new
W&B run of the same name, from the checkpoint's step on. ``wandb`` is imported only when switched on.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from r1.errors import R1Error

#: How to get the optional package (the config check says the same before anything is written).
WANDB_INSTALL = "pip install 'r1[wandb]' (or pip install wandb)"


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _numbers(metrics: dict[str, Any]) -> dict[str, float | int]:
    """The finite numbers of a step's metrics (what TensorBoard and W&B get; bools and text are left out)."""
    return {
        k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    }


def open_wandb(run_dir: Path, cfg: Any):
    """A W&B run for the trainer config ``cfg`` (its ``run`` section names project and run), offline unless
    ``WANDB_MODE`` is set (wandb's own variable, read as wandb would). One-line R1Error without the package or when
    ``wandb.init`` fails."""
    try:
        import wandb
    except ImportError:
        raise R1Error(f"run.wandb=true needs the wandb package: {WANDB_INSTALL}") from None
    from omegaconf import OmegaConf

    try:
        return wandb.init(
            project=cfg.run.wandb_project,
            name=cfg.run.name,
            dir=str(run_dir),
            mode=os.environ.get("WANDB_MODE") or "offline",
            config=OmegaConf.to_container(OmegaConf.structured(cfg)),
        )
    except Exception as e:  # noqa: BLE001 - wandb raises its own errors (bad mode, no login when online, ...)
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise R1Error(f"wandb.init failed ({type(e).__name__}: {first})") from None


class MetricsLogger:
    """Writes each step's metrics to ``metrics.jsonl``, TensorBoard (``tb/``) and, when the trainer config ``config``
    has ``run.wandb`` on, a W&B run (:func:`open_wandb`)."""

    def __init__(self, run_dir: Path, resume_step: int | None = None, tensorboard: bool = True, config: Any = None):
        self.path = Path(run_dir) / "metrics.jsonl"
        if resume_step is not None and self.path.exists():
            kept = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= resume_step
            ]
            self.path.write_text("".join(line + "\n" for line in kept))
        elif resume_step is None:
            self.path.write_text("")
        self._file = self.path.open("a")
        self._tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            purge = resume_step + 1 if resume_step is not None else None
            self._tb = SummaryWriter(log_dir=str(Path(run_dir) / "tb"), purge_step=purge)
        run = getattr(config, "run", None)
        try:
            self._wandb = open_wandb(Path(run_dir), config) if getattr(run, "wandb", False) else None
        except BaseException:  # a failed W&B start leaves no open file or TensorBoard writer behind
            self._wandb = None
            self.close()
            raise

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        row = {"step": step, **{k: _clean(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        numbers = _numbers(metrics)
        if self._tb is not None:
            for k, v in numbers.items():
                self._tb.add_scalar(k, v, step)
        if self._wandb is not None:
            self._wandb.log(numbers, step=step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def has_step(row: dict[str, Any]) -> bool:
    """Whether a ``metrics.jsonl`` row has a number for ``step`` (rows without one, e.g. written by another tool or
    cut short, are skipped by readers of curves)."""
    step = row.get("step")
    return isinstance(step, (int, float)) and not isinstance(step, bool)


def curve_peak(rows: list[dict[str, Any]], key: str) -> tuple[float, int] | None:
    """The highest value of the curve ``key`` over ``rows`` (``metrics.jsonl`` lines) and the step it was first
    reached (a tie goes to the earliest step); None when no row has a number for ``key``. Rows without a ``step``
    are skipped.

    Example: rows with ``eval/accuracy`` 0.3 at step 0, 0.8 at step 10, 0.8 at step 20, 0.7 at step 30 -> (0.8, 10).
    """
    points = [(r["step"], v) for r in rows
              if has_step(r) and isinstance(v := r.get(key), (int, float)) and not isinstance(v, bool)]
    if not points:
        return None
    step, value = min(points, key=lambda p: (-p[1], p[0]))
    return value, step
