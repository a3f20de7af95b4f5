"""Data-parallel GRPO (``run.workers``): two workers compute the one-process update, runs resume, errors are one line.

Run: ``python -m pytest tests/train/test_dist.py -q``. Each test starts two CPU worker processes (gloo).
"""

import json

import pytest
import torch

from r1.algo import compute_group_advantages
from r1.errors import R1Error
from r1.train import dist
from r1.train.common import PhaseTimer
from r1.train.grpo import GRPOTrainer, Rollouts, train_grpo
from r1.train.metrics import read_metrics
from tests.train.test_grpo import tiny_cfg

OVER = ["grpo.kl_coef=0.1", "task.params={digits: 3, min_digits: 1, num_train: 64}", "rollout.temperature=1.5",
        "grpo.prompts_per_step=4", "optim.tokens_per_micro_batch=40"]
pytestmark = pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")
STATS = ("loss", "kl", "entropy", "clip_fraction", "grad_norm", "logprob_diff_rollout_vs_train")


def perturb(model):
    """Move the policy off the reference (the same way in every process), so the KL term is live."""
    with torch.no_grad():
        g = torch.Generator().manual_seed(0)
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))


def capture_update(trainer, r: Rollouts, advantages: torch.Tensor):
    """``train_on`` with the optimizer step replaced by a copy of the (summed) gradients."""
    grads = []
    trainer.optimizer.step = lambda: grads.append([p.grad.clone() for p in trainer.model.parameters()])
    stats = trainer.train_on(r, advantages, PhaseTimer())
    return stats, grads


def rows_of(r: Rollouts, rows: list[int]) -> Rollouts:
    return Rollouts(
        prompt_ids=[r.prompt_ids[i] for i in rows],
        completion_ids=[r.completion_ids[i] for i in rows],
        old_logps=[r.old_logps[i] for i in rows],
        finish_reasons=[r.finish_reasons[i] for i in rows],
        texts=[r.texts[i] for i in rows],
        sample_idx=[r.sample_idx[i] for i in rows],
        rewards=r.rewards[rows],
        reward_parts={k: [v[i] for i in rows] for k, v in r.reward_parts.items()},
    )


def _half_batch_worker(tmp_path, batch_file, out_file):
    rank, world = dist.world()
    trainer = GRPOTrainer(tiny_cfg(tmp_path, "dp", *OVER, "run.workers=2"))
    assert (trainer.rank, trainer.world) == (rank, world) == (rank, 2)
    perturb(trainer.model)
    r, advantages = torch.load(batch_file, weights_only=False)
    n = len(r.completion_ids) // world
    rows = list(range(rank * n, (rank + 1) * n))
    stats, grads = capture_update(trainer, rows_of(r, rows), advantages[rows])
    if rank == 0:
        torch.save((stats, grads), out_file)


def test_two_workers_compute_the_one_process_update(tmp_path):
    one = GRPOTrainer(tiny_cfg(tmp_path, "one", *OVER))
    perturb(one.model)
    r, _ = one.rollout(PhaseTimer())
    advantages = compute_group_advantages(r.rewards, 3, "group_std", 1e-6) + torch.linspace(-1, 1, len(r.rewards))
    torch.save((r, advantages), tmp_path / "batch.pt")
    stats_one, grads_one = capture_update(one, r, advantages)

    dist.spawn(_half_batch_worker, 2, tmp_path, tmp_path / "batch.pt", tmp_path / "out.pt")
    stats_two, grads_two = torch.load(tmp_path / "out.pt", weights_only=False)
    assert stats_one["kl"] > 0 and stats_one["grad_norm"] > 0
    for k in STATS:
        assert stats_two[k] == pytest.approx(stats_one[k], rel=1e-4, abs=1e-7), k
    assert len(grads_two) == len(grads_one)
    for a, b in zip(grads_two[0], grads_one[0]):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_two_worker_run_resumes_to_the_uninterrupted_result(tmp_path):
    # Digits end a completion and shorter is better: rewards vary within groups, so every step updates.
    over = ["run.workers=2", "run.steps=4", "run.save_every=2", "grpo.prompts_per_step=4", "optim.lr=1e-2",
            "optim.schedule=constant",
            "rollout.temperature=1.5", 'rollout.stop=["0","1","2","3","4","5","6","7","8","9"]',
            "grpo.overlong=soft_penalty", "grpo.overlong_buffer=12", "grpo.kl_coef=0.1"]
    full = train_grpo(tiny_cfg(tmp_path, "full", *over))
    part = train_grpo(tiny_cfg(tmp_path, "part", *over, "run.steps=2"))
    train_grpo(tiny_cfg(tmp_path, "part", *over, "run.steps=4"), resume=part)

    def metrics(run):
        rows = read_metrics(run)
        return [{k: v for k, v in m.items() if not k.startswith(("time/", "throughput/"))} for m in rows]

    a, b = metrics(full), metrics(part)
    assert [m["step"] for m in a] == [1, 2, 3, 4] and a == b
    assert all(m["groups/kept"] == 4 for m in a)  # both workers' groups are counted
    assert all(m["grad_norm"] > 0 for m in a) and a[-1]["kl"] > 0
    from transformers import AutoModelForCausalLM

    ma = AutoModelForCausalLM.from_pretrained(full / "checkpoints" / "step_000004")
    mb = AutoModelForCausalLM.from_pretrained(part / "checkpoints" / "step_000004")
    for pa, pb in zip(ma.parameters(), mb.parameters()):
        assert torch.equal(pa, pb)
    state = torch.load(full / "checkpoints" / "step_000004" / "trainer_state.pt", weights_only=False)
    assert len(state["ranks"]) == 2 and not torch.equal(state["ranks"][0]["sampler_rng"], state["ranks"][1]["sampler_rng"])
    samples = [json.loads(line) for line in (full / "samples" / "step_000004.jsonl").read_text().splitlines()]
    assert len(samples) == 4 * 3  # every worker's completions

    with pytest.raises(R1Error, match="run.workers=2"):
        GRPOTrainer(tiny_cfg(tmp_path, "part", *over[1:], "run.steps=6"), resume=part)


def test_worker_errors_are_one_line(tmp_path):
    with pytest.raises(R1Error, match="multiple of run.workers"):
        train_grpo(tiny_cfg(tmp_path, "odd", "run.workers=2", "grpo.prompts_per_step=3"))
    with pytest.raises(R1Error, match="^model .*neither a preset|not a Hugging Face|no-such"):
        train_grpo(tiny_cfg(tmp_path, "bad", "run.workers=2", "model.path=no-such-model"))
    assert not (tmp_path / "bad").exists()


@pytest.mark.slow
def test_torchrun_launch_writes_one_run_directory(tmp_path):
    """``torchrun --standalone --nproc-per-node 2 -m r1 grpo ...``: the process group comes from torchrun."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2", "-m", "r1", "grpo",
           "-c", "configs/grpo/smoke.yaml", f"run.out_dir={tmp_path}", "run.name=tr", "run.steps=2",
           "run.threads=1", "run.progress=false", "run.sample_every=0"]
    from tests.train.test_grpo import REPO

    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_metrics(tmp_path / "tr")
    assert [r["step"] for r in rows] == [1, 2] and all(r["groups/kept"] == 4 for r in rows)
    state = torch.load(tmp_path / "tr" / "checkpoints" / "step_000002" / "trainer_state.pt", weights_only=False)
    assert len(state["ranks"]) == 2
