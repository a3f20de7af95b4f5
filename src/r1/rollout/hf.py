"""The reference rollout engine: Hugging Face ``model.generate``.

Variant: one ``generate`` call per batch (left-padded prompts, ``num_return_sequences = n``; greedy, which HF
allows only one sequence per input, repeats each prompt n times instead), sampling with HF's
temperature → top-k → top-p warpers, or greedy at temperature 0. Logprobs come from the raw logits HF returns
(``output_logits=True``): ``log_softmax(logits / temperature)`` (greedy: ``log_softmax(logits)``) at the chosen
tokens, i.e. the untruncated distribution, as ``r1.rollout.base`` requires.

Stop strings use the same definition as the native engine (``r1.rollout.base.StopStrings``: the decoded
completion contains the string, and the row ends at the token that completed it), as an HF ``StoppingCriteria``
so rows stop early, then re-applied to the outputs to cut each row exactly there. (HF's own ``stop_strings`` also
match across the prompt boundary, which would make the two engines disagree.)

Left out: forward records (``record=True`` leaves ``last_record`` None: ``model.generate`` keeps no activations);
the ``generator`` argument. ``generate`` draws from torch's global RNG, so seed it with
``torch.manual_seed`` for reproducible samples. Model-config extras (repetition penalty, n-gram blocking, min
length, typical-p, ε/η cutoffs) are pinned to neutral values so both engines sample the same distribution.
"""

from __future__ import annotations

import torch

from r1.data.batching import left_pad
from r1.rollout.base import Completion, SamplingParams, StopStrings, eos_token_ids, pad_token_id


def _stop_string_criteria(stops: StopStrings, prompt_len: int):
    from transformers import StoppingCriteria

    class _Criteria(StoppingCriteria):
        def __call__(self, input_ids: torch.Tensor, scores, **kwargs) -> torch.Tensor:
            completion = input_ids[:, prompt_len:]  # (B*G, t)
            tails = completion[:, -stops.window :].tolist()
            return torch.tensor(stops.hits(tails), dtype=torch.bool, device=input_ids.device)  # (B*G,)

    return _Criteria()


class HFEngine:
    """``model.generate`` behind the engine protocol. ``HFEngine(model, tokenizer)``; ``generator`` is ignored."""

    def __init__(self, model, tokenizer):
        self.model = model
        self.tokenizer = tokenizer
        self.last_record = None  # this engine keeps no forward record
        self.own_logprobs = False  # its logprobs come from `generate`'s scores: not taken as the trainer's values

    def update_weights(self, model) -> None:
        """The trainer passes the very object it optimises: keep the reference, no copy."""
        self.model = model

    @torch.inference_mode()
    def generate(
        self,
        prompt_ids: list[list[int]],
        n: int,
        sampling: SamplingParams,
        generator: torch.Generator | None = None,
        record: bool = False,
    ) -> list[list[Completion]]:
        """``n`` completions per prompt: ``result[i][j]`` is sample j of prompt i. Uses the global RNG; ``record``
        is accepted and ignored (``last_record`` stays None)."""
        from transformers import GenerationConfig, StoppingCriteriaList

        if not prompt_ids or n <= 0:
            return [[] for _ in prompt_ids]
        if sampling.max_new_tokens <= 0:
            return [[Completion([], torch.zeros(0), "length") for _ in range(n)] for _ in prompt_ids]
        device = next(self.model.parameters()).device
        pad_id = pad_token_id(self.tokenizer)
        eos_ids = eos_token_ids(self.model, self.tokenizer)
        stops = StopStrings(self.tokenizer, sampling.stop)
        greedy = sampling.temperature == 0
        # HF refuses num_return_sequences > 1 without sampling: greedy repeats the prompts instead (same row order).
        rows = [list(p) for p in prompt_ids for _ in range(n)] if greedy else [list(p) for p in prompt_ids]
        ids, mask = left_pad(rows, pad_id)  # (B, P), or (B*G, P) when greedy
        prompt_len = ids.shape[1]

        config = dict(
            max_new_tokens=sampling.max_new_tokens,
            num_return_sequences=1 if greedy else n,
            do_sample=not greedy,
            eos_token_id=eos_ids,
            pad_token_id=pad_id,
            return_dict_in_generate=True,
            output_logits=True,  # raw logits, before any warper
            num_beams=1,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            min_length=0,
            typical_p=1.0,
            epsilon_cutoff=0.0,
            eta_cutoff=0.0,
        )
        if not greedy:
            config.update(temperature=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p)
        criteria = StoppingCriteriaList([_stop_string_criteria(stops, prompt_len)] if stops else [])
        out = self.model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            generation_config=GenerationConfig(**config),
            stopping_criteria=criteria,
        )
        generated = out.sequences[:, prompt_len:]  # (B*G, L)
        scale = 1.0 if greedy else sampling.temperature
        # One (B*G, V) log_softmax per step rather than a (B*G, L, V) tensor.
        logps = torch.stack(
            [
                (step.float() / scale).log_softmax(-1).gather(-1, generated[:, t : t + 1]).squeeze(-1)
                for t, step in enumerate(out.logits)
            ],
            dim=1,
        ).cpu()  # (B*G, L)
        generated = generated.cpu().tolist()

        eos_set = set(eos_ids)
        completions = []
        for r, row in enumerate(generated):
            end = next((t for t, tok in enumerate(row) if tok in eos_set), None)
            if stops:
                stop_at = stops.first_stop(row if end is None else row[: end + 1])
                end = stop_at if stop_at is not None else end
            length = len(row) if end is None else end + 1
            reason = "length" if end is None else "stop"
            completions.append(Completion(row[:length], logps[r, :length].clone(), reason))
        return [completions[i * n : (i + 1) * n] for i in range(len(prompt_ids))]
