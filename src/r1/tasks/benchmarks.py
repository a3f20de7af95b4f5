"""Math benchmarks of the DeepSeek-R1 report as tasks: AIME 2024, AIME 2025, AMC 2023, Minerva Math, OlympiadBench.

Each is a :class:`~r1.tasks.math.MathTask` over one file of the benchmark data folder (see
:func:`~r1.tasks.math.default_data_dir`; ``data=PATH`` reads any file in the same schema instead), graded by the one
math grader (:func:`r1.rewards.math_grader.grade_math`, math-verify under a timeout) that the RL accuracy reward
also calls. MATH-500 and GSM8K live in ``r1.tasks.math`` (``math500``, ``gsm8k`` with split ``test``); GPQA-Diamond
(multiple choice) in ``r1.tasks.gpqa``. Every split name returns the whole file: these are test sets.

:data:`BENCHMARKS` lists the benchmark tasks with the split to evaluate, for ``r1 eval`` configs and
``r1 decontaminate``.

How other answer kinds fit: evaluation needs from a task ``load``, ``question``, ``grade`` and, for majority voting
and per-answer caching, the three methods of ``r1.eval.grade.AnswerTask``: ``extract_answer``, ``grade_answer`` and
``same_answer``. The code tasks (``r1.tasks.code``: HumanEval, MBPP) implement them as: the program, its tests in the
sandbox, its text. See ``docs/eval.md``.

Deliberately left out: Minerva's numeric tolerance and OlympiadBench's per-type rules (both graded by math-verify),
and hub downloads.
"""

from __future__ import annotations

from r1.tasks.math import MathTask


class AIME24Task(MathTask):
    """AIME 2024 I and II (30 problems, integer answers 0-999), as in the R1 report's AIME 2024 column."""

    name = "aime24"
    version = "1"
    default_files = {"*": "aime24.jsonl"}


class AIME25Task(MathTask):
    """AIME 2025 I and II (30 problems, integer answers 0-999)."""

    name = "aime25"
    version = "1"
    default_files = {"*": "aime25.jsonl"}


class AMC23Task(MathTask):
    """AMC 12 2023 A/B: the usual 40-problem subset with integer answers (Qwen2.5-Math evaluation)."""

    name = "amc23"
    version = "1"
    default_files = {"*": "amc23.jsonl"}


class MinervaMathTask(MathTask):
    """Minerva Math (OCW courses, Lewkowycz et al. 2022, arXiv 2206.14858): 272 STEM problems; golds such as
    ``4.5e33`` are read as ``4.5\\times 10^{33}`` by the grader."""

    name = "minerva_math"
    version = "1"
    default_files = {"*": "minerva_math.jsonl"}


class OlympiadBenchTask(MathTask):
    """OlympiadBench (He et al. 2024, arXiv 2402.14008), OE_TO_maths_en_COMP: 675 problems. Multi-part golds are
    one comma-separated string (``is_multiple_answer`` in meta), compared as a set by math-verify."""

    name = "olympiadbench"
    version = "1"
    default_files = {"*": "olympiadbench.jsonl"}


#: Benchmark task name -> split evaluated (and checked by ``r1 decontaminate``).
BENCHMARKS: dict[str, str] = {
    "math500": "test",
    "aime24": "test",
    "aime25": "test",
    "amc23": "test",
    "gsm8k": "test",
    "minerva_math": "test",
    "olympiadbench": "test",
    "gpqa": "test",
    "humaneval": "test",
    "mbpp": "test",
}

#: The tasks this module defines (registered lazily in ``r1/tasks/__init__.py``).
TASKS_TABLE: dict[str, type[MathTask]] = {
    AIME24Task.name: AIME24Task,
    AIME25Task.name: AIME25Task,
    AMC23Task.name: AMC23Task,
    MinervaMathTask.name: MinervaMathTask,
    OlympiadBenchTask.name: OlympiadBenchTask,
}

__all__ = [
    "AIME24Task",
    "AIME25Task",
    "AMC23Task",
    "BENCHMARKS",
    "MinervaMathTask",
    "OlympiadBenchTask",
    "TASKS_TABLE",
]
