"""Per-token KL estimators between the policy and the frozen reference model.

What it is: Monte-Carlo estimators of ``KL(π_θ || π_ref)`` from the log-probs of the *sampled* tokens only
(Schulman, "Approximating KL Divergence", http://joschu.net/blog/kl-approx.html), chosen by name through
:data:`KL_ESTIMATORS`. With ``r = π_ref(y) / π_θ(y)`` and ``y ~ π_θ``:

- ``k1 = -log r = logps - ref_logps``: unbiased, high variance, negative on some tokens.
- ``k3 = (r - 1) - log r``: unbiased, lower variance and never negative; GRPO's choice (DeepSeekMath
  arXiv:2402.03300 eq. 4).

Placement: GRPO puts the KL in the loss, not in the reward: the trainer adds ``kl_coef * kl`` (β) to the per-token
policy loss and aggregates the sum with the same :func:`r1.algo.losses.aggregate_loss`. Gradients flow through
``logps`` only; ``ref_logps`` is detached.

Left out: k2 (``½ log² r``, biased), KL-in-reward (PPO-RLHF style), and the clamping of the log ratio some
frameworks add for stability (verl clamps k3 to [-10, 10]); the values here are the plain estimators.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from r1.registry import Registry

KLEstimator = Callable[[Tensor, Tensor], Tensor]
KL_ESTIMATORS: Registry[KLEstimator] = Registry("KL estimator")
"""Name -> ``fn(logps (N, T), ref_logps (N, T)) -> per-token KL estimate (N, T)``."""


@KL_ESTIMATORS.register("k1")
def _kl_k1(logps: Tensor, ref_logps: Tensor) -> Tensor:
    # Schulman k1 = log(π_θ/π_ref)
    return logps - ref_logps  # (N, T)


@KL_ESTIMATORS.register("k3")
def _kl_k3(logps: Tensor, ref_logps: Tensor) -> Tensor:
    # Schulman k3 = (r - 1) - log r, r = π_ref/π_θ; ≥ 0 because log r ≤ r - 1 (GRPO, arXiv:2402.03300 eq. 4)
    log_r = ref_logps - logps  # (N, T)
    return torch.exp(log_r) - log_r - 1.0  # (N, T)


def compute_kl(logps: Tensor, ref_logps: Tensor, estimator: str = "k3") -> Tensor:
    """Per-token estimate of ``KL(π_θ || π_ref)`` at the sampled tokens.

    Args:
        logps: (N, T) log π_θ of the sampled tokens (carries the gradient).
        ref_logps: (N, T) log π_ref of the same tokens (detached here).
        estimator: a name in :data:`KL_ESTIMATORS`: ``k1`` | ``k3`` (GRPO).

    Returns:
        (N, T) per-token KL estimates, unmasked: aggregate them with the completion mask. Pad positions must hold
        finite log-probs (as :func:`r1.algo.logprobs.gather_logprobs` gives), or their gradient is NaN.

    Example: ``logps = log 0.5, ref_logps = log 0.25`` -> ``log r = log 0.5 = -0.6931``;
    ``k1 = 0.6931``, ``k3 = 0.5 + 0.6931 - 1 = 0.1931``.
    """
    fn = KL_ESTIMATORS.get(estimator)
    return fn(logps, ref_logps.detach())
