"""Math answer extraction and equivalence (r1.rewards.math_grader).

Run: pytest tests/rewards/test_math_grader.py -q
"""

import threading
import time

import pytest

from r1.rewards import math_grader
from r1.rewards.math_grader import extract_answer, extract_last_boxed, grade_math, verify_math

# (completion, expected extracted answer)
EXTRACT_CASES = [
    (" <think>1+1</think> <answer>2</answer>", "2"),
    ("<answer> 5 </answer>", "5"),
    ("<think>a</think><answer>1</answer> then <answer>2</answer>", "2"),  # several blocks: the last one
    ("<answer>\\boxed{7}</answer>", "\\boxed{7}"),  # kept as is; math-verify reads the box
    ("<think>x</think><answer>\n\\frac{1}{2}\n</answer>", "\\frac{1}{2}"),
    ("so the answer is \\boxed{\\frac{1}{2}}.", "\\frac{1}{2}"),
    ("\\boxed{1} then \\boxed{2}", "2"),  # last box
    ("\\boxed{\\left\\{1, 2\\right\\}}", "\\left\\{1, 2\\right\\}"),  # escaped braces do not count
    ("\\boxed{3} and a truncated \\boxed{\\frac{1}{", "3"),  # unbalanced last box: the earlier one
    ("\\boxed {4}", "4"),
    ("<think>maybe \\boxed{5}</think> so \\boxed{6}", "6"),
    ("<answer>9</answer> \\boxed{8}", "9"),  # an answer block beats a box
    # nothing to extract
    ("<think>\\boxed{5}</think> I am done", None),  # a box inside the closed reasoning does not count
    ("<think>2+2</think><answer></answer>", None),  # empty answer
    ("<answer>   </answer>", None),
    ("the answer is 4", "4"),  # a plain completion's closing sentence (see test_extraction.py)
    ("the answer is 4. Or 5.", None),  # ... only when nothing follows it
    ("<answer>4", None),  # unclosed block
    ("\\boxed{}", None),
    ("", None),
]


@pytest.mark.parametrize("completion, expected", EXTRACT_CASES)
def test_extract_answer(completion, expected):
    assert extract_answer(completion) == expected


def test_extractors_are_an_ordered_list():
    assert extract_answer("<answer>1</answer> \\boxed{2}", extractors=[extract_last_boxed]) == "2"
    assert math_grader.EXTRACTORS[0] is math_grader.extract_answer_tag


# (gold, predicted, expected)
VERIFY_CASES = [
    ("\\frac{1}{2}", "0.5", True),  # fraction vs decimal
    ("0.5", "\\frac{1}{2}", True),
    ("\\frac{1}{2}", "\\dfrac{1}{2}", True),
    ("\\frac12", "\\frac{1}{2}", True),
    ("\\frac{1}{2}", "1/2", True),
    ("\\frac{1}{2}", "\\frac 12", True),  # bare reading would give 12
    ("12", "\\frac 12", False),
    ("-3", "-3", True),  # negative numbers
    ("3", "-3", False),
    ("-\\frac{3}{4}", "-0.75", True),
    ("(-\\infty, 2]", "(-\\infty,2]", True),  # intervals
    ("(-\\infty, 2]", "(-\\infty, 2)", False),
    ("[1,3)", "[1, 3)", True),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\frac{\\pi}{2})", True),  # tuple
    ("\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt3}{2}", True),
    ("x^2+1", "1+x^2", True),
    ("1000", "1,000", True),  # thousands separator
    ("2125", "\\$2,125", True),  # escaped dollar = a price, not math mode
    ("18", "18 dollars", True),  # prose is read by math-verify's own text extraction
    ("5", "The answer is $5$.", True),
    ("5", "x = 5", True),  # math-verify counts an assignment as its value, on purpose
    ("\\pi", "3.14159", False),
    ("2", "3 \\pm 2 \\sqrt{2}", False),  # adversarial: the last number of a wrong expression
    ("3", "y = 2x + 3", False),
    ("10", "1", False),
    ("5", "", False),
    ("", "5", False),
    ("5", "\\frac{", False),  # unparsable prediction
]


@pytest.mark.parametrize("gold, predicted, expected", VERIFY_CASES)
def test_verify_math(gold, predicted, expected):
    assert verify_math(gold, predicted) is expected


# Hedges against a single-valued gold (math-verify alone accepts every one of these: it keeps one of the values),
# and the genuine answers next to them that must still be accepted. (gold, predicted, expected)
HEDGE_CASES = [
    ("4", "3 \\lor 4", False),
    ("4", "3 \\vee 4", False),
    ("4", "4 \\land 3", False),
    ("4", "3 and 4", False),
    ("4", "3 \\text{ and } 4", False),
    ("4", "5 = 4", False),  # a false equation is no answer (math-verify reads an equation as its right side)
    ("4", "3 \\equiv 4", False),
    ("4", "3 \\to 4", False),
    ("4", "3 \\implies 4", False),
    ("4", "3 \\Rightarrow 4", False),
    ("4", "3 \\sim 4", False),
    ("3", "3 \\approx 4", False),
    ("4", "3 \\mid 4", False),
    ("4", "3 | 4", False),
    ("4", "3 \\in 4", False),
    ("4", "3 \\cup 4", False),
    ("3", "3 ? 4", False),
    ("3", "3 ~ 4", False),
    ("3", "3 → 4", False),
    ("4", "3 \\\\ 4", False),  # a line break
    ("3", "3 \\& 4", False),
    ("7", "3 4", False),  # juxtaposed: math-verify reads 7
    ("7", "3 \\quad 4", False),
    ("4", "3 hence 4", False),
    ("4", "3 \\text{, so } 4", False),
    ("3", "\\text{not } 3 \\text{ but } 4", False),
    ("4", "x = 3 = 4", False),
    # genuine single answers
    ("4", "x = 4", True),
    ("4", "2+2 = 4", True),  # a true equation of the value
    ("4", "f(2) = 4", True),
    ("4", "\\frac{8}{2}", True),
    ("4", "|-4|", True),
    ("4", "4 = 4", True),
    ("x=4", "x=4", True),
    ("x=5", "5", True),
    ("5x - 7y + 11z + 4 = 0", "5x - 7y + 11z + 4 = 0", True),
    ("10080", "10,\\! 080", True),
    ("5", "5\\text{ cm}^2", True),
    ("3", "x \\in \\{3\\}", True),  # one value
    # sets, tuples, intervals stated as such
    ("3, 4", "3 and 4", True),
    ("3, 4", "3 \\lor 4", True),
    ("\\{3, 4\\}", "\\{4, 3\\}", True),
    ("(3, 4)", "(3, 4)", True),
    ("[2, 5)", "[2,5)", True),
    ("(-\\infty, 2) \\cup (3, \\infty)", "(-\\infty,2)\\cup(3,\\infty)", True),
]


@pytest.mark.parametrize("gold, predicted, expected", HEDGE_CASES)
def test_hedges_are_not_credited(gold, predicted, expected):
    from r1.rewards.math_grader import extract_answer

    completion = f"<think>…</think> <answer>{predicted}</answer>"
    assert grade_math(completion, gold) == float(expected), extract_answer(completion)


# One value written with a unit, a mixed number, an exponent or an approximation after it: none of these is a hedge,
# and refusing them would teach a policy to drop units. Each digit of \frac{1}{2} is not a value of its own, a unit
# word in \text{} is not a connective, and "\approx 1.414" after the exact answer is not a second answer. (gold,
# predicted)
ONE_VALUE_CASES = [
    ("\\frac{9}{2}", "\\frac{9}{2} \\text{ cm}"),
    ("2\\sqrt{3}", "2\\sqrt{3} \\text{ units}"),
    ("\\frac{1}{4}", "\\frac{1}{4} \\text{ inch}"),
    ("\\frac{5}{2}", "\\frac{5}{2}\\text{ dollars}"),
    ("\\frac{3}{2}", "1\\frac{1}{2} \\text{ hours}"),
    ("\\sqrt{2}", "\\sqrt{2} \\approx 1.414"),
    ("\\frac{1}{2}", "\\frac{1}{2}\\text{ of them}"),
    ("\\frac{9}{2}", "\\frac{9}{2}\\text{ cm}^2"),
    ("\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt{3}}{2}\\text{ m}"),
    ("\\frac{7}{2}", "3\\frac{1}{2}"),
    ("\\frac{7}{3}", "\\dfrac{7}{3} \\text{ km/h}"),
    ("\\frac{7}{3}", "\\tfrac{7}{3}\\mbox{ km}"),
    ("2", "\\sqrt[3]{8} \\text{ meters}"),
    ("10", "\\binom{5}{2} \\text{ ways}"),
    ("4", "4 \\text{ cm}^2"),
    ("4.50", "\\$4.50"),
    ("4", "4\\%"),
    ("45", "45^\\circ"),
    ("\\frac{1}{2}", "x = \\frac{1}{2}"),
    ("2\\pi", "2\\pi \\text{ radians}"),
    ("\\frac{1}{2}", "\\frac{1}{2} \\approx 0.5"),
    ("\\frac{\\sqrt{2}}{2}", "\\frac{\\sqrt{2}}{2} \\approx 0.707"),
    ("\\pi", "\\pi \\approx 3.1415"),  # truncated, not rounded
    ("1000", "10^{3} \\text{ m}"),
    ("1500", "1.5 \\times 10^{3}"),
    ("1500", "1.5 \\times 10^{3} \\textbf{ meters}"),
    ("\\frac{1}{3}", "\\frac{1}{3} \\mathrm{\\ of\\ the\\ area}"),
    ("42", "6 \\cdot 7 = 42"),
    ("4", "2+2 = 4"),
    ("42", "6 \\cdot 7 = 42 \\text{ cm}^2"),
    ("\\frac{2}{3}", "\\frac{2}{3} \\approx 0.67"),  # rounded
    ("\\frac{2}{3}", "\\frac{2}{3} \\approx 0.666"),  # truncated
    ("-\\sqrt{2}", "-\\sqrt{2} \\approx -1.41"),
    ("\\sqrt{2}", "x = \\sqrt{2} \\approx 1.414 \\text{ m}"),
    ("\\sqrt{2}", "\\sqrt{2}\\text{ m} \\approx 1.41\\text{ m}"),
    ("\\text{east}", "\\text{east} \\text{ cm}"),  # math-verify alone reads east*cm
    ("\\text{(B)}", "\\text{(B)}\\text{ cm}"),
]


@pytest.mark.parametrize("gold, predicted", ONE_VALUE_CASES)
def test_one_value_with_a_unit_or_an_approximation_is_credited(gold, predicted):
    assert verify_math(gold, predicted) is True
    assert grade_math(f"<think>…</think> <answer>{predicted}</answer>", gold) == 1.0


# Still hedges: a connective word inside \text{}, an approximation that is not one, a word next to two values (read
# as prose, math-verify takes one number out of it). (gold, predicted)
STILL_HEDGES = [
    ("3", "3 \\approx 4"),
    ("\\sqrt{2}", "\\sqrt{2} \\approx 2"),  # not an approximation of the exact value
    ("\\sqrt{2}", "\\sqrt{2} \\approx 1.5"),
    ("\\sqrt{2}", "\\sqrt{2} \\approx x"),
    ("\\frac{1}{2}", "\\frac{1}{2} \\approx 0.5 \\approx 0.6"),
    ("\\frac{1}{2}", "\\frac{1}{3} \\text{ or } \\frac{1}{2}"),
    ("\\frac{1}{2}", "\\frac{1}{3} \\text{ maybe } \\frac{1}{2}"),
    ("\\frac{1}{2}", "\\frac{1}{3} \\text{ cm, hence } \\frac{1}{2} \\text{ cm}"),
    ("\\frac{1}{2}", "\\frac{1}{3} \\to \\frac{1}{2}"),
    ("\\frac{1}{2}", "\\text{either } \\frac{1}{3} \\text{ or } \\frac{1}{2}"),
    ("\\frac{1}{2}", "\\frac{1}{3} \\text{ perhaps } \\frac{1}{2}"),
    ("\\frac{1}{2}", "\\frac{1}{3} \\text{ vs } \\frac{1}{2}"),
    ("4", "3 \\text{ cm } 4"),  # two values with only a unit between them (math-verify reads 7)
    ("4", "3 \\text{ perhaps } 4"),
    ("4", "3 \\mathrm{\\ then\\ } 4"),
    ("4", "3 \\textbf{ not } 4"),
    ("1500", "1.5 \\times 10^{3} \\text{ or } 1600"),
    ("4", "3 \\cdot 4 \\text{ cm}"),  # math-verify alone reads prose and takes 4
    ("3", "3\\sqrt{16} cm"),  # ... takes 3
    ("4", "3 \\text{ cm}, 4"),
    ("4", "3 \\text{ cm} = 4"),
    ("4", "x = 3 \\text{ hmm } y = 4"),
    ("7", "\\text{Area} = 6 \\cdot 7"),
    ("3", "3 \\text{ maybe } 4 \\text{ cm}"),
    ("4", "3 \\text{ cm} \\text{ or } 4 \\text{ cm}"),
    ("2", "2k \\text{ cm}"),  # a wrong value with a unit: read as prose, math-verify alone takes 2
    ("8", "8 \\pi \\text{ cm}"),
]


@pytest.mark.parametrize("gold, predicted", STILL_HEDGES)
def test_hedges_with_compound_values_are_not_credited(gold, predicted):
    assert grade_math(f"<think>…</think> <answer>{predicted}</answer>", gold) == 0.0


# A slow answer that no cheap check recognises: sympy expands it for seconds, so it costs math-verify its timeout
# (the timeout tests below use it). 9^(9^(9^9)), which parses but cannot be compared, is recognised before parsing.
SLOW = "(x+y+z)^{60}"

# Each of these costs math-verify its whole timeout (measured: 3 s of 3 s); each is recognised before parsing.
COSTLY = [
    "9^{9^{9^{9}}}",
    "2^{10^{10}}",
    "e^{e^{e^{e^{e}}}}",
    "99999999999^{99999999}",
    "1000000!",
    "(10!)!",
    "(2^{64})!",
    "\\binom{10^{9}}{10^{5}}",
    "\\Gamma(10^{9})",
    "(x+1)^{1000}",
    "(" * 500 + "4" + ")" * 500,
    "{" * 28 + "4" + "}" * 28,
    "\\frac{" * 100 + "1" + "}{2}" * 100,
    "1" * 600,
]


@pytest.mark.parametrize("predicted", COSTLY, ids=lambda p: p[:24])
def test_pathological_answers_fail_fast(predicted):
    t0 = time.monotonic()
    assert verify_math("4", predicted, timeout_s=5.0) is False
    assert time.monotonic() - t0 < 2.5  # not the 5 s timeout (room for a loaded machine)
    assert math_grader.equivalent_math_answers(predicted, "4") is False


def test_a_gold_with_the_same_shape_is_still_compared():
    assert verify_math("2^{2^{3}}", "256") is True  # the gold is a tower, so a prediction may be one
    assert verify_math("2^{2^{3}}", "2^{2^{3}}") is True
    assert verify_math("256", "2^{2^{3}}") is False  # the prediction alone is: rejected before parsing


def test_verify_math_keeps_to_a_reward_batch_budget(monkeypatch):
    """Inside ``CompositeReward.budget`` the math grader's timeout shrinks to what is left of the batch's budget."""
    from r1.rewards import base

    monkeypatch.setattr(base._budget, "deadline", time.monotonic() + 1.0, raising=False)
    t0 = time.monotonic()
    assert verify_math("1", SLOW, timeout_s=20.0) is False
    assert time.monotonic() - t0 < 10.0  # 1 s left (+ whole-second alarm rounding, a loaded machine), not 20 s
    monkeypatch.setattr(base._budget, "deadline", time.monotonic() - 1.0)
    t0 = time.monotonic()
    assert verify_math("1/2", "0.5") is False and time.monotonic() - t0 < 1.0  # budget spent: not graded


# (completion, gold, expected score)
GRADE_CASES = [
    (" <think>half</think> <answer>\\dfrac{1}{2}</answer>", "\\frac{1}{2}", 1.0),
    (" <think>half</think> <answer>0.5</answer>", "\\frac12", 1.0),
    ("<think>...</think> The answer is \\boxed{-7}.", "-7", 1.0),
    ("<think>...</think> The answer is \\boxed{7}.", "-7", 0.0),
    ("<answer>1</answer><answer>2</answer>", "2", 1.0),  # last block counts
    ("<answer>1</answer><answer>2</answer>", "1", 0.0),
    ("<think>x</think><answer></answer>", "0", 0.0),  # empty answer
    ("<think>the answer is 4</think>", "4", 0.0),  # no answer
    ("4", "4", 0.0),
    ("<think>\\boxed{4}</think>", "4", 0.0),
]


@pytest.mark.parametrize("completion, gold, expected", GRADE_CASES)
def test_grade_math(completion, gold, expected):
    assert grade_math(completion, gold) == expected


def test_gold_parse_is_cached():
    math_grader._parse_gold.cache_clear()
    for _ in range(3):
        assert verify_math("\\frac{7}{9}", "7/9")
    info = math_grader._parse_gold.cache_info()
    assert (info.misses, info.hits) == (1, 2)


def test_unparsable_gold_scores_zero():
    assert verify_math("\\frac{", "1") is False



def test_timeout_main_thread():
    t0 = time.monotonic()
    assert verify_math("1", SLOW, timeout_s=1.0) is False
    assert time.monotonic() - t0 < 6.0  # deadline 1 s + at most ~1 s of whole-second alarm rounding


def _in_thread(fn):
    out = {}
    th = threading.Thread(target=lambda: out.setdefault("r", fn()))
    th.start()
    th.join(60)
    assert not th.is_alive()
    return out["r"]


def test_off_main_thread_uses_a_helper_process():
    def work():
        t0 = time.monotonic()
        results = [verify_math("\\frac12", "0.5"), verify_math("3", "4")]  # first call starts the helper
        t1 = time.monotonic()
        results.append(verify_math("1", SLOW, timeout_s=1.0))
        return results, t1 - t0, time.monotonic() - t1

    results, startup_s, pathological_s = _in_thread(work)
    assert results == [True, False, False]
    assert startup_s < 30.0
    assert pathological_s < 6.0


def test_off_main_thread_kills_a_slow_helper(monkeypatch):
    monkeypatch.setattr(math_grader, "_HELPER_GRACE_S", -0.9)  # wait only 0.1 s for a 1 s job

    def work():
        slow = verify_math("1", SLOW, timeout_s=1.0)  # starts a helper, gives up on it, kills it
        after_kill = getattr(math_grader._helpers, "helper", "unset")  # thread-local slot emptied
        monkeypatch.setattr(math_grader, "_HELPER_GRACE_S", 2.0)
        fresh = verify_math("2", "2", timeout_s=1.0)  # the next call starts a fresh helper
        return slow, after_kill, fresh

    assert _in_thread(work) == (False, None, True)
