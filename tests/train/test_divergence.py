"""Divergence: NaN/inf updates are skipped and counted, a diverged run stops with one line, checkpoints stay finite
and durable (fsync).

Run: ``python -m pytest tests/train/test_divergence.py -q``.
"""

import json
import math
import os
from pathlib import Path

import pytest
import torch

from r1.cli import main
from r1.errors import R1Error
from r1.train import dist
from r1.train.checkpoint import check_finite_weights, save_checkpoint
from r1.train.common import PhaseTimer
from r1.train.grpo import GRPOTrainer, train_grpo
from r1.train.metrics import MetricsLogger, read_metrics
from r1.train.optim import NonFiniteGuard
from r1.train.sft import train_sft
from tests.train.test_grpo import tiny_cfg as grpo_cfg
from tests.train.test_sft import cfg_for as sft_cfg

pytestmark = pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")


def checkpoints(run: Path) -> list[Path]:
    return sorted(p for p in (run / "checkpoints").glob("step_*") if p.is_dir()) if (run / "checkpoints").is_dir() else []


def assert_all_finite(ckpt: Path) -> None:
    from safetensors.torch import load_file

    weights = load_file(ckpt / "model.safetensors")
    assert weights and all(torch.isfinite(t).all() for t in weights.values()), ckpt


def nan_at_call(monkeypatch, module, name: str, call: int) -> None:
    """Make ``module.name`` (a loss function) return NaN at its ``call``-th call (1-based); SFT's returns
    ``(loss, tokens)``."""
    calls, real = [], getattr(module, name)

    def patched(*a, **k):
        out = real(*a, **k)
        calls.append(1)
        if len(calls) != call:
            return out
        return (out[0] * math.nan, *out[1:]) if isinstance(out, tuple) else out * math.nan

    monkeypatch.setattr(module, name, patched)


# ------------------------------------------------------------------------------------------------ the guard itself
def test_guard_skips_counts_and_stops_after_the_limit():
    guard = NonFiniteGuard(limit=3)
    one, nan, inf = torch.tensor(1.0), torch.tensor(math.nan), torch.tensor(math.inf)
    assert guard.finite(one, one)
    assert not guard.finite(nan, one) and not guard.finite(one, inf)
    assert (guard.total, guard.consecutive, guard.diverged) == (2, 2, False)
    assert guard.finite(one, one)  # a finite step resets the run of skipped ones, not the total
    assert (guard.total, guard.consecutive) == (2, 0)
    for _ in range(3):
        guard.finite(one, nan)
    assert guard.diverged and guard.total == 5
    message = str(guard.error(7, math.inf))
    assert "\n" not in message and "step 7" in message and "optim.lr=inf" in message
    assert not NonFiniteGuard(limit=0).diverged  # 0: never stop


def test_guard_step_skips_the_update_but_not_the_schedule():
    import warnings

    w = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.AdamW([w], lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (s + 1))
    guard = NonFiniteGuard(limit=3)
    w.grad = torch.full((2,), math.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no torch warning about the schedule moving first
        assert not guard.step(opt, sched, torch.tensor(1.0), torch.tensor(math.nan))
    assert torch.equal(w.detach(), torch.ones(2)) and w.grad is None and not opt.state
    assert sched.last_epoch == 1 and opt.param_groups[0]["lr"] == pytest.approx(0.05)
    w.grad = torch.ones(2)
    assert guard.step(opt, sched, torch.tensor(1.0), torch.tensor(1.0))
    assert (w.detach() < 1).all()


def test_guard_decides_on_the_flag_summed_over_workers():
    # This worker's loss and norm are finite, another worker's loss is not: every worker must skip alike.
    guard = NonFiniteGuard(limit=3)
    other_worker_bad = lambda ts: ts[0].add_(1.0)  # noqa: E731 - stands in for all_reduce_sum_
    assert not guard.finite(torch.tensor(1.0), torch.tensor(1.0), reduce=other_worker_bad)
    assert guard.total == 1


# ------------------------------------------------------------------------------------------------ SFT / pretrain
# the SFT trainer's loss: the fast path's head_nll (one call a micro-batch: one a step here) or the reference
# path's sft_loss (``use_lean = False``)
SFT_LOSSES = pytest.mark.parametrize("lean, loss_fn", [(True, "head_nll"), (False, "sft_loss")],
                                     ids=["lean", "reference"])


@SFT_LOSSES
def test_sft_skips_an_injected_nan_step_and_goes_on(tmp_path, monkeypatch, lean, loss_fn):
    import r1.train.sft as sft

    nan_at_call(monkeypatch, sft, loss_fn, 2)
    trainer = sft.SFTTrainer(sft_cfg(tmp_path, "nan1", "run.steps=4", "run.save_every=2"))
    assert trainer.lean is not None  # the tiny preset has the fast path; use_lean picks the path under test
    trainer.use_lean = lean
    weights = {}
    run = trainer.train(
        on_step_end=lambda step, m: weights.setdefault(step, [p.detach().clone() for p in trainer.model.parameters()])
    )
    rows = read_metrics(run)
    assert [r["nonfinite_steps"] for r in rows] == [0, 1, 0, 0]
    assert [r["nonfinite_steps_total"] for r in rows] == [0, 1, 1, 1]
    assert rows[1]["loss"] is None and all(rows[i]["loss"] > 0 for i in (0, 2, 3))
    assert all(torch.equal(a, b) for a, b in zip(weights[1], weights[2]))  # the NaN step changed nothing
    assert not all(torch.equal(a, b) for a, b in zip(weights[2], weights[3]))  # and training went on
    for ckpt in checkpoints(run):
        assert_all_finite(ckpt)
    state = torch.load(run / "checkpoints" / "step_000004" / "trainer_state.pt", weights_only=False)
    assert state["nonfinite"] == {"total": 1, "consecutive": 0}


def test_diverging_pretrain_exits_nonzero_with_one_line_and_keeps_a_finite_checkpoint(tmp_path, capsys):
    # lr=1e3 on the tiny model: finite but huge weights after a few updates, then NaN gradients.
    config = Path(__file__).resolve().parents[2] / "configs" / "pretrain" / "addition.yaml"
    args = ["-c", str(config), "model.path=tiny-qwen2", f"run.out_dir={tmp_path}", "run.name=div", "optim.lr=1e3",
            "optim.warmup_steps=0", "run.steps=30", "run.save_every=1", "run.keep_checkpoints=1",
            "run.progress=false", "data.num_examples=200"]
    assert main(["pretrain", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("r1 pretrain: error: training diverged") and "\n" not in err, err
    run = tmp_path / "div"
    assert checkpoints(run)
    for ckpt in checkpoints(run):
        assert_all_finite(ckpt)
    latest = run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()
    assert_all_finite(latest)
    rows = read_metrics(run)
    assert rows[-1]["nonfinite_steps_total"] == 3 and [r["nonfinite_steps"] for r in rows[-3:]] == [1, 1, 1]


def test_an_update_that_poisons_the_weights_keeps_the_last_finite_checkpoint(tmp_path):
    # From step 3 on the learning rate is inf: step 3's update (finite loss and gradient) makes the weights NaN.
    # Its checkpoint is refused, and keep_checkpoints=1 does not rotate step 2 out.
    from r1.train.sft import SFTTrainer

    trainer = SFTTrainer(sft_cfg(tmp_path, "poison", "run.steps=6", "run.save_every=1", "run.keep_checkpoints=1"))

    def lr_inf_after_2(step, m):
        if step == 2:
            trainer.scheduler.base_lrs = [math.inf] * len(trainer.scheduler.base_lrs)
            for group in trainer.optimizer.param_groups:  # this step's (the schedule has already moved on)
                group["lr"] = math.inf

    with pytest.raises(R1Error, match="refusing to save checkpoint step_000003") as e:
        trainer.train(on_step_end=lr_inf_after_2)
    assert "\n" not in str(e.value) and "step_000002" in str(e.value)
    run = tmp_path / "poison"
    assert [p.name for p in checkpoints(run)] == ["step_000002"]
    assert (run / "checkpoints" / "latest").read_text().strip() == "step_000002"
    assert_all_finite(run / "checkpoints" / "step_000002")


# ------------------------------------------------------------------------------------------------ GRPO
def test_grpo_skips_an_injected_nan_step_and_goes_on(tmp_path, monkeypatch):
    import r1.train.grpo as grpo

    nan_at_call(monkeypatch, grpo, "aggregate_loss", 2)
    run = train_grpo(grpo_cfg(tmp_path, "nan1", "run.steps=3", "run.save_every=1", "run.sample_every=0"))
    rows = read_metrics(run)
    assert [r["nonfinite_steps"] for r in rows] == [0, 1, 0]
    assert [r["nonfinite_steps_total"] for r in rows] == [0, 1, 1]
    assert rows[1]["loss"] is None
    # the skipped step wrote no checkpoint (it would have pushed step 1 out); the others did, all finite
    assert [p.name for p in checkpoints(run)] == ["step_000001", "step_000003"]
    for ckpt in checkpoints(run):
        assert_all_finite(ckpt)


@SFT_LOSSES
def test_sft_whose_last_update_is_skipped_does_not_end_done(tmp_path, monkeypatch, lean, loss_fn):
    """A skipped final update leaves no final checkpoint: the run must fail, not end "done" with metrics.jsonl ahead
    of its latest checkpoint (a --resume would silently go back)."""
    import r1.train.sft as sft

    nan_at_call(monkeypatch, sft, loss_fn, 3)
    trainer = sft.SFTTrainer(sft_cfg(tmp_path, "lastnan", "run.steps=3", "run.save_every=2"))
    trainer.use_lean = lean
    with pytest.raises(R1Error, match="last optimizer update \\(step 3\\) was skipped"):
        trainer.train()
    run = tmp_path / "lastnan"
    assert [p.name for p in checkpoints(run)] == ["step_000002"]
    assert (run / "checkpoints" / "latest").read_text().strip() == "step_000002"


def test_grpo_whose_last_update_is_skipped_exits_nonzero(tmp_path, capsys, monkeypatch):
    import r1.train.grpo as grpo

    nan_at_call(monkeypatch, grpo, "aggregate_loss", 2)
    cfg = grpo_cfg(tmp_path, "lastnan", "run.steps=2", "run.save_every=1", "run.sample_every=0")
    with pytest.raises(R1Error, match="step 2"):
        train_grpo(cfg)
    assert [p.name for p in checkpoints(tmp_path / "lastnan")] == ["step_000001"]


def test_grpo_that_keeps_producing_nan_exits_nonzero_with_one_line(tmp_path, capsys, monkeypatch):
    # Every loss from step 2 on is NaN: three skipped updates in a row stop the run at step 4 (exit 2, one line);
    # the skipped steps write no checkpoint, so step 1's survives keep_checkpoints=1.
    import r1.train.grpo as grpo

    steps, real = [], grpo.aggregate_loss
    monkeypatch.setattr(grpo, "aggregate_loss", lambda *a, **k: real(*a, **k) * (math.nan if len(steps) > 1 else 1.0))
    smoke = Path(__file__).resolve().parents[2] / "configs" / "grpo" / "smoke.yaml"
    args = ["-c", str(smoke), f"run.out_dir={tmp_path}", "run.name=nan", "run.steps=8", "run.save_every=1",
            "run.keep_checkpoints=1", "run.progress=false", "run.sample_every=0"]
    monkeypatch.setattr(grpo.GRPOTrainer, "step", (lambda step: lambda self, i: (steps.append(i), step(self, i))[1])(
        grpo.GRPOTrainer.step))
    assert main(["grpo", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("r1 grpo: error: training diverged at step 4") and "\n" not in err, err
    run = tmp_path / "nan"
    assert [p.name for p in checkpoints(run)] == ["step_000001"]
    assert_all_finite(run / "checkpoints" / "step_000001")
    assert [r["nonfinite_steps_total"] for r in read_metrics(run)] == [0, 1, 2, 3]


def test_grpo_update_that_poisons_the_weights_keeps_the_last_finite_checkpoint(tmp_path):
    trainer = GRPOTrainer(grpo_cfg(tmp_path, "poison", "run.steps=4", "run.save_every=1", "run.keep_checkpoints=1",
                                   "run.sample_every=0"))

    def lr_inf_after_1(step, m):
        if step == 1:
            for group in trainer.optimizer.param_groups:
                group["lr"] = math.inf

    with pytest.raises(R1Error, match="refusing to save checkpoint step_000002"):
        trainer.train(on_step_end=lr_inf_after_1)
    run = tmp_path / "poison"
    assert [p.name for p in checkpoints(run)] == ["step_000001"]
    assert_all_finite(run / "checkpoints" / "step_000001")


def _nan_on_one_worker(tmp_path, out_dir):
    """Worker: rank 1's loss value is NaN but its gradient finite; both workers must skip the same update."""
    import r1.train.grpo as grpo

    rank, _ = dist.world()
    real = grpo.aggregate_loss
    if rank == 1:
        grpo.aggregate_loss = lambda *a, **k: (lambda loss: loss + loss.detach() * math.nan)(real(*a, **k))
    trainer = GRPOTrainer(grpo_cfg(tmp_path, "dp", "run.workers=2", "grpo.prompts_per_step=2"))
    r, _ = trainer.rollout(PhaseTimer())
    steps = []
    trainer.optimizer.step = lambda: steps.append(1)
    trainer.train_on(r, torch.linspace(-1, 1, len(r.completion_ids)), PhaseTimer())
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps({"steps": len(steps), "skipped": trainer.guard.total}))


@pytest.mark.slow
def test_workers_take_the_same_skip_decision(tmp_path):
    dist.spawn(_nan_on_one_worker, 2, tmp_path, str(tmp_path))
    results = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert results == [{"steps": 0, "skipped": 1}] * 2


# ------------------------------------------------------------------------------------------------ checkpoints
def test_nonfinite_weights_are_refused_before_anything_is_written(tmp_path):
    from r1.models import build_preset

    model, tok = build_preset("tiny-qwen2")
    check_finite_weights(model, tmp_path, 1)
    with torch.no_grad():
        next(model.parameters())[0, 0] = math.nan
    with pytest.raises(R1Error, match="refusing to save checkpoint step_000001") as e:
        save_checkpoint(tmp_path, 1, model, tok, {"step": 1})
    assert "\n" not in str(e.value)
    assert not (tmp_path / "checkpoints").exists()


def test_checkpoint_files_and_folders_are_fsynced(tmp_path, monkeypatch):
    from r1.models import build_preset

    model, tok = build_preset("tiny-qwen2")
    synced = []
    real = os.fsync

    def record(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", record)
    final = save_checkpoint(tmp_path, 3, model, tok, {"step": 3})
    root = tmp_path / "checkpoints"
    tmp = str(root / ".tmp_step_000003")
    # every file and the folder, before the rename (under the temporary name); then the parent folder after it
    assert {f"{tmp}/{p.name}" for p in final.iterdir()} <= set(synced)
    assert tmp in synced and str(root) in synced
    assert str(root / "latest.tmp") in synced
    assert synced.index(tmp) < synced.index(str(root))
    assert synced[-1] == str(root)  # the rename of latest reaches the disk too


def test_metrics_keep_nan_as_null_and_json_valid(tmp_path):
    logger = MetricsLogger(tmp_path, tensorboard=False)
    logger.log(1, {"loss": math.nan, "grad_norm": math.inf, "nonfinite_steps": 1})
    logger.close()
    line = (tmp_path / "metrics.jsonl").read_text()

    def strict(name):
        raise ValueError(name)

    row = json.loads(line, parse_constant=strict)
    assert row == {"step": 1, "loss": None, "grad_norm": None, "nonfinite_steps": 1}


def test_grpo_warns_when_the_gradient_is_exactly_zero_with_nonzero_advantages(tmp_path, capsys):
    """optim.lr=1e3 saturates the tiny model: finite weights, but an exactly-zero gradient while advantages are not
    zero. The NaN guard cannot see it; the trainer says so once (the smoke config's first run: steps 3-8)."""
    from r1.config import GRPOConfig, load_config

    smoke = Path(__file__).resolve().parents[2] / "configs" / "grpo" / "smoke.yaml"
    cfg = load_config(GRPOConfig, smoke, [f"run.out_dir={tmp_path}", "run.name=dead", "run.steps=8",
                                          "run.sample_every=0", "run.save_every=0", "optim.lr=1e3", "run.progress=false"])
    run = train_grpo(cfg)
    rows = read_metrics(run)
    dead = [r["grad_norm"] == 0.0 and r["advantage/abs_mean"] > 0 for r in rows]
    out = capsys.readouterr().out
    three_in_a_row = any(all(dead[i : i + 3]) for i in range(len(dead) - 2))
    assert three_in_a_row == ("has been exactly 0 for 3 steps" in out)
    assert three_in_a_row, [(r["grad_norm"], r["advantage/abs_mean"]) for r in rows]
