"""The Sample contract shared by tasks, rewards, the trainer and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Sample:
    """One problem.

    Attributes:
        id: stable id, unique within its task.
        problem: the question text (before any template).
        answer: the gold final answer (for code: the reference solution; multiple choice: the letter).
        meta: free-form extra fields (solution, level, choices, tests, ...).
    """

    id: str
    problem: str
    answer: str
    meta: dict[str, Any] = field(default_factory=dict)
