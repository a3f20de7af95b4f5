"""Rollout engines: native (KV cache, shared prefill, compaction) against HF generate and a cache-free reference.

Run: ``pytest tests/rollout -q``

Tiny random models (``tiny-qwen2``, ``tiny-llama``, fp32) with ``initializer_range=0.2`` so that greedy decoding does
not collapse to one repeated token and sampled rows vary. Prompts have different lengths, so left padding is always
exercised. Rows are made to finish at different steps by declaring extra EOS ids (``generation_config.eos_token_id``,
which both engines honour) and by stop strings.
"""

from __future__ import annotations

import random

import pytest
import torch

from r1.data.batching import left_pad
from r1.models import build_preset
from r1.models.tokenizer import build_byte_tokenizer
from r1.rollout.base import Completion, SamplingParams, StopStrings, build_engine, eos_token_ids, pad_token_id
from r1.rollout.hf import HFEngine
from r1.rollout.native import NativeEngine, draw_one, sample_next_tokens

ARCHS = ["tiny-qwen2", "tiny-llama"]
TEXTS = ["Hello world, how", "2+2=", "The quick brown fox jumps", "a"]
SAMPLED = dict(temperature=0.7, top_p=0.9, top_k=20)


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny models: threads only add overhead, and the CI box is shared.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(name: str, extra_eos: list[int] = ()):
    model, tok = build_preset(name, seed=0, initializer_range=0.2)
    model.eval()
    if extra_eos:
        model.generation_config.eos_token_id = [tok.eos_token_id, *extra_eos]
    return model, tok, [tok.encode(t) for t in TEXTS]


def flat(result):
    return [c for group in result for c in group]


def assert_same(a, b, atol=1e-5):
    """Same tokens and finish reasons, logprobs within atol."""
    assert len(a) == len(b) and [len(g) for g in a] == [len(g) for g in b]
    for ca, cb in zip(flat(a), flat(b)):
        assert ca.token_ids == cb.token_ids
        assert ca.finish_reason == cb.finish_reason
        assert ca.logprobs.dtype == torch.float32 and ca.logprobs.shape == (len(ca.token_ids),)
        torch.testing.assert_close(ca.logprobs, cb.logprobs, atol=atol, rtol=0)


def greedy_eos_ids(model, tok, prompts, max_new):
    """Extra EOS ids that greedy decoding really emits, so prompts finish at different steps (some not at all)."""
    free = flat(NativeEngine(model, tok).generate(prompts, 1, SamplingParams(temperature=0, max_new_tokens=max_new)))
    first = free[0].token_ids[3]  # prompt 0 stops by step 4
    second = next(t for t in free[1].token_ids[5:] if t not in free[0].token_ids[:4])
    return [first, second]


@torch.no_grad()
def reference_generate(model, tok, prompts, n, sampling, generator):
    """The slow reference: no cache; each step re-runs the whole left-padded sequence of the rows still running.

    It samples the alive rows, in row order, with the same ``sample_next_tokens`` calls as the engine, so with the
    same generator seed the samples must agree exactly; stop strings are checked on the fully decoded completion.
    """
    eos, pad = set(eos_token_ids(model, tok)), pad_token_id(tok)
    rows = [list(p) for p in prompts for _ in range(n)]
    comps, logps, reasons = [[] for _ in rows], [[] for _ in rows], ["length"] * len(rows)
    alive = list(range(len(rows)))
    for _ in range(sampling.max_new_tokens):
        ids, mask = left_pad([rows[r] + comps[r] for r in alive], pad)  # (R, P + t)
        positions = (mask.cumsum(-1) - 1).clamp_min(0)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits[:, -1]  # (R, V)
        toks, lps = sample_next_tokens(logits, sampling.temperature, sampling.top_k, sampling.top_p, generator)
        still = []
        for j, r in enumerate(alive):
            comps[r].append(int(toks[j]))
            logps[r].append(float(lps[j]))
            text = tok.decode(comps[r], skip_special_tokens=True)
            if comps[r][-1] in eos or any(s in text for s in sampling.stop):
                reasons[r] = "stop"
            else:
                still.append(r)
        alive = still
        if not alive:
            break
    out = [Completion(c, torch.tensor(lp, dtype=torch.float32), why) for c, lp, why in zip(comps, logps, reasons)]
    return [out[i * n : (i + 1) * n] for i in range(len(prompts))]


@torch.no_grad()
def teacher_forced_logps(model, prompt, completion, temperature):
    """(L,) log_softmax(logits / temperature) at the completion tokens, from one forward over prompt + completion."""
    ids = torch.tensor([prompt + completion])  # (1, P + L)
    logits = model(input_ids=ids).logits[0, len(prompt) - 1 : -1].float()  # (L, V)
    scale = temperature if temperature > 0 else 1.0
    return (logits / scale).log_softmax(-1).gather(-1, torch.tensor(completion)[:, None]).squeeze(-1)


def test_registry_builds_both_engines():
    model, tok, _ = make("tiny-qwen2")
    assert isinstance(build_engine("native", model, tok), NativeEngine)
    assert isinstance(build_engine("hf", model, tok), HFEngine)


@pytest.mark.parametrize("name,kept", [("native", True), ("hf", False)])
def test_engines_carry_their_forward_record(name, kept):
    """The Engine protocol's record: ``generate(..., record=True)`` leaves it in ``last_record`` where the engine
    can keep one (the native engine over the lean forward), None elsewhere; the samples are the same either way."""
    model, tok, prompts = make("tiny-qwen2")
    sp = SamplingParams(temperature=0, max_new_tokens=6)
    engine = build_engine(name, model, tok)
    plain = engine.generate(prompts, 2, sp)
    assert engine.last_record is None
    recorded = engine.generate(prompts, 2, sp, record=True)
    assert (engine.last_record is not None) == kept
    assert_same(recorded, plain)


@pytest.mark.parametrize("name", ARCHS)
@pytest.mark.parametrize("n", [1, 3])
@pytest.mark.parametrize("fast", [True, False])
def test_greedy_native_equals_hf(name, n, fast):
    model, tok, prompts = make(name)
    sp = SamplingParams(temperature=0, max_new_tokens=12)
    engine = NativeEngine(model, tok, fast=fast)
    assert (engine.fast is not None) == fast  # both presets are covered by r1.models.fast
    native = engine.generate(prompts, n, sp)
    assert_same(native, HFEngine(model, tok).generate(prompts, n, sp))
    assert all(c.finish_reason == "length" and len(c.token_ids) == 12 for c in flat(native))
    # Identical greedy samples within a group.
    assert all(g[j].token_ids == g[0].token_ids for g in native for j in range(n))


@pytest.mark.parametrize("name", ARCHS)
def test_greedy_with_eos_native_equals_hf(name):
    model, tok, prompts = make(name)
    model.generation_config.eos_token_id = [tok.eos_token_id, *greedy_eos_ids(model, tok, prompts, 16)]
    sp = SamplingParams(temperature=0, max_new_tokens=16)
    for threshold, fast in [(0.0, True), (2.0, True), (0.0, False)]:  # compact at once / never; transformers path
        native = NativeEngine(model, tok, compact_threshold=threshold, fast=fast).generate(prompts, 3, sp)
        assert_same(native, HFEngine(model, tok).generate(prompts, 3, sp))
    lengths = [len(c.token_ids) for c in flat(native)]
    assert len(set(lengths)) >= 2 and min(lengths) <= 4  # rows finished at different steps
    eos = set(eos_token_ids(model, tok))
    for c in flat(native):
        # An EOS that ended the row is its last token, and only there.
        assert (c.finish_reason == "stop") == (c.token_ids[-1] in eos)
        assert not eos & set(c.token_ids[:-1])


@pytest.mark.parametrize("name", ARCHS)
def test_sampled_logprobs_match_teacher_forcing(name):
    model, tok, prompts = make(name)
    sp = SamplingParams(max_new_tokens=10, **SAMPLED)
    torch.manual_seed(0)  # the hf engine's RNG
    for engine in (NativeEngine(model, tok), NativeEngine(model, tok, fast=False), HFEngine(model, tok)):
        result = engine.generate(prompts, 2, sp, torch.Generator().manual_seed(0))
        for prompt, group in zip(prompts, result):
            for c in group:
                expected = teacher_forced_logps(model, prompt, c.token_ids, sp.temperature)
                torch.testing.assert_close(c.logprobs, expected, atol=1e-5, rtol=0)


def test_greedy_logprobs_match_teacher_forcing():
    model, tok, prompts = make("tiny-qwen2")
    for c, prompt in zip(flat(NativeEngine(model, tok).generate(prompts, 1, SamplingParams(temperature=0))), prompts):
        torch.testing.assert_close(c.logprobs, teacher_forced_logps(model, prompt, c.token_ids, 0), atol=1e-5, rtol=0)


def test_fixed_seed_reproduces_samples():
    model, tok, prompts = make("tiny-qwen2")
    engine, sp = NativeEngine(model, tok), SamplingParams(max_new_tokens=12, **SAMPLED)
    first = engine.generate(prompts, 3, sp, torch.Generator().manual_seed(123))
    again = engine.generate(prompts, 3, sp, torch.Generator().manual_seed(123))
    other = engine.generate(prompts, 3, sp, torch.Generator().manual_seed(124))
    assert_same(first, again, atol=0)
    assert [c.token_ids for c in flat(first)] != [c.token_ids for c in flat(other)]
    # Samples within a group differ (each prompt's cache is shared, its samples are not).
    assert any(len({tuple(c.token_ids) for c in g}) > 1 for g in first)


def test_hf_engine_reproducible_with_global_seed():
    model, tok, prompts = make("tiny-qwen2")
    engine, sp = HFEngine(model, tok), SamplingParams(max_new_tokens=8, **SAMPLED)
    torch.manual_seed(5)
    first = engine.generate(prompts, 2, sp)
    torch.manual_seed(5)
    assert_same(first, engine.generate(prompts, 2, sp), atol=0)


@pytest.mark.parametrize("name", ARCHS)
def test_compaction_matches_cache_free_reference(name):
    # Lower-case letters end a row: rows finish at scattered steps, so the batch shrinks many times.
    model, tok, prompts = make(name, extra_eos=list(range(ord("a"), ord("z") + 1)))
    sp = SamplingParams(temperature=0.9, top_p=0.95, max_new_tokens=20, stop=["<think>", "Z"])
    reference = reference_generate(model, tok, prompts, 3, sp, torch.Generator().manual_seed(0))
    # Compact at every finish / in batches (finished rows ride along meanwhile) / never; the transformers forward
    # with the buffered cache and with the plain DynamicLayer.
    for threshold, buffered, fast in [(0.0, True, True), (0.5, True, True), (2.0, True, True), (0.5, True, False),
                                      (0.0, False, False)]:
        native = NativeEngine(model, tok, compact_threshold=threshold, buffered_cache=buffered, fast=fast)
        assert_same(native.generate(prompts, 3, sp, torch.Generator().manual_seed(0)), reference)
    lengths = [len(c.token_ids) for c in flat(reference)]
    reasons = {c.finish_reason for c in flat(reference)}
    assert len(set(lengths)) >= 5 and reasons == {"stop", "length"}


def test_duplicate_prompts_share_prefill_and_match_reference():
    model, tok, prompts = make("tiny-llama", extra_eos=list(range(ord("a"), ord("z") + 1)))
    prompts = [prompts[0], prompts[1], prompts[0]]
    sp = SamplingParams(max_new_tokens=12, **SAMPLED)
    native = NativeEngine(model, tok, compact_threshold=0).generate(prompts, 2, sp, torch.Generator().manual_seed(3))
    assert_same(native, reference_generate(model, tok, prompts, 2, sp, torch.Generator().manual_seed(3)))


@pytest.mark.parametrize("name", ARCHS)
def test_stop_string_ends_the_output(name):
    model, tok, prompts = make(name)
    free = flat(NativeEngine(model, tok).generate(prompts, 1, SamplingParams(temperature=0, max_new_tokens=24)))
    # A two-character ASCII stop string that greedy decoding of prompt 0 really emits (spanning two tokens).
    toks = free[0].token_ids
    k = next(i for i in range(2, 23) if all(32 <= t < 127 for t in toks[i : i + 2]))
    stop = tok.decode(toks[k : k + 2])
    sp = SamplingParams(temperature=0, max_new_tokens=24, stop=[stop])
    stopped = NativeEngine(model, tok).generate(prompts, 1, sp)
    assert_same(stopped, HFEngine(model, tok).generate(prompts, 1, sp))
    for before, after in zip(free, flat(stopped)):
        text = tok.decode(before.token_ids)
        if stop not in text:
            assert after.token_ids == before.token_ids and after.finish_reason == "length"
            continue
        # Cut right after the token that completed the first occurrence, finish reason 'stop'.
        end = next(t for t in range(len(before.token_ids)) if stop in tok.decode(before.token_ids[: t + 1]))
        assert after.token_ids == before.token_ids[: end + 1] and after.finish_reason == "stop"
        assert tok.decode(after.token_ids).endswith(stop)
        torch.testing.assert_close(after.logprobs, before.logprobs[: end + 1], atol=1e-5, rtol=0)
    assert flat(stopped)[0].finish_reason == "stop"


def test_stop_string_that_is_one_added_token():
    model, tok, prompts = make("tiny-qwen2")
    think = tok.convert_tokens_to_ids("<think>")
    sp = SamplingParams(temperature=1.0, max_new_tokens=30, stop=["<think>"])
    result = flat(NativeEngine(model, tok).generate(prompts, 4, sp, torch.Generator().manual_seed(1)))
    for c in result:
        assert think not in c.token_ids[:-1]
        if c.finish_reason == "length":
            assert len(c.token_ids) == 30 and c.token_ids[-1] != think
        else:
            assert c.token_ids[-1] in (think, tok.eos_token_id)
    assert any(c.token_ids[-1] == think for c in result)


@pytest.mark.parametrize("name", ARCHS)
def test_top_k_1_equals_greedy(name):
    model, tok, prompts = make(name)
    engine = NativeEngine(model, tok)
    greedy = engine.generate(prompts, 2, SamplingParams(temperature=0, max_new_tokens=10))
    top1 = engine.generate(prompts, 2, SamplingParams(temperature=1.0, top_k=1, max_new_tokens=10), torch.Generator())
    assert_same(top1, greedy)  # temperature 1: same tokens and the same logprobs
    hot = engine.generate(prompts, 2, SamplingParams(temperature=0.5, top_k=1, max_new_tokens=10), torch.Generator())
    assert [c.token_ids for c in flat(hot)] == [c.token_ids for c in flat(greedy)]


@pytest.mark.parametrize("top_k,top_p", [(0, 1.0), (4, 1.0), (0, 0.7), (5, 0.6)])
def test_sampling_distribution_matches_hf_warpers(top_k, top_p):
    """Empirical frequencies of ``sample_next_tokens`` against HF's temperature → top-k → top-p warpers."""
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    logits = torch.tensor([[2.0, 1.5, 1.0, 0.5, 0.0, -0.5, -1.0, -2.0]])  # (1, V=8)
    temperature, draws = 0.8, 20000
    scores = TemperatureLogitsWarper(temperature)(None, logits.clone())
    if top_k:
        scores = TopKLogitsWarper(top_k)(None, scores)
    if top_p < 1:
        scores = TopPLogitsWarper(top_p)(None, scores)
    expected = scores.softmax(-1)[0]  # (V,)
    rows = logits.expand(draws, -1)  # (draws, V)
    toks, logps = sample_next_tokens(rows, temperature, top_k, top_p, torch.Generator().manual_seed(0))
    freq = torch.bincount(toks, minlength=8).float() / draws
    assert torch.equal(freq > 0, expected > 0)  # exactly the kept set
    torch.testing.assert_close(freq, expected, atol=0.015, rtol=0)
    # Logprobs are those of the untruncated tempered distribution.
    torch.testing.assert_close(logps, (logits / temperature).log_softmax(-1)[0, toks], atol=1e-6, rtol=0)


def test_edge_cases():
    model, tok, prompts = make("tiny-qwen2")
    engine = NativeEngine(model, tok)
    assert engine.generate([], 4, SamplingParams()) == []
    zero = engine.generate(prompts[:2], 2, SamplingParams(max_new_tokens=0))
    assert [len(g) for g in zero] == [2, 2] and all(c.token_ids == [] for c in flat(zero))
    other, _, _ = make("tiny-llama")
    engine.update_weights(other)
    assert engine.model is other


def test_draw_one_follows_the_probabilities():
    """``draw_one`` draws from ``probs`` (as ``torch.multinomial``): frequencies over 40 000 draws per row within
    5 standard errors of each probability; filtered-out tokens are never drawn; a fixed seed repeats the draws."""
    g = torch.Generator().manual_seed(0)
    probs = torch.randn(3, 12, generator=g).mul(1.5).softmax(-1)  # (R, V)
    probs[:, ::3] = 0
    probs /= probs.sum(-1, keepdim=True)
    n = 40_000
    draws = draw_one(probs.repeat_interleave(n, 0), torch.Generator().manual_seed(7)).view(3, n)
    freq = torch.stack([torch.bincount(d, minlength=12) for d in draws]).double() / n  # (R, V)
    se = (probs.double() * (1 - probs.double()) / n).sqrt()
    assert ((freq - probs.double()).abs() <= 5 * se + 1e-12).all(), (freq, probs)
    assert (freq[:, ::3] == 0).all()
    again = draw_one(probs.repeat_interleave(n, 0), torch.Generator().manual_seed(7)).view(3, n)
    assert torch.equal(draws, again)


@pytest.mark.parametrize("stop", [["é!", "</answer>", "ab"], ["café", "<think>"], ["\n\n", "x"]])
def test_incremental_stop_detection_matches_full_decode(stop):
    """The engine's check (token filter + tail decode, each step) finds the same first stop as decoding it all."""
    tok = build_byte_tokenizer()
    stops = StopStrings(tok, stop)
    rng = random.Random(0)
    specials = [tok.bos_token_id, tok.pad_token_id, tok.convert_tokens_to_ids("<think>")]
    for _ in range(150):
        ids = []
        for _ in range(rng.randint(1, 6)):
            ids += [rng.choice([rng.randrange(256), *specials]) for _ in range(rng.randint(0, 6))]
            if rng.random() < 0.4:
                ids += tok.encode(rng.choice(stop))
        expected = next(
            (t for t in range(len(ids)) if any(s in tok.decode(ids[: t + 1], skip_special_tokens=True) for s in stop)),
            None,
        )
        found = None
        for t in range(len(ids)):
            tail = ids[max(0, t + 1 - stops.window) : t + 1]
            if stops.may_complete(torch.tensor([ids[t]]))[0] and stops.hits([tail])[0]:
                found = t
                break
        assert found == expected
        assert stops.first_stop(ids) == expected
