"""Grading for evaluation: the task's own grader, split into *extract* and *score* so answers can be cached, voted
on (cons@k) and graded in parallel; plus reading completions made elsewhere (``r1 grade``).

**One grader.** The RL accuracy reward calls ``task.grade(completion, sample)``. Evaluation calls the same grader in
two halves, ``extract_answer`` then ``grade_answer``, whose composition *is* ``task.grade`` (tests check
``score(extract(c)) == task.grade(c)`` on every benchmark). Where the halves come from (:class:`AnswerGrader`):
the task's :meth:`~r1.tasks.base.Task.answer_functions`, which are

1. for a task that implements :class:`AnswerTask` (``extract_answer``, ``grade_answer``, ``same_answer``), e.g.
   ``gpqa`` and the code tasks (``humaneval``, ``mbpp``, ``stdio``: the program, its tests in the sandbox, its
   text), those methods; a task that also has ``grade_answers_many`` grades the distinct answers in batches itself
   (code tasks run them in concurrent sandboxes);
2. for a :class:`~r1.tasks.math.MathTask` that keeps the math grader (``math``, ``gsm8k``, ``math500``, ``aime24``,
   ...), :func:`~r1.rewards.math_grader.extract_answer`, :func:`~r1.rewards.math_grader.grade_math_answer` and
   :func:`~r1.rewards.math_grader.equivalent_math_answers`, with the task's ``timeout_s``;
3. for any other task, None: ``task.grade`` on whole completions; nothing is extracted and cons@k is not reported.

**Speed.** Scores are cached by ``(problem id, extracted answer)``: k samples that agree cost one math-verify call.
The distinct pairs can go to a process pool (``workers``; spawned processes whose main threads run math-verify with
its ``SIGALRM`` timeouts, so a pathological answer costs at most ``timeout_s``). Majority voting compares only
distinct wrong answers (see :func:`vote_score`), with its own cache.

Left out: grading inside the sampling loop (sampling and grading are separate passes over ``completions.jsonl``, so
``r1 grade`` and ``r1 eval`` share every line after sampling).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from r1.data.jsonl import iter_jsonl
from r1.data.sample import Sample
from r1.errors import R1Error
from r1.eval.metrics import majority_vote, summarize
from r1.workers import ChildDied, ChildProcess, serve, wait_readable

#: Distinct (problem, answer) pairs sent to a pool worker at a time.
CHUNK_PAIRS = 64


class AnswerTask(Protocol):
    """What a task implements to be graded answer by answer (besides ``load``/``question``/``grade``).

    ``grade(c, s)`` must equal ``grade_answer(extract_answer(c, s), s)``.
    """

    def extract_answer(self, completion: str, sample: Sample) -> str | None:
        """The final answer stated by ``completion`` (None: none, or conflicting answers)."""
        ...

    def grade_answer(self, answer: str | None, sample: Sample) -> float:
        """Score in [0, 1] of an extracted answer (None → 0)."""
        ...

    def same_answer(self, a: str, b: str, sample: Sample) -> bool:
        """Whether two extracted answers are the same answer (majority voting)."""
        ...


def answer_functions(task) -> tuple[Callable, Callable, Callable] | None:
    """``(extract(c, s), grade_answer(a, s), same(a, b, s))`` of ``task``, or None if it only grades completions
    (:meth:`r1.tasks.base.Task.answer_functions`)."""
    return task.answer_functions()


def _score_chunk(task, pairs: list[tuple[Sample, str]]) -> list[float]:
    """Worker job: the scores of ``(sample, answer)`` pairs."""
    fns = answer_functions(task)
    return [float(fns[1](a, s)) for s, a in pairs]


def _vote_chunk(task, items: list[tuple[Sample, list, dict]]) -> list[float]:
    """Worker job: cons@k of problems given as ``(sample, answers, {answer: score})``."""
    grader = AnswerGrader(task)
    out = []
    for sample, answers, scores in items:
        grader._scores.update({(sample.id, a): v for a, v in scores.items()})
        out.append(vote_score(grader, sample, answers))
    return out


_JOBS = {"score": _score_chunk, "vote": _vote_chunk}


def _worker_main() -> None:
    """A grading worker's loop: ``(job name, task, items)`` frames in, result frames out, until stdin closes."""
    serve(lambda job: _JOBS[job[0]](job[1], job[2]))


class WorkerPool:
    """Grading processes: :class:`r1.workers.ChildProcess` workers fed pickled jobs over pipes.

    Not ``multiprocessing`` (see :mod:`r1.workers`): the caller's ``__main__`` is never re-imported and no process
    holding a model is forked. Each worker's main thread runs math-verify, so its ``SIGALRM`` timeouts hold.
    """

    def __init__(self, num_workers: int):
        self.children = [ChildProcess("r1.eval.grade:_worker_main") for _ in range(num_workers)]

    def run(self, name: str, task, chunks: list[list], on_result: Callable[[int, list], Any]) -> None:
        """Send ``chunks`` as jobs ``name``, one at a time per worker; call ``on_result(i, result)`` as each returns."""
        try:
            self._run(name, task, chunks, on_result)
        except ChildDied as e:
            raise RuntimeError(f"a grading worker died (exit code {e.returncode}); see its stderr above") from None

    def _run(self, name: str, task, chunks: list[list], on_result: Callable[[int, list], Any]) -> None:
        todo = list(enumerate(chunks))[::-1]
        busy: dict[ChildProcess, int] = {}
        for child in self.children:
            if todo:
                i, chunk = todo.pop()
                child.send((name, task, chunk))
                busy[child] = i
        while busy:
            for child in wait_readable(list(busy)):
                on_result(busy.pop(child), child.receive())
                if todo:
                    j, chunk = todo.pop()
                    child.send((name, task, chunk))
                    busy[child] = j

    def close(self) -> None:
        for child in self.children:
            child.close()

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AnswerGrader:
    """Evaluation's view of a task's grader (see the module docstring).

    Args:
        task: the task whose grader is used.
        workers: processes for scoring distinct answers (0 or 1 = in this process).
    """

    def __init__(self, task, workers: int = 0):
        self.task = task
        self.workers = int(workers)
        self.fns = answer_functions(task)
        self._scores: dict[tuple[str, str], float] = {}
        self._same: dict[tuple[str, str, str], bool] = {}

    @property
    def extracts(self) -> bool:
        """Whether answers are extracted (else whole completions are graded and cons@k is not available)."""
        return self.fns is not None

    def extract(self, completion: str, sample: Sample) -> str | None:
        return self.fns[0](completion, sample) if self.fns else None

    def score(self, answer: str | None, sample: Sample) -> float:
        """Cached ``grade_answer``."""
        if answer is None:
            return 0.0
        key = (sample.id, answer)
        if key not in self._scores:
            self._scores[key] = float(self.fns[1](answer, sample))
        return self._scores[key]

    def same(self, a: str, b: str, sample: Sample) -> bool:
        """Cached ``same_answer``, symmetric in ``a`` and ``b``."""
        key = (sample.id, *sorted((a, b)))
        if key not in self._same:
            self._same[key] = bool(self.fns[2](a, b, sample))
        return self._same[key]

    def grade(self, completion: str, sample: Sample) -> tuple[str | None, float]:
        """``(extracted answer, score)`` of one completion; equals ``task.grade`` (the RL reward)."""
        if not self.fns:
            return None, float(self.task.grade(completion, sample))
        answer = self.extract(completion, sample)
        return answer, self.score(answer, sample)

    def score_all(self, pairs: list[tuple[Sample, str]], advance: Callable[[int], Any] | None = None) -> None:
        """Fill the score cache for ``(sample, answer)`` pairs (deduplicated), with the pool if ``workers > 1``."""
        todo, seen = [], set()
        for s, a in pairs:
            key = (s.id, a)
            if a is not None and key not in self._scores and key not in seen:
                seen.add(key)
                todo.append((s, a))
        if advance is not None:
            advance(len(pairs) - len(todo))
        many = getattr(self.task, "grade_answers_many", None)
        if many is not None and self.fns is not None and self.fns[1] == getattr(self.task, "grade_answer", None):
            # the task grades batches itself (code tasks: concurrent sandboxes)
            for i in range(0, len(todo), CHUNK_PAIRS):
                chunk = todo[i : i + CHUNK_PAIRS]
                for (s, a), score in zip(chunk, many([a for _, a in chunk], [s for s, _ in chunk])):
                    self._scores[(s.id, a)] = float(score)
                if advance is not None:
                    advance(len(chunk))
            return
        if self.workers <= 1 or len(todo) < 2 * CHUNK_PAIRS:
            for s, a in todo:
                self.score(a, s)
                if advance is not None:
                    advance(1)
            return
        chunks = [todo[i : i + CHUNK_PAIRS] for i in range(0, len(todo), CHUNK_PAIRS)]

        def store(i: int, scores: list[float]) -> None:
            for (s, a), score in zip(chunks[i], scores):
                self._scores[(s.id, a)] = score
            if advance is not None:
                advance(len(chunks[i]))

        with WorkerPool(min(self.workers, len(chunks))) as pool:
            pool.run("score", self.task, chunks, store)

    def vote_all(self, problems: list[tuple[Sample, list[str | None]]]) -> list[float]:
        """cons@k of each ``(sample, answers)`` (see :func:`vote_score`); scores must be cached already. Problems that
        need answer comparisons go to the pool if ``workers > 1``."""
        out = [_vote_shortcut([None if a is None else self.score(a, s) for a in ans]) for s, ans in problems]
        hard = [i for i, v in enumerate(out) if v is None]
        if self.workers <= 1 or len(hard) < 8:
            for i in hard:
                out[i] = vote_score(self, *problems[i])
            return out
        items = []
        for i in hard:
            s, ans = problems[i]
            items.append((s, ans, {a: self.score(a, s) for a in ans if a is not None}))
        size = max(1, -(-len(items) // (4 * self.workers)))
        chunks = [items[j : j + size] for j in range(0, len(items), size)]

        def store(c: int, votes: list[float]) -> None:
            for k, v in enumerate(votes):
                out[hard[c * size + k]] = v

        with WorkerPool(min(self.workers, len(chunks))) as pool:
            pool.run("vote", self.task, chunks, store)
        return out


@dataclass
class GradedSample:
    """One graded completion: a line of ``samples.jsonl``."""

    id: str
    index: int
    answer: str | None
    score: float
    num_tokens: int | None
    num_chars: int
    finish_reason: str | None
    completion: str


def grade_benchmark(
    task,
    samples: list[Sample],
    completions: dict[str, list[dict]],
    *,
    pass_ks: list[int] | None = None,
    workers: int = 0,
    progress=None,
    label: str = "grade",
    only_given: bool = False,
) -> tuple[list[GradedSample], dict[str, Any]]:
    """Grade every completion of every problem that has some, and compute the benchmark's metrics.

    Args:
        task: the task (its grader is used through :class:`AnswerGrader`).
        samples: the task's problems, in order; problems without completions count as wrong in pass@1, pass@k and
            cons@k (``num_problems`` is ``len(samples)``), unless ``only_given``.
        completions: id → list of records ``{"completion": str, "num_tokens"?: int, "finish_reason"?: str}``.
        pass_ks: ks of pass@k (see :func:`r1.eval.metrics.summarize`).
        workers: scoring processes (see :class:`AnswerGrader`).
        progress: a rich Progress (or None) for a bar named ``label``.
        only_given: leave problems without completions out of the metrics (the headline is then over the subset;
            ``num_problems_missing`` still counts them and ``missing_counted_as_wrong`` is False).
    Returns:
        ``(graded samples in problem order, metrics dict)``; metrics also holds ``num_problems_missing``,
        ``missing_counted_as_wrong`` and, for tasks that define ``completion_metrics``, their means as
        ``task/<name>``.
    """
    grader = AnswerGrader(task, workers=workers)
    problems = [s for s in samples if completions.get(s.id)]
    if not problems:
        raise R1Error(f"no completions for any problem of task {getattr(task, 'name', task)!r}")
    total = sum(len(completions[s.id]) for s in problems)
    bar = progress.add_task(label, total=total, info="") if progress is not None else None

    def advance(n: int) -> None:
        if bar is not None:
            progress.advance(bar, n)

    answers = {s.id: [grader.extract(r["completion"], s) for r in completions[s.id]] for s in problems}
    if grader.extracts:
        grader.score_all([(s, a) for s in problems for a in answers[s.id]], advance)
    rows, cons = [], []
    for s in problems:
        recs, ans = completions[s.id], answers[s.id]
        for j, (r, a) in enumerate(zip(recs, ans)):
            score = grader.score(a, s) if grader.extracts else float(task.grade(r["completion"], s))
            if not grader.extracts:
                advance(1)
            rows.append(
                GradedSample(
                    id=s.id,
                    index=j,
                    answer=a,
                    score=score,
                    num_tokens=r.get("num_tokens"),
                    num_chars=len(r["completion"]),
                    finish_reason=r.get("finish_reason"),
                    completion=r["completion"],
                )
            )
    if grader.extracts:
        cons = grader.vote_all([(s, answers[s.id]) for s in problems])
    by_id: dict[str, list[GradedSample]] = {}
    for row in rows:
        by_id.setdefault(row.id, []).append(row)
    groups = [by_id[s.id] for s in problems]
    metrics = summarize(
        scores=[[g.score for g in grp] for grp in groups],
        cons_scores=cons if grader.extracts else None,
        num_tokens=[[g.num_tokens for g in grp] for grp in groups],
        num_chars=[[g.num_chars for g in grp] for grp in groups],
        truncated=[[None if g.finish_reason is None else g.finish_reason == "length" for g in grp] for grp in groups],
        has_answer=[[g.answer is not None for g in grp] for grp in groups] if grader.extracts else None,
        pass_ks=pass_ks,
        num_missing=0 if only_given else len(samples) - len(problems),
    )
    metrics["num_problems_missing"] = len(samples) - len(problems)
    metrics["missing_counted_as_wrong"] = not only_given
    metrics.update(_task_metrics(task, rows))
    return rows, metrics


def vote_score(grader: AnswerGrader, sample: Sample, answers: list[str | None]) -> float:
    """cons@k of one problem: the score of the majority-vote answer (:func:`r1.eval.metrics.majority_vote`).

    The grader's verdicts partition the answers first: two correct answers are equal to the gold and so to each
    other, and a correct answer never equals a wrong one, so only wrong answers are compared with ``same_answer``,
    and only when they could outvote the correct ones. No correct answer → 0; fewer wrong answers than correct → 1.
    """
    decided = _vote_shortcut([None if a is None else grader.score(a, sample) for a in answers])
    if decided is not None:
        return decided

    def same(a: str, b: str) -> bool:
        ok_a, ok_b = grader.score(a, sample) >= 1.0, grader.score(b, sample) >= 1.0
        if ok_a or ok_b:
            return ok_a and ok_b
        return grader.same(a, b, sample)

    win = majority_vote(answers, same)
    return 0.0 if win is None else grader.score(answers[win], sample)


def _vote_shortcut(scores: list[float | None]) -> float | None:
    """cons@k decided by the scores alone (no correct answer → 0; fewer wrong than correct → 1), else None."""
    num_correct = sum(1 for x in scores if x is not None and x >= 1.0)
    num_wrong = sum(1 for x in scores if x is not None and x < 1.0)
    if num_correct == 0:
        return 0.0
    if num_wrong < num_correct:
        return 1.0
    return None


def _task_metrics(task, rows: list[GradedSample]) -> dict[str, float]:
    """Means of the task's own per-completion statistics (``Task.completion_metrics``), as ``task/<name>``."""
    fn = getattr(task, "completion_metrics", None)
    if fn is None or not rows:
        return {}
    sums: dict[str, float] = {}
    for row in rows:
        for k, v in fn(row.completion).items():
            sums[k] = sums.get(k, 0.0) + float(v)
    return {f"task/{k}": v / len(rows) for k, v in sums.items()}


def read_completions(path: str | Path, samples: list[Sample], task_name: str) -> dict[str, list[dict]]:
    """Completions made elsewhere: JSONL lines ``{"id": ..., "completion": "..."}`` (several per id allowed, kept in
    file order), optionally with ``num_tokens`` (int) and ``finish_reason`` (``"length"`` = truncated) or
    ``truncated`` (bool).

    Errors (one line, file and line number): missing file, malformed JSON, a missing or non-string field, an id that
    is not a problem of the task, an empty file.
    """
    known = {s.id for s in samples}
    out: dict[str, list[dict]] = {}
    for line, rec in iter_jsonl(path):
        for key in ("id", "completion"):
            if key not in rec:
                raise R1Error(f"{path}:{line}: missing field {key!r} (each line needs 'id' and 'completion')")
        sid = rec["id"]
        if isinstance(sid, (int, float)) and not isinstance(sid, bool):
            sid = str(sid)
        if not isinstance(sid, str):
            raise R1Error(f"{path}:{line}: field 'id' must be a string, got {type(sid).__name__}")
        if sid not in known:
            raise R1Error(f"{path}:{line}: unknown id {sid!r}: not a problem of task {task_name!r}")
        if not isinstance(rec["completion"], str):
            raise R1Error(f"{path}:{line}: field 'completion' must be a string")
        entry: dict[str, Any] = {"completion": rec["completion"]}
        if isinstance(rec.get("num_tokens"), int):
            entry["num_tokens"] = rec["num_tokens"]
        if isinstance(rec.get("finish_reason"), str):
            entry["finish_reason"] = rec["finish_reason"]
        elif isinstance(rec.get("truncated"), bool):
            entry["finish_reason"] = "length" if rec["truncated"] else "stop"
        out.setdefault(sid, []).append(entry)
    if not out:
        raise R1Error(f"{path}: no completions (empty file)")
    return out


__all__ = [
    "AnswerGrader",
    "AnswerTask",
    "GradedSample",
    "WorkerPool",
    "answer_functions",
    "grade_benchmark",
    "read_completions",
    "vote_score",
]
