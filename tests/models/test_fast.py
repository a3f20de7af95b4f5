"""The lean forward (``r1.models.fast``) against the ``transformers`` forward it replaces.

Run: ``python -m pytest tests/models/test_fast.py -q``.
"""

import pytest
import torch

from r1.models.fast import FastLM, unsupported_reason

VOCAB = 50


def tiny(arch: str, **extra):
    import transformers

    cls = {
        "llama": transformers.LlamaConfig,
        "qwen2": transformers.Qwen2Config,
        "qwen3": transformers.Qwen3Config,
        "mistral": transformers.MistralConfig,
    }[arch]
    kwargs = dict(
        vocab_size=VOCAB,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=96,
        max_position_embeddings=128,
    )
    if arch == "mistral":
        kwargs["sliding_window"] = None
    kwargs.update(extra)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(cls(**kwargs))
    with torch.no_grad():  # non-trivial norm weights and biases, so a missed term shows
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(0.3 * torch.randn_like(p))
    return model.eval()


ARCHS = [
    ("llama", {}),
    ("llama", {"attention_bias": True, "mlp_bias": True, "tie_word_embeddings": True}),
    ("qwen2", {}),
    ("qwen3", {"head_dim": 24}),
    ("mistral", {}),
    ("llama", {"rope_scaling": {"rope_type": "linear", "factor": 2.0}}),
]


def hf_logits(model, seqs: list[list[int]]) -> list[torch.Tensor]:
    """Per sequence, the (len, V) logits of an unpadded HF forward: the reference."""
    with torch.no_grad():
        return [model(torch.tensor([s])).logits[0] for s in seqs]


def _decode(fast, prompts, new, weights):
    """Left-padded prefill of ``prompts`` then one decode step per column of ``new`` but the last: the logits of
    every step, (R, V) each."""
    steps = new.shape[1]
    P = max(len(p) for p in prompts)
    ids = torch.zeros((len(prompts), P), dtype=torch.long)
    mask = torch.zeros((len(prompts), P), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, P - len(p) :], mask[i, P - len(p) :] = torch.tensor(p), 1
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    cache = fast.new_cache()
    got = [fast.forward(ids, mask, positions, cache, weights, capacity=P + steps)]
    pos = positions[:, -1] + 1
    for t in range(steps - 1):
        mask = torch.cat([mask, torch.ones((len(prompts), 1), dtype=torch.long)], 1)
        got.append(fast.forward(new[:, t : t + 1], mask, pos[:, None], cache, weights, capacity=P + steps))
        pos = pos + 1
    return got


@pytest.mark.parametrize("arch,extra", ARCHS)
def test_prefill_and_decode_match_transformers(arch, extra):
    model = tiny(arch, **extra)
    assert unsupported_reason(model) is None
    fast = FastLM(model)
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(1, VOCAB, (n,), generator=g).tolist() for n in (5, 2, 7)]
    steps = 4
    new = torch.randint(1, VOCAB, (len(prompts), steps), generator=g)
    ref = hf_logits(model, [p + new[i].tolist() for i, p in enumerate(prompts)])

    with torch.no_grad():
        got = _decode(fast, prompts, new, fast.weights())
    for t, logits in enumerate(got):
        for i, p in enumerate(prompts):
            torch.testing.assert_close(logits[i], ref[i][len(p) - 1 + t], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("arch,extra", ARCHS[:4])
def test_train_logits_and_gradients_match_transformers(arch, extra):
    model = tiny(arch, **extra)
    fast = FastLM(model)
    g = torch.Generator().manual_seed(2)
    prompts = [torch.randint(1, VOCAB, (n,), generator=g).tolist() for n in (4, 6)]
    group = [0, 0, 1, 1, 1]
    completions = [torch.randint(1, VOCAB, (n,), generator=g).tolist() for n in (3, 5, 1, 4, 5)]
    weights = torch.randn(len(group), 5, generator=g)  # an arbitrary loss over the real positions

    def loss_of(per_row):  # per_row[i]: (len(completions[i]), V) logits
        return sum((lg.log_softmax(-1)[:, 7] * weights[i, : len(lg)]).sum() for i, lg in enumerate(per_row))

    model.zero_grad()
    seqs = [prompts[u] + c for u, c in zip(group, completions)]
    ref_rows = [model(torch.tensor([s])).logits[0, len(prompts[u]) - 1 : len(s) - 1] for s, u in zip(seqs, group)]
    loss_of(ref_rows).backward()
    ref_grads = {n: p.grad.clone() for n, p in model.named_parameters()}

    model.zero_grad()
    out = fast.train_logits(prompts, group, completions, pad_id=0)
    assert out.shape == (len(group), 5, VOCAB)
    rows = [out[i, : len(c)] for i, c in enumerate(completions)]
    for a, b in zip(rows, ref_rows):
        torch.testing.assert_close(a, b.detach(), rtol=1e-4, atol=1e-5)
    loss_of(rows).backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref_grads[n], rtol=1e-4, atol=1e-5, msg=n)
    # Without autograd (the reference pass: residual adds inside the products, in place), the same logits
    with torch.no_grad():
        again = fast.train_logits(prompts, group, completions, pad_id=0)
    for i, c in enumerate(completions):
        torch.testing.assert_close(again[i, : len(c)], out[i, : len(c)].detach(), rtol=1e-5, atol=1e-5)


def test_a_pad_token_inside_a_sequence_gets_no_embedding_gradient_as_in_transformers():
    """``nn.Embedding(padding_idx=...)`` (``config.pad_token_id``) gives its row no gradient from lookups; a sampled
    pad token in a completion must not either (the lean forward's ``F.embedding`` takes the same ``padding_idx``)."""
    model = tiny("qwen2", pad_token_id=5)
    with torch.no_grad():
        model.model.embed_tokens.weight[5].normal_()  # a live row: its lookups change the logits
    fast = FastLM(model)
    prompts, group, completions = [[1, 5, 2], [3, 4]], [0, 1, 1], [[5, 6, 5], [7, 5, 8, 9], [5]]
    seqs = [prompts[u] + c for u, c in zip(group, completions)]
    model.zero_grad()
    ref = [model(torch.tensor([s])).logits[0, len(prompts[u]) - 1 : len(s) - 1] for s, u in zip(seqs, group)]
    sum(r.log_softmax(-1)[:, 7].sum() for r in ref).backward()
    ref_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    assert bool((ref_grads["model.embed_tokens.weight"][5] == 0).all())  # transformers: none through the lookup
    model.zero_grad()
    out = fast.train_logits(prompts, group, completions, pad_id=0)
    sum(out[i, : len(c)].log_softmax(-1)[:, 7].sum() for i, c in enumerate(completions)).backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref_grads[n], rtol=1e-4, atol=1e-5, msg=n)


def test_unsupported_models_say_why():
    assert "model_type" in unsupported_reason(torch.nn.Linear(2, 2))
    assert "sliding" in unsupported_reason(tiny("qwen2", use_sliding_window=True, sliding_window=8))
    assert "hidden_act" in unsupported_reason(tiny("llama", hidden_act="gelu"))
    with pytest.raises(ValueError, match="does not cover"):
        FastLM(tiny("llama", hidden_act="gelu"))


@pytest.mark.parametrize("shape", [(5, 24), (3, 4, 24), "strided"])
@pytest.mark.parametrize("bias", [False, True])
def test_linear_is_f_linear(shape, bias, monkeypatch):
    """``linear`` (oneDNN's kernel without autograd on a CPU in float32) = ``F.linear`` (the reference, MKL)."""
    from r1.models import fast

    monkeypatch.setattr(fast, "ONEDNN_FP32", fast.USE_ONEDNN)  # oneDNN's float32 path even on an Intel CPU

    torch.manual_seed(0)
    x = torch.randn(4, 3, 24).transpose(0, 1) if shape == "strided" else torch.randn(*shape)
    w, b = torch.randn(40, 24), (torch.randn(40) if bias else None)
    want = torch.nn.functional.linear(x, w, b)
    with torch.no_grad():
        got = fast.linear(x, w, b)
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # Under autograd it is F.linear itself: the gradient reaches the weight.
    wg = w.clone().requires_grad_()
    fast.linear(x, wg, b).sum().backward()
    torch.testing.assert_close(wg.grad, x.reshape(-1, 24).sum(0).expand(40, 24), rtol=1e-5, atol=1e-5)


def test_lean_forward_is_the_same_with_and_without_onednn(monkeypatch):
    """The rollout's and the reference pass's forward with oneDNN's matmuls = with ``F.linear``'s."""
    from r1.models import fast

    if not fast.USE_ONEDNN:
        pytest.skip("this torch build has no oneDNN linear")
    model = tiny("qwen2")
    lean = FastLM(model)
    prompts, group, comps = [[1, 2, 3], [4, 5]], [0, 0, 1], [[6, 7], [8], [9, 10, 11]]
    monkeypatch.setattr(fast, "ONEDNN_FP32", True)  # float32 products through oneDNN (on AMD CPUs, the default)
    with torch.no_grad():
        with_onednn = lean.train_logits(prompts, group, comps)
        monkeypatch.setattr(fast, "USE_ONEDNN", False)
        without = lean.train_logits(prompts, group, comps)
    torch.testing.assert_close(with_onednn, without, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch,extra", [ARCHS[1], ARCHS[3]])
def test_bf16_autocast_decode_matches_transformers_under_autocast(arch, extra):
    """Mixed precision (``model.dtype=bf16``): the matrices cast once to bfloat16 (and packed for oneDNN where it
    can), RoPE and the decode's attention in float32. Same logits as ``transformers`` under the same autocast, to
    bfloat16's precision; the packed and the plain matrices give the same products."""
    from r1.models.fast import can_pack, pack_weights

    model = tiny(arch, **extra)
    fast = FastLM(model)
    g = torch.Generator().manual_seed(1)
    prompts = [torch.randint(1, VOCAB, (n,), generator=g).tolist() for n in (5, 2, 7)]
    new = torch.randint(1, VOCAB, (len(prompts), 4), generator=g)
    seqs = [p + new[i].tolist() for i, p in enumerate(prompts)]
    ref32 = hf_logits(model, seqs)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        ref = [lg.float() for lg in hf_logits(model, seqs)]
        w = fast.weights()
        assert w[0].wqkv.dtype == w[0].wd.dtype == w.head.dtype == torch.bfloat16 and w[0].n1.dtype == torch.float32
        plain = _decode(fast, prompts, new, w)
        packed = _decode(fast, prompts, new, pack_weights(w, rows=3))
    assert (w[0].packed is not None) == can_pack(w)  # a CPU with oneDNN: packed in place, and used
    if w[0].packed is not None:
        assert w[0].packed["qkv"].layout == torch._mkldnn
    err_bf16 = err_ref = 0.0
    for t, (a, b) in enumerate(zip(plain, packed)):
        torch.testing.assert_close(a, b, rtol=1e-2, atol=1e-2)
        for i, p in enumerate(prompts):
            err_bf16 = max(err_bf16, (a[i].float() - ref[i][len(p) - 1 + t]).abs().max().item())
            err_ref = max(err_ref, (ref[i][len(p) - 1 + t] - ref32[i][len(p) - 1 + t]).abs().max().item())
    # As close to transformers' bf16 logits as those are to float32's (bfloat16 keeps ~3 significant digits).
    assert 0 < err_ref < 0.05 and err_bf16 <= 2 * err_ref, (err_bf16, err_ref)
    # With autograd the weights stay the parameters' float32 (autocast casts them per product, differentiably).
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert fast.weights()[0].wqkv.dtype == torch.float32


def test_decode_attention_is_sdpa():
    """``FastLM._decode_attend`` (one query position: two batched products) = ``scaled_dot_product_attention``,
    with grouped-query heads and a key mask."""
    fast = FastLM(tiny("qwen2"))  # 4 heads over 2 KV heads
    g = torch.Generator().manual_seed(0)
    q, k, v = torch.randn(3, 4, 1, 16, generator=g), torch.randn(3, 2, 9, 16, generator=g), torch.randn(3, 2, 9, 16, generator=g)
    mask = torch.rand(3, 1, 1, 9, generator=g) > 0.3
    mask[..., -1] = True
    for m in (None, mask):
        want = torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=m, scale=fast.scale, enable_gqa=True)
        with torch.no_grad():
            got = fast._decode_attend(q, k, v, m)
        torch.testing.assert_close(got, want.transpose(1, 2).reshape(3, 1, 64), rtol=1e-5, atol=1e-5)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):  # float32 under autocast too, then back on
        got = fast._decode_attend(q, k, v, mask)
        assert got.dtype == torch.float32 and torch.is_autocast_enabled("cpu")


def test_no_grad_weights_are_kept_until_a_parameter_changes():
    """The fused copies of a frozen model (the reference) are made once; an in-place update, a new dtype under
    autocast, or autograd give fresh ones with the current values."""
    model = tiny("qwen2")
    fast = FastLM(model)
    with torch.no_grad():
        assert fast.weights() is not fast.weights()  # a trained model's copies are not kept
        model.requires_grad_(False)  # frozen, as the reference model is
        first = fast.weights()
        assert fast.weights() is first
        model.model.layers[0].self_attn.k_proj.weight.add_(1.0)  # what an optimizer step does
        second = fast.weights()
        assert second is not first
        k = model.model.layers[0].self_attn.k_proj.weight
        H, D = fast.num_heads, fast.head_dim
        torch.testing.assert_close(second[0].wqkv[H * D : H * D + k.shape[0]], k)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert fast.weights()[0].wqkv.dtype == torch.bfloat16
        assert fast.weights()[0].wqkv.dtype == torch.float32
    model.requires_grad_(True)
    assert fast.weights()[0].wqkv.requires_grad  # under autograd: differentiable, never a kept copy
