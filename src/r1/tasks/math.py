"""Math word-problem tasks backed by JSONL files: a generic ``math`` task, GSM8K and MATH-500.

Records follow the benchmark schema of the shared data folder: ``id``, ``problem`` and ``answer`` are required,
every other key (``solution``, ``level``, ``subject``, ``source``, ...) goes into ``Sample.meta``. The grader is
:func:`r1.rewards.math_grader.grade_math`: the last ``<answer>`` block (else the last ``\\boxed{}``) checked against
the gold with math-verify. The RL accuracy reward and evaluation both call :meth:`MathTask.grade`.

``data`` is a JSONL file, a Parquet file or a Hugging Face datasets directory (:mod:`r1.data.readers`), and
``fields`` maps r1's field names to the file's columns (``fields={"problem": "question", "answer": "solution"}``).

Splits: a task given ``data=PATH`` returns the whole file for every split name, so one file can serve as a
training set (``split="train"``) or a test set (``split="test"``). Without ``data``, GSM8K reads
``gsm8k_train.jsonl`` / ``gsm8k_test.jsonl`` from :func:`default_data_dir` (splits ``train`` and ``test`` only) and
MATH-500 reads ``math500.jsonl`` for every split (it is a test set; training on it is the caller's choice).

Deliberately left out: hub downloads, few-shot prompts, and answer formats other than a single final answer
(multiple choice, multi-part answers, code).
"""

from __future__ import annotations

import os
from pathlib import Path

from r1.data.readers import check_fields, iter_records
from r1.data.sample import Sample
from r1.errors import R1Error
from r1.rewards.math_grader import grade_math
from r1.tasks.base import Task

#: Fields every record must have; all other keys go into ``Sample.meta``.
REQUIRED_FIELDS = ("id", "problem", "answer")

#: Environment variable naming the benchmark data folder (a location, not a behaviour switch).
DATA_DIR_ENV = "R1_DATA_DIR"


def default_data_dir() -> Path:
    """The folder holding the benchmark JSONL files.

    ``$R1_DATA_DIR`` if set, else ``<repo root>/../shared/data`` found relative to this source file (a source
    checkout next to the shared data folder). Reading the environment is acceptable here because it only names a
    location. Raises R1Error if neither exists, telling the user to pass ``task.data=PATH``.
    """
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_dir():
            raise R1Error(f"{DATA_DIR_ENV}={env} is not a directory; fix it or pass task.data=PATH")
        return path
    repo_root = Path(__file__).resolve().parents[3]  # src/r1/tasks/math.py -> repo root
    path = (repo_root / ".." / "shared" / "data").resolve()
    if path.is_dir():
        return path
    raise R1Error(f"no benchmark data folder found (looked at {path}); set {DATA_DIR_ENV}=DIR or pass task.data=PATH")


def load_math_records(path: str | Path, fields: dict[str, str] | None = None) -> list[Sample]:
    """Samples of a data file (JSONL, Parquet, datasets directory) in the benchmark schema, in file order; ``fields``
    maps r1's field names to the file's columns.

    Errors (one-line R1Error naming file and line or row): missing file, malformed JSON, a missing required field or
    mapped column, a required field that is not a string (numbers are accepted as text: ``"answer": 42`` → ``"42"``),
    a duplicate ``id``, an empty file.
    """
    samples, seen = [], {}
    for where, rec in iter_records(path, fields, required=REQUIRED_FIELDS):
        missing = [k for k in REQUIRED_FIELDS if k not in rec]
        if missing:
            raise R1Error(f"{where}: missing field(s) {', '.join(map(repr, missing))}")
        values = {}
        for key in REQUIRED_FIELDS:
            value = rec[key]
            if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "problem":
                value = str(value)
            if not isinstance(value, str):
                raise R1Error(f"{where}: field {key!r} must be a string, got {type(value).__name__}")
            values[key] = value
        if values["id"] in seen:
            raise R1Error(f"{where}: duplicate id {values['id']!r} (first on {seen[values['id']].place})")
        seen[values["id"]] = where
        meta = {k: v for k, v in rec.items() if k not in REQUIRED_FIELDS}
        samples.append(Sample(id=values["id"], problem=values["problem"], answer=values["answer"], meta=meta))
    if not samples:
        raise R1Error(f"{path}: no records (empty dataset)")
    return samples


class MathTask(Task):
    """Any JSONL file of math problems with a single final answer, graded by math-verify.

    Args:
        data: path of the data file: JSONL, Parquet or a datasets directory (required for ``math``; optional for
            subclasses with default files). Every split name returns the whole file.
        fields: r1 field name -> the file's column (``{"problem": "question"}``); {} = the file uses r1's names.
        timeout_s: per-completion grading deadline in seconds (see :func:`r1.rewards.math_grader.verify_math`).
        grading_budget_s: seconds per completion, on average, that one GRPO step's rewards may take in all (see
            :meth:`r1.rewards.base.CompositeReward.budget`); correct grading takes milliseconds, so only a batch
            with many pathological answers reaches it. 0 = unbounded.
    """

    name = "math"
    version = "1"
    #: split -> file name in :func:`default_data_dir` used when ``data`` is not given; ``"*"`` matches any split.
    default_files: dict[str, str] = {}

    def __init__(
        self,
        data: str | None = None,
        timeout_s: float = 5.0,
        grading_budget_s: float = 1.0,
        fields: dict[str, str] | None = None,
    ):
        if data is None and not self.default_files:
            raise R1Error(
                f"task {self.name!r} needs a data file: pass task.data=PATH (JSONL, Parquet or a datasets "
                f"directory with fields {', '.join(REQUIRED_FIELDS)})"
            )
        if not timeout_s > 0 or not grading_budget_s >= 0:
            raise R1Error(
                f"task {self.name!r}: timeout_s must be > 0 and grading_budget_s >= 0, got {timeout_s}, "
                f"{grading_budget_s}"
            )
        self.data = data
        self.fields = check_fields(fields, f"task {self.name!r}: fields")
        self.timeout_s = float(timeout_s)
        self.grading_budget_s = float(grading_budget_s) or None

    def data_path(self, split: str) -> Path:
        """The file behind ``split``."""
        if self.data is not None:
            return Path(self.data).expanduser()
        name = self.default_files.get(split, self.default_files.get("*"))
        if name is None:
            raise R1Error(f"task {self.name!r} has no split {split!r}; valid: {', '.join(sorted(self.default_files))}")
        return default_data_dir() / name

    def load(self, split: str) -> list[Sample]:
        return load_math_records(self.data_path(split), self.fields)

    def grade(self, completion: str, sample: Sample) -> float:
        return grade_math(completion, sample.answer, timeout_s=self.timeout_s)

    def answer_functions(self):
        """The math grader in halves, with the task's ``timeout_s``: :func:`~r1.rewards.math_grader.extract_answer`,
        :func:`~r1.rewards.math_grader.grade_math_answer` and :func:`~r1.rewards.math_grader.equivalent_math_answers`
        (their composition is :meth:`grade`). A subclass with its own ``grade`` keeps the base rule."""
        fns = super().answer_functions()
        if fns is not None or type(self).grade is not MathTask.grade:
            return fns
        from r1.rewards.math_grader import equivalent_math_answers, extract_answer, grade_math_answer

        t = self.timeout_s
        return (
            lambda c, s: extract_answer(c),
            lambda a, s: grade_math_answer(a, s.answer, timeout_s=t),
            lambda a, b, s: equivalent_math_answers(a, b, timeout_s=t),
        )


class GSM8KTask(MathTask):
    """GSM8K (Cobbe et al., 2021, arXiv 2110.14168): 7473 train / 1319 test grade-school word problems.

    Gold answers are the integers after ``####`` with thousands commas removed (see the data README).
    """

    name = "gsm8k"
    version = "1"
    default_files = {"train": "gsm8k_train.jsonl", "test": "gsm8k_test.jsonl"}


class Math500Task(MathTask):
    """MATH-500 (Lightman et al., 2023, arXiv 2305.20050): 500 MATH test problems; every split is the whole set."""

    name = "math500"
    version = "1"
    default_files = {"*": "math500.jsonl"}


#: The tasks this module defines (registered lazily in ``r1/tasks/__init__.py``).
TASKS_TABLE: dict[str, type[MathTask]] = {
    MathTask.name: MathTask,
    GSM8KTask.name: GSM8KTask,
    Math500Task.name: Math500Task,
}

__all__ = ["GSM8KTask", "Math500Task", "MathTask", "TASKS_TABLE", "default_data_dir", "load_math_records"]
