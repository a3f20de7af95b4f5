"""The trainer's forward: the logits the GRPO losses need, from whichever pass fits, behind one object.

A trainer needs, for some rows of a rollout batch (prompt + completion token ids), the logits that predict each
completion token: of the policy (the train pass, differentiable) and of the frozen reference (the KL term). Three
passes compute them, equal up to float rounding, and ``PolicyForward`` picks one per call:

1. **the replay** (``r1.models.replay``): when the rollout recorded its own forward (``Engine.generate(...,
   record=True)``, kept on the batch as ``record`` / ``record_rows``) and the policy is unchanged since, the train
   pass is the backward of that forward alone;
2. **the lean forward** (``r1.models.fast.FastLM.train_logits``), for the Llama-family models it covers: each distinct
   prompt runs once for its group's G completions, and no logits are computed at prompt positions;
3. **the ``transformers`` forward**, for every other model, and the reference the other two are tested against
   (``tests/train/test_grpo.py``): rows are prompt + completion, right-padded.

The trainer never sees which one ran. It asks for logprobs (and entropies): ``policy_logprobs`` /
``reference_logprobs`` take each pass's final hidden states and run the output head, log-softmax, gather and
entropy a block of positions at a time (``r1.algo.logprobs.head_logprobs``), so the ``(rows, tokens, vocabulary)``
logits never exist whole, in the forward or the backward. ``policy_logits`` / ``reference_logits`` give the full
logits: the plain path, kept as the fused one's reference (``fused_head = False`` makes the logprob methods use it).

With LoRA adapters (``r1.models.lora``), the policy is the ``transformers`` model with peft's layers inside it and
the reference is that same model with its adapters off (``reference_context``: peft's ``disable_adapter``), so the
base weights exist once. The lean forward reads each adapted layer as ``W + scaling·B·A`` (exact, and
differentiable in ``A`` and ``B``), except in a train pass with LoRA dropout, which takes the ``transformers``
forward; the replay is not used (its hand-written backward yields the gradient of the whole weights, not of the
adapters: the trainer does not record a LoRA policy's rollout).

Left out: deciding *whether* to record a rollout (the trainer's call: only the step's algorithm knows that the train
pass will differentiate the policy that sampled) and micro-batching.
"""

from __future__ import annotations

import torch
from torch import Tensor

from r1.algo.logprobs import KnownLogprobs, entropy_from_logits, gather_logprobs, head_logprobs
from r1.data.batching import right_pad
from contextlib import nullcontext
from typing import Callable, ContextManager

from r1.models.fast import SUPPORTED_MODEL_TYPES, FastLM, unsupported_reason
from r1.models.lora import lora_reason
from r1.models.replay import replay_hidden, replay_logits

HEAD_MODEL_TYPES = (*SUPPORTED_MODEL_TYPES, "gpt2", "gpt_neox")
"""Model types whose ``transformers`` logits are exactly ``lm_head(last_hidden_state)`` (no soft-capping or logit
scale), so their plain forward can hand the fused head its hidden states; other models' logits are computed whole."""


def lean_forward(model, training: bool = False) -> FastLM | None:
    """``model``'s lean forward where ``r1.models.fast`` covers it (in a ``training`` pass: also no LoRA dropout),
    else None (the ``transformers`` forward runs)."""
    if model is None or unsupported_reason(model) is not None:
        return None
    if training and lora_reason(model, training=True) is not None:
        return None
    return FastLM(model)


class PolicyForward:
    """Logits of the policy and of the reference model at the positions that predict completion tokens.

    ``PolicyForward(policy, reference, pad_id, device)``: ``reference`` may be None (no KL term), or the policy
    itself with ``reference_context`` entered around each reference pass (a LoRA policy's ``disable_adapter``: the
    reference is its base). A *batch* is any
    object with ``prompt_ids`` and ``completion_ids`` (ragged lists of token ids, one per row) and ``record`` /
    ``record_rows`` (the rollout's forward record and each row's row in it, or None): ``r1.train.grpo.Rollouts``.
    """

    def __init__(self, policy, reference=None, pad_id: int = 0, device: torch.device | str = "cpu",
                 reference_context: Callable[[], ContextManager] | None = None):
        self.policy, self.reference = policy, reference
        self.pad_id, self.device = pad_id, torch.device(device)
        self.reference_context = reference_context or nullcontext
        self.lean_policy = lean_forward(policy, training=True)
        self.lean_reference = lean_forward(reference)
        self.use_lean = True  # False: the transformers forward (or the replay), the lean forward's reference
        self.fused_head = True  # False: logprobs from the full logits (policy_logits), the fused head's reference
        self._into = False

    @property
    def grads_into_params(self) -> bool:
        """The policy's output head and embedding add their weight gradients straight into ``.grad`` in the
        backward (``r1.algo.logprobs.param_grad``), as a trainer's ``.backward()`` would: at a large vocabulary one or
        two (vocabulary, hidden) tensors less at the backward's peak. Off by default (``torch.autograd.grad``
        needs the gradients returned); the trainers turn it on."""
        return self._into

    @grads_into_params.setter
    def grads_into_params(self, on: bool) -> None:
        self._into = bool(on)
        if self.lean_policy is not None:
            self.lean_policy.grads_into_params = self._into

    def policy_logits(self, batch, rows: list[int], comp_len: int) -> torch.Tensor:
        """(n, comp_len, V) logits of the policy for ``rows`` of ``batch``, differentiable with respect to its
        parameters: the replay of the rollout's record when it holds the policy's current forward, else a forward."""
        record = batch.record
        if record is not None and record.usable(self.policy, comp_len):  # backward only: the rollout ran the forward
            return replay_logits(record, [batch.record_rows[i] for i in rows], comp_len)
        return self._forward(self.policy, self.lean_policy, batch, rows, comp_len)

    def reference_logits(self, batch, rows: list[int], comp_len: int) -> torch.Tensor:
        """(n, comp_len, V) logits of the reference model for ``rows`` of ``batch``."""
        with self.reference_context():
            return self._forward(self.reference, self.lean_reference, batch, rows, comp_len)

    def policy_logprobs(
        self, batch, rows: list[int], comp_len: int, token_ids: Tensor, temperature: float,
        chunk_size: int | None = None, known: KnownLogprobs | None = None,
    ) -> tuple[Tensor, Tensor]:
        """(n, comp_len) logprobs of ``token_ids`` and entropies under the policy's ``softmax(logits / temperature)``
        for ``rows``, differentiable with respect to its parameters; 0 beyond each row's completion. The head runs
        block by block over the pass's hidden states (the replay's, when the rollout's record holds the policy).
        ``known``: the logprobs' values, known already (the sampler's, at μ = 1): the head's forward then runs no
        product (``r1.algo.logprobs.KnownLogprobs``; the logits path ignores it)."""
        if not self.fused_head:
            return self._from_logits(self.policy_logits(batch, rows, comp_len), batch, rows, token_ids, temperature)
        record = batch.record
        if record is not None and record.usable(self.policy, comp_len):
            rec_rows = [batch.record_rows[i] for i in rows]
            hidden = replay_hidden(record, rec_rows, comp_len, self._into)  # (n, comp_len, E)
            head = self.policy.lm_head
            return self._head(hidden, head.weight, head.bias, batch, rows, token_ids, temperature, chunk_size, known)
        args = (batch, rows, comp_len, token_ids, temperature, chunk_size, known)
        return self._logprobs(self.policy, self.lean_policy, *args)

    def reference_logprobs(
        self, batch, rows: list[int], comp_len: int, token_ids: Tensor, temperature: float, chunk_size: int | None = None
    ) -> Tensor:
        """(n, comp_len) logprobs of ``token_ids`` under the reference model, as ``policy_logprobs``."""
        if not self.fused_head:
            logits = self.reference_logits(batch, rows, comp_len)
            return self._from_logits(logits, batch, rows, token_ids, temperature)[0]
        args = (batch, rows, comp_len, token_ids, temperature, chunk_size)
        with self.reference_context():
            return self._logprobs(self.reference, self.lean_reference, *args)[0]

    def _logprobs(self, model, lean, batch, rows, comp_len, token_ids, temperature, chunk_size, known=None):
        if lean is not None and self.use_lean:
            distinct: dict[tuple[int, ...], int] = {}
            group = [distinct.setdefault(tuple(batch.prompt_ids[i]), len(distinct)) for i in rows]
            hidden, w, b = lean.train_hidden(
                [list(p) for p in distinct], group, [batch.completion_ids[i] for i in rows], self.pad_id
            )  # (n, longest completion, E)
            return self._head(hidden[:, :comp_len], w, b, batch, rows, token_ids, temperature, chunk_size, known)
        head = model.get_output_embeddings()
        backbone = getattr(model, getattr(model, "base_model_prefix", ""), None)
        if getattr(model.config, "model_type", None) not in HEAD_MODEL_TYPES or backbone is None or not isinstance(
            head, torch.nn.Linear
        ):
            logits = self._forward(model, lean, batch, rows, comp_len)
            return self._from_logits(logits, batch, rows, token_ids, temperature)
        hidden = self._positions(backbone, batch, rows, comp_len, lambda out: out.last_hidden_state)  # (n, comp_len, E)
        return self._head(hidden, head.weight, head.bias, batch, rows, token_ids, temperature, chunk_size, known)

    def _real(self, batch, rows: list[int], comp_len: int) -> Tensor:
        """(n, comp_len) bool: the positions of each row's completion tokens (the rest is padding)."""
        lengths = torch.tensor([len(batch.completion_ids[i]) for i in rows], device=self.device)
        return torch.arange(comp_len, device=self.device)[None, :] < lengths[:, None]

    def _head(self, hidden, weight, bias, batch, rows, token_ids, temperature, chunk_size, known=None):
        mask = self._real(batch, rows, hidden.shape[1])
        into = self._into and weight.requires_grad  # the reference's frozen head has no gradient to take
        return head_logprobs(hidden, weight, token_ids, temperature, bias, mask, chunk_size, known, into)

    def _from_logits(self, logits, batch, rows, token_ids, temperature) -> tuple[Tensor, Tensor]:
        """The plain path: logprobs and entropies from the full (n, comp_len, V) logits, 0 at padding."""
        logits = logits.float()
        mask = self._real(batch, rows, logits.shape[1])
        logps = gather_logprobs(logits, token_ids, temperature)
        with torch.no_grad():  # the entropy is a metric on this path (the fused one differentiates it too)
            entropy = entropy_from_logits(logits, temperature)
        return logps * mask, entropy * mask

    def _forward(self, model, lean: FastLM | None, batch, rows: list[int], comp_len: int) -> torch.Tensor:
        """Logits at the positions that predict each row's completion tokens: (n, comp_len, V).

        Through ``lean``: each distinct prompt once for all its rows (the group's G completions attend to one prompt
        pass). Otherwise rows are prompt + completion, right-padded, through the ``transformers`` forward; row i's
        completion token t is predicted at position ``len(prompt_i) - 1 + t``.
        """
        if lean is not None and self.use_lean:
            distinct: dict[tuple[int, ...], int] = {}
            group = [distinct.setdefault(tuple(batch.prompt_ids[i]), len(distinct)) for i in rows]
            logits = lean.train_logits(
                [list(p) for p in distinct], group, [batch.completion_ids[i] for i in rows], self.pad_id
            )  # (n, longest completion, V)
            return logits[:, :comp_len]
        return self._positions(model, batch, rows, comp_len, lambda out: out.logits)

    def _positions(self, module, batch, rows: list[int], comp_len: int, read) -> torch.Tensor:
        """``read(module(...))`` (n, L, F) at the positions that predict each row's completion: (n, comp_len, F).
        Rows are prompt + completion, right-padded; row i's completion token t is predicted at position
        ``len(prompt_i) - 1 + t``."""
        seqs = [batch.prompt_ids[i] + batch.completion_ids[i] for i in rows]
        input_ids = right_pad(seqs, self.pad_id, torch.long).to(self.device)  # (n, L)
        attn = right_pad([[1] * len(s) for s in seqs], 0, torch.long).to(self.device)  # (n, L)
        out = read(module(input_ids=input_ids, attention_mask=attn, use_cache=False))  # (n, L, F)
        starts = torch.tensor([len(batch.prompt_ids[i]) - 1 for i in rows], device=self.device)  # (n,)
        pos = (starts[:, None] + torch.arange(comp_len, device=self.device)[None, :]).clamp(max=out.shape[1] - 1)
        return out.gather(1, pos[:, :, None].expand(-1, -1, out.shape[-1]))  # (n, comp_len, F)


__all__ = ["PolicyForward", "lean_forward"]
