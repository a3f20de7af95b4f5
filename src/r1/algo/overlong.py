"""Overlong handling: what GRPO does with completions that hit the length limit (DAPO arXiv:2503.14476 §3.4).

A completion cut at ``max_new_tokens`` gets the reward of an unfinished answer, which punishes a sound but long
reasoning as if it were wrong. The variants, chosen by name through :data:`OVERLONG`:

- ``none``: truncated completions are trained on like any other.
- ``mask`` (DAPO overlong filtering): truncated completions are removed from the loss (their mask rows are 0).
- ``soft_penalty`` (DAPO overlong reward shaping, eq. 13): :func:`overlong_soft_penalty` is added to each
  completion's reward by its length (the trainer logs it as the ``overlong`` reward part).

Each entry is an :class:`Overlong`: a length penalty (or None) and whether truncated rows are masked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from r1.registry import Registry


def overlong_soft_penalty(length: int, max_len: int, buffer: int, penalty: float) -> float:
    """DAPO overlong reward shaping (arXiv:2503.14476 eq. 13): 0 up to ``max_len - buffer``, then a linear ramp to
    ``-penalty`` at ``max_len``.

    Example: ``max_len = 20, buffer = 4, penalty = 1``: length 16 -> 0, 17 -> -0.25, 20 (or more) -> -1.
    """
    start = max_len - buffer
    if length <= start:
        return 0.0
    return -penalty * min(1.0, (length - start) / max(buffer, 1))


@dataclass(frozen=True)
class Overlong:
    """One overlong variant: ``penalty(length, max_len, buffer, penalty) -> float`` shapes each completion's reward
    (None: no shaping and no ``overlong`` reward part); ``mask_truncated`` removes truncated completions from the
    loss."""

    penalty: Callable[[int, int, int, float], float] | None = None
    mask_truncated: bool = False


OVERLONG: Registry[Overlong] = Registry("overlong handling")
"""Name -> :class:`Overlong`."""
OVERLONG.register("none", Overlong())
OVERLONG.register("mask", Overlong(mask_truncated=True))
OVERLONG.register("soft_penalty", Overlong(penalty=overlong_soft_penalty))
