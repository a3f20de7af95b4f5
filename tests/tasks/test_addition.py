"""The ``addition`` task: splits, grader, corpus generator, mode classifier.

Run: ``python -m pytest tests/tasks/test_addition.py -q``
"""

from __future__ import annotations

import random

import pytest

from r1.data.sample import Sample
from r1.errors import R1Error
from r1.tasks import build_task
from r1.tasks.addition import (
    MODES,
    REFLECTION_MARKERS,
    AdditionTask,
    completion_mode,
    extract_answer,
    has_reflection,
)


class ScriptedRng:
    """A stand-in for ``random.Random`` whose choices are fixed: no error draws fire (``random() -> 0.99``) unless
    asked, ``randrange`` returns ``at``, ``choice`` picks the last option (``+1`` for an off-by-one)."""

    def __init__(self, at: int = 0, fire: bool = False):
        self.at, self.fire = at, fire

    def random(self) -> float:
        return 0.0 if self.fire else 0.99

    def randrange(self, n: int) -> int:
        assert 0 <= self.at < n
        return self.at

    def choice(self, seq):
        return seq[-1]


S = Sample("hand", "472+368", "840")


def task(**kw) -> AdditionTask:
    kw.setdefault("num_train", 200)
    kw.setdefault("num_test", 50)
    return AdditionTask(**kw)


# ---- generator: hand cases -----------------------------------------------------------------------------------------


def test_cot_hand_case():
    # columns, least significant first: 2+8+0=10 (carry 1), 7+6+1=14 (carry 1), 4+3+1=08 -> 840
    got = task(digits=3).make_completion(S, "cot", ScriptedRng())
    assert got == "<think>2+8+0=10 7+6+1=14 4+3+1=08</think><answer>840</answer>"


def test_cot_slip_hand_case():
    # column 1 written 15 instead of 14: digit 5, carry still 1, so the answer is 840 + 10 = 850
    got = task(digits=3).make_completion(S, "cot", ScriptedRng(at=1, fire=True))
    assert got == "<think>2+8+0=10 7+6+1=15 4+3+1=08</think><answer>850</answer>"


def test_cot_slip_edges():
    s = Sample("h", "999+999", "1998")
    t = task(digits=3)
    # column 0: 18 written as 19 (the scripted +1); the carry stays 1, so the answer is 1998 + 1 = 1999
    got = t.make_completion(s, "cot", ScriptedRng(at=0, fire=True))
    assert got == "<think>9+9+0=19 9+9+1=19 9+9+1=19</think><answer>1999</answer>"
    # column 1: 19 is the top of the range, so the slip goes down to 18: answer 1998 - 10 = 1988
    got = t.make_completion(s, "cot", ScriptedRng(at=1, fire=True))
    assert got == "<think>9+9+0=18 9+9+1=18 9+9+1=19</think><answer>1988</answer>"
    # 45+54: column 0 is 09, written 10, which creates a carry the rest of the trace follows: 99 + 1 = 100
    got = task(digits=2).make_completion(Sample("h", "45+54", "99"), "cot", ScriptedRng(at=0, fire=True))
    assert got == "<think>5+4+0=10 4+5+1=10</think><answer>100</answer>"


def test_reflect_hand_case():
    # column 1 first written 15 (wrong), then "wait", then redone as 14; the answer is right
    got = task(digits=3).make_completion(S, "reflect", ScriptedRng(at=1))
    assert got == "<think>2+8+0=10 7+6+1=15 wait 7+6+1=14 4+3+1=08</think><answer>840</answer>"


def test_direct_hand_cases():
    t = task(digits=3, direct_error_rate=0.5)
    assert t.make_completion(S, "direct", ScriptedRng()) == "<think></think><answer>840</answer>"
    # the wrong answer replaces digit 2 with the last allowed choice ("9")
    assert t.make_completion(S, "direct", ScriptedRng(at=2, fire=True)) == "<think></think><answer>849</answer>"


def test_unequal_operand_lengths_pad_with_zero():
    s = Sample("h", "5+123", "128")
    got = task(digits=3, min_digits=1).make_completion(s, "cot", ScriptedRng())
    assert got == "<think>5+3+0=08 0+2+0=02 0+1+0=01</think><answer>128</answer>"


def test_unknown_mode():
    with pytest.raises(R1Error, match="valid: direct, cot, reflect"):
        task().make_completion(S, "essay", random.Random(0))


# ---- generator: properties -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kw", [dict(digits=3), dict(digits=4), dict(digits=5, min_digits=1)])
def test_clean_cot_and_reflect_always_grade_right(kw):
    t = task(cot_error_rate=0.0, **kw)
    rng = random.Random(0)
    for s in t.load("train"):
        for mode in ("cot", "reflect"):
            c = t.make_completion(s, mode, rng)
            assert t.grade(c, s) == 1.0, (s, c)
            assert completion_mode(c) == mode
            assert has_reflection(c) == (mode == "reflect")


def test_msb_hand_cases():
    # 472+368, most-significant column first: the 7 was written before 7+6=13 carried into it
    t = task(digits=3)
    assert t.make_completion(S, "msb_reflect", ScriptedRng()) == (
        "<think>4+3=07 7 7+6=13 wait 83 2+8=10 wait 840</think><answer>840</answer>")
    # carry-blind: every carry out of a later column is lost, so the answer is the no-carry sum
    assert t.make_completion(S, "msb", ScriptedRng()) == "<think>4+3=07 7 7+6=13 73 2+8=10 730</think><answer>730</answer>"
    # no carry into an earlier column: no wait, and the carry-blind trace is right too
    s = Sample("n", "123+456", "579")
    assert t.make_completion(s, "msb_reflect", ScriptedRng()) == "<think>1+4=05 5 2+5=07 57 3+6=09 579</think><answer>579</answer>"
    # a carry out of the leading column is no correction; a cascade corrects the whole running value
    s = Sample("c", "951+49", "1000")
    assert t.make_completion(s, "msb_reflect", ScriptedRng()) == (
        "<think>9+0=09 9 5+4=09 99 1+9=10 wait 1000</think><answer>1000</answer>")


@pytest.mark.parametrize("kw", [dict(digits=3), dict(digits=4), dict(digits=5, min_digits=1)])
def test_msb_reflect_is_always_right_and_msb_only_without_carries(kw):
    t = task(**kw)
    rng = random.Random(0)
    for s in t.load("train")[:300]:
        right = t.make_completion(s, "msb_reflect", rng)
        blind = t.make_completion(s, "msb", rng)
        assert t.grade(right, s) == 1.0, (s, right)
        assert extract_answer(blind) == _no_carry(s)
        # a wait exactly when a carry crosses into an earlier column, i.e. when the carry-blind trace is wrong
        assert has_reflection(right) == _carries_inside(s) == (t.grade(blind, s) == 0.0), (s, right, blind)
        assert not has_reflection(blind)


def _no_carry(s):
    """The sum with every carry between columns dropped (the leading column's own sum kept whole)."""
    a, b = (int(x) for x in s.problem.split("+"))
    n = max(len(str(a)), len(str(b)))
    cols = [int(x) + int(y) for x, y in zip(str(a).zfill(n), str(b).zfill(n))]
    return str(cols[0]) + "".join(str(c % 10) for c in cols[1:])


def _carries_inside(s):
    """A column other than the leading one sums to 10 or more (its carry changes an earlier digit)."""
    a, b = (int(x) for x in s.problem.split("+"))
    n = max(len(str(a)), len(str(b)))
    return any(int(x) + int(y) >= 10 for x, y in list(zip(str(a).zfill(n), str(b).zfill(n)))[1:])


def test_cot_with_certain_error_is_always_wrong():
    t = task(cot_error_rate=1.0)
    rng = random.Random(0)
    for s in t.load("train"):
        c = t.make_completion(s, "cot", rng)
        assert t.grade(c, s) == 0.0 and completion_mode(c) == "cot", (s, c)


@pytest.mark.parametrize("rate", [0.0, 0.3, 1.0])
def test_direct_error_rate_roughly_as_configured(rate):
    t = task(direct_error_rate=rate)
    rng = random.Random(1)
    samples = t.load("train") * 10  # 2000 draws: binomial sd <= 0.011
    wrong = sum(1 - t.grade(t.make_completion(s, "direct", rng), s) for s in samples) / len(samples)
    assert abs(wrong - rate) < 0.04
    for s in samples[:200]:  # wrong answers never get a leading zero and keep the gold's length
        ans = extract_answer(t.make_completion(s, "direct", rng))
        assert len(ans) == len(s.answer) and (ans == "0" or not ans.startswith("0"))


def test_pretrain_corpus_mix_records_and_no_test_leak():
    t = task(digits=2, num_test=500)  # 2-digit problems are few, so a test collision would show
    mix = {"direct": 0.6, "cot": 0.35, "reflect": 0.05}
    corpus = t.pretrain_corpus(4000, seed=3, mix=mix)
    assert len(corpus) == 4000 and all(set(r) == {"prompt", "completion"} for r in corpus)
    test_prompts = {s.problem for s in t.load("test")}
    assert not test_prompts & {r["prompt"] for r in corpus}
    counts = {m: 0 for m in MODES}
    for r in corpus:
        counts[completion_mode(r["completion"])] += 1
    for m, share in mix.items():
        assert abs(counts[m] / len(corpus) - share) < 0.03
    assert corpus == t.pretrain_corpus(4000, seed=3, mix=mix)  # deterministic
    assert corpus != t.pretrain_corpus(4000, seed=4, mix=mix)


def test_pretrain_corpus_template():
    rec = task().pretrain_corpus(1, template="r1_zero")[0]
    assert rec["prompt"].startswith("A conversation between User and Assistant.") and rec["prompt"].endswith(
        "Assistant:"
    )
    assert task().pretrain_corpus(1)[0]["prompt"].count("+") == 1  # "plain": the bare problem


@pytest.mark.parametrize("mix", [{"essay": 1.0}, {"cot": -1.0, "direct": 2.0}, {"cot": 0.0}, {}])
def test_pretrain_corpus_bad_mix(mix):
    with pytest.raises(R1Error, match="mix"):
        task().pretrain_corpus(1, mix=mix)


# ---- grader --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("<think>2+8+0=10</think><answer>840</answer>", 1.0),
        ("<think></think><answer>841</answer>", 0.0),
        ("840", 0.0),  # no tags
        ("<think>840</think>", 0.0),  # no answer block
        ("<answer>840", 0.0),  # unclosed
        ("840</answer>", 0.0),  # unopened
        ("</answer><answer>840", 0.0),  # wrong order
        ("<answer>1</answer><answer>840</answer>", 1.0),  # the last block counts
        ("<answer>840</answer><answer>1</answer>", 0.0),
        ("<answer>8<answer>840</answer>", 1.0),  # innermost of the last complete block
        ("<answer> 840 \n</answer>", 1.0),  # whitespace is stripped
        ("<answer>0840</answer>", 0.0),  # exact digits: no leading zeros
        ("<answer>840.</answer>", 0.0),
        ("<answer>8 40</answer>", 0.0),
        ("<answer></answer>", 0.0),
        ("<answer>840</answer> and more", 1.0),  # trailing text is the format reward's business
    ],
)
def test_grade_table(completion, expected):
    assert task().grade(completion, S) == expected


def test_extract_answer():
    assert extract_answer("<answer> 12 </answer>") == "12"
    assert extract_answer("no tags") is None


# ---- splits --------------------------------------------------------------------------------------------------------


def test_splits_disjoint_distinct_deterministic():
    t = AdditionTask(digits=3, num_train=3000, num_test=300, seed=7)
    train, test = t.load("train"), t.load("test")
    assert len(train) == 3000 and len(test) == 300
    train_p, test_p = [s.problem for s in train], [s.problem for s in test]
    assert len(set(train_p)) == len(train_p) and len(set(test_p)) == len(test_p)
    assert not set(train_p) & set(test_p)
    assert len({s.id for s in train + test}) == 3300
    again = AdditionTask(digits=3, num_train=3000, num_test=300, seed=7)
    assert again.load("train") == train and again.load("test") == test
    assert t.load("train") == train  # repeated calls
    # the test split does not depend on num_train; another seed gives other problems
    assert AdditionTask(digits=3, num_train=10, num_test=300, seed=7).load("test") == test
    assert AdditionTask(digits=3, num_train=10, num_test=300, seed=8).load("test") != test


def test_samples_are_well_formed():
    t = AdditionTask(digits=4, min_digits=2, num_train=500, num_test=10)
    for s in t.load("train"):
        a, b = s.problem.split("+")
        assert 2 <= len(a) <= 4 and 2 <= len(b) <= 4 and not a.startswith("0") and not b.startswith("0")
        assert s.answer == str(int(a) + int(b))
        assert t.question(s) == s.problem


def test_unknown_split():
    with pytest.raises(R1Error, match="valid: test, train"):
        task().load("validation")


@pytest.mark.parametrize(
    "kw", [dict(digits=2, min_digits=3), dict(digits=1, num_train=100, num_test=0), dict(direct_error_rate=1.5)]
)
def test_bad_parameters(kw):
    with pytest.raises(R1Error):
        AdditionTask(**kw)


def test_registered():
    t = build_task("addition", digits=3, num_train=5, num_test=5)
    assert isinstance(t, AdditionTask) and t.name == "addition" and t.version and t.default_template == "plain"


# ---- reflection / mode classifier ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "completion, reflect, mode",
    [
        ("<think></think><answer>840</answer>", False, "direct"),
        ("<think> </think> <answer>840</answer>\n", False, "direct"),
        ("<think>2+8+0=10 7+6+1=14 4+3+1=08</think><answer>840</answer>", False, "cot"),
        ("<think>2+8+0=10 7+6+1=15 wait 7+6+1=14 4+3+1=08</think><answer>840</answer>", True, "reflect"),
        ("<think>Wait, let me check.</think><answer>840</answer>", True, "reflect"),
        ("<think>await 3</think><answer>840</answer>", False, "cot"),  # whole words only
        ("<think>1</think><answer>840</answer> wait", True, "other"),  # trailing text breaks the format
        ("<answer>840</answer>", False, "other"),
        ("<think>2+8</think>", False, "other"),
        ("840", False, "other"),
        ("", False, "other"),
    ],
)
def test_reflection_and_mode(completion, reflect, mode):
    assert has_reflection(completion) == reflect
    assert completion_mode(completion) == mode


def test_markers_are_detected():
    for m in REFLECTION_MARKERS:
        assert has_reflection(f"x {m.upper()} y")


def test_no_carry_direct_errors_are_systematic():
    import random

    from r1.tasks.addition import AdditionTask, _no_carry_sum

    assert _no_carry_sum(472, 368) == "730" and _no_carry_sum(999, 1) == "990" and _no_carry_sum(12, 34) == "46"
    t = AdditionTask(digits=3, num_train=10, num_test=5, direct_error_rate=1.0, direct_error="no_carry")
    s = Sample("x", "472+368", "840")
    assert t.make_completion(s, "direct", random.Random(0)) == "<think></think><answer>730</answer>"
    # without any carry the shortcut is right, so a wrong answer falls back to a replaced digit
    s2 = Sample("y", "12+34", "46")
    assert t.make_completion(s2, "direct", random.Random(0)) != "<think></think><answer>46</answer>"
    with pytest.raises(R1Error, match="direct_error"):
        AdditionTask(direct_error="typo")
