"""The Task contract: data + prompt + grader.

A task turns raw records (or a generator) into :class:`~r1.data.Sample` s, gives the question text that a template
wraps, and grades a completion. **The RL accuracy reward and evaluation call the same ``grade``.**

Every task also reports per-completion statistics (:meth:`Task.completion_metrics`), which trainers and evaluation
average as ``task/<name>``; by default ``reflection``, the share of completions with a reflection word (the
"aha moment" tracker of DeepSeek-R1-Zero, arXiv 2501.12948 section 2.2.4), for every task.
"""

from __future__ import annotations

import functools
import re
from typing import Callable, Iterable

from r1.data.sample import Sample
from r1.registry import Registry

REFLECTION_WORDS = (
    "wait", "recheck", "re-check", "verify", "let me check", "check again", "double-check", "double check",
    "mistake", "reevaluate", "re-evaluate", "retry", "wrong",
)
"""Words and phrases that make a completion count as reflecting (whole words, any case): the R1-Zero "aha moment"
("Wait, wait. Wait. That's an aha moment I can flag here", arXiv 2501.12948 Table 3) and the verification phrases
of R1-style traces. The Nature version's list (Extended Data Fig. 1) also has "however", "but", "error", "evaluate"
and "check", left out here because ordinary math and code text is full of them; ``task.reflection_words`` sets
another list."""


class Task:
    """Base class. Subclasses set ``name``/``version`` and implement ``load`` and ``grade``."""

    name: str = "task"
    version: str = "0"
    default_template: str = "r1_zero"
    reflection_words: tuple[str, ...] = REFLECTION_WORDS
    """What :meth:`completion_metrics` counts as reflection (``build_task(reflection_words=...)`` sets another)."""

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
        """Per-completion statistics, averaged and logged by trainers and evaluation as ``task/<name>``. Default:
        ``reflection``, 1.0 if the completion has one of :attr:`reflection_words` (:func:`has_reflection_word`).
        A task may add its own (keeping ``reflection``)."""
        return {"reflection": float(has_reflection_word(completion, self.reflection_words))}


def has_reflection_word(completion: str, words: Iterable[str] = REFLECTION_WORDS) -> bool:
    """True when ``completion`` contains one of ``words`` as a whole word or phrase, in any case.

    >>> has_reflection_word("Wait, 3+4=7."), has_reflection_word("await the result"), has_reflection_word("RE-CHECK")
    (True, False, True)
    """
    return _reflection_pattern(tuple(words)).search(completion) is not None


@functools.lru_cache(maxsize=32)
def _reflection_pattern(words: tuple[str, ...]) -> re.Pattern:
    # \b on both sides: "wait" is not found in "await" or "waiting"
    return re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)


def last_answer_block(completion: str) -> str | None:
    """The stripped content of the last complete ``<answer>…</answer>`` block of ``completion``; None without one.

    >>> last_answer_block("<answer>1</answer> <answer> (2 + 3) </answer>"), last_answer_block("<answer>1")
    ('(2 + 3)', None)
    """
    end = completion.rfind("</answer>")
    start = completion.rfind("<answer>", 0, end) if end >= 0 else -1
    return completion[start + len("<answer>") : end].strip() if start >= 0 else None


TASKS: Registry[type[Task]] = Registry("task")


def build_task(name: str, data: str | None = None, reflection_words: Iterable[str] | None = None, **params) -> Task:
    """Instantiate a registered task. File-backed tasks take ``data`` (a path); ``params`` go to the constructor;
    ``reflection_words`` (None: the task's own) replaces what its ``reflection`` metric counts."""
    cls = TASKS.get(name)
    if data is not None:
        params["data"] = data
    try:
        task = cls(**params)
    except TypeError as e:
        from r1.errors import R1Error

        raise R1Error(f"bad parameters for task {name!r}: {e}") from None
    if reflection_words is not None:
        task.reflection_words = tuple(reflection_words)
    return task
