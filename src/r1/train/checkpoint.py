"""Checkpoints: an HF model directory + ``trainer_state.pt`` (optimizer, scheduler, RNG, step, data position).

Layout under a run directory::

    checkpoints/step_000010/   config.json, model.safetensors, tokenizer files, trainer_state.pt
    checkpoints/latest         text file naming the newest complete checkpoint

A LoRA run's checkpoint holds its adapter instead of the model (``adapter_config.json``,
``adapter_model.safetensors``; ``r1.models.lora``) and, when asked, the merged model in ``merged/``.

A checkpoint is written to a temporary folder, its files and the folder fsynced, and renamed; ``latest`` is
updated last the same way, so a run killed while saving, or a machine that loses power just after, still resumes
from the previous checkpoint. Weights holding NaN/inf are never written (a diverged run stops with an error instead),
so every checkpoint on disk is finite and pruning old ones never removes the last finite one.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any, Callable

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


def check_finite_weights(model, run_dir: Path, step: int) -> None:
    """R1Error when a weight of ``model`` is NaN/inf: such a checkpoint would poison every run resumed from it.

    One ``isfinite`` reduction per tensor and a single host sync, at save time only (not per step)."""
    tensors = [(k, t) for k, t in model.state_dict().items() if t.is_floating_point()]
    if not tensors or bool(torch.stack([torch.isfinite(t).all() for _, t in tensors]).all()):
        return
    bad = [k for k, t in tensors if not bool(torch.isfinite(t).all())]
    marker = Path(run_dir) / "checkpoints" / "latest"
    last = marker.read_text().strip() if marker.is_file() else None
    raise R1Error(
        f"training diverged by step {step}: {len(bad)} weight tensor(s) hold NaN/inf (first: {bad[0]}); refusing to "
        f"save checkpoint step_{step:06d}; "
        + (f"the last finite checkpoint is {marker.parent / last}" if last else "no checkpoint was saved before")
        + "; lower optim.lr"
    )


def _fsync(path: Path) -> None:
    """Flush a file's or a folder's data to disk (a folder: the names in it, e.g. after a rename)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(run_dir: Path, step: int, model, tokenizer, state: dict[str, Any], keep: int = 2,
                    merge: bool = False) -> Path:
    """Write ``checkpoints/step_<step>`` atomically and durably, point ``latest`` at it, prune older ones beyond
    ``keep``. Refuses (R1Error) weights that hold NaN/inf, before anything is written. ``model`` may be a peft
    model: its adapter is saved, and with ``merge`` the merged model too (``r1.models.save``)."""
    check_finite_weights(model, run_dir, step)
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:06d}"
    tmp = root / f".tmp_step_{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    save_model(model, tokenizer, tmp, merge=merge)
    torch.save(state, tmp / "trainer_state.pt")
    # Without fsync a power loss after the rename can leave a "complete" checkpoint whose files are empty: the
    # rename reaches the disk before the data. A handful of files, once per checkpoint.
    for f in sorted(tmp.rglob("*"), reverse=True):  # a sub-folder's files before the sub-folder
        _fsync(f)
    _fsync(tmp)
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    _fsync(root)
    (root / "latest.tmp").write_text(final.name + "\n")
    _fsync(root / "latest.tmp")
    (root / "latest.tmp").rename(root / "latest")
    _fsync(root)
    if keep > 0:
        steps = sorted(p for p in root.glob("step_*") if p.is_dir())
        for old in steps[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoint_unless_skipped(save: Callable[[int], Path], step: int, skipped_in_a_row: int,
                              warn: bool = True, final: bool = False) -> Path | None:
    """``save(step)``, unless the step's last optimizer update was skipped as non-finite (``NonFiniteGuard``): those
    weights just gave a NaN/inf loss or gradient, finite as they may be, and must not become ``latest`` or push a
    good checkpoint out; the previous checkpoint stays the latest (``warn``: say so on the console).

    At the run's ``final`` step a skipped update is an error instead: a run must not end "done" with its last steps
    in ``metrics.jsonl`` but not in any checkpoint (``--resume`` would silently go back to an older step)."""
    if not skipped_in_a_row:
        return save(step)
    if final:
        raise R1Error(
            f"the last optimizer update (step {step}) was skipped as non-finite (NaN/inf loss or gradient norm), so "
            "the run has no final checkpoint; its latest checkpoint is the one named in checkpoints/latest; lower "
            "optim.lr and --resume from it, or start again"
        )
    if warn:
        from r1.runs import console

        console.print(f"[yellow]warning:[/] step {step}: no checkpoint written, its last update was skipped as "
                      "non-finite (NaN/inf loss or gradient norm); the previous checkpoint stays the latest")
    return None


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
