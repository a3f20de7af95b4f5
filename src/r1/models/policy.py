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

The trainer never sees which one ran. Left out: deciding *whether* to record a rollout (the trainer's call: only the
step's algorithm knows that the train pass will differentiate the policy that sampled) and micro-batching.
"""

from __future__ import annotations

import torch

from r1.data.batching import right_pad
from r1.models.fast import FastLM, unsupported_reason
from r1.models.replay import replay_logits


def lean_forward(model) -> FastLM | None:
    """``model``'s lean forward where ``r1.models.fast`` covers it, else None (the ``transformers`` forward runs)."""
    if model is None or unsupported_reason(model) is not None:
        return None
    return FastLM(model)


class PolicyForward:
    """Logits of the policy and of the reference model at the positions that predict completion tokens.

    ``PolicyForward(policy, reference, pad_id, device)``: ``reference`` may be None (no KL term). A *batch* is any
    object with ``prompt_ids`` and ``completion_ids`` (ragged lists of token ids, one per row) and ``record`` /
    ``record_rows`` (the rollout's forward record and each row's row in it, or None): ``r1.train.grpo.Rollouts``.
    """

    def __init__(self, policy, reference=None, pad_id: int = 0, device: torch.device | str = "cpu"):
        self.policy, self.reference = policy, reference
        self.pad_id, self.device = pad_id, torch.device(device)
        self.lean_policy = lean_forward(policy)
        self.lean_reference = lean_forward(reference)
        self.use_lean = True  # False: the transformers forward (or the replay), the lean forward's reference

    def policy_logits(self, batch, rows: list[int], comp_len: int) -> torch.Tensor:
        """(n, comp_len, V) logits of the policy for ``rows`` of ``batch``, differentiable with respect to its
        parameters: the replay of the rollout's record when it holds the policy's current forward, else a forward."""
        record = batch.record
        if record is not None and record.usable(self.policy, comp_len):  # backward only: the rollout ran the forward
            return replay_logits(record, [batch.record_rows[i] for i in rows], comp_len)
        return self._forward(self.policy, self.lean_policy, batch, rows, comp_len)

    def reference_logits(self, batch, rows: list[int], comp_len: int) -> torch.Tensor:
        """(n, comp_len, V) logits of the reference model for ``rows`` of ``batch``."""
        return self._forward(self.reference, self.lean_reference, batch, rows, comp_len)

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
        seqs = [batch.prompt_ids[i] + batch.completion_ids[i] for i in rows]
        input_ids = right_pad(seqs, self.pad_id, torch.long).to(self.device)  # (n, L)
        attn = right_pad([[1] * len(s) for s in seqs], 0, torch.long).to(self.device)  # (n, L)
        logits = model(input_ids=input_ids, attention_mask=attn, use_cache=False).logits  # (n, L, V)
        starts = torch.tensor([len(batch.prompt_ids[i]) - 1 for i in rows], device=self.device)  # (n,)
        pos = (starts[:, None] + torch.arange(comp_len, device=self.device)[None, :]).clamp(max=logits.shape[1] - 1)
        return logits.gather(1, pos[:, :, None].expand(-1, -1, logits.shape[-1]))  # (n, comp_len, V)


__all__ = ["PolicyForward", "lean_forward"]
