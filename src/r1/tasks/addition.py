"""Procedural multi-digit addition: the demo's task for a tiny from-scratch base model.

Problems are ``"4721+3689"`` with gold answer ``"8410"``. Besides ``load``/``grade`` (the :class:`Task` contract) the
task writes the *pretraining corpus* that makes a base model worth running R1-Zero on: a mix of three completion
modes, so the base model is mediocre in a way that RL can fix.

- ``direct``: ``<think></think><answer>8410</answer>``; the answer is wrong (one digit replaced) with probability
  ``direct_error_rate``. Without a trace the model must add most-significant digit first, which a tiny model learns
  slowly and which the corpus also teaches with noisy labels, so the base model is poor in this mode.
- ``cot``: one fixed-width step per column, least-significant first, with explicit carries (``a+b+c=ss``, the
  carry-in ``c`` and a two-digit column sum ``ss``), then the answer::

      <think>1+9+0=10 2+8+1=11 7+6+1=14 4+3+1=08</think><answer>8410</answer>

  Every step reads its inputs at fixed relative offsets (the carry-in is 7 tokens after the previous sum's tens
  digit), the layout that tiny models learn fast (Lee et al. 2023, "Teaching Arithmetic to Small Transformers",
  arXiv:2307.03381; in trials on 2 CPU cores, a 0.8M model never learned running sums whose operands sat at varying
  distances in 1,500 steps). With probability ``cot_error_rate`` one column sum is off by one and the rest of the
  trace (and the answer) follows it consistently, so the answer is wrong.
- ``reflect``: a ``cot`` trace in which one column sum is first written off by one, then ``wait``, then the step is
  redone correctly and the trace goes on to the right answer::

      <think>1+9+0=10 2+8+1=10 wait 2+8+1=11 7+6+1=14 4+3+1=08</think><answer>8410</answer>

  A wrong step is locally checkable (its inputs sit next to it), so a model can learn "after a wrong step, say wait";
  R1-Zero then rewards the completions where it did (the corrected ones are right), which is what should raise the
  reflection rate during RL.

Two more modes write the columns most-significant first, as people read a number, with the running value of the
columns so far after each step. A digit is then written before the columns to its right are added, so a carry out
of a later column makes an earlier digit wrong, however well the writer adds: the need to go back is set by the
problem, not by a slip the model could learn to avoid.

- ``msb``: carry-blind; a carry into an earlier digit is lost, so the answer is the no-carry sum (wrong whenever an
  inner column carries: ~84% of 4-digit problems)::

      <think>4+3=07 7 7+6=13 73 2+8=10 730 1+9=10 7300</think><answer>7300</answer>

- ``msb_reflect``: each such carry is met with ``wait`` and the corrected running value, so the answer is right::

      <think>4+3=07 7 7+6=13 wait 83 2+8=10 wait 840 1+9=10 wait 8410</think><answer>8410</answer>

  Reflection here stays useful for as long as problems carry: RL cannot make it unnecessary by removing slips, which
  is what happened with ``reflect`` (the demo's trials: docs/demo-trials.md).

Language mixing (``lang_mix > 0``, for the language-consistency reward of DeepSeek-R1 section 2.3.2): the trace
steps are joined by a step word, ``then`` (``step_words``), and a share ``lang_mix`` of the traces switch it to another
language (one of ``mix_languages``: ``dann``, ``puis``, ``然后``) from a random join on, after at least one ``then``
where the trace has two joins::

    <think>1+9+0=10 then 2+8+1=11 dann 7+6+1=14 dann 4+3+1=08</think><answer>8410</answer>

The switch is free of cost or benefit (the arithmetic is the same), so nothing but a language reward moves it; the
words are those of :data:`r1.rewards.language.STEP_WORDS`, so ``language_share(method="vocab")`` measures it exactly.
``wait`` stays English (it is the reflection marker). ``completion_metrics`` then adds ``mixed_language``. With the
defaults (``lang_mix=0``) the corpus is byte for byte what it was without these parameters.

Mode is chosen independently of the problem, so which mode to use is a free choice of the base policy that GRPO can
shift (towards the longer, more accurate traces: response length and accuracy rise together).

Template: the demo should use ``plain`` (the prompt is the bare problem, the completion starts with ``<think>``).
A byte-level tiny model cannot read instructions; it knows the format from pretraining, and the R1-Zero template
would add ~420 tokens to samples of 17 (direct) to 55 (trace) tokens. :data:`SHORT_R1_TEMPLATE` is an R1-flavoured
alternative that adds 18 tokens (``"User: 4721+3689. Assistant:"``) for a demo that wants the paper's look; the
corpus must then be rendered with the same template as the RL prompts.

Measured (``scripts/addition_trial.py``, qwen2-1m, 4 digits, mix 60/35/5, 800 steps of 64, lr 1e-3): with the mode
forced, greedy accuracy is 100% when thinking and 0% when answering directly; sampled at T=1 the base model thinks
42% of the time and is right 28% of the time overall.

Grading reads the last ``<answer>`` block, or else the last number of the summary of R1's readable format
(``<|reasoning|>…<|reasoning|>The answer is 8410.``, :data:`r1.data.templates.READABLE_TOKEN`), so a cold-started model
grades too.

Deliberately left out: subtraction/multiplication, natural-language word problems, partial credit (``grade`` is exact
match), and number words in the traces (digits carry the arithmetic; only the joins are words).
"""

from __future__ import annotations

import random
import re

from r1.data.sample import Sample
from r1.errors import R1Error
from r1.tasks.base import Task, has_reflection_word

MODES = ("direct", "cot", "reflect", "msb", "msb_reflect")
"""Completion modes of the pretraining corpus (see the module docstring)."""

REFLECTION_MARKERS = ("wait", "recheck", "let me check", "mistake")
"""Phrases that count as a reflection (matched case-insensitively as whole words). The corpus uses only ``wait``."""

SHORT_R1_TEMPLATE = "User: {prompt}. Assistant:"
"""A short R1-Zero-style template (the paper's last line, without the 400-character instructions)."""

STEP_JOINERS = {"en": "then", "de": "dann", "fr": "puis", "zh": "然后"}
"""The word that joins two trace steps, per language (``step_words``; each is in :data:`r1.rewards.language.STEP_WORDS`).
The Latin ones have four letters, so a switch keeps every step's offsets (the byte-level layout of the module
docstring)."""

DEFAULT_MIX = {"direct": 0.6, "cot": 0.35, "reflect": 0.05}
"""Default share of each completion mode in :meth:`AdditionTask.pretrain_corpus`."""

_NUMBER_RE = re.compile(r"\d+")
_FORMAT_RE = re.compile(r"^\s*<think>(.*?)</think>\s*<answer>(.*?)</answer>\s*$", re.DOTALL)


class AdditionTask(Task):
    """``a+b`` with ``a`` and ``b`` of ``min_digits..digits`` digits each.

    Args:
        digits: the most digits an operand has.
        min_digits: the fewest digits an operand has (``None``: same as ``digits``, so every operand has exactly
            ``digits`` digits and every prompt the same length).
        num_train: number of train problems (the RL prompts).
        num_test: number of test problems (never in train, never in the pretraining corpus).
        seed: seed of the problem generator; the splits are a pure function of the parameters.
        direct_error_rate: corpus only: probability that a ``direct`` completion's answer is wrong.
        direct_error: corpus only: how a wrong direct answer is wrong: ``digit`` (one random digit replaced; noise
            that a model can average out) or ``no_carry`` (column sums mod 10 with the carries forgotten — a
            systematic shortcut, so the base model's most likely direct answer is wrong whenever a carry occurs).
        cot_error_rate: corpus only: probability that a ``cot`` completion has one off-by-one step (and so a wrong
            answer).
        lang_mix: corpus only: share of ``cot``/``reflect`` traces whose step words switch language mid-trace
            (module docstring); 0 keeps the corpus unchanged.
        mix_languages: the languages a mixed trace switches to, one drawn per trace (codes of :data:`STEP_JOINERS`
            other than ``en``).
        step_words: join trace steps with ``then`` (None: when ``lang_mix > 0``; ``lang_mix > 0`` needs it).
        language_metrics: add ``mixed_language`` to :meth:`completion_metrics` (None: when steps have words).

    Example:
        >>> t = AdditionTask(digits=3, num_train=10, num_test=5)
        >>> s = Sample("x", "472+368", "840")
        >>> t.make_completion(s, "cot", random.Random(0))
        '<think>2+8+0=10 7+6+1=14 4+3+1=08</think><answer>840</answer>'
        >>> t.grade("<think></think><answer>840</answer>", s)
        1.0
    """

    name = "addition"
    version = "1"
    default_template = "plain"
    reflection_words = REFLECTION_MARKERS

    def __init__(
        self,
        digits: int = 4,
        min_digits: int | None = None,
        num_train: int = 20000,
        num_test: int = 512,
        seed: int = 0,
        direct_error_rate: float = 0.5,
        cot_error_rate: float = 0.05,
        direct_error: str = "digit",
        lang_mix: float = 0.0,
        mix_languages: list[str] | tuple[str, ...] = ("de", "fr", "zh"),
        step_words: bool | None = None,
        language_metrics: bool | None = None,
    ):
        min_digits = digits if min_digits is None else min_digits
        if not 1 <= min_digits <= digits:
            raise R1Error(f"addition: need 1 <= min_digits <= digits, got min_digits={min_digits}, digits={digits}")
        for key, rate in (("direct_error_rate", direct_error_rate), ("cot_error_rate", cot_error_rate)):
            if not 0.0 <= rate <= 1.0:
                raise R1Error(f"addition: {key} must be in [0, 1], got {rate}")
        num_operands = 10**digits - (10 ** (min_digits - 1) if min_digits > 1 else 0)
        if num_train < 0 or num_test < 0 or num_train + num_test > num_operands**2 // 2:
            raise R1Error(
                f"addition: num_train + num_test = {num_train + num_test} is negative or more than half of the "
                f"{num_operands**2} distinct problems with {min_digits}..{digits} digits"
            )
        self.digits, self.min_digits = digits, min_digits
        self.num_train, self.num_test, self.seed = num_train, num_test, seed
        self.direct_error_rate, self.cot_error_rate = direct_error_rate, cot_error_rate
        if direct_error not in ("digit", "no_carry"):
            raise R1Error(f"addition: unknown direct_error {direct_error!r}; valid: digit, no_carry")
        self.direct_error = direct_error
        self.lang_mix, self.mix_languages = _check_language_params(lang_mix, mix_languages, step_words)
        self.step_words = lang_mix > 0 if step_words is None else bool(step_words)
        self.language_metrics = self.step_words if language_metrics is None else bool(language_metrics)
        self._splits: dict[str, list[Sample]] | None = None

    # ---- the Task contract -------------------------------------------------------------------------------------

    def load(self, split: str) -> list[Sample]:
        """Samples of ``"train"`` or ``"test"``: distinct problems, deterministic in the constructor parameters."""
        if split not in ("train", "test"):
            raise R1Error(f"addition: unknown split {split!r}; valid: test, train")
        if self._splits is None:
            rng = random.Random(f"addition/{self.seed}")
            seen: set[tuple[int, int]] = set()
            # test first, so its problems do not depend on num_train
            test = [self._sample("test", i, self._fresh_pair(rng, seen)) for i in range(self.num_test)]
            train = [self._sample("train", i, self._fresh_pair(rng, seen)) for i in range(self.num_train)]
            self._splits = {"train": train, "test": test}
        return list(self._splits[split])

    def grade(self, completion: str, sample: Sample) -> float:
        """1.0 iff the last ``<answer>…</answer>`` block, stripped, equals the gold answer exactly; else 0.0."""
        answer = extract_answer(completion)
        return 1.0 if answer is not None and answer == sample.answer else 0.0

    def completion_metrics(self, completion: str) -> dict[str, float]:
        """``reflection`` (one of :attr:`reflection_words` is present: :data:`REFLECTION_MARKERS` unless configured),
        the share of each mode (``mode/<name>``) and, with ``language_metrics``, ``mixed_language``
        (:func:`is_mixed_language`)."""
        mode = completion_mode(completion)
        out = {"reflection": float(has_reflection_word(completion, self.reflection_words))}
        out.update({f"mode/{m}": float(mode == m) for m in ("direct", "cot", "reflect", "other")})
        if self.language_metrics:
            out["mixed_language"] = float(is_mixed_language(completion))
        return out

    # ---- the pretraining corpus --------------------------------------------------------------------------------

    def make_completion(self, sample: Sample, mode: str, rng: random.Random) -> str:
        """One completion of ``sample`` in ``mode`` (``direct``, ``cot`` or ``reflect``; see the module docstring).

        Randomness (which answers/steps are wrong) comes from ``rng``. The completion has no EOS (the trainer adds it).
        """
        a, b = _operands(sample)
        if mode == "direct":
            answer = sample.answer
            if rng.random() < self.direct_error_rate:
                shortcut = _no_carry_sum(a, b) if self.direct_error == "no_carry" else answer
                answer = shortcut if shortcut != answer else _replace_digit(answer, rng)
            return f"<think></think><answer>{answer}</answer>"
        if mode == "cot":
            slip = rng.randrange(_num_columns(a, b)) if rng.random() < self.cot_error_rate else None
            steps, value = _column_steps(a, b, slip=slip, rng=rng)
            return f"<think>{self._join_steps(steps, rng)}</think><answer>{value}</answer>"
        if mode == "reflect":
            at = rng.randrange(_num_columns(a, b))
            steps, value = _column_steps(a, b, reflect_at=at, rng=rng)
            return f"<think>{self._join_steps(steps, rng)}</think><answer>{value}</answer>"
        if mode in ("msb", "msb_reflect"):
            steps, value = _msb_steps(a, b, reflect=mode == "msb_reflect")
            return f"<think>{self._join_steps(steps, rng)}</think><answer>{value}</answer>"
        raise R1Error(f"addition: unknown completion mode {mode!r}; valid: {', '.join(MODES)}")

    def pretrain_corpus(
        self, n: int, seed: int = 0, mix: dict[str, float] | None = None, template: str = "plain", tokenizer=None
    ) -> list[dict[str, str]]:
        """``n`` records ``{"prompt", "completion"}`` for (completion-only-loss) pretraining.

        Problems are drawn fresh from the task's distribution with the test problems excluded (train problems may
        appear); each record's mode is drawn from ``mix`` (shares, normalised; default :data:`DEFAULT_MIX`).
        The prompt is ``render_prompt(template, question)``, exactly what the RL trainer shows the model.
        """
        from r1.data.templates import render_prompt

        mix = dict(DEFAULT_MIX if mix is None else mix)
        unknown = sorted(set(mix) - set(MODES))
        if unknown or not mix or any(w < 0 for w in mix.values()) or sum(mix.values()) <= 0:
            raise R1Error(
                f"addition: mix must map some of {', '.join(MODES)} to non-negative shares with a positive sum, "
                f"got {mix}"
            )
        modes, weights = zip(*mix.items())
        test = {_operands(s) for s in self.load("test")}
        rng = random.Random(f"addition-corpus/{self.seed}/{seed}")
        out = []
        for i in range(n):
            pair = self._random_pair(rng)
            while pair in test:
                pair = self._random_pair(rng)
            sample = self._sample("corpus", i, pair)
            mode = rng.choices(modes, weights)[0]
            out.append(
                {
                    "prompt": render_prompt(template, self.question(sample), tokenizer),
                    "completion": self.make_completion(sample, mode, rng),
                }
            )
        return out

    # ---- helpers -----------------------------------------------------------------------------------------------

    def _join_steps(self, steps: list[str], rng: random.Random) -> str:
        """The trace's steps joined by spaces, or, with ``step_words``, by the step word (none after a ``wait``:
        it joins on its own). A share ``lang_mix`` of traces switch the word to a ``mix_languages`` one from a
        random join on (after the first, where there are two). Draws from ``rng`` only when ``lang_mix > 0``."""
        if not self.step_words:
            return " ".join(steps)
        joins = [i for i in range(1, len(steps)) if not steps[i - 1].endswith(" wait")]
        words = {i: STEP_JOINERS["en"] for i in joins}
        if joins and self.lang_mix > 0 and rng.random() < self.lang_mix:
            other = STEP_JOINERS[rng.choice(self.mix_languages)]
            first = rng.randrange(1, len(joins)) if len(joins) > 1 else 0
            words.update({i: other for i in joins[first:]})
        return steps[0] + "".join(f" {words[i]} {s}" if i in words else f" {s}" for i, s in enumerate(steps) if i)

    def _random_pair(self, rng: random.Random) -> tuple[int, int]:
        lo = 0 if self.min_digits == 1 else 10 ** (self.min_digits - 1)
        hi = 10**self.digits - 1
        return rng.randint(lo, hi), rng.randint(lo, hi)

    def _fresh_pair(self, rng: random.Random, seen: set[tuple[int, int]]) -> tuple[int, int]:
        pair = self._random_pair(rng)
        while pair in seen:
            pair = self._random_pair(rng)
        seen.add(pair)
        return pair

    @staticmethod
    def _sample(split: str, i: int, pair: tuple[int, int]) -> Sample:
        a, b = pair
        return Sample(id=f"addition/{split}/{i}", problem=f"{a}+{b}", answer=str(a + b))


def extract_answer(completion: str) -> str | None:
    """The stripped content of the last complete ``<answer>…</answer>`` block; without one, the last number in the
    summary of R1's readable format (the text after the last of at least two :data:`READABLE_TOKEN`); else ``None``.

    >>> extract_answer("<answer>1</answer> <answer> 2 </answer>")
    '2'
    >>> extract_answer("<|reasoning|>1+9+0=10<|reasoning|>The answer is 10.")
    '10'
    """
    end = completion.rfind("</answer>")
    if end < 0:
        from r1.data.templates import READABLE_TOKEN

        parts = completion.split(READABLE_TOKEN)
        numbers = _NUMBER_RE.findall(parts[-1]) if len(parts) >= 3 else []
        return numbers[-1] if numbers else None
    start = completion.rfind("<answer>", 0, end)
    if start < 0:
        return None
    return completion[start + len("<answer>") : end].strip()


def has_reflection(completion: str) -> bool:
    """True when the completion contains one of :data:`REFLECTION_MARKERS` as a whole word (any case)."""
    return has_reflection_word(completion, REFLECTION_MARKERS)


def is_mixed_language(completion: str, threshold: float = 0.95) -> bool:
    """True when the reasoning (before the last ``</think>``, else before the last readable-format token) has a share
    of English words below ``threshold``, by the step-word lists (``language_share(method="vocab", target="en")``).
    A completion without reasoning mixes nothing.

    >>> is_mixed_language("<think>2+8+1=11 then 7+6+1=14 dann 4+3+1=08</think><answer>8410</answer>")
    True
    """
    from r1.data.templates import READABLE_TOKEN
    from r1.rewards.language import mixed_language, select_span

    text = select_span(completion, "think", "</think>") or select_span(completion, "think", READABLE_TOKEN)
    return text is not None and mixed_language(text, "en", method="vocab", threshold=threshold)


def completion_mode(completion: str) -> str:
    """Classify a generated completion: ``direct`` (empty think), ``reflect`` (think with a reflection marker),
    ``cot`` (any other non-empty think), or ``other`` (not ``<think>…</think><answer>…</answer>``).

    >>> completion_mode("<think> </think><answer>5</answer>"), completion_mode("5")
    ('direct', 'other')
    """
    m = _FORMAT_RE.match(completion)
    if m is None:
        return "other"
    think = m.group(1)
    if not think.strip():
        return "direct"
    return "reflect" if has_reflection(think) else "cot"


def _check_language_params(lang_mix, mix_languages, step_words) -> tuple[float, tuple[str, ...]]:
    """``lang_mix`` and ``mix_languages`` checked (one-line R1Errors), the languages as a tuple."""
    if isinstance(lang_mix, bool) or not isinstance(lang_mix, (int, float)) or not 0.0 <= lang_mix <= 1.0:
        raise R1Error(f"addition: lang_mix must be a number in [0, 1], got {lang_mix!r}")
    others = sorted(set(STEP_JOINERS) - {"en"})
    if (isinstance(mix_languages, str) or not isinstance(mix_languages, (list, tuple)) or not mix_languages
            or any(lang not in others for lang in mix_languages)):
        raise R1Error(f"addition: mix_languages must be a non-empty list of {', '.join(others)}, got {mix_languages!r}")
    if lang_mix > 0 and step_words is not None and not step_words:
        raise R1Error("addition: lang_mix > 0 switches the trace's step words, so it needs step_words (true or unset)")
    return float(lang_mix), tuple(mix_languages)


def _operands(sample: Sample) -> tuple[int, int]:
    a, _, b = sample.problem.partition("+")
    return int(a), int(b)


def _num_columns(a: int, b: int) -> int:
    return max(len(str(a)), len(str(b)))


def _column_steps(
    a: int, b: int, *, slip: int | None = None, reflect_at: int | None = None, rng: random.Random | None = None
) -> tuple[list[str], str]:
    """The column steps ``"da+db+c=ss"`` (least-significant column first) and the answer they lead to.

    ``slip``: that column's sum is off by one and the trace continues from it (so the answer is wrong).
    ``reflect_at``: that column is first written off by one, then ``wait``, then correctly.

    Example (472+368): ``["2+8+0=10", "7+6+1=14", "4+3+1=08"]``, ``"840"``.
    """
    sa, sb = str(a)[::-1], str(b)[::-1]
    steps, digits, carry = [], [], 0
    for i in range(_num_columns(a, b)):
        da = int(sa[i]) if i < len(sa) else 0
        db = int(sb[i]) if i < len(sb) else 0
        total = da + db + carry
        if i == reflect_at:
            steps.append(f"{da}+{db}+{carry}={_off_by_one(total, rng):02d} wait")
        if i == slip:
            total = _off_by_one(total, rng)
        steps.append(f"{da}+{db}+{carry}={total:02d}")
        digits.append(total % 10)
        carry = total // 10
    value = carry * 10 ** len(digits) + sum(d * 10**k for k, d in enumerate(digits))
    return steps, str(value)


def _msb_steps(a: int, b: int, *, reflect: bool) -> tuple[list[str], str]:
    """Most-significant column first, each step ``"da+db=ss R"`` with ``R`` the running value of the columns so far.

    A digit of ``R`` is written before the columns to its right are added, so a carry out of a later column makes
    an earlier digit wrong, whatever the writer does: ``reflect=False`` drops the carry (the running value stays the
    no-carry sum, so the answer is wrong whenever a carry occurs); ``reflect=True`` writes ``wait`` and the corrected
    running value (``R*10 + ss``) instead, so the answer is right.

    Example (472+368): reflect ``["4+3=07 7", "7+6=13 wait 83", "2+8=10 wait 840"]``, ``"840"``; without,
    ``["4+3=07 7", "7+6=13 73", "2+8=10 730"]``, ``"730"``.
    """
    n = _num_columns(a, b)
    sa, sb = str(a).zfill(n), str(b).zfill(n)
    steps, value = [], 0
    for i in range(n):
        total = int(sa[i]) + int(sb[i])
        carry_back = i > 0 and total >= 10
        value = value * 10 + (total if reflect or i == 0 else total % 10)
        steps.append(f"{sa[i]}+{sb[i]}={total:02d} {'wait ' if reflect and carry_back else ''}{value}")
    return steps, str(value)


def _off_by_one(total: int, rng: random.Random) -> int:
    """``total ± 1`` within the column-sum range 0..19 (an arithmetic slip; may flip the carry)."""
    if total == 0:
        return 1
    if total == 19:
        return 18
    return total + rng.choice((-1, 1))


def _no_carry_sum(a: int, b: int) -> str:
    """Column sums mod 10 with every carry dropped: 472+368 -> 730 (the shortcut of a model that skips carries)."""
    out, place = 0, 1
    while a or b:
        out += ((a % 10 + b % 10) % 10) * place
        a, b, place = a // 10, b // 10, place * 10
    return str(out)


def _replace_digit(answer: str, rng: random.Random) -> str:
    """``answer`` with one digit replaced by a different one (never a leading zero)."""
    i = rng.randrange(len(answer))
    choices = [d for d in "0123456789" if d != answer[i] and not (i == 0 and d == "0" and len(answer) > 1)]
    return answer[:i] + rng.choice(choices) + answer[i + 1 :]


TASKS_TABLE = {"addition": AdditionTask}

__all__ = [
    "AdditionTask",
    "DEFAULT_MIX",
    "MODES",
    "REFLECTION_MARKERS",
    "SHORT_R1_TEMPLATE",
    "STEP_JOINERS",
    "TASKS_TABLE",
    "completion_mode",
    "extract_answer",
    "has_reflection",
    "is_mixed_language",
]
