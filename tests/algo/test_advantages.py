"""Group advantages and the zero-variance filter. Run: ``pytest tests/algo/test_advantages.py -q``."""

import math

import pytest
import torch

from r1.algo import ADV_NORMS, compute_group_advantages, group_zero_variance
from r1.errors import R1Error

from reference import algo_ref as ref


def test_group_std_hand_computed():
    # group 0 = [1, 0, 0, 0]: mean 0.25; deviations [0.75, -0.25, -0.25, -0.25]
    #   Σdev² = 0.5625 + 3 * 0.0625 = 0.75; Bessel var = 0.75 / 3 = 0.25; std = 0.5
    #   adv = dev / 0.5 = [1.5, -0.5, -0.5, -0.5]
    # group 1 = [1, 1, 0, 0]: mean 0.5; Σdev² = 4 * 0.25 = 1; var = 1/3; std = 0.57735
    #   adv = ±0.5 / 0.57735 = ±0.86603
    rewards = torch.tensor([1.0, 0, 0, 0, 1, 1, 0, 0])
    adv = compute_group_advantages(rewards, group_size=4, norm="group_std", eps=0.0)
    expected = torch.tensor([1.5, -0.5, -0.5, -0.5, 0.86603, 0.86603, -0.86603, -0.86603])
    torch.testing.assert_close(adv, expected, atol=1e-5, rtol=0)


def test_group_std_eps_and_zero_variance_group():
    # group 0 = [1, 0]: mean 0.5, std = sqrt((0.25 + 0.25) / 1) = 0.70711; 0.5 / (0.70711 + 1e-4) = 0.70700
    # group 1 = [0, 0]: centred 0, std 0 -> 0 / (0 + 1e-4) = 0 (not NaN)
    adv = compute_group_advantages(torch.tensor([1.0, 0, 0, 0]), group_size=2)
    torch.testing.assert_close(adv, torch.tensor([0.70700, -0.70700, 0.0, 0.0]), atol=1e-5, rtol=0)


def test_bessel_correction_matches_torch_std():
    # the documented choice: torch.std's default (unbiased, /(G-1)), as TRL does
    r = torch.tensor([0.2, 1.0, 0.0, 0.7, 0.3])
    adv = compute_group_advantages(r, group_size=5, eps=0.0)
    torch.testing.assert_close(adv, (r - r.mean()) / r.std())


def test_batch_std_hand_computed():
    # rewards [1, 0 | 0, 0]: group means [0.5, 0]; centred [0.5, -0.5, 0, 0]
    # batch: mean 0.25, Σdev² = 0.5625 + 3 * 0.0625 = 0.75, var = 0.75 / 3 = 0.25, std = 0.5
    # adv = centred / 0.5 = [1, -1, 0, 0]
    adv = compute_group_advantages(torch.tensor([1.0, 0, 0, 0]), group_size=2, norm="batch_std", eps=0.0)
    torch.testing.assert_close(adv, torch.tensor([1.0, -1.0, 0.0, 0.0]))


def test_none_is_centred_reward():
    # Dr. GRPO: r - mean_g = [1 - 0.5, 0 - 0.5, 0.3 - 0.2, 0.1 - 0.2]
    adv = compute_group_advantages(torch.tensor([1.0, 0.0, 0.3, 0.1]), group_size=2, norm="none")
    torch.testing.assert_close(adv, torch.tensor([0.5, -0.5, 0.1, -0.1]))


def test_group_of_one_gives_zeros_not_nan():
    for norm in ADV_NORMS.names():
        adv = compute_group_advantages(torch.tensor([1.0, 0.0, 0.5]), group_size=1, norm=norm)
        assert torch.equal(adv, torch.zeros(3)), norm


def test_integer_rewards_are_promoted():
    adv = compute_group_advantages(torch.tensor([1, 0, 1, 1]), group_size=2, norm="none")
    assert adv.dtype == torch.float32
    torch.testing.assert_close(adv, torch.tensor([0.5, -0.5, 0.0, 0.0]))


@pytest.mark.parametrize("norm", ["group_std", "batch_std", "none"])
@pytest.mark.parametrize("seed", range(4))
def test_matches_reference_on_random_groups(norm, seed):
    g = torch.Generator().manual_seed(seed)
    group_size = [2, 3, 4, 8][seed]
    discrete = ref.random_grouped_batch(seed, num_prompts=5, group_size=group_size)["rewards"]
    continuous = torch.randn(5 * group_size, generator=g, dtype=torch.float64)
    for rewards in (discrete, continuous):
        adv = compute_group_advantages(rewards, group_size, norm=norm, eps=1e-4)
        expected = ref.ref_group_advantages(rewards, group_size, norm, 1e-4)
        torch.testing.assert_close(adv.double(), expected, atol=1e-5, rtol=1e-5)
        # every group's advantages sum to 0: the group mean is the baseline
        assert adv.view(-1, group_size).sum(1).abs().max() < 1e-4


def test_zero_variance_hand_computed():
    # groups: [1, 1] all equal; [0, 1] differ; [0.5, 0.5] all equal
    flags = group_zero_variance(torch.tensor([1.0, 1, 0, 1, 0.5, 0.5]), group_size=2)
    assert flags.tolist() == [True, False, True]


@pytest.mark.parametrize("seed", range(4))
def test_zero_variance_matches_reference(seed):
    rewards = ref.random_grouped_batch(seed, num_prompts=6, group_size=3)["rewards"]
    flags = group_zero_variance(rewards, 3)
    assert torch.equal(flags, ref.ref_group_zero_variance(rewards, 3))
    # a zero-variance group is exactly a group whose advantages are all 0
    adv = compute_group_advantages(rewards, 3).view(-1, 3)
    assert torch.equal(flags, (adv == 0).all(dim=1))


def test_unknown_norm_lists_valid_names():
    with pytest.raises(R1Error) as e:
        compute_group_advantages(torch.zeros(4), 2, norm="rloo")
    for name in ("group_std", "batch_std", "none", "rloo"):
        assert name in str(e.value)


def test_bad_shapes_raise():
    with pytest.raises(ValueError):
        compute_group_advantages(torch.zeros(5), 2)
    with pytest.raises(ValueError):
        group_zero_variance(torch.zeros(2, 2), 2)


def test_registry_contents():
    assert ADV_NORMS.names() == ["batch_std", "group_std", "none"]
    assert not math.isnan(compute_group_advantages(torch.ones(4), 4).sum().item())
