"""Reward registry, the weighted composite reward, and the time budget of a batch of rewards.

**Budget.** A GRPO step grades all its completions before it can go on, and one grader call may take its whole
timeout (a math answer such as ``9^{9^{9}}`` costs math-verify ``timeout_s``), so a step full of such answers would
stall. :meth:`CompositeReward.budget` bounds a batch: ``grading_budget_s`` seconds per completion on average (a task
attribute; e.g. :class:`r1.tasks.math.MathTask`), at least :data:`MIN_BATCH_BUDGET_S`. Graders see what is left
through :func:`time_left` (the math grader shortens its timeout to it), and completions reached after the budget
is spent are not graded: every part is None (left out of that part's statistics) and the total 0, and a warning
counts them. Tasks without ``grading_budget_s`` (code: the sandbox has its own limits) are not bounded.

Left out: grading in parallel; a budget per completion (each grader has its own timeout).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any, Callable, Iterator, Optional

from r1.data.sample import Sample
from r1.registry import Registry

logger = logging.getLogger(__name__)

RewardFn = Callable[..., Optional[float]]
REWARDS: Registry[RewardFn] = Registry("reward")

#: The least time (s) a budgeted batch gets, however few completions it has (the first grading call of a process
#: imports sympy and math-verify, about 1-2 s).
MIN_BATCH_BUDGET_S = 10.0

_budget = threading.local()


def time_left() -> float | None:
    """Seconds left of the reward batch's budget on this thread (negative once spent); None outside a budget."""
    deadline = getattr(_budget, "deadline", None)
    return None if deadline is None else deadline - time.monotonic()


class CompositeReward:
    """``total = Σ weight_i * part_i`` (a ``None`` part adds 0). Parts are returned for logging as ``reward/<name>``.

    Args:
        parts: list of ``(name, weight, params)``, optionally ``+ (label, source)``: the part's name in the details
            (default ``name``) and the prompt source it scores (``sample.meta["source"]``; "" = every sample). Each
            name is looked up in ``REWARDS`` at construction.
        task: the task whose grader the accuracy reward calls; its ``grading_budget_s`` (seconds per completion,
            None = unbounded) sets :meth:`budget`.
    """

    def __init__(self, parts: list[tuple], task):
        self.task = task
        # (label, weight, params, fn, source): a part is (name, weight, params[, label[, source]])
        self.parts = [(p[3] if len(p) > 3 and p[3] else p[0], float(p[1]), dict(p[2]), REWARDS.get(p[0]),
                       p[4] if len(p) > 4 else "") for p in parts]
        names = [p[0] for p in self.parts]
        if len(set(names)) != len(names):
            from r1.errors import R1Error

            raise R1Error(f"reward names must be unique in a composite, got {names}")
        budget = getattr(task, "grading_budget_s", None)
        self.budget_per_completion_s: float | None = None if budget is None else float(budget)
        #: Completions not graded because their batch's budget was spent, over this object's life.
        self.num_over_budget = 0

    @property
    def names(self) -> list[str]:
        return [p[0] for p in self.parts]

    @contextlib.contextmanager
    def budget(self, num_completions: int) -> Iterator[None]:
        """Bound the grading of the next ``num_completions`` calls (one GRPO rollout) to ``budget_per_completion_s
        × num_completions`` seconds (at least :data:`MIN_BATCH_BUDGET_S`); calls after that score 0, ungraded, and
        one warning per batch counts them. Without a per-completion budget this does nothing.

        Example: ``with reward.budget(64): scores = [reward(c, s) for c in completions]``.
        """
        per = self.budget_per_completion_s
        if per is None or per <= 0:
            yield
            return
        seconds = max(MIN_BATCH_BUDGET_S, per * num_completions)
        outer = getattr(_budget, "deadline", None)
        _budget.deadline = time.monotonic() + seconds if outer is None else min(outer, time.monotonic() + seconds)
        before = self.num_over_budget
        try:
            yield
        finally:
            _budget.deadline = outer
            skipped = self.num_over_budget - before
            if skipped:
                logger.warning(
                    "rewards: the grading budget of %.0f s for %d completions ran out; %d of them scored 0 without "
                    "grading (%d so far)", seconds, num_completions, skipped, self.num_over_budget,
                )

    def __call__(self, completion: str, sample: Sample) -> tuple[float, dict[str, Optional[float]]]:
        left = time_left()
        if left is not None and left <= 0:
            self.num_over_budget += 1
            return 0.0, {name: None for name in self.names}
        total, detail = 0.0, {}
        for name, weight, params, fn, source in self.parts:
            if source and sample.meta.get("source") != source:
                detail[name] = None  # this part scores another prompt source (a mixture task's)
                continue
            r = fn(completion, sample, task=self.task, **params)
            detail[name] = None if r is None else float(r)
            if r is not None:
                total += weight * float(r)
        return total, detail
