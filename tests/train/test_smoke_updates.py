"""``configs/grpo/smoke.yaml`` takes real GRPO updates: its groups' rewards vary on the random-init model, so the
advantages and the gradient are not zero (with accuracy and format alone every group had zero variance: loss 0,
grad norm ~1e-8).

Run: ``python -m pytest tests/train/test_smoke_updates.py -q``   (the shipped smoke run, 4 steps; a few seconds)
"""

from pathlib import Path

from r1.config import GRPOConfig, load_config
from r1.train.grpo import train_grpo
from r1.train.metrics import read_metrics

REPO = Path(__file__).resolve().parents[2]


def test_smoke_config_takes_real_gradient_steps(tmp_path):
    cfg = load_config(GRPOConfig, REPO / "configs" / "grpo" / "smoke.yaml",
                      [f"run.out_dir={tmp_path}", "run.progress=false", "run.threads=1"])
    train_grpo(cfg)
    rows = read_metrics(tmp_path / cfg.run.name)
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    for r in rows:
        assert r["groups/zero_variance_share"] < 1.0, r  # some group's rewards differ ...
        assert r["advantage/abs_mean"] > 0.05, r  # ... so advantages are not all zero ...
        assert r["grad_norm"] > 1e-2, r  # ... and the step has a gradient (it was ~1e-8)
    assert sum(r["reward/format_tags"] for r in rows) > 0 and all(r["accuracy"] == 0.0 for r in rows)
