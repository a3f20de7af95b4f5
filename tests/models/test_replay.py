"""The replayed backward (``r1.models.replay``) against autograd through ``FastLM.train_logits``.

Run: ``python -m pytest tests/models/test_replay.py -q``.

The rollout engine records its forward while sampling (prompts of different lengths, one prompt twice, rows that
stop at different steps so finished rows leave the batch); the replay's logits and every parameter's gradient must
equal those of the training forward on the same completions.
"""

import pytest
import torch

from r1.models.fast import FastLM
from r1.models.replay import replay_logits
from r1.models.tokenizer import build_byte_tokenizer
from r1.rollout.base import SamplingParams
from r1.rollout.native import NativeEngine
from tests.models.test_fast import ARCHS, tiny

TEXTS = ["ab", "hello", "ab", "xyz1"]
MAX_NEW = 8


def sample(arch, extra, compact_threshold=0.0, seed=0):
    tok = build_byte_tokenizer()
    model = tiny(arch, vocab_size=len(tok), **extra)
    # 40 extra EOS ids: rows stop at different steps (~15 % a step), so compaction and padding are exercised.
    model.generation_config.eos_token_id = [tok.eos_token_id, *range(60, 100)]
    engine = NativeEngine(model, tok, compact_threshold=compact_threshold)
    prompts = [tok.encode(t, add_special_tokens=False) for t in TEXTS]
    g = torch.Generator().manual_seed(seed)
    out = engine.generate(prompts, 3, SamplingParams(temperature=1.0, max_new_tokens=MAX_NEW), g, record=True)
    comps = [c.token_ids for group in out for c in group]
    return model, tok, prompts, comps, engine.last_record


def loss_of(logits, comps, weights):
    """An arbitrary loss over each row's real positions: weighted logprob of token 7 plus of the sampled token."""
    total = 0
    for i, c in enumerate(comps):
        lp = logits[i, : len(c)].log_softmax(-1)
        total = total + (lp[:, 7] * weights[i, : len(c)]).sum() + lp.gather(-1, torch.tensor(c)[:, None]).sum()
    return total


def reference(model, prompts, comps, rows, weights):
    distinct = {}
    group = [distinct.setdefault(tuple(prompts[r // 3]), len(distinct)) for r in rows]
    model.zero_grad()
    out = FastLM(model).train_logits([list(p) for p in distinct], group, [comps[r] for r in rows], pad_id=0)
    loss_of(out, [comps[r] for r in rows], weights).backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize(
    "arch,extra,products",
    [(*a, "default") for a in ARCHS[:5]] + [(*ARCHS[1], "plain"), (*ARCHS[0], "no gu"), (*ARCHS[1], "plain, no gu")],
)
def test_replay_matches_autograd_through_train_logits(arch, extra, products, monkeypatch):
    """``products="plain"``: the rollout's float32 products without MKL's packing, through oneDNN (as on AMD
    CPUs), so the record's blocks are filled by copies rather than computed into. ``no gu``: the record keeps no
    gate/up projections (``RECORD_GU_MAX_BYTES``, a real shape's), the backward recomputes them, and runs the MLP's
    backward 7 rows at a time (``MLP_BLOCK_ELEMENTS``, as a real shape's thousands of rows are split) and the
    attention's a few completions at a time (``ATTN_BLOCK_ELEMENTS``)."""
    from r1.models import fast, replay

    if "plain" in products:
        monkeypatch.setattr(fast, "USE_MKL_PACKED", False)
        monkeypatch.setattr(fast, "ONEDNN_FP32", fast.USE_ONEDNN)
    if "no gu" in products:
        monkeypatch.setattr(replay, "RECORD_GU_MAX_BYTES", 0)
        monkeypatch.setattr(replay, "MLP_BLOCK_ELEMENTS", 7 * 2 * tiny(arch, **extra).config.intermediate_size)
        monkeypatch.setattr(replay, "ATTN_BLOCK_ELEMENTS", 5 * 4 * (MAX_NEW - 1) * 16)  # blocks of ~5 rows
    model, tok, prompts, comps, rec = sample(arch, extra)
    assert rec.keep_gu == ("no gu" not in products)
    assert all(w.wqkv is None and w.wgu is None for w in rec.weights)  # the decode's fused copies are gone
    assert rec.buffers["gu"].shape[1] == (rec.buffers["x"].shape[1] if rec.keep_gu else 0)
    lengths = [len(c) for c in comps]
    assert min(lengths) < max(lengths) == MAX_NEW, lengths  # rows finished at different steps
    for r, n in enumerate(lengths):  # a row left the batch when it finished: its later positions hold zeros
        assert bool((rec.buffers["x2"][:, rec.U * rec.P :].view(
            -1, rec.T1, rec.N, rec.buffers["x2"].shape[-1])[:, n - 1 :, r] == 0).all())
    rows = list(range(len(comps)))
    tc = max(lengths)
    weights = torch.randn(len(rows), tc, generator=torch.Generator().manual_seed(1))
    ref_out, ref_grads = reference(model, prompts, comps, rows, weights)

    model.zero_grad()
    assert rec.usable(model, tc)
    out = replay_logits(rec, rows, tc)
    assert out.shape == ref_out.shape
    for i, c in enumerate(comps):
        torch.testing.assert_close(out[i, : len(c)], ref_out[i, : len(c)], rtol=1e-4, atol=1e-5)
    loss_of(out, comps, weights).backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref_grads[n], rtol=1e-4, atol=2e-5, msg=n)


def test_replay_gives_a_sampled_pad_token_no_embedding_gradient():
    """With ``padding_idx`` on the embedding (``config.pad_token_id``), a completion that samples that token: the
    replay's gradient = autograd's through ``train_logits`` (which is ``transformers``'): none from the row's
    lookups."""
    from collections import Counter

    model, tok, prompts, comps, rec = sample("qwen2", {})
    pad = Counter(t for c in comps for t in c[:-1]).most_common(1)[0][0]  # a token fed back inside a completion
    model.model.embed_tokens.padding_idx = pad  # the forward's values do not depend on it: the record stays valid
    rows = list(range(len(comps)))
    tc = max(len(c) for c in comps)
    weights = torch.randn(len(rows), tc, generator=torch.Generator().manual_seed(1))
    _, ref_grads = reference(model, prompts, comps, rows, weights)
    model.zero_grad()
    loss_of(replay_logits(rec, rows, tc), comps, weights).backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref_grads[n], rtol=1e-4, atol=2e-5, msg=n)
    model.model.embed_tokens.padding_idx = None  # without it the row does get the lookups' gradient
    model.zero_grad()
    loss_of(replay_logits(rec, rows, tc), comps, weights).backward()
    assert not torch.allclose(model.model.embed_tokens.weight.grad[pad], ref_grads["model.embed_tokens.weight"][pad])


def test_replay_of_some_rows_and_a_shorter_length():
    """A micro-batch: a subset of rows (one row of the repeated prompt's groups missing), shorter than recorded."""
    model, tok, prompts, comps, rec = sample("qwen2", {}, compact_threshold=0.5, seed=3)
    rows = [0, 2, 3, 7, 8, 10]
    tc = max(len(comps[r]) for r in rows)
    sub = [comps[r] for r in rows]
    weights = torch.randn(len(rows), tc, generator=torch.Generator().manual_seed(4))
    ref_out, ref_grads = reference(model, prompts, comps, rows, weights)
    model.zero_grad()
    out = replay_logits(rec, rows, tc)
    loss_of(out, sub, weights).backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref_grads[n], rtol=1e-4, atol=2e-5, msg=n)


def test_a_record_is_refused_once_the_parameters_change():
    model, tok, prompts, comps, rec = sample("llama", {})
    tc = max(len(c) for c in comps)
    assert rec.usable(model, tc) and not rec.usable(model, rec.steps + 2)
    with torch.no_grad():
        model.model.norm.weight.mul_(1.0)  # an in-place update, as an optimizer step does
    assert not rec.usable(model, tc)
    with pytest.raises(ValueError, match="parameters changed"):
        replay_logits(rec, [0], tc)


@pytest.mark.parametrize("texts,max_new", [(["ab", "hello"], 1), (["abc", "xyz"], 5)])
def test_replay_of_one_token_completions_and_unpadded_prompts(texts, max_new):
    """max_new_tokens = 1: no decode step, the logits all come from the prompt pass. Prompts of one length (the
    benchmark's case): nothing is padded, the prompt pass's mask is plain causal."""
    tok = build_byte_tokenizer()
    model = tiny("qwen2", vocab_size=len(tok))
    engine = NativeEngine(model, tok)
    prompts = [tok.encode(t, add_special_tokens=False) for t in texts]
    sampling = SamplingParams(temperature=1.0, max_new_tokens=max_new)
    out = engine.generate(prompts, 2, sampling, torch.Generator(), record=True)
    comps = [c.token_ids for group in out for c in group]
    tc = max(map(len, comps))
    weights = torch.randn(4, tc, generator=torch.Generator().manual_seed(5))
    model.zero_grad()
    loss_of(FastLM(model).train_logits(prompts, [0, 0, 1, 1], comps, pad_id=0), comps, weights).backward()
    ref_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    loss_of(replay_logits(engine.last_record, [0, 1, 2, 3], tc), comps, weights).backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, ref_grads[n], rtol=1e-4, atol=2e-5, msg=n)



@pytest.mark.parametrize("arch,extra,keep_gu", [(*ARCHS[0], True), (*ARCHS[1], True), (*ARCHS[3], True),
                                                (*ARCHS[0], False)])
def test_replay_of_a_bf16_autocast_rollout(arch, extra, keep_gu, monkeypatch):
    """Mixed precision (``model.dtype=bf16``): the rollout's forward ran its products in bfloat16; the replay's
    backward runs its products in bfloat16 too (float32 elementwise work). Its gradient is as close to the float32
    gradient as autograd's under the same autocast is, over all parameters and parameter by parameter. (Also with
    the gate/up projections recomputed in bfloat16 rather than recorded.)"""
    from r1.models import replay

    if not keep_gu:
        monkeypatch.setattr(replay, "RECORD_GU_MAX_BYTES", 0)
        monkeypatch.setattr(replay, "MLP_BLOCK_ELEMENTS", 5 * 2 * tiny(arch, **extra).config.intermediate_size)
    tok = build_byte_tokenizer()
    model = tiny(arch, vocab_size=len(tok), **extra)
    model.generation_config.eos_token_id = [tok.eos_token_id, *range(60, 100)]
    engine = NativeEngine(model, tok, compact_threshold=0.0)
    prompts = [tok.encode(t, add_special_tokens=False) for t in TEXTS]
    sampling = SamplingParams(temperature=1.0, max_new_tokens=MAX_NEW)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = engine.generate(prompts, 3, sampling, torch.Generator().manual_seed(0), record=True)
    rec = engine.last_record
    assert rec is not None and rec.mat_dtype == torch.bfloat16
    assert rec.weights[0].wqkv is None and rec.fused(0)[0].dtype == torch.bfloat16  # dropped, remade
    comps = [c.token_ids for group in out for c in group]
    assert min(map(len, comps)) < max(map(len, comps))  # rows left the batch at different steps
    rows, tc = list(range(len(comps))), max(map(len, comps))
    weights = torch.randn(len(rows), tc, generator=torch.Generator().manual_seed(1))
    out32, grads32 = reference(model, prompts, comps, rows, weights)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out_bf16, grads_bf16 = reference(model, prompts, comps, rows, weights)
    model.zero_grad()
    logits = replay_logits(rec, rows, tc)
    loss_of(logits, comps, weights).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    for i, c in enumerate(comps):  # the sampler's bf16 forward: bf16's distance from the float32 logits
        torch.testing.assert_close(logits[i, : len(c)], out_bf16[i, : len(c)].float(), rtol=0.02, atol=0.02)

    def dist(a, b, names):
        return (torch.cat([(a[n] - b[n]).flatten() for n in names]).norm() / torch.cat(
            [b[n].flatten() for n in names]).norm()).item()

    names = list(grads32)
    assert dist(grads, grads32, names) < 0.05
    assert dist(grads, grads32, names) <= 1.5 * dist(grads_bf16, grads32, names) + 1e-3
    for n in names:  # each parameter: no worse than autocast's own error (plus a floor for ~zero gradients)
        assert dist(grads, grads32, [n]) <= 2 * dist(grads_bf16, grads32, [n]) + 0.02, n


def test_recorded_decode_computes_into_the_record(monkeypatch):
    """While every row is in the batch, a recorded decode step computes its float32 activations straight into the
    record's step-major blocks: ``put`` copies only the embedding (layer 0's input) per step; once rows have
    left the batch, every activation is scattered in by ``put``. (This is the per-layer decode; with MKL-packed
    weights the decode's layers run as one kernel call that writes the record itself: no ``put`` at all.)"""
    from r1.models import fast
    from r1.models.replay import ForwardRecord

    monkeypatch.setattr(fast, "USE_DECODE_LAYERS", False)

    puts = []
    real = ForwardRecord.put
    monkeypatch.setattr(ForwardRecord, "put", lambda self, kind, layer, v: puts.append((self._t, kind)) or real(
        self, kind, layer, v))
    tok = build_byte_tokenizer()
    model = tiny("qwen2", vocab_size=len(tok))
    model.generation_config.eos_token_id = [tok.eos_token_id]  # no row stops early (fixed seed)
    engine = NativeEngine(model, tok)
    prompts = [tok.encode(t, add_special_tokens=False) for t in TEXTS]
    g = torch.Generator().manual_seed(0)
    out = engine.generate(prompts, 2, SamplingParams(temperature=1.0, max_new_tokens=5), g, record=True)
    assert all(len(c.token_ids) == 5 for g in out for c in g), "precondition: no row stopped early"
    decode = [k for t, k in puts if t > 0]
    assert decode == ["x"] * 4, decode  # steps 1-4: the embedding only
    # the prefill: its embedding, and each layer's attention output (SDPA's, copied)
    assert [k for t, k in puts if t == 0] == ["x"] + ["o"] * model.config.num_hidden_layers
    # With finished rows compacted out of the batch, the rows are scattered in: every kind is put.
    puts.clear()
    sample("qwen2", {}, compact_threshold=0.0)
    assert {k for t, k in puts if t > 1} == {"x", "qkv", "o", "x2", "gu"}
    with torch.no_grad():
        packable = fast.can_pack(fast.FastLM(model).weights())
    if packable:  # float32 products through MKL (Intel CPUs): the decode's layers in one call
        monkeypatch.setattr(fast, "USE_DECODE_LAYERS", True)
        for threshold in (1.0, 0.0):  # every row in the batch; finished rows leaving it
            puts.clear()
            sample("qwen2", {}, compact_threshold=threshold)
            assert [k for t, k in puts if t > 0] == []
