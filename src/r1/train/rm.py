"""Reward-model engine (``r1 rm``): a one-score sequence classifier trained on preference pairs with the
Bradley-Terry loss, evaluated by pairwise accuracy on held-out pairs.

Model: ``AutoModelForSequenceClassification`` (``num_labels=1``) on a causal-LM backbone (a tiny preset or a local
HF directory; see :func:`r1.rewards.reward_model.load_sequence_classifier`). The score ``r(x, y)`` is the head's
output at the last token of ``prompt + separator + response`` (:func:`r1.rewards.reward_model.rm_text`). Loss, per
pair of a chosen response ``y_c`` and a rejected one ``y_r`` to the same prompt (Bradley & Terry 1952; InstructGPT,
arXiv:2203.02155, eq. 1)::

    P(y_c ≻ y_r | x) = σ(r(x, y_c) − r(x, y_r))        loss = −mean log σ(r_c − r_r)

Evaluation: pairwise accuracy, the share of held-out pairs with ``r_c > r_r`` (a tie counts as wrong), at step 0
(the untrained head: about chance) and at the end (and every ``eval.every`` steps), logged to ``metrics.jsonl`` as
``eval/*`` and written to ``summary.json`` with the accuracy per rejected kind when the pairs carry a ``kind``.
The result is the run's final checkpoint: an ordinary HF directory that loads with
``AutoModelForSequenceClassification.from_pretrained`` (the run directory stands for it in ``reward_model``'s
``path``).

Why the loss is written here rather than TRL's ``RewardTrainer``: it is two lines of math, TRL is not a dependency of
the package (only of the benchmarks), and its trainer is a ``transformers.Trainer`` with its own loop, run folder
and checkpoint format. Written here, ``r1 rm`` has the machinery of every r1 trainer: the config validated before
anything is written, the run directory, AdamW + schedule + the NaN guard, atomic checkpoints and exact ``--resume``.
The loss matches TRL's (``-logsigmoid(chosen - rejected).mean()``) without its optional margin and centering terms.

Left out: the margin term (Llama 2) and reward centering, ties, several responses per prompt (ranking losses),
multi-process training.
"""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from r1.config import RMConfig, save_config, validate
from r1.data.batching import right_pad
from r1.data.readers import iter_records
from r1.errors import R1Error
from r1.models import resolve_run_dir
from r1.rewards.reward_model import (
    DEFAULT_SEPARATOR, encode_texts, load_sequence_classifier, rm_text, score_ids,
)
from r1.runs import console, make_progress, prepare_run_dir
from r1.tasks.preference import make_pairs
from r1.train.checkpoint import (
    checkpoint_unless_skipped,
    restore_trainer_state,
    save_checkpoint,
    trainer_state,
)
from r1.train.common import PhaseTimer, autocast_context, open_run, setup_compute
from r1.train.grpo import micro_batches
from r1.train.metrics import MetricsLogger, read_metrics
from r1.train.optim import NonFiniteGuard, build_optimizer, build_scheduler, clip_grad_norm
from r1.train.sft import BatchSampler

PAIR_FIELDS = ("prompt", "chosen", "rejected")


def bradley_terry_loss(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> torch.Tensor:
    """``−mean log σ(r_c − r_r)`` over pairs.

    Args:
        chosen_rewards, rejected_rewards: (B,) scores of each pair's chosen and rejected response.
    Returns:
        The scalar loss. Example: ``r_c = [1, 0]``, ``r_r = [0, 0]`` → ``(log(1 + e⁻¹) + log 2) / 2 ≈ 0.5032``.
    """
    return -F.logsigmoid(chosen_rewards - rejected_rewards).mean()  # (B,) -> ()


def pairwise_accuracy(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> float:
    """Share of pairs with ``r_c > r_r`` (ties count as wrong). Example: ``[2, 1, 0]`` vs ``[1, 1, 1]`` → 1/3."""
    if chosen_rewards.numel() == 0:
        return float("nan")
    return (chosen_rewards > rejected_rewards).float().mean().item()


def read_pairs(path: str | Path, fields: dict[str, str] | None = None) -> list[dict]:
    """The pairs of a data file (JSONL, Parquet or a datasets directory, :mod:`r1.data.readers`): each record with
    string ``prompt``, ``chosen`` and ``rejected`` (other fields kept; a string ``kind`` groups the held-out
    accuracy); ``fields`` maps those names to the file's columns. Errors name the file and line (or row)."""
    pairs = []
    for where, rec in iter_records(path, fields, required=PAIR_FIELDS, hint="map a column to it with data.fields"):
        missing = [k for k in PAIR_FIELDS if k not in rec]
        if missing:
            raise R1Error(f"{where}: missing field {', '.join(map(repr, missing))} (a pair needs "
                          f"{', '.join(PAIR_FIELDS)})")
        bad = [k for k in PAIR_FIELDS if not isinstance(rec[k], str)]
        if bad:
            raise R1Error(f"{where}: field {bad[0]!r} must be a string, got {type(rec[bad[0]]).__name__}")
        pairs.append(rec)
    if not pairs:
        raise R1Error(f"{path}: no preference pairs (empty file)")
    return pairs


def load_pairs(cfg: RMConfig) -> tuple[list[dict], list[dict]]:
    """``(train, test)`` pairs from the configured source."""
    d = cfg.data
    if d.source == "task":
        common = dict(num_train=d.num_train, num_test=d.num_test, seed=cfg.run.seed, **d.params)
        return make_pairs(d.task, "train", **common), make_pairs(d.task, "test", **common)
    if d.source != "jsonl":
        raise R1Error(f"unknown data.source {d.source!r}; valid: task, jsonl")
    if not d.path:
        raise R1Error("data.source=jsonl needs data.path=FILE.jsonl")
    pairs = read_pairs(d.path, d.fields)
    if d.test_path:
        return pairs, read_pairs(d.test_path, d.fields)
    if len(pairs) < 2:
        raise R1Error(f"{d.path}: {len(pairs)} pair; holding some out needs at least 2 (or give data.test_path)")
    order = list(range(len(pairs)))
    random.Random(cfg.run.seed).shuffle(order)
    num_test = min(len(pairs) - 1, max(1, round(d.test_fraction * len(pairs))))
    return [pairs[i] for i in sorted(order[num_test:])], [pairs[i] for i in sorted(order[:num_test])]


class RMTrainer:
    """Bradley-Terry training of a reward model: ``train()`` runs the steps, ``step()`` is one of them (data →
    forward/backward per micro-batch → optimizer step), ``evaluate()`` measures the held-out pairs."""

    def __init__(self, cfg: RMConfig, resume: str | Path | None = None):
        self.cfg = c = cfg
        if c.run.workers != 1:
            raise R1Error("run.workers: data-parallel workers are supported by r1 grpo only; use run.workers=1")
        self.device, self.dtype = setup_compute(c.run, c.model)
        self.run_dir, ckpt = open_run(c.run, resume)
        train, test = load_pairs(c)  # data errors before the model is loaded
        self.model, self.tok = load_sequence_classifier(str(ckpt) if ckpt else c.model.path, device=self.device,
                                                        seed=c.run.seed)
        # scoring (the reward_model reward) reads the same text as training: the settings travel in config.json
        self.separator = getattr(self.model.config, "r1_reward_model", {}).get("separator", DEFAULT_SEPARATOR)
        self.model.config.r1_reward_model = {"separator": self.separator, "max_length": c.data.max_length}
        self.train_pairs, self.test_pairs = self._encode(train), self._encode(test)
        self.test_kinds = [str(p.get("kind", "")) for p in test]
        if resume is None:  # model and data are good: now the run directory may be (re)made
            self.run_dir = prepare_run_dir(c.run.out_dir, c.run.name, c, overwrite=c.run.overwrite)
        self.sampler = BatchSampler(
            [max(len(a), len(b)) for a, b in self.train_pairs], c.data.pairs_per_step, "random", c.run.seed
        )
        self.optimizer = build_optimizer(self.model, c.optim)
        self.scheduler = build_scheduler(self.optimizer, c.run.steps, c.optim)
        self.guard = NonFiniteGuard(c.run.max_nonfinite_steps)
        self.start_step = 0
        if ckpt is not None:
            state = restore_trainer_state(ckpt, self.optimizer, self.scheduler, self.sampler)
            self.start_step = state["step"]
            self.guard.load_state_dict(state["nonfinite"])
            save_config(c, self.run_dir / "config.yaml")  # keeps overrides given on resume (e.g. run.steps)
            console.print(f"resumed {self.run_dir} from {ckpt.name} (step {self.start_step})")
        resume_step = self.start_step if ckpt is not None else None
        self.logger = MetricsLogger(self.run_dir, resume_step=resume_step, config=c)  # config: run.wandb

    def _encode(self, pairs: list[dict]) -> list[tuple[list[int], list[int]]]:
        """``(chosen ids, rejected ids)`` per pair."""
        n = self.cfg.data.max_length
        chosen = encode_texts(self.tok, [rm_text(p["prompt"], p["chosen"], self.separator) for p in pairs], n)
        rejected = encode_texts(self.tok, [rm_text(p["prompt"], p["rejected"], self.separator) for p in pairs], n)
        return list(zip(chosen, rejected))

    def _scores(self, pairs: list[tuple[list[int], list[int]]]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B,) chosen and (B,) rejected scores, with gradients: one forward over the 2B rows."""
        rows = [a for a, _ in pairs] + [b for _, b in pairs]
        input_ids = right_pad(rows, self.tok.pad_token_id, torch.long).to(self.device)  # (2B, L)
        attn = right_pad([[1] * len(r) for r in rows], 0, torch.long).to(self.device)  # (2B, L)
        with autocast_context(self.device, self.dtype):
            scores = self.model(input_ids=input_ids, attention_mask=attn, use_cache=False).logits  # (2B, 1)
        scores = scores[:, 0].float()  # (2B,)
        return scores[: len(pairs)], scores[len(pairs) :]

    def step(self) -> dict:
        c = self.cfg
        timer = PhaseTimer()
        t0 = time.perf_counter()
        with timer("data"):
            batch = [self.train_pairs[i] for i in self.sampler.next()]
            lengths = [max(len(a), len(b)) for a, b in batch]
            # a pair is two rows: half the token budget in pair units
            micros = micro_batches(lengths, list(range(len(batch))), max(1, c.optim.tokens_per_micro_batch // 2))
        self.model.train()
        with timer("train"):
            loss = torch.zeros((), device=self.device)
            chosen, rejected = [], []
            for rows in micros:
                r_c, r_r = self._scores([batch[i] for i in rows])
                micro_loss = bradley_terry_loss(r_c, r_r) * (len(rows) / len(batch))  # mean over the whole batch
                micro_loss.backward()
                loss += micro_loss.detach()
                chosen.append(r_c.detach())
                rejected.append(r_r.detach())
            gn = clip_grad_norm(self.model.parameters(), c.optim.grad_clip)
            finite = self.guard.step(self.optimizer, self.scheduler, loss, gn)  # NaN/inf: no update, counted
        r_c, r_r = torch.cat(chosen), torch.cat(rejected)
        dt = time.perf_counter() - t0
        return {
            "loss": loss.item(),
            "accuracy": pairwise_accuracy(r_c, r_r),
            "margin": (r_c - r_r).mean().item(),
            "grad_norm": gn.item(),
            "lr": self.scheduler.get_last_lr()[0],
            "epoch": self.sampler.epoch,
            "nonfinite_steps": int(not finite),
            "nonfinite_steps_total": self.guard.total,
            "time/step": dt,
            **{f"time/{k}": v for k, v in timer.times.items()},
            "throughput/pairs_per_s": len(batch) / dt,
        }

    def evaluate(self) -> dict:
        """Held-out metrics: ``eval/accuracy`` (pairwise), ``eval/loss`` (Bradley-Terry), ``eval/margin`` (mean
        ``r_c − r_r``), ``eval/num_pairs`` and ``eval/accuracy/<kind>`` per rejected kind."""
        self.model.eval()
        rows = [a for a, _ in self.test_pairs] + [b for _, b in self.test_pairs]
        with autocast_context(self.device, self.dtype):
            scores = score_ids(self.model, rows, self.tok.pad_token_id, 2 * self.cfg.eval.pairs_per_batch)
        self.model.train()
        n = len(self.test_pairs)
        r_c, r_r = scores[:n], scores[n:]
        out = {
            "eval/accuracy": pairwise_accuracy(r_c, r_r),
            "eval/loss": bradley_terry_loss(r_c, r_r).item(),
            "eval/margin": (r_c - r_r).mean().item(),
            "eval/num_pairs": n,
        }
        for kind in sorted(set(self.test_kinds) - {""}):
            at = torch.tensor([k == kind for k in self.test_kinds])
            out[f"eval/accuracy/{kind}"] = pairwise_accuracy(r_c[at], r_r[at])
        return out

    def checkpoint(self, step: int) -> Path:
        state = trainer_state(step, self.optimizer, self.scheduler, self.sampler, nonfinite=self.guard.state_dict())
        return save_checkpoint(self.run_dir, step, self.model, self.tok, state, keep=self.cfg.run.keep_checkpoints)

    def train(self, on_step_end: Callable[[int, dict], None] | None = None) -> Path:
        c = self.cfg
        progress = make_progress(c.run.progress)
        t0 = time.perf_counter()
        try:
            if self.start_step == 0:
                before = self.evaluate()
                self.logger.log(0, before)
                console.print(f"step      0 | held-out pairwise accuracy {before['eval/accuracy']:.3f} "
                              f"({before['eval/num_pairs']} pairs)")
            with progress:
                bar = progress.add_task(c.run.name, total=c.run.steps, completed=self.start_step, info="")
                for step in range(self.start_step + 1, c.run.steps + 1):
                    m = self.step()
                    if step == c.run.steps or (c.eval.every and step % c.eval.every == 0):
                        m.update(self.evaluate())
                    self.logger.log(step, m)
                    info = f"loss {m['loss']:.4f} acc {m['accuracy']:.2f}"
                    if "eval/accuracy" in m:
                        info += f" held-out acc {m['eval/accuracy']:.3f}"
                    progress.update(bar, advance=1, info=info)
                    if (c.run.log_every and step % c.run.log_every == 0) or "eval/accuracy" in m:
                        skipped = " | skipped non-finite update" if m["nonfinite_steps"] else ""
                        progress.console.print(f"step {step:>6} | {info.replace(' acc', ' | acc')} | lr {m['lr']:.2e}"
                                               f"{skipped}")
                    if self.guard.diverged:
                        raise self.guard.error(step, c.optim.lr)
                    if (c.run.save_every and step % c.run.save_every == 0) or step == c.run.steps:
                        checkpoint_unless_skipped(self.checkpoint, step, self.guard.consecutive, final=step == c.run.steps)
                    if on_step_end is not None:
                        on_step_end(step, m)
        finally:
            self.logger.close()
        self.write_summary(time.perf_counter() - t0)
        return self.run_dir

    def write_summary(self, seconds: float) -> dict:
        """``summary.json``: held-out metrics before (step 0) and after training, the model directory, the time."""
        rows = read_metrics(self.run_dir)
        evals = [r for r in rows if "eval/accuracy" in r]

        def strip(r: dict) -> dict:
            return {k[len("eval/"):]: v for k, v in r.items() if k.startswith("eval/")}

        summary = {
            "steps": self.cfg.run.steps,
            "train_seconds": round(seconds, 2),
            "num_train_pairs": len(self.train_pairs),
            "eval_before": strip(evals[0]) if evals and evals[0]["step"] == 0 else None,
            "eval": strip(evals[-1]) if evals else None,
            "model": str(resolve_run_dir(self.run_dir)),
        }
        (self.run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary


def train_rm(cfg: RMConfig, resume: str | Path | None = None, on_step_end=None) -> Path:
    """Train a reward model; returns the run directory (its latest checkpoint is the RM, an HF directory)."""
    validate(cfg)  # the whole config, before anything is loaded, written or moved
    trainer = RMTrainer(cfg, resume=resume)
    run_dir = trainer.train(on_step_end=on_step_end)
    s = json.loads((run_dir / "summary.json").read_text())
    after = s["eval"]["accuracy"] if s["eval"] else math.nan
    console.print(f"done in {s['train_seconds']:.1f}s; held-out pairwise accuracy {after:.3f}; reward model: "
                  f"{s['model']}", soft_wrap=True)
    return run_dir
