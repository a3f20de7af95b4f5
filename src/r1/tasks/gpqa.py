"""Multiple-choice tasks: GPQA-Diamond (Rein et al. 2023, arXiv 2311.12022) and any JSONL of lettered questions.

Records follow the benchmark schema plus ``choices``: ``id``, ``problem``, ``choices`` (2-26 option strings) and
``answer`` (the letter of the right option, ``A`` for the first). Without ``data`` the task reads
``gpqa_diamond.jsonl.gz`` from the benchmark data folder; ``data=PATH`` takes any such file, gzipped or not, a Parquet
file or a datasets directory, with ``fields`` mapping r1's field names to its columns (:mod:`r1.data.readers`). The GPQA
authors ask that the questions stay out of plain text on the web, so the file stays gzipped and this module never
prints a question.

The prompt (:meth:`MultipleChoiceTask.question`) is the problem, the options as ``A) …`` lines, and an instruction
to answer with the letter (after openai/simple-evals ``QUERY_TEMPLATE_MULTICHOICE``). Grading extracts one letter
from the final region of the completion (after ``</think>``, see :func:`r1.rewards.math_grader.final_region`), trying
in order: the last ``<answer>`` block, the last box, "the answer is (C)" / "Answer: C", and a short final line.
Inside the chosen text the letter is read robustly (:func:`read_letter`): ``C``, ``(C)``, ``C)``, ``\\text{C}``,
``**C**``, ``option C``, ``C) <option text>``, or the option's text itself. Text naming two different letters
(``A or B``, ``B, not A``) gives no letter: a hedge is never rewarded.

Deliberately left out: per-choice log-likelihood scoring (the R1 report samples and extracts), choice shuffling at
load time (the shared file is already shuffled with a fixed seed per question).
"""

from __future__ import annotations

import re
from pathlib import Path

from r1.data.readers import check_fields, iter_records
from r1.data.sample import Sample
from r1.errors import R1Error
from r1.rewards.math_grader import MAX_BARE_ANSWER_CHARS, extract_last_boxed, final_region
from r1.tasks.base import Task
from r1.tasks.math import default_data_dir

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

#: Appended to every question (after the options); ``instruction=""`` drops it.
DEFAULT_INSTRUCTION = "Answer with the letter of the correct option."

_ANSWER_BLOCK = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
_PHRASE = re.compile(r"\b(?:answer|option|choice)\b\**\s*(?:is\b|:)\s*:?", re.IGNORECASE)
_MARKUP = re.compile(r"\\(?:text|textbf|mathrm|mathbf|boxed)\s*\{([^{}]*)\}|\$|\*\*|\\[()\[\]]")
_ALONE = re.compile(r"\(?\s*([A-Z])\s*\)?\s*[.:)]?")
_LEADING = re.compile(r"\(?([A-Z])\)?[.:)]\s+\S")
_NAMED = re.compile(r"\b(?:option|choice|letter)\s*\(?([A-Z])\b\)?", re.IGNORECASE)
_STANDALONE = re.compile(r"(?<![A-Za-z\\])([A-Z])(?![A-Za-z])")


def read_letter(text: str, choices: list[str]) -> str | None:
    """The option letter named by a short answer text, or None if it names none or several.

    Examples (4 options): ``"(C)"`` → ``"C"``; ``"\\text{B}"`` → ``"B"``; ``"C) 5 mol"`` → ``"C"``;
    ``"option d"`` → ``"D"``; the text of option A → ``"A"``; ``"A or B"`` → None; ``"E"`` → None.
    """
    valid = LETTERS[: len(choices)]
    plain = _plain(text)
    if not plain:
        return None
    m = _ALONE.fullmatch(plain.upper() if len(plain) <= 3 else plain) or _LEADING.match(plain)
    if m and m.group(1) in valid:
        return m.group(1)
    named = {x.upper() for x in _NAMED.findall(plain)} & set(valid)
    if len(named) == 1:
        return named.pop()
    exact = (text.strip(), lambda c: c.strip())
    for key, view in (exact, (_norm(plain), lambda c: _norm(_plain(c)))):  # as written, then loosely
        by_text = [LETTERS[i] for i, c in enumerate(choices) if view(c) == key]
        if len(by_text) == 1:
            return by_text[0]
    letters = set(_STANDALONE.findall(plain)) & set(valid)
    if len(letters) == 1:
        return letters.pop()
    return None


def _plain(text: str) -> str:
    """``text`` without math/bold markup: ``\\boxed{\\text{C}}`` → ``C``, ``$v_0$`` → ``v_0``; no trailing period."""
    plain = text.strip()
    for _ in range(3):  # peel nested markup
        plain = _MARKUP.sub(lambda m: m.group(1) or "", plain).strip()
    return plain.rstrip(".").strip()


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().rstrip(".").lower()


def extract_choice(completion: str, choices: list[str]) -> str | None:
    """The letter a completion chooses (see the module docstring for the order of places looked at), or None."""
    region = final_region(completion)
    blocks = _ANSWER_BLOCK.findall(region)
    if blocks:
        return read_letter(blocks[-1], choices)
    boxed = extract_last_boxed(region)
    if boxed is not None:
        return read_letter(boxed, choices)
    phrases = list(_PHRASE.finditer(region))
    if phrases:
        rest = region[phrases[-1].end() :].strip()
        line = next((ln for ln in rest.split("\n") if ln.strip()), "")
        return read_letter(re.split(r"(?<=[)\w*$}])[.,;]\s", line, maxsplit=1)[0], choices)
    lines = [ln for ln in region.strip().split("\n") if ln.strip()]
    if lines and len(lines[-1]) <= MAX_BARE_ANSWER_CHARS:
        return read_letter(lines[-1], choices)
    return None


class MultipleChoiceTask(Task):
    """Lettered multiple-choice questions; the gold is a letter.

    Args:
        data: JSONL (optionally ``.gz``) in the schema above; default: GPQA-Diamond from the benchmark data folder.
        instruction: text after the options (default :data:`DEFAULT_INSTRUCTION`; ``""`` = none).
        fields: r1 field name -> the file's column (``{"choices": "options"}``); {} = the file uses r1's names.
    """

    name = "gpqa"
    version = "1"
    default_file = "gpqa_diamond.jsonl.gz"

    def __init__(self, data: str | None = None, instruction: str = DEFAULT_INSTRUCTION,
                 fields: dict[str, str] | None = None):
        self.data = data
        self.fields = check_fields(fields, f"task {self.name!r}: fields")
        self.instruction = instruction

    def data_path(self, split: str) -> Path:
        return Path(self.data).expanduser() if self.data is not None else default_data_dir() / self.default_file

    def load(self, split: str) -> list[Sample]:
        """Every split name returns the whole file. Errors name the file and line (missing or bad ``choices``, an
        ``answer`` that is not the letter of an option, duplicate ids, an empty file)."""
        path = self.data_path(split)
        samples, seen = [], {}
        required = ("id", "problem", "answer", "choices")
        for where, rec in iter_records(path, self.fields, required=required):
            missing = [k for k in required if k not in rec]
            if missing:
                raise R1Error(f"{where}: missing field(s) {', '.join(map(repr, missing))}")
            choices = rec["choices"]
            if not (isinstance(choices, list) and 2 <= len(choices) <= 26 and all(isinstance(c, str) for c in choices)):
                raise R1Error(f"{where}: 'choices' must be a list of 2 to 26 strings")
            sid, answer = str(rec["id"]), str(rec["answer"]).strip().upper()
            if answer not in LETTERS[: len(choices)]:
                valid = ", ".join(LETTERS[: len(choices)])
                raise R1Error(f"{where}: 'answer' must be one of {valid}, got {rec['answer']!r}")
            if not isinstance(rec["problem"], str):
                raise R1Error(f"{where}: field 'problem' must be a string")
            if sid in seen:
                raise R1Error(f"{where}: duplicate id {sid!r} (first on {seen[sid].place})")
            seen[sid] = where
            meta = {k: v for k, v in rec.items() if k not in ("id", "problem", "answer")}
            samples.append(Sample(id=sid, problem=rec["problem"], answer=answer, meta=meta))
        if not samples:
            raise R1Error(f"{path}: no records (empty dataset)")
        return samples

    def question(self, sample: Sample) -> str:
        options = "\n".join(f"{LETTERS[i]}) {c}" for i, c in enumerate(sample.meta["choices"]))
        text = f"{sample.problem}\n\n{options}"
        return f"{text}\n\n{self.instruction}" if self.instruction else text

    # --- the answer-level protocol of evaluation (r1.eval.grade.AnswerTask)
    def extract_answer(self, completion: str, sample: Sample) -> str | None:
        return extract_choice(completion, sample.meta["choices"])

    def grade_answer(self, answer: str | None, sample: Sample) -> float:
        return 1.0 if answer is not None and answer == sample.answer else 0.0

    def same_answer(self, a: str, b: str, sample: Sample) -> bool:
        return a == b

    def grade(self, completion: str, sample: Sample) -> float:
        return self.grade_answer(self.extract_answer(completion, sample), sample)


#: The tasks this module defines (registered lazily in ``r1/tasks/__init__.py``).
TASKS_TABLE: dict[str, type[Task]] = {MultipleChoiceTask.name: MultipleChoiceTask}

__all__ = ["DEFAULT_INSTRUCTION", "LETTERS", "MultipleChoiceTask", "TASKS_TABLE", "extract_choice", "read_letter"]
