"""Per-step metrics: one JSON line per step in ``metrics.jsonl`` and TensorBoard scalars.

On resume, lines after the checkpoint's step are dropped (they belong to steps that will be re-run) and TensorBoard
events after it are purged.

NaN and inf are written as ``null`` (JSON has neither; a strict parser rejects Python's ``NaN``) and left out of
TensorBoard. A training step whose loss or gradient norm was not finite says so in numbers: ``nonfinite_steps`` (its
optimizer steps skipped, see ``r1.train.optim.NonFiniteGuard``) and ``nonfinite_steps_total`` (over the run), so a
``null`` loss is never mistaken for a missing value.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class MetricsLogger:
    def __init__(self, run_dir: Path, resume_step: int | None = None, tensorboard: bool = True):
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

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        row = {"step": step, **{k: _clean(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()
        if self._tb is not None:
            for k, v in metrics.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    self._tb.add_scalar(k, v, step)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.flush()
            self._tb.close()


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def curve_peak(rows: list[dict[str, Any]], key: str) -> tuple[float, int] | None:
    """The highest value of the curve ``key`` over ``rows`` (``metrics.jsonl`` lines) and the step it was first
    reached (a tie goes to the earliest step); None when no row has a number for ``key``.

    Example: rows with ``eval/accuracy`` 0.3 at step 0, 0.8 at step 10, 0.8 at step 20, 0.7 at step 30 -> (0.8, 10).
    """
    points = [(r["step"], v) for r in rows if isinstance(v := r.get(key), (int, float)) and not isinstance(v, bool)]
    if not points:
        return None
    step, value = min(points, key=lambda p: (-p[1], p[0]))
    return value, step
