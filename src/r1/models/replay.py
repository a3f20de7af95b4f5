"""The train pass without its forward: the backward of the rollout's own forward, replayed from recorded activations.

Why: with μ = 1 and one minibatch (the default, and the setting benchmarked against TRL), GRPO's single optimizer step
comes after the rollout, so the policy the trainer differentiates is exactly the policy that just sampled. The rollout
already ran its forward over every token the loss sees (the prompt prefill, then one decode step per completion
token), so the train pass's forward repeats it. ``NativeEngine.generate(..., record=True)`` keeps the activations of
that forward (:class:`ForwardRecord`); :func:`replay_hidden` hands the trainer the final-norm hidden states of the
recorded positions (the output head is applied by the trainer, block by block: ``r1.algo.logprobs.head_logprobs``),
and its backward is this module's hand-written backward of ``FastLM``'s layer (RMSNorm, fused q/k/v, RoPE, grouped-query attention,
o-projection, SwiGLU) over those activations. The train pass drops from forward + backward (~3 forward-FLOPs) to
the backward alone (~2). Peers cannot do this: their rollout runs in a separate engine (vLLM, HF ``generate``) whose
activations are gone.

Layout: one buffer per kind of activation and layer, ``(M, F)`` with ``M = U·P + T1·N`` token rows: the U distinct
prompts' P positions (left-padded), then the N rows' first T1 = max_new_tokens − 1 completion tokens (the inputs of
the decode steps; the last token is never fed), step-major: completion position t of row r is row ``U·P + t·N + r``.
So a decode step's activations are one contiguous block, which the forward writes straight into (``dest``): no copy
at record time. With every row and every step in use, the backward's matrices are these buffers themselves, with no
copy either. The logits are not recorded: at a real vocabulary they would be the record's largest part by far
(16 rows × 1024 tokens × 151,936 × 4 B = 10 GB), and the last layer's output ``x`` gives them back a block at a time.

Exactness: the recorded forward is the decode-time forward (per step, over the KV cache), equal to the training
forward up to float rounding (``tests/models/test_replay.py``: gradients vs autograd through ``train_logits``). A
record is only used while the parameters are unchanged since it was taken (their version counters), else the trainer
runs its usual forward.

Reference: autograd through ``FastLM.train_logits``, which is itself checked against ``transformers``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from r1.models.fast import (
    LOW_PRECISION,
    FastLM,
    LayerWeights,
    norm_eps,
    rms_norm,
    rope,
    rope_kernel,
    shared_prompt_layout,
)
from r1.algo.logprobs import param_grad
from r1.models.kernels import fused_kernels
from r1.models.lora import linear_weight

KINDS = ("x", "qkv", "o", "x2", "gu")
"""Per layer: its input ``x``, the q/k/v projections (before RoPE), the attention output, the residual after
attention ``x2``, the gate/up projections; ``x`` has one more entry: the last layer's output (the final norm's input)."""

RECORD_GU_MAX_BYTES = 256 << 20
"""The gate/up projections are recorded while they take at most this much memory; above it (a real shape: 4 layers
× 4,112 rows × 9,728 float32 values = 0.6 GiB, 72 % of the record) the record keeps 0 rows of them and the backward
recomputes them from ``x2`` (one product a layer, ~7 % of a 151,936-token head's train pass; on a tiny preset, where
it would be ~30 % of a train pass with a negligible head, the record stays small and keeps them)."""


MLP_BLOCK_ELEMENTS = 1 << 23
"""The MLP's backward runs over blocks of rows of at most this many (rows × 2 I) gate/up values (32 MiB of float32,
862 rows at Qwen2.5-0.5B's 9,728): its (rows, I)-wide temporaries then hold ~0.1 GiB, not ~0.6 GiB for a real
shape's 4,112 rows, while each product keeps hundreds of rows (a tiny preset's rollout is one block)."""


def _row_blocks(rows: int, width: int) -> list[slice]:
    step = max(1, MLP_BLOCK_ELEMENTS // max(1, width))
    return [slice(i, min(i + step, rows)) for i in range(0, rows, step)]


def _versions(model) -> tuple[int, ...]:
    return tuple(p._version for p in model.parameters())


class ForwardRecord:
    """Activations of one ``NativeEngine`` generation through ``FastLM`` (see the module docstring).

    The engine calls :meth:`at_prefill` / :meth:`at_step` before each forward, the forward calls :meth:`put`,
    the engine reports each forward's logits with :meth:`put_logits`, rows leaving the batch with :meth:`drop_rows`,
    and the end with :meth:`finish`.
    """

    def __init__(self, fast: FastLM, weights: list[LayerWeights], prompt_ids: Tensor, prompt_mask: Tensor, source: Tensor,
                 max_new_tokens: int, reuse: "ForwardRecord | None" = None):
        model = fast.model
        self.fast, self.weights = fast, weights
        self.prompt_ids, self.prompt_mask = prompt_ids, prompt_mask.bool()  # (U, P)
        self.source = source  # (N,) the distinct prompt of each row
        self.U, self.P = prompt_ids.shape
        self.N = int(source.shape[0])
        self.T1 = max(0, max_new_tokens - 1)
        self.steps = 0  # completion positions filled (T1 once finished, fewer if every row stopped early)
        self.versions = _versions(model)
        emb = model.model.embed_tokens.weight
        H, KV, D = fast.num_heads, fast.num_kv_heads, fast.head_dim
        E, L = emb.shape[1], len(weights)
        widths = {"x": E, "qkv": (H + 2 * KV) * D, "o": H * D, "x2": E, "gu": weights[0].wgu.shape[0]}
        M = self.U * self.P + self.T1 * self.N
        # Under mixed precision the products' outputs (q/k/v, attention output as the o-projection takes it,
        # gate/up) are kept in their low dtype, exactly; the residual stream in float32.
        low = weights[0].wqkv.dtype if weights[0].wqkv.dtype in LOW_PRECISION else emb.dtype
        self.mat_dtype = weights[0].wqkv.dtype  # the products' dtype in the recorded forward
        self.keep_gu = L * M * widths["gu"] * low.itemsize <= RECORD_GU_MAX_BYTES
        rows = {k: M if k != "gu" or self.keep_gu else 0 for k in widths}  # 0 rows: recomputed by the backward
        shapes = {k: (L + (k == "x"), rows[k], f) for k, f in widths.items()}  # kind -> (L (+1), M or 0, F)
        dtypes = {k: low if k in ("qkv", "o", "gu") else emb.dtype for k in shapes}
        old = reuse.storage if reuse is not None else {}
        if all(k in old and old[k].shape == shape and old[k].dtype == dtypes[k] for k, shape in shapes.items()):
            # The previous record's memory (its values are overwritten): fresh pages of this size cost page faults.
            self.storage = old
            reuse.versions = None  # that record is no longer usable
        else:
            self.storage = {k: emb.new_empty(shape, dtype=dtypes[k]) for k, shape in shapes.items()}
        self.buffers = {k: self.storage[k] for k in KINDS}
        self.comp_ids = torch.zeros((self.N, self.T1), dtype=torch.long, device=emb.device)
        self._t = 0  # 0: prefill; t >= 1: decode step t (writes completion position t - 1)
        self._slot_rows: Tensor | None = None
        self._dropped: list[tuple[Tensor, int]] = []
        self._layer_buffers: list[Tensor] | None = None  # ``layer_rows``' list, made at its first call

    # ------------------------------------------------------------------------------------------ recording
    def at_prefill(self) -> None:
        self._t = 0

    def at_step(self, t: int, slot_rows: Tensor | None) -> None:
        """Decode step ``t`` >= 1 feeds completion token t - 1; batch slot i holds row ``slot_rows[i]`` (None: i)."""
        self._t, self._slot_rows = t, slot_rows

    def _put_rows(self, comp: Tensor, value: Tensor) -> None:
        # comp: (N, F) view of position t - 1; value: (R_batch, F)
        if self._slot_rows is None:
            comp.copy_(value)
        else:
            comp.index_copy_(0, self._slot_rows, value)

    def dest(self, kind: str, layer: int) -> Tensor | None:
        """Where this forward's ``kind`` activation of ``layer`` goes, for the forward to compute it into: the
        prefill's (U, P, F) block, or a decode step's (N, 1, F) one; None once rows have left the batch (the rows
        are then scattered by ``put``)."""
        buf = self.buffers[kind][layer]  # (M, F)
        UP = self.U * self.P
        if buf.shape[0] == 0:  # not kept
            return None
        if self._t == 0:
            return buf[:UP].view(self.U, self.P, -1)
        if self._slot_rows is not None:
            return None
        return buf.narrow(0, UP + (self._t - 1) * self.N, self.N).view(self.N, 1, -1)

    def layer_rows(self) -> tuple[list[Tensor], int, Tensor | None] | None:
        """For ``decode_layers`` at a decode step: (every buffer in its order: per layer x, q/k/v, o, x2, g/u,
        then the last x; this step's first row; the row of each batch slot, or None while slot i holds row i).
        None at the prefill, or when some buffer is not float32 (mixed precision)."""
        if self._t == 0:
            return None
        if self._layer_buffers is None:
            L = self.buffers["qkv"].shape[0]
            bufs = [self.buffers[k][i] for i in range(L) for k in KINDS] + [self.buffers["x"][L]]
            self._layer_buffers = bufs if all(b.dtype == torch.float32 for b in bufs) else []
        if not self._layer_buffers:
            return None
        return self._layer_buffers, self.U * self.P + (self._t - 1) * self.N, self._slot_rows

    def put(self, kind: str, layer: int, value: Tensor) -> None:
        """``value`` (R, T, F): the prefill's (U, P, F) or a decode step's (R_batch, 1, F), copied in (a forward
        that computed it into ``dest``'s block has nothing to put)."""
        buf = self.buffers[kind][layer]  # (M, F)
        UP = self.U * self.P
        if buf.shape[0] == 0:  # not kept
            return
        value = value.to(buf.dtype)  # a no-op but for a product's input recorded in the low dtype
        if self._t == 0:
            buf[:UP].copy_(value.reshape(UP, -1))
        else:
            self._put_rows(buf[UP:].view(self.T1, self.N, -1)[self._t - 1], value[:, 0])

    def put_logits(self, logits: Tensor) -> None:
        """(U, V) after the prefill, (R_batch, V) after decode step t: the step is complete. The logits themselves
        are not kept (the module docstring says why)."""
        if self._t > 0:
            self.steps = self._t

    def drop_rows(self, rows: Tensor, t: int) -> None:
        """``rows`` left the batch after sampling token t: their positions >= t are never written."""
        self._dropped.append((rows, t))

    def finish(self, tokens: Tensor) -> None:
        """``tokens`` (N, ≥ T1): the sampled ids (the decode inputs). Unwritten positions become zeros, so every
        value the backward multiplies by a zero gradient is finite."""
        self.comp_ids.copy_(tokens[:, : self.T1].to(self.comp_ids.device))
        cached = self.fast._cached
        if cached is None or cached[1] is not self.weights:  # (a frozen model's copies are FastLM's, kept for reuse)
            # The fused q/k/v and gate/up copies served the decode; the backward remakes one layer's at a time
            # (``fused``): 4 layers × 37 MiB at Qwen2.5-0.5B's shape held from here to the backward, 0.9 GiB at 24.
            for w in self.weights:
                w.wqkv = w.wgu = None
        UP = self.U * self.P
        for rows, t in self._dropped:
            if t >= self.steps:
                continue
            rows = rows.to(self.comp_ids.device)
            for bufs in (b for b in self.buffers.values() if b.shape[1] > 0):
                bufs[:, UP:].view(bufs.shape[0], self.T1, self.N, -1)[:, t : self.steps, rows] = 0
        self._dropped = []

    # ------------------------------------------------------------------------------------------ use
    def fused(self, layer: int) -> tuple[Tensor, Tensor]:
        """Layer ``layer``'s fused q/k/v ((H + 2 KV) D, E) and gate/up (2 I, E) matrices in the recorded forward's
        dtype: the decode's copies while the record has them, else made again from the parameters (unchanged since,
        as ``usable`` checks; the weights, cast and concatenation of ``FastLM.weights``, so the same values)."""
        w = self.weights[layer]
        if w.wqkv is not None and w.wgu is not None:
            return w.wqkv, w.wgu
        layer_ = self.fast.model.model.layers[layer]
        a, m = layer_.self_attn, layer_.mlp

        def fuse(*mods) -> Tensor:
            return torch.cat([linear_weight(x)[0].detach().to(self.mat_dtype) for x in mods])

        return fuse(a.q_proj, a.k_proj, a.v_proj), fuse(m.gate_proj, m.up_proj)

    def usable(self, model, comp_len: int) -> bool:
        """Does this record hold ``model``'s forward, as its parameters are now, for ``comp_len`` tokens?"""
        return (
            self.versions is not None
            and model is self.fast.model
            and comp_len - 1 <= self.steps
            and _versions(model) == self.versions
        )


def replay_hidden(record: ForwardRecord, rows: list[int], comp_len: int, grads_into_params: bool = False) -> Tensor:
    """(n, comp_len, E) final-norm hidden states at the positions that predict the completion tokens of record rows
    ``rows`` (as ``FastLM.train_hidden`` returns them), differentiable with respect to the model's parameters through
    the recorded activations. The output head is the caller's (``r1.algo.logprobs.head_logprobs``: a block of
    logits at a time). ``grads_into_params``: the embedding's gradient goes straight into its ``.grad``
    (``r1.algo.logprobs.param_grad``), not through autograd (``FastLM.grads_into_params``)."""
    model = record.fast.model
    if not record.usable(model, comp_len):
        raise ValueError("the record does not hold the model's current forward (parameters changed or too short)")
    params = list(dict.fromkeys(p for p in model.parameters() if p.requires_grad))  # tied weights once
    rows_t = torch.as_tensor(rows, dtype=torch.long, device=record.comp_ids.device)
    return _Replay.apply(record, rows_t, comp_len, grads_into_params, *params)


def replay_logits(record: ForwardRecord, rows: list[int], comp_len: int) -> Tensor:
    """(n, comp_len, V) logits predicting the completion tokens of record rows ``rows`` (as ``FastLM.train_logits``
    returns them): the output head over :func:`replay_hidden`, every position at once (the plain reference)."""
    head = record.fast.model.lm_head
    return F.linear(replay_hidden(record, rows, comp_len), head.weight, head.bias)


class _Replay(torch.autograd.Function):
    @staticmethod
    def forward(ctx, record: ForwardRecord, rows: Tensor, comp_len: int, into: bool, *params: Tensor) -> Tensor:
        ctx.record, ctx.rows, ctx.params, ctx.into = record, rows, params, into
        norm = record.fast.model.model.norm
        U, P, N, UP = record.U, record.P, record.N, record.U * record.P
        xL = record.buffers["x"][len(record.weights)]  # (M, E): the last layer's output
        first = xL[:UP].view(U, P, -1)[:, -1][record.source[rows]]  # (n, E): each prompt's last position
        comp = xL[UP:].view(record.T1, N, xL.shape[1])[: comp_len - 1, rows].transpose(0, 1)  # (n, comp_len-1, E)
        x = torch.cat([first[:, None], comp], dim=1)  # (n, comp_len, E)
        return rms_norm(x, norm.weight.detach(), norm_eps(norm))

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        grads = backward(ctx.record, ctx.rows, grad, ctx.into)
        return (None, None, None, None, *[grads.get(id(p)) for p in ctx.params])


# ---------------------------------------------------------------------------------------------- the backward
def _rms_backward(dy: Tensor, x: Tensor, weight: Tensor, eps: float, residual: Tensor | None = None):
    """y = x · rsqrt(mean(x²) + eps) · weight over the last dim → (dx, dweight summed over all leading dims);
    ``residual`` (the residual stream's gradient) is added to dx, in place where the kernel runs (not to be used
    after). (Contiguous float32 on a CPU: r1's one-pass kernel, ``r1.models.kernels``; this code is its reference.)"""
    weight = weight.detach()
    k = fused_kernels(dy, x, weight, *([] if residual is None else [residual]))
    if k is not None:
        return k.rms_norm_backward(dy, x, weight, eps, residual)
    r = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    xh = x * r
    dxh = dy * weight
    dx = r * (dxh - xh * (dxh * xh).mean(-1, keepdim=True))
    if residual is not None:
        dx = residual + dx
    return dx, (dy * xh).reshape(-1, x.shape[-1]).sum(0)


def _rope_backward(dy: Tensor, cos: Tensor, sin: Tensor, out: Tensor) -> Tensor:
    """Transpose of ``rope`` into ``out``: dx1 = dy1·cos1 + dy2·sin2, dx2 = dy2·cos2 − dy1·sin1. (Float32 on a CPU:
    r1's one-pass kernel, ``fast.rope_kernel``; this code is its reference.)"""
    if rope_kernel(dy, cos, sin, transpose=True, out=out) is not None:
        return out
    h = dy.shape[-1] // 2
    torch.mul(dy, cos, out=out)
    out[..., :h].addcmul_(dy[..., h:], sin[..., h:])
    out[..., h:].addcmul_(dy[..., :h], sin[..., :h], value=-1)
    return out


def _attention_backward(q, k, v, do, mask, scale: float):
    """Softmax attention backward, recomputing the probabilities. q, do: (B, H, T, D); k, v: (B, KV, S, D);
    mask (B, 1, T, S) bool (True = visible; every query sees at least one key) → dq (B, H, T, D), dk, dv
    (B, KV, S, D). Query head h reads key head h // (H / KV), as ``enable_gqa``/``repeat_kv``."""
    B, H, T, D = q.shape
    KV, S = k.shape[1], k.shape[2]
    g = H // KV
    qr = q.reshape(B, KV, g * T, D)  # heads of one KV group stacked along the query axis
    dor = do.reshape(B, KV, g * T, D)
    scores = torch.matmul(qr, k.transpose(-1, -2)).mul_(scale).view(B, KV, g, T, S)
    scores.masked_fill_(~mask[:, :, None], float("-inf"))
    p = scores.softmax(-1).view(B, KV, g * T, S)
    dv = p.transpose(-1, -2) @ dor  # (B, KV, S, D), summed over the g heads
    dp = dor @ v.transpose(-1, -2)  # (B, KV, gT, S)
    # softmax's backward p · (dp − Σ p·dp) in ATen's one pass (was four), then the scale in place
    ds = torch.ops.aten._softmax_backward_data(dp, p, -1, p.dtype).mul_(scale)
    dq = (ds @ k).view(B, H, T, D)
    dk = ds.transpose(-1, -2) @ qr  # (B, KV, S, D)
    return dq, dk, dv


ATTN_BLOCK_ELEMENTS = 1 << 22
"""The attention's backward runs over blocks of rows whose (rows, heads, queries, keys) probabilities hold at most
this many values (16 MiB of float32; a real shape's 16 rows × 14 heads × 255 × 271 are 4 blocks): its four tensors
of that size then exist for one block at a time (~60 MiB, not ~250 MiB)."""


def _attention_backward_blocks(q, k, v, do, mask, scale: float):
    """:func:`_attention_backward` over blocks of the batch axis (``ATTN_BLOCK_ELEMENTS``); the same result."""
    B, H, T, _ = q.shape
    step = max(1, ATTN_BLOCK_ELEMENTS // max(1, H * T * k.shape[2]))
    if step >= B:
        return _attention_backward(q, k, v, do, mask, scale)
    parts = [
        _attention_backward(q[i : i + step], k[i : i + step], v[i : i + step], do[i : i + step],
                            mask if mask.shape[0] == 1 else mask[i : i + step], scale)
        for i in range(0, B, step)
    ]
    return tuple(torch.cat(xs) for xs in zip(*parts))


def backward(record: ForwardRecord, rows: Tensor, grad: Tensor, into: bool = False) -> dict[int, Tensor]:
    """Gradients of ``sum(grad · hidden)`` with respect to the model's parameters, keyed by ``id(param)``.

    ``grad`` (n, Tc, E) is the gradient of the loss with respect to ``replay_hidden``'s output for ``rows`` (the
    output head's own gradient is its caller's). ``into``: the embedding's is added into its ``.grad`` instead."""
    fast, model, weights = record.fast, record.fast.model, record.weights
    H, KV, D = fast.num_heads, fast.num_kv_heads, fast.head_dim
    U, P, N, T1 = record.U, record.P, record.N, record.T1
    UP = U * P
    n, Tc, E = grad.shape
    Tq = Tc - 1
    device, dtype = grad.device, record.buffers["x"].dtype
    grad = grad.to(dtype)
    whole = n == N and Tq == T1 and bool((rows.sort().values == torch.arange(N, device=device)).all())
    if whole:  # every row, in some order (the trainer sorts rows by length): reorder the small gradient instead
        grad = torch.empty_like(grad).index_copy_(0, rows, grad)
        rows = torch.arange(N, device=device)
    src = record.source[rows]  # (n,)

    def tokens(buf: Tensor) -> Tensor:
        """(M, F) buffer → (U·P + Tq·n, F): the prompts' rows, then the selected rows' first Tq positions
        (step-major, as recorded)."""
        if whole:
            return buf
        comp = buf[UP:].view(T1, N, -1)[:Tq, rows]  # (Tq, n, F)
        return torch.cat([buf[:UP], comp.reshape(Tq * n, -1)])

    # RoPE tables and attention masks, as train_logits builds them.
    p_mask = record.prompt_mask  # (U, P)
    p_pos, c_pos, p_attn, c_attn = shared_prompt_layout(p_mask, src, Tq)
    cos, sin = fast.rope_table(torch.cat([p_pos.reshape(-1), c_pos.t().reshape(-1)]), dtype)  # (Mt, 1, D)
    if p_attn is None:  # no prompt is padded: plain causal
        p_attn = torch.ones(P, P, dtype=torch.bool, device=device).tril()[None, None].expand(U, 1, P, P)

    grads: dict[int, Tensor] = {}
    # Mixed precision (a rollout under bf16 autocast: its matrices were cast once, ``FastLM.weights``): every product
    # takes its operands in that dtype, as autocast's backward would, and gives float32 back; the SwiGLU backward
    # runs in it too (gate/up are recorded in it), norms, RoPE and the attention backward in float32.
    low = record.mat_dtype if record.mat_dtype in LOW_PRECISION else None

    def lo(t: Tensor) -> Tensor:
        """An operand of a product: in the low dtype under mixed precision (a no-op for one already in it)."""
        return t if low is None else t.to(low)

    def mm(a: Tensor, b: Tensor) -> Tensor:
        """a @ b, given back in float32."""
        return a @ b if low is None else (lo(a) @ lo(b)).to(dtype)

    def add(p: Tensor | None, g: Tensor) -> None:
        if p is None or not p.requires_grad:
            return
        key = id(p)
        grads[key] = g.view_as(p) if key not in grads else grads[key] + g.view_as(p)

    # Final norm: hidden = norm(x_L). Prompt rows: only each prompt's last position is read (it predicts the first
    # completion token), with the gradients of the rows that share the prompt summed.
    dh = grad.new_zeros((UP + Tq * n, E))
    dh[:UP].view(U, P, E)[:, -1].index_add_(0, src, grad[:, 0])
    dh[UP:].view(Tq, n, E).copy_(grad[:, 1:].transpose(0, 1))
    norm = model.model.norm
    xL = tokens(record.buffers["x"][len(weights)])
    dx, dnorm = _rms_backward(dh, xL, norm.weight.detach(), norm_eps(norm))
    add(norm.weight, dnorm)

    layers = model.model.layers
    I = weights[0].wd.shape[1]
    for i in range(len(weights) - 1, -1, -1):
        w, layer = weights[i], layers[i]
        wqkv, wgu = record.fused(i)  # made for this layer alone once the rollout has dropped its copies
        a, m = layer.self_attn, layer.mlp
        x, qkv, o, x2, gu = (tokens(record.buffers[k][i]) for k in KINDS)
        # MLP: x3 = x2 + down(silu(gate) * up), gate/up = gu(norm2(x2))
        # Under mixed precision the SwiGLU and its backward run in the low dtype, as autocast's forward and
        # backward do (gate/up are recorded in it): half the memory traffic of float32, no casts before products.
        h2_all = lo(rms_norm(x2, w.n2, w.eps2))
        dx_all = lo(dx)
        dh2 = torch.empty_like(dx)  # (Mt, E)
        # A block of rows at a time: the (rows, I)-wide tensors of the SwiGLU's backward exist for one block only.
        for r in _row_blocks(dx.shape[0], 2 * I):
            h2, dx_lo = h2_all[r], dx_all[r]
            if record.keep_gu:
                g_u = gu[r]
            else:  # not recorded (RECORD_GU_MAX_BYTES): the forward's product again, in the dtype it ran in
                g_u = F.linear(h2, wgu, w.bgu)  # (rows, 2 I)
            dmid = dx_lo @ w.wd  # (rows, I)
            k = fused_kernels(g_u, dmid)
            if k is not None:  # float32 on a CPU: r1's one-pass SwiGLU forward + backward (below: its reference)
                h, dgate, dup = k.swiglu_backward(g_u, dmid)
            else:
                gate, up = g_u[:, :I], g_u[:, I:]
                silu = F.silu(gate)
                h = silu * up
                # Gate and up apart (contiguous, no (rows, 2I) matrix written column-half by column-half).
                dgate = torch.ops.aten.silu_backward(dmid * up, gate)  # (rows, I)
                dup = dmid * silu
                del gate, up, silu
            add(m.down_proj.weight, mm(dx_lo.t(), h))
            if w.bd is not None:
                add(m.down_proj.bias, dx[r].sum(0))
            add(m.gate_proj.weight, mm(dgate.t(), h2))
            add(m.up_proj.weight, mm(dup.t(), h2))
            if w.bgu is not None:
                add(m.gate_proj.bias, dgate.sum(0, dtype=dtype))
                add(m.up_proj.bias, dup.sum(0, dtype=dtype))
            dh2[r] = torch.addmm(dgate @ wgu[:I], dup, wgu[I:])  # (rows, E)
            del g_u, dmid, h, dgate, dup  # before the next block's are made
        dx2, dn2 = _rms_backward(dh2, x2, w.n2, w.eps2, residual=dx)  # dx + the norm's input gradient
        add(layer.post_attention_layernorm.weight, dn2)
        # Attention output projection: x2 = x + o_proj(o)
        dx2_lo = lo(dx2)
        add(a.o_proj.weight, mm(dx2_lo.t(), o))
        if w.bo is not None:
            add(a.o_proj.bias, dx2.sum(0))
        do = mm(dx2_lo, w.wo).view(-1, H, D)  # (Mt, H, D)
        # Attention over the recorded q/k/v (RoPE recomputed from the pre-RoPE projections).
        q_raw = qkv[:, : H * D].view(-1, H, D)
        k_raw = qkv[:, H * D : (H + KV) * D].view(-1, KV, D)
        v = qkv[:, (H + KV) * D :].view(-1, KV, D).to(dtype)  # float32, as the forward's attention took it
        if w.q_norm is None:  # q and k heads are adjacent: one RoPE over both
            qk = rope(qkv[:, : (H + KV) * D].view(-1, H + KV, D), cos, sin)
        else:
            qk = torch.cat([rms_norm(q_raw, w.q_norm, w.eps_qk), rms_norm(k_raw, w.k_norm, w.eps_qk)], dim=1)
            qk = rope(qk, cos, sin)
        q, k = qk[:, :H], qk[:, H:]

        def heads(t: Tensor, b: int, s: int) -> Tensor:  # (b·s, h, D) prompt rows → (b, h, s, D)
            return t.view(b, s, t.shape[1], D).transpose(1, 2)

        def comp_heads(t: Tensor) -> Tensor:  # (Tq·n, h, D) step-major completion rows → (n, h, Tq, D)
            return t.view(Tq, n, t.shape[1], D).permute(1, 2, 0, 3)

        qp, kp, vp, dop = heads(q[:UP], U, P), heads(k[:UP], U, P), heads(v[:UP], U, P), heads(do[:UP], U, P)
        qc, kc, vc, doc = (comp_heads(t[UP:]) for t in (q, k, v, do))
        dqc, dkc_all, dvc_all = _attention_backward_blocks(
            qc, torch.cat([kp[src], kc], dim=2), torch.cat([vp[src], vc], dim=2), doc, c_attn, fast.scale
        )
        dqp, dkp, dvp = _attention_backward_blocks(qp, kp, vp, dop, p_attn, fast.scale)
        dkp = dkp.index_add(0, src, dkc_all[:, :, :P])  # the completions' gradients reach their prompt's keys
        dvp = dvp.index_add(0, src, dvc_all[:, :, :P])

        def to_tokens(out: Tensor, tp: Tensor, tc: Tensor) -> None:  # (U, h, P, D), (n, h, Tq, D) → out (Mt, h, D)
            out[:UP].view(U, P, out.shape[1], D).copy_(tp.transpose(1, 2))
            out[UP:].view(Tq, n, out.shape[1], D).copy_(tc.permute(2, 0, 1, 3))

        dqk_rot = torch.empty_like(qk)  # (Mt, H + KV, D): gradients of q and k after RoPE, in token order
        to_tokens(dqk_rot[:, :H], dqp, dqc)
        to_tokens(dqk_rot[:, H:], dkp, dkc_all[:, :, P:])
        dqkv = torch.empty(qkv.shape, dtype=dtype, device=device)  # (Mt, (H + 2 KV) D)
        dqk = dqkv[:, : (H + KV) * D].view(-1, H + KV, D)
        to_tokens(dqkv[:, (H + KV) * D :].view(-1, KV, D), dvp, dvc_all[:, :, P:])
        if w.q_norm is None:
            _rope_backward(dqk_rot, cos, sin, out=dqk)
        else:
            dqk_n = _rope_backward(dqk_rot, cos, sin, out=torch.empty_like(dqk_rot))
            dq, dqn = _rms_backward(dqk_n[:, :H], q_raw.to(dtype), w.q_norm, w.eps_qk)
            dk, dkn = _rms_backward(dqk_n[:, H:], k_raw.to(dtype), w.k_norm, w.eps_qk)
            dqk[:, :H], dqk[:, H:] = dq, dk
            add(a.q_norm.weight, dqn)
            add(a.k_norm.weight, dkn)
        h1 = lo(rms_norm(x, w.n1, w.eps1))
        dqkv_lo = lo(dqkv)
        dwqkv = mm(dqkv_lo.t(), h1)  # ((H + 2 KV) D, E)
        add(a.q_proj.weight, dwqkv[: H * D])
        add(a.k_proj.weight, dwqkv[H * D : (H + KV) * D])
        add(a.v_proj.weight, dwqkv[(H + KV) * D :])
        if w.bqkv is not None:
            db = dqkv.sum(0)
            add(a.q_proj.bias, db[: H * D])
            add(a.k_proj.bias, db[H * D : (H + KV) * D])
            add(a.v_proj.bias, db[(H + KV) * D :])
        dx, dn1 = _rms_backward(mm(dqkv_lo, wqkv), x, w.n1, w.eps1, residual=dx2)  # dx2 + the norm's
        add(layer.input_layernorm.weight, dn1)

    emb = model.model.embed_tokens.weight
    if emb.requires_grad:
        ids = torch.cat([record.prompt_ids.reshape(-1), record.comp_ids[rows, :Tq].t().reshape(-1)])
        pad_row = model.model.embed_tokens.padding_idx
        if pad_row is not None:  # nn.Embedding's padding_idx: its row gets no gradient from lookups (a sampled pad)
            dx = dx.masked_fill((ids == pad_row)[:, None], 0)
        target = param_grad(emb, dtype) if into else None
        if target is not None:  # straight into .grad: no (vocabulary, hidden) gradient for autograd to add up
            target.index_add_(0, ids, dx.to(target.dtype))
        elif emb is model.get_output_embeddings().weight and id(emb) not in grads:
            # Tied to the head: autograd sums this into the head's dense gradient, so a sparse one spares a
            # (vocabulary, hidden) temporary (0.5 GiB at a 151,936-token vocabulary).
            grads[id(emb)] = torch.sparse_coo_tensor(ids[None], dx, emb.shape, check_invariants=False)
        else:
            add(emb, torch.zeros_like(emb).index_add_(0, ids, dx))
    return grads
