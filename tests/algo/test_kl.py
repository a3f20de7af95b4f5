"""KL estimators k1 / k3. Run: ``pytest tests/algo/test_kl.py -q``."""

import math

import pytest
import torch

from r1.algo import KL_ESTIMATORS, compute_kl
from r1.errors import R1Error

from reference import algo_ref as ref


def test_hand_computed():
    # column 0: π_θ = 0.5, π_ref = 0.25 -> log r = log(π_ref/π_θ) = log 0.5 = -0.69315
    #   k1 = -log r = 0.69315;  k3 = r - 1 - log r = 0.5 - 1 + 0.69315 = 0.19315
    # column 1: π_θ = 0.25, π_ref = 0.5 -> log r = log 2 = 0.69315
    #   k1 = -0.69315 (k1 can be negative);  k3 = 2 - 1 - 0.69315 = 0.30685
    logps = torch.log(torch.tensor([[0.5, 0.25]]))
    ref_logps = torch.log(torch.tensor([[0.25, 0.5]]))
    torch.testing.assert_close(compute_kl(logps, ref_logps, "k1"), torch.tensor([[0.69315, -0.69315]]))
    torch.testing.assert_close(compute_kl(logps, ref_logps, "k3"), torch.tensor([[0.19315, 0.30685]]))
    torch.testing.assert_close(compute_kl(logps, ref_logps), compute_kl(logps, ref_logps, "k3"))  # default = k3


@pytest.mark.parametrize("estimator", ["k1", "k3"])
@pytest.mark.parametrize("seed", range(3))
def test_matches_reference_values_and_gradients(estimator, seed):
    b = ref.random_grouped_batch(seed)
    fast_in = b["logps"].clone().requires_grad_(True)
    ref_in = b["logps"].clone().requires_grad_(True)
    kl = compute_kl(fast_in, b["ref_logps"], estimator)
    kl_ref = ref.ref_kl(ref_in, b["ref_logps"], estimator)
    torch.testing.assert_close(kl, kl_ref)
    w = torch.rand(kl.shape, generator=torch.Generator().manual_seed(seed)) * b["mask"]
    (g,) = torch.autograd.grad((kl * w).sum(), fast_in)
    (g_ref,) = torch.autograd.grad((kl_ref * w).sum(), ref_in)
    torch.testing.assert_close(g, g_ref)


def test_k3_non_negative_and_zero_when_equal():
    b = ref.random_grouped_batch(0, num_prompts=8, max_len=16)
    assert (compute_kl(b["logps"], b["ref_logps"], "k3") >= 0).all()
    assert torch.equal(compute_kl(b["logps"], b["logps"], "k3"), torch.zeros_like(b["logps"]))
    assert torch.equal(compute_kl(b["logps"], b["logps"], "k1"), torch.zeros_like(b["logps"]))


def test_ref_logps_get_no_gradient():
    logps = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    ref_logps = torch.tensor([[-1.5, -0.5]], requires_grad=True)
    compute_kl(logps, ref_logps).sum().backward()
    assert ref_logps.grad is None and logps.grad is not None
    # d k3 / d logp = d/dlogp [e^(ref - logp) - (ref - logp) - 1] = 1 - e^(ref - logp)
    torch.testing.assert_close(logps.grad, 1 - torch.exp(ref_logps.detach() - logps.detach()))


def test_both_estimators_unbiased_monte_carlo():
    # E_{y~π}[k] = KL(π || π_ref) for k1 and k3; a 5-token vocabulary, 200k samples
    g = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(5, generator=g), 0)
    q = torch.softmax(torch.randn(5, generator=g), 0)
    exact = (p * (p / q).log()).sum().item()
    y = torch.multinomial(p, 200_000, replacement=True, generator=g)
    logps, ref_logps = p.log()[y][None], q.log()[y][None]  # (1, S)
    for name in KL_ESTIMATORS.names():
        assert math.isclose(compute_kl(logps, ref_logps, name).mean().item(), exact, abs_tol=0.02), name


def test_unknown_estimator_lists_valid_ones():
    with pytest.raises(R1Error) as e:
        compute_kl(torch.zeros(1, 1), torch.zeros(1, 1), "k2")
    assert "k1" in str(e.value) and "k3" in str(e.value)
