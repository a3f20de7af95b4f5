"""A lean forward pass of Llama-family decoders, over the Hugging Face model's own parameters.

Why by hand: on a CPU (and for small batches anywhere) a decode step of a small model is bound by per-operator
overhead, not FLOPs. ``transformers``' forward builds a 4-D mask, RoPE tables and cache bookkeeping at every call and
runs q/k/v and gate/up as separate matmuls. This module runs the same maths with about half the operators: q/k/v
and gate/up fused into one matmul each (weights concatenated once per call, so it always reads the live
parameters), one RoPE table per call, a KV cache written in place, and no mask at all when no row is padded
(measured: a 32-token decode of 64 rows of the 3M preset, 0.36 s → 0.27 s on 2 CPU threads).

It also gives the trainer the forward it needs and ``transformers`` does not have: **the prompt computed once per
group**. GRPO scores G completions of each prompt; ``train_logits`` runs the U distinct prompts once, then the
N = U·G completions attending to their prompt's keys/values (gradients from the G rows sum into the shared prompt
pass), and returns logits only at the positions that predict completion tokens. The plain alternative runs
N·(prompt + completion) tokens; this runs U·prompt + N·(completion − 1).

Mixed precision (``model.dtype=bf16``: autocast over fp32 parameters): without autograd, ``weights`` casts the
matrices once per pass instead of autocast casting them at every product (its cache skips the fused copies), and the
rollout packs them into oneDNN's blocked layout (``pack_weights``); on a CPU, RoPE, the KV cache and the decode's
attention stay float32 (``_decode_attend``). Checked against ``transformers`` under the same autocast.

Scope: ``model_type`` llama, qwen2, qwen3, mistral with full attention everywhere, SiLU MLPs, and a RoPE that does
not depend on the sequence length (default, linear, llama3, yarn; not dynamic NTK or longrope). ``unsupported_reason``
says why another model is not covered, and callers fall back to the ``transformers`` forward.

Reference: the ``transformers`` forward itself. ``tests/models/test_fast.py`` checks logits (every architecture,
padded prompts, a cache across prefill and decode) and gradients against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
import torch.utils.checkpoint

from r1.algo.logprobs import param_grad
from r1.data.batching import left_pad
from r1.models import kernels
from r1.models.kernels import fused_kernels
from r1.models.lora import has_adapters, linear_weight, lora_reason

SUPPORTED_MODEL_TYPES = ("llama", "qwen2", "qwen3", "mistral")


def unsupported_reason(model) -> str | None:
    """None when ``FastLM`` computes exactly what ``model``'s own forward does; else a short reason."""
    cfg = getattr(model, "config", None)
    model_type = getattr(cfg, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        return f"model_type {model_type!r} (covered: {', '.join(SUPPORTED_MODEL_TYPES)})"
    if getattr(cfg, "hidden_act", "silu") != "silu":
        return f"hidden_act {cfg.hidden_act!r}"
    if getattr(cfg, "use_sliding_window", False) or (
        model_type == "mistral" and getattr(cfg, "sliding_window", None) is not None
    ):
        return "sliding-window attention"
    if any(t != "full_attention" for t in (getattr(cfg, "layer_types", None) or [])):
        return "layers other than full attention"
    if float(getattr(cfg, "attention_dropout", 0.0) or 0.0) != 0.0:
        return "attention dropout"
    inner = getattr(model, "model", None)
    if inner is None or not all(hasattr(inner, a) for a in ("embed_tokens", "layers", "norm", "rotary_emb")):
        return "not the usual <Arch>ForCausalLM(model=<Arch>Model) layout"
    rope = getattr(inner.rotary_emb, "rope_type", "default")
    if "dynamic" in rope or rope == "longrope":
        return f"rope_type {rope!r} (depends on the sequence length)"
    head_dim = getattr(inner.layers[0].self_attn, "head_dim", None)
    if head_dim is None or inner.rotary_emb.inv_freq.numel() * 2 != head_dim:
        return "partial rotary embeddings"
    lora = lora_reason(model)  # peft LoRA layers are read through linear_weight: W + scaling·B·A
    if lora is not None:
        return lora
    for layer in inner.layers:
        a = layer.self_attn
        if len({p.bias is None for p in (a.q_proj, a.k_proj, a.v_proj)}) != 1:
            return "q/k/v projections that differ in bias"
        if len({p.bias is None for p in (layer.mlp.gate_proj, layer.mlp.up_proj)}) != 1:
            return "gate/up projections that differ in bias"
    return None


def norm_eps(norm) -> float:
    """An RMSNorm module's epsilon (``variance_epsilon`` in ``transformers``' Llama family, ``eps`` elsewhere)."""
    return float(getattr(norm, "variance_epsilon", getattr(norm, "eps", 1e-6)))


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """HF's Llama RMSNorm: normalise in float32, cast back, then scale (``F.rms_norm`` in float32, one kernel; on
    a CPU without autograd, r1's one-pass kernel)."""
    if x.dtype == torch.float32 and weight.dtype == torch.float32:
        k = fused_kernels(x, weight)
        if k is not None:
            return k.rms_norm(x, weight, eps)
        return F.rms_norm(x, (x.shape[-1],), weight, eps)
    h = x.float()
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(x.dtype)


def _onednn_linear():
    """oneDNN's inference linear (``torch.ops.mkldnn._linear_pointwise``, the op ``torch.compile`` emits for CPU
    linears), or None where this torch build has none."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        return torch.ops.mkldnn._linear_pointwise
    except (AttributeError, RuntimeError):
        return None


_ONEDNN = _onednn_linear()
USE_ONEDNN = _ONEDNN is not None
"""Whether ``linear`` may use oneDNN (tests switch it off to compare with ``F.linear``)."""
ONEDNN_FP32 = USE_ONEDNN and kernels.cpu_field("vendor_id") != "GenuineIntel"
"""Whether float32 products take oneDNN too (bfloat16 ones always do): on AMD CPUs, where MKL's ``sgemm`` is the
slower one (2-core EPYC: 23M preset decode products 10 % faster with oneDNN); not on Intel's, where MKL is the
faster (2-core Xeon: the 3M preset's decode products 2.05 → 1.65 ms a step, reference pass 5-20 %)."""


LOW_PRECISION = (torch.bfloat16, torch.float16)

_NO_KEY_MASK = torch.empty(0, dtype=torch.bool)  # the fused decode attention's "every key visible"


def linear(
    x: torch.Tensor, w: "torch.Tensor | MKLPacked", b: torch.Tensor | None = None, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``F.linear``; without autograd, on a CPU, oneDNN's kernel instead of MKL's for bfloat16 (and for float32 where
    ``ONEDNN_FP32``): the same product, faster there (``docs/performance.md``). ``w`` may be an ``MKLPacked``
    (``pack_weights``): MKL's product over its packed copy. ``out`` (no autograd): a contiguous tensor of the
    result's size and dtype to hold it (written in place by MKL's packed product, else copied), returned.

    Mixed precision: a low-precision ``w`` (``FastLM.weights`` under autocast without autograd) takes ``x`` in its
    dtype, as autocast would, and returns the product in that dtype."""
    if isinstance(w, MKLPacked):
        if x.dtype == torch.float32 and x.device.type == "cpu" and not (torch.is_grad_enabled() and x.requires_grad):
            return kernels.ops().mkl_packed_linear(x, w.packed, w.plain, b, w.rows, out)
        w = w.plain
    if out is not None:
        y = linear(x, w, b)
        return out.copy_(y.view(out.shape))
    if w.dtype in LOW_PRECISION and x.dtype != w.dtype:
        x = x.to(w.dtype)
    if (
        USE_ONEDNN
        and x.device.type == "cpu"
        and x.dtype == w.dtype
        and (x.dtype == torch.bfloat16 or (x.dtype == torch.float32 and ONEDNN_FP32))
        and not (torch.is_grad_enabled() and (x.requires_grad or w.requires_grad))
    ):
        return _ONEDNN(x, w, b, "none", [], "")
    return F.linear(x, w, b)


def _residual_linear(x: torch.Tensor, h: torch.Tensor, w: "torch.Tensor | MKLPacked", b: torch.Tensor | None):
    """x + linear(h, w, b). Without autograd, float32 on a CPU whose float32 products take MKL (``ONEDNN_FP32``
    False), a plain matrix, no bias, contiguous x: the product accumulates into x in place (``addmm_``, MKL's
    beta = 1), the residual add no pass of its own (the 23M preset's reference pass: 16 adds, ~8 ms)."""
    if (
        b is None
        and isinstance(w, torch.Tensor)
        and not torch.is_grad_enabled()
        and not ONEDNN_FP32
        and x.device.type == "cpu"
        and x.dtype == w.dtype == h.dtype == torch.float32
        and x.is_contiguous()
    ):
        x.view(-1, x.shape[-1]).addmm_(h.reshape(-1, h.shape[-1]), w.t())
        return x
    return x + linear(h, w, b)


def silu_mul(gu: torch.Tensor) -> torch.Tensor:
    """(…, 2 I) [gate | up] → silu(gate) · up (…, I): the SwiGLU."""
    k = fused_kernels(gu)
    if k is not None:
        return k.silu_mul(gu)
    gate, up = gu.chunk(2, dim=-1)
    return F.silu(gate) * up


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The low-precision dtype autocast runs matmuls in on ``device``'s type, or None when autocast is off."""
    if torch.is_autocast_enabled(device.type):
        return torch.get_autocast_dtype(device.type)
    return None


def rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (…, heads, D) by (…, 1, D) cos/sin: HF's ``x * cos + rotate_half(x) * sin``, rotate_half(x) =
    (−x2, x1). Without autograd through ``x``: one product and two in-place multiply-adds, no concatenation."""
    h = x.shape[-1] // 2
    if torch.is_grad_enabled() and x.requires_grad:
        x1, x2 = x[..., :h], x[..., h:]
        return x * cos + torch.cat((-x2, x1), dim=-1) * sin
    fused = rope_kernel(x, cos, sin)
    if fused is not None:
        return fused
    out = x * cos
    out[..., :h].addcmul_(x[..., h:], sin[..., :h], value=-1)
    out[..., h:].addcmul_(x[..., :h], sin[..., h:])
    return out


def rope_kernel(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, transpose: bool = False, out=None):
    """``rope`` (or with ``transpose`` its backward, ``replay._rope_backward``) in r1's one-pass kernel: x (…, heads,
    D) float32 on a CPU whose rows can be viewed as a (M, heads·D) matrix with contiguous rows (q and k inside a q/k/v
    matrix can), cos and sin (…, 1, D) with one row per x row; into ``out`` (x's layout rules) when given. None where
    it does not apply (the caller runs its PyTorch code, the kernel's reference)."""
    k = fused_kernels(cos, sin)
    if k is None or x.dtype != torch.float32 or x.device.type != "cpu" or x.dim() < 2:
        return None
    heads, D = x.shape[-2], x.shape[-1]
    M = x.numel() // max(1, heads * D)
    if cos.numel() != M * D or sin.numel() != M * D or x.stride(-1) != 1:
        return None
    try:
        x2 = x.view(M, heads * D)
        o2 = None if out is None else out.view(M, heads * D)
    except RuntimeError:  # rows not evenly strided
        return None
    if x2.stride(1) != 1 or (o2 is not None and o2.stride(1) != 1):
        return None
    y = k.rope(x2, cos.reshape(M, D), sin.reshape(M, D), heads, transpose, o2)
    return out if out is not None else y.view(x.shape)


def shared_prompt_layout(p_mask: torch.Tensor, grp: torch.Tensor, Tq: int):
    """Positions and masks of the shared-prompt pass (``FastLM.train_logits``, and its replayed backward).

    ``p_mask`` (U, P) bool marks the left-padded prompts' real tokens, ``grp`` (N,) each row's prompt, ``Tq`` the
    completion positions fed per row. Returns ``p_pos`` (U, P) and ``c_pos`` (N, Tq) RoPE positions; ``p_attn``
    (U, 1, P, P): causal within the prompt, padding attending to itself, or None when no prompt is padded; ``c_attn``
    (N, 1, Tq, P + Tq): the prompt's real tokens, then causal over the completion.
    """
    device = p_mask.device
    P = p_mask.shape[1]
    p_pos = (p_mask.long().cumsum(-1) - 1).clamp_min(0)  # (U, P)
    c_pos = p_mask.sum(-1)[grp][:, None] + torch.arange(Tq, device=device)[None, :]  # (N, Tq)
    ar_p = torch.arange(P, device=device)
    p_attn = None
    if not bool(p_mask.all()):
        p_attn = (p_mask[:, None, None, :] & (ar_p[None, :] <= ar_p[:, None])) | torch.eye(
            P, dtype=torch.bool, device=device
        )  # (U, 1, P, P)
    ar_c = torch.arange(Tq, device=device)
    causal_c = (ar_c[None, :] <= ar_c[:, None])[None, None]  # (1, 1, Tq, Tq)
    N = grp.shape[0]
    c_attn = torch.cat([p_mask[grp][:, None, None, :].expand(N, 1, Tq, P), causal_c.expand(N, 1, Tq, Tq)], dim=-1)
    return p_pos, c_pos, p_attn, c_attn


@dataclass
class LayerWeights:
    n1: torch.Tensor
    eps1: float
    wqkv: torch.Tensor  # ((H + 2 KV) D, E)
    bqkv: torch.Tensor | None
    q_norm: torch.Tensor | None  # (D,) Qwen3
    k_norm: torch.Tensor | None
    eps_qk: float
    wo: torch.Tensor
    bo: torch.Tensor | None
    n2: torch.Tensor
    eps2: float
    wgu: torch.Tensor  # (2 I, E)
    bgu: torch.Tensor | None
    wd: torch.Tensor
    bd: torch.Tensor | None
    packed: dict | None = None  # "qkv", "o", "gu", "d" → that matrix's packed copy (``pack_weights``)

    def mat(self, name: str) -> torch.Tensor:
        """The matrix of product ``name`` for a forward: its packed copy when there is one."""
        if self.packed is not None:
            return self.packed[name]
        return {"qkv": self.wqkv, "o": self.wo, "gu": self.wgu, "d": self.wd}[name]


class Weights(list):
    """``FastLM.weights()``: one ``LayerWeights`` per decoder layer, and the output head's ``head`` / ``head_bias``."""

    head: torch.Tensor
    head_bias: torch.Tensor | None = None
    head_packed: torch.Tensor | None = None
    layers_args: tuple | None = None  # ``decode_layers``' argument lists (``_layers_args``), made once per packing


USE_DECODE_LAYERS = True
"""Whether a float32 decode step over MKL-packed weights may run all its layers as one call of r1's kernel
(``decode_layers``); tests switch it off to compare with the per-layer code, its reference."""


def _layers_args(weights: "Weights") -> tuple | None:
    """``decode_layers``' per-layer lists for these weights: (norms, eps, packings, matrices, biases, rows), made
    once and kept on ``weights``; None unless every matrix is MKL-packed (``pack_weights``)."""
    if weights.layers_args is None:
        mats = [w.packed.get(k) if w.packed else None for w in weights for k in ("qkv", "o", "gu", "d")]
        if not all(isinstance(m, MKLPacked) for m in mats):
            weights.layers_args = ()
        else:
            weights.layers_args = (
                [n for w in weights for n in (w.n1, w.n2)],
                [e for w in weights for e in (w.eps1, w.eps2)],
                [m.packed for m in mats],
                [m.plain for m in mats],
                [b for w in weights for b in (w.bqkv, w.bo, w.bgu, w.bd)],
                min(m.rows for m in mats),
            )
    return weights.layers_args or None


USE_MKL_PACKED = True
"""Whether ``pack_weights`` may pack float32 matrices for MKL (tests switch it off to compare)."""


def _mkl_packing():
    """``torch.ops.r1`` when float32 matrices can be packed for MKL here (the kernels built, MKL in this torch
    build), else None."""
    if not USE_MKL_PACKED:
        return None
    k = kernels.ops() if kernels.USE_KERNELS else None
    return k if k is not None and k.mkl_packing() else None


class MKLPacked:
    """A float32 matrix (out, in) and MKL's packed copy of it for products of up to ``rows`` rows (``linear``
    takes either; products of more rows run from the plain matrix). ``buffer``: float32 memory to pack into when
    it is large enough: a rollout's packing reuses the last one's (fresh ~0.4 GiB of heap at every rollout grew the
    23M preset's peak memory by ~450 MiB)."""

    __slots__ = ("plain", "packed", "rows")

    def __init__(self, plain: torch.Tensor, rows: int, buffer: torch.Tensor | None = None):
        self.plain, self.rows = plain.contiguous(), rows
        self.packed = kernels.ops().mkl_pack(self.plain, rows, buffer)


def can_pack(weights: "Weights") -> bool:
    """Can ``pack_weights`` pack these: bfloat16 matrices on a CPU with oneDNN's reorder, or float32 ones on a CPU
    whose float32 products take MKL (``ONEDNN_FP32`` False) with MKL's packing in this build; no autograd."""
    w = weights[0].wqkv
    if w.device.type != "cpu" or w.requires_grad:
        return False
    if w.dtype == torch.bfloat16:
        return USE_ONEDNN and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
    return w.dtype == torch.float32 and not ONEDNN_FP32 and _mkl_packing() is not None


def pack_weights(weights: "Weights", rows: int, store: dict | None = None) -> "Weights":
    """Add a packed layout of every matrix, for products of ``rows`` rows, in place: oneDNN's blocked (AMX) one for
    bfloat16, MKL's for float32 (packed into ``store``'s buffers from the last call, when given: a dict the caller
    keeps).

    Why: a product of a few rows (a decode step) otherwise re-blocks its weight on every call. Measured on a 2-core
    Xeon with AMX: the 23M preset's bfloat16 decode products 379 → 579 GFLOP/s, for ~28 ms of packing per rollout;
    its float32 ones 205 → 285 GFLOP/s (64 rows), for ~9 ms. The plain matrices stay (the replayed backward uses
    them); no-op where ``can_pack`` is False."""
    if not can_pack(weights):
        return weights
    if weights.head_packed is not None:  # packed already (``FastLM.weights`` hands out its cached copies again)
        return weights
    if weights[0].wqkv.dtype == torch.float32:
        store = {} if store is None else store

        def reorder(w, r, key):
            m = MKLPacked(w, r, store.get(key))
            store[key] = m.packed
            return m
    else:

        def reorder(w, r, key):
            return torch.ops.mkldnn._reorder_linear_weight(w, r)

    for i, w in enumerate(weights):
        w.packed = {k: reorder(w.mat(k), rows, (i, k)) for k in ("qkv", "o", "gu", "d")}
    weights.head_packed = reorder(weights.head, rows, "head")
    weights.layers_args = None
    return weights


def _cat(tensors: list[torch.Tensor | None]) -> torch.Tensor | None:
    return None if tensors[0] is None else torch.cat(tensors)


def append_kv(buffer: torch.Tensor | None, length: int, states: torch.Tensor, capacity: int) -> torch.Tensor:
    """Write (R, KV, T, D) ``states`` at ``[length, length + T)`` of a (R, KV, cap, D) buffer (gpt-fast's static KV
    cache, kept growable): a new or grown buffer is returned when it is missing or too small."""
    end = length + states.shape[2]
    if buffer is None or end > buffer.shape[2]:
        grown = states.new_empty((*states.shape[:2], max(end, capacity), states.shape[3]))
        if buffer is not None:
            grown[:, :, :length] = buffer[:, :, :length]
        buffer = grown
    buffer[:, :, length:end] = states
    return buffer


class FastCache:
    """Per-layer key/value buffers ``(R, KV, capacity, D)`` written in place; ``length`` positions are filled."""

    def __init__(self, num_layers: int):
        self.keys: list[torch.Tensor | None] = [None] * num_layers
        self.values: list[torch.Tensor | None] = [None] * num_layers
        self.length = 0
        self.masked = False  # some row has padding: attention needs the key mask

    def write(self, layer: int, k: torch.Tensor, v: torch.Tensor, capacity: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Append (R, KV, T, D) keys/values of ``layer``; return views of everything filled so far."""
        end = self.length + k.shape[2]
        self.keys[layer] = append_kv(self.keys[layer], self.length, k, capacity)
        self.values[layer] = append_kv(self.values[layer], self.length, v, capacity)
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    def reserve(self, layer: int, rows: int, heads: int, dim: int, new: int, capacity: int):
        """(R, KV, C, D) float32 key and value buffers of ``layer`` with room for ``new`` more positions (grown or
        made here), for a kernel that writes them in place; ``length`` is not advanced."""
        end = self.length + new
        for bufs in (self.keys, self.values):
            buf = bufs[layer]
            if buf is None or end > buf.shape[2] or buf.dtype != torch.float32 or not buf.is_contiguous():
                grown = torch.empty((rows, heads, max(end, capacity), dim), dtype=torch.float32)
                if buf is not None:
                    grown[:, :, : self.length] = buf[:, :, : self.length]
                bufs[layer] = grown
        return self.keys[layer], self.values[layer]

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep (and reorder / repeat) rows: the same call as ``transformers.DynamicCache``."""
        self.keys = [None if k is None else k[indices] for k in self.keys]
        self.values = [None if v is None else v[indices] for v in self.values]


def _into(record, kind: str, layer: int, dtype: torch.dtype) -> torch.Tensor | None:
    """The record's block for this activation when the forward can compute it in place there (float32 products on
    a CPU, the block in the dtype computed), else None."""
    d = record.dest(kind, layer)
    if d is None or d.dtype != dtype or d.device.type != "cpu" or dtype != torch.float32:
        return None
    return d


class _EmbedIntoGrad(torch.autograd.Function):
    """``F.embedding`` whose backward adds the lookups' gradient into ``weight.grad`` (``embed_into_grad``)."""

    @staticmethod
    def forward(ctx, ids, weight, padding_idx):
        ctx.save_for_backward(ids)
        ctx.param, ctx.padding_idx = weight, padding_idx
        return F.embedding(ids, weight, padding_idx=padding_idx)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g):
        (ids,) = ctx.saved_tensors
        flat, g = ids.reshape(-1), g.reshape(-1, g.shape[-1])  # (R·T,), (R·T, E)
        if ctx.padding_idx is not None:  # nn.Embedding's padding_idx: its row gets no gradient from lookups
            g = g.masked_fill((flat == ctx.padding_idx)[:, None], 0)
        into = param_grad(ctx.param, ctx.param.dtype)
        if into is None:  # its .grad cannot take it (made sparse by someone else): autograd's way
            return None, torch.zeros_like(ctx.param).index_add_(0, flat, g.to(ctx.param.dtype)), None
        into.index_add_(0, flat, g.to(into.dtype))
        return None, None, None


def embed_into_grad(ids: torch.Tensor, weight: torch.Tensor, padding_idx: int | None) -> torch.Tensor:
    """``F.embedding(ids, weight, padding_idx)``, its weight gradient added straight into ``weight.grad`` by the
    backward (``r1.algo.logprobs.param_grad``: a trainer's ``.backward()``), not returned to autograd: the lookups of
    a (vocabulary, hidden) table touch a few rows, and autograd would otherwise make a whole-table gradient of
    them (sparse: then summed with a tied head's into a new dense table). Plain ``F.embedding`` for a weight that is
    not a leaf requiring grad."""
    if not (torch.is_grad_enabled() and weight.is_leaf and weight.requires_grad):
        return F.embedding(ids, weight, padding_idx=padding_idx)
    return _EmbedIntoGrad.apply(ids, weight, padding_idx)


def _add_into(x: torch.Tensor, y: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    """x + y, into ``out`` when given (same shape)."""
    return x + y if out is None else torch.add(x, y, out=out)


class FastLM:
    """``FastLM(model)``: the lean forward of a supported HF causal LM (``unsupported_reason(model) is None``)."""

    def __init__(self, model):
        reason = unsupported_reason(model)
        if reason is not None:
            raise ValueError(f"FastLM does not cover this model: {reason}")
        self.model = model
        inner = model.model
        cfg = model.config
        attn = inner.layers[0].self_attn
        self.head_dim = attn.head_dim
        self.num_heads = cfg.num_attention_heads
        self.num_kv_heads = getattr(cfg, "num_key_value_heads", None) or self.num_heads
        self.scale = float(getattr(attn, "scaling", self.head_dim**-0.5))
        self._cached: tuple | None = None  # (key, Weights) of the last no-grad ``weights()``
        self.grads_into_params = False
        """The train forward's embedding lookups add their gradient straight into the embedding's ``.grad``
        (``embed_into_grad``), as the trainer's ``.backward()`` would: no (vocabulary, hidden) gradient beside it.
        False: autograd's own (what ``torch.autograd.grad`` needs)."""
        self.checkpoint_layers = False
        """Activation checkpointing in the train forward (``train_hidden`` / ``train_logits`` under autograd): each
        decoder layer of the completion pass keeps only its input and is recomputed in the backward (one more
        forward of the layers), so what the backward holds is ~E floats a token a layer plus one layer's
        activations, not every layer's (``grpo.activation_checkpointing``). False: the plain pass, its reference."""

    # ------------------------------------------------------------------------------------------------ weights
    def drop_cached(self) -> None:
        """Forget the frozen model's cached weight copies (its parameters were emptied: ``r1.models.offload``)."""
        self._cached = None

    def weights(self) -> "Weights":
        """Fused per-layer weights (and the output head). Under autograd the concatenations are differentiable
        (gradients reach the model's parameters); under ``no_grad`` they are plain copies of the current values, and
        under autocast the matrices are cast once here to autocast's dtype (norm weights stay float32), rather than
        at every product: a decode of 32 tokens would otherwise cast every weight 32 times."""
        device = self.model.model.embed_tokens.weight.device
        grad = torch.is_grad_enabled()
        low = None if grad or autocast_dtype(device) not in LOW_PRECISION else autocast_dtype(device)
        key = None
        params = list(self.model.parameters())
        # A model with LoRA adapters trains them (and turns them off for the reference): its weights are not cached.
        frozen = not any(p.requires_grad for p in params) and not has_adapters(self.model)
        if not grad and device.type == "cpu" and frozen:
            # A frozen model's (the reference's) copies are made once, not at every step, and kept while its
            # parameters are unchanged (the same tensors, no in-place update since). A trained model's are not
            # kept: they would be stale after the next optimizer step, and hold memory meanwhile. On a GPU neither:
            # the copies are cheap to make there, and memory is what bounds a run.
            key = (low, tuple((p.data_ptr(), p._version) for p in params))
            if self._cached is not None and self._cached[0] == key:
                return self._cached[1]

        def mat(t: torch.Tensor | None) -> torch.Tensor | None:
            return t if t is None or low is None or not t.is_floating_point() else t.to(low)

        def fused(ts: list[torch.Tensor | None]) -> torch.Tensor | None:
            return _cat([mat(t) for t in ts])  # cast, then one concatenation in the (smaller) low dtype

        out = Weights()
        head = self.model.lm_head
        out.head, out.head_bias = mat(head.weight), mat(head.bias)
        for layer in self.model.model.layers:
            a, m = layer.self_attn, layer.mlp
            qn, kn = getattr(a, "q_norm", None), getattr(a, "k_norm", None)
            # (weight, bias) each projection applies: its own, or with a LoRA adapter W + scaling·B·A (r1.models.lora)
            q, k, v, o = (linear_weight(x) for x in (a.q_proj, a.k_proj, a.v_proj, a.o_proj))
            gate, up, down = (linear_weight(x) for x in (m.gate_proj, m.up_proj, m.down_proj))
            out.append(
                LayerWeights(
                    n1=layer.input_layernorm.weight,
                    eps1=norm_eps(layer.input_layernorm),
                    wqkv=fused([q[0], k[0], v[0]]),
                    bqkv=fused([q[1], k[1], v[1]]),
                    q_norm=None if qn is None else qn.weight,
                    k_norm=None if kn is None else kn.weight,
                    eps_qk=norm_eps(qn) if qn is not None else 0.0,
                    wo=mat(o[0]),
                    bo=mat(o[1]),
                    n2=layer.post_attention_layernorm.weight,
                    eps2=norm_eps(layer.post_attention_layernorm),
                    wgu=fused([gate[0], up[0]]),
                    bgu=fused([gate[1], up[1]]),
                    wd=mat(down[0]),
                    bd=mat(down[1]),
                )
            )
        if key is not None:
            self._cached = (key, out)
        return out

    def rope_table(self, positions: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """(…,) positions → (…, 1, D) cos and sin, as HF's rotary embedding computes them (float32, then cast)."""
        rot = self.model.model.rotary_emb
        freqs = positions.float()[..., None] * rot.inv_freq.float().to(positions.device)  # (…, D/2)
        emb = torch.cat((freqs, freqs), dim=-1)  # (…, D)
        scaling = float(getattr(rot, "attention_scaling", 1.0))
        return (emb.cos() * scaling).to(dtype)[..., None, :], (emb.sin() * scaling).to(dtype)[..., None, :]

    # ------------------------------------------------------------------------------------------------ blocks
    def _qkv(self, w: LayerWeights, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        """(R, T, E) hidden → q (R, H, T, D), k and v (R, KV, T, D), RoPE applied."""
        return self._split_qkv(w, linear(rms_norm(x, w.n1, w.eps1), w.mat("qkv"), w.bqkv), cos, sin)

    def _split_qkv(self, w: LayerWeights, qkv: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
        """(R, T, (H + 2 KV) D) projections → q (R, H, T, D), k and v (R, KV, T, D), RoPE applied."""
        R, T, _ = qkv.shape
        H, KV, D = self.num_heads, self.num_kv_heads, self.head_dim
        v = qkv[..., (H + KV) * D :].view(R, T, KV, D)
        if w.q_norm is None:  # one RoPE call over the q and k heads together
            qk = rope(qkv[..., : (H + KV) * D].view(R, T, H + KV, D), cos, sin)
            q, k = qk[:, :, :H], qk[:, :, H:]
        else:
            q = rope(rms_norm(qkv[..., : H * D].view(R, T, H, D), w.q_norm, w.eps_qk), cos, sin)
            k = rope(rms_norm(qkv[..., H * D : (H + KV) * D].view(R, T, KV, D), w.k_norm, w.eps_qk), cos, sin)
        if qkv.dtype in LOW_PRECISION and qkv.device.type == "cpu":
            # Mixed precision on a CPU: RoPE ran in float32 (as ``transformers`` under autocast) and v joins q and k
            # there, so the cache holds float32: the decode's attention runs in float32 (``_decode_attend``), and
            # attention over several positions is cast by autocast as in ``transformers``. (On a GPU the values stay
            # in the low dtype, as in ``transformers``: its cache memory is what bounds the batch there.)
            q, k, v = q.float(), k.float(), v.float()
        return q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)

    def _attend(self, q, k, v, mask):
        """q (R, H, T, D) over k/v (R, KV, S, D); ``mask`` (R, 1, T, S) bool or None (every key visible)."""
        if q.shape[2] == 1 and q.device.type == "cpu" and not torch.is_grad_enabled():
            return self._decode_attend(q, k, v, mask)
        o = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, scale=self.scale, enable_gqa=self.num_heads != self.num_kv_heads
        )  # (R, H, T, D)
        return o.transpose(1, 2).reshape(q.shape[0], q.shape[2], -1)  # (R, T, H D)

    def _decode_attend(self, q, k, v, mask):
        """``_attend`` for one query position (a decode step) on a CPU: two batched products and a softmax, in the
        inputs' dtype (float32 under CPU autocast: ``_split_qkv``), with autocast off.

        Why not ``scaled_dot_product_attention``: its CPU kernel tiles for long queries; for one query per row it
        took 221 µs where this takes 144 (float32, 64 rows × 4 heads over 38 keys, 2 threads), and 451 µs in
        bfloat16, hence float32 here even under autocast (measured in docs/performance.md)."""
        R, H, _, D = q.shape
        KV = k.shape[1]
        device = q.device.type
        autocast = torch.is_autocast_enabled(device)
        if autocast:  # off for these two products (the switch itself: torch.autocast's context costs ~20 µs)
            torch.set_autocast_enabled(device, False)
        try:
            qr = q.reshape(R, KV, H // KV, D)  # the query heads of one KV head together
            s = torch.matmul(qr, k.transpose(-1, -2)).mul_(self.scale)  # (R, KV, g, S)
            if mask is not None:
                s.masked_fill_(~mask, float("-inf"))  # (R, 1, 1, S) broadcast over heads
            o = torch.matmul(s.softmax(-1), v)  # (R, KV, g, D)
        finally:
            if autocast:
                torch.set_autocast_enabled(device, True)
        return o.reshape(R, 1, H * D)

    def _fused_decode(self, T: int, weights: "Weights", x: torch.Tensor, cos: torch.Tensor):
        """``torch.ops.r1`` when a decode step's attention can run as r1's fused kernel (one new position, float32
        on a CPU, no autograd, no q/k norms), else None."""
        w = weights[0]
        if T != 1 or w.q_norm is not None or w.wqkv.dtype != torch.float32:
            return None
        return fused_kernels(x, cos, w.wqkv)

    def _decode_attention(self, k, layer: int, qkv, cos, sin, cache: "FastCache", capacity: int, key_mask, out=None):
        """One decode step's RoPE, KV-cache write and attention (``_split_qkv`` + ``FastCache.write`` +
        ``_decode_attend``, their reference) in r1's fused kernel: (R, 1, (H + 2 KV) D) → (R, 1, H D) (into
        ``out`` when given)."""
        R = qkv.shape[0]
        kbuf, vbuf = cache.reserve(layer, R, self.num_kv_heads, self.head_dim, 1, capacity)
        o = k.decode_attention(
            qkv, cos, sin, kbuf, vbuf, cache.length, key_mask, self.num_heads, self.num_kv_heads, self.scale, out
        )
        return o.view(R, 1, -1)

    def _decode_layers(self, k, weights: "Weights", x, cos, sin, cache: "FastCache", capacity: int, key_mask, record):
        """A decode step's layers (R, 1, E) → (R, E) as one call of r1's kernel (``decode_layers``: the per-layer
        loop of ``forward``, its reference, with every product from MKL's packing), the record's activations
        written by it; None where it does not apply (weights not MKL-packed, more rows than packed for, a record
        not in float32)."""
        args = _layers_args(weights)
        R = x.shape[0]
        if args is None or R > args[-1]:
            return None
        rec = ([], 0, None) if record is None else record.layer_rows()
        if rec is None:
            return None
        kv = [cache.reserve(i, R, self.num_kv_heads, self.head_dim, 1, capacity) for i in range(len(weights))]
        return k.decode_layers(
            x.view(R, -1), *args[:5], [a for a, _ in kv], [b for _, b in kv], cos, sin, cache.length, key_mask,
            self.num_heads, self.num_kv_heads, self.scale, args[5], *rec,
        )

    def _finish_layer(self, w: LayerWeights, x: torch.Tensor, attn_out: torch.Tensor) -> torch.Tensor:
        """The rest of a layer after attention: ``x`` (not to be used after: without autograd it may be updated in
        place) + o-projection, then + the SwiGLU MLP."""
        x = _residual_linear(x, attn_out, w.mat("o"), w.bo)
        gu = linear(rms_norm(x, w.n2, w.eps2), w.mat("gu"), w.bgu)
        return _residual_linear(x, silu_mul(gu), w.mat("d"), w.bd)

    def _logits(self, x: torch.Tensor, weights: "Weights | None" = None) -> torch.Tensor:
        norm, head = self.model.model.norm, self.model.lm_head
        if weights is None:
            w, b = head.weight, head.bias
        else:
            w = weights.head if weights.head_packed is None else weights.head_packed
            b = weights.head_bias
        return linear(rms_norm(x, norm.weight, norm_eps(norm)), w, b)

    # ------------------------------------------------------------------------------------------------ decoding
    def new_cache(self) -> FastCache:
        return FastCache(len(self.model.model.layers))

    def forward(
        self,
        ids: torch.Tensor,
        mask: torch.Tensor,
        positions: torch.Tensor,
        cache: FastCache,
        weights: list[LayerWeights],
        capacity: int = 0,
        record=None,
    ) -> torch.Tensor:
        """(R, T) new ids → (R, V) logits at the last position, appending T entries to ``cache``.

        ``mask`` (R, cache.length + T) marks real tokens (1) and left padding (0), as for ``transformers``;
        ``positions`` (R, T) are the RoPE positions of the new tokens; ``weights`` from ``self.weights()``;
        ``record`` (an ``r1.models.replay.ForwardRecord``) keeps every layer's activations for a later backward.
        A padded position attends to itself so no row of the softmax is empty (its output is never read).
        """
        R, T = ids.shape
        past = cache.length
        if past == 0:
            cache.masked = not bool(mask.all())
        attn_mask = None
        if cache.masked or T > 1:
            keys = mask.bool()[:, None, None, :]  # (R, 1, 1, S)
            if T > 1:
                q_pos = torch.arange(past, past + T, device=ids.device)[:, None]  # (T, 1)
                k_pos = torch.arange(past + T, device=ids.device)[None, :]  # (1, S)
                keys = (keys & (k_pos <= q_pos)) | (k_pos == q_pos)  # (R, 1, T, S)
            attn_mask = keys
        emb = self.model.model.embed_tokens
        x = F.embedding(ids, emb.weight, padding_idx=emb.padding_idx)  # (R, T, E)
        cos, sin = self.rope_table(positions, x.dtype)  # (R, T, 1, D)
        fused = self._fused_decode(T, weights, x, cos)
        if fused is not None:
            cos, sin = cos.reshape(R, -1), sin.reshape(R, -1)  # (R, D)
            key_mask = mask.bool().contiguous() if cache.masked else _NO_KEY_MASK
            if USE_DECODE_LAYERS:
                out = self._decode_layers(fused, weights, x, cos, sin, cache, capacity, key_mask, record)
                if out is not None:
                    cache.length = past + T
                    return self._logits(out, weights)  # (R, V)
        x_recorded = False  # x is in the record already (computed into it)
        for i, w in enumerate(weights):
            if record is None:
                if fused is not None:
                    qkv = linear(rms_norm(x, w.n1, w.eps1), w.mat("qkv"), w.bqkv)
                    o = self._decode_attention(fused, i, qkv, cos, sin, cache, capacity, key_mask)
                    x = self._finish_layer(w, x, o)
                    continue
                q, k, v = self._qkv(w, x, cos, sin)
                k_all, v_all = cache.write(i, k, v, capacity)
                x = self._finish_layer(w, x, self._attend(q, k_all, v_all, attn_mask))
                continue
            # The same maths, keeping what the backward needs (r1.models.replay): computed straight into the
            # record's blocks where it has them in the dtype computed (``_into``), else copied in (``put``).
            if not x_recorded:
                record.put("x", i, x)
            d = _into(record, "qkv", i, w.wqkv.dtype)
            qkv = linear(rms_norm(x, w.n1, w.eps1), w.mat("qkv"), w.bqkv, out=d)  # (R, T, (H + 2 KV) D)
            if d is None:
                record.put("qkv", i, qkv)
            if fused is not None:
                d = _into(record, "o", i, qkv.dtype)
                o = self._decode_attention(fused, i, qkv, cos, sin, cache, capacity, key_mask, out=d)
            else:
                q, k, v = self._split_qkv(w, qkv, cos, sin)
                k_all, v_all = cache.write(i, k, v, capacity)
                o, d = self._attend(q, k_all, v_all, attn_mask), None  # (R, T, H D)
            if w.wo.dtype in LOW_PRECISION:
                o = o.to(w.wo.dtype)  # cast once, for the record and the product
            if d is None:
                record.put("o", i, o)
            d = _into(record, "x2", i, x.dtype)
            x = _add_into(x, linear(o, w.mat("o"), w.bo), d)
            if d is None:
                record.put("x2", i, x)
            d = _into(record, "gu", i, w.wgu.dtype)
            gu = linear(rms_norm(x, w.n2, w.eps2), w.mat("gu"), w.bgu, out=d)  # (R, T, 2 I)
            if d is None:
                record.put("gu", i, gu)
            d = _into(record, "x", i + 1, x.dtype)
            x = _add_into(x, linear(silu_mul(gu), w.mat("d"), w.bd), d)
            x_recorded = d is not None
        cache.length = past + T
        if record is not None and not x_recorded:
            record.put("x", len(weights), x)
        return self._logits(x[:, -1], weights)  # (R, V)

    # ------------------------------------------------------------------------------------------------ training
    def train_logits(
        self, prompts: list[list[int]], group: list[int], completions: list[list[int]], pad_id: int = 0
    ) -> torch.Tensor:
        """Logits predicting each completion token: (N, Tc, V), Tc = the longest completion, zero-free padding.

        ``prompts``: the U distinct prompts; ``group[i]``: the prompt of completion i. Row i, position t holds the
        logits of ``completions[i][t]`` given ``prompts[group[i]] + completions[i][:t]`` (beyond a completion's
        length: padding, not to be read). Differentiable with respect to the model's parameters. The output head
        over :meth:`train_hidden` (the fused head's reference: ``r1.algo.logprobs.head_logprobs``).
        """
        first, grp, rest, w, b = self._train_hidden(prompts, group, completions, pad_id)
        first = linear(first, w, b)[grp]  # (N, V): the head once per prompt
        if rest is None:
            return first[:, None]
        return torch.cat([first[:, None], linear(rest, w, b)], dim=1)  # (N, Tc, V)

    def train_hidden(
        self, prompts: list[list[int]], group: list[int], completions: list[list[int]], pad_id: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """:meth:`train_logits` without the output head: the final-norm hidden states (N, Tc, E) at the positions
        that predict each completion token, and the head's weight (V, E) and bias (V,) or None, the matrices the
        forward multiplies by (a cached low-precision copy for a frozen model under autocast)."""
        first, grp, rest, w, b = self._train_hidden(prompts, group, completions, pad_id)
        first = first[grp][:, None]  # (N, 1, E)
        return (first if rest is None else torch.cat([first, rest], dim=1)), w, b

    def _train_hidden(self, prompts, group, completions, pad_id):
        """The shared-prompt pass up to the final norm: (U, E) at each prompt's last position, the (N,) prompt of
        each row, (N, Tc - 1, E) at the completion positions (None when Tc = 1), the head's weight and bias."""
        device = self.model.model.embed_tokens.weight.device
        U, N = len(prompts), len(completions)
        H, KV, D = self.num_heads, self.num_kv_heads, self.head_dim
        Tc = max(1, max(len(c) for c in completions))
        p_ids, p_mask = left_pad(prompts, pad_id)  # (U, P)
        p_ids, p_mask = p_ids.to(device), p_mask.bool().to(device)
        P = p_ids.shape[1]
        # Completion inputs: every completion token but the last of the longest (its logits predict nothing).
        c_ids = torch.full((N, Tc - 1), pad_id, dtype=torch.long)
        for i, c in enumerate(completions):
            c = c[: Tc - 1]
            if c:
                c_ids[i, : len(c)] = torch.tensor(c, dtype=torch.long)
        c_ids = c_ids.to(device)
        grp = torch.tensor(group, dtype=torch.long, device=device)  # (N,)
        p_pos, c_pos, p_attn, c_attn = shared_prompt_layout(p_mask, grp, Tc - 1)

        weights = self.weights()
        embed = self.model.model.embed_tokens.weight
        pad_row = self.model.model.embed_tokens.padding_idx  # no gradient through it, as nn.Embedding
        # Tied to the head: the lookups' gradient sparse (autograd sums it into the head's dense one), sparing a
        # (vocabulary, hidden) temporary; untied, dense (the optimizer takes dense gradients). With
        # grads_into_params neither: it goes straight into embed.grad.
        sparse = embed is self.model.get_output_embeddings().weight

        def lookup(ids: torch.Tensor) -> torch.Tensor:
            if self.grads_into_params:
                return embed_into_grad(ids, embed, pad_row)
            return F.embedding(ids, embed, padding_idx=pad_row, sparse=sparse)

        xp = lookup(p_ids)  # (U, P, E)
        cos_p, sin_p = self.rope_table(p_pos, xp.dtype)
        prompt_kv = []
        for w in weights:
            q, k, v = self._qkv(w, xp, cos_p, sin_p)
            prompt_kv.append((k, v))
            if p_attn is None:
                o = F.scaled_dot_product_attention(
                    q, k, v, is_causal=True, scale=self.scale, enable_gqa=H != KV
                ).transpose(1, 2).reshape(U, P, H * D)
            else:
                o = self._attend(q, k, v, p_attn)
            xp = self._finish_layer(w, xp, o)
        norm = self.model.model.norm
        eps = norm_eps(norm)
        head = (weights.head, weights.head_bias)
        first = rms_norm(xp[:, -1], norm.weight, eps)  # (U, E): predicts each row's completion token 0
        if Tc == 1:
            return first, grp, None, *head
        xc = lookup(c_ids)  # (N, Tc-1, E)
        cos_c, sin_c = self.rope_table(c_pos, xc.dtype)
        checkpoint = self.checkpoint_layers and torch.is_grad_enabled()
        for w, (pk, pv) in zip(weights, prompt_kv):
            args = (w, xc, pk, pv, grp, cos_c, sin_c, c_attn)
            if checkpoint:  # keep the layer's inputs only; the backward recomputes it (torch.utils.checkpoint)
                xc = torch.utils.checkpoint.checkpoint(self._completion_layer, *args, use_reentrant=False)
            else:
                xc = self._completion_layer(*args)
        return first, grp, rms_norm(xc, norm.weight, eps), *head  # rest: (N, Tc-1, E)

    def _completion_layer(self, w: LayerWeights, xc, pk, pv, grp, cos, sin, attn_mask) -> torch.Tensor:
        """One decoder layer over the completion positions (N, Tc-1, E), attending to their prompt's keys/values
        ``pk``/``pv`` (U, KV, P, D) picked by ``grp`` and to the completions' own."""
        q, k, v = self._qkv(w, xc, cos, sin)
        k_all = torch.cat([pk[grp], k], dim=2)  # (N, KV, P + Tc-1, D)
        v_all = torch.cat([pv[grp], v], dim=2)
        return self._finish_layer(w, xc, self._attend(q, k_all, v_all, attn_mask))
