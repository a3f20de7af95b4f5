import torch

from r1.config import OptimConfig
from r1.train.optim import build_optimizer


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
