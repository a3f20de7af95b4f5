"""Reward registry and the weighted composite reward."""

from __future__ import annotations

from typing import Any, Callable, Optional

from r1.data.sample import Sample
from r1.registry import Registry

RewardFn = Callable[..., Optional[float]]
REWARDS: Registry[RewardFn] = Registry("reward")


class CompositeReward:
    """``total = Σ weight_i * part_i`` (a ``None`` part adds 0). Parts are returned for logging as ``reward/<name>``.

    Args:
        parts: list of ``(name, weight, params)``; each name is looked up in ``REWARDS`` at construction.
        task: the task whose grader the accuracy reward calls.
    """

    def __init__(self, parts: list[tuple[str, float, dict[str, Any]]], task):
        self.task = task
        self.parts = [(name, float(weight), dict(params), REWARDS.get(name)) for name, weight, params in parts]
        names = [p[0] for p in self.parts]
        if len(set(names)) != len(names):
            from r1.errors import R1Error

            raise R1Error(f"reward names must be unique in a composite, got {names}")

    @property
    def names(self) -> list[str]:
        return [p[0] for p in self.parts]

    def __call__(self, completion: str, sample: Sample) -> tuple[float, dict[str, Optional[float]]]:
        total, detail = 0.0, {}
        for name, weight, params, fn in self.parts:
            r = fn(completion, sample, task=self.task, **params)
            detail[name] = None if r is None else float(r)
            if r is not None:
                total += weight * float(r)
        return total, detail
