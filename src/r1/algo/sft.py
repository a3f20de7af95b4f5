"""SFT loss: next-token cross-entropy averaged over the target tokens of a batch (token mean).

Left out: per-sequence averaging and label smoothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sft_loss(logits: torch.Tensor, input_ids: torch.Tensor, loss_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy of predicting ``input_ids[:, t]`` from position ``t-1`` where ``loss_mask[:, t]``.

    Args:
        logits: (B, L, V) model outputs.
        input_ids: (B, L) token ids.
        loss_mask: (B, L) bool; True marks tokens that are targets (e.g. completion tokens only).
    Returns:
        (loss scalar, number of target tokens). A batch with no target token gives loss 0.

    Example: B=1, L=3, mask=[F, T, T] → mean of -log p(x1 | x0) and -log p(x2 | x0, x1).
    """
    targets = input_ids[:, 1:]  # (B, L-1)
    mask = loss_mask[:, 1:]  # (B, L-1): position t predicts token t+1
    nll = F.cross_entropy(logits[:, :-1].flatten(0, 1), targets.flatten(), reduction="none")  # (B*(L-1),)
    nll = nll.view_as(targets)
    n = mask.sum()
    return (nll * mask).sum() / n.clamp(min=1), n
