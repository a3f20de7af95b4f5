"""Any `reasoning-gym <https://github.com/open-thought/reasoning-gym>`_ generator as a task (optional extra).

``task: {name: reasoning_gym, params: {dataset: leg_counting, size: 1000, seed: 0, min_animals: 3}}`` draws
``size`` train problems from the generator ``dataset`` (``reasoning_gym.create_dataset(dataset, size=..., seed=...,
**kwargs)``; every other parameter is the generator's own config field) and ``test_size`` test problems from the
same generator under another seed (derived from ``seed``), with problems whose question is in test dropped from
train. The prompt is the generator's question; the answer is the text of the last ``<answer>…</answer>`` block,
scored by the generator's own ``score_answer`` (a float in [0, 1]: some generators give partial credit).

Scoring is kept out of reach of the answer it scores. Several scorers ``eval()`` the answer (``n_queens``,
``binary_matrix``, ``spiral_matrix``, ``string_insertion``) and others hand it to ``sympy.parse_expr``, which
evaluates Python too (``countdown``, ``puzzle24``, the integrations, ``polynomial_multiplication``), so
``<answer>9**9**9**9</answer>`` would hang a run and ``__import__('os')...`` would run. Every answer is therefore
scored in a worker process (:class:`r1.workers.ChildProcess`, one per calling thread):

- the worker imports reasoning-gym, then confines itself for good (:func:`r1.sandbox.confine.confine_self`: no
  file writes, no programs or processes, no network, 1 GiB more address space at most). Where this machine lacks
  a guard (``no_new_privs``, Landlock or seccomp: :func:`r1.sandbox.confine.probe_guards`), building the task is a
  one-line R1Error, unless ``params.unconfined_scorer: true`` says to score anyway (then answers are only
  time-limited and screened as below; a warning says so). A worker that reports a missing guard later is refused
  the same way;
- in it, the scorers' ``eval`` only evaluates plain values (numbers, strings, lists, tuples, sets, dicts and
  arithmetic on them: what the scorers expect, e.g. ``[[1, 0], [0, 1]]``), and ``parse_expr`` refuses text with
  a name starting with ``_``, an attribute access, a string literal, a Python builtin other than a few numeric
  ones (``abs``, ``min``, ``max``, ``round``, ``pow``, ``sum``, ``int``, ``float``) or a sympy name other than its
  math (numbers, symbols and functions: ``sympy.Basic`` values and classes, ``sqrt``, ``root`` ...): ``lambdify``
  runs a string as Python, and ``srepr``/``sstr`` make strings without a literal. An answer the screens refused
  (a name, call, attribute ... that ``eval`` or ``parse_expr`` would have run; a bare word is not code) scores 0,
  even where the scorer caught the error, and is counted as ``refused``;
- the worker may be taken over by an answer all the same, so it is never trusted beyond that answer: the parent
  reads its frames as plain values of bounded size (:class:`r1.workers.ChildProcess` ``plain=True``), drains its
  stderr into a small buffer (it cannot flood the trainer's terminal or log), sends each request with a random
  nonce that the reply must echo (replies queued ahead by a taken-over worker do not match later requests), and
  replaces the worker after any answer that did not score cleanly (refused, scorer error, bad reply, timeout) and
  after every ``scorer_restart_every`` answers (64; a restart costs about 0.8 s on a 2-core CPU, mostly Python and
  reasoning-gym's imports, against 0.05-0.4 ms to score an answer: about 13 ms an answer at 64);
- each answer has ``score_timeout_s`` seconds (5; less when a reward batch's budget,
  :meth:`r1.rewards.base.CompositeReward.budget`, has less left); past it the worker is killed and the next call
  starts a fresh one.

A timeout, a scorer exception or a dead worker scores 0.0, is counted in ``task.scorer_failures`` (by kind) and
logged once per kind; the run goes on. Scores outside [0, 1] (or NaN) are clipped (NaN: 0).

Needs ``pip install 'r1[reasoning_gym]'`` (or ``pip install reasoning-gym``); without it, building the task is a
one-line R1Error saying so. ``import r1`` never imports it.

Deliberately left out: reasoning-gym's composite datasets and curricula (use one ``dataset`` per task, or several
in a ``mixture``), and its system prompts (the r1 templates frame the question).
"""

from __future__ import annotations

import ast
import builtins
import collections
import functools
import importlib
import io
import logging
import math
import random
import secrets
import sys
import threading
import tokenize
import unicodedata
from typing import Any, NamedTuple

from r1.data.sample import Sample
from r1.errors import R1Error
from r1.tasks.base import Task, last_answer_block
from r1.workers import ChildError, ChildProcess, ChildTimeout, serve

logger = logging.getLogger(__name__)

#: Seconds one answer's scoring may take by default (``params.score_timeout_s``).
SCORE_TIMEOUT_S = 5.0
#: Answers one worker scores before a fresh one replaces it, by default (``params.scorer_restart_every``).
RESTART_EVERY = 64
#: Seconds a worker may take to start (Python + reasoning-gym's imports) or to build a generator.
_WORKER_START_TIMEOUT_S = 60.0
#: Address space (MiB) a worker may add once confined.
_WORKER_MEMORY_MB = 1024
#: Bytes a worker's answer may take (a score and a short problem; a guards dict).
_MAX_FRAME_BYTES = 1 << 16
#: Python builtins an expression given to ``parse_expr`` may name (numeric, no way to reach other objects).
_SAFE_BUILTINS = frozenset({"abs", "min", "max", "round", "pow", "sum", "int", "float", "True", "False", "None"})
#: sympy functions an expression may name besides ``sympy.Basic`` values and classes (``_sympy_math``).
_SAFE_SYMPY_FUNCTIONS = frozenset({"sqrt", "cbrt", "root", "real_root"})

INSTALL_HINT = "pip install 'r1[reasoning_gym]' (or pip install reasoning-gym)"
"""How to get the optional dependency."""


def import_reasoning_gym():
    """The ``reasoning_gym`` module, or a one-line R1Error saying how to install it."""
    try:
        import reasoning_gym
    except ImportError:
        raise R1Error(f"task reasoning_gym needs the reasoning-gym package: {INSTALL_HINT}") from None
    return reasoning_gym


class ReasoningGymTask(Task):
    """Problems of one reasoning-gym generator, graded by its scorer.

    Args:
        dataset: the generator's name (``reasoning_gym.factory.DATASETS``, e.g. ``leg_counting``, ``basic_arithmetic``).
        size: number of train problems.
        test_size: number of test problems (drawn under another seed; their questions are removed from train).
        seed: seed of the train problems; the test seed is derived from it, so the splits are a pure function of the
            parameters.
        score_timeout_s: seconds one answer's scoring may take (see the module docstring).
        scorer_restart_every: answers one worker scores before it is replaced by a fresh one (see the module
            docstring).
        unconfined_scorer: score where the worker cannot be confined (no ``no_new_privs``, Landlock or seccomp);
            False (the default): building the task is an R1Error there.
        **kwargs: the generator's own config fields (e.g. ``min_animals``); an unknown one is an R1Error.
    """

    name = "reasoning_gym"
    version = "1"

    def __init__(self, dataset: str = "", size: int = 1000, test_size: int = 100, seed: int = 0,
                 score_timeout_s: float = SCORE_TIMEOUT_S, scorer_restart_every: int = RESTART_EVERY,
                 unconfined_scorer: bool = False, **kwargs: Any):
        rg = import_reasoning_gym()
        if not isinstance(dataset, str) or dataset not in rg.factory.DATASETS:
            known = ", ".join(sorted(rg.factory.DATASETS))
            raise R1Error(f"task reasoning_gym: params.dataset must name a generator, got {dataset!r}; valid: {known}")
        for key, value in (("size", size), ("test_size", test_size), ("seed", seed)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (1 if key == "size" else 0):
                raise R1Error(f"task reasoning_gym: {key} must be an integer >= {int(key == 'size')}, got {value!r}")
        if isinstance(score_timeout_s, bool) or not isinstance(score_timeout_s, (int, float)) or not (
                0 < score_timeout_s <= 600):
            raise R1Error(f"task reasoning_gym: score_timeout_s must be a number of seconds in (0, 600], "
                          f"got {score_timeout_s!r}")
        if isinstance(scorer_restart_every, bool) or not isinstance(scorer_restart_every, int) or (
                scorer_restart_every < 1):
            raise R1Error(f"task reasoning_gym: scorer_restart_every must be an integer >= 1, "
                          f"got {scorer_restart_every!r}")
        if not isinstance(unconfined_scorer, bool):
            raise R1Error(f"task reasoning_gym: unconfined_scorer must be true or false, got {unconfined_scorer!r}")
        check_confinement(unconfined_scorer)
        self.dataset, self.size, self.test_size, self.seed, self.kwargs = dataset, size, test_size, seed, kwargs
        self.score_timeout_s = float(score_timeout_s)
        self.scorer_restart_every, self.unconfined_scorer = scorer_restart_every, unconfined_scorer
        self.scorer_failures: collections.Counter[str] = collections.Counter()
        test_seed = random.Random(f"reasoning_gym/{dataset}/{seed}/test").getrandbits(31)
        self._datasets = {
            "train": self._create(rg, size, seed),
            "test": self._create(rg, max(test_size, 1), test_seed),
        }
        # how the worker process builds the same generators (it never sees this process's objects)
        self._specs = {split: ScorerSpec(f"{rg.__name__}:create_dataset", (dataset,),
                                         {"size": n, "seed": sd, **kwargs})
                       for split, n, sd in (("train", size, seed), ("test", max(test_size, 1), test_seed))}
        self._splits: dict[str, list[Sample]] | None = None

    def _create(self, rg, size: int, seed: int):
        try:
            return rg.create_dataset(self.dataset, size=size, seed=seed, **self.kwargs)
        except (TypeError, ValueError, AssertionError) as e:  # an unknown or out-of-range generator parameter
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise R1Error(f"task reasoning_gym: bad parameters for generator {self.dataset!r}: {msg}") from None

    # ---- the Task contract -------------------------------------------------------------------------------------

    def load(self, split: str) -> list[Sample]:
        """Samples of ``"train"`` or ``"test"`` (entries of the generator, in order; train without test questions)."""
        if split not in ("train", "test"):
            raise R1Error(f"task reasoning_gym: unknown split {split!r}; valid: test, train")
        if self._splits is None:
            test = [self._sample("test", i, e) for i, e in enumerate(self._entries("test", self.test_size))]
            held_out = {s.problem for s in test}
            train = [self._sample("train", i, e) for i, e in enumerate(self._entries("train", self.size))
                     if e["question"] not in held_out]
            self._splits = {"train": train, "test": test}
        return list(self._splits[split])

    def grade(self, completion: str, sample: Sample) -> float:
        """The generator's ``score_answer`` of the last ``<answer>`` block's text (0.0 without one)."""
        return self.grade_answer(self.extract_answer(completion, sample), sample)

    def extract_answer(self, completion: str, sample: Sample) -> str | None:
        return last_answer_block(completion)

    def grade_answer(self, answer: str | None, sample: Sample) -> float:
        if answer is None:
            return 0.0
        score, problem = score_isolated(self._specs[sample.meta["split"]], answer, sample.meta["entry"],
                                        self.score_timeout_s, restart_every=self.scorer_restart_every,
                                        confined=not self.unconfined_scorer)
        if problem:
            kind = problem.split()[0]
            self.scorer_failures[kind] += 1
            if self.scorer_failures[kind] == 1:
                logger.warning("task reasoning_gym (%s): the scorer failed on an answer (%s); it scores 0 "
                               "(counted in task.scorer_failures; said once per kind)", self.dataset, problem)
        return score

    def same_answer(self, a: str, b: str, sample: Sample) -> bool:
        return a.strip() == b.strip()

    # ---- helpers -----------------------------------------------------------------------------------------------

    def _entries(self, split: str, n: int) -> list[dict]:
        ds = self._datasets[split]
        return [ds[i] for i in range(n)]

    def _sample(self, split: str, i: int, entry: dict) -> Sample:
        return Sample(id=f"{self.dataset}/{split}/{i}", problem=entry["question"], answer=str(entry["answer"]),
                      meta={"split": split, "entry": entry})


# ---- scoring in a worker process ---------------------------------------------------------------------------------


class ScorerSpec(NamedTuple):
    """How a worker builds a generator: ``factory`` (``"module:callable"``) called with ``args`` and ``kwargs``;
    the result's ``score_answer(answer, entry)`` scores."""

    factory: str
    args: tuple
    kwargs: dict


_workers = threading.local()
_warned_guards: list[bool] = []
#: In the worker: what the screens refused while the current answer was scored.
_refusals: list[str] = []


class Refused(ValueError):
    """Text a screen (:func:`plain_eval`, :func:`check_expression_text`) refused as code."""


class _BadReply(ChildError):
    """A worker's reply that is not the answer to the request sent (the worker was taken over)."""


def check_confinement(unconfined_ok: bool) -> None:
    """A one-line R1Error unless this machine can confine a scorer's worker (:func:`r1.sandbox.confine.probe_guards`)
    or ``unconfined_ok`` (``params.unconfined_scorer``; then a warning, once)."""
    from r1.sandbox import confine

    missing = sorted(k for k, on in confine.probe_guards().items() if not on)
    if missing and not unconfined_ok:
        raise R1Error(f"task reasoning_gym: the scorer's worker cannot be confined here (no {', '.join(missing)}): "
                      f"an answer could write files or start programs while it is scored; set "
                      f"params.unconfined_scorer: true to score anyway")
    if missing and not _warned_guards:
        _warned_guards.append(True)
        logger.warning("task reasoning_gym: the scorer's worker runs without %s (params.unconfined_scorer); answers "
                       "are still time-limited and their eval/parse_expr screened", ", ".join(missing))


def score_isolated(spec: ScorerSpec, answer: str, entry: dict, timeout_s: float = SCORE_TIMEOUT_S, *,
                   restart_every: int = RESTART_EVERY, confined: bool = True) -> tuple[float, str]:
    """``(score, problem)``: the generator's ``score_answer(answer, entry)`` computed in a confined worker process
    within ``timeout_s`` seconds (see the module docstring), clipped to [0, 1], and ``""``; or ``(0.0, problem)``
    where ``problem`` says what went wrong (``"timeout ..."``, ``"error <type>"``, ``"refused ..."``,
    ``"died ..."``, ``"budget"``). The worker is replaced after such an answer and after every ``restart_every``
    answers. ``confined``: a worker that reports a missing guard is an R1Error (False: it scores anyway)."""
    from r1.rewards.base import time_left  # a reward batch's budget

    left = time_left()
    if left is not None:
        if left <= 0:
            return 0.0, "budget spent"
        timeout_s = min(timeout_s, left)
    key = repr(spec)
    try:
        worker = getattr(_workers, "worker", None)
        if worker is None:
            worker = _workers.worker = _start_worker()
        missing = sorted(k for k, on in worker.guards.items() if not on)
        if missing and confined:
            _drop_worker()
            raise R1Error(f"task reasoning_gym: the scorer's worker could not confine itself (no "
                          f"{', '.join(missing)}); set params.unconfined_scorer: true to score anyway")
        if key not in worker.loaded:
            loaded = _ask(worker, ("load", key, spec), _WORKER_START_TIMEOUT_S)
            if loaded:
                _drop_worker()
                return 0.0, _said(loaded)
            worker.loaded.add(key)
        reply = _ask(worker, ("score", key, answer, entry), timeout_s)
        worker.answers += 1
    except R1Error:
        raise
    except ChildTimeout:
        _drop_worker()
        return 0.0, f"timeout (over {timeout_s:g} s; worker restarted)"
    except _BadReply as e:
        _drop_worker()
        return 0.0, f"error reply ({e}; worker restarted)"
    except ChildError as e:
        _drop_worker()
        return 0.0, f"died ({e})"
    except Exception as e:  # the worker could not start, or the request does not pickle
        _drop_worker()
        return 0.0, f"error {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    if not (isinstance(reply, tuple) and len(reply) == 2 and isinstance(reply[0], float)
            and isinstance(reply[1], str)):  # not what _serve answers: the worker was taken over
        _drop_worker()
        return 0.0, "error reply (not a score and a string; worker restarted)"
    score, problem = reply
    if problem or math.isnan(score):
        _drop_worker()  # whatever the answer did, the next one gets a fresh worker
        return 0.0, _said(problem) if problem else "error score nan"
    if worker.answers >= restart_every:
        _drop_worker()
    return min(max(score, 0.0), 1.0), ""


def _ask(worker: ChildProcess, request: tuple, timeout_s: float) -> Any:
    """Send ``request`` with a fresh random nonce and return the worker's answer to it; :class:`_BadReply` (the
    worker killed) unless the reply is ``(nonce, answer)`` with this nonce."""
    nonce = secrets.randbits(64)
    worker.send((nonce, *request))
    reply = worker.receive(timeout_s=timeout_s)
    if not (isinstance(reply, tuple) and len(reply) == 2 and type(reply[0]) is int and reply[0] == nonce):
        worker.kill()
        raise _BadReply("not the answer to this request")
    return reply[1]


def _said(problem: Any) -> str:
    """A worker's problem text as this process logs and counts it: a string, printable, short, never empty."""
    text = problem if isinstance(problem, str) else f"error {type(problem).__name__}"
    return "".join(c if c.isprintable() else "?" for c in text[:200]).strip() or "error"


def _drop_worker() -> None:
    worker = getattr(_workers, "worker", None)
    _workers.worker = None
    if worker is not None:
        worker.kill()


def _start_worker() -> ChildProcess:
    # the worker may be taken over by an answer: its frames are read as plain values of bounded size
    worker = ChildProcess("r1.tasks.reasoning_gym:_serve", plain=True, max_frame_bytes=_MAX_FRAME_BYTES)
    try:
        guards = _ask(worker, ("guards",), _WORKER_START_TIMEOUT_S)
    except ChildError:
        worker.kill()
        raise
    if not (isinstance(guards, dict) and all(isinstance(k, str) and isinstance(v, bool) for k, v in guards.items())):
        worker.kill()
        raise _BadReply("guards that are not names and booleans")
    worker.guards, worker.loaded, worker.answers = guards, set(), 0
    return worker


def _serve() -> None:
    """Worker loop: import reasoning-gym, restrict its ``eval``/``parse_expr``, confine this process, then answer
    ``(nonce, "guards")``, ``(nonce, "load", key, spec)`` and ``(nonce, "score", key, answer, entry)`` requests with
    ``(nonce, answer)``."""
    from r1.sandbox.confine import confine_self

    try:
        import reasoning_gym  # noqa: F401  (its imports read many files: done before confinement)
    except ImportError:
        pass
    _restrict_evaluation()
    guards = confine_self(_WORKER_MEMORY_MB)
    scorers: dict[str, Any] = {}

    def answer(kind: str, *args: Any) -> Any:
        if kind == "guards":
            return guards
        if kind == "load":
            key, spec = args
            try:
                module, name = spec.factory.split(":")
                scorers[key] = getattr(importlib.import_module(module), name)(*spec.args, **spec.kwargs)
            except Exception as e:
                return f"error building the generator: {type(e).__name__}"
            _restrict_evaluation()  # modules the generator imported on demand
            return ""
        key, text, entry = args
        _refusals.clear()
        try:
            score, problem = float(scorers[key].score_answer(text, entry)), ""
        except Exception as e:
            score, problem = 0.0, f"error {type(e).__name__}"
        if _refusals:  # even where the scorer caught the screen's error
            return 0.0, f"refused ({_refusals[0]})"
        return score, problem

    serve(lambda request: (request[0], answer(*request[1:])))


def _restrict_evaluation() -> None:
    """In the worker: reasoning-gym's modules get :func:`plain_eval` as their ``eval``, and ``parse_expr`` (sympy's,
    which ``sympify`` of a string also uses) refuses code (:func:`check_expression_text`)."""
    try:
        import sympy
        import sympy.parsing.sympy_parser as sympy_parser
    except ImportError:
        sympy_parser = None
    real = getattr(sympy_parser, "parse_expr", None)
    if real is not None and not getattr(real, "_r1_screened", False):
        def parse_expr(s, local_dict=None, *args, **kwargs):
            if isinstance(s, str):
                _noting_refusals(check_expression_text, s, allowed=local_dict or ())
            return real(s, local_dict, *args, **kwargs)

        parse_expr._r1_screened = True
        _sympy_math()  # sympy's namespace read once, before the worker confines itself
        for owner in (sympy_parser, sympy, sympy.parsing):
            setattr(owner, "parse_expr", parse_expr)
    for name, module in list(sys.modules.items()):
        if module is None or name.split(".")[0] != "reasoning_gym":
            continue
        module.eval = _screened_eval  # a module global shadows the builtin
        if real is not None and getattr(module, "parse_expr", None) is real:
            module.parse_expr = sympy_parser.parse_expr


def _noting_refusals(screen, *args, **kwargs):
    """``screen(*args, **kwargs)``, a :class:`Refused` noted in :data:`_refusals` (the worker reports it)."""
    try:
        return screen(*args, **kwargs)
    except Refused as e:
        _refusals.append(str(e))
        raise


def _screened_eval(source, globals=None, locals=None):  # noqa: A002 (the signature of eval)
    return _noting_refusals(plain_eval, source)


_PLAIN_NODES = (ast.Expression, ast.Constant, ast.List, ast.Tuple, ast.Set, ast.Dict, ast.UnaryOp, ast.BinOp,
                ast.unaryop, ast.operator, ast.Load)
#: Nodes that would run code (not merely fail to be a plain value, as a bare word does): :class:`Refused`.
_CODE_NODES = (ast.Call, ast.Attribute, ast.Subscript, ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp,
               ast.GeneratorExp, ast.NamedExpr, ast.JoinedStr, ast.Await, ast.Yield, ast.YieldFrom)


def plain_eval(source, globals=None, locals=None):  # noqa: A002 (the signature of eval)
    """``eval`` of a plain value only: constants, lists, tuples, sets, dicts and arithmetic on them, e.g.
    ``"[[1, 0], [0, 1]]"`` or ``"(0x3 << 2) + 1"``. Names, calls, attributes, subscripts, comprehensions and
    lambdas raise ValueError (:class:`Refused` for those that would run code)."""
    if not isinstance(source, str):
        raise ValueError("plain_eval takes a string")
    tree = ast.parse(source.strip(), mode="eval")
    for node in ast.walk(tree):
        if not isinstance(node, _PLAIN_NODES):
            error = Refused if isinstance(node, _CODE_NODES) else ValueError
            raise error(f"not a plain value: {type(node).__name__}")
    return eval(compile(tree, "<answer>", "eval"), {"__builtins__": {}})


def check_expression_text(text: str, allowed=()) -> None:
    """:class:`Refused` (ValueError where it does not tokenize) unless ``text`` is safe to hand to
    ``sympy.parse_expr``: no name starting with ``_``, no attribute access, no string literal, no Python builtin but
    a few numeric ones, no sympy name but its math (``sympy.Basic`` values and classes, ``sqrt``, ``cbrt``, ``root``,
    ``real_root``); names in ``allowed`` (the caller's ``local_dict``) pass. E.g. ``3*x**2 + sin(x) + C`` passes, ``__import__('os')``, ``x.func``, ``S('...')`` and
    ``lambdify(x, srepr(x))`` do not (``lambdify`` runs a string as Python; ``srepr`` makes one)."""
    previous = None
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type == tokenize.STRING or getattr(tokenize, "FSTRING_START", None) == tok.type:
                raise Refused("string literal in an expression")
            if tok.type == tokenize.NAME:
                name = unicodedata.normalize("NFKC", tok.string)  # as Python reads an identifier
                if name.startswith("_"):
                    raise Refused(f"name {tok.string!r} in an expression")
                if previous is not None and previous.type == tokenize.OP and previous.string == ".":
                    raise Refused(f"attribute access .{tok.string} in an expression")
                if tok.string not in allowed and name not in _SAFE_BUILTINS:
                    if hasattr(builtins, name):
                        raise Refused(f"builtin {tok.string!r} in an expression")
                    if name in _sympy_names() and name not in _sympy_math():
                        raise Refused(f"sympy name {tok.string!r} in an expression (only its math is allowed)")
            if tok.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
                previous = tok
    except tokenize.TokenError as e:
        raise ValueError(f"expression does not tokenize: {e}") from None


@functools.cache
def _sympy_names() -> dict[str, Any]:
    """What ``parse_expr`` sees by default: ``from sympy import *`` (empty without sympy)."""
    names: dict[str, Any] = {}
    try:
        exec("from sympy import *", names)  # noqa: S102 - a fixed import statement
    except ImportError:
        pass
    names.pop("__builtins__", None)
    return names


@functools.cache
def _sympy_math() -> frozenset[str]:
    """The sympy names an expression may use: numbers, constants, symbols and function classes (``sympy.Basic``
    values and subclasses) and :data:`_SAFE_SYMPY_FUNCTIONS`; not its printers, parsers, code generators (``srepr``,
    ``sympify``, ``lambdify``) or solvers."""
    from sympy import Basic

    return frozenset(n for n, v in _sympy_names().items()
                     if isinstance(v, Basic) or (isinstance(v, type) and issubclass(v, Basic))) | _SAFE_SYMPY_FUNCTIONS


TASKS_TABLE = {"reasoning_gym": ReasoningGymTask}

__all__ = ["INSTALL_HINT", "RESTART_EVERY", "ReasoningGymTask", "Refused", "SCORE_TIMEOUT_S", "ScorerSpec",
           "TASKS_TABLE", "check_confinement", "check_expression_text", "import_reasoning_gym", "plain_eval",
           "score_isolated"]
