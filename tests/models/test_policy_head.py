"""The trainer's logprobs through the fused head (``PolicyForward.policy_logprobs`` / ``reference_logprobs``) against
the plain path over full logits (``fused_head = False``), in each of the three passes (the replay of the rollout's
record, the lean forward, the ``transformers`` forward), and a GRPO run's metrics and weights either way.

Run: ``python -m pytest tests/models/test_policy_head.py -q``.
"""

from dataclasses import dataclass

import pytest
import torch

from r1.models.policy import PolicyForward
from r1.models.tokenizer import build_byte_tokenizer
from r1.rollout.base import SamplingParams
from r1.rollout.native import NativeEngine
from tests.algo.test_chunked_head import LargestTensor
from tests.models.test_fast import tiny
from tests.tolerance import assert_grad_close

VOCAB = 4096  # more than the byte tokenizer's ids: the logits are the largest tensor a pass could make
TEXTS = ["ab", "hello", "ab", "xyz1"]
MAX_NEW = 8
PASSES = ["replay", "lean", "transformers"]


@dataclass
class Batch:
    prompt_ids: list
    completion_ids: list
    record: object = None
    record_rows: list | None = None


def sampled(arch, extra):
    tok = build_byte_tokenizer()
    model = tiny(arch, vocab_size=VOCAB, **extra)
    model.generation_config.eos_token_id = [tok.eos_token_id, *range(60, 100)]  # rows stop at different steps
    prompts = [tok.encode(t, add_special_tokens=False) for t in TEXTS]
    engine = NativeEngine(model, tok, compact_threshold=0.0)
    g = torch.Generator().manual_seed(0)
    out = engine.generate(prompts, 3, SamplingParams(temperature=1.0, max_new_tokens=MAX_NEW), g, record=True)
    comps = [c.token_ids for group in out for c in group]
    batch = Batch([p for p in prompts for _ in range(3)], comps, engine.last_record, list(range(len(comps))))
    return model, tok, batch


def forward_for(model, tok, pass_name):
    pf = PolicyForward(model, model, tok.pad_token_id)
    pf.use_lean = pass_name != "transformers"
    return pf


def batch_for(batch, pass_name):
    return batch if pass_name == "replay" else Batch(batch.prompt_ids, batch.completion_ids)


def ids_of(batch, rows, tc):
    ids = torch.zeros(len(rows), tc, dtype=torch.long)
    for k, r in enumerate(rows):
        ids[k, : len(batch.completion_ids[r])] = torch.tensor(batch.completion_ids[r])
    return ids


@pytest.mark.parametrize("arch,extra", [("qwen2", {}), ("llama", {"tie_word_embeddings": True, "mlp_bias": True})])
@pytest.mark.parametrize("pass_name", PASSES)
def test_fused_head_gives_the_plain_logprobs_entropy_and_gradient(arch, extra, pass_name):
    """Untied and tied heads; temperature 1.5; a subset of rows (the replay's micro-batch case) and all rows."""
    model, tok, full = sampled(arch, extra)
    assert len(set(map(len, full.completion_ids))) > 1  # padding is exercised
    pf = forward_for(model, tok, pass_name)
    batch = batch_for(full, pass_name)
    for rows in (list(range(len(full.completion_ids))), [0, 2, 3, 7, 8, 10]):
        tc = max(len(full.completion_ids[r]) for r in rows)
        ids = ids_of(full, rows, tc)
        w = torch.randn(len(rows), tc, generator=torch.Generator().manual_seed(1))
        results = []
        for fused in (False, True):
            pf.fused_head = fused
            model.zero_grad()
            logps, ent = pf.policy_logprobs(batch, rows, tc, ids, 1.5, chunk_size=5)
            (logps * w).sum().backward()
            ref = pf.reference_logprobs(batch, rows, tc, ids, 1.5, chunk_size=5)
            results.append((logps.detach(), ent.detach(), ref, [p.grad.clone() for p in model.parameters()]))
        (lp0, ent0, ref0, g0), (lp1, ent1, ref1, g1) = results
        torch.testing.assert_close(lp1, lp0, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ent1, ent0, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(ref1, lp0, rtol=1e-5, atol=1e-5)  # the reference here is the policy itself
        for a, b in zip(g1, g0):
            assert_grad_close(a, b)


def tied_pass(pass_name):
    """A tied-head model's sampled batch and its forward through ``pass_name``, every row: (model, forward, batch
    as the pass reads it, the sampled batch, rows, longest completion, token ids)."""
    model, tok, full = sampled("qwen2", {"tie_word_embeddings": True})
    rows = list(range(len(full.completion_ids)))
    tc = max(map(len, full.completion_ids))
    return model, forward_for(model, tok, pass_name), batch_for(full, pass_name), full, rows, tc, ids_of(full, rows, tc)


@pytest.mark.parametrize("pass_name", PASSES)
def test_no_pass_makes_the_full_logits(pass_name):
    """Forward + backward of the train pass and the reference pass: no tensor of (rows, tokens, vocabulary) size
    (the plain path's logits are one: the check sees them)."""
    model, pf, batch, full, rows, tc, ids = tied_pass(pass_name)
    full_size = len(rows) * tc * VOCAB
    for fused in (True, False):
        pf.fused_head = fused
        with LargestTensor() as mode:
            logps, _ = pf.policy_logprobs(batch, rows, tc, ids, 1.0, chunk_size=4)
            logps.sum().backward()
            with torch.no_grad():
                pf.reference_logprobs(batch, rows, tc, ids, 1.0, chunk_size=4)
        assert (mode.largest < full_size) == fused, (fused, mode.largest, full_size)


@pytest.mark.parametrize("extra", [[], ["grpo.replay_rollout=false"], ["model.dtype=bf16"]])
@pytest.mark.filterwarnings("ignore:.*bf16.*")
def test_grpo_run_is_unchanged_by_the_fused_head(tmp_path, extra, monkeypatch):
    """A seeded 2-step GRPO run (β > 0, temperature 1.5, the policy moved off the reference) with the fused head and
    with the plain path: the same metrics and weights (the replayed train pass, the lean one, and bf16 autocast to
    bfloat16's precision)."""
    from r1.train.grpo import GRPOTrainer
    from tests.train.test_grpo import tiny_cfg

    runs = []
    for fused in (True, False):
        over = ["grpo.kl_coef=0.1", "rollout.temperature=1.5", *extra]
        t = GRPOTrainer(tiny_cfg(tmp_path, f"fused{fused}", *over))
        t.policy_forward.fused_head = fused
        with torch.no_grad():  # the policy off the reference: a KL term well above rounding (the rewards are all 0)
            g = torch.Generator().manual_seed(0)
            for p in t.model.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=g))
        metrics = []
        t.train(on_step_end=lambda step, m: metrics.append(m))
        runs.append((metrics, [p.detach().clone() for p in t.model.parameters()]))
    (m1, p1), (m0, p0) = runs
    assert m0[0]["kl"] > 1e-4  # a live KL term
    bf16 = "model.dtype=bf16" in extra
    for a, b in zip(m1, m0):
        assert a["reward/total"] == b["reward/total"]
        for k in ("loss", "kl", "entropy", "grad_norm", "logprob_diff_rollout_vs_train"):
            assert a[k] == pytest.approx(b[k], rel=2e-2 if bf16 else 1e-4, abs=1e-3 if bf16 else 1e-6), k
    for a, b in zip(p1, p0):
        torch.testing.assert_close(a, b, rtol=1e-3 if bf16 else 1e-5, atol=1e-3 if bf16 else 1e-6)


@pytest.mark.parametrize("extra", [[], ["grpo.replay_rollout=false"], ["model.dtype=bf16"], ["grpo.mu=2"]])
@pytest.mark.filterwarnings("ignore:.*bf16.*")
def test_grpo_run_is_unchanged_by_reusing_the_sampler_logprobs(tmp_path, extra, monkeypatch):
    """The train pass's head given the sampler's logprobs as its forward values (``KnownLogprobs``; blocks of 5
    positions so the tiny vocabulary takes several) against the head computing them: the same metrics (the entropy
    and the rollout-vs-train gap measured by the backward) and weights, over the replay, the lean pass, bf16 autocast
    and μ = 2 (whose second pass, after an update, computes its values); in bf16 it is not taken (the two passes'
    logprobs differ by bfloat16's rounding there, and the k3 KL's coefficient ``1 - exp(ref - logp)`` magnifies it)."""
    import r1.algo.logprobs as logprobs_module
    from r1.train.grpo import GRPOTrainer
    from tests.train.test_grpo import tiny_cfg

    monkeypatch.setattr(logprobs_module, "HEAD_BLOCK_ELEMENTS", 5 * 263)
    used = []
    real = logprobs_module.head_logprobs

    def spy(*args):
        out = real(*args)
        if torch.is_grad_enabled():  # a train pass (the reference's runs without autograd)
            used.append(args[7] is not None and args[7].used)
        return out

    monkeypatch.setattr("r1.models.policy.head_logprobs", spy)
    runs = []
    for reuse in (True, False):
        used.clear()
        over = ["grpo.kl_coef=0.1", "rollout.temperature=1.5", *extra]
        t = GRPOTrainer(tiny_cfg(tmp_path, f"reuse{reuse}", *over))
        t.reuse_rollout_logprobs = reuse
        with torch.no_grad():
            g = torch.Generator().manual_seed(0)
            for p in t.model.parameters():
                p.add_(0.05 * torch.randn(p.shape, generator=g))
        start = [p.detach().clone() for p in t.model.parameters()]
        metrics = []
        t.train(on_step_end=lambda step, m: metrics.append(m))
        moved = [p.detach() - s for p, s in zip(t.model.parameters(), start)]  # the two steps' updates
        runs.append((metrics, moved, any(used), all(used)))
    (m1, p1, any1, all1), (m0, p0, any0, _) = runs
    mu2, bf16 = "grpo.mu=2" in extra, "model.dtype=bf16" in extra
    assert not any0 and any1 != bf16 and all1 == (not mu2 and not bf16)  # every first pass, never after an update
    for a, b in zip(m1, m0):
        assert a["reward/total"] == b["reward/total"]
        for k in ("loss", "kl", "entropy", "grad_norm", "logprob_diff_rollout_vs_train", "clip_fraction"):
            assert a[k] == pytest.approx(b[k], rel=2e-2 if bf16 else 1e-4, abs=1e-3 if bf16 else 1e-6), k
    # the loss's coefficients come from the sampler's values (rounding-level apart from the pass's own), and AdamW's
    # normalisation shows such differences in gradient entries near 0: the updates within 3 % of the learning rate
    # (1e-3; a wrong gradient moves entries by the order of the learning rate)
    for a, b in zip(p1, p0):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=3e-5)
