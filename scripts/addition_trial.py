"""Throwaway learnability check for the ``addition`` task's pretraining corpus (not imported by ``src/``).

Pretrains a tiny Qwen2 (``qwen2-1m`` preset, byte tokenizer) from scratch on ``AdditionTask.pretrain_corpus`` with
plain PyTorch (AdamW, warmup + cosine, completion-only loss, EOS appended), then greedy/sampled-decodes test prompts
and reports accuracy overall, per chosen mode, and with the mode forced. The question it answers: is the base model
clearly better when it thinks (``cot``) than when it answers directly, so that R1-Zero has something to amplify?

    python scripts/addition_trial.py --digits 4 --steps 1200
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import torch

from r1.data.templates import render_prompt
from r1.models import build_preset
from r1.tasks.addition import AdditionTask, completion_mode


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--digits", type=int, default=4)
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100)
    p.add_argument("--mix", default="0.6,0.35,0.05", help="direct,cot,reflect shares")
    p.add_argument("--preset", default="qwen2-1m")
    p.add_argument("--num-eval", type=int, default=200)
    p.add_argument("--eval-every", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    task = AdditionTask(digits=args.digits)
    direct, cot, reflect = map(float, args.mix.split(","))
    mix = {"direct": direct, "cot": cot, "reflect": reflect}
    corpus = task.pretrain_corpus(args.steps * args.batch, seed=0, mix=mix)
    model, tok = build_preset(args.preset)
    print(f"params {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M; corpus {len(corpus)} records")
    eos, pad = tok.eos_token_id, tok.pad_token_id

    def encode(r):
        pi = tok(r["prompt"], add_special_tokens=False).input_ids
        ci = tok(r["completion"], add_special_tokens=False).input_ids + [eos]
        return pi, ci

    encoded = [encode(r) for r in corpus]
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)

    def lr_at(step):
        if step < args.warmup:
            return args.lr * (step + 1) / args.warmup
        frac = (step - args.warmup) / max(1, args.steps - args.warmup)
        return args.lr * (0.1 + 0.9 * 0.5 * (1 + torch.cos(torch.tensor(frac * torch.pi)).item()))

    test = task.load("test")[: args.num_eval]
    model.train()
    t0 = time.time()
    for step in range(args.steps):
        batch = encoded[step * args.batch : (step + 1) * args.batch]
        T = max(len(pi) + len(ci) for pi, ci in batch)
        ids = torch.full((len(batch), T), pad)  # (B, T), right padding
        labels = torch.full((len(batch), T), -100)
        mask = torch.zeros((len(batch), T), dtype=torch.long)
        for i, (pi, ci) in enumerate(batch):
            n = len(pi) + len(ci)
            ids[i, :n] = torch.tensor(pi + ci)
            labels[i, len(pi) : n] = torch.tensor(ci)
            mask[i, :n] = 1
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == args.steps - 1:
            print(f"step {step} loss {loss.item():.4f} {time.time() - t0:.0f}s", flush=True)
        if args.eval_every and step and step % args.eval_every == 0:
            report(model, tok, task, test, quick=True)
            model.train()
    print(f"trained {args.steps} steps in {time.time() - t0:.0f}s")
    report(model, tok, task, test)


@torch.no_grad()
def decode(model, tok, prompts, force=None, temperature=0.0, max_new=64, seed=0):
    """Manual batched decode with a KV cache, no padding (the prompts of a fixed-digit task all have the same length).

    force: None (free), "direct" (the completion starts with ``<think></think>``) or "think" (``</think>`` is banned
    right after ``<think>``, so the model must write a trace).
    """
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    think, end_think = tok.convert_tokens_to_ids("<think>"), tok.convert_tokens_to_ids("</think>")
    rows = [tok(p, add_special_tokens=False).input_ids for p in prompts]
    assert len({len(r) for r in rows}) == 1, "prompts must have equal length"
    if force == "direct":
        rows = [r + [think, end_think] for r in rows]
    ids = torch.tensor(rows)  # (B, T)
    start = ids.shape[1]
    done = torch.zeros(len(rows), dtype=torch.bool)
    out = model(input_ids=ids, use_cache=True)
    cache, logits = out.cache, out.logits[:, -1, :].float()  # (B, V)
    for _ in range(max_new):
        if force == "think":
            logits[ids[:, -1] == think, end_think] = float("-inf")
        if temperature > 0:
            nxt = torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=gen).squeeze(1)
        else:
            nxt = logits.argmax(-1)
        nxt = torch.where(done, torch.full_like(nxt, tok.pad_token_id), nxt)  # (B,)
        ids = torch.cat([ids, nxt[:, None]], 1)
        done |= nxt == tok.eos_token_id
        if done.all():
            break
        out = model(input_ids=nxt[:, None], cache=cache, use_cache=True)
        cache, logits = out.cache, out.logits[:, -1, :].float()
    prefix = "<think></think>" if force == "direct" else ""
    kept = [[t for t in row[start:].tolist() if t not in (tok.pad_token_id, tok.eos_token_id)] for row in ids]
    return [prefix + tok.decode(k) for k in kept], [len(k) + 2 * (force == "direct") for k in kept]


def report(model, tok, task, test, quick=False):
    prompts = [render_prompt("plain", task.question(s)) for s in test]
    settings = [
        ("greedy free", None, 0.0),
        ("greedy forced direct", "direct", 0.0),
        ("greedy forced think", "think", 0.0),
    ]
    if not quick:
        settings.append(("sampled T=1 free", None, 1.0))
    for name, force, temp in settings:
        outs, lens = decode(model, tok, prompts, force=force, temperature=temp)
        accs = [task.grade(o, s) for o, s in zip(outs, test)]
        modes = [completion_mode(o) for o in outs]
        per = {}
        for m in ("direct", "cot", "reflect", "other"):
            idx = [i for i, mm in enumerate(modes) if mm == m]
            if idx:
                per[m] = f"{len(idx) / len(outs):.0%} share, acc {sum(accs[i] for i in idx) / len(idx):.0%}"
        mean_len = sum(lens) / len(lens)
        shares = "; ".join(f"{k}: {v}" for k, v in per.items())
        print(f"[{name}] acc {sum(accs) / len(accs):.1%} mean_len {mean_len:.1f} tok | {shares}")
        if not quick:
            for o, s in list(zip(outs, test))[:2]:
                print(f"    {s.problem} -> {o}")


if __name__ == "__main__":
    main()
