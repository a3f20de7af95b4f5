"""Group-relative advantages: GRPO's critic-free baseline and its normalisation variants.

What it is: every prompt gets ``G`` sampled completions (a *group*). Each completion's scalar reward is compared with
its group's mean, so the group itself is the baseline (GRPO, DeepSeekMath arXiv:2402.03300 §4.1.2, outcome
supervision). The centred reward is then optionally scaled, chosen by name through :data:`ADV_NORMS`:

- ``group_std`` (GRPO): ``(r - mean_g) / (std_g + eps)``.
- ``batch_std`` (TRL ``scale_rewards="batch"`` after PPO-Lite, arXiv:2508.08221; REINFORCE++-baseline,
  arXiv:2501.03262): ``(r - mean_g) / (std_B + eps)``, one std over the whole batch of ``B*G`` rewards, so
  low-variance (near-solved or near-hopeless) groups are not blown up.
- ``none`` (Dr. GRPO, arXiv:2503.20783): ``r - mean_g``; the per-group std is a question-difficulty bias.

The std uses Bessel's correction (``torch.std``'s default, ``/(G-1)``), as TRL's ``GRPOTrainer`` does; DeepSeekMath
writes ``std`` without saying which. A group (or batch) of one sample has std 0 here instead of NaN.

Also :func:`group_zero_variance`, the test behind DAPO's dynamic sampling (arXiv:2503.14476 §3.2): a group whose
rewards all agree has zero advantage everywhere and so no policy gradient.

Left out: process supervision (per-step rewards), RLOO's leave-one-out baseline, and anything that needs a value
model (GAE). Rewards are one scalar per completion; per-token advantages are the caller's broadcast.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from r1.registry import Registry

AdvNorm = Callable[[Tensor, Tensor, float], Tensor]
ADV_NORMS: Registry[AdvNorm] = Registry("advantage norm")
"""Name -> ``fn(centred (B, G), rewards (B, G), eps) -> advantages (B, G)``."""


def _bessel_std(x: Tensor, dim: int | None = None) -> Tensor:
    """``torch.std`` (Bessel-corrected) that returns 0 rather than NaN for a single element."""
    n = x.numel() if dim is None else x.shape[dim]
    mean = x.mean() if dim is None else x.mean(dim=dim, keepdim=True)
    sq = (x - mean).pow(2)
    ssq = sq.sum() if dim is None else sq.sum(dim=dim, keepdim=True)
    # n - 1 with n = 1 would be 0/0; the sum of squares is 0 then, so any positive divisor gives std 0
    return (ssq / max(n - 1, 1)).sqrt()


@ADV_NORMS.register("group_std")
def _norm_group_std(centred: Tensor, rewards: Tensor, eps: float) -> Tensor:
    # GRPO: Â_i = (r_i - mean(r)) / std(r) within the group (arXiv:2402.03300 §4.1.2)
    return centred / (_bessel_std(rewards, dim=1) + eps)  # (B, G) / (B, 1)


@ADV_NORMS.register("batch_std")
def _norm_batch_std(centred: Tensor, rewards: Tensor, eps: float) -> Tensor:
    # TRL scale_rewards="batch": group-mean baseline, whole-batch std scale (PPO-Lite, arXiv:2508.08221)
    return centred / (_bessel_std(rewards) + eps)  # (B, G) / ()


@ADV_NORMS.register("none")
def _norm_none(centred: Tensor, rewards: Tensor, eps: float) -> Tensor:
    # Dr. GRPO: no std norm, it up-weights too-easy/too-hard questions (arXiv:2503.20783)
    return centred


def _grouped(rewards: Tensor, group_size: int) -> Tensor:
    if rewards.dim() != 1:
        raise ValueError(f"rewards must be 1-D (B*G,), got shape {tuple(rewards.shape)}")
    if group_size < 1 or rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    if not rewards.is_floating_point():
        rewards = rewards.float()
    return rewards.view(-1, group_size)  # (B, G): row b = prompt b's samples (group-major layout)


def compute_group_advantages(rewards: Tensor, group_size: int, norm: str = "group_std", eps: float = 1e-4) -> Tensor:
    """Group-relative advantages: each reward minus its group's mean, scaled as ``norm`` says.

    Args:
        rewards: (B*G,) one scalar per completion, group-major (prompt 0's G samples, then prompt 1's, ...).
        group_size: G, samples per prompt.
        norm: a name in :data:`ADV_NORMS`: ``group_std`` (GRPO) | ``batch_std`` | ``none`` (Dr. GRPO).
        eps: added to the std before dividing (ignored by ``none``).

    Returns:
        (B*G,) advantages, same layout and float dtype as ``rewards`` (integer rewards give float32).

    Example (G = 2, eps = 1e-4)::

        rewards = [1., 0.,   0., 0.]          # group 0: one right; group 1: both wrong
        mean_g  = [0.5,      0.  ]
        std_g   = [sqrt((0.25 + 0.25) / (2 - 1)) = 0.7071,  0.]
        group_std -> [ 0.7070, -0.7070,  0., 0.]   # 0.5 / 0.7072; group 1: 0 / (0 + eps) = 0 (eps = 0 would give NaN)
        none      -> [ 0.5,    -0.5,     0., 0.]
    """
    fn = ADV_NORMS.get(norm)  # look up first so a bad name fails before any shape error
    grouped = _grouped(rewards, group_size)  # (B, G)
    centred = grouped - grouped.mean(dim=1, keepdim=True)  # (B, G)
    return fn(centred, grouped, eps).reshape(-1)  # (B*G,)


def group_zero_variance(rewards: Tensor, group_size: int) -> Tensor:
    """Which groups have all-equal rewards (zero advantage, so no gradient): DAPO's dynamic-sampling filter.

    Args:
        rewards: (B*G,) group-major, as for :func:`compute_group_advantages`.
        group_size: G.

    Returns:
        (B,) bool, True where every reward in the group equals the others.

    Example: ``rewards = [1, 1, 0, 1], G = 2`` -> ``[True, False]``.
    """
    grouped = _grouped(rewards, group_size)  # (B, G)
    return grouped.amax(dim=1) == grouped.amin(dim=1)  # (B,)
