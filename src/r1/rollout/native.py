"""The project's own rollout engine: a batched sampler with a KV cache over any Hugging Face causal LM.

Variant: plain autoregressive sampling (temperature, top-k, top-p; greedy at temperature 0) with a KV cache, in the
spirit of gpt-fast ``generate.py`` and nanochat ``engine.py``:

- Llama-family models (llama, qwen2, qwen3, mistral) run through ``r1.models.fast``: a lean forward over the model's
  own parameters (fused q/k/v and gate/up, an in-place KV cache, no mask when no row is padded); other models run
  their ``transformers`` forward with a ``DynamicCache``;

- the cache's full-attention layers write into buffers sized for prompt + max_new_tokens (gpt-fast's static KV
  cache) instead of re-copying themselves with ``torch.cat`` at every token (``buffered_cache``);

- each distinct prompt is prefilled once (one left-padded batch), and its cache rows are then copied to its ``n``
  samples, so a group of G samples costs one prompt forward, not G;
- rows that finish (EOS or a stop string) leave the batch: their cache rows, mask rows and positions are dropped
  (``DynamicCache.batch_select_indices``), so they stop costing compute. Compaction copies the whole cache, so it is
  batched: it happens once ``compact_threshold`` of the batch has finished (0 = at once). Until then finished rows
  ride along, but are never sampled, so the random draws, and so the samples, do not depend on that policy;
- logprobs are ``log_softmax(logits / temperature)`` of the *untruncated* distribution (before top-k/top-p), in
  float32, so with μ = 1 they are the trainer's "old" logprobs and need no extra forward pass (``r1.rollout.base``).

Host syncs: one per decode step, the ``(rows,)`` sampled ids copied to the CPU, which both EOS and stop-string
detection need; everything else stays on the device until the end. The model runs in whatever mode it is in (the
engine does not call ``eval()`` on the trainer's model; the supported architectures have no dropout by default).

Left out, on purpose: paged attention / continuous batching (a finished row is not replaced by a new prompt), prefix
sharing across prompts, speculative decoding, CUDA graphs / ``torch.compile`` of the step, repetition penalties,
min-p, beam search. The ``hf`` engine (``r1.rollout.hf``) is the reference this one is tested against.
"""

from __future__ import annotations

import functools
import inspect

import torch

from r1.data.batching import left_pad
from r1.models.kernels import fused_kernels
from r1.rollout.base import Completion, SamplingParams, StopStrings, eos_token_ids, pad_token_id


def draw_one(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """(R, V) probabilities → (R,) one draw per row, distributed as ``torch.multinomial(probs, 1)``.

    The exponential race torch.multinomial itself runs for a single sample (argmax of p / q, q ~ Exp(1),
    https://github.com/pytorch/pytorch/issues/11931), without that function's input check, whose ``.item()`` is a
    second host sync per decode step on CUDA; q = −log(1 − u) from uniform draws, because ``exponential_`` is slow
    on CPUs (64 × 262 draws: 440 µs, against 70 µs for ``uniform_``, 2 threads).
    """
    race = torch.empty_like(probs).uniform_(generator=generator).neg_().log1p_().neg_()  # (R, V) ~ Exp(1)
    return (probs / race).argmax(-1)  # (R,)


def sample_next_tokens(
    logits: torch.Tensor,
    temperature: float,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample one token per row; also return its logprob under the untruncated tempered distribution.

    Args:
        logits: (R, V) next-token logits (any float dtype; computed in float32).
        temperature: 0 = greedy (argmax; logprobs from ``log_softmax(logits)``).
        top_k: keep the k most likely tokens (0 = off). Applied before top-p, as in HF's warper order.
        top_p: keep the smallest set of most likely tokens whose mass reaches ``top_p`` (1 = off).
        generator: the RNG of the draw (``draw_one``); a fixed seed reproduces the samples.

    Returns:
        tokens (R,) int64 and logps (R,) float32 = ``log_softmax(logits / temperature)[tokens]``.

    Naive equivalent (what ``tests/rollout`` checks against)::

        scaled = logits.float() / temperature
        logps = scaled.log_softmax(-1)                      # untruncated: what the trainer optimises
        masked = top_k_top_p_filter(scaled)                  # -inf outside the kept set
        tokens = torch.multinomial(masked.softmax(-1), 1, generator=g)[:, 0]  # draw_one: the same distribution
        return tokens, logps.gather(-1, tokens[:, None])[:, 0]

    Plain sampling (no top-k / top-p) of float32 logits on a CPU runs r1's fused kernel
    (``torch.ops.r1.sample_categorical``: the inverse of the tempered distribution's CDF at one uniform draw per
    row, and the logprob, in one pass; ``tests/models/test_kernels.py`` checks it against the above).
    """
    logits = logits.float()  # (R, V)
    if temperature > 0 and (top_k <= 0 or top_k >= logits.shape[-1]) and top_p >= 1.0 and logits.dim() == 2:
        k = fused_kernels(logits)
        if k is not None:  # float32 on a CPU: one pass per row, one uniform draw per row (the code below: reference)
            u = torch.rand(logits.shape[0], generator=generator, device=logits.device)
            return k.sample_categorical(logits, u, float(temperature))
    if temperature == 0:
        tokens = logits.argmax(-1)  # (R,)
        scaled = logits
    else:
        scaled = logits / temperature  # (R, V)
        vocab = scaled.shape[-1]
        if 0 < top_k < vocab:
            # Only the k candidates are sorted and normalised: cheaper than a full-vocab sort at V ~ 150k.
            vals, idx = scaled.topk(top_k, dim=-1)  # (R, k), descending
        elif top_p < 1.0:
            vals, idx = scaled.sort(dim=-1, descending=True)  # (R, V)
        else:
            vals, idx = scaled, None
        if idx is not None and top_p < 1.0:
            probs = vals.softmax(-1)  # (R, k) renormalised over the top-k, as HF's TopP after TopK
            # HF TopPLogitsWarper: drop a token when the mass ranked strictly above it already reaches top_p;
            # the most likely token is always kept.
            mass_above = probs.cumsum(-1) - probs  # (R, k)
            drop = mass_above >= top_p
            drop[:, 0] = False
            vals = vals.masked_fill(drop, float("-inf"))
        choice = draw_one(vals.softmax(-1), generator)  # (R,)
        tokens = choice if idx is None else idx.gather(-1, choice[:, None]).squeeze(-1)  # (R,)
    # log_softmax at one index without materialising a second (R, V) tensor.
    logps = scaled.gather(-1, tokens[:, None]).squeeze(-1) - scaled.logsumexp(-1)  # (R,)
    return tokens, logps


@functools.cache
def _buffered_layer_class():
    # Built on first use: transformers is imported only by engines that need it.
    from transformers.cache_utils import DynamicLayer

    class BufferedLayer(DynamicLayer):
        """A ``DynamicLayer`` whose keys/values live in a buffer with room for the whole generation.

        ``DynamicLayer.update`` re-copies the layer's cache (``torch.cat``) at every token, O(T) per step; here a
        step writes one column and hands attention a view of the filled part (gpt-fast's static KV cache, kept
        growable so an unexpected overflow still works).
        """

        def __init__(self, capacity: int):
            super().__init__()
            self.capacity = capacity
            self.length = 0
            self.key_buffer = self.value_buffer = None  # (R, H, capacity, D)

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            from r1.models.fast import append_kv

            end = self.length + key_states.shape[-2]
            self.key_buffer = append_kv(self.key_buffer, self.length, key_states, self.capacity)
            self.value_buffer = append_kv(self.value_buffer, self.length, value_states, self.capacity)
            self.length = end
            self.keys = self.key_buffer[:, :, :end]  # (R, H, T, D) views: no copy
            self.values = self.value_buffer[:, :, :end]
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.length

        def batch_select_indices(self, indices):
            if self.length > 0:
                self.key_buffer = self.key_buffer[indices]  # (R', H, capacity, D)
                self.value_buffer = self.value_buffer[indices]
                self.keys = self.key_buffer[:, :, : self.length]
                self.values = self.value_buffer[:, :, : self.length]

        def batch_repeat_interleave(self, repeats: int):
            if self.length > 0:
                self.batch_select_indices(
                    torch.arange(self.key_buffer.shape[0], device=self.key_buffer.device).repeat_interleave(repeats)
                )

        def crop(self, tokens_to_remove: int):
            if tokens_to_remove > 0:
                raise ValueError("crop takes a negative count of tokens to remove")
            if tokens_to_remove < 0 and self.length > 0:
                self.length = max(0, self.length + tokens_to_remove)
                self.keys = self.key_buffer[:, :, : self.length]
                self.values = self.value_buffer[:, :, : self.length]

        def reset(self):
            self.length = 0
            self.key_buffer = self.value_buffer = None
            super().reset()

    return BufferedLayer


PACK_KEEP_BYTES = 256 << 20
"""The packed decode weights' memory the engine keeps between rollouts (``NativeEngine._release_packing``)."""


class NativeEngine:
    """Batched KV-cache sampler (see the module docstring). ``NativeEngine(model, tokenizer)``.

    Args:
        model: any HF causal LM (its forward takes ``attention_mask``, ``position_ids`` and a ``DynamicCache``).
        tokenizer: its tokenizer (pad/EOS ids; decoding for stop strings).
        compact_threshold: drop finished rows from the batch once at least this fraction of it has finished
            (0 = as soon as any row finishes; > 1 = never). Compaction copies the cache, so batching it pays off
            when many rows finish at nearby steps. Samples do not depend on it.
        buffered_cache: keep each layer's keys/values in a buffer sized for prompt + max_new_tokens, written in
            place (models whose cache layers are all plain full attention); False = transformers' DynamicLayer,
            which re-copies the cache at every token.
        fast: use ``r1.models.fast`` for the models it covers (False = always the ``transformers`` forward).
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        compact_threshold: float = 0.125,
        buffered_cache: bool = True,
        fast: bool = True,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.compact_threshold = compact_threshold
        self.buffered_cache = buffered_cache
        self.use_fast = fast
        self._stops: dict[tuple[str, ...], StopStrings] = {}
        self.last_record = None  # the ForwardRecord of the last generate(..., record=True), when one was taken
        self._last_taken = None  # the newest record, whose memory the next one reuses (and so invalidates)
        self._pack_store: dict = {}  # the packed float32 weights' memory, reused by the next rollout's packing
        self.own_logprobs = True  # its logprobs: log_softmax(logits / τ) of ``self.model``'s own forward (Engine)
        self.update_weights(model)

    def _release_packing(self, weights) -> None:
        """After the decode: the packed copies serve only it, so drop them from ``weights`` (which a forward record
        keeps through the train pass), and free their memory when it is over ``PACK_KEEP_BYTES``. Below that (the
        small presets) the next rollout packs into it again, with no fresh heap; above, the train pass's peak would
        otherwise carry it (a 151,936 × 896 head alone is 0.51 GiB) while repacking costs one pass over the weights
        once a rollout."""
        for w in weights:
            w.packed = None
        weights.head_packed = weights.layers_args = None
        if sum(b.numel() * b.element_size() for b in self._pack_store.values()) > PACK_KEEP_BYTES:
            self._pack_store.clear()

    def update_weights(self, model) -> None:
        """The trainer passes the very object it optimises: keep the reference, no copy."""
        from r1.models.fast import FastLM, unsupported_reason

        self.model = model
        self._cache_kwargs(model)
        self.fast = FastLM(model) if self.use_fast and unsupported_reason(model) is None else None

    def _stop_strings(self, stop: list[str]) -> StopStrings:
        # Kept per stop list: its token filter decodes the whole vocabulary once.
        key = tuple(stop)
        if key not in self._stops:
            self._stops[key] = StopStrings(self.tokenizer, stop)
        return self._stops[key]

    def _cache_kwargs(self, model) -> None:
        # transformers 5.x renamed `past_key_values` to `cache` (the old name is deprecated, with a warning).
        params = inspect.signature(model.forward).parameters
        self._cache_key = "cache" if "cache" in params else "past_key_values"
        self._keep_key = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None)

    def _new_cache(self, capacity: int):
        """A DynamicCache; its plain full-attention layers become buffered ones that hold ``capacity`` tokens."""
        from transformers import DynamicCache

        try:
            cache = DynamicCache(config=self.model.config)
            from transformers.cache_utils import DynamicLayer
        except (TypeError, ImportError):  # older transformers: no config argument / no per-layer objects
            return DynamicCache()
        layers = getattr(cache, "layers", None)
        if self.buffered_cache and layers and all(type(layer) is DynamicLayer for layer in layers):
            # Sliding-window, linear-attention or KV-sharing layers keep their own classes (and so the plain cache).
            layer_class = _buffered_layer_class()
            cache.layers = [layer_class(capacity) for _ in layers]
        return cache

    def _forward(self, ids, mask, positions, cache) -> torch.Tensor:
        """(R, T) ids → (R, V) logits of the last position, appending T entries to ``cache``."""
        kwargs = {self._cache_key: cache}
        if self._keep_key is not None:
            kwargs[self._keep_key] = 1  # the prefill needs only the last position's logits
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **kwargs)
        return out.logits[:, -1]  # (R, V)

    @torch.inference_mode()
    def generate(
        self,
        prompt_ids: list[list[int]],
        n: int,
        sampling: SamplingParams,
        generator: torch.Generator | None = None,
        record: bool = False,
    ) -> list[list[Completion]]:
        """``n`` completions per prompt: ``result[i][j]`` is sample j of prompt i (rows ordered prompt-major).

        ``generator`` must live on the model's device; None uses torch's default generator there. ``record``: keep
        the forward's activations in ``self.last_record`` (an ``r1.models.replay.ForwardRecord``, row i·n + j), so
        a trainer can run the backward of this very forward (models ``r1.models.fast`` covers, float32 weights,
        with or without bf16 autocast; otherwise ``last_record`` is None).
        """
        self.last_record = None
        num_prompts, max_new = len(prompt_ids), sampling.max_new_tokens
        if num_prompts == 0 or n <= 0:
            return [[] for _ in prompt_ids]
        device = next(self.model.parameters()).device
        pad_id = pad_token_id(self.tokenizer)
        eos_ids = torch.tensor(eos_token_ids(self.model, self.tokenizer), dtype=torch.long)  # host side
        stops = self._stop_strings(sampling.stop)
        num_rows = num_prompts * n

        if max_new <= 0:
            return [[Completion([], torch.zeros(0), "length") for _ in range(n)] for _ in prompt_ids]

        # Prefill: identical prompts share one row; each row's cache is then copied to its n samples.
        distinct: dict[tuple[int, ...], int] = {}
        source = [distinct.setdefault(tuple(p), len(distinct)) for p in prompt_ids]
        ids, mask = left_pad([list(p) for p in distinct], pad_id)  # (U, P)
        ids, mask = ids.to(device), mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp_min(0)  # (U, P) left padding: real tokens count from 0
        capacity = ids.shape[1] + max_new
        expand = torch.tensor([source[i] for i in range(num_prompts) for _ in range(n)], device=device)  # (B*G,)
        rec = None
        if self.fast is not None:  # the lean forward (r1.models.fast): weights fused once per call
            from r1.models.fast import pack_weights

            cache, weights = self.fast.new_cache(), pack_weights(
                self.fast.weights(), rows=num_rows, store=self._pack_store
            )
            if record and self.fast.model.model.embed_tokens.weight.dtype == torch.float32:
                from r1.models.replay import ForwardRecord

                rec = ForwardRecord(self.fast, weights, ids, mask, expand, max_new, reuse=self._last_taken)
                self._last_taken = rec
                rec.at_prefill()

            def forward(ids, mask, positions, cache):
                return self.fast.forward(ids, mask, positions, cache, weights, capacity, record=rec)
        else:
            cache, forward = self._new_cache(capacity=capacity), self._forward
        logits = forward(ids, mask, positions, cache)  # (U, V)
        if rec is not None:
            rec.put_logits(logits)
            slot_rows = None  # (R_batch,) the row each batch slot holds; None while slot i holds row i
        cache.batch_select_indices(expand)
        logits = logits[expand]  # (B*G, V)
        mask = mask[expand]  # (B*G, P)
        next_pos = positions[expand, -1] + 1  # (B*G,) position of the first generated token

        # Outputs, indexed by original row. Tokens are collected on the host (they come over every step anyway).
        tokens_host = torch.full((num_rows, max_new), pad_id, dtype=torch.long)  # (B*G, M)
        logps_out = torch.zeros((num_rows, max_new), dtype=torch.float32, device=device)  # (B*G, M)
        lengths = [max_new] * num_rows
        reasons = ["length"] * num_rows

        # Batch bookkeeping. A batch slot holds one row's cache; alive_slots are the slots still sampling, None
        # while that is every slot (the common case: no gather on the logits). alive_rows: their original rows.
        batch_size = num_rows  # R_batch
        alive_rows_host = torch.arange(num_rows)  # (R_alive,) in slot order
        alive_rows = alive_rows_host.to(device)
        alive_slots_host: torch.Tensor | None = None
        alive_slots: torch.Tensor | None = None

        for t in range(max_new):
            if t > 0:
                if rec is not None:
                    rec.at_step(t, slot_rows)
                logits = forward(next_ids[:, None], mask, next_pos[:, None], cache)  # (R_batch, V)
                if rec is not None:
                    rec.put_logits(logits)
                next_pos = next_pos + 1
            step_logits = logits if alive_slots is None else logits.index_select(0, alive_slots)  # (R_alive, V)
            toks, lps = sample_next_tokens(
                step_logits, sampling.temperature, sampling.top_k, sampling.top_p, generator
            )  # (R_alive,)
            logps_out[alive_rows, t] = lps
            toks_host = toks.cpu()  # the one host sync per step: needed to find finished rows
            tokens_host[alive_rows_host, t] = toks_host

            done = torch.isin(toks_host, eos_ids)  # (R_alive,)
            if stops:
                check = stops.may_complete(toks_host) & ~done  # (R_alive,) rows worth decoding
                if bool(check.any()):
                    tails = tokens_host[alive_rows_host[check], max(0, t + 1 - stops.window) : t + 1].tolist()
                    done[check] = torch.tensor(stops.hits(tails), dtype=torch.bool)
            if t == max_new - 1:
                for r in alive_rows_host[done].tolist():
                    reasons[r] = "stop"
                break

            # Feed every batch slot a token; finished slots get padding (their outputs are never read).
            if alive_slots is None:
                next_ids = toks  # (R_batch,)
            else:
                next_ids = torch.full((batch_size,), pad_id, dtype=torch.long, device=device)
                next_ids.index_copy_(0, alive_slots, toks)  # (R_batch,)
            mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)  # (R_batch, P + t + 1)

            if not bool(done.any()):
                continue
            for r in alive_rows_host[done].tolist():
                lengths[r], reasons[r] = t + 1, "stop"
            keep = ~done
            if not bool(keep.any()):
                break
            slots_host = torch.arange(batch_size) if alive_slots_host is None else alive_slots_host
            slots_host = slots_host[keep]  # (R_alive',) batch slots still sampling
            alive_rows_host = alive_rows_host[keep]
            alive_rows = alive_rows_host.to(device)
            if batch_size - len(slots_host) >= max(1e-9, self.compact_threshold * batch_size):
                # Compaction: finished rows leave the cache, the mask, the positions and the next input.
                slots = slots_host.to(device)
                if rec is not None:
                    rows_before = torch.arange(batch_size, device=device) if slot_rows is None else slot_rows
                    gone = torch.ones(batch_size, dtype=torch.bool)
                    gone[slots_host] = False
                    rec.drop_rows(rows_before[gone.to(device)], t)
                    slot_rows = rows_before[slots]
                cache.batch_select_indices(slots)
                mask, next_pos, next_ids = mask[slots], next_pos[slots], next_ids[slots]
                batch_size = len(slots_host)
                alive_slots_host = alive_slots = None
            else:
                alive_slots_host = slots_host
                alive_slots = slots_host.to(device)

        if rec is not None:
            rec.finish(tokens_host)
            self.last_record = rec
        if self.fast is not None:
            self._release_packing(weights)
        logps_host = logps_out.cpu()  # (B*G, M)
        out: list[list[Completion]] = []
        for i in range(num_prompts):
            group = []
            for r in range(i * n, (i + 1) * n):
                length = lengths[r]
                group.append(Completion(tokens_host[r, :length].tolist(), logps_host[r, :length].clone(), reasons[r]))
            out.append(group)
        return out
