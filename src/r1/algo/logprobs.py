"""Token log-probs and entropies of the temperature-scaled policy, computed in chunks.

What it is: the policy's distribution is ``softmax(logits / temperature)``, the one the rollout engine samples
from, so the importance ratio compares like with like (TRL divides logits by the temperature the same way;
the sampler's logprobs are taken before top-k/top-p truncation, see :mod:`r1.rollout.base`).

:func:`gather_logprobs` is the hot path. The naive form ``log_softmax(logits / τ).gather(token_ids)`` builds a second
``(N, T, V)`` tensor (in fp32 for bf16 logits) and autograd keeps it for the backward. Here the chosen logit minus
``logsumexp`` is computed on blocks of at most ``chunk_size`` positions (TRL ``selective_log_softmax``), and a custom
backward recomputes each block's softmax from the saved logits and per-position ``logsumexp``, so neither pass
holds more than a few blocks of full-vocabulary fp32 values besides the logits and their gradient.

Left out: double backward (the custom backward is once-differentiable), top-k/top-p renormalisation, and fused or
compiled kernels (e.g. Liger's fused linear cross-entropy, which never materialises the logits either).
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor


def _blocks(n: int, t: int, chunk_size: int) -> Iterator[tuple[slice, slice]]:
    """(rows, cols) slices tiling an ``(n, t)`` grid with blocks of at most ``max(chunk_size, 1)`` positions."""
    cols = max(1, min(t, chunk_size))
    rows = max(1, chunk_size // cols)
    for i in range(0, n, rows):
        for j in range(0, t, cols):
            yield slice(i, i + rows), slice(j, j + cols)


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    # bf16/fp16 logsumexp loses digits; fp32 at least (fp64 stays fp64, e.g. for gradcheck)
    return torch.promote_types(dtype, torch.float32)


class _GatherLogprobs(torch.autograd.Function):
    """``log_softmax(logits / τ)[token_ids]`` with a block-wise forward and a recomputing backward."""

    @staticmethod
    def forward(ctx, logits: Tensor, token_ids: Tensor, temperature: float, chunk_size: int) -> Tensor:
        n, t, _ = logits.shape
        dtype = _compute_dtype(logits.dtype)
        out = logits.new_empty((n, t), dtype=dtype)  # (N, T)
        lse = logits.new_empty((n, t), dtype=dtype)  # (N, T)
        for r, c in _blocks(n, t, chunk_size):
            z = logits[r, c].to(dtype) / temperature  # (rows, cols, V)
            lse[r, c] = torch.logsumexp(z, dim=-1)
            out[r, c] = z.gather(-1, token_ids[r, c].unsqueeze(-1)).squeeze(-1) - lse[r, c]
        ctx.save_for_backward(logits, token_ids, lse)
        ctx.temperature, ctx.chunk_size = temperature, chunk_size
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        logits, token_ids, lse = ctx.saved_tensors
        temperature, chunk_size = ctx.temperature, ctx.chunk_size
        n, t, _ = logits.shape
        grad = torch.empty_like(logits)  # (N, T, V)
        for r, c in _blocks(n, t, chunk_size):
            # d/dz_v [z_y/τ - logsumexp(z/τ)] = (1[v = y] - p_v) / τ
            z = logits[r, c].to(lse.dtype) / temperature  # (rows, cols, V)
            g = grad_out[r, c].to(lse.dtype).unsqueeze(-1)  # (rows, cols, 1)
            block = -torch.exp(z - lse[r, c].unsqueeze(-1)) * g  # (rows, cols, V)
            block.scatter_add_(-1, token_ids[r, c].unsqueeze(-1), g)
            grad[r, c] = block / temperature
        return grad, None, None, None


def gather_logprobs(logits: Tensor, token_ids: Tensor, temperature: float = 1.0, chunk_size: int = 1024) -> Tensor:
    """Log-prob of each ``token_ids`` entry under ``softmax(logits / temperature)``, differentiable, chunked.

    Naive equivalent (what :func:`tests.reference.algo_ref.ref_gather_logprobs` computes)::

        torch.log_softmax(logits.float() / temperature, dim=-1).gather(-1, token_ids.unsqueeze(-1)).squeeze(-1)

    Args:
        logits: (N, T, V) any float dtype (bf16 is computed in fp32); may be a non-contiguous slice such as
            ``model_logits[:, :-1]``, it is never copied whole.
        token_ids: (N, T) integer ids in ``[0, V)``; padded positions need a valid id (mask them afterwards).
        temperature: τ > 0, the sampling temperature.
        chunk_size: positions per block; the peak extra memory is about ``chunk_size * V`` fp32 values.

    Returns:
        (N, T) log-probs, fp32 (fp64 for fp64 logits). The gradient w.r.t. ``logits`` has the logits' dtype.

    Example: ``logits = [[[0, ln 3]]]``, ``token_ids = [[1]]``, τ = 1 -> ``log(3 / (1 + 3)) = -0.2877``.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 for logprobs, got {temperature}")
    if logits.shape[:-1] != token_ids.shape or logits.dim() != 3:
        shapes = f"{tuple(logits.shape)} vs {tuple(token_ids.shape)}"
        raise ValueError(f"logits (N, T, V) and token_ids (N, T) disagree: {shapes}")
    return _GatherLogprobs.apply(logits, token_ids.long(), float(temperature), int(chunk_size))


def entropy_from_logits(logits: Tensor, temperature: float = 1.0, chunk_size: int = 1024) -> Tensor:
    """Entropy of ``softmax(logits / temperature)`` at every position, computed block by block.

    ``H = -Σ_v p_v log p_v`` with ``log p = z - logsumexp(z)``, ``z = logits / τ``. Differentiable through plain
    autograd; for logging call it under ``torch.no_grad()``, where the blocks bound the extra memory.

    Args:
        logits: (N, T, V) any float dtype (computed in fp32 at least).
        temperature: τ > 0.
        chunk_size: positions per block.

    Returns:
        (N, T) entropies in nats, fp32 (fp64 for fp64 logits).

    Example: uniform logits over V = 4 -> ``H = log 4 = 1.3863``; ``[0, ln 3]`` -> ``p = [¼, ¾]``,
    ``H = -(¼ ln ¼ + ¾ ln ¾) = 0.5623``.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    n, t, _ = logits.shape
    dtype = _compute_dtype(logits.dtype)
    out = logits.new_empty((n, t), dtype=dtype)  # (N, T); block writes are tracked by autograd (CopySlices)
    for r, c in _blocks(n, t, chunk_size):
        z = logits[r, c].to(dtype) / temperature  # (rows, cols, V)
        logp = z - torch.logsumexp(z, dim=-1, keepdim=True)  # (rows, cols, V)
        # 0 · log 0 = 0: a -inf logit (a banned token) adds nothing instead of NaN, in value and gradient
        out[r, c] = -(logp.exp() * torch.where(logp > -torch.inf, logp, 0.0)).sum(dim=-1)  # (rows, cols)
    return out


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` over positions where ``mask`` is True (for logging: entropy, clip fraction, KL).

    Args:
        x: (N, T) or any shape matching ``mask``.
        mask: bool, same shape as ``x``.
        dim: reduce this dim only; None = all (a scalar).

    Returns:
        The masked mean; 0 where nothing is selected (the count is clamped to 1).

    Example: ``x = [[1, 2], [3, 4]]``, ``mask = [[T, F], [T, T]]`` -> ``(1 + 3 + 4) / 3 = 2.667``; ``dim=1`` ->
    ``[1.0, 3.5]``.
    """
    mask = mask.bool()
    x = x if x.is_floating_point() else x.float()  # bool flags (e.g. ``clipped``) give a fraction
    masked = torch.where(mask, x, 0.0)
    if dim is None:
        return masked.sum() / mask.sum().clamp(min=1)
    return masked.sum(dim=dim) / mask.sum(dim=dim).clamp(min=1)
