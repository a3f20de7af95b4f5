"""The rollout-engine contract: token ids in; token ids, per-token logprobs and a finish reason out.

Logprobs are those of the distribution the trainer optimises, ``log_softmax(logits / temperature)`` (``temperature
== 0``, greedy, reports ``log_softmax(logits)``), *before* top-k/top-p truncation — so with μ = 1 they serve as the
"old" logprobs and no extra forward pass is needed.

An engine may also keep the forward it sampled with (``generate(..., record=True)``, then ``last_record``), so the
trainer can run the backward of that very forward (``r1.models.policy``); an engine that cannot leaves
``last_record`` None. Also here: what every engine needs of a tokenizer (stop strings, EOS and pad ids).
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
    last_record: object | None
    """The forward record of the last ``generate(..., record=True)`` (an ``r1.models.replay.ForwardRecord``, row
    i·n + j for sample j of prompt i), or None: not asked for, or not possible with this engine or model."""
    own_logprobs: bool
    """Are the completions' logprobs ``log_softmax(logits / τ)`` of the very model the engine holds (``model``), in
    its own forward, so that a trainer may take them as that model's values while its weights are unchanged? True for
    the native engine; an engine with a copy or another forward says False (or leaves it out)."""

    def generate(
        self,
        prompt_ids: list[list[int]],
        n: int,
        sampling: SamplingParams,
        generator: torch.Generator | None = None,
        record: bool = False,
    ) -> list[list[Completion]]:
        """``n`` completions for each prompt: ``result[i][j]`` is sample j of prompt i. ``record``: keep the
        sampling forward's activations in ``last_record`` where the engine can."""
        ...

    def update_weights(self, model) -> None:
        """Make the engine sample from ``model``'s current weights."""
        ...


class StopStrings:
    """Detect stop strings by decoding only a short tail of each completion.

    A completion stops at the token that makes its decoded text contain a stop string. Checked after every token,
    the string must end inside the newest token, so decoding the last ``window`` tokens is enough: a string of L
    UTF-8 bytes spans at most L tokens (a token decodes to at least one byte), plus up to 3 for a character split
    across tokens, 1 for a tokenizer that strips a leading space from the first decoded token, and slack for a few
    special tokens (they decode to nothing: the text is decoded with ``skip_special_tokens=True``, as graders see it).
    """

    def __init__(self, tokenizer, stops: list[str]):
        self.tokenizer = tokenizer
        self.stops = list(dict.fromkeys(s for s in stops if s))
        self.window = max((len(s.encode("utf-8")) for s in self.stops), default=0) + 8
        self._table: torch.Tensor | None = None  # (V,) bool, built on first use

    def __bool__(self) -> bool:
        return bool(self.stops)

    def may_complete(self, tokens: torch.Tensor) -> torch.Tensor:
        """(R,) host token ids → (R,) bool: could this newest token complete a stop string? Conservative.

        The token that completes a string adds its last character, so its own text contains that character, or,
        for a non-ASCII last character, it holds part of a character split across tokens (U+FFFD when decoded
        alone; ASCII never splits). Only rows that pass are decoded, so a stop like ``</answer>`` costs a decode
        on few steps. Stop strings ending in whitespace (which some tokenizers strip from a lone token) turn the
        filter off.
        """
        if self._table is None:
            last_chars = {s[-1] for s in self.stops}
            if any(c.isspace() for c in last_chars):
                self._table = torch.ones(0, dtype=torch.bool)
            else:
                vocab = [[i] for i in range(len(self.tokenizer))]
                pieces = self.tokenizer.batch_decode(vocab, skip_special_tokens=True)
                split = not all(c.isascii() for c in last_chars)
                table = [(split and "\ufffd" in p) or any(c in p for c in last_chars) for p in pieces]
                self._table = torch.tensor(table, dtype=torch.bool)
        if len(self._table) == 0:
            return torch.ones_like(tokens, dtype=torch.bool)
        unknown = tokens >= len(self._table)  # ids past the tokenizer's vocab (padded embeddings): always check
        return unknown | self._table[tokens.clamp_max(len(self._table) - 1)]

    def hits(self, tails: list[list[int]]) -> list[bool]:
        """For each tail (the last ``window`` completion tokens of a row): does its text contain a stop string?"""
        texts = self.tokenizer.batch_decode(tails, skip_special_tokens=True)
        return [any(s in text for s in self.stops) for text in texts]

    def first_stop(self, completion: list[int]) -> int | None:
        """Index of the token that first completes a stop string in ``completion`` (None = none does)."""
        text = self.tokenizer.decode(completion, skip_special_tokens=True)
        if not any(s in text for s in self.stops):
            return None  # the common case costs one decode
        for t in range(len(completion)):
            if self.hits([completion[max(0, t + 1 - self.window) : t + 1]])[0]:
                return t
        return None  # unreachable for tokenizers whose decode is a concatenation; kept for safety


def eos_token_ids(model, tokenizer) -> list[int]:
    """Every id that ends a row: the tokenizer's EOS plus the model's generation_config EOS (an int or a list)."""
    ids = []
    for source in (getattr(getattr(model, "generation_config", None), "eos_token_id", None), tokenizer.eos_token_id):
        if source is None:
            continue
        for i in source if isinstance(source, (list, tuple)) else [source]:
            if i not in ids:
                ids.append(int(i))
    return ids


def pad_token_id(tokenizer) -> int:
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ValueError("the tokenizer has neither a pad nor an EOS token id")
    return pad


ENGINES: Registry = Registry("rollout engine")
ENGINES.register("native", "r1.rollout.native:NativeEngine")
ENGINES.register("hf", "r1.rollout.hf:HFEngine")


def build_engine(name: str, model, tokenizer) -> Engine:
    return ENGINES.get(name)(model, tokenizer)
