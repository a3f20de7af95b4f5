"""GRPO trainer (R1-Zero, reasoning RL): one flat step of named, timed phases.

    sample_groups → score_groups (→ dynamic sampling) → gather → advantages → ref logprobs (β > 0)
    → μ × minibatches (minibatch_losses → update) → sync → log

Implements GRPO (DeepSeekMath arXiv:2402.03300, as used by DeepSeek-R1 arXiv:2501.12948) with the switches of
its successors, each a config field documented in ``r1.config.GRPOAlgoConfig``: Dr. GRPO advantage/loss
normalisation, DAPO clip-higher, token-mean aggregation, dynamic sampling and overlong handling, GSPO sequence-level
ratios. The math lives in ``r1.algo``; this file only moves data between phases.

Old logprobs come from the rollout engine (the behaviour policy's log softmax(logits / temperature)), so μ = 1 costs
no extra forward pass; and while no update has changed the policy since it sampled (native engine, fp32), they are
also the values of the train pass's logprobs, whose output head then runs no forward product, only the backward's
(``r1.algo.logprobs.KnownLogprobs``: a quarter of the head's work at a large vocabulary). The reference model is
loaded only when β > 0; with LoRA adapters (``model.lora``, ``r1.models.lora``) only the adapters train and the
reference is the base: the policy with its adapters off.
``run.workers > 1`` trains data-parallel (``r1.train.dist``): each worker samples its share of the prompts, every
worker sees the whole batch's rewards, and gradients are summed before each update. Left out on purpose: value
functions (GRPO has none), vLLM.
"""

from __future__ import annotations

import copy
import json
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import torch

from r1.algo import (
    aggregate_loss,
    compute_group_advantages,
    compute_kl,
    compute_policy_loss,
    group_zero_variance,
)
from r1.algo.logprobs import KnownLogprobs
from r1.algo.overlong import OVERLONG, Overlong
from r1.config import GRPOAlgoConfig, GRPOConfig, save_config, validate
from r1.data.batching import right_pad
from r1.errors import R1Error
from r1.generate import sampling_params, tokenize_prompt
from r1.models import load as load_model
from r1.models.lora import load_policy, set_base_path
from r1.models.offload import OffloadedWeights
from r1.models.policy import PolicyForward
from r1.rewards import CompositeReward
from r1.rollout import ENGINES, Completion, build_engine
from r1.runs import console, make_progress, prepare_run_dir
from r1.tasks import build_task
from r1.train.checkpoint import (
    check_finite_weights,
    checkpoint_unless_skipped,
    restore_trainer_state,
    save_checkpoint,
    trainer_state,
)
from r1.train.common import PhaseTimer, autocast_context, open_run, setup_compute
from r1.train import dist
from r1.train.metrics import MetricsLogger
from r1.train.optim import NonFiniteGuard, build_optimizer, build_scheduler, clip_grad_norm

# Metrics that measure the machine, not the run; they differ between two identical runs.
TIMING_PREFIXES = ("time/", "throughput/")
REFERENCE_FILE = "reference.safetensors"
"""``grpo.reference_offload``: the reference's weights in the run directory while training runs."""
OFFLOADED_REFERENCE_TOKENS = 2048
"""``grpo.reference_offload``: the reference pass's micro-batches hold at most this many tokens (or
``optim.tokens_per_micro_batch`` if fewer): its activations (~0.2 GiB at Qwen2.5-0.5B's MLP width, not ~0.4 at
the default 8,192) come on top of the weights it maps in, and that phase is then the step's peak."""


class PromptSampler:
    """Epoch-wise shuffled prompt indices; its state (epoch, position) is part of a checkpoint."""

    def __init__(self, num: int, seed: int):
        self.num, self.seed, self.epoch, self.pos = num, seed, 0, 0
        self._perm = self._permutation()

    def _permutation(self) -> list[int]:
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        return torch.randperm(self.num, generator=g).tolist()

    def take(self, k: int) -> list[int]:
        out = []
        while len(out) < k:
            if self.pos == self.num:
                self.epoch, self.pos = self.epoch + 1, 0
                self._perm = self._permutation()
            out.append(self._perm[self.pos])
            self.pos += 1
        return out

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, s: dict) -> None:
        self.epoch, self.pos = s["epoch"], s["pos"]
        self._perm = self._permutation()


@dataclass
class Group:
    """One prompt's G sampled completions (a GRPO group) and, once scored, their rewards."""

    sample_idx: int  # index into the task's samples
    prompt_ids: list[int]
    completions: list[Completion]  # (G,)
    round: int  # the sampling round it came from (1 = the first; the only one without dynamic sampling)
    row: int  # its place among that round's prompts: its rows in the round's forward record are row*G … row*G+G-1
    texts: list[str] = field(default_factory=list)  # (G,) decoded completions
    rewards: list[float] = field(default_factory=list)  # (G,) total rewards, overlong shaping included
    reward_parts: dict[str, list[float | None]] = field(default_factory=dict)  # name -> (G,)


@dataclass
class Rollouts:
    """One step's rollout batch, flattened group-major: rows ``g*G … g*G+G-1`` are prompt ``g``'s samples."""

    prompt_ids: list[list[int]]  # (N,) ragged
    completion_ids: list[list[int]]  # (N,) ragged
    old_logps: list[torch.Tensor]  # (N,) ragged float32
    finish_reasons: list[str]
    texts: list[str]
    sample_idx: list[int]  # index into the task's samples, per row
    rewards: torch.Tensor  # (N,)
    reward_parts: dict[str, list[float | None]]
    record: object = None  # the rollout's ForwardRecord (r1.models.replay), when one was taken
    record_rows: list[int] | None = None  # (N,) each row's row in the record
    policy_version: int | None = None  # update count when sampled, if the logprobs are the policy's own

    @classmethod
    def from_groups(cls, groups: list[Group], group_size: int, record: object = None) -> Rollouts:
        """The groups' rows one after another. ``record`` (the first sampling round's forward record, or None) is
        kept when every group comes from that round."""
        G = group_size
        r = cls(
            prompt_ids=[g.prompt_ids for g in groups for _ in range(G)],
            completion_ids=[cp.token_ids for g in groups for cp in g.completions],
            old_logps=[cp.logprobs.float() for g in groups for cp in g.completions],
            finish_reasons=[cp.finish_reason for g in groups for cp in g.completions],
            texts=[t for g in groups for t in g.texts],
            sample_idx=[g.sample_idx for g in groups for _ in range(G)],
            rewards=torch.tensor([x for g in groups for x in g.rewards], dtype=torch.float32),
            reward_parts={k: [x for g in groups for x in g.reward_parts[k]] for k in groups[0].reward_parts},
        )
        if record is not None and all(g.round == 1 for g in groups):
            r.record, r.record_rows = record, [g.row * G + j for g in groups for j in range(G)]
        return r

    @classmethod
    def empty(cls, part_names: list[str]) -> Rollouts:
        """No rows (a worker whose sampling kept no group)."""
        return cls([], [], [], [], [], [], torch.zeros(0), {k: [] for k in part_names})


@dataclass
class TrainBatch:
    """This worker's rollout rows as the losses take them: right-padded (N, Tc) tensors on the training device."""

    rollouts: Rollouts
    completion_ids: torch.Tensor  # (N, Tc) long, padded with the pad token
    mask: torch.Tensor  # (N, Tc) bool: real tokens that carry gradient (truncated rows off with overlong=mask)
    old_logps: torch.Tensor  # (N, Tc) float32: the rollout's logprobs
    advantages: torch.Tensor  # (N,)
    lengths: list[int]  # (N,) prompt + completion tokens
    completion_lengths: list[int]  # (N,)
    temperature: float  # the rollout's sampling temperature (1 for greedy): logprobs are of softmax(logits / it)
    ref_logps: torch.Tensor | None = None  # (N, Tc) float32, when β > 0


def micro_batches(lengths: list[int], rows: list[int], token_budget: int) -> list[list[int]]:
    """Split ``rows`` into micro-batches whose padded size (rows × longest) fits ``token_budget``.

    Rows are sorted longest first so similar lengths share a micro-batch (less padding). A row longer than the
    budget gets a micro-batch of its own.
    """
    order = sorted(rows, key=lambda r: -lengths[r])
    out, cur, cur_max = [], [], 0
    for r in order:
        new_max = max(cur_max, lengths[r])
        if cur and new_max * (len(cur) + 1) > token_budget:
            out.append(cur)
            cur, new_max = [], lengths[r]
        cur.append(r)
        cur_max = new_max
    if cur:
        out.append(cur)
    return out


class GRPOTrainer:
    """GRPO on one task: ``train()`` runs the steps, ``step()`` is one of them (see the module docstring for its
    phases). Built from a validated config; ``resume`` continues a run directory from its latest checkpoint. With
    several data-parallel workers (``r1.train.dist``), each builds one; rank 0 writes the run directory."""

    reuse_rollout_logprobs = True
    """Hand the sampler's logprobs to the train pass's head as its forward values while the policy has not changed
    since it sampled (``KnownLogprobs``); False: the head computes them (the reference in the tests)."""

    def __init__(self, cfg: GRPOConfig, resume: str | Path | None = None):
        self.cfg = cfg
        c = cfg
        _check_batch_shape(c.grpo, world=1)
        self.overlong: Overlong = OVERLONG.get(c.grpo.overlong)  # an unknown name fails here, listing the valid ones
        self.device, self.dtype = setup_compute(c.run, c.model)
        dist.init_from_env(self.device)
        self.rank, self.world = dist.world()
        _check_batch_shape(c.grpo, self.world)

        # --- task, prompts, rewards (fail fast on bad input before any model is loaded)
        self.task = build_task(c.task.name, c.task.data, reflection_words=c.task.reflection_words, **c.task.params)
        self.samples = self.task.load(c.task.train_split)
        if not self.samples:
            raise R1Error(f"task {c.task.name!r} split {c.task.train_split!r} is empty")
        self.reward = CompositeReward([(r.name, r.weight, r.params, r.label, r.source) for r in c.rewards], self.task)
        ENGINES.get(c.rollout.engine)  # an unknown engine name fails here, before anything is loaded or written

        # --- run directory, model, optimizer
        self.start_step = 0
        self.run_dir, ckpt = open_run(c.run, resume)
        # With model.lora: self.model is the base with peft's LoRA layers inside (every forward path calls it),
        # self.peft the PeftModel around it (adapters off for the reference; saving the adapter).
        self.model, self.tok, self.peft = load_policy(
            c.model.path, c.model.lora_on(), ckpt, device=self.device, seed=c.run.seed
        )
        self.model.config.use_cache = True
        dist.barrier()  # every worker has checked the run directory before rank 0 (re)makes it
        if resume is None and self.rank == 0:  # model and data are good: now the run directory may be (re)made
            self.run_dir = prepare_run_dir(c.run.out_dir, c.run.name, c, overwrite=c.run.overwrite)
        if self.peft is not None:  # the adapter names its base (a preset base is saved in the run directory)
            set_base_path(self.peft, self.tok, c.model.path, self.run_dir, save=self.rank == 0)
        self.ref_model = None
        self.ref_offload: OffloadedWeights | None = None  # grpo.reference_offload: its weights in a file between passes
        if c.grpo.kl_coef > 0 and self.peft is not None:  # LoRA: the base is the policy with its adapters off
            self.ref_model = self.model
        elif c.grpo.kl_coef > 0:  # the reference is the initial policy, also when resuming
            self.ref_model, _ = load_model(c.model.path, device=self.device, seed=c.run.seed)
            self.ref_model.eval().requires_grad_(False)
            dist.broadcast_params_(self.ref_model)
            if c.grpo.reference_offload:  # rank 0 writes the file, every worker maps it in at its reference pass
                path = self.run_dir / REFERENCE_FILE
                self.ref_offload = OffloadedWeights(self.ref_model, path, write=self.rank == 0)
                dist.barrier()
        dist.broadcast_params_(self.model)  # workers start from rank 0's weights, whatever their loaders did
        self.optimizer = build_optimizer(self.model, c.optim)
        # The policy's and the reference's logits for the losses; which forward computes them is its business.
        reference_context = self.peft.disable_adapter if self.peft is not None else None
        if self.ref_offload is not None:
            reference_context = self.ref_offload.loaded
        self.policy_forward = PolicyForward(
            self.model, self.ref_model, self.tok.pad_token_id, self.device, reference_context=reference_context
        )
        if self.ref_offload is not None and self.policy_forward.lean_reference is not None:
            self.ref_offload.on_release.append(self.policy_forward.lean_reference.drop_cached)  # its copies go too
        if self.policy_forward.lean_policy is not None:
            self.policy_forward.lean_policy.checkpoint_layers = c.grpo.activation_checkpointing
        self.policy_forward.grads_into_params = True  # .backward() only: the head's gradients straight into .grad
        self.opt_steps_per_step = c.grpo.mu * c.grpo.num_minibatches
        self.scheduler = build_scheduler(self.optimizer, c.run.steps * self.opt_steps_per_step, c.optim)
        self.guard = NonFiniteGuard(c.run.max_nonfinite_steps)
        self.engine = build_engine(c.rollout.engine, self.model, self.tok)
        self.updates = 0  # optimizer updates so far in this process (KnownLogprobs: is the policy the sampler's?)
        self.sampling = sampling_params(c.rollout)
        # Each worker samples its own prompts and completions (rank 0's streams are the single-process ones).
        self.gen = torch.Generator(device="cpu").manual_seed(c.run.seed + 1_000_003 * self.rank)
        self.prompt_sampler = PromptSampler(len(self.samples), c.run.seed + self.rank)
        self._prompt_cache: dict[int, list[int]] = {}
        self._eval_samples: list | None = None

        if ckpt is not None:
            self.restore(ckpt)
        self.logger = None
        if self.rank == 0:  # rank 0 writes the run directory; the other workers only compute
            resume_step = self.start_step if ckpt is not None else None
            self.logger = MetricsLogger(self.run_dir, resume_step=resume_step, config=c)  # config: run.wandb
            (self.run_dir / "samples").mkdir(exist_ok=True)

    def restore(self, ckpt: Path) -> None:
        """Continue from checkpoint ``ckpt``: optimizer, scheduler, RNGs, this worker's sampler streams and prompt
        position, the step and the non-finite guard's count; rank 0 rewrites the config (overrides given on
        resume, e.g. ``run.steps``, are kept)."""
        state = restore_trainer_state(ckpt, self.optimizer, self.scheduler, self.prompt_sampler)
        ranks = state.get("ranks", [{"sampler_rng": state["sampler_rng"], "data": state["data"]}])
        if len(ranks) != self.world:
            raise R1Error(
                f"--resume: {ckpt} was written by {len(ranks)} data-parallel worker(s); resume it with "
                f"run.workers={len(ranks)}"
            )
        self.gen.set_state(ranks[self.rank]["sampler_rng"])
        self.prompt_sampler.load_state_dict(ranks[self.rank]["data"])
        self.start_step = state["step"]
        if "nonfinite" in state:
            self.guard.load_state_dict(state["nonfinite"])
        if self.rank == 0:
            save_config(self.cfg, self.run_dir / "config.yaml")  # keeps overrides given on resume (e.g. run.steps)
            console.print(f"resumed {self.run_dir} from {ckpt.name} (step {self.start_step})")

    # ------------------------------------------------------------------------------------------------ helpers
    def autocast(self):
        return autocast_context(self.device, self.dtype)

    def prompt_ids(self, i: int) -> list[int]:
        if i not in self._prompt_cache:
            self._prompt_cache[i] = tokenize_prompt(self.tok, self.cfg.task.template, self.task, self.samples[i])
        return self._prompt_cache[i]

    def decode(self, ids: list[int]) -> str:
        return self.tok.decode(ids, skip_special_tokens=True)

    # ------------------------------------------------------------------------------------------------ the step
    def step(self, step: int) -> dict:
        """One GRPO step; returns its metrics (only ``skipped: 1`` and the group counts when dynamic sampling kept
        no group on any worker).

        rollout (sample_groups → score_groups) → gather (every worker sees the whole batch's rewards, since
        advantages may normalise over it, and rank 0 its texts, for metrics and samples) → advantages → train_on
        this worker's rows (ref logprobs → minibatch_losses → update) → sync the engine's weights → metrics."""
        c = self.cfg
        timer = PhaseTimer()
        t0 = time.perf_counter()
        r, stats = self.rollout(timer)
        with timer("gather"):
            # The per-token tensors and the forward record stay here: only the batch's rows travel.
            local = r if r is None else replace(r, old_logps=[], record=None, record_rows=None)
            parts = dist.all_gather_objects((local, stats))
        stats = _group_stats([p[1] for p in parts])
        full = _concat([p[0] for p in parts if p[0] is not None])
        if full is None:  # dynamic sampling found no informative group anywhere: nothing to learn from this step
            return {**stats, "skipped": 1, "time/step": time.perf_counter() - t0}
        with timer("advantages"):
            advantages_all = compute_group_advantages(
                full.rewards, c.grpo.samples_per_prompt, c.grpo.adv_norm, c.grpo.adv_eps
            )  # (N_all,)
            offset = sum(len(p[0].completion_ids) for p in parts[: self.rank] if p[0] is not None)
            if r is None:  # this worker kept no group: it still joins the collectives, with no rows
                r = Rollouts.empty(list(full.reward_parts))
            advantages = advantages_all[offset : offset + len(r.completion_ids)]  # (N,) this worker's rows
        train_stats = self.train_on(r, advantages, timer)
        with timer("sync"):
            self.engine.update_weights(self.model)
        metrics = self.step_metrics(full, advantages_all)
        metrics.update(stats)
        metrics.update(train_stats)
        metrics["lr"] = self.scheduler.get_last_lr()[0]
        metrics.update(_timing_metrics(timer, t0, full))
        if self.rank == 0 and c.run.sample_every and (step % c.run.sample_every == 0 or step == c.run.steps):
            self.write_samples(step, full, advantages_all)
        return metrics

    # ------------------------------------------------------------------------------------------------ rollout
    def rollout(self, timer: PhaseTimer) -> tuple[Rollouts | None, dict]:
        """This worker's rollout batch: G completions for each of its P prompts, scored. With dynamic sampling
        (DAPO), groups whose rewards all agree (no gradient) are dropped and more prompts sampled, for at most
        ``grpo.max_sampling_rounds`` rounds, until P groups are kept (the batch may stay short; None when no group
        was kept). Returns the batch and this worker's ``groups/*`` counts."""
        c, G = self.cfg, self.cfg.grpo.samples_per_prompt
        P = c.grpo.prompts_per_step // self.world  # this worker's share of the step's prompts
        max_rounds = c.grpo.max_sampling_rounds if c.grpo.dynamic_sampling else 1
        kept: list[Group] = []
        record, rounds, groups_seen, zero_var_seen = None, 0, 0, 0
        while len(kept) < P and rounds < max_rounds:
            rounds += 1
            groups, round_record = self.sample_groups(self.prompt_sampler.take(P - len(kept)), rounds, timer)
            if rounds == 1:
                record = round_record
            with timer("rewards"):
                self.score_groups(groups)
                # float64 holds the rewards exactly, so "all equal" is judged on the values the reward returned
                rewards = torch.tensor([g.rewards for g in groups], dtype=torch.float64).flatten()  # (B*G,)
                zero_var = group_zero_variance(rewards, G).tolist()  # (B,)
            groups_seen += len(groups)
            zero_var_seen += sum(zero_var)
            kept += [g for g, z in zip(groups, zero_var) if not (c.grpo.dynamic_sampling and z)]
        stats = {"groups/seen": groups_seen, "groups/zero_variance": zero_var_seen, "groups/kept": len(kept),
                 "groups/sampling_rounds": rounds}
        if not kept:
            return None, stats
        r = Rollouts.from_groups(kept, G, record)
        # every round of the step sampled from the same weights; the logprobs are the policy's own with such an engine
        own = getattr(self.engine, "own_logprobs", False) and getattr(self.engine, "model", None) is self.model
        r.policy_version = self.updates if own else None  # (Engine.own_logprobs)
        return r, stats

    def sample_groups(self, idx: list[int], sampling_round: int, timer: PhaseTimer) -> tuple[list[Group], object]:
        """Sampling: G completions for each prompt ``idx`` from the current policy, on this worker's random stream.
        The first round records the engine's forward when :meth:`records_rollout` says so. Returns the unscored
        groups and that record (None when none was taken)."""
        G = self.cfg.grpo.samples_per_prompt
        prompts = [self.prompt_ids(i) for i in idx]
        record = sampling_round == 1 and self.records_rollout(len(prompts) * G, max(map(len, prompts)))
        with timer("rollout"), self.autocast():
            self.model.eval()
            outs = self.engine.generate(prompts, G, self.sampling, generator=self.gen, record=record)
        groups = [Group(i, p, comps, sampling_round, k) for k, (i, p, comps) in enumerate(zip(idx, prompts, outs))]
        return groups, (self.engine.last_record if record else None)

    def score_groups(self, groups: list[Group]) -> None:
        """Rewards: decode each completion, score it with the composite reward (bounded in time: see
        ``r1.rewards.base``) and, where ``grpo.overlong`` shapes rewards, add its length penalty (the ``overlong``
        reward part). Fills each group's ``texts``, ``rewards`` and ``reward_parts``."""
        c, G = self.cfg, self.cfg.grpo.samples_per_prompt
        penalty = self.overlong.penalty
        with self.reward.budget(len(groups) * G):
            for g in groups:
                g.texts = [self.decode(cp.token_ids) for cp in g.completions]
                scored = [self.reward(t, self.samples[g.sample_idx]) for t in g.texts]
                g.rewards = [s[0] for s in scored]
                g.reward_parts = {k: [s[1][k] for s in scored] for k in self.reward.names}
                if penalty is not None:
                    limits = (c.rollout.max_new_tokens, c.grpo.overlong_buffer, c.grpo.overlong_penalty)
                    pen = [penalty(len(cp.token_ids), *limits) for cp in g.completions]
                    g.rewards = [r + p for r, p in zip(g.rewards, pen)]
                    g.reward_parts["overlong"] = pen

    def records_rollout(self, rows: int, longest_prompt: int) -> bool:
        """Should the rollout record its forward for the train pass (``grpo.replay_rollout``)? Only when the train
        pass will differentiate the very policy that samples (μ = 1, one minibatch: one optimizer step, after
        the rollout), in fp32 or bf16 autocast, without LoRA adapters (the replay's backward is the whole weights'),
        and the record is no larger than ``grpo.replay_max_tokens``. The engine keeps a record where it can
        (``Engine.last_record``; None otherwise)."""
        c = self.cfg
        return (
            c.grpo.replay_rollout
            and self.peft is None
            and c.grpo.mu == 1
            and c.grpo.num_minibatches == 1
            and self.dtype in (torch.float32, torch.bfloat16)
            and rows * (longest_prompt + c.rollout.max_new_tokens)
            <= (c.grpo.replay_max_tokens or c.optim.tokens_per_micro_batch)
        )

    # ------------------------------------------------------------------------------------------------ training
    def train_on(self, r: Rollouts, advantages: torch.Tensor, timer: PhaseTimer) -> dict:
        """Train on this worker's rows: the reference's logprobs (β > 0), then μ passes over the batch, each split
        into ``grpo.num_minibatches`` minibatches of whole groups, each one optimizer step (:meth:`minibatch_losses`
        → :meth:`update`). Every worker runs the same number of minibatches (some may be empty on some workers).
        Returns the update's metrics, summed over workers."""
        c, G = self.cfg, self.cfg.grpo.samples_per_prompt
        b = self.train_batch(r, advantages)
        if self.ref_model is not None:
            with timer("ref"):
                b.ref_logps = self.ref_logprobs(b)
        group_order = list(range(len(r.completion_ids) // G))
        acc = {k: torch.zeros((), device=self.device) for k in _TRAIN_SUMS}
        grad_norms = []
        skipped_before = self.guard.total
        self.model.train()
        with timer("train"):
            for epoch in range(c.grpo.mu):
                for mb_groups in _split(group_order, c.grpo.num_minibatches, keep_empty=True):
                    rows = [g * G + j for g in mb_groups for j in range(G)]
                    opt_loss = self.minibatch_losses(b, rows, first_pass=epoch == 0, acc=acc)
                    if opt_loss is not None:  # None: the minibatch is empty on every worker, no update
                        grad_norms.append(self.update(opt_loss))
        return self.train_metrics(acc, b, grad_norms, skipped_before)

    def train_batch(self, r: Rollouts, advantages: torch.Tensor) -> TrainBatch:
        """This worker's rows as padded tensors on the training device (``grpo.overlong=mask``: truncated rows carry
        no gradient, DAPO's overlong filtering)."""
        c = self.cfg
        completion_ids = right_pad(r.completion_ids, self.tok.pad_token_id, torch.long).to(self.device)  # (N, Tc)
        mask = right_pad([[True] * len(x) for x in r.completion_ids], False, torch.bool).to(self.device)  # (N, Tc)
        if self.overlong.mask_truncated:
            truncated = torch.tensor([f == "length" for f in r.finish_reasons], device=self.device)
            mask = mask & ~truncated[:, None]
        return TrainBatch(
            rollouts=r,
            completion_ids=completion_ids,
            mask=mask,
            old_logps=right_pad(r.old_logps, 0.0, torch.float32).to(self.device),  # (N, Tc)
            advantages=advantages.to(self.device),
            lengths=[len(p) + len(x) for p, x in zip(r.prompt_ids, r.completion_ids)],
            completion_lengths=[len(x) for x in r.completion_ids],
            temperature=c.rollout.temperature if c.rollout.temperature > 0 else 1.0,
        )

    def ref_logprobs(self, b: TrainBatch) -> torch.Tensor:
        """The reference model's logprobs of the sampled tokens, (N, Tc) float32, micro-batch by micro-batch (with
        ``grpo.reference_offload`` its weights mapped in once for all of them)."""
        offload = self.ref_offload.loaded() if self.ref_offload is not None else nullcontext()
        budget = self.cfg.optim.tokens_per_micro_batch
        if self.ref_offload is not None:  # the memory-lean setting: smaller passes beside the mapped-in weights
            budget = min(budget, OFFLOADED_REFERENCE_TOKENS)
        with torch.no_grad(), self.autocast(), offload:
            ref_logps = torch.zeros_like(b.old_logps)
            for mb in micro_batches(b.lengths, list(range(len(b.lengths))), budget):
                tc = max(b.completion_lengths[i] for i in mb)
                ids = b.completion_ids[mb, :tc]  # (n, tc)
                ref_logps[mb, :tc] = self.policy_forward.reference_logprobs(b.rollouts, mb, tc, ids, b.temperature)
        return ref_logps

    def minibatch_losses(self, b: TrainBatch, rows: list[int], first_pass: bool, acc: dict) -> torch.Tensor | None:
        """One minibatch's loss, micro-batch by micro-batch (:meth:`micro_batch_loss`), each backpropagated at once
        so gradients add up in ``.grad``. The normalisers count the minibatch's tokens and rows over all workers,
        so the workers' summed gradients are the whole minibatch's. Returns this worker's loss, or None when the
        minibatch is empty on every worker."""
        counts = torch.stack([b.mask[rows].sum().double(), torch.tensor(float(len(rows)))])
        dist.all_reduce_sum_([counts])
        if counts[1] == 0:
            return None
        num_tokens, num_seqs = counts[0].clamp(min=1).float().to(self.device), int(counts[1])
        opt_loss = torch.zeros((), device=self.device)  # this optimizer step's loss on this worker
        for micro in micro_batches(b.lengths, rows, self.cfg.optim.tokens_per_micro_batch):
            opt_loss += self.micro_batch_loss(b, micro, num_seqs, num_tokens, first_pass, acc)
        return opt_loss

    def micro_batch_loss(
        self, b: TrainBatch, micro: list[int], num_seqs: int, num_tokens: torch.Tensor, first_pass: bool, acc: dict
    ) -> torch.Tensor:
        """One micro-batch: the policy's logprobs, the clipped surrogate (+ β·KL to the reference), aggregated and
        backpropagated. Adds the loss, clipped tokens, tokens, KL and, on the first pass, entropy and the
        rollout-vs-train logprob gap to the sums in ``acc``; returns the (detached) loss."""
        g = self.cfg.grpo
        tc = max(b.completion_lengths[i] for i in micro)
        m = b.mask[micro, :tc]  # (n, tc)
        known = None  # the sampler's logprobs are this pass's values while the policy is the one that sampled
        if self.reuses_rollout_logprobs(b.rollouts.policy_version):
            known = KnownLogprobs(b.old_logps[micro, :tc])
        with self.autocast():  # the head's blocks of logits only: never (n, tc, V) at once (r1.models.policy)
            ids = b.completion_ids[micro, :tc]
            logps, entropy = self.policy_forward.policy_logprobs(
                b.rollouts, micro, tc, ids, b.temperature, known=known
            )  # (n, tc); with ``known`` used, ``entropy`` is filled by the backward
        per_tok, clipped = compute_policy_loss(
            logps, b.old_logps[micro, :tc], b.advantages[micro], m,
            clip_low=g.clip_low, clip_high=g.clip_high, is_level=g.is_level,
        )
        if b.ref_logps is not None:
            kl = compute_kl(logps, b.ref_logps[micro, :tc], g.kl_estimator)  # (n, tc)
            per_tok = per_tok + g.kl_coef * kl
            acc["kl"] += (kl.detach() * m).sum()
        loss = aggregate_loss(
            per_tok, m, g.loss_agg, num_seqs=num_seqs, num_tokens=num_tokens, max_len=self.cfg.rollout.max_new_tokens
        )
        loss.backward()
        acc["loss"] += loss.detach()
        acc["clipped"] += clipped.sum()
        acc["tokens"] += m.sum()
        if first_pass:
            with torch.no_grad():
                train_logps = known.recomputed if known is not None and known.used else logps.detach()
                acc["entropy"] += (entropy.detach() * m).sum()
                acc["diff"] += ((train_logps - b.old_logps[micro, :tc]).abs() * m).sum()
        return loss.detach()

    def reuses_rollout_logprobs(self, version: int | None) -> bool:
        """May the train pass take the sampler's logprobs as its head's forward values? Yes while the policy is the
        one that sampled (``version``: the update count then, None unless the native engine sampled with this very
        model), in float32: there the two passes' values agree to float32 rounding. Not in bf16, where they differ
        by bfloat16's, which the k3 KL's gradient coefficient ``1 - exp(ref - logp)`` magnifies."""
        return (
            self.reuse_rollout_logprobs
            and version is not None
            and version == self.updates
            and self.dtype == torch.float32
        )

    def update(self, opt_loss: torch.Tensor) -> torch.Tensor:
        """One optimizer step: sum the workers' gradients, clip them and step, unless the loss or the gradient norm
        is NaN/inf on any worker (then no worker updates, and the guard counts it). Returns the gradient norm."""
        self.updates += 1  # the policy may change below (the sampler's logprobs are no longer its own)
        dist.all_reduce_grads_(self.model)
        grad_norm = clip_grad_norm(self.model.parameters(), self.cfg.optim.grad_clip)
        self.guard.step(self.optimizer, self.scheduler, opt_loss, grad_norm, reduce=dist.all_reduce_sum_)
        return grad_norm.detach()

    def train_metrics(self, acc: dict, b: TrainBatch, grad_norms: list, skipped_before: int) -> dict:
        """The update's metrics from the sums in ``acc``, summed over workers: loss per optimizer step, clip
        fraction and KL per trained token, entropy and rollout-vs-train logprob gap per first-pass token."""
        acc["tokens_first"] = b.mask.sum().double()
        totals = torch.stack([acc[k].double() for k in acc])
        dist.all_reduce_sum_([totals])
        acc = dict(zip(acc, totals))
        tokens_all = acc["tokens"].clamp(min=1)
        tokens_first = acc["tokens_first"].clamp(min=1)
        return {
            "loss": (acc["loss"] / self.opt_steps_per_step).item(),
            "clip_fraction": (acc["clipped"] / tokens_all).item(),
            "kl": (acc["kl"] / tokens_all).item() if b.ref_logps is not None else 0.0,
            "entropy": (acc["entropy"] / tokens_first).item(),
            "grad_norm": torch.stack(grad_norms).mean().item(),
            "logprob_diff_rollout_vs_train": (acc["diff"] / tokens_first).item(),
            "nonfinite_steps": self.guard.total - skipped_before,
            "nonfinite_steps_total": self.guard.total,
        }

    # ------------------------------------------------------------------------------------------------ metrics
    def step_metrics(self, r: Rollouts, advantages: torch.Tensor) -> dict:
        lens = torch.tensor([len(x) for x in r.completion_ids], dtype=torch.float32)
        m = {
            "reward/total": r.rewards.mean().item(),
            "reward/std": r.rewards.std().item() if len(r.rewards) > 1 else 0.0,
            "response_length/mean": lens.mean().item(),
            "response_length/max": lens.max().item(),
            "truncated_share": sum(f == "length" for f in r.finish_reasons) / len(r.finish_reasons),
            "advantage/abs_mean": advantages.abs().mean().item(),
        }
        for name, vals in r.reward_parts.items():
            vals = [v for v in vals if v is not None]
            m[f"reward/{name}"] = sum(vals) / len(vals) if vals else float("nan")
        per_completion = [self.task.completion_metrics(t) for t in r.texts]
        for key in sorted({k for d in per_completion for k in d}):
            m[f"task/{key}"] = sum(d.get(key, 0.0) for d in per_completion) / len(per_completion)
        sources = [self.samples[i].meta.get("source") for i in r.sample_idx]
        for name in sorted({s for s in sources if s is not None}):  # a mixture task's prompt sources
            mine = [k for k, s in enumerate(sources) if s == name]
            m[f"source/{name}/reward"] = r.rewards[mine].mean().item()
            m[f"source/{name}/share"] = len(mine) / len(sources)
        if "accuracy" in r.reward_parts:
            m["accuracy"] = m["reward/accuracy"]
        else:
            m["accuracy"] = sum(
                self.task.grade(t, self.samples[i]) for t, i in zip(r.texts, r.sample_idx)
            ) / len(r.texts)
        return m

    def write_samples(self, step: int, r: Rollouts, advantages: torch.Tensor) -> None:
        from rich.table import Table

        path = self.run_dir / "samples" / f"step_{step:06d}.jsonl"
        with path.open("w") as f:
            for k in range(len(r.texts)):
                s = self.samples[r.sample_idx[k]]
                row = {
                    "step": step,
                    "id": s.id,
                    "question": self.task.question(s),
                    "answer": s.answer,
                    "completion": r.texts[k],
                    "reward": r.rewards[k].item(),
                    "advantage": advantages[k].item(),
                    "finish_reason": r.finish_reasons[k],
                    **{f"reward/{n}": v[k] for n, v in r.reward_parts.items()},
                }
                f.write(json.dumps(row) + "\n")
        G = self.cfg.grpo.samples_per_prompt
        table = Table(title=f"samples at step {step}", show_lines=True)
        for col in ("question", "answer", "completion", "reward"):
            table.add_column(col, overflow="fold")
        for k in range(0, len(r.texts), G)[: self.cfg.run.num_samples_shown]:
            s = self.samples[r.sample_idx[k]]
            table.add_row(self.task.question(s), s.answer, printable(r.texts[k]), f"{r.rewards[k].item():.2f}")
        console.print(table)

    def evaluate(self, step: int) -> dict:
        """Held-out evaluation (``cfg.eval``); metrics come back prefixed ``eval/``, completions go to
        ``samples/eval_step_N.jsonl``."""
        from r1.train.quick_eval import quick_eval

        e = self.cfg.eval
        if self._eval_samples is None:
            self._eval_samples = self.task.load(e.split)[: e.num_prompts]
        sampling = sampling_params(self.cfg.rollout, temperature=e.temperature, top_p=e.top_p, top_k=0)
        self.model.eval()
        with self.autocast():
            metrics, records = quick_eval(
                self.engine, self.tok, self.task, self._eval_samples, self.cfg.task.template, sampling,
                k=e.samples_per_prompt, seed=self.cfg.run.seed + 7_919 * step,
            )
        with (self.run_dir / "samples" / f"eval_step_{step:06d}.jsonl").open("w") as f:
            for rec in records:
                f.write(json.dumps(rec) + "\n")
        return {f"eval/{k}": v for k, v in metrics.items()}

    def checkpoint(self, step: int) -> Path:
        """Rank 0 writes the checkpoint; with several workers it holds every worker's sampler streams. Weights
        holding NaN/inf are refused (R1Error) by every worker alike (their weights are equal), before any waits."""
        if self.world > 1:
            check_finite_weights(self.model, self.run_dir, step)
        ranks = dist.all_gather_objects({"sampler_rng": self.gen.get_state(), "data": self.prompt_sampler.state_dict()})
        path = self.run_dir / "checkpoints" / f"step_{step:06d}"
        if self.rank == 0:
            extra = {"ranks": ranks} if self.world > 1 else {}
            state = trainer_state(
                step, self.optimizer, self.scheduler, self.prompt_sampler, sampler_rng=self.gen.get_state(),
                nonfinite=self.guard.state_dict(), **extra
            )
            lora = self.cfg.model.lora_on()
            path = save_checkpoint(
                self.run_dir, step, self.model if self.peft is None else self.peft, self.tok, state,
                keep=self.cfg.run.keep_checkpoints, merge=lora is not None and lora.merge,
            )
        dist.barrier()
        return path

    def train(self, on_step_end: Callable[[int, dict], None] | None = None) -> Path:
        """Run the remaining steps. With several workers, rank 0 evaluates, logs, prints and checkpoints."""
        c = self.cfg
        main = self.rank == 0
        first = self.start_step + 1
        progress = make_progress(c.run.progress and main)
        try:
            with progress:
                bar = progress.add_task("grpo", total=c.run.steps, completed=self.start_step, info="")
                if main and c.eval.every and self.start_step == 0:
                    ev = self.evaluate(0)
                    self.logger.log(0, ev)
                    progress.console.print(_format_eval(0, ev))
                dead_steps = 0  # steps in a row whose gradient was exactly 0 although advantages were not
                for step in range(first, c.run.steps + 1):
                    metrics = self.step(step)
                    # A live policy has a non-zero gradient wherever an advantage is non-zero; exactly 0 means its
                    # activations saturated (e.g. optim.lr=1e3): finite, so the guard does not see it, but dead.
                    dead = metrics.get("grad_norm") == 0.0 and metrics.get("advantage/abs_mean", 0.0) > 0.0
                    dead_steps = dead_steps + 1 if dead else 0
                    if main and dead_steps == _DEAD_STEPS_TO_WARN:
                        progress.console.print(
                            f"[yellow]warning:[/] step {step}: the gradient has been exactly 0 for {dead_steps} steps "
                            f"although advantages are not: the model has stopped learning (saturated activations; "
                            f"optim.lr={c.optim.lr:g} may be far too high)"
                        )
                    if main and c.eval.every and (step % c.eval.every == 0 or step == c.run.steps):
                        ev = self.evaluate(step)
                        metrics.update(ev)
                        progress.console.print(_format_eval(step, ev))
                    if main:
                        self.logger.log(step, metrics)
                        info = (
                            f"reward {metrics.get('reward/total', float('nan')):.3f} "
                            f"acc {metrics.get('accuracy', float('nan')):.3f} "
                            f"len {metrics.get('response_length/mean', float('nan')):.1f}"
                        )
                        progress.update(bar, advance=1, info=info)
                        if c.run.log_every and step % c.run.log_every == 0:
                            progress.console.print(_format_line(step, metrics))
                    if self.guard.diverged:  # every worker alike (the skip flags are summed over them)
                        raise self.guard.error(step, c.optim.lr)
                    if (c.run.save_every and step % c.run.save_every == 0) or step == c.run.steps:
                        checkpoint_unless_skipped(
                            self.checkpoint, step, self.guard.consecutive, warn=main, final=step == c.run.steps
                        )
                    if on_step_end is not None:
                        on_step_end(step, metrics)
        finally:
            if self.logger is not None:
                self.logger.close()
            if self.ref_offload is not None and self.rank == 0:  # a resumed run writes it again from model.path
                self.ref_offload.path.unlink(missing_ok=True)
        return self.run_dir


#: Steps in a row with an exactly-zero gradient and non-zero advantages before the trainer warns of a dead model.
_DEAD_STEPS_TO_WARN = 3


def printable(text: str, limit: int = 400) -> str:
    """Text safe for a terminal: control characters escaped (an untrained model emits arbitrary bytes), cut at
    ``limit`` characters."""
    out = "".join(ch if ch.isprintable() or ch == "\n" else ascii(ch)[1:-1] for ch in text)
    return out if len(out) <= limit else out[:limit] + "…"


def _check_batch_shape(g: GRPOAlgoConfig, world: int) -> None:
    """The step's batch splits evenly: whole prompts per worker, at least one group per minibatch per worker."""
    if g.prompts_per_step < 1 or g.samples_per_prompt < 1:
        raise R1Error("grpo.prompts_per_step and grpo.samples_per_prompt must be >= 1")
    if g.num_minibatches < 1 or g.num_minibatches > g.prompts_per_step:
        raise R1Error("grpo.num_minibatches must be between 1 and grpo.prompts_per_step")
    if g.prompts_per_step % world:
        raise R1Error(
            f"grpo.prompts_per_step ({g.prompts_per_step}) must be a multiple of the {world} data-parallel workers"
        )
    if g.num_minibatches > g.prompts_per_step // world:
        raise R1Error("grpo.num_minibatches must be at most grpo.prompts_per_step / workers")


#: The sums ``train_on`` accumulates over a step's micro-batches (then over workers) for its metrics.
_TRAIN_SUMS = ("loss", "clipped", "kl", "entropy", "tokens", "diff")


def _group_stats(stats: list[dict]) -> dict:
    """The step's ``groups/*`` metrics from each worker's counts."""
    return {
        "groups/zero_variance_share": sum(s["groups/zero_variance"] for s in stats)
        / max(1, sum(s["groups/seen"] for s in stats)),
        "groups/kept": sum(s["groups/kept"] for s in stats),
        "groups/sampling_rounds": max(s["groups/sampling_rounds"] for s in stats),
    }


def _timing_metrics(timer: PhaseTimer, t0: float, full: Rollouts) -> dict:
    """Seconds per phase, for the step (begun at ``t0``) and tokens per second (see ``TIMING_PREFIXES``)."""
    gen_tokens = sum(len(x) for x in full.completion_ids)
    step_time = time.perf_counter() - t0
    m = {f"time/{k}": v for k, v in timer.times.items()}
    m["time/step"] = step_time
    m["throughput/gen_tokens_per_s"] = gen_tokens / max(timer.times.get("rollout", 1e-9), 1e-9)
    m["throughput/tokens_per_s"] = (gen_tokens + sum(len(p) for p in full.prompt_ids)) / step_time
    return m


def _split(items: list[int], k: int, keep_empty: bool = False) -> list[list[int]]:
    """``k`` contiguous, near-equal chunks (empty ones dropped unless ``keep_empty``)."""
    n = len(items)
    bounds = [round(i * n / k) for i in range(k + 1)]
    return [items[bounds[i] : bounds[i + 1]] for i in range(k) if keep_empty or bounds[i + 1] > bounds[i]]


def _concat(parts: list[Rollouts]) -> Rollouts | None:
    """Rollout batches one after another; None for no batch."""
    if not parts:
        return None
    names = list(parts[0].reward_parts)
    return Rollouts(
        prompt_ids=[x for p in parts for x in p.prompt_ids],
        completion_ids=[x for p in parts for x in p.completion_ids],
        old_logps=[x for p in parts for x in p.old_logps],
        finish_reasons=[x for p in parts for x in p.finish_reasons],
        texts=[x for p in parts for x in p.texts],
        sample_idx=[x for p in parts for x in p.sample_idx],
        rewards=torch.cat([p.rewards for p in parts]),
        reward_parts={k: [x for p in parts for x in p.reward_parts[k]] for k in names},
    )


def _format_eval(step: int, m: dict) -> str:
    parts = [f"{k[len('eval/'):]} {v:.3g}" for k, v in m.items() if k != "eval/num_completions"]
    return f"eval @ step {step:>3} | " + " | ".join(parts)


def _format_line(step: int, m: dict) -> str:
    keys = [
        ("reward/total", "reward"),
        ("accuracy", "acc"),
        ("response_length/mean", "len"),
        ("groups/zero_variance_share", "zero_var"),
        ("clip_fraction", "clip"),
        ("kl", "kl"),
        ("entropy", "ent"),
        ("grad_norm", "gnorm"),
        ("time/step", "s"),
    ]
    parts = [f"{short} {m[k]:.3g}" for k, short in keys if k in m and isinstance(m[k], (int, float))]
    if m.get("nonfinite_steps"):
        parts.append(f"skipped {m['nonfinite_steps']} non-finite update(s)")
    return f"step {step:>5} | " + " | ".join(parts)


def train_grpo(
    cfg: GRPOConfig, resume: str | Path | None = None, on_step_end: Callable[[int, dict], None] | None = None
) -> Path:
    """Run GRPO; returns the run directory. ``resume`` continues a run directory from its latest checkpoint.

    ``run.workers > 1`` starts that many data-parallel worker processes (``r1.train.dist``) and returns when they
    are done; ``on_step_end`` then needs ``run.workers=1`` (it would run in another process)."""
    validate(cfg)  # the whole config, before anything is loaded, written or moved
    workers = cfg.run.workers
    if workers < 1:
        raise R1Error(f"run.workers must be >= 1, got {workers}")
    if workers > 1 and int(os.environ.get("WORLD_SIZE", "1")) == 1:
        if on_step_end is not None:
            raise R1Error("an on_step_end callback needs run.workers=1")
        if cfg.grpo.prompts_per_step % workers:
            raise R1Error(
                f"grpo.prompts_per_step ({cfg.grpo.prompts_per_step}) must be a multiple of run.workers ({workers})"
            )
        cfg = copy.deepcopy(cfg)
        cfg.run.threads = max(1, (cfg.run.threads or torch.get_num_threads()) // workers)
        t0 = time.perf_counter()
        dist.spawn(_worker_main, workers, cfg, None if resume is None else str(resume))
        run_dir = Path(resume) if resume is not None else Path(cfg.run.out_dir) / cfg.run.name
        console.print(f"done in {time.perf_counter() - t0:.1f}s ({workers} workers); run directory: {run_dir}")
        return run_dir
    trainer = GRPOTrainer(cfg, resume=resume)
    t0 = time.perf_counter()
    run_dir = trainer.train(on_step_end=on_step_end)
    if trainer.rank == 0:
        console.print(f"done in {time.perf_counter() - t0:.1f}s; run directory: {run_dir}")
    return run_dir


def _worker_main(cfg: GRPOConfig, resume: str | None) -> None:
    GRPOTrainer(cfg, resume=resume).train()


__all__ = ["GRPOTrainer", "train_grpo", "Group", "Rollouts", "micro_batches", "PromptSampler", "TIMING_PREFIXES"]
