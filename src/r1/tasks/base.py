"""The Task contract: data + prompt + grader.

A task turns raw records (or a generator) into :class:`~r1.data.Sample` s, gives the question text that a template
wraps, and grades a completion. **The RL accuracy reward and evaluation call the same ``grade``.**
"""

from __future__ import annotations

from typing import Callable

from r1.data.sample import Sample
from r1.registry import Registry


class Task:
    """Base class. Subclasses set ``name``/``version`` and implement ``load`` and ``grade``."""

    name: str = "task"
    version: str = "0"
    default_template: str = "r1_zero"

    def load(self, split: str) -> list[Sample]:
        """All samples of ``split`` (deterministic). Unknown split -> R1Error naming the valid ones."""
        raise NotImplementedError

    def question(self, sample: Sample) -> str:
        """The text a template wraps (default: ``sample.problem``)."""
        return sample.problem

    def grade(self, completion: str, sample: Sample) -> float:
        """Score in [0, 1] of a completion (the text the model generated after the prompt)."""
        raise NotImplementedError

    def answer_functions(self) -> tuple[Callable, Callable, Callable] | None:
        """The grader in halves for evaluation (``r1.eval.grade``): ``(extract_answer(c, s), grade_answer(a, s),
        same_answer(a, b, s))``, where ``grade(c, s) == grade_answer(extract_answer(c, s), s)``. Extracted answers
        are cached, graded in parallel and voted on (cons@k). Default: the task's own three methods of those names
        (``r1.eval.grade.AnswerTask``) if it has them, else None (evaluation grades whole completions)."""
        names = ("extract_answer", "grade_answer", "same_answer")
        if all(callable(getattr(self, m, None)) for m in names):
            return self.extract_answer, self.grade_answer, self.same_answer
        return None

    def completion_metrics(self, completion: str) -> dict[str, float]:
        """Task-specific per-completion statistics (e.g. ``reflection``: 1.0 if the completion reflects), averaged
        and logged by trainers and evaluation as ``task/<name>``. Default: none."""
        return {}


def last_answer_block(completion: str) -> str | None:
    """The stripped content of the last complete ``<answer>…</answer>`` block of ``completion``; None without one.

    >>> last_answer_block("<answer>1</answer> <answer> (2 + 3) </answer>"), last_answer_block("<answer>1")
    ('(2 + 3)', None)
    """
    end = completion.rfind("</answer>")
    start = completion.rfind("<answer>", 0, end) if end >= 0 else -1
    return completion[start + len("<answer>") : end].strip() if start >= 0 else None


TASKS: Registry[type[Task]] = Registry("task")


def build_task(name: str, data: str | None = None, **params) -> Task:
    """Instantiate a registered task. File-backed tasks take ``data`` (a path); ``params`` go to the constructor."""
    cls = TASKS.get(name)
    if data is not None:
        params["data"] = data
    try:
        return cls(**params)
    except TypeError as e:
        from r1.errors import R1Error

        raise R1Error(f"bad parameters for task {name!r}: {e}") from None
