"""GRPO trainer: smoke, resume equality, dynamic sampling, overlong handling, micro-batching.

Run: ``python -m pytest tests/train/test_grpo.py -q``.
"""

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from r1.config import GRPOConfig, load_config
from r1.errors import R1Error
from r1.models.replay import replay_hidden
from r1.algo import compute_group_advantages
from r1.train.common import PhaseTimer
from r1.algo.overlong import overlong_soft_penalty
from r1.train.grpo import TIMING_PREFIXES, GRPOTrainer, micro_batches, train_grpo
from r1.train.metrics import read_metrics

REPO = Path(__file__).resolve().parents[2]


def tiny_cfg(tmp_path, name="run", *overrides):
    base = [
        "model.path=tiny-qwen2",
        "task.name=addition",
        "task.template=plain",
        "task.params={digits: 2, num_train: 64, num_test: 16}",
        "rollout.max_new_tokens=12",
        "grpo.prompts_per_step=2",
        "grpo.samples_per_prompt=3",
        "optim.lr=1e-3",
        f"run.out_dir={tmp_path}",
        f"run.name={name}",
        "run.steps=2",
        "run.progress=false",
        "run.sample_every=1",
        "run.threads=1",
    ]
    return load_config(GRPOConfig, None, base + list(overrides))


def test_smoke_run_writes_run_directory(tmp_path):
    from transformers import AutoModelForCausalLM

    cfg = tiny_cfg(tmp_path, "smoke", "grpo.kl_coef=0.04", "grpo.mu=2", "grpo.num_minibatches=2", "eval.every=2",
                   "eval.num_prompts=4")
    run = train_grpo(cfg)
    assert (run / "config.yaml").is_file()
    rows = read_metrics(run)
    assert [r["step"] for r in rows] == [0, 1, 2]
    # held-out evaluation before training and at step 2, with the task's own statistics (reflection rate)
    assert {"eval/accuracy", "eval/response_length/mean", "eval/task/reflection"} <= set(rows[0])
    assert "eval/accuracy" in rows[2] and "eval/accuracy" not in rows[1]
    assert (run / "samples" / "eval_step_000002.jsonl").read_text().count("\n") == 4
    rows = rows[1:]
    assert "task/reflection" in rows[0] and "task/mode/direct" in rows[0]
    for key in ("reward/total", "reward/accuracy", "reward/format", "accuracy", "response_length/mean",
                "response_length/max", "groups/zero_variance_share", "clip_fraction", "kl", "entropy",
                "grad_norm", "time/rollout", "time/train", "time/ref", "throughput/tokens_per_s"):
        assert key in rows[0], key
    assert rows[0]["entropy"] > 0
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert (run / "samples" / "step_000001.jsonl").is_file()
    ckpt = run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()
    model = AutoModelForCausalLM.from_pretrained(ckpt)
    assert model.config.model_type == "qwen2"


def _comparable(rows):
    return [{k: v for k, v in r.items() if not k.startswith(TIMING_PREFIXES)} for r in rows]


@pytest.mark.parametrize("engine", ["native"])
def test_resume_after_kill_matches_uninterrupted_run(tmp_path, engine):
    extra = ["run.steps=4", "run.save_every=2", f"rollout.engine={engine}", "grpo.kl_coef=0.02",
             "rollout.temperature=1.5"]
    full = train_grpo(tiny_cfg(tmp_path, "full", *extra))

    class Killed(Exception):
        pass

    def kill_after_3(step, metrics):
        if step == 3:
            raise Killed

    cfg = tiny_cfg(tmp_path, "killed", *extra)
    with pytest.raises(Killed):
        train_grpo(cfg, on_step_end=kill_after_3)
    assert [r["step"] for r in read_metrics(tmp_path / "killed")] == [1, 2, 3]
    train_grpo(cfg, resume=tmp_path / "killed")
    a, b = _comparable(read_metrics(full)), _comparable(read_metrics(tmp_path / "killed"))
    assert [r["step"] for r in b] == [1, 2, 3, 4]
    assert a == b
    # the final weights are identical too
    from safetensors.torch import load_file

    wa = load_file(full / "checkpoints" / "step_000004" / "model.safetensors")
    wb = load_file(tmp_path / "killed" / "checkpoints" / "step_000004" / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_dynamic_sampling_drops_zero_variance_groups(tmp_path):
    # A random-init model scores 0 everywhere: every group has zero variance, so dynamic sampling keeps none,
    # tries max_sampling_rounds times, and the step is skipped rather than training on zero advantages.
    cfg = tiny_cfg(tmp_path, "ds", "grpo.dynamic_sampling=true", "grpo.max_sampling_rounds=2", "run.steps=1")
    run = train_grpo(cfg)
    row = read_metrics(run)[0]
    assert row["groups/zero_variance_share"] == 1.0
    assert row["groups/kept"] == 0 and row["skipped"] == 1


def test_length_reward_trains_and_overlong_mask(tmp_path):
    """With the overlong mask, truncated completions carry no gradient; with max_new_tokens tiny, all do."""
    cfg = tiny_cfg(tmp_path, "ol", "grpo.overlong=mask", "rollout.max_new_tokens=3", "run.steps=1",
                   "rollout.temperature=2.0")
    trainer = GRPOTrainer(cfg)
    m = trainer.step(1)
    assert m["truncated_share"] > 0
    if m["truncated_share"] == 1.0:
        assert m["grad_norm"] == 0.0


def test_overlong_soft_penalty_hand_cases():
    # max_len 20, buffer 4: no penalty up to 16 tokens, then -(L-16)/4 down to -1 at 20
    assert overlong_soft_penalty(16, 20, 4, 1.0) == 0.0
    assert overlong_soft_penalty(17, 20, 4, 1.0) == pytest.approx(-0.25)
    assert overlong_soft_penalty(20, 20, 4, 1.0) == pytest.approx(-1.0)
    assert overlong_soft_penalty(25, 20, 4, 0.5) == pytest.approx(-0.5)


def test_micro_batches_respect_token_budget():
    lengths = [10, 50, 20, 40, 30, 5]
    mbs = micro_batches(lengths, list(range(6)), token_budget=80)
    assert sorted(i for mb in mbs for i in mb) == list(range(6))
    for mb in mbs:
        assert len(mb) == 1 or len(mb) * max(lengths[i] for i in mb) <= 80
    assert micro_batches([100], [0], token_budget=10) == [[0]]


def test_micro_batching_does_not_change_the_update(tmp_path):
    """Gradient accumulation by token budget: one big micro-batch and many small ones give the same step."""
    a = GRPOTrainer(tiny_cfg(tmp_path, "big", "run.steps=1", "optim.tokens_per_micro_batch=100000",
                             "rollout.temperature=1.5"))
    b = GRPOTrainer(tiny_cfg(tmp_path, "small", "run.steps=1", "optim.tokens_per_micro_batch=16",
                             "rollout.temperature=1.5"))
    ma, mb = a.step(1), b.step(1)
    assert ma["reward/total"] == mb["reward/total"]
    for pa, pb in zip(a.model.parameters(), b.model.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("preset", ["tiny-qwen2", "tiny-llama"])
@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")
def test_shared_prompt_forward_gives_the_transformers_gradient(tmp_path, preset):
    """The lean policy/reference forward (each prompt once per group) against the plain transformers forward, on
    the same rollouts: the same loss, KL, entropy and gradient, with prompts of different lengths and micro-batches
    that split groups."""
    over = [f"model.path={preset}", "grpo.kl_coef=0.1", "task.params={digits: 3, min_digits: 1, num_train: 64}",
            "optim.tokens_per_micro_batch=40", "rollout.temperature=1.5", "grpo.prompts_per_step=3"]
    t = GRPOTrainer(tiny_cfg(tmp_path, "fast", *over))
    assert t.policy_forward.lean_policy is not None and t.policy_forward.lean_reference is not None
    with torch.no_grad():  # move the policy off the reference, so the KL term is live
        g = torch.Generator().manual_seed(0)
        for p in t.model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    by_len = {len(t.prompt_ids(i)): i for i in range(len(t.samples))}
    assert len(by_len) >= 2
    picks = [by_len[min(by_len)], by_len[max(by_len)], by_len[min(by_len)]]  # two lengths: left padding is exercised
    t.prompt_sampler.take = lambda k: picks[:k]
    r, _ = t.rollout(PhaseTimer())
    adv = compute_group_advantages(r.rewards, 3, "group_std", 1e-6) + torch.linspace(-1, 1, len(r.rewards))
    grads = []
    t.optimizer.step = lambda: grads.append([p.grad.clone() for p in t.model.parameters()])  # capture, no update
    stats_fast = t.train_on(r, adv, PhaseTimer())
    t.policy_forward.use_lean = False
    stats_plain = t.train_on(r, adv, PhaseTimer())
    t.policy_forward.use_lean = True
    assert stats_fast["kl"] > 0
    for k in ("loss", "kl", "entropy", "logprob_diff_rollout_vs_train", "grad_norm"):
        assert stats_fast[k] == pytest.approx(stats_plain[k], rel=1e-4, abs=1e-7), k
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("preset,micro,dtype", [("tiny-qwen2", False, "fp32"), ("tiny-llama", False, "fp32"),
                                                ("tiny-qwen2", True, "fp32"), ("tiny-qwen2", False, "bf16")])
@pytest.mark.filterwarnings("ignore:Seems like `optimizer.step\\(\\)` has been overridden")
def test_replayed_train_pass_gives_the_same_update(tmp_path, preset, micro, dtype, monkeypatch):
    """grpo.replay_rollout: the backward over the rollout's recorded forward gives the loss, KL, entropy and
    gradient of the usual train forward + backward on the same rollouts (also over micro-batches that split groups);
    under bf16 autocast, to bfloat16's precision (the usual pass's logits differ from the sampler's by rounding)."""
    import r1.models.policy as policy_mod

    over = [f"model.path={preset}", "grpo.kl_coef=0.1", "task.params={digits: 3, min_digits: 1, num_train: 64}",
            "rollout.temperature=1.5", "grpo.prompts_per_step=3", f"model.dtype={dtype}"]
    if micro:
        over += ["optim.tokens_per_micro_batch=40", "grpo.replay_max_tokens=100000"]
    t = GRPOTrainer(tiny_cfg(tmp_path, "replay", *over))
    with torch.no_grad():  # move the policy off the reference, so the KL term is live
        g = torch.Generator().manual_seed(0)
        for p in t.model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    t.model.generation_config.eos_token_id = [t.tok.eos_token_id, *range(60, 100)]  # rows stop at different steps
    by_len = {len(t.prompt_ids(i)): i for i in range(len(t.samples))}
    t.prompt_sampler.take = lambda k: [by_len[min(by_len)], by_len[max(by_len)], by_len[min(by_len)]][:k]
    r, _ = t.rollout(PhaseTimer())
    assert r.record is not None and len(set(map(len, r.completion_ids))) > 1
    assert len(set(map(len, r.prompt_ids))) > 1  # left padding
    adv = compute_group_advantages(r.rewards, 3, "group_std", 1e-6) + torch.linspace(-1, 1, len(r.rewards))
    grads = []
    t.optimizer.step = lambda: grads.append([p.grad.clone() for p in t.model.parameters()])  # capture, no update
    calls = []
    monkeypatch.setattr(policy_mod, "replay_hidden", lambda *a: calls.append(1) or replay_hidden(*a))
    stats_replay = t.train_on(r, adv, PhaseTimer())
    assert len(calls) > 1 if micro else calls == [1]
    n = len(calls)
    stats_plain = t.train_on(replace(r, record=None), adv, PhaseTimer())
    assert len(calls) == n and stats_replay["kl"] > 0
    assert stats_replay["logprob_diff_rollout_vs_train"] < 1e-6  # the very forward that sampled
    if dtype == "bf16":
        assert r.record.mat_dtype == torch.bfloat16
        assert 0 < stats_plain["logprob_diff_rollout_vs_train"] < 0.05
        for k in ("loss", "kl", "entropy", "grad_norm"):
            assert stats_replay[k] == pytest.approx(stats_plain[k], rel=0.05, abs=1e-3), k
        a, b = torch.cat([g.flatten() for g in grads[0]]), torch.cat([g.flatten() for g in grads[1]])
        assert (a - b).norm() / b.norm() < 0.05
        return
    for k in ("loss", "kl", "entropy", "grad_norm"):
        assert stats_replay[k] == pytest.approx(stats_plain[k], rel=1e-4, abs=1e-7), k
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_workers_exchange_the_rows_not_the_forward_record(tmp_path, monkeypatch):
    """The rewards/texts every worker sees travel without the record (hundreds of MB), which stays local."""
    import r1.models.policy as policy_mod
    import r1.train.grpo as grpo_mod

    t = GRPOTrainer(tiny_cfg(tmp_path, "gather", "run.steps=1"))
    sent, replays = [], []
    gather = grpo_mod.dist.all_gather_objects
    monkeypatch.setattr(grpo_mod.dist, "all_gather_objects", lambda obj: sent.append(obj) or gather(obj))
    monkeypatch.setattr(policy_mod, "replay_hidden", lambda *a: replays.append(1) or replay_hidden(*a))
    t.step(1)
    rows = sent[0][0]
    assert rows.record is None and rows.record_rows is None and rows.old_logps == []
    assert replays == [1]  # the local batch kept its record


def test_the_rollout_is_recorded_only_when_the_train_pass_can_replay_it(tmp_path):
    base = ["run.steps=1"]
    assert GRPOTrainer(tiny_cfg(tmp_path, "a", *base)).records_rollout(16, 10)
    assert GRPOTrainer(tiny_cfg(tmp_path, "a16", *base, "model.dtype=bf16")).records_rollout(16, 10)
    for i, extra in enumerate(["grpo.mu=2", "grpo.num_minibatches=2", "rollout.engine=hf",
                               "grpo.replay_rollout=false", "optim.tokens_per_micro_batch=64"]):
        t = GRPOTrainer(tiny_cfg(tmp_path, f"b{i}", *base, extra, "grpo.prompts_per_step=2"))
        if extra != "rollout.engine=hf":  # the hf engine is asked, and keeps no record (Engine.last_record None)
            assert not t.records_rollout(16, 10), extra
        r, _ = t.rollout(PhaseTimer())
        assert r.record is None, extra
    # a bigger record than one micro-batch when allowed
    t = GRPOTrainer(tiny_cfg(tmp_path, "c", *base, "optim.tokens_per_micro_batch=64", "grpo.replay_max_tokens=4096"))
    assert t.records_rollout(16, 10) and not t.records_rollout(256, 10)


def test_bad_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(R1Error, match="unknown task 'nope'"):
        GRPOTrainer(tiny_cfg(tmp_path, "e1", "task.name=nope"))
    with pytest.raises(R1Error, match="unknown reward 'bogus'"):
        GRPOTrainer(tiny_cfg(tmp_path, "e2", "rewards=[{name: bogus}]"))
    with pytest.raises(R1Error, match="unknown rollout engine 'warp'"):
        GRPOTrainer(tiny_cfg(tmp_path, "e3", "rollout.engine=warp"))
    with pytest.raises(R1Error, match="neither a preset"):
        GRPOTrainer(tiny_cfg(tmp_path, "e4", f"model.path={tmp_path}/missing"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "problem": "1+1", "answer": "2"}\n{oops\n')
    with pytest.raises(R1Error, match=r"bad\.jsonl:2"):
        GRPOTrainer(tiny_cfg(tmp_path, "e5", "task.name=math", f"task.data={bad}", "task.params={}"))
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(R1Error, match="empty"):
        GRPOTrainer(tiny_cfg(tmp_path, "e6", "task.name=math", f"task.data={empty}", "task.params={}"))
    # a run directory is never silently overwritten
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("keep me")
    with pytest.raises(R1Error, match="not empty"):
        GRPOTrainer(tiny_cfg(tmp_path, "used"))
    assert (tmp_path / "used" / "x").read_text() == "keep me"


def test_printable_escapes_control_characters():
    from r1.train.grpo import printable

    assert printable("a\x1b[31mb\nc") == "a\\x1b[31mb\nc"
    assert printable("x" * 10, limit=4) == "xxxx…"


def test_bad_input_leaves_no_run_directory(tmp_path):
    for i, bad in enumerate([f"model.path={tmp_path}/missing", "rollout.engine=warp", "task.name=nope"]):
        with pytest.raises(R1Error):
            GRPOTrainer(tiny_cfg(tmp_path, f"bad{i}", bad))
        assert not (tmp_path / f"bad{i}").exists()


def test_reference_offload_gives_the_same_run_and_holds_no_reference_between_passes(tmp_path):
    """``grpo.reference_offload``: the same metrics and weights as the reference held in memory; between steps the
    reference's parameters are empty and its weights are in the run directory's file, which training removes."""
    from safetensors.torch import load_file

    extra = ["grpo.kl_coef=0.05", "rollout.temperature=1.5", "run.steps=2"]
    kept = train_grpo(tiny_cfg(tmp_path, "kept", *extra))
    trainer = GRPOTrainer(tiny_cfg(tmp_path, "offload", *extra, "grpo.reference_offload=true"))
    seen = []

    def look(step, metrics):
        file = trainer.run_dir / "reference.safetensors"
        seen.append((file.is_file(), max(p.numel() for p in trainer.ref_model.parameters()), metrics["kl"]))

    run = trainer.train(on_step_end=look)
    assert [s[:2] for s in seen] == [(True, 0), (True, 0)]
    assert seen[1][2] > 0  # the KL term saw a reference that differs from the updated policy
    assert not (run / "reference.safetensors").exists()
    assert _comparable(read_metrics(kept)) == _comparable(read_metrics(run))
    wa = load_file(kept / "checkpoints" / "step_000002" / "model.safetensors")
    wb = load_file(run / "checkpoints" / "step_000002" / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_reference_offload_with_lora_is_refused(tmp_path):
    with pytest.raises(R1Error, match=r"grpo.reference_offload=True: not with model.lora"):
        tiny_cfg(tmp_path, "lora", "grpo.kl_coef=0.05", "grpo.reference_offload=true", "model.lora.r=4")
