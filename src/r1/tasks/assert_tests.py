"""Assert-based tests judged outside the program's process: how HumanEval's ``check`` and MBPP's asserts are run.

A program must not be able to decide its own verdict. Running ``assert f(x) == y`` inside the program's process
lets it: it can patch ``builtins.exec``, return an object whose ``__eq__`` always says True, or find the harness's
state on a frame and print its pass lines. So each problem's tests are split with ``ast`` into what has
to run in the program's process (calling its functions) and what must not (the expected values, the comparison,
the verdict). The program's process only reports *values*, encoded by :mod:`r1.sandbox.values`, which decode to
builtin types only. A problem is graded in one of three modes (:class:`TestPlan`):

- ``compare`` (152/164 HumanEval, 973/974 MBPP problems): every assert is ``assert OBS == LITERAL`` (either side),
  ``assert OBS``, ``assert not OBS`` or ``assert OBS is True|False|None``, where ``OBS`` is a call of the
  program's function, possibly inside ``tuple``/``list``/``set``/``sorted``/``int``/... (:data:`WRAPPERS`). The
  sandbox evaluates each ``OBS`` (a probe); the grader compares the decoded value with ``ast.literal_eval`` of the
  literal using Python's ``==`` on builtin values, so ``1 == 1.0 == True``, ``[1] != (1,)``, ``Fraction(1, 2) ==
  0.5`` and ``iter([1]) != [1]`` as in the original assert. One sandbox run per program; what it decodes is capped
  per program (:mod:`r1.sandbox.values`), so a program cannot stall the grader.
- ``replay`` (the other 12 HumanEval problems: loops, random inputs, the prompt's helpers, tolerances such as
  ``abs(candidate(x) - y) < 1e-6``, expected values computed with the reference; and MBPP 596, whose expected
  values are ``sys.getsizeof(...)``): the tests run once per problem with the reference solution, recording
  the arguments of every call to the program's functions (cached on the task). The program's run calls its
  functions on those arguments and reports the values (or the exception type); a second sandbox run, holding the
  test code and the reference program but none of the program's code, runs the original tests with the program's
  functions replaced by a replay of those values (each call's arguments must be the recorded ones, in order) and
  reports which tests passed. Two sandbox runs per program, plus one per problem. A judge run that ends without a
  verdict (timeout, memory, killed under load: it holds no code of the program's) is a sandbox error, retried
  once like every run, then the verdict is unknown (never a fail of the program).
- ``inprocess`` (only where neither works: some call takes objects of the program's own classes and its assert is
  no ``compare`` form; no HumanEval or MBPP problem): the old way, the asserts run in the program's process. It is
  hardened (the bootstrap's exec/compile are taken before the program runs; each call's result goes through
  ``__r1_plain__``, a round trip through the encoding, so ``__eq__`` overrides do not count) but a program that
  goes after the harness itself can still fake it; a warning names the problem.

What the program still decides: the values it reports (any value it could have returned) and whether it finishes
(a timeout, crash or early exit is a fail). What it cannot reach: the expected values (never in its process in
``compare`` and ``replay``), the comparison and the verdict. Random inputs (``random`` without a seed in HumanEval
38, 50, 53) are drawn with ``random.seed(0)`` in both the recording and the judging run, so they are the same.

Deliberately left out: tests whose calls depend on earlier results of the program (a replay mismatch is a fail),
mutation of arguments as the thing tested (only return values and raised exception types are compared).
"""

from __future__ import annotations

import ast
import builtins
import json
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from r1.sandbox import Job, Result
from r1.sandbox.values import MAX_TEXT, Budget, decode, encode

#: Builtins that an observed expression may wrap around the program's call (one argument, applied in its process).
WRAPPERS = frozenset({"tuple", "list", "set", "frozenset", "sorted", "int", "float", "str", "bool", "len", "abs"})


@dataclass(frozen=True)
class AssertSpec:
    """A problem's assert-based tests, as its task states them.

    Attributes:
        reference: the reference program (HumanEval: prompt + canonical body; MBPP: solution + setup code).
        module: test code run before the tests (HumanEval: the ``check`` definition; MBPP: "").
        tests: one source per test (HumanEval: ``check(<entry point>)``; MBPP: each assert).
        names: the program's functions the tests call (HumanEval: the entry point).
        compare: per assert ``(test, observed expression, {alias: name}, op, expected)`` if every assert is a
            ``compare`` form, else None.
        snippets: the tests as in-process snippets (the ``inprocess`` mode).
        no_replay: why the ``replay`` mode cannot work ("" if it may).
    """

    reference: str
    module: str
    tests: tuple[str, ...]
    names: tuple[str, ...]
    compare: tuple[tuple[int, str, dict, str, Any], ...] | None
    snippets: tuple[str, ...]
    no_replay: str = ""


@dataclass
class TestPlan:
    """How one problem's tests run and who judges them (see the module docstring for the modes).

    Attributes:
        mode: ``compare`` | ``replay`` | ``inprocess``.
        num_tests: tests of the problem (HumanEval: 1, the whole ``check``; MBPP: one per assert).
        probes: the test items of the program's run: probes (``compare``, ``replay``) or snippets (``inprocess``).
        checks: ``compare``: per probe ``(test, op, expected)``.
        probe_tests: ``replay``: the test each probe's call belongs to.
        judge_program: ``replay``: the judge's program without the program's values.
        spec: ``replay``: what the judge program reads (names, tests, recorded calls).
        reason: why the problem is not graded outside (``inprocess``).
    """

    mode: str
    num_tests: int
    probes: list = field(default_factory=list)
    checks: list[tuple[int, str, Any]] = field(default_factory=list)
    probe_tests: list[int] = field(default_factory=list)
    judge_program: str = ""
    spec: dict = field(default_factory=dict)
    reason: str = ""


_NO = object()  # "not a literal"


def parse(source: str) -> ast.Module | None:
    """``ast.parse`` without SyntaxWarnings (benchmark code has invalid escapes), None on a syntax error."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return ast.parse(source)
        except (SyntaxError, ValueError, MemoryError, RecursionError):
            return None


def _literal(node: ast.AST):
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _NO


def _bound_names(tree: ast.AST) -> set[str]:
    """Every name the code binds anywhere (assignments, defs, imports, parameters)."""
    out = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
            out.add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(n.name)
        elif isinstance(n, ast.alias):
            out.add((n.asname or n.name).split(".")[0])
        elif isinstance(n, ast.arg):
            out.add(n.arg)
    return out


def _is_call_of(node: ast.AST, names) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in names


def _observed(node: ast.AST, names, wrappers) -> bool:
    """A call of the program's function (``names``) on any inputs, or a one-argument wrapper of such an expression.

    Nothing of the expected value can hide in it: outside the call's arguments there are only wrappers.
    """
    if _is_call_of(node, names):
        return True
    return (
        _is_call_of(node, wrappers)
        and len(node.args) == 1
        and not node.keywords
        and not isinstance(node.args[0], ast.Starred)
        and _observed(node.args[0], names, wrappers)
    )


def assert_form(test: ast.expr, names, wrappers) -> tuple[ast.expr, str, Any] | str | None:
    """``(observed expression, op, expected)`` of an assert's test, ``"always"`` for ``assert True``, else None.

    ``op``: ``eq`` (``OBS == literal`` or ``literal == OBS``), ``is`` (``OBS is True|False|None``), ``truthy``
    (``assert OBS``), ``falsy`` (``assert not OBS``).
    """
    def obs(node):
        return node if _observed(node, names, wrappers) else None

    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        left, right, op = test.left, test.comparators[0], test.ops[0]
        if isinstance(op, ast.Eq):
            lv, rv = _literal(left), _literal(right)
            if rv is not _NO and obs(left):
                return left, "eq", rv
            if lv is not _NO and obs(right):
                return right, "eq", lv
        elif isinstance(op, ast.Is) and isinstance(right, ast.Constant) and obs(left):
            if right.value is True or right.value is False or right.value is None:
                return left, "is", right.value
        return None
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not) and obs(test.operand):
        return test.operand, "falsy", None
    value = _literal(test)
    if value is not _NO:
        return "always" if value else None
    return (test, "truthy", None) if obs(test) else None


def _segment(source: str, node: ast.AST) -> str:
    return ast.get_source_segment(source, node) or ast.unparse(node)


def split_check(module: str, entry: str) -> tuple[tuple[int, str, dict, str, Any], ...] | None:
    """HumanEval: the ``compare`` form of ``def check(candidate)`` (all one test), or None.

    The observed expressions may name only the candidate and builtins that the test code does not rebind: they
    are evaluated in the program's process, where the test code does not exist.
    """
    tree = parse(module)
    if tree is None:
        return None
    checks = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "check"]
    if len(checks) != 1:
        return None
    a = checks[0].args
    if len(a.args) != 1 or a.posonlyargs or a.vararg or a.kwonlyargs or a.kwarg or a.defaults:
        return None
    param = a.args[0].arg
    allowed = (set(dir(builtins)) - _bound_names(tree)) | {param}
    out = []
    for stmt in checks[0].body:
        if isinstance(stmt, ast.Pass) or (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant)):
            continue
        form = assert_form(stmt.test, {param}, WRAPPERS & allowed) if isinstance(stmt, ast.Assert) else None
        if form is None:
            return None
        if form == "always":
            continue
        node, op, expected = form
        if not {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} <= allowed:
            return None
        out.append((0, _segment(module, node), {param: entry}, op, expected))
    return tuple(out)


def split_asserts(tests: list[str], names: set[str]) -> tuple[tuple[int, str, dict, str, Any], ...] | None:
    """MBPP: the ``compare`` form of one-line asserts (one test each), or None.

    ``names``: what the reference solution defines at top level; the observed expression must call one of them
    (evaluated in the program's namespace, as the original assert would be).
    """
    out = []
    for j, src in enumerate(tests):
        tree = parse(src)
        if tree is None or len(tree.body) != 1 or not isinstance(tree.body[0], ast.Assert):
            return None
        form = assert_form(tree.body[0].test, names, WRAPPERS - names)
        if form is None:
            return None
        if form != "always":
            node, op, expected = form
            out.append((j, _segment(src, node), {}, op, expected))
    return tuple(out)


def plain_snippet(source: str, names) -> str:
    """``source`` with each outermost call of ``names`` wrapped in ``__r1_plain__(...)`` (the in-process mode)."""

    class Wrap(ast.NodeTransformer):
        def visit_Call(self, node):
            if _is_call_of(node, names):  # its arguments may build the program's objects: left as they are
                return ast.Call(ast.Name("__r1_plain__", ast.Load()), [node], [])
            return self.generic_visit(node)

    tree = parse(source)
    if tree is None:
        return source
    return ast.unparse(ast.fix_missing_locations(Wrap().visit(tree)))


# ---------------------------------------------------------------------------------------------------- plans
def compare_plan(spec: AssertSpec, num_tests: int) -> TestPlan:
    """The ``compare`` plan of a spec whose asserts all have the compare form."""
    probes = [("eval", src, bind) for _, src, bind, _, _ in spec.compare]
    checks = [(test, op, expected) for test, _, _, op, expected in spec.compare]
    return TestPlan("compare", num_tests, probes=probes, checks=checks)


def inprocess_plan(spec: AssertSpec, num_tests: int, reason: str) -> TestPlan:
    return TestPlan("inprocess", num_tests, probes=list(spec.snippets), reason=reason)


# The trace and judge runs: the reference program, the test code, then this harness. Names start with __r1_ so
# they cannot clash with the reference's; the encoding is exec'd into a private dict for the same reason.
_HARNESS = r'''

def __r1_setup__():
    import json
    values = {}
    exec(__R1_VALUES_SOURCE__, values)
    return json.loads(__R1_SPEC_JSON__), values["encode"], values["decode"], values["Budget"]()


__r1_spec__, __r1_encode__, __r1_decode__, __r1_budget__ = __r1_setup__()


def __r1_run__(j, make):
    """Run test j with each of the program's names bound to make(name, the reference's object)."""
    import random
    g = globals()
    saved = {n: g.get(n) for n in __r1_spec__["names"]}
    try:
        for n, f in saved.items():
            g[n] = make(n, f)
        random.seed(0)
        exec(compile(__r1_spec__["tests"][j], "<test %d>" % j, "exec"), g)
    finally:
        g.update(saved)


def __r1_trace__():
    """Per test, [name, args, kwargs] of every call, copied before the reference runs it."""
    import copy
    out = []
    for j in range(len(__r1_spec__["tests"])):
        calls, active = [], []

        def make(name, f, calls=calls, active=active):
            def record(*args, **kwargs):
                if active:  # the reference calling itself (recursion): not a call of the test's
                    return f(*args, **kwargs)
                calls.append([name, copy.deepcopy(list(args)), copy.deepcopy(dict(kwargs))])
                active.append(name)
                try:
                    return f(*args, **kwargs)
                finally:
                    active.pop()
            return record

        __r1_run__(j, make)
        out.append(calls)
    return out


class __R1Mismatch__(BaseException):
    """A call the recording did not make, or a value that cannot be decoded (BaseException: the test's own
    `except Exception` or `except ValueError` cannot take it for an exception the program raised)."""


def __r1_raised__(name):
    import builtins
    cls = getattr(builtins, name, None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        return cls("raised by the program under test")
    return RuntimeError(name)


def __r1_judge__(j):
    """True if test j passes with the program's functions replaced by a replay of the values it returned."""
    calls, outcomes = __r1_spec__["calls"][j], __r1_spec__["outcomes"][j]
    used = []

    def make(name, f):
        def replay(*args, **kwargs):
            k = len(used)
            if k >= len(calls) or calls[k][0] != name or __r1_encode__([list(args), dict(kwargs)]) != calls[k][1]:
                raise __R1Mismatch__
            used.append(k)
            kind, payload = outcomes[k]
            if kind == "raise":
                raise __r1_raised__(payload)
            try:
                return __r1_decode__(payload, __r1_budget__)
            except Exception:  # refused or malformed: a fail (never an exception the test may expect)
                raise __R1Mismatch__ from None
        return replay

    try:
        __r1_run__(j, make)
    except (AssertionError, __R1Mismatch__):
        return False
    return len(used) == len(calls)
'''

_VALUES_SOURCE = (Path(__file__).parent.parent / "sandbox" / "values.py").read_text(encoding="utf-8")


def harness_program(spec: AssertSpec, data: dict) -> str:
    """The reference program + test code + harness, reading ``data`` (names, tests, and for a judge the calls and
    the program's outcomes) from a JSON literal."""
    head = "\n".join([
        f"__R1_VALUES_SOURCE__ = {_VALUES_SOURCE!r}",
        f"__R1_SPEC_JSON__ = {json.dumps(data)!r}",
    ])
    return "\n\n".join([spec.reference, spec.module, head + _HARNESS])


def trace_job(spec: AssertSpec, timeout_s: float, memory_mb: int) -> Job:
    """The per-problem run that records the calls the tests make, with the reference solution."""
    program = harness_program(spec, {"names": list(spec.names), "tests": list(spec.tests)})
    return Job(program, tests=[("eval", "__r1_trace__()", {})], timeout_s=timeout_s, memory_mb=memory_mb)


def replay_plan(spec: AssertSpec, num_tests: int, trace: Result) -> TestPlan:
    """The ``replay`` plan from a finished trace run; ``inprocess`` if the calls cannot be recorded as values."""
    outcome = (trace.tests or ["not_run"])[0]
    if trace.status != "ok" or outcome != "value":
        why = {"fail": "the reference solution fails its tests", "error:Unencodable": "a call takes objects"}
        return inprocess_plan(spec, num_tests, why.get(outcome, f"recording the calls failed ({trace.reason})"))
    try:
        recorded = decode(trace.values[0])
        calls = [[[name, encode([args, kwargs])] for name, args, kwargs in test] for test in recorded]
    except (ValueError, TypeError):
        return inprocess_plan(spec, num_tests, "the recorded calls are malformed")
    probes = [("call", name, args, kwargs) for test in recorded for name, args, kwargs in test]
    probe_tests = [j for j, test in enumerate(recorded) for _ in test]
    data = {"names": list(spec.names), "tests": list(spec.tests), "calls": calls}
    return TestPlan("replay", num_tests, probes=probes, probe_tests=probe_tests, spec=data)


# ---------------------------------------------------------------------------------------------------- verdicts
def judgeable(result: Result) -> bool:
    """The program's run reached the end of its probes (a probe that raised is an outcome, not a crash)."""
    return result.status == "ok" or (result.status == "runtime_error" and result.completed and result.exit_code == 0)


def _verdict(result: Result, passed: list[bool], errors: list[bool], mode: str) -> Result:
    tests = ["pass" if p else ("error:probe" if e else "fail") for p, e in zip(passed, errors)]
    failed = [f"{j}:{t}" for j, t in enumerate(tests) if t != "pass"]
    if not failed:
        return replace(result, status="ok", reason="", tests=tests)
    status = "runtime_error" if any(t.startswith("error:") for t in tests) else "wrong_answer"
    reason = f"{len(failed)}/{len(tests)} tests failed ({', '.join(failed[:5])}; judged outside the program: {mode})"
    return replace(result, status=status, reason=reason, tests=tests)


def _holds(op: str, value, expected) -> bool:
    if op == "eq":
        return value == expected  # decoded values on both sides: Python's own ==
    if op == "is":
        return value is expected
    return bool(value) if op == "truthy" else not value


def judge_compare(plan: TestPlan, result: Result) -> Result:
    """The ``compare`` verdict: each probe's decoded value against its expected literal, here."""
    if not judgeable(result):
        return result
    passed, errors = [True] * plan.num_tests, [False] * plan.num_tests
    budget = Budget()  # shared by the program's values: their set/dict elements are capped together
    for i, (test, op, expected) in enumerate(plan.checks):
        ok = False
        if result.tests[i] == "value":
            try:
                ok = _holds(op, decode(result.values[i], budget), expected)
            except (ValueError, RecursionError, ArithmeticError, TypeError):  # malformed, too large; Decimal('sNaN')
                pass
        else:
            errors[test] = True
        passed[test] = passed[test] and ok
    return _verdict(result, passed, errors, "compare")


def judge_job(plan: TestPlan, spec: AssertSpec, result: Result, timeout_s: float, memory_mb: int) -> Job:
    """The ``replay`` judge's run: the original tests over the program's values (its code is not in it)."""
    outcomes: list[list] = [[] for _ in range(plan.num_tests)]
    for j, outcome, value in zip(plan.probe_tests, result.tests, result.values):
        if outcome == "value":  # one beyond the cap is refused here rather than shipped to the judge
            outcomes[j].append(["value", value] if len(value) <= MAX_TEXT else ["refused", ""])
        else:
            outcomes[j].append(["raise", outcome.split(":", 1)[-1]])
    program = harness_program(spec, {**plan.spec, "outcomes": outcomes})
    probes = [("eval", f"__r1_judge__({j})", {}) for j in range(plan.num_tests)]
    return Job(program, tests=probes, timeout_s=timeout_s, memory_mb=memory_mb)


def judge_replay(plan: TestPlan, result: Result, judged: Result) -> Result:
    """The ``replay`` verdict from the judge's run. A judge's run that did not reach the end of its probes (a
    timeout, memory, killed under load, the sandbox itself) leaves the verdict unknown, ``sandbox_error``: it holds
    the tests and the reference, none of the program's code, so its failure says nothing about the program."""
    if not judgeable(judged):
        why = f"the judge's run failed ({judged.status}: {judged.reason})"
        return replace(result, status="sandbox_error", reason=why)
    true = encode(True)
    passed = [judged.tests is not None and v == true for v in (judged.values or [None] * plan.num_tests)]
    errors = [outcome.startswith("error:") for outcome in result.tests or []]
    errors = [any(e for e, j in zip(errors, plan.probe_tests) if j == t) for t in range(plan.num_tests)]
    return _verdict(result, passed, errors, "replay")


__all__ = [
    "AssertSpec",
    "TestPlan",
    "WRAPPERS",
    "assert_form",
    "compare_plan",
    "inprocess_plan",
    "judge_compare",
    "judge_job",
    "judge_replay",
    "judgeable",
    "parse",
    "plain_snippet",
    "replay_plan",
    "split_asserts",
    "split_check",
    "trace_job",
]
