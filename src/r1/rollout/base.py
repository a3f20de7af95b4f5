"""The rollout-engine contract: token ids in; token ids, per-token logprobs and a finish reason out.

Logprobs are those of the distribution the trainer optimises, ``log_softmax(logits / temperature)`` (``temperature
== 0``, greedy, reports ``log_softmax(logits)``), *before* top-k/top-p truncation — so with μ = 1 they serve as the
"old" logprobs and no extra forward pass is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch

from r1.registry import Registry


@dataclass
class SamplingParams:
    temperature: float = 1.0
    """0 = greedy."""
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 64
    stop: list[str] = field(default_factory=list)
    """Stop strings: a row finishes once its decoded completion contains one (kept in the output)."""


@dataclass
class Completion:
    token_ids: list[int]
    """Generated ids; an EOS that ended the row is included."""
    logprobs: torch.Tensor
    """(len(token_ids),) float32: log-prob of each generated token under softmax(logits / temperature)."""
    finish_reason: str
    """'stop' (EOS or a stop string) | 'length' (hit max_new_tokens)."""


class Engine(Protocol):
    def generate(
        self,
        prompt_ids: list[list[int]],
        n: int,
        sampling: SamplingParams,
        generator: torch.Generator | None = None,
    ) -> list[list[Completion]]:
        """``n`` completions for each prompt: ``result[i][j]`` is sample j of prompt i."""
        ...

    def update_weights(self, model) -> None:
        """Make the engine sample from ``model``'s current weights."""
        ...


ENGINES: Registry = Registry("rollout engine")
ENGINES.register("native", "r1.rollout.native:NativeEngine")
ENGINES.register("hf", "r1.rollout.hf:HFEngine")


def build_engine(name: str, model, tokenizer) -> Engine:
    return ENGINES.get(name)(model, tokenizer)
