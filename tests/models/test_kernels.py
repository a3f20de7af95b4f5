"""r1's fused float32 CPU kernels (``r1.models.kernels``) against the PyTorch code they replace.

Run: ``python -m pytest tests/models/test_kernels.py -q`` (the first run builds the kernels, ~15 s).
"""

import logging
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from r1.models import fast, kernels
from r1.models.replay import _rms_backward


@pytest.fixture(scope="module")
def K():
    ops = kernels.ops()
    assert ops is not None, f"the fused kernels did not build: {kernels.error()}"
    return ops


@pytest.fixture
def kernels_off(monkeypatch):
    monkeypatch.setattr(kernels, "USE_KERNELS", False)


def close(a, b, tol=2e-6):
    scale = max(1.0, float(b.abs().max()))
    assert a.shape == b.shape
    assert float((a - b).abs().max()) <= tol * scale, float((a - b).abs().max())


@pytest.mark.parametrize("shape", [(1, 2 * 5), (3, 4, 2 * 37), (64, 2 * 96)])
def test_silu_mul(K, shape):
    gu = torch.randn(shape) * 4
    gate, up = gu.chunk(2, dim=-1)
    close(K.silu_mul(gu), F.silu(gate) * up)


def test_silu_mul_extremes(K):
    """exp's clamp: huge gates give x·up or 0, never inf or nan."""
    g = torch.tensor([[-1e4, -100.0, -88.0, 0.0, 88.0, 100.0, 1e4]])
    gu = torch.cat([g, torch.ones_like(g)], dim=-1)
    out = K.silu_mul(gu)
    assert torch.isfinite(out).all()
    close(out, F.silu(g), tol=1e-6)


@pytest.mark.parametrize("M,I", [(1, 3), (7, 37), (130, 96)])
def test_swiglu_backward_matches_autograd(K, M, I):
    gu = (torch.randn(M, 2 * I) * 3).requires_grad_()
    dh = torch.randn(M, I)
    gate, up = gu.chunk(2, dim=-1)
    h_ref = F.silu(gate) * up
    (dgu_ref,) = torch.autograd.grad(h_ref, gu, dh)
    h, dgate, dup = K.swiglu_backward(gu.detach(), dh)
    close(h, h_ref.detach())
    close(dgate, dgu_ref[:, :I])
    close(dup, dgu_ref[:, I:])
    h2, dgu = K.swiglu_backward_cat(gu.detach(), dh)  # the gradients side by side, as autograd's
    close(h2, h_ref.detach())
    close(dgu, dgu_ref)


@pytest.mark.parametrize("shape", [(1, 8), (5, 3, 33), (200, 64)])
def test_rms_norm(K, shape):
    x = torch.randn(shape) * 3
    w = torch.randn(shape[-1])
    ref = w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5))  # HF's formula
    close(K.rms_norm(x, w, 1e-5), ref)


@pytest.mark.parametrize("M,E", [(1, 8), (3, 33), (257, 64)])
def test_rms_norm_backward_matches_autograd(K, M, E):
    x = (torch.randn(M, E) * 2).requires_grad_()
    w = torch.randn(E).requires_grad_()
    dy = torch.randn(M, E)
    y = w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))
    dx_ref, dw_ref = torch.autograd.grad(y, (x, w), dy)
    dx, dw = K.rms_norm_backward(dy, x.detach(), w.detach(), 1e-6)
    close(dx, dx_ref, tol=1e-5)
    close(dw, dw_ref, tol=1e-5)
    # With the residual stream's gradient: added to dx in place, that tensor returned
    residual = torch.randn(M, E)
    expected = residual + dx_ref
    dx2, dw2 = K.rms_norm_backward(dy, x.detach(), w.detach(), 1e-6, residual)
    assert dx2.data_ptr() == residual.data_ptr()
    close(dx2, expected, tol=1e-5)
    close(dw2, dw_ref, tol=1e-5)


def test_replay_rms_backward_uses_the_kernel_and_matches_its_reference(K, monkeypatch):
    x, w, dy = torch.randn(40, 24), torch.randn(24), torch.randn(40, 24)
    residual = torch.randn(40, 24)
    fused = _rms_backward(dy, x, w, 1e-6)
    fused_res = _rms_backward(dy, x, w, 1e-6, residual=residual.clone())
    monkeypatch.setattr(kernels, "USE_KERNELS", False)
    plain = _rms_backward(dy, x, w, 1e-6)
    plain_res = _rms_backward(dy, x, w, 1e-6, residual=residual)
    for a, b in zip(fused + fused_res, plain + plain_res):
        close(a, b, tol=1e-5)
    close(plain_res[0], residual + plain[0], tol=1e-6)


def hf_rope(x, cos, sin):
    """``transformers``' RoPE: x · cos + rotate_half(x) · sin."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


def test_rope_without_autograd_is_hf_rope():
    x, cos, sin = torch.randn(3, 5, 4, 16), torch.randn(3, 5, 1, 16), torch.randn(3, 5, 1, 16)
    close(fast.rope(x, cos, sin), hf_rope(x, cos, sin), tol=1e-6)
    xg = x.clone().requires_grad_()
    out = fast.rope(xg, cos, sin)  # under autograd: the concatenating formula
    close(out.detach(), hf_rope(x, cos, sin), tol=1e-6)
    out.sum().backward()
    assert xg.grad is not None


@pytest.mark.parametrize("D", [2, 16, 64])
def test_rope_kernel_forward_and_transpose(K, monkeypatch, D):
    """The one-pass RoPE kernel on the q/k columns of a q/k/v matrix (strided rows) = HF's RoPE; with ``transpose``
    it is RoPE's backward (autograd's vector-Jacobian product), written into a strided ``out``; the PyTorch code
    (kernels off) agrees with both."""
    from r1.models.replay import _rope_backward

    torch.manual_seed(D)
    M, heads, v_cols = 7, 3, 2 * D
    qkv = torch.randn(M, heads * D + v_cols)
    x = qkv[:, : heads * D].view(M, heads, D)  # rows strided by the q/k/v width
    cos, sin = torch.randn(M, 1, D), torch.randn(M, 1, D)
    want = hf_rope(x, cos, sin)
    close(fast.rope_kernel(x, cos, sin), want, tol=1e-6)
    close(fast.rope(x, cos, sin), want, tol=1e-6)
    dy = torch.randn(M, heads, D)
    xg = x.clone().requires_grad_()
    hf_rope(xg, cos, sin).backward(dy)
    grad_buf = torch.full((M, heads * D + v_cols), float("nan"))
    out = grad_buf[:, : heads * D].view(M, heads, D)
    assert fast.rope_kernel(dy, cos, sin, transpose=True, out=out) is out
    close(out, xg.grad, tol=1e-6)
    assert bool(grad_buf[:, heads * D :].isnan().all())  # the columns beside it untouched
    monkeypatch.setattr(kernels, "USE_KERNELS", False)
    assert fast.rope_kernel(x, cos, sin) is None
    close(fast.rope(x, cos, sin), want, tol=1e-6)
    close(_rope_backward(dy, cos, sin, out=torch.empty_like(dy)), xg.grad, tol=1e-6)


def reference_decode_attention(qkv, cos, sin, kc, vc, length, mask, H, KV, scale):
    """RoPE, cache write and attention with PyTorch ops (``hf_rope``, SDPA); returns (o, kc, vc) copies."""
    R, C, D = kc.shape[0], kc.shape[2], kc.shape[3]
    kc, vc = kc.clone(), vc.clone()
    qkv = qkv.view(R, H + 2 * KV, D)
    c, s = cos.view(R, 1, D), sin.view(R, 1, D)
    q = hf_rope(qkv[:, :H], c, s)  # (R, H, D)
    kc[:, :, length] = hf_rope(qkv[:, H : H + KV], c, s)
    vc[:, :, length] = qkv[:, H + KV :]
    S = length + 1
    attn = None if mask is None else mask.view(R, 1, 1, S)
    o = F.scaled_dot_product_attention(
        q[:, :, None], kc[:, :, :S], vc[:, :, :S], attn_mask=attn, scale=scale, enable_gqa=H != KV
    )  # (R, H, 1, D)
    return o.reshape(R, H * D), kc, vc


@pytest.mark.parametrize("H,KV,D", [(4, 2, 64), (2, 2, 128), (6, 3, 24), (1, 1, 2)])
@pytest.mark.parametrize("masked", [False, True])
def test_decode_attention_matches_sdpa(K, H, KV, D, masked):
    torch.manual_seed(H * D + masked)
    R, C, length = 5, 12, 7
    qkv = torch.randn(R, (H + 2 * KV) * D)
    pos = torch.randint(0, 50, (R, 1)).float()
    freqs = pos * (1.0 / 10000 ** (torch.arange(0, D, 2).float() / D))
    emb = torch.cat([freqs, freqs], dim=-1)
    cos, sin = emb.cos(), emb.sin()
    kc, vc = torch.randn(R, KV, C, D), torch.randn(R, KV, C, D)
    mask = None
    if masked:
        mask = torch.rand(R, length + 1) > 0.4
        mask[:, -1] = True  # the new position always sees itself
        mask[0, :-1] = False  # a row that sees only itself
    o_ref, kc_ref, vc_ref = reference_decode_attention(qkv, cos, sin, kc, vc, length, mask, H, KV, 0.3)
    empty = torch.empty(0, dtype=torch.bool)
    o = K.decode_attention(qkv, cos, sin, kc, vc, length, empty if mask is None else mask, H, KV, 0.3)
    close(o, o_ref, tol=1e-5)
    close(kc, kc_ref, tol=1e-6)  # written in place, at [length] only
    close(vc, vc_ref, tol=0)
    # Into a given output (a record's block): the same values, in that memory.
    out = torch.full((R, 1, H * D), float("nan"))
    kc2, vc2 = kc.clone(), vc.clone()
    got = K.decode_attention(qkv, cos, sin, kc2, vc2, length, empty if mask is None else mask, H, KV, 0.3, out)
    assert got.data_ptr() == out.data_ptr()
    close(out.view(R, -1), o_ref, tol=1e-5)


def test_decode_attention_rejects_bad_input(K):
    kc = torch.zeros(2, 1, 4, 8)
    qkv = torch.zeros(2, 3 * 8)
    cs = torch.zeros(2, 8)
    empty = torch.empty(0, dtype=torch.bool)
    with pytest.raises(RuntimeError, match="outside the cache"):
        K.decode_attention(qkv, cs, cs, kc, kc.clone(), 4, empty, 1, 1, 1.0)
    with pytest.raises(RuntimeError, match="float32"):
        K.decode_attention(qkv.double(), cs, cs, kc, kc.clone(), 1, empty, 1, 1, 1.0)
    with pytest.raises(RuntimeError, match="mask"):
        K.decode_attention(qkv, cs, cs, kc, kc.clone(), 1, torch.ones(2, 5, dtype=torch.bool), 1, 1, 1.0)


def _model(seed=0):
    import transformers

    cfg = transformers.Qwen2Config(
        vocab_size=40, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=96, max_position_embeddings=64,
    )
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(cfg).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(0.3 * torch.randn_like(p))
    return model


def _decode_logits(model, padded: bool) -> list[torch.Tensor]:
    """Prefill two prompts (left-padded when ``padded``), then 5 decode steps; the logits of every step."""
    from r1.data.batching import left_pad

    lm = fast.FastLM(model)
    prompts = [[1, 2, 3, 4], [5, 6, 7, 8]] if not padded else [[1, 2, 3, 4], [5, 6]]
    ids, mask = left_pad(prompts, 0)
    pos = (mask.long().cumsum(-1) - 1).clamp_min(0)
    cache = lm.new_cache()
    out = []
    with torch.no_grad():
        weights = lm.weights()
        logits = lm.forward(ids, mask, pos, cache, weights, capacity=12)
        out.append(logits)
        nxt, p = logits.argmax(-1), pos[:, -1]
        for _ in range(5):
            mask = torch.cat([mask, mask.new_ones(2, 1)], dim=1)
            p = p + 1
            logits = lm.forward(nxt[:, None], mask, p[:, None], cache, weights, capacity=12)
            out.append(logits)
            nxt = logits.argmax(-1)
    return out


@pytest.mark.parametrize("padded", [False, True])
def test_fast_decode_with_and_without_kernels(K, monkeypatch, padded):
    model = _model()
    calls = []
    real = K.decode_attention

    class Spy:
        def __getattr__(self, name):
            if name == "decode_attention":
                return lambda *a: calls.append(1) or real(*a)
            return getattr(K, name)

    monkeypatch.setattr(fast.kernels, "ops", lambda: Spy())
    fused = _decode_logits(model, padded)
    assert len(calls) == 5 * 2  # every decode step, every layer
    monkeypatch.setattr(kernels, "USE_KERNELS", False)
    plain = _decode_logits(model, padded)
    for a, b in zip(fused, plain):
        close(a, b, tol=1e-5)


def test_kernels_switched_off_by_env(monkeypatch):
    monkeypatch.setattr(kernels, "_state", {})
    monkeypatch.setenv("R1_KERNELS", "0")
    assert kernels.ops() is None
    assert kernels.fused_kernels(torch.zeros(2)) is None


def test_failed_build_falls_back_with_one_warning(monkeypatch, caplog):
    from torch.utils import cpp_extension

    def broken(**kw):
        raise RuntimeError("Ninja is required to load C++ extensions")

    monkeypatch.setattr(kernels, "_state", {})
    monkeypatch.setattr(cpp_extension, "load", broken)
    with caplog.at_level(logging.WARNING, logger="r1.models.kernels"):
        assert kernels.ops() is None
        assert kernels.ops() is None
    assert [r.getMessage() for r in caplog.records].count(
        "r1: fused CPU kernels unavailable (Ninja is required to load C++ extensions); running the plain PyTorch code"
    ) == 1
    assert kernels.error() == "Ninja is required to load C++ extensions"
    x = torch.randn(3, 8)
    close(fast.rms_norm(x, torch.ones(8), 1e-6), F.rms_norm(x, (8,), torch.ones(8), 1e-6))


def test_a_build_says_so_once_and_a_built_library_says_nothing(monkeypatch, tmp_path, capsys):
    from torch.utils import cpp_extension

    loads = []
    monkeypatch.setattr(kernels, "_state", {})
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))  # nothing built there yet
    monkeypatch.setattr(cpp_extension, "load", lambda **kw: loads.append(kw["name"]))
    assert kernels.ops() is torch.ops.r1 and kernels.ops() is torch.ops.r1
    assert loads == [kernels.build_name()]
    assert capsys.readouterr().err.count("r1: building the fused CPU kernels") == 1
    folder = Path(cpp_extension._get_build_directory(loads[0], False))
    (folder / f"{loads[0]}.so").write_bytes(b"")  # as if built
    monkeypatch.setattr(kernels, "_state", {})
    kernels.ops()
    assert capsys.readouterr().err == ""


def test_fused_kernels_only_for_cpu_float32_without_autograd(K):
    x = torch.randn(4, 8)
    assert kernels.fused_kernels(x) is not None
    assert kernels.fused_kernels(x.double()) is None
    assert kernels.fused_kernels(x.t()) is None  # not contiguous
    assert kernels.fused_kernels(x.requires_grad_()) is None  # autograd through it
    with torch.no_grad():
        assert kernels.fused_kernels(x) is not None


def test_sample_categorical_follows_the_tempered_distribution(K):
    """Frequencies over 40 000 draws per row within 5 standard errors of softmax(logits / T); -inf logits never
    drawn; logprobs = log_softmax(logits / T) at the token; a fixed seed repeats the draws."""
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 12, generator=g) * 2
    logits[:, ::4] = float("-inf")
    T, n = 0.7, 40_000
    probs = (logits / T).softmax(-1).double()
    rows = logits.repeat_interleave(n, 0)  # (3n, V)
    u = torch.rand(3 * n, generator=torch.Generator().manual_seed(7))
    toks, logps = K.sample_categorical(rows, u, T)
    freq = torch.stack([torch.bincount(d, minlength=12) for d in toks.view(3, n)]).double() / n
    se = (probs * (1 - probs) / n).sqrt()
    assert ((freq - probs).abs() <= 5 * se + 1e-12).all(), (freq, probs)
    assert (freq[:, ::4] == 0).all()
    close(logps, (rows / T).log_softmax(-1).gather(-1, toks[:, None])[:, 0], tol=1e-5)
    again, _ = K.sample_categorical(rows, u, T)
    assert torch.equal(toks, again)


def test_sample_categorical_edges(K):
    logits = torch.tensor([[0.0, float("-inf"), 1.0, float("-inf")]])
    # u at the edges: the first token with mass, and (u·sum rounding up to the sum) the last token with mass
    for u, want in ((0.0, 0), (1.0 - 2**-24, 2), (1.0, 2)):
        tok, _ = K.sample_categorical(logits, torch.tensor([u]), 1.0)
        assert tok.item() == want
    with pytest.raises(RuntimeError, match="temperature"):
        K.sample_categorical(logits, torch.tensor([0.5]), 0.0)


def test_sample_next_tokens_uses_the_kernel_for_plain_sampling(K, monkeypatch):
    """``sample_next_tokens`` with no top-k / top-p: the kernel (one uniform per row), same distribution and
    logprobs as its PyTorch path."""
    from r1.rollout.native import sample_next_tokens

    logits = torch.randn(4000, 9, generator=torch.Generator().manual_seed(1))
    toks, logps = sample_next_tokens(logits, 0.9, 0, 1.0, torch.Generator().manual_seed(3))
    u = torch.rand(4000, generator=torch.Generator().manual_seed(3))
    want, want_lp = K.sample_categorical(logits, u, 0.9)
    assert torch.equal(toks, want)
    close(logps, want_lp, tol=0)
    close(logps, (logits / 0.9).log_softmax(-1).gather(-1, toks[:, None])[:, 0], tol=1e-5)
    monkeypatch.setattr(kernels, "USE_KERNELS", False)
    plain, plain_lp = sample_next_tokens(logits, 0.9, 0, 1.0, torch.Generator().manual_seed(3))
    assert not torch.equal(plain, toks)  # the PyTorch path: another way to draw (V uniforms per row)
    close(plain_lp, (logits / 0.9).log_softmax(-1).gather(-1, plain[:, None])[:, 0], tol=1e-5)


# ------------------------------------------------------------------------------------------------ MKL packing
@pytest.fixture
def mkl(K):
    if not K.mkl_packing():  # a torch build without MKL (e.g. aarch64): r1 runs its plain products there
        pytest.skip("this torch build has no MKL packed sgemm")
    return K


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("N,Kd", [(40, 24), (263, 64), (7, 129)])
def test_mkl_packed_linear_is_f_linear(mkl, bias, N, Kd):
    """The packed product (up to ``rows`` rows: a decode step after rows finished runs from the same packing) and
    its fallback (more rows, 3-D input) = ``F.linear``."""
    torch.manual_seed(0)
    w, b = torch.randn(N, Kd), (torch.randn(N) if bias else None)
    packed = mkl.mkl_pack(w, 5, None)
    for x in (torch.randn(5, Kd), torch.randn(5, 1, Kd), torch.randn(3, Kd), torch.randn(1, Kd), torch.randn(2, 4, Kd)):
        close(mkl.mkl_packed_linear(x, packed, w, b, 5), F.linear(x, w, b), tol=1e-5)
    # Into a given output: the packed product in place, the fallback (more rows) copied in.
    for x in (torch.randn(5, 1, Kd), torch.randn(3, Kd), torch.randn(7, Kd)):
        out = torch.full((*x.shape[:-1], N), float("nan"))
        assert mkl.mkl_packed_linear(x, packed, w, b, 5, out).data_ptr() == out.data_ptr()
        close(out, F.linear(x, w, b), tol=1e-5)
    with pytest.raises(RuntimeError, match="out must hold"):
        mkl.mkl_packed_linear(torch.randn(5, Kd), packed, w, b, 5, torch.empty(5, N + 1))
    # A packing is for its weight's values at packing time: packed again after an update, it follows it.
    w.mul_(-0.5)
    packed = mkl.mkl_pack(w, 5, packed)
    x = torch.randn(5, Kd)
    close(mkl.mkl_packed_linear(x, packed, w, b, 5), F.linear(x, w, b), tol=1e-5)


def test_mkl_packed_linear_runs_fewer_rows_packed(mkl):
    """Up to ``rows`` rows run from the packing, no ATen product; more rows take the plain product. A product of m
    rows from the packing for 16 = the one from a packing for m (bit for bit from 2 rows on, here)."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    w = torch.randn(96, 48)
    packed = mkl.mkl_pack(w, 16, None)

    def aten_products(x):
        with profile(activities=[ProfilerActivity.CPU]) as p:
            mkl.mkl_packed_linear(x, packed, w, None, 16)
        return [e.name for e in p.events() if e.name in ("aten::linear", "aten::mm", "aten::addmm", "aten::matmul")]

    for m in (16, 9, 2, 1):
        assert aten_products(torch.randn(m, 48)) == [], m
    assert aten_products(torch.randn(17, 48)) != []
    for m in (2, 7, 15):
        x = torch.randn(m, 48)
        assert torch.equal(mkl.mkl_packed_linear(x, packed, w, None, 16),
                           mkl.mkl_packed_linear(x, mkl.mkl_pack(w, m, None), w, None, m))


@pytest.mark.parametrize("arch", ["qwen2", "llama"])
def test_decode_layers_is_the_per_layer_decode(mkl, monkeypatch, arch):
    """A decode step's layers as one call (``decode_layers``) = the per-layer decode, its reference: the same
    greedy tokens and logprobs, the same recorded activations (computed into the record while every row is in the
    batch, scattered to their rows once finished rows have left it), for padded prompts (the key mask), with
    (qwen2) and without (llama) biases."""
    from r1.models.tokenizer import build_byte_tokenizer
    from r1.rollout.base import SamplingParams
    from r1.rollout.native import NativeEngine
    from tests.models.test_fast import tiny
    from tests.models.test_replay import TEXTS

    monkeypatch.setattr(fast, "ONEDNN_FP32", False)  # float32 products through MKL, packed, as on Intel CPUs
    tok = build_byte_tokenizer()
    model = tiny(arch, vocab_size=len(tok))
    model.generation_config.eos_token_id = [tok.eos_token_id, *range(60, 100)]  # rows stop at different steps
    prompts = [tok.encode(t, add_special_tokens=False) for t in TEXTS]
    runs = {}
    calls = []
    real = mkl.decode_layers

    class Spy:
        def __getattr__(self, name):
            if name == "decode_layers":
                return lambda x, *a: calls.append(x.shape[0]) or real(x, *a)
            return getattr(mkl, name)

    monkeypatch.setattr(fast.kernels, "ops", lambda: Spy())
    for layered in (False, True):
        monkeypatch.setattr(fast, "USE_DECODE_LAYERS", layered)
        engine = NativeEngine(model, tok, compact_threshold=0.0)
        out = engine.generate(prompts, 3, SamplingParams(temperature=0.0, max_new_tokens=8), record=True)
        rec = engine.last_record
        filled = rec.U * rec.P + rec.steps * rec.N  # the rows written (the rest is unused memory)
        # (the record keeps no logits: the last layer's output, in ``buffers["x"]``, determines them)
        runs[layered] = ([c for g in out for c in g], {k: b[:, :filled].clone() for k, b in rec.buffers.items()})
        assert bool(calls) == layered
    (comps, bufs), (comps2, bufs2) = runs[False], runs[True]
    assert [c.token_ids for c in comps] == [c.token_ids for c in comps2]
    assert len({len(c.token_ids) for c in comps}) > 1 and min(calls) < max(calls)  # rows left the batch
    for a, b in zip(comps, comps2):
        close(b.logprobs, a.logprobs, tol=1e-5)
    for k in bufs:
        close(bufs2[k], bufs[k], tol=1e-5)


def test_decode_layers_checks_its_arguments(mkl):
    x = torch.randn(2, 8)
    mats = [torch.randn(24, 8), torch.randn(8, 8), torch.randn(16, 8), torch.randn(8, 8)]  # q/k/v, o, g/u, d
    cache = torch.zeros(2, 1, 4, 8)
    args = ([torch.ones(8)] * 2, [1e-6] * 2, [mkl.mkl_pack(w, 2, None) for w in mats], mats, [None] * 4, [cache],
            [cache.clone()],
            torch.ones(2, 8), torch.zeros(2, 8), 0, torch.empty(0, dtype=torch.bool), 1, 1, 0.3)
    out = mkl.decode_layers(x, *args, 2, [], 0, None)
    assert out.shape == (2, 8) and bool(out.isfinite().all())
    with pytest.raises(RuntimeError, match="R <= rows"):
        mkl.decode_layers(x, *args, 1, [], 0, None)
    with pytest.raises(RuntimeError, match="5 L \\+ 1 buffers"):
        mkl.decode_layers(x, *args, 2, [torch.zeros(4, 8)], 0, None)
    record = [torch.zeros(4, f) for f in (8, 24, 8, 8, 16, 8)]
    out = mkl.decode_layers(x, *args, 2, record, 2, None)  # rows 2, 3 of each buffer
    assert out.data_ptr() == record[5][2:].data_ptr() and bool((record[1][:2] == 0).all())
    assert bool((record[0][2:] == x).all()) and bool((record[1][2:] != 0).all())
    with pytest.raises(RuntimeError, match="outside"):
        mkl.decode_layers(x, *args, 2, record, 3, None)
    with pytest.raises(RuntimeError, match="is not \\(M, 24\\)"):
        mkl.decode_layers(x, *args, 2, [torch.zeros(4, 8)] * 6, 0, None)
    with pytest.raises(RuntimeError, match="do not chain"):
        mkl.decode_layers(x, args[0], args[1], args[2], mats[:3] + [torch.randn(8, 9)], *args[4:], 2, [], 0, None)
    with pytest.raises(RuntimeError, match="per layer"):
        mkl.decode_layers(x, args[0], args[1], args[2][:3], *args[3:], 2, [], 0, None)


def test_mkl_pack_reuses_a_large_enough_buffer(mkl):
    w = torch.randn(64, 32)
    first = mkl.mkl_pack(w, 8, None)
    again = mkl.mkl_pack(torch.randn(64, 32), 8, first)
    assert again.data_ptr() == first.data_ptr()  # packed into the same memory
    small = torch.empty(16)
    assert mkl.mkl_pack(w, 8, small).data_ptr() != small.data_ptr()  # too small: a new buffer
    with pytest.raises(RuntimeError, match="float32"):
        mkl.mkl_pack(w.double(), 8, None)


def test_packed_float32_decode_is_the_plain_decode(mkl, monkeypatch):
    """``pack_weights`` on float32 matrices (an Intel CPU, MKL): the decode's products run from MKL's packing
    (every product of the batch's row count), with the plain decode's logits; a second packing into the same
    store reuses its memory."""
    from r1.models.fast import MKLPacked, can_pack, pack_weights

    monkeypatch.setattr(fast, "ONEDNN_FP32", False)  # float32 products through MKL, as on Intel CPUs
    model = _model()
    lm = fast.FastLM(model)
    prompts = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])
    mask = torch.ones_like(prompts)
    calls, layer_calls = [], []
    real, real_layers = mkl.mkl_packed_linear, mkl.decode_layers

    class Spy:
        def __getattr__(self, name):
            if name == "mkl_packed_linear":
                return lambda x, *a: calls.append(x.numel() // x.shape[-1]) or real(x, *a)
            if name == "decode_layers":
                return lambda x, *a: layer_calls.append(x.shape[0]) or real_layers(x, *a)
            return getattr(mkl, name)

    def decode(weights):
        cache, out = lm.new_cache(), []
        pos = torch.arange(4).expand(2, 4)
        logits = lm.forward(prompts, mask, pos, cache, weights, capacity=10)
        nxt, p, m = logits.argmax(-1), pos[:, -1], mask
        for _ in range(4):
            m, p = torch.cat([m, m.new_ones(2, 1)], dim=1), p + 1
            logits = lm.forward(nxt[:, None], m, p[:, None], cache, weights, capacity=10)
            out.append(logits)
            nxt = logits.argmax(-1)
        return out

    store = {}
    monkeypatch.setattr(fast, "USE_DECODE_LAYERS", False)  # first the per-layer decode: every product packed
    with torch.no_grad():
        plain = decode(lm.weights())
        w = lm.weights()
        assert can_pack(w)
        monkeypatch.setattr(fast.kernels, "ops", lambda: Spy())
        packed = decode(pack_weights(w, rows=2, store=store))
        assert isinstance(w[0].mat("qkv"), MKLPacked) and isinstance(w.head_packed, MKLPacked)
        # 4 decode steps × (2 layers × 4 products + the head), and the prefill's head (its last position's 2 rows);
        # the prefill's other products (8 rows) run from the plain matrices
        assert calls.count(2) == 4 * (2 * 4 + 1) + 1 and calls.count(8) == 2 * 4 and not layer_calls
        for a, b in zip(plain, packed):
            close(a, b, tol=1e-5)
        # Then each decode step's layers as one call of r1's kernel (the head still packed apart)
        monkeypatch.setattr(fast, "USE_DECODE_LAYERS", True)
        calls.clear()
        layered = decode(pack_weights(lm.weights(), rows=2, store=store))
        assert layer_calls == [2] * 4 and calls.count(2) == 4 + 1
        for a, b in zip(plain, layered):
            close(a, b, tol=1e-5)
    ptrs = {k: v.data_ptr() for k, v in store.items()}
    with torch.no_grad():
        pack_weights(lm.weights(), rows=2, store=store)
    assert {k: v.data_ptr() for k, v in store.items()} == ptrs
    monkeypatch.setattr(fast, "USE_MKL_PACKED", False)
    assert not can_pack(lm.weights())


def test_engine_releases_the_packing_after_a_rollout(mkl, monkeypatch):
    """After a rollout the packed copies leave the weights (a forward record keeps those for the train pass); the
    packed memory is kept for the next rollout below ``PACK_KEEP_BYTES`` and freed above it; either way the next
    rollout samples the same tokens."""
    from r1.models.tokenizer import build_byte_tokenizer
    from r1.rollout import native
    from r1.rollout.base import SamplingParams

    monkeypatch.setattr(fast, "ONEDNN_FP32", False)  # float32 products through MKL, as on Intel CPUs
    tok = build_byte_tokenizer()
    model = _model()
    model.resize_token_embeddings(len(tok))
    engine = native.NativeEngine(model, tok)
    params = SamplingParams(temperature=1.0, max_new_tokens=6)
    seen = []
    real = fast.pack_weights

    def spy(weights, **kw):
        seen.append(weights)
        return real(weights, **kw)

    monkeypatch.setattr(fast, "pack_weights", spy)
    outs = []
    for keep in (1 << 30, 0):
        monkeypatch.setattr(native, "PACK_KEEP_BYTES", keep)
        with torch.no_grad():
            out = engine.generate([[1, 2, 3]], 4, params, torch.Generator().manual_seed(0), record=True)
        outs.append([c.token_ids for c in out[0]])
        w = seen[-1]
        assert w.head_packed is None and all(layer.packed is None for layer in w)
        assert bool(engine._pack_store) == (keep > 0)
    assert outs[0] == outs[1]


def test_two_checkouts_of_the_same_source_build_under_two_names(monkeypatch, tmp_path):
    # torch's build files name the source's path: one shared name made each checkout rebuild after the other
    name = kernels.build_name()
    copy = tmp_path / "kernels.cpp"
    copy.write_bytes(kernels.SOURCE.read_bytes())
    monkeypatch.setattr(kernels, "SOURCE", copy)
    assert kernels.build_name() != name
    assert kernels.build_name() == kernels.build_name()


def reference_packed_attention(q, k, v, lengths, scale):
    """Each example alone, plain softmax attention in float64: q (M, H, D), k / v (M, KV, D) → (M, H·D)."""
    H, KV = q.shape[1], k.shape[1]
    outs, s0 = [], 0
    for n in lengths:
        qe, ke, ve = (t[s0 : s0 + n].double().transpose(0, 1) for t in (q, k, v))  # (heads, n, D)
        ke, ve = ke.repeat_interleave(H // KV, 0), ve.repeat_interleave(H // KV, 0)
        s = (qe @ ke.transpose(1, 2)) * scale
        s = s.masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
        outs.append((s.softmax(-1) @ ve).transpose(0, 1).reshape(n, -1))
        s0 += n
    return torch.cat(outs)


@pytest.mark.parametrize("H,KV,D", [(4, 2, 32), (3, 3, 16), (14, 2, 64), (2, 1, 128)])
@pytest.mark.parametrize("lengths", [[1], [5, 1, 17, 33, 16], [40, 3, 64]], ids=["one", "odd", "tiles"])
def test_packed_attention_and_backward_match_float64(K, H, KV, D, lengths):
    torch.manual_seed(H * D + len(lengths))
    M = sum(lengths)
    q, k, v = (torch.randn(M, h, D, dtype=torch.float64, requires_grad=True) for h in (H, KV, KV))
    scale = 0.7 / D**0.5
    want = reference_packed_attention(q, k, v, lengths, scale)
    do = torch.randn_like(want)
    dq_ref, dk_ref, dv_ref = torch.autograd.grad(want, (q, k, v), do)
    starts = torch.tensor([0] + lengths[:-1]).cumsum(0)
    ln = torch.tensor(lengths)
    args = [t.detach().float().reshape(M, -1) for t in (q, k, v)]
    o, lse = K.packed_attention(*args, starts, ln, H, KV, scale)
    close(o, want.detach().float(), tol=2e-6)
    # the logsumexp the backward reads: of each row's scaled causal scores
    s0, rows = 0, []
    for n in lengths:
        qe = q[s0 : s0 + n].detach().transpose(0, 1)
        ke = k[s0 : s0 + n].detach().transpose(0, 1).repeat_interleave(H // KV, 0)
        s = (qe @ ke.transpose(1, 2) * scale).masked_fill(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))
        rows.append(s.logsumexp(-1).transpose(0, 1))
        s0 += n
    close(lse, torch.cat(rows).float(), tol=2e-6)
    dq, dk, dv = K.packed_attention_backward(do.float(), *args, o, lse, starts, ln, H, KV, scale)
    for got, ref in ((dq, dq_ref), (dk, dk_ref), (dv, dv_ref)):
        close(got, ref.reshape(M, -1).float(), tol=1e-5)


def test_packed_attention_rejects_bad_input(K):
    q, k = torch.zeros(6, 4 * 32), torch.zeros(6, 2 * 32)
    st, ln = torch.tensor([0, 3]), torch.tensor([3, 3])
    o, lse = K.packed_attention(q, k, k, st, ln, 4, 2, 1.0)  # well-formed: runs
    with pytest.raises(RuntimeError, match="cover 5 rows of 6"):
        K.packed_attention(q, k, k, st, torch.tensor([3, 2]), 4, 2, 1.0)
    with pytest.raises(RuntimeError, match="follow one another"):
        K.packed_attention(q, k, k, torch.tensor([0, 2]), ln, 4, 2, 1.0)
    with pytest.raises(RuntimeError, match="query heads"):
        K.packed_attention(q, k, k, st, ln, 4, 3, 1.0)
    with pytest.raises(RuntimeError, match="head dim 24"):
        K.packed_attention(torch.zeros(6, 4 * 24), torch.zeros(6, 2 * 24), torch.zeros(6, 2 * 24), st, ln, 4, 2, 1.0)
    with pytest.raises(RuntimeError, match=r"\(M, KV·D\)"):
        K.packed_attention(q, k[:5], k, st, ln, 4, 2, 1.0)
    with pytest.raises(RuntimeError, match="int64"):
        K.packed_attention(q, k, k, st.int(), ln, 4, 2, 1.0)
    with pytest.raises(RuntimeError, match="shaped as q"):
        K.packed_attention_backward(q[:5], q, k, k, o, lse, st, ln, 4, 2, 1.0)
