import math

import pytest
import torch

from r1.config import OptimConfig
from r1.train.optim import build_optimizer, clip_grad_norm


def test_fused_adamw_matches_the_per_tensor_loop():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.LayerNorm(32), torch.nn.Linear(32, 4))
    ref = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.LayerNorm(32), torch.nn.Linear(32, 4))
    ref.load_state_dict(model.state_dict())
    start = model[0].weight.detach().clone()
    cfg = OptimConfig(lr=1e-2, weight_decay=0.1)
    fast = build_optimizer(model, cfg)
    assert fast.defaults["fused"]
    decay = [p for p in ref.parameters() if p.ndim >= 2]
    no_decay = [p for p in ref.parameters() if p.ndim < 2]
    slow = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=1e-2,
        betas=tuple(cfg.betas),
        eps=cfg.eps,
        foreach=False,
    )
    for _ in range(5):
        x = torch.randn(8, 16)
        for m, opt in ((model, fast), (ref, slow)):
            opt.zero_grad()
            m(x).pow(2).mean().backward()
            opt.step()
    for a, b in zip(model.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert (model[0].weight - start).abs().max() > 1e-3  # it did train


@pytest.mark.parametrize("kernels", [True, False])
@pytest.mark.parametrize("max_norm", [0.5, 1e6, 0.0, math.inf])
def test_clip_grad_norm_is_torchs(monkeypatch, kernels, max_norm):
    """r1's clip (one pass of r1's kernel over every gradient; no multiplication unless it clips) = torch's
    ``clip_grad_norm_``: the same norm and gradients, clipping or not; with the kernels off, torch's norm."""
    from r1.models import kernels as kernels_module

    monkeypatch.setattr(kernels_module, "USE_KERNELS", kernels)
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(*s)) for s in ((70000,), (300, 257), (3,), (1,))]
    params.append(torch.nn.Parameter(torch.randn(4)))  # no gradient: left out, as torch does
    for p in params[:-1]:
        p.grad = torch.randn_like(p) * 0.01
    ref = [p.grad.clone() for p in params[:-1]]
    before = [g.clone() for g in ref]
    torch_max = max_norm if max_norm > 0 else math.inf
    ref_params = [torch.nn.Parameter(torch.zeros_like(g)) for g in ref]
    for p, g in zip(ref_params, ref):
        p.grad = g
    expected = torch.nn.utils.clip_grad_norm_(ref_params, torch_max)
    norm = clip_grad_norm(params, max_norm)
    torch.testing.assert_close(norm, expected, rtol=1e-5, atol=0)
    assert 0.5 < float(expected) < 1e6  # precondition: 0.5 clips, the others do not
    changed = any(not torch.equal(p.grad, g) for p, g in zip(params[:-1], before))
    assert changed == (max_norm == 0.5)
    for p, r in zip(params[:-1], ref_params):
        torch.testing.assert_close(p.grad, r.grad, rtol=1e-5, atol=1e-8)
    assert params[-1].grad is None
