"""Answer extraction that follows the prompt format, and grading of adversarial answer formats (r1.rewards.math_grader).

Run: python -m pytest tests/rewards/test_extraction.py -q

Each row is ``(completion, gold, expected extracted answer, expected score)``: the extraction column pins *what*
is read (tags, boxes, the phrase, the text after ``</think>``, conflicts), the score column pins the verdict of the
one grader that the RL reward and evaluation share.
"""

import pytest

from r1.rewards.math_grader import (
    equivalent_math_answers,
    extract_answer,
    final_region,
    grade_math,
    grade_math_answer,
)

T = " <think>work</think> "  # an R1-Zero completion starts after "Assistant:", hence the leading space

CASES = [
    # --- R1-Zero <answer> tags
    (T + "<answer>\\frac{1}{2}</answer>", "\\frac12", "\\frac{1}{2}", 1.0),
    (T + "<answer>0.5</answer>", "\\frac{1}{2}", "0.5", 1.0),  # fraction vs decimal
    (T + "<answer>\\dfrac{3}{4}</answer>", "\\frac34", "\\dfrac{3}{4}", 1.0),  # \dfrac
    (T + "<answer>0.75</answer>", "\\frac{3}{4}", "0.75", 1.0),
    (T + "<answer>0.33</answer>", "\\frac{1}{3}", "0.33", 0.0),  # a rounded decimal is not the fraction
    (T + "<answer>1</answer> <answer>2</answer>", "2", "2", 1.0),  # a later block replaces an earlier one
    (T + "<answer>\\boxed{7}</answer>", "7", "\\boxed{7}", 1.0),  # one box in the block: read by math-verify
    (T + "<answer>\\boxed{3} \\boxed{4}</answer>", "4", "3, 4", 0.0),  # several boxes in one block: a set
    (T + "<answer>3 or 4</answer>", "4", "3, 4", 0.0),  # hedge (math-verify alone accepts "3 or 4" for 4)
    (T + "<answer>x=2 \\text{ or } x=3</answer>", "2, 3", "x=2, x=3", 1.0),  # both roots: the set is right
    (T + "<answer>x=2 \\text{ or } x=3</answer>", "3", "x=2, x=3", 0.0),
    (T + "<answer>3 and 4</answer>", "4", "3, 4", 0.0),  # a list is a set (math-verify alone reads 4 in prose)
    (T + "<answer>3 and 4</answer>", "3, 4", "3, 4", 1.0),
    (T + "<answer>3 \\lor 4</answer>", "4", "3, 4", 0.0),  # math-verify alone reads 4
    (T + "<answer>3 \\to 4</answer>", "4", "3 \\to 4", 0.0),
    (T + "<answer>5 = 4</answer>", "4", "5 = 4", 0.0),  # a false equation
    (T + "<answer>x = 4</answer>", "4", "x = 4", 1.0),
    (T + "<answer>   </answer>", "0", None, 0.0),  # empty answer
    ("<think>maybe <answer>5</answer></think> done", "5", None, 0.0),  # answer only inside <think>
    ("<think>so the answer is <answer>5</answer>", "5", None, 0.0),  # reasoning never closed (truncated)
    # --- boxes
    ("so \\boxed{\\frac{1}{2}}.", "0.5", "\\frac{1}{2}", 1.0),
    ("\\boxed{1}. Wait, that is wrong: \\boxed{2}", "2", "2", 1.0),  # a revision: the last box
    ("$\\boxed{3}$ or $\\boxed{4}$", "4", "3, 4", 0.0),  # two boxes stated together: conflicting
    ("$x=\\boxed{2}$ and $x=\\boxed{3}$", "2,3", "2, 3", 1.0),  # ... unless the gold is that set
    ("$\\boxed{15\\frac{39}{40}},$ or $\\boxed{\\frac{639}{40}}$", "\\frac{639}{40}",
     "15\\frac{39}{40}, \\frac{639}{40}", 1.0),  # equal values count once (a MATH-500 solution)
    ("\\boxed{2} so again \\boxed{2}", "2", "2", 1.0),
    ("\\boxed{5} then \\boxed{}", "5", "5", 1.0),  # an empty box is skipped
    ("\\boxed{}", "0", None, 0.0),
    ("\\boxed{3} and a truncated \\boxed{\\frac{1}{", "3", "3", 1.0),  # unbalanced last box skipped
    ("\\boxed{\\left\\{1, 2\\right\\}}", "\\{1,2\\}", "\\left\\{1, 2\\right\\}", 1.0),  # escaped braces
    ("\\fbox{12}", "12", "12", 1.0),
    ("<think>\\boxed{5}</think> The answer is \\boxed{6}.", "5", "6", 0.0),  # a box in the reasoning does not count
    ("<think>try \\boxed{5}", "5", None, 0.0),  # only inside an unclosed <think>
    ("\\boxed{50\\%}", "50", "50\\%", 1.0),  # percentages
    ("\\boxed{50\\%}", "0.5", "50\\%", 1.0),
    ("\\boxed{12\\text{ cm}}", "12", "12\\text{ cm}", 1.0),  # units
    ("The area is $\\boxed{\\frac{9}{2}\\text{ cm}^2}$.", "\\frac{9}{2}", "\\frac{9}{2}\\text{ cm}^2", 1.0),
    ("So $x = \\boxed{1\\frac{1}{2}\\text{ hours}}$.", "\\frac{3}{2}", "1\\frac{1}{2}\\text{ hours}", 1.0),
    ("\\boxed{\\sqrt{2} \\approx 1.414}", "\\sqrt{2}", "\\sqrt{2} \\approx 1.414", 1.0),  # not a second answer
    ("\\boxed{\\sqrt{2} \\approx 1.7}", "\\sqrt{2}", "\\sqrt{2} \\approx 1.7", 0.0),  # a wrong approximation
    ("\\boxed{90^\\circ}", "90", "90^\\circ", 1.0),  # degrees
    ("\\boxed{\\$18.00}", "18", "\\$18.00", 1.0),  # money
    ("\\boxed{1{,}000}", "1000", "1{,}000", 1.0),  # thousands separator
    ("\\boxed{(-\\infty, 2]}", "(-\\infty,2]", "(-\\infty, 2]", 1.0),  # intervals
    ("\\boxed{(-\\infty, 2)}", "(-\\infty,2]", "(-\\infty, 2)", 0.0),  # open vs closed end
    ("\\boxed{[2,5) \\cup (5, 7]}", "[2,5)\\cup(5,7]", "[2,5) \\cup (5, 7]", 1.0),
    ("\\boxed{\\begin{pmatrix} 1 \\\\ -2 \\end{pmatrix}}", "\\begin{pmatrix}1\\\\-2\\end{pmatrix}",
     "\\begin{pmatrix} 1 \\\\ -2 \\end{pmatrix}", 1.0),  # matrices
    ("\\boxed{\\begin{pmatrix} -2 \\\\ 1 \\end{pmatrix}}", "\\begin{pmatrix}1\\\\-2\\end{pmatrix}",
     "\\begin{pmatrix} -2 \\\\ 1 \\end{pmatrix}", 0.0),
    ("\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}", "(3,\\frac{\\pi}{2})", "\\left( 3, \\frac{\\pi}{2} \\right)", 1.0),
    ("\\boxed{3 \\pm 2\\sqrt{2}}", "2", "3 \\pm 2\\sqrt{2}", 0.0),  # adversarial: the last number is not the answer
    ("\\boxed{4.5e33}", "4.5 \\times 10^{33}", "4.5e33", 1.0),  # e-notation (Minerva golds)
    ("\\boxed{4.5 \\times 10^{33}}", "4.5e33", "4.5 \\times 10^{33}", 1.0),
    ("\\boxed{-7}", "7", "-7", 0.0),  # sign
    ("\\boxed{3 \\lor 4}", "4", "3, 4", 0.0),  # hedges inside one box
    ("\\boxed{3 \\vee 4}", "3", "3, 4", 0.0),
    ("\\boxed{5 = 4}", "4", "5 = 4", 0.0),
    ("\\boxed{3 \\text{ and } 4}", "4", "3, 4", 0.0),
    ("\\boxed{3 \\implies 4}", "4", "3 \\implies 4", 0.0),
    ("\\boxed{2 + 2 = 4}", "4", "2 + 2 = 4", 1.0),
    # --- R1 format: the phrase and the text after </think>
    ("<think>long</think>\nThe answer is 42.", "42", "42", 1.0),
    ("<think>long</think>\nSo the final answer is $\\frac{3}{2}$. Done.", "1.5", "$\\frac{3}{2}$", 1.0),
    ("<think>long</think>\n**Final Answer:** 3.5.", "\\frac72", "3.5", 1.0),  # a decimal point is not a period
    ("<think>long</think>\nThe final answer is:\n\n$x = 5$", "5", "$x = 5$", 1.0),
    ("<think>the answer is 4</think>", "4", None, 0.0),  # answer only inside <think>
    ("<think>the answer is 4</think> the answer is 5", "4", "5", 0.0),
    ("<think>long</think>\n\n42", "42", "42", 1.0),  # a bare line after </think>
    ("<think>long</think> I am done", "0", None, 0.0),  # prose after </think> is not an answer
    ("<think>long</think> \\boxed{8}. The answer is 9.", "8", "8", 1.0),  # a box beats the phrase
    ("<think>long</think> 42<|im_end|>", "42", "42", 1.0),  # an end-of-sequence text is dropped
    # --- plain completions without think tags: only a closing "the answer is X" sentence with a math X
    ("the answer is 4", "4", "4", 1.0),
    ("Adding them gives 4. So the final answer is $4$.", "4", "4", 1.0),
    ("So the answer is **4**.", "4", "4", 1.0),
    ("Thus, the final answer is: $\\frac{1}{2}$.\n", "0.5", "\\frac{1}{2}", 1.0),
    ("The answer is \\(x = 5\\).<|im_end|>", "5", "x = 5", 1.0),
    ("The answer is 3. Wait, no. The answer is 4.", "4", "4", 1.0),  # a revision: the last sentence
    ("The answer is 4. Or maybe 5.", "4", None, 0.0),  # a hedge after it
    ("The answer is $4$ or $5$.", "4", None, 0.0),
    ("The answer is 4 or 5.", "4", None, 0.0),
    ("The answer is not 4.", "4", None, 0.0),
    ("The answer is 4, I think.", "4", None, 0.0),
    ("I think the answer is 4 because 2+2=4.", "4", None, 0.0),
    ("The answer is $3 \\lor 4$.", "4", "3, 4", 0.0),
    ("the answer is four", "4", None, 0.0),
    ("<think>so the answer is 4", "4", None, 0.0),  # unclosed reasoning
    ("4", "4", None, 0.0),
    ("", "4", None, 0.0),
]


@pytest.mark.parametrize("completion, gold, extracted, score", CASES)
def test_extract_and_grade(completion, gold, extracted, score):
    assert extract_answer(completion) == extracted
    assert grade_math(completion, gold) == score
    assert grade_math_answer(extracted, gold) == score  # evaluation's two halves agree with the RL reward


def test_table_is_large_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize(
    "completion, region",
    [
        ("<think>a</think> b", " b"),
        ("<think>a</think> b</think> c", " c"),
        ("<think>a", ""),
        ("plain", "plain"),
        ("<think>a</think> b <think> c", " b "),
        ("<think>a</think> b</s>", " b"),
    ],
)
def test_final_region(completion, region):
    assert final_region(completion) == region


@pytest.mark.parametrize(
    "a, b, same",
    [
        ("\\frac12", "0.5", True),
        ("\\dfrac{1}{2}", "\\frac{1}{2}", True),
        ("x=5", "5", True),  # either way round
        ("5", "x=5", True),
        ("3, 4", "4, 3", True),
        ("3", "4", False),
        ("\\frac{", "\\frac{", True),  # unparsable but the same text
        ("\\frac{", "1", False),
    ],
)
def test_equivalent_answers(a, b, same):
    assert equivalent_math_answers(a, b) is same
