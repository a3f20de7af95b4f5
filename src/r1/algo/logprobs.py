"""Token log-probs and entropies of the temperature-scaled policy, computed in chunks.

What it is: the policy's distribution is ``softmax(logits / temperature)``, the one the rollout engine samples
from, so the importance ratio compares like with like (TRL divides logits by the temperature the same way;
the sampler's logprobs are taken before top-k/top-p truncation, see :mod:`r1.rollout.base`).

:func:`gather_logprobs` is the hot path. The naive form ``log_softmax(logits / τ).gather(token_ids)`` builds a second
``(N, T, V)`` tensor (in fp32 for bf16 logits) and autograd keeps it for the backward. Here the chosen logit minus
``logsumexp`` is computed on blocks of at most ``chunk_size`` positions (TRL ``selective_log_softmax``), and a custom
backward recomputes each block's softmax from the saved logits and per-position ``logsumexp``, so neither pass
holds more than a few blocks of full-vocabulary fp32 values besides the logits and their gradient.

:func:`head_logprobs` goes one step further and never holds the ``(N, T, V)`` logits at all: it takes the final
hidden states and the output head's weight and runs "lm_head product → log-softmax → gathered logprob → entropy" on
blocks of positions, keeping only each position's ``logsumexp`` and entropy; the backward recomputes a block's logits
from the saved hidden states and gives the gradients of the hidden states and of the head's weight (Liger's fused
linear cross-entropy, Cut Cross-Entropy arXiv:2411.09009, with the temperature and the entropy added). Peak extra
memory: a few ``(chunk, V)`` float32 blocks, whatever the vocabulary and the completion length. The logits-based
functions above are its slow, obvious reference (``tests/algo/test_chunked_head.py``).

At μ = 1 the policy's forward values are known before the train pass: the sampler computed each token's logprob
from the same weights. :class:`KnownLogprobs` hands them to :func:`head_logprobs`, whose forward then runs no head
product (the values are the sampler's) and whose backward, which recomputes the logits anyway, runs a vocabulary
chunk at a time against every position (the logsumexp each position needs up front is the known logprob's:
``z_y - logp_y``), records the recomputed logprobs and entropies for the metrics, and falls back to blocks of
positions with their own logsumexp if the two disagree: three products of the ``(V, H)`` head instead of four, each
a large square-ish one.

Left out: double backward (the custom backwards are once-differentiable), top-k/top-p renormalisation, and fused or
compiled kernels (the blocks are plain PyTorch products and reductions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, NamedTuple

import torch
import torch.nn.functional as F
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


HEAD_BLOCK_ELEMENTS = 1 << 24
"""``head_logprobs``' default block: as many positions as keep one ``(positions, V)`` float32 block at about 64 MiB
(110 positions of a 151,936-token vocabulary; every position at once for a small one)."""


@dataclass
class KnownLogprobs:
    """Values of a head pass that are known before it runs: at μ = 1, the sampler's logprobs of the tokens it drew,
    computed from the very weights the train pass differentiates.

    Given to :func:`head_logprobs`, the forward returns ``logps`` as its logprobs (differentiable: the backward
    recomputes the logits from the hidden states) and runs no head product. In float32 without autocast the backward
    runs a vocabulary chunk at a time and takes each position's normaliser from its known logprob
    (:func:`_known_vocab_chunked_backward`): the hidden states' gradient is the usual one, the head weight's and bias's
    within :data:`KNOWN_LSE_TOLERANCE` of it (equal when the known values are the pass's own up to rounding), and it
    falls back to the usual blocks beyond that (``fallback``). In low precision it runs the usual blocks.
    The backward fills ``entropy`` and ``recomputed`` ((N, T) each, 0 at padding, NaN until it runs): the entropies
    and logprobs of the pass's own logits, for the metrics (so the rollout-vs-train logprob gap is still measured).
    The entropy :func:`head_logprobs` returns is ``entropy`` itself, filled in place by the backward, and is not
    differentiable on this path. ``used`` says whether the head took the values: when every position fits one block
    (a small vocabulary) it computes them as usual, since its backward then recomputes nothing.
    """

    logps: Tensor  # (N, T) the known logprobs of ``token_ids``
    entropy: Tensor | None = None  # (N, T) filled by the backward
    recomputed: Tensor | None = None  # (N, T) filled by the backward
    used: bool = False
    fallback: bool = False  # the backward redid the head block by block (``KNOWN_LSE_TOLERANCE``)


class _KnownOut(NamedTuple):
    """What the known-values backward reads and fills: the (M,)-flat views of ``KnownLogprobs.entropy`` and
    ``.recomputed``, each real position's place in them, the known values at the real positions, and the holder."""

    entropy: Tensor
    recomputed: Tensor
    pos: Tensor
    values: Tensor
    known: KnownLogprobs


def _vocab_chunk_rows(positions: int, v: int, chunk: int) -> int:
    """Vocabulary rows a chunk of the turned-around loops takes: as many as keep ``positions × rows`` at the
    position loop's ``chunk × V`` values."""
    return max(1, min(v, chunk * v // max(1, positions)))


def _head_block(z_dtype: torch.dtype, h: Tensor, w: Tensor, b: Tensor | None, low: torch.dtype | None,
                temperature: float) -> Tensor:
    """``(h @ w.T + b) / τ`` for one block of positions, in ``z_dtype``; the product in ``low`` when given (as
    autocast runs it), accumulated there and cast up afterwards. The division in place, and none at τ = 1 (a block
    is 64 MiB: a pass over it costs a tenth of its product at a 151,936-token vocabulary)."""
    if low is not None:
        z = F.linear(h.to(low), w.to(low), None if b is None else b.to(low))
    else:
        z = F.linear(h, w, b)
    z = z.to(z_dtype)  # a fresh tensor either way (no product's backward reads its output)
    return z if temperature == 1 else z.div_(temperature)


def param_grad(param: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """``param.grad`` to add a gradient into in place (made as zeros when there is none), or None where it cannot
    take one (``param`` not a leaf that requires grad, or its ``.grad`` not a plain dense tensor of ``dtype``).

    Why: with ``into_grad`` (a trainer's ``.backward()``, gradients summed over micro-batches in ``.grad``) the output
    head's weight gradient is summed straight into ``.grad`` rather than returned to autograd, which would hold it
    beside ``.grad`` until it adds them: at a 151,936 × 896 head, 0.51 GiB less at the backward's peak, and as much
    again for a tied embedding's lookups (``r1.models.fast.embed_into_grad``), which autograd would sum with the
    head's into a third (vocabulary, hidden) tensor first. ``torch.autograd.grad`` does not read ``.grad``: leave
    ``into_grad`` off there (the default)."""
    if param is None or not param.is_leaf or not param.requires_grad:
        return None
    g = param.grad
    if g is None:
        if param.dtype != dtype:
            return None
        param.grad = g = torch.zeros_like(param, memory_format=torch.contiguous_format)
        return g
    if g.layout != torch.strided or g.dtype != dtype or not g.is_contiguous() or g.requires_grad:
        return None
    return g


def _add_block_grads(dz: Tensor, h: Tensor, w: Tensor, low: torch.dtype | None, rows: slice, dh: Tensor | None,
                     dw: Tensor | None, db: Tensor | None) -> None:
    """Given a block's logit gradient ``dz`` (c, V): write its hidden states' gradient into ``dh[rows]`` and add its
    weight's and bias's into ``dw`` / ``db`` (each None when not wanted); products in ``low`` when given."""
    if low is not None:
        dz = dz.to(low)
    if dh is not None:
        dh[rows] = (dz @ w).to(dh.dtype)
    if dw is not None and dz.dtype == dw.dtype:  # in place (MKL's beta = 1): no (V, H) temporary per block
        dw.addmm_(dz.t(), h)
    elif dw is not None:
        dw += (dz.t() @ h.to(low)).to(dw.dtype)
    if db is not None:
        db += dz.sum(0, dtype=db.dtype)


class _HeadLogprobs(torch.autograd.Function):
    """(M, H) hidden states → (M,) ``log_softmax(h W^T / τ)[y]`` and (M,) entropies, block by block of positions,
    the backward recomputing each block's logits."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, token_ids, temperature, chunk, low, known, out, into_grad):
        m = hidden.shape[0]
        dtype = _compute_dtype(hidden.dtype if low is None else torch.float32)
        ctx.mark_non_differentiable(token_ids)
        ctx.temperature, ctx.chunk, ctx.low, ctx.out = temperature, chunk, low, out
        ctx.param = weight if into_grad else None  # the Parameter itself: its ``.grad`` takes the weight's gradient
        if known is not None:  # no product: the values are known; the backward computes the rest (KnownLogprobs)
            ctx.one_block = None
            ctx.save_for_backward(hidden, weight, bias, token_ids, None, None)
            ent = torch.full((m,), torch.nan, dtype=dtype, device=hidden.device)  # the caller reads ``out``'s
            ctx.mark_non_differentiable(ent)
            return known.to(dtype).clone(), ent
        w = weight if low is None else weight.to(low)  # cast once, not at every block
        logps = hidden.new_empty((m,), dtype=dtype)
        lse = hidden.new_empty((m,), dtype=dtype)
        ent = hidden.new_empty((m,), dtype=dtype)
        logp = None
        for i in range(0, m, chunk):
            z = _head_block(dtype, hidden[i : i + chunk], w, bias, low, temperature)  # (c, V)
            lse[i : i + chunk] = torch.logsumexp(z, dim=-1)
            logp = z - lse[i : i + chunk, None]  # (c, V)
            logps[i : i + chunk] = logp.gather(-1, token_ids[i : i + chunk, None]).squeeze(-1)
            ent[i : i + chunk] = -(logp.exp() * logp).sum(-1)  # z is finite: no 0 · log 0 here
        # One block (a small vocabulary): its log-probs are kept, and the backward needs no second head product.
        ctx.one_block = logp if m <= chunk and any(ctx.needs_input_grad[:3]) else None
        ctx.save_for_backward(hidden, weight, bias, token_ids, lse, ent)
        return logps, ent

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_logps, g_ent):
        hidden, weight, bias, token_ids, lse, ent = ctx.saved_tensors
        temperature, chunk, low, out = ctx.temperature, ctx.chunk, ctx.low, ctx.out
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        dtype = _compute_dtype(hidden.dtype if low is None else torch.float32)
        w = weight if low is None else weight.to(low)
        dh = torch.zeros_like(hidden) if need_h else None  # (M, H)
        # into_grad: the weight's gradient summed straight into its ``.grad`` (``param_grad``), none returned; a
        # ``.grad`` that held a gradient already is added to (a fresh one is zeros: the known path may write over it)
        had_grad = ctx.param is not None and ctx.param.grad is not None
        into = param_grad(ctx.param, dtype) if need_w else None
        accumulate = into is not None and had_grad
        dw = into  # (V, H)
        if into is None and need_w:
            dw = torch.zeros(weight.shape, dtype=dtype, device=weight.device)
        db = torch.zeros(bias.shape, dtype=dtype, device=bias.device) if need_b else None  # (V,)
        blocks = range(0, hidden.shape[0], chunk)
        if lse is None:  # known values: no forward ran, the entropy is not differentiable on this path
            g_ent = None
            if low is None and ctx.one_block is None and g_logps is not None:
                if _known_vocab_chunked_backward(hidden, weight, bias, token_ids, g_logps.to(dtype), temperature,
                                                 chunk, dh, dw, db, out, accumulate=accumulate):
                    blocks = range(0)  # done
                else:
                    out.known.fallback = True  # the block loop below, with each block's own logsumexp
        for i in blocks:
            s = slice(i, i + chunk)
            h = hidden[s]
            if ctx.one_block is not None:
                logp, ctx.one_block = ctx.one_block, None
            elif lse is None:  # this pass's own logsumexp; its entropies and logprobs go to ``out`` for the metrics
                z = _head_block(dtype, h, w, bias, low, temperature)  # (c, V)
                logp = z - torch.logsumexp(z, dim=-1, keepdim=True)
                at = out.pos[s]  # these positions' places in the (N, T) buffers
                out.entropy.index_copy_(0, at, -(logp.exp() * logp).sum(-1))
                out.recomputed.index_copy_(0, at, logp.gather(-1, token_ids[s, None]).squeeze(-1))
            else:
                logp = _head_block(dtype, h, w, bias, low, temperature) - lse[s, None]  # (c, V), recomputed
            p = logp.exp()
            # d logp_y / dz_v = 1[v = y] - p_v;  dH / dz_v = -p_v (log p_v + H)
            dz = torch.zeros_like(p)
            if g_logps is not None:
                g = g_logps[s].to(dtype)
                dz.addcmul_(p, g[:, None], value=-1)
                dz.scatter_add_(-1, token_ids[s, None], g[:, None])
            if g_ent is not None:
                dz.addcmul_(p, (logp + ent[s, None]) * g_ent[s, None].to(dtype), value=-1)
            dz /= temperature  # (c, V): gradient of the block's logits
            _add_block_grads(dz, h, w, low, s, dh, dw, db)
        dw = None if dw is None or into is not None else dw.to(weight.dtype)
        db = None if db is None else db.to(bias.dtype)
        return dh, dw, db, None, None, None, None, None, None, None


def _vocab_chunked_values(h: Tensor, w: Tensor, b: Tensor | None, y: Tensor, temperature: float,
                          chunk: int) -> tuple[Tensor, Tensor]:
    """(M,) logprobs of ``y`` and entropies of ``softmax((h W^T + b) / τ)`` with no autograd, the loop turned
    around: every position against a chunk of the vocabulary at a time (as many rows as keep a chunk at
    ``chunk × V`` values, the block size of the position loop), with an online logsumexp and an online
    ``Σ p · z`` for the entropy (``H = lse - E_p[z]``).

    Why: a block of ~110 positions against the whole vocabulary is a product of 110 rows, for which MKL re-packs the
    (V, H) weight at every call; all positions against 4,096 vocabulary rows is a square-ish product that runs near
    the matmul peak. Measured alone (one thread, 2,048 positions, vocabulary 151,936, hidden 896): 8.35 → 5.8 s."""
    m_rows, v = h.shape[0], w.shape[0]
    dtype = _compute_dtype(h.dtype)
    vc = _vocab_chunk_rows(m_rows, v, chunk)
    run_max = h.new_full((m_rows,), -torch.inf, dtype=dtype)
    run_sum = h.new_zeros((m_rows,), dtype=dtype)  # Σ exp(z - max)
    run_dot = h.new_zeros((m_rows,), dtype=dtype)  # Σ exp(z - max) · z
    z_y = h.new_empty((m_rows,), dtype=dtype)
    for j in range(0, v, vc):
        z = _head_block(dtype, h, w[j : j + vc], None if b is None else b[j : j + vc], None, temperature)  # (M, c)
        here = ((y >= j) & (y < j + vc)).nonzero()[:, 0]
        z_y[here] = z[here, y[here] - j]
        new_max = torch.maximum(run_max, z.amax(-1))
        rescale = (run_max - new_max).exp()
        e = (z - new_max[:, None]).exp_()  # (M, c)
        run_sum = run_sum * rescale + e.sum(-1)
        run_dot = run_dot * rescale + (e * z).sum(-1)
        run_max = new_max
    lse = run_max + run_sum.log()
    return z_y - lse, lse - run_dot / run_sum


KNOWN_LSE_TOLERANCE = 1e-3
"""How far (in log space, at any position) the train pass's own softmax normaliser may be from the one the known
logprobs imply before :func:`_known_vocab_chunked_backward` gives up and the blocks are redone with their own."""


def _known_vocab_chunked_backward(h: Tensor, w: Tensor, b: Tensor | None, y: Tensor, g: Tensor,
                                  temperature: float, chunk: int, dh: Tensor | None, dw: Tensor | None,
                                  db: Tensor | None, out: _KnownOut, accumulate: bool = False) -> bool:
    """The known-values backward with the loop turned around (as :func:`_vocab_chunked_values`): every position
    against a chunk of the vocabulary at a time, three products a chunk (logits, hidden states' gradient, the chunk's
    weight gradient, each near the matmul peak), instead of 110-position blocks against the whole vocabulary.

    The softmax needs each position's logsumexp before its first chunk. The known logprob gives it: ``lse = z_y -
    logp_y``, with ``z_y`` the chosen token's logit (one dot product a position). So ``p̃ = exp(z - lse_known)`` is the
    softmax of this pass's logits up to the factor ``c = 1 / Σ p̃`` (1 when the sampler and this pass agree, as they do
    up to rounding at μ = 1). The pass sums ``Σ p̃`` and ``A = Σ p̃ w`` (the hidden states' gradient product, before
    the upstream gradient scales it), which give this pass's own logsumexp, its logprobs, and its entropy
    (``E_p[z] = c (h · A + Σ p̃ b) / τ``: no extra pass over the logits) for the metrics in ``out``. The hidden states'
    gradient ``g (w_y - c A) / τ`` is exact; the weight's and bias's softmax parts use ``p̃ = p / c``, off by the factor
    ``1 / c`` per position, so if any ``|log c|`` exceeds :data:`KNOWN_LSE_TOLERANCE` (or anything is not finite) this returns False and the caller
    redoes the gradients block by block with each block's own logsumexp. Writes ``dh``/``dw``/``db`` (zeros on entry;
    ``accumulate``: adds into ``dw``, a gradient summed so far, and takes back what it added when it gives up)
    and the metrics; True when done. (The entropy as ``lse - E_p[z]`` is as precise as the online one of
    :func:`_vocab_chunked_values`: a few 1e-5 absolute at large logits, a logged metric only.)"""
    m_rows, v = h.shape[0], w.shape[0]
    vc = _vocab_chunk_rows(m_rows, v, chunk)
    w_y = w[y]  # (M, H) the chosen tokens' rows
    z_y = (h * w_y).sum(-1) + (0 if b is None else b[y])
    z_y = z_y / temperature  # (M,)
    shift = z_y - out.values.to(g.dtype)  # (M,) the known logsumexp
    s0 = h.new_zeros((m_rows,), dtype=g.dtype)  # Σ p̃
    s_b = h.new_zeros((m_rows,), dtype=g.dtype)  # Σ p̃ b
    gs = g / temperature  # (M,) each position's upstream gradient, through the 1/τ
    a = torch.zeros_like(h)  # (M, H) Σ p̃ w
    for j in range(0, v, vc):
        wj, bj = w[j : j + vc], None if b is None else b[j : j + vc]
        e = _head_block(g.dtype, h, wj, bj, None, temperature).sub_(shift[:, None]).exp_()  # (M, c) p̃
        s0 += e.sum(-1)
        a.addmm_(e, wj)
        if bj is not None:
            s_b.addmv_(e, bj)
        dz = e.mul_(-gs[:, None])  # (M, c) the softmax part of the logits' gradient: -g p̃ / τ
        if dw is not None and accumulate:
            dw[j : j + vc].addmm_(dz.t(), h)
        elif dw is not None:
            torch.mm(dz.t(), h, out=dw[j : j + vc])
        if db is not None:
            db[j : j + vc] = dz.sum(0)
    lse = shift + s0.log()  # this pass's own logsumexp
    if not (bool(lse.isfinite().all()) and float(s0.log().abs().max()) <= KNOWN_LSE_TOLERANCE):
        for t in (dh, db) if accumulate else (dh, dw, db):
            if t is not None:
                t.zero_()
        if dw is not None and accumulate:  # take back the same products (to a rounding of the sum)
            for j in range(0, v, vc):
                wj, bj = w[j : j + vc], None if b is None else b[j : j + vc]
                e = _head_block(g.dtype, h, wj, bj, None, temperature).sub_(shift[:, None]).exp_()
                dw[j : j + vc].addmm_(e.mul_(-gs[:, None]).t(), h, alpha=-1)
        return False
    at = out.pos
    expect_z = ((h * a).sum(-1) + s_b) / (s0 * temperature)  # E_p[z]
    out.entropy.index_copy_(0, at, lse - expect_z)
    out.recomputed.index_copy_(0, at, z_y - lse)
    if dh is not None:  # d logp_y / dz_v = 1[v = y] - p_v, p = c · p̃
        dh.copy_(w_y.sub_(a / s0[:, None]).mul_(gs[:, None]))
    if dw is not None:
        dw.index_add_(0, y, h * gs[:, None])
    if db is not None:
        db.index_add_(0, y, gs)
    return True


def _head_setup(hidden: Tensor, weight: Tensor, token_ids: Tensor, chunk_size: int | None, mask: Tensor | None):
    """Check the head's shapes; return the products' dtype (autocast's low-precision one when enabled on
    ``hidden``'s device, a low-precision model's own, else None), the block size in positions, and the (M, H)
    hidden states and (M,) ids of the positions in ``mask`` (every position when None; a differentiable gather)."""
    if hidden.dim() != 3 or hidden.shape[:-1] != token_ids.shape or weight.dim() != 2:
        shapes = f"{tuple(hidden.shape)}, {tuple(weight.shape)} vs {tuple(token_ids.shape)}"
        raise ValueError(f"hidden (N, T, H), weight (V, H) and token_ids (N, T) disagree: {shapes}")
    if weight.shape[1] != hidden.shape[-1]:
        raise ValueError(f"hidden size {hidden.shape[-1]} and head weight {tuple(weight.shape)} disagree")
    device = hidden.device.type
    low = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else None
    low = low if low in (torch.bfloat16, torch.float16) else None
    if low is None and hidden.dtype in (torch.bfloat16, torch.float16):
        low = hidden.dtype  # a low-precision model without autocast: its products in its dtype
    chunk = max(1, chunk_size if chunk_size is not None else HEAD_BLOCK_ELEMENTS // max(1, weight.shape[0]))
    ids = token_ids.long()
    if mask is None:
        return low, chunk, hidden.reshape(-1, hidden.shape[-1]), ids.reshape(-1)
    return low, chunk, hidden[mask], ids[mask]


def head_logprobs(
    hidden: Tensor,
    weight: Tensor,
    token_ids: Tensor,
    temperature: float = 1.0,
    bias: Tensor | None = None,
    mask: Tensor | None = None,
    chunk_size: int | None = None,
    known: KnownLogprobs | None = None,
    into_grad: bool = False,
) -> tuple[Tensor, Tensor]:
    """Log-prob of each ``token_ids`` entry and the entropy under ``softmax((hidden @ weight.T + bias) / τ)``,
    without ever holding the ``(N, T, V)`` logits; differentiable w.r.t. ``hidden``, ``weight`` and ``bias``.

    Plain equivalent (the reference in ``tests/algo/test_chunked_head.py``)::

        logits = hidden @ weight.T + bias
        logps = gather_logprobs(logits, token_ids, τ); entropy = entropy_from_logits(logits, τ)

    Under autocast (a low-precision dtype enabled on ``hidden``'s device) the products run in that dtype, as autocast
    would run the head's ``linear``, and the softmax in float32; the backward's products too.

    Args:
        hidden: (N, T, H) final hidden states (after the model's last norm), any float dtype.
        weight: (V, H) the output head's weight (tied to the embedding or not).
        token_ids: (N, T) ids in ``[0, V)``.
        temperature: τ > 0.
        bias: (V,) or None.
        mask: (N, T) bool, or None (every position): positions outside it are not computed, and read 0 in both
            outputs (padding).
        chunk_size: positions per block; None: ``HEAD_BLOCK_ELEMENTS // V``. Peak extra memory is a few
            ``chunk_size × V`` float32 blocks.
        known: the logprobs' values, known already (:class:`KnownLogprobs`): no product in the forward, and the
            entropy returned is ``known.entropy``, filled by the backward.
        into_grad: the backward sums the weight's gradient straight into ``weight.grad`` (:func:`param_grad`), as
            ``.backward()`` would, instead of returning it: one (V, H) tensor less at its peak. Not for
            ``torch.autograd.grad``, which would not see that gradient.

    Returns:
        (logps, entropy): (N, T) each, float32 (fp64 for fp64 inputs without autocast).

    Example: ``hidden = [[[1.0]]]``, ``weight = [[0], [ln 3]]``, ``token_ids = [[1]]`` → logps ``log(3/4) =
    -0.2877``, entropy ``0.5623`` (the logits ``[0, ln 3]`` of :func:`gather_logprobs`' example).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0 for logprobs, got {temperature}")
    mask = None if mask is None else mask.bool()
    low, chunk, h, y = _head_setup(hidden, weight, token_ids, chunk_size, mask)  # (M, H), (M,): the real positions
    n, t, _ = hidden.shape
    device = hidden.device.type
    given = out = None
    if known is not None:
        if known.logps.shape != token_ids.shape:
            raise ValueError(f"known logprobs {tuple(known.logps.shape)} vs token_ids {tuple(token_ids.shape)}")
        known.used = h.shape[0] > chunk and torch.is_grad_enabled()  # one block: computed and kept as usual
    if known is not None and known.used:
        dtype = _compute_dtype(hidden.dtype if low is None else torch.float32)
        given = known.logps.reshape(-1) if mask is None else known.logps[mask]  # (M,)
        pos = torch.arange(n * t, device=hidden.device)
        pos = pos if mask is None else pos[mask.reshape(-1)]  # (M,) each position's place in the (N, T) buffers
        known.entropy, known.recomputed = (hidden.new_zeros((n, t), dtype=dtype) for _ in range(2))
        known.entropy.view(-1)[pos] = torch.nan  # until the backward fills them
        known.recomputed.view(-1)[pos] = torch.nan
        known.fallback = False
        out = _KnownOut(known.entropy.view(-1), known.recomputed.view(-1), pos, given, known)
    no_grad = not torch.is_grad_enabled() or not any(
        x is not None and x.requires_grad for x in (hidden, weight, bias)
    )
    with torch.autocast(device, enabled=False):  # the products' dtype is chosen above, explicitly
        if no_grad and low is None and h.shape[0] > chunk and known is None:  # values only (a reference pass)
            logps, ent = _vocab_chunked_values(h, weight, bias, y, float(temperature), int(chunk))
        else:
            logps, ent = _HeadLogprobs.apply(
                h, weight, bias, y, float(temperature), int(chunk), low, given, out, into_grad
            )
    if out is not None:
        lp = logps.view(n, t) if mask is None else logps.new_zeros((n, t)).masked_scatter(mask, logps)
        return lp, known.entropy
    if mask is None:
        return logps.view(n, t), ent.view(n, t)
    full_lp = logps.new_zeros((n, t)).masked_scatter(mask, logps)
    full_ent = ent.new_zeros((n, t)).masked_scatter(mask, ent)
    return full_lp, full_ent


class _HeadNLL(torch.autograd.Function):
    """(M, H) hidden states → ``-scale · Σ log_softmax(h W^T + b)[y]``, its gradients computed block by block in the
    forward (the loss is linear in each logprob, so the backward only scales them by the upstream scalar)."""

    @staticmethod
    def forward(ctx, hidden, weight, bias, token_ids, scale, chunk, low):
        m = hidden.shape[0]
        dtype = _compute_dtype(hidden.dtype if low is None else torch.float32)
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        w = weight if low is None else weight.to(low)
        dh = torch.empty_like(hidden) if need_h else None  # (M, H)
        dw = torch.zeros(weight.shape, dtype=dtype, device=weight.device) if need_w else None  # (V, H)
        db = torch.zeros(bias.shape, dtype=dtype, device=bias.device) if need_b else None  # (V,)
        total = torch.zeros((), dtype=torch.float64, device=hidden.device)
        for i in range(0, m, chunk):
            h, y = hidden[i : i + chunk], token_ids[i : i + chunk, None]
            z = _head_block(dtype, h, w, bias, low, 1.0)  # (c, V)
            lse = torch.logsumexp(z, dim=-1, keepdim=True)
            total -= (z.gather(-1, y) - lse).sum(dtype=torch.float64)
            if not (need_h or need_w or need_b):
                continue
            # d(-logp_y)/dz = softmax(z) - 1[v = y], times the scale: written over the block's logits
            dz = z.sub_(lse).exp_()
            dz.scatter_add_(-1, y, torch.full_like(y, -1, dtype=dz.dtype))
            dz.mul_(scale)
            _add_block_grads(dz, h, w, low, slice(i, i + chunk), dh, dw, db)
        ctx.grads = (dh, None if dw is None else dw.to(weight.dtype), None if db is None else db.to(bias.dtype))
        return (total * scale).to(dtype)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        grads, ctx.grads = ctx.grads, None
        out = []
        for t in grads:  # the upstream gradient is almost always 1: scale only when it is not
            out.append(None if t is None else t if bool(g == 1) else t.mul_(g.to(t.dtype)))
        return (*out, None, None, None, None)


def head_nll(
    hidden: Tensor,
    weight: Tensor,
    token_ids: Tensor,
    bias: Tensor | None = None,
    mask: Tensor | None = None,
    scale: float = 1.0,
    chunk_size: int | None = None,
) -> Tensor:
    """``-scale`` times the summed log-likelihood of ``token_ids`` under ``softmax(hidden @ weight.T + bias)``: the
    cross-entropy loss of SFT and pretraining, through the output head a block of positions at a time like
    :func:`head_logprobs`, with its gradients computed in the same pass.

    Why: the loss is linear in each position's logprob, so each block's gradient is known as soon as its logits are:
    the forward computes them there, and the backward only scales them by the upstream gradient. Three products of
    the ``(V, H)`` head a block (logits, input gradient, weight gradient) instead of :func:`head_logprobs`' four
    (whose backward recomputes the logits, as it must for a loss it does not know), and no ``(N, T, V)`` logits.
    Plain equivalent (the reference in ``tests/algo/test_chunked_head.py``)::

        -scale * (log_softmax(hidden @ weight.T + bias).gather(token_ids) * mask).sum()

    Under autocast the products run in its dtype, the softmax in float32 (as :func:`head_logprobs`). The gradients
    are held from the forward to the backward (the weight's is the one autograd hands to ``.grad``).

    Args:
        hidden: (N, T, H) final hidden states. weight: (V, H). token_ids: (N, T) targets. bias: (V,) or None.
        mask: (N, T) bool, or None: the positions that count. scale: the loss's factor (``1 / targets`` for a mean).
        chunk_size: positions per block; None: ``HEAD_BLOCK_ELEMENTS // V``.

    Returns:
        A scalar, float32 (float64 for float64 inputs without autocast).

    Example: ``hidden = [[[1.0]]]``, ``weight = [[0], [ln 3]]``, ``token_ids = [[1]]`` → ``-log(3/4) = 0.2877``.
    """
    low, chunk, h, y = _head_setup(hidden, weight, token_ids, chunk_size, None if mask is None else mask.bool())
    with torch.autocast(hidden.device.type, enabled=False):
        return _HeadNLL.apply(h, weight, bias, y, float(scale), int(chunk), low)


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
