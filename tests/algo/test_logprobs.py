"""Chunked token log-probs, entropy and masked mean. Run: ``pytest tests/algo/test_logprobs.py -q``."""

import math

import pytest
import torch

from r1.algo import entropy_from_logits, gather_logprobs, masked_mean

from reference import algo_ref as ref

LN3 = math.log(3.0)


def _random_logits(seed, n=3, t=5, v=11, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    logits = (3 * torch.randn(n, t, v, generator=g)).to(dtype)
    ids = torch.randint(0, v, (n, t), generator=g)
    return logits, ids


# ------------------------------------------------------------------------------------------------- hand-computed
def test_gather_hand_computed():
    # logits [0, ln 3] -> softmax [1/4, 3/4]
    #   token 1: log(3/4) = -0.28768;  token 0: log(1/4) = -1.38629
    # τ = 2: z = [0, ln 3 / 2] -> p1 = √3 / (1 + √3) = 0.63397 -> log = -0.45575
    logits = torch.tensor([[[0.0, LN3], [0.0, LN3]]])
    out = gather_logprobs(logits, torch.tensor([[1, 0]]))
    torch.testing.assert_close(out, torch.tensor([[-0.28768, -1.38629]]), atol=1e-5, rtol=0)
    out = gather_logprobs(logits[:, :1], torch.tensor([[1]]), temperature=2.0)
    torch.testing.assert_close(out, torch.tensor([[-0.45575]]), atol=1e-5, rtol=0)


def test_gather_gradient_hand_computed():
    # d/dz_v log p_y = (1[v = y] - p_v) / τ; p = [1/4, 3/4], y = 1, τ = 1 -> [-0.25, 0.25]
    logits = torch.tensor([[[0.0, LN3]]], requires_grad=True)
    gather_logprobs(logits, torch.tensor([[1]])).sum().backward()
    torch.testing.assert_close(logits.grad, torch.tensor([[[-0.25, 0.25]]]))


def test_entropy_hand_computed():
    # uniform over 4: H = log 4 = 1.38629
    # [0, ln 3] -> p = [1/4, 3/4]: H = -(0.25 ln 0.25 + 0.75 ln 0.75) = 0.34657 + 0.21576 = 0.56233
    # a -inf logit (p = 0) adds 0 · log 0 = 0: [0, ln 3, -inf, -inf] has the same 0.56233, and no NaN gradient
    logits = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [0.0, LN3, -math.inf, -math.inf]]], requires_grad=True)
    out = entropy_from_logits(logits)
    torch.testing.assert_close(out, torch.tensor([[1.38629, 0.56233]]), atol=1e-5, rtol=0)
    out.sum().backward()
    assert torch.isfinite(logits.grad).all()
    two = torch.tensor([[[0.0, LN3]]])
    torch.testing.assert_close(entropy_from_logits(two), torch.tensor([[0.56233]]), atol=1e-5, rtol=0)


def test_masked_mean_hand_computed():
    # x = [[1, 2], [3, 4]], mask = [[T, F], [T, T]]: all -> (1 + 3 + 4) / 3 = 2.6667; per row -> [1, 3.5]
    x = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    mask = torch.tensor([[True, False], [True, True]])
    torch.testing.assert_close(masked_mean(x, mask), torch.tensor(8 / 3))
    torch.testing.assert_close(masked_mean(x, mask, dim=1), torch.tensor([1.0, 3.5]))
    # nothing selected -> 0, not NaN; bool inputs (clip flags) give a fraction: 1 of 3 selected is True
    assert masked_mean(x, torch.zeros_like(mask)).item() == 0.0
    assert math.isclose(masked_mean(torch.tensor([[True, True], [False, False]]), mask).item(), 1 / 3, rel_tol=1e-6)


# ------------------------------------------------------------------------------------ fast vs reference, random
@pytest.mark.parametrize("chunk_size", [1, 3, 7, 1024])
@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_gather_matches_reference_values_and_gradients(chunk_size, temperature):
    logits, ids = _random_logits(chunk_size)
    fast_in = logits.clone().requires_grad_(True)
    ref_in = logits.clone().requires_grad_(True)
    out = gather_logprobs(fast_in, ids, temperature, chunk_size=chunk_size)
    expected = ref.ref_gather_logprobs(ref_in, ids, temperature)
    torch.testing.assert_close(out, expected)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    (g,) = torch.autograd.grad((out * w).sum(), fast_in)
    (g_ref,) = torch.autograd.grad((expected * w).sum(), ref_in)
    torch.testing.assert_close(g, g_ref)


def test_gather_gradcheck_float64():
    logits, ids = _random_logits(0, n=2, t=3, v=5, dtype=torch.float64)
    logits.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: gather_logprobs(x, ids, 0.8, chunk_size=2), (logits,))


def test_gather_non_contiguous_slice():
    # model logits (N, T+1, V) sliced [:, :-1] as a trainer does: not contiguous, must not matter
    logits, ids = _random_logits(2, t=6)
    sliced = logits[:, :-1]
    assert not sliced.is_contiguous()
    out = gather_logprobs(sliced, ids[:, :-1], chunk_size=4)
    torch.testing.assert_close(out, ref.ref_gather_logprobs(sliced, ids[:, :-1]))


def test_gather_bf16_logits_computed_in_fp32():
    logits, ids = _random_logits(3, v=257)
    bf16 = logits.to(torch.bfloat16).requires_grad_(True)
    out = gather_logprobs(bf16, ids, chunk_size=4)
    assert out.dtype == torch.float32
    # reference on the same (bf16-rounded) values in fp32: only fp32 rounding apart
    torch.testing.assert_close(out, ref.ref_gather_logprobs(bf16.detach().float(), ids), atol=1e-5, rtol=1e-5)
    # and within bf16 input rounding of the fp32 logits' answer
    torch.testing.assert_close(out, ref.ref_gather_logprobs(logits, ids), atol=0.1, rtol=0.02)
    out.sum().backward()
    assert bf16.grad.dtype == torch.bfloat16 and torch.isfinite(bf16.grad.float()).all()


def test_gather_no_grad_and_shapes():
    logits, ids = _random_logits(4)
    with torch.no_grad():
        out = gather_logprobs(logits.requires_grad_(True), ids)
    assert not out.requires_grad and out.shape == ids.shape
    assert gather_logprobs(torch.zeros(2, 0, 5), torch.zeros(2, 0, dtype=torch.long)).shape == (2, 0)
    with pytest.raises(ValueError):
        gather_logprobs(logits, ids, temperature=0.0)
    with pytest.raises(ValueError):
        gather_logprobs(logits, ids[:, :-1])


@pytest.mark.parametrize("chunk_size", [1, 4, 1024])
def test_entropy_matches_reference(chunk_size):
    logits, _ = _random_logits(chunk_size + 10)
    fast_in = logits.clone().requires_grad_(True)
    ref_in = logits.clone().requires_grad_(True)
    out = entropy_from_logits(fast_in, 0.9, chunk_size=chunk_size)
    expected = ref.ref_entropy(ref_in, 0.9)
    torch.testing.assert_close(out, expected)
    (g,) = torch.autograd.grad(out.sum(), fast_in)
    (g_ref,) = torch.autograd.grad(expected.sum(), ref_in)
    torch.testing.assert_close(g, g_ref)
    assert (out >= 0).all() and (out <= math.log(logits.shape[-1]) + 1e-5).all()


def test_entropy_bf16():
    logits, _ = _random_logits(5, v=257)
    out = entropy_from_logits(logits.to(torch.bfloat16), chunk_size=4)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref.ref_entropy(logits.to(torch.bfloat16).float()), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("seed", range(3))
def test_masked_mean_matches_reference(seed):
    b = ref.random_grouped_batch(seed)
    x = b["logps"]
    torch.testing.assert_close(masked_mean(x, b["mask"]), ref.ref_masked_mean(x, b["mask"]))
    torch.testing.assert_close(masked_mean(x, b["mask"], dim=1), ref.ref_masked_mean(x, b["mask"], dim=1))
