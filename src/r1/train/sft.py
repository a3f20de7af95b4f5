"""SFT / pretraining engine (``train_sft``): causal-LM training with an optional completion-only loss mask.

One engine serves tiny-model pretraining, cold-start SFT, SFT round 2 and distillation; only the data differs.
Data comes from a task's generated corpus (``Task.pretrain_corpus``) or a data file (``data.source=jsonl``: JSONL,
Parquet or a datasets directory, :mod:`r1.data.readers`) with ``prompt``/``completion`` (or ``text``) records, the
columns named by ``data.prompt_field`` / ``completion_field`` / ``text_field``. Batches are length-bucketed
(similar lengths together, little padding) or packed.
Same optimizer, schedule, checkpoint/resume and logging machinery as GRPO, and the same LoRA option (``model.lora``:
only the adapters train; checkpoints hold the adapter, ``r1.models.lora``).

The train pass (``SFTTrainer.step``): for the models the lean forward covers (``r1.models.fast``: Llama, Qwen2/3,
Mistral) each step's examples run through ``r1.models.sequence.sequence_hidden`` (fused norms, SwiGLU and RoPE with
hand-written backwards) and the output head only at the positions that carry a loss, a block at a time
(``r1.algo.logprobs.head_nll``: no ``(rows, tokens, vocabulary)`` logits, and each block's gradients computed with
its logits, so the backward recomputes none). ``data.packing`` (default on there)
lays the step's examples one after another with no padding, RoPE positions restarting at each and attention
within each (``r1.models.sequence.PackPlan``): the loss and gradients are those of the unpacked batch up to float
rounding. ``data.packing=false``: one right-padded row per example. Either is split into micro-batches of at most
``optim.tokens_per_micro_batch`` tokens, their gradients summed (exact: the loss is a token mean over the step). Other models, and ``use_lean = False``, take the ``transformers`` forward over right-padded rows and
the full logits (``sft_loss``): the fast path's reference (``tests/train/test_sft.py``).

``data.batching=pack`` is something else: the standard packed approximation, examples concatenated into
``max_length`` rows whose attention crosses example boundaries (as in most pretraining setups).

Left out: multi-process training.
"""

from __future__ import annotations

import copy

import time
from pathlib import Path
from typing import Callable

import torch

from r1.algo.logprobs import head_nll
from r1.algo.sft import sft_loss
from r1.config import SFTConfig, save_config, validate
from r1.data.readers import iter_records
from r1.data.batching import right_pad
from r1.errors import R1Error
from r1.models.fast import unsupported_reason
from r1.models.lora import load_policy, lora_reason, set_base_path
from r1.models.policy import lean_forward
from r1.models.sequence import PackPlan, sequence_hidden
from r1.models.tokenizer import token_ids
from r1.runs import console, make_progress, prepare_run_dir
from r1.tasks import build_task
from r1.train.checkpoint import (
    checkpoint_unless_skipped,
    restore_trainer_state,
    save_checkpoint,
    trainer_state,
)
from r1.train.common import PhaseTimer, autocast_context, open_run, setup_compute
from r1.train.metrics import MetricsLogger
from r1.train.optim import NonFiniteGuard, build_optimizer, build_scheduler, clip_grad_norm


def load_records(cfg: SFTConfig, tokenizer) -> list[dict]:
    """``[{"prompt": str, "completion": str}]`` from the configured source (prompt may be ""), with ``data.mix``'s
    sources mixed in at their ratios (shuffled together, seeded)."""
    main = _source_records(cfg, tokenizer)
    if not cfg.data.mix:
        return main
    import random

    out = list(main)
    for i, m in enumerate(cfg.data.mix):
        want = max(1, round(m.ratio * len(main)))
        pool = _mix_records(cfg, m, tokenizer, f"data.mix.{i}", want)
        rng = random.Random(f"sft-mix/{cfg.run.seed}/{i}")
        drawn: list[dict] = []
        while len(drawn) < want:  # without replacement while the pool lasts, then again from the start
            order = list(range(len(pool)))
            rng.shuffle(order)
            drawn.extend(pool[j] for j in order[: want - len(drawn)])
        out.extend(drawn)
    random.Random(f"sft-mix/{cfg.run.seed}").shuffle(out)
    return out


def _mix_records(cfg: SFTConfig, m, tokenizer, key: str, want: int) -> list[dict]:
    if bool(m.path) == bool(m.task):
        raise R1Error(f"{key}: give either path (a JSONL file, a Parquet file or a datasets directory) or task, "
                      f"not {'both' if m.path else 'neither'}")
    sub = copy.deepcopy(cfg)
    if m.path:
        sub.data.source, sub.data.path = "jsonl", m.path
    else:
        sub.data.source, sub.data.task.name, sub.data.task.data = "task", m.task, None
        sub.data.task.params, sub.data.corpus, sub.data.num_examples = dict(m.params), {}, want
    return _source_records(sub, tokenizer)


def _source_records(cfg: SFTConfig, tokenizer) -> list[dict]:
    d = cfg.data
    if d.source == "task":
        task = build_task(d.task.name, d.task.data, **d.task.params)
        if not hasattr(task, "pretrain_corpus"):
            raise R1Error(f"task {d.task.name!r} has no generated corpus; use data.source=jsonl with data.path")
        try:
            return task.pretrain_corpus(
                d.num_examples, seed=cfg.run.seed, template=d.task.template, tokenizer=tokenizer, **d.corpus
            )
        except TypeError as e:
            raise R1Error(f"bad data.corpus parameters for task {d.task.name!r}: {e}") from None
    if d.source == "jsonl":
        if not d.path:
            raise R1Error("data.source=jsonl needs data.path=FILE.jsonl")
        out = []
        hint = "name the columns with data.completion_field / data.text_field"
        for where, rec in iter_records(d.path, required=[(d.completion_field, d.text_field)], hint=hint):
            if d.completion_field in rec:
                prompt, completion = rec.get(d.prompt_field, ""), rec[d.completion_field]
            elif d.text_field in rec:
                prompt, completion = "", rec[d.text_field]
            else:
                raise R1Error(f"{where}: record has neither {d.completion_field!r} nor {d.text_field!r}")
            if not isinstance(prompt, str) or not isinstance(completion, str):
                raise R1Error(f"{where}: prompt/completion must be strings")
            out.append({"prompt": prompt, "completion": completion})
        if not out:
            raise R1Error(f"{d.path}: no records (empty dataset)")
        return out
    raise R1Error(f"unknown data.source {d.source!r}; valid: task, jsonl")


def tokenize_records(records: list[dict], tokenizer, cfg: SFTConfig) -> list[tuple[list[int], list[bool]]]:
    """Token ids and a loss mask per example (mask True = the token is a training target)."""
    d = cfg.data
    prompts = token_ids(tokenizer, [r["prompt"] for r in records])
    comps = token_ids(tokenizer, [r["completion"] for r in records])
    eos = [tokenizer.eos_token_id] if d.add_eos else []
    out = []
    for p, c in zip(prompts, comps):
        ids = (p + c + eos)[: d.max_length]
        mask = ([not d.completion_only] * len(p) + [True] * (len(c) + len(eos)))[: d.max_length]
        out.append((ids, mask))
    return out


class BatchSampler:
    """Deterministic batches per epoch; ``(epoch, index)`` is the data position stored in checkpoints."""

    def __init__(self, lengths: list[int], batch: int, mode: str, seed: int):
        if mode not in ("bucket", "random", "pack"):
            raise R1Error(f"unknown data.batching {mode!r}; valid: bucket, pack, random")
        self.lengths, self.batch, self.mode, self.seed = lengths, batch, mode, seed
        self.epoch, self.index = 0, 0
        self._batches = self._make()

    def _make(self) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 7919 + self.epoch)
        perm = torch.randperm(len(self.lengths), generator=g).tolist()
        if self.mode == "bucket":  # sort within windows of 50 batches, then shuffle the batches
            win = self.batch * 50
            perm = [i for s in range(0, len(perm), win) for i in sorted(perm[s : s + win], key=self.lengths.__getitem__)]
        batches = [perm[s : s + self.batch] for s in range(0, len(perm), self.batch)]
        order = torch.randperm(len(batches), generator=g).tolist()
        return [batches[i] for i in order]

    def next(self) -> list[int]:
        if self.index == len(self._batches):
            self.epoch, self.index = self.epoch + 1, 0
            self._batches = self._make()
        b = self._batches[self.index]
        self.index += 1
        return b

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "index": self.index}

    def load_state_dict(self, s: dict) -> None:
        self.epoch, self.index = s["epoch"], s["index"]
        self._batches = self._make()


def collate(examples: list[tuple[list[int], list[bool]]], pad_id: int, pack_len: int | None = None):
    """Right-padded ``(input_ids, attention_mask, loss_mask)``; with ``pack_len``, examples are concatenated into
    rows of that length first."""
    if pack_len:
        rows, cur_ids, cur_mask = [], [], []
        for ids, mask in examples:
            cur_ids += ids
            cur_mask += mask
            while len(cur_ids) >= pack_len:
                rows.append((cur_ids[:pack_len], cur_mask[:pack_len]))
                cur_ids, cur_mask = cur_ids[pack_len:], cur_mask[pack_len:]
        if cur_ids:
            rows.append((cur_ids, cur_mask))
        examples = rows
    width = max(len(ids) for ids, _ in examples)
    n = len(examples)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)  # (B, L)
    attn = torch.zeros((n, width), dtype=torch.long)  # (B, L)
    loss_mask = torch.zeros((n, width), dtype=torch.bool)  # (B, L)
    for i, (ids, mask) in enumerate(examples):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attn[i, : len(ids)] = 1
        loss_mask[i, : len(ids)] = torch.tensor(mask)
    return input_ids, attn, loss_mask


def _targets(seq: list[int], mask: list[bool]) -> tuple[list[int], list[bool]]:
    """Each position's target (the example's next token; 0 after its last) and whether it carries a loss."""
    return seq[1:] + [0], mask[1:] + [False]


def packed_rows(examples: list[tuple[list[int], list[bool]]]) -> dict:
    """The fast path's packed micro-batch: the examples one after another in one row, no padding: ``ids``,
    ``targets`` (the next token of the same example), ``loss_mask`` (the target carries a loss), each (1, M), and
    ``plan`` (``r1.models.sequence.PackPlan``: positions and attention per example).

    Example: examples ``[1, 2, 3]`` (mask F T T) and ``[4, 5]`` (F T): ids ``[1 2 3 4 5]``, targets ``[2 3 0 5 0]``,
    loss mask ``[T T F T F]``, RoPE positions ``[0 1 2 0 1]``."""
    ids, targets, loss_mask = [], [], []
    for seq, mask in examples:
        t, m = _targets(seq, mask)
        ids += seq
        targets += t
        loss_mask += m
    return {"ids": torch.tensor([ids]), "positions": None, "targets": torch.tensor([targets]),
            "loss_mask": torch.tensor([loss_mask]), "plan": PackPlan([len(seq) for seq, _ in examples])}


def padded_rows(examples: list[tuple[list[int], list[bool]]], pad_id: int) -> dict:
    """The fast path's unpacked micro-batch: one right-padded row per example, ``ids``, ``targets``, ``loss_mask``
    as ``packed_rows`` gives them, (R, T)."""
    pairs = [_targets(seq, mask) for seq, mask in examples]
    return {"ids": right_pad([seq for seq, _ in examples], pad_id, torch.long), "positions": None,
            "targets": right_pad([t for t, _ in pairs], 0, torch.long),
            "loss_mask": right_pad([m for _, m in pairs], False, torch.bool), "plan": None}


def micro_batches(lengths: list[int], budget: int, packed: bool) -> list[list[int]]:
    """Example indices in consecutive groups of at most ``budget`` tokens (packed: their lengths summed;
    unpacked: rows × the longest), at least one example each."""
    out: list[list[int]] = []
    cur: list[int] = []
    total = longest = 0
    for i, n in enumerate(lengths):
        cost = total + n if packed else (len(cur) + 1) * max(longest, n)
        if cur and cost > budget:
            out.append(cur)
            cur, total, longest = [], 0, 0
        cur.append(i)
        total, longest = total + n, max(longest, n)
    return out + [cur] if cur else out


class SFTTrainer:
    def __init__(self, cfg: SFTConfig, resume: str | Path | None = None):
        self.cfg = cfg
        c = cfg
        if c.run.workers != 1:
            raise R1Error("run.workers: data-parallel workers are supported by r1 grpo only; use run.workers=1")
        self.device, self.dtype = setup_compute(c.run, c.model)
        self.run_dir, ckpt = open_run(c.run, resume)
        # model.lora: self.model is the base with peft's LoRA layers inside, self.peft the PeftModel (saves the adapter)
        self.model, self.tok, self.peft = load_policy(
            c.model.path, c.model.lora_on(), ckpt, device=self.device, seed=c.run.seed
        )
        records = load_records(c, self.tok)
        self.examples = tokenize_records(records, self.tok, c)
        if not any(any(m) for _, m in self.examples):
            raise R1Error(
                f"no example has a token to train on: every completion is empty or cut off by data.max_length="
                f"{c.data.max_length} (the prompt alone fills it); raise data.max_length or check the data"
            )
        # The fast path (module docstring): the lean forward where it covers the model, else the transformers one
        self.lean = lean_forward(self.model, training=True)
        if c.data.packing and self.lean is None:
            why = unsupported_reason(self.model) or lora_reason(self.model, training=True)
            fix = "model.lora.dropout=0 or " if why and "LoRA dropout" in why else ""
            raise R1Error(
                f"data.packing: packed rows need the lean forward (r1.models.fast), which does not cover "
                f"{c.model.path}: {why}; use {fix}data.packing=false"
            )
        if resume is None:  # model and data are good: now the run directory may be (re)made
            self.run_dir = prepare_run_dir(c.run.out_dir, c.run.name, c, overwrite=c.run.overwrite)
        if self.peft is not None:  # the adapter names its base (a preset base is saved in the run directory)
            set_base_path(self.peft, self.tok, c.model.path, self.run_dir, save=True)
        self.sampler = BatchSampler(
            [len(ids) for ids, _ in self.examples], c.data.examples_per_step, c.data.batching, c.run.seed
        )
        self.use_lean = True  # False: the transformers forward and full logits, the fast path's reference
        self.optimizer = build_optimizer(self.model, c.optim)
        self.scheduler = build_scheduler(self.optimizer, c.run.steps, c.optim)
        self.guard = NonFiniteGuard(c.run.max_nonfinite_steps)
        self.start_step = 0
        if ckpt is not None:
            state = restore_trainer_state(ckpt, self.optimizer, self.scheduler, self.sampler)
            self.start_step = state["step"]
            if "nonfinite" in state:
                self.guard.load_state_dict(state["nonfinite"])
            save_config(c, self.run_dir / "config.yaml")  # keeps overrides given on resume (e.g. run.steps)
            console.print(f"resumed {self.run_dir} from {ckpt.name} (step {self.start_step})")
        resume_step = self.start_step if ckpt is not None else None
        self.logger = MetricsLogger(self.run_dir, resume_step=resume_step, config=c)  # config: run.wandb

    def autocast(self):
        return autocast_context(self.device, self.dtype)

    def step(self) -> dict:
        c = self.cfg
        timer = PhaseTimer()
        t0 = time.perf_counter()
        lean = self.lean is not None and self.use_lean
        with timer("data"):
            batch = [self.examples[i] for i in self.sampler.next()]
            pack = c.data.max_length if c.data.batching == "pack" else None
            if lean:
                rows = self._rows(batch, pack)
            else:
                input_ids, attn, loss_mask = (t.to(self.device) for t in collate(batch, self.tok.pad_token_id, pack))
        self.model.train()
        with timer("train"):
            if lean:
                loss, num_tokens = self._lean_backward(rows)
            else:
                with self.autocast():
                    logits = self.model(input_ids=input_ids, attention_mask=attn, use_cache=False).logits  # (B, L, V)
                loss, num_tokens = sft_loss(logits.float(), input_ids, loss_mask)
                loss.backward()
            gn = clip_grad_norm(self.model.parameters(), c.optim.grad_clip)
            finite = self.guard.step(self.optimizer, self.scheduler, loss, gn)  # NaN/inf: no update, counted
        dt = time.perf_counter() - t0
        return {
            "loss": loss.item(),
            "grad_norm": gn.item(),
            "lr": self.scheduler.get_last_lr()[0],
            "tokens": int(num_tokens),
            "epoch": self.sampler.epoch,
            "nonfinite_steps": int(not finite),
            "nonfinite_steps_total": self.guard.total,
            "time/step": dt,
            **{f"time/{k}": v for k, v in timer.times.items()},
            "throughput/tokens_per_s": sum(len(ids) for ids, _ in batch) / dt,
        }

    def _rows(self, batch: list[tuple[list[int], list[bool]]], pack: int | None) -> list[dict]:
        """The fast path's micro-batches (``packed_rows`` / ``padded_rows``, ``micro_batches``); with
        ``batching=pack`` the concatenated rows of ``collate`` (attention across examples, as the reference path
        computes them)."""
        pad = self.tok.pad_token_id
        budget = self.cfg.optim.tokens_per_micro_batch
        if pack is None:
            packed = self.cfg.data.packing is not False
            groups = micro_batches([len(ids) for ids, _ in batch], budget, packed)
            mbs = [packed_rows([batch[i] for i in g]) if packed else padded_rows([batch[i] for i in g], pad)
                   for g in groups]
        else:
            ids, _, mask = collate(batch, pad, pack)  # (B, L)
            targets, loss_mask = torch.zeros_like(ids), torch.zeros_like(mask)
            targets[:, :-1], loss_mask[:, :-1] = ids[:, 1:], mask[:, 1:]
            per = max(1, budget // ids.shape[1])
            mbs = [{"ids": ids[i : i + per], "positions": None, "targets": targets[i : i + per],
                    "loss_mask": loss_mask[i : i + per], "plan": None} for i in range(0, ids.shape[0], per)]
        return [{k: v.to(self.device) if isinstance(v, torch.Tensor) else v for k, v in mb.items()} for mb in mbs]

    def _lean_backward(self, micro: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token-mean cross-entropy of the micro-batches' targets and its gradients (accumulated into ``.grad``):
        each micro-batch's summed log-likelihood over the step's target count. Returns (the loss, detached; the
        number of target tokens)."""
        n = sum(mb["loss_mask"].sum() for mb in micro)
        total = torch.zeros((), device=self.device)
        for mb in micro:
            with self.autocast():
                hidden, w, b = sequence_hidden(self.lean, mb["ids"], mb["positions"], mb["plan"])
                # the head's gradients computed with its logits (head_nll): no recomputation in the backward
                loss = head_nll(hidden, w, mb["targets"], b, mb["loss_mask"], scale=1.0 / max(1, int(n)))
            loss.backward()
            total += loss.detach()
        return total, n

    def checkpoint(self, step: int) -> Path:
        state = trainer_state(step, self.optimizer, self.scheduler, self.sampler, nonfinite=self.guard.state_dict())
        lora = self.cfg.model.lora_on()
        return save_checkpoint(
            self.run_dir, step, self.model if self.peft is None else self.peft, self.tok, state,
            keep=self.cfg.run.keep_checkpoints, merge=lora is not None and lora.merge,
        )

    def train(self, on_step_end: Callable[[int, dict], None] | None = None) -> Path:
        c = self.cfg
        progress = make_progress(c.run.progress)
        ema = None
        try:
            with progress:
                bar = progress.add_task(c.run.name, total=c.run.steps, completed=self.start_step, info="")
                for step in range(self.start_step + 1, c.run.steps + 1):
                    m = self.step()
                    self.logger.log(step, m)
                    if m["nonfinite_steps"] == 0:  # a skipped step's NaN loss would stick in the average
                        ema = m["loss"] if ema is None else 0.95 * ema + 0.05 * m["loss"]
                    progress.update(bar, advance=1, info=f"loss {ema if ema is not None else float('nan'):.4f}")
                    if c.run.log_every and step % c.run.log_every == 0:
                        skipped = " | skipped non-finite update" if m["nonfinite_steps"] else ""
                        progress.console.print(
                            f"step {step:>6} | loss {m['loss']:.4f} | lr {m['lr']:.2e} | gnorm {m['grad_norm']:.3g} "
                            f"| tok/s {m['throughput/tokens_per_s']:.0f}{skipped}"
                        )
                    if self.guard.diverged:
                        raise self.guard.error(step, c.optim.lr)
                    if (c.run.save_every and step % c.run.save_every == 0) or step == c.run.steps:
                        checkpoint_unless_skipped(self.checkpoint, step, self.guard.consecutive, final=step == c.run.steps)
                    if on_step_end is not None:
                        on_step_end(step, m)
        finally:
            self.logger.close()
        return self.run_dir


def train_sft(cfg: SFTConfig, resume: str | Path | None = None, on_step_end=None) -> Path:
    """Run SFT/pretraining; returns the run directory (its latest checkpoint is an HF model directory)."""
    validate(cfg)  # the whole config, before anything is loaded, written or moved
    trainer = SFTTrainer(cfg, resume=resume)
    t0 = time.perf_counter()
    run_dir = trainer.train(on_step_end=on_step_end)
    console.print(f"done in {time.perf_counter() - t0:.1f}s; run directory: {run_dir}")
    return run_dir
