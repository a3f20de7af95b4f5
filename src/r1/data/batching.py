"""Ragged token rows → padded tensors: prompts left-padded (for sampling and shared-prompt passes), anything else
right-padded. Used by the rollout engines, the lean forward (``r1.models.fast``) and the trainers."""

from __future__ import annotations

import torch


def left_pad(prompt_ids: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, P) left-padded ids and (B, P) int64 attention mask (1 = real token); P = longest prompt."""
    if any(len(p) == 0 for p in prompt_ids):
        raise ValueError("empty prompt: every prompt needs at least one token (e.g. a BOS)")
    width = max(len(p) for p in prompt_ids)
    ids = torch.full((len(prompt_ids), width), pad_id, dtype=torch.long)  # (B, P)
    mask = torch.zeros((len(prompt_ids), width), dtype=torch.long)  # (B, P)
    for i, p in enumerate(prompt_ids):
        ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
        mask[i, width - len(p) :] = 1
    return ids, mask


def right_pad(rows: list[list[int]] | list[torch.Tensor], value, dtype) -> torch.Tensor:
    """(B, T) rows of ``dtype``, padded on the right with ``value``; T = the longest row (at least 1)."""
    width = max((len(r) for r in rows), default=0)
    out = torch.full((len(rows), max(width, 1)), value, dtype=dtype)
    for i, r in enumerate(rows):
        if len(r):
            out[i, : len(r)] = torch.as_tensor(r, dtype=dtype)
    return out


__all__ = ["left_pad", "right_pad"]
