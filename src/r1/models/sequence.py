"""The lean training forward over whole sequences (SFT, pretraining): rows of token ids, each row one example or
several packed ones, through ``FastLM``'s layer under autograd, its norms, SwiGLU and RoPE as fused kernels with
hand-written backwards.

Why: ``transformers``' forward under autograd runs its RMSNorm, RoPE and SwiGLU as a dozen small ATen operators each,
and their autograd backward as as many more; on a CPU these took ~1/4 of a tiny model's SFT step (docs/performance.md,
"SFT"). Here each is one autograd node whose forward is r1's one-pass kernel (``r1.models.kernels``: the ones the
rollout uses) and whose backward is the replayed train pass's (``r1.models.replay._rms_backward``, the SwiGLU's
``swiglu_backward``, RoPE's transpose): the same maths, fewer passes over memory. The products and the attention are
PyTorch's (``F.linear``, ``scaled_dot_product_attention``), so autograd differentiates every parameter, LoRA's
``W + scaling·B·A`` included (``r1.models.lora.linear_weight``).

Packing (``PackPlan``): the examples one after another in one row, no padding; RoPE positions restart at 0 for
each example and attention runs per group of similar-length examples, causal within each, so a packed example's
hidden states equal its own unpacked forward's up to float rounding (``tests/models/test_sequence.py``). Without a
plan every row is one causal sequence (right padding is never attended to by a real position).

Reference: ``transformers``' forward itself (the same tests; and the PyTorch code each kernel replaces, where the
kernels are off or do not apply: not float32, not a CPU, ``R1_KERNELS=0``).
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from r1.models.fast import FastLM, linear, norm_eps, rms_norm, rope, silu_mul
from r1.models.kernels import fused_kernels
from r1.models.replay import _rms_backward


def _kernels(*tensors: Tensor):
    """``torch.ops.r1`` when the kernels apply to these tensors' values (float32, CPU, contiguous), autograd aside."""
    return fused_kernels(*(t.detach() for t in tensors))


class _RMSNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, eps: float) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.eps = eps
        return _kernels(x, weight).rms_norm(x, weight, eps)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy: Tensor):
        x, weight = ctx.saved_tensors
        dx, dw = _rms_backward(dy.contiguous(), x, weight, ctx.eps)
        return dx, (dw if ctx.needs_input_grad[1] else None), None


class _MLP(torch.autograd.Function):
    """The SwiGLU MLP ``down(silu(gate) · up)`` of (M, E) rows: gate/up in one product, the SwiGLU in one pass, and
    the backward in one pass too (``swiglu_backward_cat`` gives silu(gate) · up back with the gradients, so the
    (M, I) activation is not kept, and writes the gate and up gradients side by side: one (M, 2I) matrix, so the
    input and weight gradients of the fused gate/up product are one product each)."""

    @staticmethod
    def forward(ctx, h: Tensor, wgu: Tensor, bgu: Tensor | None, wd: Tensor, bd: Tensor | None) -> Tensor:
        gu = F.linear(h, wgu, bgu)  # (M, 2I)
        ctx.save_for_backward(h, wgu, wd, gu)
        return F.linear(_kernels(gu).silu_mul(gu), wd, bd)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy: Tensor):
        h, wgu, wd, gu = ctx.saved_tensors
        dy = dy.contiguous()
        mid, dgu = _kernels(gu).swiglu_backward_cat(gu, dy @ wd)  # (M, I), (M, 2I)
        need = ctx.needs_input_grad
        dwgu = dgu.t() @ h if need[1] else None
        dh = dgu @ wgu if need[0] else None  # (M, E)
        dbgu = dgu.sum(0) if need[2] else None
        return dh, dwgu, dbgu, dy.t() @ mid if need[3] else None, dy.sum(0) if need[4] else None


class _QKV(torch.autograd.Function):
    """(M, (H + 2 KV) D) q/k/v projections → q (M, H·D) and k (M, KV·D) with RoPE, v (M, KV·D); the backward writes
    the three gradients into one matrix (no zero-filled slices summed)."""

    @staticmethod
    def forward(ctx, qkv: Tensor, cos: Tensor, sin: Tensor, heads: int, kv_heads: int):
        k_ = _kernels(cos, sin)
        D = cos.shape[-1]
        ctx.save_for_backward(cos, sin)
        ctx.heads = heads, kv_heads
        q = k_.rope(qkv[:, : heads * D], cos, sin, heads, False, None)
        k = k_.rope(qkv[:, heads * D : (heads + kv_heads) * D], cos, sin, kv_heads, False, None)
        return q, k, qkv[:, (heads + kv_heads) * D :].contiguous()

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dq: Tensor, dk: Tensor, dv: Tensor):
        cos, sin = ctx.saved_tensors
        H, KV = ctx.heads
        D = cos.shape[-1]
        k_ = _kernels(cos, sin)
        out = torch.empty((cos.shape[0], (H + 2 * KV) * D), dtype=cos.dtype, device=cos.device)
        k_.rope(dq.reshape(-1, H * D).contiguous(), cos, sin, H, True, out[:, : H * D])
        k_.rope(dk.reshape(-1, KV * D).contiguous(), cos, sin, KV, True, out[:, H * D : (H + KV) * D])
        out[:, (H + KV) * D :] = dv.reshape(-1, KV * D)
        return out, None, None, None, None


def norm(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    """``fast.rms_norm`` with a fused forward and backward where the kernels apply."""
    if _kernels(x, weight) is None:
        return rms_norm(x, weight, eps)
    return _RMSNorm.apply(x, weight, eps)


def mlp(h: Tensor, wgu: Tensor, bgu: Tensor | None, wd: Tensor, bd: Tensor | None) -> Tensor:
    """down(silu(gate) · up) of (R, T, E), gate/up = ``h @ wgu.T + bgu`` ((2I, E), fused): one ``_MLP`` node where
    the kernels apply, else ``FastLM``'s PyTorch code."""
    if _kernels(h, wgu, wd) is None or torch.is_autocast_enabled(h.device.type):
        return linear(silu_mul(linear(h, wgu, bgu)), wd, bd)
    R, T, E = h.shape
    return _MLP.apply(h.reshape(R * T, E), wgu, bgu, wd, bd).view(R, T, -1)


def qkv_heads(qkv: Tensor, cos: Tensor, sin: Tensor, H: int, KV: int) -> tuple[Tensor, Tensor, Tensor]:
    """(R, T, (H + 2 KV) D) projections → q (R, T, H, D) and k (R, T, KV, D) with RoPE by (R, T, 1, D) cos/sin,
    v (R, T, KV, D): one ``_QKV`` node where the kernels apply, else ``FastLM``'s PyTorch code (no q/k norms)."""
    R, T, F_ = qkv.shape
    D = F_ // (H + 2 * KV)
    if _kernels(qkv, cos, sin) is None:
        v = qkv[..., (H + KV) * D :].view(R, T, KV, D)
        qk = rope(qkv[..., : (H + KV) * D].view(R, T, H + KV, D), cos, sin)
        return qk[:, :, :H], qk[:, :, H:], v
    q, k, v = _QKV.apply(qkv.view(R * T, F_), cos.reshape(R * T, D), sin.reshape(R * T, D), H, KV)
    return q.view(R, T, H, D), k.view(R, T, KV, D), v.view(R, T, KV, D)


PACKED_KERNEL_MAX_LENGTH = 512
"""The packed attention kernel (``torch.ops.r1.packed_attention``) runs when every example is at most this long; longer
ones go through PyTorch's attention in groups. Measured one thread, fwd + bwd against the groups' SDPA: 1.4x at 128
tokens (3.3x on the demo's 15-79), 1.03-1.10x at 512, 0.6x at 1024 (its (L, L) tiles leave the cache)."""

PACKED_KERNEL_HEAD_DIMS = (16, 32, 64, 128)
"""The head dims the kernel is compiled for (``kernels.cpp`` ``R1_BY_HEAD_DIM``); others take PyTorch's groups."""

BUCKET_RATIO = 1.25
"""Packed attention groups the examples by length: each group's padded width is at most this factor over its
shortest member's (fewer groups: fewer calls; narrower: less padding in the attention only)."""


class PackPlan:
    """How a packed row's examples meet in attention: ``PackPlan(lengths)`` for examples of these lengths laid one
    after another. r1's packed attention kernel attends within each example on the packed rows as they are; where
    it does not apply, examples of similar length are gathered into right-padded groups (``BUCKET_RATIO``), each
    group's causal attention runs as one call, and the outputs go back to the packed order. Either way no position
    attends to another example, and no attention is computed across examples (a block-diagonal mask would compute
    it and throw it away: ~2x the work at these lengths)."""

    def __init__(self, lengths: list[int], device: torch.device | str = "cpu"):
        if not lengths or min(lengths) < 1:
            raise ValueError(f"packed examples need at least one token each, got lengths {lengths}")
        starts, total = [], 0
        for n in lengths:
            starts.append(total)
            total += n
        self.total = total
        self._device = device
        self.positions = torch.cat([torch.arange(n) for n in lengths]).to(device)  # (M,) RoPE positions
        self.starts = torch.tensor(starts, dtype=torch.long)  # on the CPU: the kernel's arguments
        self.lengths = torch.tensor(lengths, dtype=torch.long)
        self.max_length = max(lengths)

    @functools.cached_property
    def groups(self) -> list[tuple[Tensor, Tensor, Tensor, Tensor]]:
        """Per group: index (G, L) of its positions in the packed row (padding: clamped, never attended to by a real
        position: it comes after), which of the G·L are real (a mask, and their indices), and those real positions
        in the packed row. Made on first use: the packed kernel does not need them."""
        lengths, starts, total = self.lengths.tolist(), self.starts.tolist(), self.total
        order = sorted(range(len(lengths)), key=lambda i: lengths[i])
        groups = []
        i = 0
        while i < len(order):
            j = i
            while j < len(order) and lengths[order[j]] <= lengths[order[i]] * BUCKET_RATIO:
                j += 1
            width = lengths[order[j - 1]]
            ar = torch.arange(width)
            idx = torch.stack([starts[e] + ar for e in order[i:j]])  # (G, width)
            valid = torch.stack([ar < lengths[e] for e in order[i:j]]).reshape(-1)  # (G·width,)
            real = idx.reshape(-1)[valid]
            keep = valid.nonzero()[:, 0]
            groups.append(tuple(t.to(self._device) for t in (idx.clamp(max=total - 1), valid, keep, real)))
            i = j
        return groups

    def attention(self, q: Tensor, k: Tensor, v: Tensor, scale: float) -> Tensor:
        """q (M, H, D), k and v (M, KV, D) of the packed positions → (M, H·D), causal within each example: one
        ``_PackedAttention`` node where the kernel applies (float32 on a CPU, ``PACKED_KERNEL_HEAD_DIMS``, examples
        up to ``PACKED_KERNEL_MAX_LENGTH``), else PyTorch's attention per group (the kernel's reference)."""
        H, KV = q.shape[1], k.shape[1]
        if (
            self.max_length <= PACKED_KERNEL_MAX_LENGTH
            and q.shape[2] in PACKED_KERNEL_HEAD_DIMS
            and _kernels(q, k, v) is not None
            and not torch.is_autocast_enabled(q.device.type)
        ):
            M = q.shape[0]
            return _PackedAttention.apply(q.reshape(M, -1), k.reshape(M, -1), v.reshape(M, -1), self, H, KV, scale)
        outs = []
        for (idx, *_), qb, kb, vb in zip(self.groups, *(_Gather.apply(t, self) for t in (q, k, v))):
            o = F.scaled_dot_product_attention(
                qb.transpose(1, 2), kb.transpose(1, 2), vb.transpose(1, 2), is_causal=True, scale=scale,
                enable_gqa=H != KV,
            )  # (G, H, L, D)
            outs.append(o.transpose(1, 2).reshape(idx.numel(), -1))
        return _Scatter.apply(self, *outs)


class _PackedAttention(torch.autograd.Function):
    """r1's packed attention kernel: (M, H·D) q, (M, KV·D) k and v → (M, H·D), each example's causal attention; the
    backward recomputes the probabilities from each row's saved logsumexp."""

    @staticmethod
    def forward(ctx, q: Tensor, k: Tensor, v: Tensor, plan: PackPlan, H: int, KV: int, scale: float) -> Tensor:
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
        o, lse = torch.ops.r1.packed_attention(q, k, v, plan.starts, plan.lengths, H, KV, scale)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.args = plan, H, KV, scale
        return o

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, do: Tensor):
        q, k, v, o, lse = ctx.saved_tensors
        plan, H, KV, scale = ctx.args
        dq, dk, dv = torch.ops.r1.packed_attention_backward(
            do.contiguous(), q, k, v, o, lse, plan.starts, plan.lengths, H, KV, scale
        )
        return dq, dk, dv, None, None, None, None


class _Gather(torch.autograd.Function):
    """(M, h, D) packed positions → one (G, L, h, D) right-padded tensor per group of ``plan``; the backward puts
    each real position's gradient back once (a padding position's is zero: nothing real attends to it)."""

    @staticmethod
    def forward(ctx, x: Tensor, plan: PackPlan):
        ctx.plan, ctx.shape = plan, x.shape
        return tuple(x.index_select(0, idx.view(-1)).view(*idx.shape, *x.shape[1:]) for idx, *_ in plan.groups)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, *grads: Tensor):
        out = grads[0].new_empty(ctx.shape)
        for (idx, _, keep, real), g in zip(ctx.plan.groups, grads):
            out.index_copy_(0, real, g.reshape(idx.numel(), *ctx.shape[1:]).index_select(0, keep))
        return out, None


class _Scatter(torch.autograd.Function):
    """Each group's (G·L, F) outputs → (M, F) in the packed order (its real rows only)."""

    @staticmethod
    def forward(ctx, plan: PackPlan, *outs: Tensor) -> Tensor:
        ctx.plan = plan
        y = outs[0].new_empty((plan.total, outs[0].shape[-1]))
        for (_, _, keep, real), o in zip(plan.groups, outs):
            y.index_copy_(0, real, o.index_select(0, keep))
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dy: Tensor):
        return None, *(dy.index_select(0, idx.view(-1)).masked_fill_(~valid[:, None], 0) for idx, valid, *_ in ctx.plan.groups)


def sequence_hidden(
    fast: FastLM, ids: Tensor, positions: Tensor | None = None, plan: PackPlan | None = None
) -> tuple[Tensor, Tensor, Tensor | None]:
    """Final-norm hidden states of ``ids`` (R, T) → (R, T, E), and the output head's weight (V, E) and bias (V,) or
    None; differentiable with respect to the model's parameters. The head is the caller's
    (``r1.algo.logprobs.head_logprobs``: only the positions that carry a loss, a block at a time).

    Without ``plan`` each row is one causal sequence, right-padded, at ``positions`` (R, T) (None: 0..T−1). With a
    ``plan``, ``ids`` is one packed row (1, M) of its examples one after another: RoPE positions restart at each
    example and attention stays within it (``PackPlan``); ``positions`` is not used."""
    model = fast.model
    R, T = ids.shape
    H, KV, D = fast.num_heads, fast.num_kv_heads, fast.head_dim
    if plan is not None:
        if R != 1 or T != plan.total:
            raise ValueError(f"a packed row is (1, {plan.total}) ids, got {tuple(ids.shape)}")
        positions = plan.positions[None]
    elif positions is None:
        positions = torch.arange(T, device=ids.device)[None, :].expand(R, T)
    weights = fast.weights()
    emb = model.model.embed_tokens
    x = F.embedding(ids, emb.weight, padding_idx=emb.padding_idx)  # (R, T, E)
    cos, sin = fast.rope_table(positions, x.dtype)  # (R, T, 1, D)
    for w in weights:
        qkv = linear(norm(x, w.n1, w.eps1), w.wqkv, w.bqkv)  # (R, T, (H + 2 KV) D)
        if w.q_norm is None:
            q, k, v = qkv_heads(qkv, cos, sin, H, KV)
        else:  # Qwen3: q/k norms before RoPE
            v = qkv[..., (H + KV) * D :].view(R, T, KV, D)
            q = rope(norm(qkv[..., : H * D].reshape(R, T, H, D), w.q_norm, w.eps_qk), cos, sin)
            k = rope(norm(qkv[..., H * D : (H + KV) * D].reshape(R, T, KV, D), w.k_norm, w.eps_qk), cos, sin)
        if plan is not None:
            # views, not q[0]: a select's backward would zero-fill and copy each gradient
            o = plan.attention(q.view(T, H, D), k.view(T, KV, D), v.view(T, KV, D), fast.scale)[None]  # (1, M, H D)
        else:
            o = F.scaled_dot_product_attention(
                q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True, scale=fast.scale,
                enable_gqa=H != KV,
            ).transpose(1, 2).reshape(R, T, H * D)
        x = x + linear(o, w.wo, w.bo)
        x = x + mlp(norm(x, w.n2, w.eps2), w.wgu, w.bgu, w.wd, w.bd)
    n = model.model.norm
    return norm(x, n.weight, norm_eps(n)), weights.head, weights.head_bias


__all__ = ["BUCKET_RATIO", "PACKED_KERNEL_MAX_LENGTH", "PackPlan", "mlp", "norm", "qkv_heads", "sequence_hidden"]
