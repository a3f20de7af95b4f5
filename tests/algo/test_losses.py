"""Clipped policy loss (token / GSPO sequence level) and loss aggregations.

Run: ``pytest tests/algo/test_losses.py -q``.
"""

import math

import pytest
import torch

from r1.algo import IS_LEVELS, LOSS_AGGS, aggregate_loss, compute_policy_loss
from r1.errors import R1Error

from reference import algo_ref as ref

ALL_MASK = torch.ones(3, 1, dtype=torch.bool)


# ------------------------------------------------------------------------------------------------- hand-computed
def test_token_level_hand_computed():
    # w = [1.5, 1.5, 0.5], A = [+1, -1, +1], ε = 0.2 -> clamp(w) = [1.2, 1.2, 0.8]
    # row 0: -min(1.5 * 1, 1.2 * 1) = -1.2      clipped (A > 0, w > 1.2)
    # row 1: -min(-1.5, -1.2)       = 1.5       not clipped: the unclipped term is the pessimistic one
    # row 2: -min(0.5, 0.8)         = -0.5      not clipped (A > 0, w < 0.8: no lower clip for positive A)
    logps = torch.log(torch.tensor([[1.5], [1.5], [0.5]]))
    loss, clipped = compute_policy_loss(logps, torch.zeros(3, 1), torch.tensor([1.0, -1.0, 1.0]), ALL_MASK)
    torch.testing.assert_close(loss, torch.tensor([[-1.2], [1.5], [-0.5]]))
    assert clipped.squeeze(1).tolist() == [True, False, False]


def test_negative_advantage_lower_clip_hand_computed():
    # w = 0.5, A = -2, ε_low = 0.2: -min(0.5 * -2, 0.8 * -2) = -min(-1.0, -1.6) = 1.6, clipped (A < 0, w < 0.8)
    logps, old, adv, mask = torch.log(torch.tensor([[0.5]])), torch.zeros(1, 1), torch.tensor([-2.0]), ALL_MASK[:1]
    loss, clipped = compute_policy_loss(logps, old, adv, mask)
    torch.testing.assert_close(loss, torch.tensor([[1.6]]))
    assert clipped.item()


def test_clip_higher_hand_computed():
    # DAPO clip-higher: w = 1.25, A = 1
    # ε_high = 0.2:  -min(1.25, 1.2) = -1.2   (clipped)
    # ε_high = 0.28: -min(1.25, 1.25) = -1.25 (1.25 < 1.28, not clipped: the token still gets gradient)
    logps, old, adv, mask = torch.log(torch.tensor([[1.25]])), torch.zeros(1, 1), torch.ones(1), ALL_MASK[:1]
    loss, clipped = compute_policy_loss(logps, old, adv, mask, clip_low=0.2, clip_high=0.2)
    assert math.isclose(loss.item(), -1.2, rel_tol=1e-6) and clipped.item()
    loss, clipped = compute_policy_loss(logps, old, adv, mask, clip_low=0.2, clip_high=0.28)
    assert math.isclose(loss.item(), -1.25, rel_tol=1e-6) and not clipped.item()


def test_gspo_hand_computed():
    # valid log-ratios [0.3, -0.1] -> mean 0.1 -> s = e^0.1 = 1.10517 on both tokens; A = 1, ε = 0.2: in range,
    # loss = -min(1.10517, 1.10517) = -1.10517 per token; the 3rd token is masked, its huge ratio must not count
    logps = torch.tensor([[0.3, -0.1, 50.0]])
    mask = torch.tensor([[True, True, False]])
    loss, clipped = compute_policy_loss(logps, torch.zeros(1, 3), torch.ones(1), mask, is_level="sequence")
    torch.testing.assert_close(loss, torch.tensor([[-1.10517, -1.10517, 0.0]]), atol=1e-5, rtol=0)
    assert not clipped.any()


def test_masked_positions_are_zero_and_unclipped():
    # garbage at pad positions: exp(1e4) overflows to inf, NaN old logps; none of it may reach loss or gradient
    mask = torch.tensor([[True, False, False]])
    old = torch.tensor([[0.0, 0.0, float("nan")]])
    for level in IS_LEVELS.names():
        logps = torch.tensor([[0.1, 1e4, 0.0]], requires_grad=True)
        loss, clipped = compute_policy_loss(logps, old, torch.ones(1), mask, is_level=level)
        assert loss[0, 1:].tolist() == [0.0, 0.0] and not clipped[0, 1:].any()
        aggregate_loss(loss, mask, "token_mean").backward()
        assert torch.isfinite(loss).all() and torch.isfinite(logps.grad).all()
        assert logps.grad[0, 1:].tolist() == [0.0, 0.0]


def test_aggregations_hand_computed():
    # loss = 1 on every valid token; row 0 has 3 valid tokens, row 1 has 1; T = 4 (pad positions hold 7, ignored)
    # token_mean          = (3 + 1) / 4       = 1.0
    # seq_mean_token_mean = (3/3 + 1/1) / 2   = 1.0
    # constant            = (3 + 1) / (2 * 4) = 0.5
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    loss = torch.where(mask, 1.0, 7.0)
    assert aggregate_loss(loss, mask, "token_mean").item() == 1.0
    assert aggregate_loss(loss, mask, "seq_mean_token_mean").item() == 1.0
    assert aggregate_loss(loss, mask, "constant").item() == 0.5
    # where they differ: row 0 loss 2 per token, row 1 loss 4
    # token_mean          = (3*2 + 4) / 4          = 2.5
    # seq_mean_token_mean = (6/3 + 4/1) / 2        = 3.0
    # constant            = 10 / (2 * 4)           = 1.25; with max_len = 10: 10 / 20 = 0.5
    loss = torch.tensor([[2.0, 2, 2, 0], [4, 0, 0, 0]])
    assert aggregate_loss(loss, mask, "token_mean").item() == 2.5
    assert aggregate_loss(loss, mask, "seq_mean_token_mean").item() == 3.0
    assert aggregate_loss(loss, mask, "constant").item() == 1.25
    assert aggregate_loss(loss, mask, "constant", max_len=10).item() == 0.5


def test_seq_mean_empty_row_contributes_zero():
    # rows: [1, 1] -> mean 1; empty row -> 0; average over num_seqs = 2 -> 0.5
    mask = torch.tensor([[True, True], [False, False]])
    assert aggregate_loss(torch.ones(2, 2), mask, "seq_mean_token_mean").item() == 0.5
    assert aggregate_loss(torch.ones(2, 2), torch.zeros(2, 2, dtype=torch.bool), "token_mean").item() == 0.0


# ------------------------------------------------------------------------------------ fast vs reference, random
@pytest.mark.parametrize("is_level", ["token", "sequence"])
@pytest.mark.parametrize("seed", range(3))
def test_policy_loss_matches_reference(is_level, seed):
    b = ref.random_grouped_batch(seed)
    clip_low, clip_high = [(0.2, 0.2), (0.2, 0.28), (0.1, 0.4)][seed]
    logps_fast = b["logps"].clone().requires_grad_(True)
    logps_ref = b["logps"].clone().requires_grad_(True)
    args = (b["old_logps"], b["advantages"], b["mask"], clip_low, clip_high, is_level)
    loss, clipped = compute_policy_loss(logps_fast, *args)
    loss_ref, clipped_ref = ref.ref_policy_loss(logps_ref, *args)
    torch.testing.assert_close(loss, loss_ref)
    assert torch.equal(clipped, clipped_ref)
    assert 0 < clipped.sum() < b["mask"].sum()  # the random data exercises both branches
    # gradients through a random weighting of the per-token losses
    w = torch.rand(loss.shape, generator=torch.Generator().manual_seed(seed))
    (g_fast,) = torch.autograd.grad((loss * w).sum(), logps_fast)
    (g_ref,) = torch.autograd.grad((loss_ref * w).sum(), logps_ref)
    torch.testing.assert_close(g_fast, g_ref)
    if is_level == "token":
        assert torch.all(g_fast[clipped] == 0)  # clipped tokens carry no gradient


@pytest.mark.parametrize("agg", ["token_mean", "seq_mean_token_mean", "constant"])
@pytest.mark.parametrize("seed", range(3))
def test_aggregate_matches_reference(agg, seed):
    b = ref.random_grouped_batch(seed)
    per_token = torch.randn(b["mask"].shape, generator=torch.Generator().manual_seed(seed))
    fast_in = per_token.clone().requires_grad_(True)
    ref_in = per_token.clone().requires_grad_(True)
    for kwargs in ({}, {"num_seqs": 20, "num_tokens": 33.0, "max_len": 11}):
        out = aggregate_loss(fast_in, b["mask"], agg, **kwargs)
        expected = ref.ref_aggregate_loss(ref_in, b["mask"], agg, **kwargs)
        torch.testing.assert_close(out, expected)
        (g_fast,) = torch.autograd.grad(out, fast_in)
        (g_ref,) = torch.autograd.grad(expected, ref_in)
        torch.testing.assert_close(g_fast, g_ref)
        assert torch.all(g_fast[~b["mask"]] == 0)


# ----------------------------------------------------------------------------------------- gradient accumulation
@pytest.mark.parametrize("agg", ["token_mean", "seq_mean_token_mean", "constant"])
def test_grad_accumulation_micro_batches_sum_to_full(agg):
    b = ref.random_grouped_batch(7, num_prompts=3, group_size=3)  # N = 9
    n = b["mask"].shape[0]
    logps = b["logps"].clone().requires_grad_(True)
    loss, _ = compute_policy_loss(logps, b["old_logps"], b["advantages"], b["mask"])
    full = aggregate_loss(loss, b["mask"], agg)
    (g_full,) = torch.autograd.grad(full, logps)

    # the minibatch's normalisers, handed to every micro-batch
    norms = {"num_seqs": n, "num_tokens": b["mask"].sum(), "max_len": b["mask"].shape[1]}
    logps_acc = b["logps"].clone().requires_grad_(True)
    total = torch.zeros(())
    for rows in (slice(0, 2), slice(2, 5), slice(5, 9)):  # 3 uneven micro-batches
        loss_mb, _ = compute_policy_loss(
            logps_acc[rows], b["old_logps"][rows], b["advantages"][rows], b["mask"][rows]
        )
        mb = aggregate_loss(loss_mb, b["mask"][rows], agg, **norms)
        mb.backward()  # gradients accumulate in logps_acc.grad, as in a trainer
        total = total + mb.detach()
    torch.testing.assert_close(total, full.detach())
    torch.testing.assert_close(logps_acc.grad, g_full)


# ------------------------------------------------------------------------------------------------------------ GSPO
def test_gspo_on_policy_ratio_is_one():
    b = ref.random_grouped_batch(3)
    loss, clipped = compute_policy_loss(b["old_logps"], b["old_logps"], b["advantages"], b["mask"], is_level="sequence")
    # s_i = exp(0) = 1 -> loss = -A_i on every valid token
    expected = torch.where(b["mask"], -b["advantages"][:, None], 0.0)
    torch.testing.assert_close(loss, expected)
    assert not clipped.any()


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("spread", [0.0, 0.05, 0.6])  # on-policy; all within the clip range; much clipping
def test_gspo_gradient_equals_sequence_objective(seed, spread):
    b = ref.random_grouped_batch(seed)
    keep = b["mask"].any(dim=1)  # GSPO's objective is over non-empty sequences
    mask, old, adv = b["mask"][keep], b["old_logps"][keep], b["advantages"][keep]
    noise = torch.randn(old.shape, generator=torch.Generator().manual_seed(100 + seed))
    base = old + spread * noise
    logps = base.clone().requires_grad_(True)
    loss, clipped = compute_policy_loss(logps, old, adv, mask, 0.2, 0.2, is_level="sequence")
    # GSPO-token with the GRPO normaliser is GSPO: (1/N) Σ_i (1/|y_i|) Σ_t
    agg = aggregate_loss(loss, mask, "seq_mean_token_mean")
    (g,) = torch.autograd.grad(agg, logps)

    logps_ref = base.clone().requires_grad_(True)
    objective = ref.ref_gspo_objective_loss(logps_ref, old, adv, mask, 0.2, 0.2)
    (g_ref,) = torch.autograd.grad(objective, logps_ref)
    torch.testing.assert_close(agg, objective)
    torch.testing.assert_close(g, g_ref)
    # the clip decision is per sequence: a row is clipped on all of its valid tokens or on none
    per_row = clipped.sum(1)
    assert torch.all((per_row == 0) | (per_row == mask.sum(1)))
    if spread > 0.5:
        assert 0 < clipped.any(1).sum() < len(adv)  # both clipped and unclipped sequences are exercised


# ------------------------------------------------------------------------------------------------------ registries
def test_unknown_names_list_valid_ones():
    x, m = torch.zeros(2, 3), torch.ones(2, 3, dtype=torch.bool)
    with pytest.raises(R1Error) as e:
        compute_policy_loss(x, x, torch.zeros(2), m, is_level="tok")
    assert "token" in str(e.value) and "sequence" in str(e.value)
    with pytest.raises(R1Error) as e:
        aggregate_loss(x, m, "seq_mean")
    for name in ("token_mean", "seq_mean_token_mean", "constant"):
        assert name in str(e.value)
    assert IS_LEVELS.names() == ["sequence", "token"]
    assert LOSS_AGGS.names() == ["constant", "seq_mean_token_mean", "token_mean"]
