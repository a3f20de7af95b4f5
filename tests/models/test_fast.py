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

    P = max(len(p) for p in prompts)
    ids = torch.zeros((len(prompts), P), dtype=torch.long)
    mask = torch.zeros((len(prompts), P), dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, P - len(p) :], mask[i, P - len(p) :] = torch.tensor(p), 1
    positions = (mask.cumsum(-1) - 1).clamp_min(0)
    cache = fast.new_cache()
    with torch.no_grad():
        w = fast.weights()
        out = fast.forward(ids, mask, positions, cache, w, capacity=P + steps)
        got = [out]
        pos = positions[:, -1] + 1
        for t in range(steps - 1):
            mask = torch.cat([mask, torch.ones((len(prompts), 1), dtype=torch.long)], 1)
            got.append(fast.forward(new[:, t : t + 1], mask, pos[:, None], cache, w, capacity=P + steps))
            pos = pos + 1
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


def test_unsupported_models_say_why():
    assert "model_type" in unsupported_reason(torch.nn.Linear(2, 2))
    assert "sliding" in unsupported_reason(tiny("qwen2", use_sliding_window=True, sliding_window=8))
    assert "hidden_act" in unsupported_reason(tiny("llama", hidden_act="gelu"))
    with pytest.raises(ValueError, match="does not cover"):
        FastLM(tiny("llama", hidden_act="gelu"))


@pytest.mark.parametrize("shape", [(5, 24), (3, 4, 24), "strided"])
@pytest.mark.parametrize("bias", [False, True])
def test_linear_is_f_linear(shape, bias):
    """``linear`` (oneDNN's kernel without autograd on a CPU in float32) = ``F.linear`` (the reference, MKL)."""
    from r1.models import fast

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
    with torch.no_grad():
        with_onednn = lean.train_logits(prompts, group, comps)
        monkeypatch.setattr(fast, "USE_ONEDNN", False)
        without = lean.train_logits(prompts, group, comps)
    torch.testing.assert_close(with_onednn, without, rtol=1e-5, atol=1e-5)
