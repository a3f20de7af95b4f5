"""Clipped policy-gradient surrogate (GRPO/PPO) and the loss aggregations that turn it into a scalar.

What it is, in two independent choices, each picked by name through a registry:

1. :func:`compute_policy_loss`, the per-token clipped surrogate ``-min(w A, clip(w, 1-ε_low, 1+ε_high) A)``. The
   importance weight ``w`` comes from :data:`IS_LEVELS`:

   - ``token`` (PPO arXiv:1707.06347; GRPO arXiv:2402.03300 eq. 3): ``w_t = π_θ(y_t) / π_old(y_t)``.
   - ``sequence`` (GSPO arXiv:2507.18071, in its GSPO-token form): the length-normalised sequence
     ratio ``s_i = exp(mean_t log(π_θ/π_old))`` applied to every token of sequence ``i``.

   Separate ``clip_low``/``clip_high`` give DAPO's clip-higher (arXiv:2503.14476 §3.1, ε_high = 0.28).

2. :func:`aggregate_loss`, the normaliser, from :data:`LOSS_AGGS`:

   - ``seq_mean_token_mean`` (GRPO eq. 3): mean over tokens inside a sequence, then over sequences.
   - ``token_mean`` (DAPO §3.3, token-level loss): one mean over every token of the batch.
   - ``constant`` (Dr. GRPO arXiv:2503.20783): sum over tokens divided by ``num_seqs * max_len``.

   The normalisers are arguments, so micro-batches of one minibatch, each aggregated with the *minibatch's*
   ``num_seqs``/``num_tokens``, sum to the minibatch's loss exactly (gradient accumulation stays exact).

Left out, on purpose: the KL penalty (see :mod:`r1.algo.kl`; the trainer adds ``β·kl`` to the per-token loss before
aggregating), dual-clip PPO (arXiv:1912.09729), value losses, and token-level advantages (one ``A_i`` per sequence,
as GRPO's outcome supervision gives).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from r1.registry import Registry

ISLevel = Callable[[Tensor, Tensor, Tensor], Tensor]
IS_LEVELS: Registry[ISLevel] = Registry("importance-sampling level")
"""Name -> ``fn(logps (N, T), old_logps (N, T), mask (N, T) bool) -> log importance weight (N, T)``."""


@IS_LEVELS.register("token")
def _log_ratio_token(logps: Tensor, old_logps: Tensor, mask: Tensor) -> Tensor:
    # PPO/GRPO: one ratio per token
    return logps - old_logps  # (N, T)


@IS_LEVELS.register("sequence")
def _log_ratio_sequence(logps: Tensor, old_logps: Tensor, mask: Tensor) -> Tensor:
    # GSPO: log s_i = (1/|y_i|) Σ_t log(π_θ/π_old), over valid tokens only (an empty row gets log s_i = 0)
    token_log_ratio = torch.where(mask, logps - old_logps, 0.0)  # (N, T)
    lengths = mask.sum(dim=-1, keepdim=True).clamp(min=1)  # (N, 1)
    seq_log_ratio = token_log_ratio.sum(dim=-1, keepdim=True) / lengths  # (N, 1)
    # GSPO-token: s_i,t = sg[s_i] · π_θ(y_t) / sg[π_θ(y_t)]. The value is s_i on every token; the gradient is
    # s_i ∇log π_θ(y_t), which the 1/|y_i| of seq_mean_token_mean turns into GSPO's s_i ∇ mean_t log π_θ.
    return seq_log_ratio.detach() + logps - logps.detach()  # (N, T)


def compute_policy_loss(
    logps: Tensor,
    old_logps: Tensor,
    advantages: Tensor,
    mask: Tensor,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    is_level: str = "token",
) -> tuple[Tensor, Tensor]:
    """Per-token clipped surrogate loss (to minimise) and where the clip decided it.

    ``loss_t = -min(w_t A, clamp(w_t, 1 - clip_low, 1 + clip_high) A)`` with ``w_t`` from ``is_level``.

    Args:
        logps: (N, T) log π_θ of the sampled tokens (carries the gradient).
        old_logps: (N, T) log π_old of the same tokens (the sampler's); treated as a constant (detached).
        advantages: (N,) one advantage per sequence, broadcast over its tokens.
        mask: (N, T) bool, True on completion tokens that count.
        clip_low: ε_low, the ratio's lower bound is ``1 - clip_low``.
        clip_high: ε_high, the upper bound is ``1 + clip_high`` (DAPO clip-higher: 0.28).
        is_level: a name in :data:`IS_LEVELS`: ``token`` (GRPO) | ``sequence`` (GSPO).

    Returns:
        ``(per_token_loss, clipped)``, both (N, T). ``per_token_loss`` is 0 at masked positions. ``clipped`` is True
        where the clamped term won the min *and* the ratio was out of range, i.e. ``A > 0 and w > 1 + ε_high`` or
        ``A < 0 and w < 1 - ε_low`` (those tokens get no gradient); False at masked positions.

    Example (token level, ε = 0.2, one token each)::

        w = exp(logp - old) = [1.5,  1.5,  0.5]      A = [+1, -1, +1]
        clamp(w)            = [1.2,  1.2,  0.8]
        -min(w A, clamp A)  = [-min(1.5, 1.2) = -1.2,  -min(-1.5, -1.2) = 1.5,  -min(0.5, 0.8) = -0.5]
        clipped             = [True, False, False]
    """
    log_ratio_fn = IS_LEVELS.get(is_level)
    mask = mask.bool()
    old_logps = old_logps.detach()
    adv = advantages.unsqueeze(-1)  # (N, 1)
    # pads get log-ratio 0 before the exp: garbage there (inf, NaN) would otherwise turn 0 · exp(inf) into NaN grads
    ratio = torch.exp(torch.where(mask, log_ratio_fn(logps, old_logps, mask), 0.0))  # (N, T)
    low, high = 1.0 - clip_low, 1.0 + clip_high
    unclipped = -ratio * adv  # (N, T)
    clipped_term = -ratio.clamp(low, high) * adv  # (N, T)
    # PPO's pessimistic bound: the larger loss (= smaller objective) of the two
    per_token_loss = torch.maximum(unclipped, clipped_term)  # (N, T)
    clipped = ((ratio > high) & (adv > 0)) | ((ratio < low) & (adv < 0))  # (N, T)
    return torch.where(mask, per_token_loss, 0.0), clipped & mask


LossAgg = Callable[..., Tensor]
LOSS_AGGS: Registry[LossAgg] = Registry("loss aggregation")
"""Name -> ``fn(per_token_loss (N, T), mask (N, T) bool, num_seqs, num_tokens, max_len) -> scalar``."""


@LOSS_AGGS.register("token_mean")
def _agg_token_mean(loss: Tensor, mask: Tensor, num_seqs, num_tokens, max_len) -> Tensor:
    # DAPO token-level loss: every token weighs the same, so long sequences are not down-weighted (arXiv:2503.14476)
    if num_tokens is None:
        num_tokens = mask.sum().clamp(min=1)
    return loss.sum() / num_tokens


@LOSS_AGGS.register("seq_mean_token_mean")
def _agg_seq_mean_token_mean(loss: Tensor, mask: Tensor, num_seqs, num_tokens, max_len) -> Tensor:
    # GRPO eq. 3: (1/G) Σ_i (1/|o_i|) Σ_t; the 1/|o_i| is the length bias Dr. GRPO points out
    lengths = mask.sum(dim=-1).clamp(min=1)  # (N,); an empty row sums to 0 anyway
    per_seq = loss.sum(dim=-1) / lengths  # (N,)
    return per_seq.sum() / (loss.shape[0] if num_seqs is None else num_seqs)


@LOSS_AGGS.register("constant")
def _agg_constant(loss: Tensor, mask: Tensor, num_seqs, num_tokens, max_len) -> Tensor:
    # Dr. GRPO: divide by a constant (max generation length), not by |o_i| (arXiv:2503.20783)
    n = loss.shape[0] if num_seqs is None else num_seqs
    t = loss.shape[1] if max_len is None else max_len
    return loss.sum() / (n * t)


def aggregate_loss(
    per_token_loss: Tensor,
    mask: Tensor,
    agg: str,
    *,
    num_seqs: int | None = None,
    num_tokens: int | float | Tensor | None = None,
    max_len: int | None = None,
) -> Tensor:
    """Reduce a per-token loss to a scalar with the normaliser named ``agg``.

    Args:
        per_token_loss: (N, T) e.g. from :func:`compute_policy_loss` (plus ``β·kl``); masked positions are ignored.
        mask: (N, T) bool.
        agg: a name in :data:`LOSS_AGGS`:

            - ``token_mean`` (DAPO): ``Σ loss·mask / num_tokens``; default ``num_tokens = mask.sum()`` (at least 1).
            - ``seq_mean_token_mean`` (GRPO): ``Σ_i [Σ_t loss_it·mask_it / len_i] / num_seqs`` with
              ``len_i = mask[i].sum()``; rows with ``len_i = 0`` contribute 0; default ``num_seqs = N``.
            - ``constant`` (Dr. GRPO): ``Σ loss·mask / (num_seqs · max_len)``; defaults ``N`` and ``T``.
        num_seqs: sequences in the whole minibatch when this call sees one micro-batch of it.
        num_tokens: valid tokens in the whole minibatch (a tensor is fine, e.g. after an all-reduce).
        max_len: the constant length for ``constant`` (Dr. GRPO uses the generation limit).

    Returns:
        () scalar loss.

    Gradient accumulation: split a minibatch's rows into micro-batches and pass every call the minibatch's
    ``num_seqs``/``num_tokens`` (and one ``max_len``); the micro-batch losses then sum to the minibatch loss.

    Example (loss = 1 on every valid token; row 0 has 3 valid tokens, row 1 has 1; T = 4)::

        token_mean          = (3 + 1) / 4               = 1.0
        seq_mean_token_mean = (3/3 + 1/1) / 2           = 1.0
        constant            = (3 + 1) / (2 * 4)         = 0.5
    """
    fn = LOSS_AGGS.get(agg)
    mask = mask.bool()
    loss = torch.where(mask, per_token_loss, 0.0)  # (N, T)
    return fn(loss, mask, num_seqs, num_tokens, max_len)
