"""Activation checkpointing in the lean train forward (``FastLM.checkpoint_layers``, ``grpo.activation_checkpointing``)
against the plain pass, its reference: the same logprobs, entropies, loss and gradients, and less kept for the
backward.

Run: ``python -m pytest tests/models/test_checkpointing.py -q``.
"""

import pytest
import torch

from tests.models.test_policy_head import Batch, ids_of, sampled, forward_for


GEN = torch.Generator().manual_seed(1)


def _pass(pf, batch, rows, tc, ids, weight):
    pf.policy.zero_grad()
    logps, ent = pf.policy_logprobs(batch, rows, tc, ids, 1.5, chunk_size=5)
    loss = (logps * weight).sum() + 0.3 * ent.sum()  # the entropy's gradient too
    loss.backward()
    assert not any(p.grad.is_sparse for p in pf.policy.parameters())  # a tied embedding's sparse part summed in
    return logps.detach(), ent.detach(), loss.detach(), [p.grad.clone() for p in pf.policy.parameters()]


@pytest.mark.parametrize("arch,extra", [("qwen2", {}), ("llama", {"tie_word_embeddings": True, "mlp_bias": True})])
@pytest.mark.parametrize("fused_head", [True, False])
def test_checkpointed_train_forward_equals_the_plain_one(arch, extra, fused_head):
    """Ragged completions (padding, a prompt shared by its group), all rows and a subset, tied and untied heads,
    the fused head and full logits: logprobs, entropy, loss and every parameter's gradient equal within fp32."""
    model, tok, full = sampled(arch, extra)
    batch = Batch(full.prompt_ids, full.completion_ids)  # no record: the lean forward, not the replay
    pf = forward_for(model, tok, "lean")
    pf.fused_head = fused_head
    assert pf.lean_policy is not None
    for rows in (list(range(len(full.completion_ids))), [0, 2, 3, 7, 8, 10]):
        tc = max(len(full.completion_ids[r]) for r in rows)
        args = (batch, rows, tc, ids_of(full, rows, tc), torch.randn(len(rows), tc).normal_(generator=GEN))
        out = []
        for ckpt in (False, True):
            pf.lean_policy.checkpoint_layers = ckpt
            out.append(_pass(pf, *args))
        (lp0, ent0, loss0, g0), (lp1, ent1, loss1, g1) = out
        torch.testing.assert_close(lp1, lp0, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ent1, ent0, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(loss1, loss0, rtol=1e-5, atol=1e-5)
        assert any(g.abs().sum() > 0 for g in g0)
        for a, b in zip(g1, g0):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_checkpointing_keeps_less_for_the_backward():
    """The bytes autograd saves for the backward (saved-tensor hooks) shrink with checkpointing: the decoder
    layers' activations are not kept, only their inputs."""
    model, tok, full = sampled("qwen2", {})
    batch = Batch(full.prompt_ids, full.completion_ids)
    pf = forward_for(model, tok, "lean")
    rows = list(range(len(full.completion_ids)))
    tc = max(map(len, full.completion_ids))
    ids = ids_of(full, rows, tc)
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved = {}
    for ckpt in (False, True):
        pf.lean_policy.checkpoint_layers = ckpt
        seen: dict[int, int] = {}

        def pack(t):
            if t.layout == torch.strided and t.numel() > 0 and t.untyped_storage().data_ptr() not in params:
                seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            logps, _ = pf.policy_logprobs(batch, rows, tc, ids, 1.0)
        saved[ckpt] = sum(seen.values())
        logps.sum().backward()  # the checkpointed graph still runs its backward
    assert saved[True] < 0.6 * saved[False], saved


def test_grpo_config_switches_it_on(tmp_path):
    """``grpo.activation_checkpointing`` reaches the trainer's lean forward; a 2-step run without the replay (the
    lean train forward) gives the same metrics and weights with and without it."""
    from r1.train.grpo import GRPOTrainer
    from tests.train.test_grpo import tiny_cfg

    runs = []
    for ckpt in (False, True):
        over = ["grpo.kl_coef=0.1", "grpo.replay_rollout=false", f"grpo.activation_checkpointing={ckpt}"]
        t = GRPOTrainer(tiny_cfg(tmp_path, f"ckpt{ckpt}", *over))
        assert t.policy_forward.lean_policy.checkpoint_layers is ckpt
        metrics = []
        t.train(on_step_end=lambda step, m: metrics.append(m))
        runs.append((metrics, [p.detach().clone() for p in t.model.parameters()]))
    (m0, p0), (m1, p1) = runs
    for a, b in zip(m1, m0):
        for k in ("loss", "kl", "entropy", "grad_norm"):
            assert a[k] == pytest.approx(b[k], rel=1e-4, abs=1e-6), k
    for a, b in zip(p1, p0):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
