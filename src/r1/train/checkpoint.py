"""Checkpoints: an HF model directory + ``trainer_state.pt`` (optimizer, scheduler, RNG, step, data position).

Layout under a run directory::

    checkpoints/step_000010/   config.json, model.safetensors, tokenizer files, trainer_state.pt
    checkpoints/latest         text file naming the newest complete checkpoint

A checkpoint is written to a temporary folder and renamed, and ``latest`` is updated last, so a run killed while
saving still resumes from the previous checkpoint.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from r1.errors import R1Error
from r1.models import save as save_model


def rng_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: Path, step: int, model, tokenizer, state: dict[str, Any], keep: int = 2) -> Path:
    """Write ``checkpoints/step_<step>`` atomically, point ``latest`` at it, prune older ones beyond ``keep``."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:06d}"
    tmp = root / f".tmp_step_{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(model, tokenizer, tmp)
    torch.save(state, tmp / "trainer_state.pt")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    (root / "latest.tmp").write_text(final.name + "\n")
    (root / "latest.tmp").rename(root / "latest")
    if keep > 0:
        steps = sorted(p for p in root.glob("step_*") if p.is_dir())
        for old in steps[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path:
    """The newest complete checkpoint of a run, or R1Error saying why there is none."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise R1Error(f"--resume: run directory not found: {run_dir}")
    marker = run_dir / "checkpoints" / "latest"
    if not marker.is_file():
        raise R1Error(f"--resume: {run_dir} has no checkpoint yet (no checkpoints/latest); start a new run instead")
    ckpt = run_dir / "checkpoints" / marker.read_text().strip()
    if not (ckpt / "trainer_state.pt").is_file():
        raise R1Error(f"--resume: checkpoint {ckpt} is incomplete (no trainer_state.pt)")
    return ckpt


def load_trainer_state(ckpt: Path) -> dict[str, Any]:
    return torch.load(Path(ckpt) / "trainer_state.pt", map_location="cpu", weights_only=False)


def trainer_state(step: int, optimizer, scheduler, sampler, **extra: Any) -> dict[str, Any]:
    """What a trainer checkpoints besides the model: optimizer, scheduler, RNGs, data position, and ``extra``."""
    return {
        "step": step,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng_state(),
        "data": sampler.state_dict(),
        **extra,
    }


def restore_trainer_state(ckpt: Path, optimizer, scheduler, sampler) -> dict[str, Any]:
    """Load ``trainer_state.pt`` into the optimizer, scheduler, global RNGs and data sampler; returns the state
    (for the step and any trainer-specific extras)."""
    state = load_trainer_state(ckpt)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    sampler.load_state_dict(state["data"])
    return state
