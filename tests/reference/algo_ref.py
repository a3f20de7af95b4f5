"""Naive references for ``r1.algo``: Python loops over groups, rows and tokens, one formula per line.

Each function mirrors one public function of ``r1.algo`` and is written to be obviously right, not fast: no
broadcasting tricks, no chunking. Loss references build their outputs from 0-d tensors so autograd runs through
them too, and gradients can be compared with the fast paths'.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


# ------------------------------------------------------------------------------------------------------ advantages
def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs)


def _std_bessel(xs: list[float]) -> float:
    m = _mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / max(len(xs) - 1, 1))


def ref_group_advantages(rewards: Tensor, group_size: int, norm: str, eps: float) -> Tensor:
    r = [float(x) for x in rewards]
    groups = [r[i : i + group_size] for i in range(0, len(r), group_size)]
    batch_std = _std_bessel(r)
    out = []
    for g in groups:
        m, s = _mean(g), _std_bessel(g)
        for x in g:
            if norm == "group_std":
                out.append((x - m) / (s + eps))
            elif norm == "batch_std":
                out.append((x - m) / (batch_std + eps))
            elif norm == "none":
                out.append(x - m)
            else:
                raise KeyError(norm)
    return torch.tensor(out, dtype=torch.float64)


def ref_group_zero_variance(rewards: Tensor, group_size: int) -> Tensor:
    r = [float(x) for x in rewards]
    flags = []
    for i in range(0, len(r), group_size):
        g = r[i : i + group_size]
        flags.append(all(x == g[0] for x in g))
    return torch.tensor(flags)


# ---------------------------------------------------------------------------------------------------------- losses
def ref_policy_loss(
    logps: Tensor,
    old_logps: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_low: float,
    clip_high: float,
    is_level: str,
) -> tuple[Tensor, Tensor]:
    n, t = logps.shape
    rows, clip_rows = [], []
    for i in range(n):
        a = advantages[i]
        valid = [j for j in range(t) if mask[i, j]]
        if is_level == "sequence":
            # s_i = exp((1/|y_i|) Σ_t (logp - old)), GSPO; empty row -> s_i = 1
            log_s = sum((logps[i, j] - old_logps[i, j] for j in valid), torch.zeros(())) / max(len(valid), 1)
        row, clip_row = [], []
        for j in range(t):
            if not mask[i, j]:
                row.append(torch.zeros((), dtype=logps.dtype))
                clip_row.append(False)
                continue
            if is_level == "token":
                w = torch.exp(logps[i, j] - old_logps[i, j].detach())
            else:
                # GSPO-token: sg[s_i] * π(y_t) / sg[π(y_t)]
                w = torch.exp(log_s.detach()) * torch.exp(logps[i, j] - logps[i, j].detach())
            w_clamped = min(max(w, torch.tensor(1.0 - clip_low)), torch.tensor(1.0 + clip_high))
            obj = min(w * a, w_clamped * a)
            row.append(-obj)
            clip_row.append(bool((a > 0 and w > 1 + clip_high) or (a < 0 and w < 1 - clip_low)))
        rows.append(torch.stack(row))
        clip_rows.append(clip_row)
    return torch.stack(rows), torch.tensor(clip_rows, dtype=torch.bool)


def ref_gspo_objective_loss(
    logps: Tensor, old_logps: Tensor, advantages: Tensor, mask: Tensor, clip_low: float, clip_high: float
) -> Tensor:
    """GSPO written as a sequence-level objective: ``-(1/N) Σ_i min(s_i A_i, clip(s_i) A_i)``."""
    n, t = logps.shape
    total = torch.zeros(())
    for i in range(n):
        valid = [j for j in range(t) if mask[i, j]]
        log_s = sum((logps[i, j] - old_logps[i, j] for j in valid), torch.zeros(())) / max(len(valid), 1)
        s = torch.exp(log_s)
        s_clamped = torch.clamp(s, 1.0 - clip_low, 1.0 + clip_high)
        total = total + min(s * advantages[i], s_clamped * advantages[i])
    return -total / n


def ref_aggregate_loss(
    per_token_loss: Tensor, mask: Tensor, agg: str, num_seqs=None, num_tokens=None, max_len=None
) -> Tensor:
    n, t = per_token_loss.shape
    if agg == "token_mean":
        total = torch.zeros(())
        count = 0
        for i in range(n):
            for j in range(t):
                if mask[i, j]:
                    total = total + per_token_loss[i, j]
                    count += 1
        return total / (max(count, 1) if num_tokens is None else num_tokens)
    if agg == "seq_mean_token_mean":
        total = torch.zeros(())
        for i in range(n):
            row = torch.zeros(())
            length = 0
            for j in range(t):
                if mask[i, j]:
                    row = row + per_token_loss[i, j]
                    length += 1
            if length:
                total = total + row / length
        return total / (n if num_seqs is None else num_seqs)
    if agg == "constant":
        total = torch.zeros(())
        for i in range(n):
            for j in range(t):
                if mask[i, j]:
                    total = total + per_token_loss[i, j]
        return total / ((n if num_seqs is None else num_seqs) * (t if max_len is None else max_len))
    raise KeyError(agg)


# -------------------------------------------------------------------------------------------------------------- kl
def ref_kl(logps: Tensor, ref_logps: Tensor, estimator: str) -> Tensor:
    n, t = logps.shape
    rows = []
    for i in range(n):
        row = []
        for j in range(t):
            lp, rp = logps[i, j], ref_logps[i, j].detach()
            if estimator == "k1":
                row.append(lp - rp)
            elif estimator == "k3":
                ratio = torch.exp(rp - lp)  # π_ref / π_θ
                row.append(ratio - torch.log(ratio) - 1)
            else:
                raise KeyError(estimator)
        rows.append(torch.stack(row))
    return torch.stack(rows)


# -------------------------------------------------------------------------------------------------------- logprobs
def ref_gather_logprobs(logits: Tensor, token_ids: Tensor, temperature: float = 1.0) -> Tensor:
    """The naive form: a full (N, T, V) fp32 log-softmax, then a gather."""
    logp = torch.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)) / temperature, dim=-1)
    return logp.gather(-1, token_ids.long().unsqueeze(-1)).squeeze(-1)


def ref_entropy(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """The naive form: full softmax and log-softmax, then ``-Σ p log p``."""
    z = logits.to(torch.promote_types(logits.dtype, torch.float32)) / temperature
    return -(torch.softmax(z, dim=-1) * torch.log_softmax(z, dim=-1)).sum(dim=-1)


def ref_masked_mean(x: Tensor, mask: Tensor, dim=None) -> Tensor:
    if dim is None:
        vals = [float(v) for v, m in zip(x.flatten(), mask.flatten()) if m]
        return torch.tensor(sum(vals) / max(len(vals), 1))
    assert x.dim() == 2 and dim in (1, -1)
    out = []
    for row, mrow in zip(x, mask):
        vals = [float(v) for v, m in zip(row, mrow) if m]
        out.append(sum(vals) / max(len(vals), 1))
    return torch.tensor(out)


# ---------------------------------------------------------------------------------------------------- random data
def random_grouped_batch(seed: int, num_prompts: int = 3, group_size: int = 4, max_len: int = 7) -> dict[str, Tensor]:
    """Random rollout-like data: binary-ish rewards with ties, ragged masks (incl. an empty row), nearby logps."""
    g = torch.Generator().manual_seed(seed)
    n = num_prompts * group_size
    rewards = torch.randint(0, 3, (n,), generator=g).float() * 0.5  # {0, 0.5, 1}: ties and zero-variance groups
    rewards[:group_size] = 1.0  # group 0 is all-correct (zero variance)
    lengths = torch.randint(1, max_len + 1, (n,), generator=g)
    lengths[-1] = 0  # an empty completion
    mask = torch.arange(max_len)[None, :] < lengths[:, None]  # (N, T) right-padded
    old_logps = -torch.rand(n, max_len, generator=g) * 3  # (N, T) log-probs in (-3, 0]
    logps = old_logps + 0.3 * torch.randn(n, max_len, generator=g)  # ratios spread over the clip range
    ref_logps = old_logps + 0.5 * torch.randn(n, max_len, generator=g)
    advantages = torch.randn(n, generator=g)
    return {
        "rewards": rewards,  # (B*G,)
        "mask": mask,  # (B*G, T) bool
        "old_logps": old_logps,  # (B*G, T)
        "logps": logps,  # (B*G, T)
        "ref_logps": ref_logps,  # (B*G, T)
        "advantages": advantages,  # (B*G,)
    }
