"""The lean training forward over whole sequences (``r1.models.sequence``) against the ``transformers`` forward:
hidden states and every parameter's gradient, padded rows and packed ones, with the fused kernels and without.

Run: ``python -m pytest tests/models/test_sequence.py -q``.
"""

import pytest
import torch

from r1.models import kernels
from r1.models.fast import FastLM
from r1.models.sequence import PackPlan, sequence_hidden
from tests.models.test_fast import ARCHS, VOCAB, tiny

SEQS = [[3, 7, 1, 9, 4, 4, 2], [5, 1], [8, 2, 6, 6, 1, 3, 9, 9, 7, 2, 5], [1, 2, 3], [4, 9, 9, 9, 1]]


def hf_loss_and_grads(model, seqs, weights):
    """The reference: each sequence alone through ``transformers``, the final-norm hidden states dotted with fixed
    random ``weights`` (a loss that reaches every position), summed; its value and every parameter's gradient."""
    model.zero_grad()
    total = 0.0
    for s, w in zip(seqs, weights):
        h = model.model(torch.tensor([s])).last_hidden_state[0]  # (len, E)
        total = total + (h * w).sum()
    total.backward()
    return total.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def close(got, want, what):
    assert got.keys() == want.keys(), what
    for n in want:
        scale = float(want[n].abs().max()) + 1e-6  # float32 rounding of sums of large terms: relative to the size
        err = float((got[n] - want[n]).abs().max())
        assert err <= 2e-5 * scale + 1e-6, f"{what}: {n}: max error {err:.3g} at scale {scale:.3g}"


@pytest.fixture(params=[True, False], ids=["kernels", "pytorch"])
def use_kernels(request, monkeypatch):
    monkeypatch.setattr(kernels, "USE_KERNELS", request.param)
    return request.param


@pytest.mark.parametrize("arch,extra", ARCHS[:4], ids=[f"{a}-{i}" for i, (a, _) in enumerate(ARCHS[:4])])
def test_padded_and_packed_rows_match_transformers(arch, extra, use_kernels):
    model = tiny(arch, **extra).train()
    torch.manual_seed(1)
    weights = [torch.randn(len(s), model.config.hidden_size) for s in SEQS]
    want_loss, want = hf_loss_and_grads(model, SEQS, weights)
    fast = FastLM(model)

    # padded: one right-padded row per sequence
    width = max(len(s) for s in SEQS)
    ids = torch.tensor([s + [0] * (width - len(s)) for s in SEQS])
    model.zero_grad()
    h, _, _ = sequence_hidden(fast, ids)
    loss = sum((h[i, : len(s)] * w).sum() for i, (s, w) in enumerate(zip(SEQS, weights)))
    loss.backward()
    torch.testing.assert_close(loss.detach(), want_loss, rtol=1e-5, atol=1e-4)
    close({n: p.grad for n, p in model.named_parameters() if p.grad is not None}, want, "padded")

    # packed: the sequences one after another in one row
    model.zero_grad()
    plan = PackPlan([len(s) for s in SEQS])
    h, _, _ = sequence_hidden(fast, torch.tensor([sum(SEQS, [])]), plan=plan)
    loss = (h[0] * torch.cat(weights)).sum()
    loss.backward()
    torch.testing.assert_close(loss.detach(), want_loss, rtol=1e-5, atol=1e-4)
    close({n: p.grad for n, p in model.named_parameters() if p.grad is not None}, want, "packed")


def test_pack_plan_positions_and_groups():
    plan = PackPlan([3, 2, 7])
    assert plan.positions.tolist() == [0, 1, 2, 0, 1, 0, 1, 2, 3, 4, 5, 6]
    # lengths 2 and 3 share a group (3 <= 2 * 1.25 is false: 2.5) -> each alone, 7 alone
    assert [g[0].shape for g in plan.groups] == [(1, 2), (1, 3), (1, 7)]
    plan = PackPlan([4, 5, 4])  # one group of three, width 5: the 4s padded by one
    (idx, valid, keep, real), = plan.groups
    assert idx.shape == (3, 5) and int(valid.sum()) == 13 and sorted(real.tolist()) == list(range(13))
    with pytest.raises(ValueError):
        PackPlan([3, 0])


def test_packed_example_does_not_see_its_neighbours():
    model = tiny("qwen2")
    fast = FastLM(model)
    a, b = [5, 6, 7, 8], [9, 1, 2]
    with torch.no_grad():
        alone, _, _ = sequence_hidden(fast, torch.tensor([b]))
        packed, _, _ = sequence_hidden(fast, torch.tensor([a + b]), plan=PackPlan([4, 3]))
        changed, _, _ = sequence_hidden(fast, torch.tensor([[1, 1, 1, 1] + b]), plan=PackPlan([4, 3]))
    torch.testing.assert_close(packed[0, 4:], alone[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(changed[0, 4:], packed[0, 4:])
    assert VOCAB > max(a + b)


@pytest.mark.parametrize("H,KV,D", [(4, 2, 16), (6, 3, 32)])
def test_packed_attention_kernel_is_the_groups_attention(monkeypatch, H, KV, D):
    """``PackPlan.attention`` through r1's packed kernel (one autograd node) = through PyTorch's attention per group
    of padded examples, its reference: outputs and the gradients of q, k and v; and the groups are what runs when an
    example is longer than ``PACKED_KERNEL_MAX_LENGTH`` or the kernels are off."""
    import r1.models.sequence as seq

    if kernels.ops() is None:
        pytest.skip(f"the fused kernels did not build: {kernels.error()}")
    torch.manual_seed(D)
    lengths = [7, 1, 30, 12, 13, 29, 2]
    M = sum(lengths)
    plan = PackPlan(lengths)
    calls = []
    real_apply = seq._PackedAttention.apply
    monkeypatch.setattr(seq._PackedAttention, "apply", lambda *a: calls.append(1) or real_apply(*a))

    def run(limit, use):
        monkeypatch.setattr(seq, "PACKED_KERNEL_MAX_LENGTH", limit)
        monkeypatch.setattr(kernels, "USE_KERNELS", use)
        torch.manual_seed(0)
        q, k, v = (torch.randn(M, h, D, requires_grad=True) for h in (H, KV, KV))
        out = plan.attention(q, k, v, 0.3)
        out.backward(torch.randn_like(out))
        return out.detach(), q.grad, k.grad, v.grad

    fast = run(512, True)
    assert len(calls) == 1
    for limit, use in ((29, True), (512, False)):  # an example of 30 > limit; the kernels off
        ref = run(limit, use)
        assert len(calls) == 1
        for got, want in zip(fast, ref):
            torch.testing.assert_close(got.reshape(want.shape), want, rtol=1e-5, atol=1e-5)
