"""Rewards (registry ``REWARDS``) and the weighted composite.

A reward is ``fn(completion: str, sample: Sample, *, task: Task, **params) -> float | None``; ``None`` means "not
applicable" and is excluded from that part's statistics (it counts as 0 in the total). Rewards are pure.
"""

from r1.rewards.base import REWARDS, CompositeReward

REWARDS.register("accuracy", "r1.rewards.rules:accuracy_reward")
REWARDS.register("format", "r1.rewards.rules:format_reward")
REWARDS.register("format_tags", "r1.rewards.rules:format_tags_reward")
REWARDS.register("readable_format", "r1.rewards.rules:readable_format_reward")
REWARDS.register("code", "r1.rewards.code:code_reward")
REWARDS.register("language", "r1.rewards.language:language_reward")
REWARDS.register("reward_model", "r1.rewards.reward_model:reward_model_reward")

__all__ = ["REWARDS", "CompositeReward"]
