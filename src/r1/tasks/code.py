"""Code tasks graded by running the model's program in the sandbox: HumanEval, MBPP, and stdin/stdout problems.

- ``humaneval`` (Chen et al., 2021, arXiv 2107.03374): 164 function-completion problems. The program is the prompt
  (signature + docstring) followed by the model's code, graded by the benchmark's ``check(candidate)``.
- ``mbpp`` (Austin et al., 2021, arXiv 2108.07732): 974 short problems with three ``assert`` tests each, shown in
  the prompt as the usual MBPP prompt does (they name the function). Splits by task id: ``test`` (500),
  ``train`` (374), ``validation`` (90), ``prompt`` (10), ``full`` (all 974).
- ``stdio``: LiveCodeBench/Codeforces-style problems from a user data file (JSONL, Parquet or a datasets directory),
  ``{"id", "problem", "tests": [{"input", "output"}, ...]}``; each test feeds ``input`` on stdin and compares stdout
  with ``output`` (``compare``: ``whitespace`` tokens, or ``exact``).

Code extraction (:func:`extract_code`): the text after the last ``</think>``, inside ``<answer>…</answer>`` if
present, then the last fenced code block; without a fence the text itself. For HumanEval a completion that is a function
*body* (indented, as base models continue the prompt) is appended to the prompt; a complete definition is placed
after the prompt, so it replaces the stub while keeping the prompt's imports and helpers.

The verdict is never the program's to give: HumanEval's and MBPP's asserts are judged outside the program's
process (:class:`AssertTask`, :mod:`r1.tasks.assert_tests`: the program only reports the values its functions
return for the tests' inputs, compared in the grader or replayed through the original tests in a run without the
program's code), and stdio output is compared here. A completion passes only if every test passes (``grade`` =
1.0 or 0.0); ``run_tests`` also gives the share of tests passed (MBPP asserts, stdio cases; HumanEval's ``check``
is one test) for the partial-credit code reward. A sandbox failure is retried once, then raised as
:class:`r1.sandbox.SandboxError`: it is never scored.

Deliberately left out: languages other than Python, special judges (stdio problems with several valid outputs),
per-problem time limits, and the hub (LiveCodeBench/Codeforces data must be saved locally in the schema above;
``fields`` maps r1's field names to other column names, :mod:`r1.data.readers`).
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import warnings
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, field
from pathlib import Path

from r1.data.readers import Where, check_fields, iter_records
from r1.data.sample import Sample
from r1.errors import R1Error
from r1.sandbox import Job, Result, SandboxError, check_output, default_pool
from r1.tasks import assert_tests as at
from r1.tasks.base import Task
from r1.tasks.math import default_data_dir

_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)```", re.DOTALL)
_OPEN_FENCE = re.compile(r"```[ \t]*[\w+#.-]*[^\n]*\n")


def extract_code(completion: str) -> str:
    """The program in a completion.

    Steps: keep the text after the last ``</think>``; if it holds ``<answer>…</answer>``, keep the inside of the
    last one; take the last closed fenced block (any language tag); else, after an unclosed fence (a truncated
    completion), the rest; else the text itself.

    Examples: ``"<think>x</think> <answer>```python\\nprint(1)\\n```</answer>"`` → ``"print(1)\\n"``;
    ``"    return a + b\\n"`` → unchanged (a HumanEval body).
    """
    text = completion
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    answers = re.findall(r"<answer>(.*?)(?:</answer>|$)", text, re.DOTALL)
    if answers:
        text = answers[-1]
    blocks = _FENCE.findall(text)
    if blocks:
        return blocks[-1][1]
    opened = list(_OPEN_FENCE.finditer(text))
    if opened:
        return text[opened[-1].end() :]
    return text.strip("\n") + "\n" if text.strip() else ""


@dataclass
class CodeVerdict:
    """The outcome of running a completion's program against a sample's tests.

    Attributes:
        passed: tests passed.
        total: tests in the sample.
        status: ``ok`` if all passed, else the status of the first failing run (``sandbox_error`` if any run
            failed in the sandbox itself, which makes the verdict unknown).
        results: the sandbox results (one per run; stdio tasks run one program per test).
    """

    passed: int
    total: int
    status: str
    results: list[Result] = field(default_factory=list)

    @property
    def all_passed(self) -> bool:
        return self.status == "ok" and self.passed == self.total

    @property
    def fraction(self) -> float:
        return self.passed / self.total if self.total else 0.0


class CodeTask(Task):
    """Base of the code tasks: loading, sandbox settings, and the test runner.

    Args:
        data: a JSONL file, Parquet file or datasets directory (default: the task's file in
            :func:`r1.tasks.math.default_data_dir`).
        timeout_s: wall-clock limit of one sandbox run (stdio: one test).
        memory_mb: address-space limit of one run.
        workers: concurrent sandboxes (default: one per CPU).
        isolation: ``namespaces`` | ``rlimits`` to force a sandbox level; None = the strongest available.
        prompt_style: ``instruct`` (the problem plus a request for a fenced Python block) | ``completion`` (the raw
            prompt, for base models continuing the code with the ``plain`` template).
        fields: r1 field name -> the file's column (``{"problem": "question"}``); {} = the file uses r1's names.
    """

    name = "code"
    version = "1"
    default_file: str | None = None

    def __init__(
        self,
        data: str | None = None,
        timeout_s: float = 10.0,
        memory_mb: int = 512,
        workers: int | None = None,
        isolation: str | None = None,
        prompt_style: str = "instruct",
        fields: dict[str, str] | None = None,
    ):
        if data is None and self.default_file is None:
            raise R1Error(f"task {self.name!r} needs a data file: pass task.data=PATH")
        if prompt_style not in ("instruct", "completion"):
            raise R1Error(f"unknown prompt_style {prompt_style!r}; valid: instruct, completion")
        if timeout_s <= 0 or memory_mb < 32:
            raise R1Error(f"task {self.name!r}: timeout_s must be > 0 and memory_mb >= 32")
        self.data = data
        self.fields = check_fields(fields, f"task {self.name!r}: fields")
        self.timeout_s = float(timeout_s)
        self.memory_mb = int(memory_mb)
        self.workers = workers
        self.isolation = isolation
        self.prompt_style = prompt_style

    # ------------------------------------------------------------------------------------------------ loading
    def data_path(self) -> Path:
        if self.data is not None:
            return Path(self.data).expanduser()
        return default_data_dir() / str(self.default_file)

    def read_records(self, required: tuple[str, ...]) -> list[tuple[Where, dict]]:
        """``(where, record)`` for every record (``where``: file:line or file: row N); one-line R1Error naming it for
        a bad one."""
        path = self.data_path()
        out, seen = [], {}
        for where, rec in iter_records(path, self.fields, required=required):
            missing = [k for k in required if k not in rec]
            if missing:
                raise R1Error(f"{where}: missing field(s) {', '.join(map(repr, missing))}")
            rid = rec["id"]
            if not isinstance(rid, (str, int)) or isinstance(rid, bool):
                raise R1Error(f"{where}: field 'id' must be a string")
            rid = str(rid)
            if rid in seen:
                raise R1Error(f"{where}: duplicate id {rid!r} (first on {seen[rid].place})")
            seen[rid] = where
            if not isinstance(rec["problem"], str):
                raise R1Error(f"{where}: field 'problem' must be a string")
            out.append((where, rec))
        if not out:
            raise R1Error(f"{path}: no records (empty dataset)")
        return out

    # ------------------------------------------------------------------------------------------------ grading
    def program(self, completion: str, sample: Sample) -> str:
        """The program a completion stands for: its extracted code (HumanEval: prompt + code)."""
        return extract_code(completion)

    def program_jobs(self, program: str, sample: Sample) -> list[Job]:
        """The sandbox runs that test ``program`` (one for assert-based tasks, one per test for stdio)."""
        raise NotImplementedError

    def jobs(self, completion: str, sample: Sample) -> list[Job]:
        return self.program_jobs(self.program(completion, sample), sample)

    def count_passed(self, job_results: list[Result], sample: Sample) -> int:
        """Tests passed, given the results of :meth:`jobs` (in order)."""
        return sum(r.num_tests_passed for r in job_results)

    def num_tests(self, sample: Sample) -> int:
        raise NotImplementedError

    def judge(self, result: Result, job_index: int, sample: Sample) -> Result:
        """Post-process one run (stdio: compare the output); default: as is."""
        return result

    def run_tests(self, completion: str, sample: Sample, stop_on_failure: bool = False) -> CodeVerdict:
        """Run ``completion`` against ``sample``'s tests in the sandbox pool.

        With ``stop_on_failure`` the runs not yet started are cancelled after the first failure (enough for a
        pass/fail grade). A ``sandbox_error`` run is retried once; if it fails again the verdict's status is
        ``sandbox_error``.
        """
        return self.run_tests_many([completion], [sample], stop_on_failure=stop_on_failure)[0]

    def run_tests_many(
        self, completions: list[str], samples: list[Sample], stop_on_failure: bool = False
    ) -> list[CodeVerdict]:
        """:meth:`run_tests` for many completions at once: all their runs share the pool concurrently."""
        if len(completions) != len(samples):
            raise ValueError("completions and samples must have the same length")
        has_code = [bool(extract_code(c).strip()) for c in completions]
        todo = [i for i, ok in enumerate(has_code) if ok]
        programs = [self.program(completions[i], samples[i]) for i in todo]
        ran = iter(self.run_programs_many(programs, [samples[i] for i in todo], stop_on_failure))
        # no code at all: a fail without a sandbox run (as in grade)
        return [
            next(ran) if ok else CodeVerdict(0, self.num_tests(s), "runtime_error") for ok, s in zip(has_code, samples)
        ]

    def run_programs_many(
        self, programs: list[str], samples: list[Sample], stop_on_failure: bool = False
    ) -> list[CodeVerdict]:
        """:meth:`run_tests_many` for programs already extracted (see :meth:`program`)."""
        pool = default_pool(self.workers, self.isolation)
        unknown = self.prepare(samples)
        all_jobs = [[] if bad else self.program_jobs(p, s) for p, s, bad in zip(programs, samples, unknown)]
        results: list[list[Result | None]] = [[bad] if bad else [None] * len(j) for j, bad in zip(all_jobs, unknown)]
        futures = {}

        def submit(job: Job, k: int, i: int, attempt: int, first: Result | None = None) -> None:
            futures[pool.submit(job)] = (job, k, i, attempt, first)

        for k, jobs in enumerate(all_jobs):
            for i, job in enumerate(jobs):
                submit(job, k, i, 0)
        failed: set[int] = set()
        while futures:
            done, _ = wait(list(futures), return_when=FIRST_COMPLETED)
            for fut in done:
                job, k, i, attempt, first = futures.pop(fut)
                if fut.cancelled():
                    continue
                res = fut.result()
                if first is not None:  # a judge's run: it decides the verdict of the program's run `first`
                    res = self.judge_after(first, res, samples[k])
                if res.status == "sandbox_error" and attempt == 0:  # the program's run or its judge's
                    submit(job, k, i, 1, first)
                    continue
                if first is None:
                    follow = self.follow_up(res, samples[k]) if res.status != "sandbox_error" else None
                    if follow is not None:
                        submit(follow, k, i, 0, res)
                        continue
                    res = self.judge(res, i, samples[k])
                results[k][i] = res
                if res.status != "ok" and stop_on_failure and k not in failed:
                    failed.add(k)
                    for other, (_, k2, _, _, _) in list(futures.items()):
                        if k2 == k and other.cancel():
                            futures.pop(other)
        return [self._verdict(rs, s) for rs, s in zip(results, samples)]

    def prepare(self, samples: list[Sample]) -> list[Result | None]:
        """Per-problem work before the programs run (assert tasks: record the reference's calls); per sample None,
        or a ``sandbox_error`` Result when that work failed (the verdict is then unknown). Default: nothing."""
        return [None] * len(samples)

    def follow_up(self, result: Result, sample: Sample) -> Job | None:
        """A second run that judges the program's run ``result`` (the judge of a ``replay`` problem), or None."""
        return None

    def judge_after(self, result: Result, judged: Result, sample: Sample) -> Result:
        """The program's run ``result`` as judged by its :meth:`follow_up` run ``judged`` (``sandbox_error`` when the
        judge gave no verdict: retried once, as every run)."""
        raise NotImplementedError

    def _verdict(self, rs: list[Result | None], sample: Sample) -> CodeVerdict:
        ran = [r for r in rs if r is not None]
        total = self.num_tests(sample)
        passed = self.count_passed([r for r in rs if r is not None], sample) if ran else 0
        # runs are missing (cancelled) only after a failure, so "ok" means every run ran and passed
        if any(r.status == "sandbox_error" for r in ran):
            status = "sandbox_error"
        else:
            status = next((r.status for r in ran if r.status != "ok"), "ok")
        return CodeVerdict(passed=min(passed, total), total=total, status=status, results=ran)

    def grade(self, completion: str, sample: Sample) -> float:
        """1.0 if the program passes every test, else 0.0 (no code at all: 0.0). Raises SandboxError if the sandbox
        failed twice. Equals ``grade_answer(extract_answer(completion, sample), sample)``."""
        return self.grade_answer(self.extract_answer(completion, sample), sample)

    def grade_many(self, completions: list[str], samples: list[Sample]) -> list[float]:
        """:meth:`grade` for many completions, run concurrently (what an evaluation loop should call)."""
        answers = [self.extract_answer(c, s) for c, s in zip(completions, samples)]
        return self.grade_answers_many(answers, samples)

    # evaluation protocol (r1.eval.grade.AnswerTask): a code completion's "answer" is its program, so k samples
    # that wrote the same program are run once
    def extract_answer(self, completion: str, sample: Sample) -> str | None:
        """The program of ``completion`` (see :meth:`program`), or None if it holds no code."""
        return self.program(completion, sample) if extract_code(completion).strip() else None

    def grade_answer(self, answer: str | None, sample: Sample) -> float:
        """1.0 if the program ``answer`` passes every test (None → 0.0)."""
        return self.grade_answers_many([answer], [sample])[0]

    def grade_answers_many(self, answers: list[str | None], samples: list[Sample]) -> list[float]:
        """:meth:`grade_answer` for many programs, run concurrently; raises SandboxError on a sandbox failure."""
        todo = [i for i, a in enumerate(answers) if a is not None]
        verdicts = self.run_programs_many([answers[i] for i in todo], [samples[i] for i in todo], True)
        out = [0.0] * len(answers)
        for i, v in zip(todo, verdicts):
            if v.status == "sandbox_error":
                raise SandboxError(f"sandbox failed while grading {samples[i].id!r}: {_first_reason(v)}")
            out[i] = 1.0 if v.all_passed else 0.0
        return out

    def same_answer(self, a: str, b: str, sample: Sample) -> bool:
        """Two programs are the same answer if their text is (majority voting over code is rarely meaningful)."""
        return a.strip() == b.strip()

    def reference_completion(self, sample: Sample) -> str:
        """A completion made of the reference solution, as a model would write it (tests use it as an oracle)."""
        return f"```python\n{sample.answer}\n```"


def _first_reason(v: CodeVerdict) -> str:
    return next((r.reason for r in v.results if r.status == "sandbox_error"), "unknown")


def _fenced_request(text: str) -> str:
    return text.rstrip() + "\n\nWrite the solution in Python and give the complete code in a ```python``` code block."


# ------------------------------------------------------------------------------------------------ assert tasks
class AssertTask(CodeTask):
    """Base of the assert-based tasks (HumanEval, MBPP): the tests are judged outside the program's process.

    Each problem gets a :class:`r1.tasks.assert_tests.TestPlan` (``compare`` | ``replay`` | ``inprocess``, see
    that module), built once and kept on the task object (``replay`` plans need one sandbox run of the reference
    solution, made by :meth:`prepare` for all the problems of a batch at once).
    """

    def assert_spec(self, sample: Sample) -> at.AssertSpec:
        raise NotImplementedError

    def candidate_program(self, program: str, sample: Sample) -> str:
        """What runs in the program's sandbox (MBPP: the program + the problem's setup code)."""
        return program

    def _plan_key(self, sample: Sample) -> str:
        fields = json.dumps([sample.id, sample.problem, sample.answer, sample.meta], sort_keys=True, default=str)
        return hashlib.sha256(fields.encode("utf-8", "surrogatepass")).hexdigest()

    def test_plan(self, sample: Sample) -> at.TestPlan:
        """The problem's plan (made by :meth:`prepare` if not yet; SandboxError if that needed a run that failed)."""
        plans = self.__dict__.setdefault("_plans", {})
        key = self._plan_key(sample)
        if key not in plans:
            unknown = self.prepare([sample])[0]
            if unknown is not None:
                raise SandboxError(unknown.reason)
        return plans[key]

    def prepare(self, samples: list[Sample]) -> list[Result | None]:
        plans = self.__dict__.setdefault("_plans", {})
        traces: dict[str, tuple[Sample, at.AssertSpec]] = {}
        for s in samples:
            key = self._plan_key(s)
            if key in plans or key in traces:
                continue
            spec = self.assert_spec(s)
            if spec.compare is not None:
                plans[key] = at.compare_plan(spec, self.num_tests(s))
            elif spec.no_replay:
                plans[key] = self._inprocess(s, spec, spec.no_replay)
            else:
                traces[key] = (s, spec)
        unknown: dict[str, Result] = {}
        if traces:
            pool = default_pool(self.workers, self.isolation)
            timeout = max(3 * self.timeout_s, 10.0)  # the reference must not be timed out by a busy machine
            futures = {k: pool.submit(at.trace_job(spec, timeout, self.memory_mb)) for k, (_, spec) in traces.items()}
            for key, fut in futures.items():
                res = fut.result()
                if res.status == "sandbox_error":  # once more, as for every run
                    res = pool.submit(at.trace_job(traces[key][1], timeout, self.memory_mb)).result()
                s, spec = traces[key]
                if res.status in ("sandbox_error", "timeout", "memory", "killed"):
                    why = f"recording the reference's calls for {s.id!r} failed ({res.status}: {res.reason})"
                    unknown[key] = Result("sandbox_error", reason=why)
                    continue
                plan = at.replay_plan(spec, self.num_tests(s), res)
                plans[key] = self._inprocess(s, spec, plan.reason) if plan.mode == "inprocess" else plan
        return [unknown.get(self._plan_key(s)) for s in samples]

    def _inprocess(self, sample: Sample, spec: at.AssertSpec, reason: str) -> at.TestPlan:
        warnings.warn(
            f"{self.name} problem {sample.id!r} is graded inside the program's process, where a hostile program "
            f"can fake its verdict: {reason}",
            RuntimeWarning,
            stacklevel=3,
        )
        return at.inprocess_plan(spec, self.num_tests(sample), reason)

    def program_jobs(self, program: str, sample: Sample) -> list[Job]:
        plan = self.test_plan(sample)
        code = self.candidate_program(program, sample)
        return [Job(code, tests=plan.probes, timeout_s=self.timeout_s, memory_mb=self.memory_mb)]

    def judge(self, result: Result, job_index: int, sample: Sample) -> Result:
        plan = self.test_plan(sample)
        return at.judge_compare(plan, result) if plan.mode == "compare" else result

    def follow_up(self, result: Result, sample: Sample) -> Job | None:
        plan = self.test_plan(sample)
        if plan.mode != "replay" or not at.judgeable(result):
            return None
        return at.judge_job(plan, self.assert_spec(sample), result, self.timeout_s, self.memory_mb)

    def judge_after(self, result: Result, judged: Result, sample: Sample) -> Result:
        return at.judge_replay(self.test_plan(sample), result, judged)


# ---------------------------------------------------------------------------------------------------- HumanEval
class HumanEvalTask(AssertTask):
    """HumanEval: complete the function in the prompt; graded by the benchmark's ``check`` (all asserts pass).

    Every split is the whole set of 164 problems. ``Sample.answer`` is the canonical body, ``meta`` holds ``test``
    and ``entry_point``.
    """

    name = "humaneval"
    version = "1"
    default_file = "humaneval.jsonl"

    def load(self, split: str) -> list[Sample]:
        samples = []
        for where, rec in self.read_records(("id", "problem", "answer", "test", "entry_point")):
            for key in ("answer", "test", "entry_point"):
                if not isinstance(rec[key], str):
                    raise R1Error(f"{where}: field {key!r} must be a string")
            meta = {k: v for k, v in rec.items() if k not in ("id", "problem", "answer")}
            samples.append(Sample(id=str(rec["id"]), problem=rec["problem"], answer=rec["answer"], meta=meta))
        return samples

    def question(self, sample: Sample) -> str:
        if self.prompt_style == "completion":
            return sample.problem
        return _fenced_request(
            "Complete the following Python function.\n\n```python\n" + sample.problem.rstrip() + "\n```"
        )

    def program(self, completion: str, sample: Sample) -> str:
        """Prompt + the completion's code: a body is appended as is, a full definition after the stub."""
        code = extract_code(completion)
        first = next((ln for ln in code.splitlines() if ln.strip()), "")
        if first[:1] in (" ", "\t"):
            return sample.problem + code
        return sample.problem + "\n" + code

    def assert_spec(self, sample: Sample) -> at.AssertSpec:
        test, entry = sample.meta["test"], sample.meta["entry_point"]
        return at.AssertSpec(
            reference=sample.problem + sample.answer,
            module=test,
            tests=(f"check({entry})",),
            names=(entry,),
            compare=at.split_check(test, entry),
            snippets=(at.plain_snippet(test, {"candidate", entry}) + f"\ncheck({entry})\n",),
        )

    def num_tests(self, sample: Sample) -> int:
        return 1

    def reference_completion(self, sample: Sample) -> str:
        return sample.answer  # the canonical body, as a base model would continue the prompt


# --------------------------------------------------------------------------------------------------------- MBPP
_MBPP_SPLITS = ("test", "train", "validation", "prompt", "full")


class MBPPTask(AssertTask):
    """MBPP: a short task and its three asserts (shown in the prompt); graded by the asserts (all must pass).

    Args (besides :class:`CodeTask`'s):
        challenge_tests: also run ``challenge_test_list`` (harder extra asserts, 11 problems have them).

    Splits of the default file follow its ``split`` field (``full`` = all 974); a user file (``data=PATH``) is
    returned whole for every split.
    """

    name = "mbpp"
    version = "1"
    default_file = "mbpp.jsonl"

    def __init__(self, *args, challenge_tests: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.challenge_tests = bool(challenge_tests)

    def load(self, split: str) -> list[Sample]:
        if self.data is None and split not in _MBPP_SPLITS:
            raise R1Error(f"task 'mbpp' has no split {split!r}; valid: {', '.join(_MBPP_SPLITS)}")
        samples = []
        for where, rec in self.read_records(("id", "problem", "answer", "test_list")):
            tests = rec["test_list"]
            if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
                raise R1Error(f"{where}: field 'test_list' must be a non-empty list of strings")
            if not isinstance(rec["answer"], str):
                raise R1Error(f"{where}: field 'answer' must be a string")
            if self.data is None and split != "full" and rec.get("split") != split:
                continue
            meta = {k: v for k, v in rec.items() if k not in ("id", "problem", "answer")}
            samples.append(Sample(id=str(rec["id"]), problem=rec["problem"], answer=rec["answer"], meta=meta))
        return samples

    def tests(self, sample: Sample) -> list[str]:
        tests = list(sample.meta["test_list"])
        if self.challenge_tests:
            tests += list(sample.meta.get("challenge_test_list") or [])
        return tests

    def question(self, sample: Sample) -> str:
        tests = "\n".join(sample.meta["test_list"])
        if self.prompt_style == "completion":
            return f'"""\n{sample.problem}\n{tests}\n"""\n'
        return _fenced_request(f"{sample.problem}\nYour code should pass these tests:\n\n{tests}")

    def candidate_program(self, program: str, sample: Sample) -> str:
        # the setup code may use the solution's definitions (mbpp-367 builds trees of the solution's `Node`)
        setup = sample.meta.get("test_setup_code") or ""
        return program + ("\n\n" + setup + "\n" if setup.strip() else "")

    def assert_spec(self, sample: Sample) -> at.AssertSpec:
        tests = self.tests(sample)
        defined, functions = _top_level_names(sample.answer)
        used = set().union(*(_loaded_names(t) for t in tests))
        names = sorted(functions & used)
        # calls of the solution's classes build objects that cannot be recorded as values: no replay
        objects = sorted((defined - functions) & used)
        return at.AssertSpec(
            reference=self.candidate_program(sample.answer, sample),
            module="",
            tests=tuple(tests),
            names=tuple(names),
            compare=at.split_asserts(tests, defined),
            snippets=tuple(at.plain_snippet(t, functions) for t in tests),
            no_replay=f"the tests use the solution's {', '.join(objects)}" if objects else "",
        )

    def num_tests(self, sample: Sample) -> int:
        return len(self.tests(sample))


def _top_level_names(source: str) -> tuple[set[str], set[str]]:
    """Names a solution binds at top level (defs, classes, assignments), and which of them are functions."""
    tree = at.parse(source)
    defined, functions = set(), set()
    for node in tree.body if tree else []:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            defined.add(node.name)
            functions.add(node.name)
        elif isinstance(node, ast.ClassDef):
            defined.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
            defined |= names
            if isinstance(node.value, ast.Lambda):
                functions |= names
    return defined, functions


def _loaded_names(source: str) -> set[str]:
    tree = at.parse(source)
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} if tree else set()


# -------------------------------------------------------------------------------------------------------- stdio
class StdioTask(CodeTask):
    """Problems judged on standard input/output (LiveCodeBench / Codeforces style), from a user JSONL file.

    Records: ``{"id": str, "problem": str, "tests": [{"input": str, "output": str}, ...]}``; other keys go into
    ``meta``. Every split returns the whole file.

    Args (besides :class:`CodeTask`'s):
        compare: ``whitespace`` (same whitespace-separated tokens) | ``exact`` (identical text).
    """

    name = "stdio"
    version = "1"

    def __init__(self, *args, compare: str = "whitespace", **kwargs):
        super().__init__(*args, **kwargs)
        if compare not in ("whitespace", "exact"):
            raise R1Error(f"unknown compare {compare!r}; valid: whitespace, exact")
        self.compare = compare

    def load(self, split: str) -> list[Sample]:
        samples = []
        for where, rec in self.read_records(("id", "problem", "tests")):
            tests = rec["tests"]
            if not isinstance(tests, list) or not tests:
                raise R1Error(f"{where}: field 'tests' must be a non-empty list of {{input, output}} objects")
            for j, t in enumerate(tests):
                if not isinstance(t, dict) or not {"input", "output"} <= set(t):
                    raise R1Error(f"{where}: tests[{j}] must be an object with 'input' and 'output'")
                if not isinstance(t["input"], str) or not isinstance(t["output"], str):
                    raise R1Error(f"{where}: tests[{j}] 'input' and 'output' must be strings")
            answer = rec.get("answer", rec.get("solution", ""))
            meta = {k: v for k, v in rec.items() if k not in ("id", "problem", "answer")}
            samples.append(Sample(id=str(rec["id"]), problem=rec["problem"], answer=str(answer or ""), meta=meta))
        return samples

    def question(self, sample: Sample) -> str:
        if self.prompt_style == "completion":
            return sample.problem
        return _fenced_request(sample.problem + "\n\nRead the input from standard input and write the answer to "
                               "standard output.")

    def program_jobs(self, program: str, sample: Sample) -> list[Job]:
        return [
            Job(program, stdin=t["input"], timeout_s=self.timeout_s, memory_mb=self.memory_mb)
            for t in sample.meta["tests"]
        ]

    def judge(self, result: Result, job_index: int, sample: Sample) -> Result:
        return check_output(result, sample.meta["tests"][job_index]["output"], self.compare)

    def count_passed(self, job_results: list[Result], sample: Sample) -> int:
        return sum(r.status == "ok" for r in job_results)

    def num_tests(self, sample: Sample) -> int:
        return len(sample.meta["tests"])


#: The tasks this module defines (registered lazily in ``r1/tasks/__init__.py``).
TASKS_TABLE: dict[str, type[CodeTask]] = {
    HumanEvalTask.name: HumanEvalTask,
    MBPPTask.name: MBPPTask,
    StdioTask.name: StdioTask,
}

__all__ = [
    "AssertTask",
    "CodeTask",
    "CodeVerdict",
    "HumanEvalTask",
    "MBPPTask",
    "StdioTask",
    "TASKS_TABLE",
    "extract_code",
]
