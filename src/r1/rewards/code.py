"""Code reward for GRPO: run the completion's program against the sample's tests in the sandbox.

``code``: 1.0 if every test passes, else 0.0 (the paper's rule-based reward for code, arXiv 2501.12948 §2.2.2:
"a compiler can be used to generate feedback based on predefined test cases"). With ``partial: true`` the reward
is the share of tests passed (MBPP asserts, stdio cases; HumanEval's ``check`` counts as one test), a denser
signal that open reproductions use for small models.

The program cannot give itself the reward: the tasks judge HumanEval/MBPP asserts outside its process (it only
reports the values it returns, see :mod:`r1.tasks.assert_tests` and docs/sandbox.md "Reward hacks") and compare
stdio output outside. A sandbox failure (``sandbox_error``, retried once by the task; a program cannot claim one)
returns None: the sample is left out of this reward's statistics rather than scored as a fail or a pass. The task must be a code task (``humaneval``,
``mbpp``, ``stdio``), whose ``run_tests`` the evaluation's grader also uses, so reward and evaluation agree.

Deliberately left out: runtime/length bonuses and penalties for slow programs.
"""

from __future__ import annotations

from typing import Optional

from r1.data.sample import Sample
from r1.errors import R1Error


def code_reward(completion: str, sample: Sample, *, task, partial: bool = False, **params) -> Optional[float]:
    """Pass/fail (or share of tests passed with ``partial``) of the completion's program; None on sandbox error.

    Example (MBPP, 3 asserts, a program that passes 2): ``partial=False`` → 0.0, ``partial=True`` → 0.667.
    """
    if params:
        raise R1Error(f"unknown parameter(s) for reward 'code': {', '.join(sorted(params))}; valid: partial")
    run_tests = getattr(task, "run_tests", None)
    if run_tests is None:
        raise R1Error(
            f"reward 'code' needs a code task (humaneval, mbpp, stdio); task {getattr(task, 'name', task)!r} is not"
        )
    verdict = run_tests(completion, sample, stop_on_failure=not partial)
    if verdict.status == "sandbox_error":
        return None
    return verdict.fraction if partial else float(verdict.all_passed)


__all__ = ["code_reward"]
