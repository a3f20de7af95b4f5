"""R1's readable format: the ``r1_readable`` template, :func:`split_readable` and the ``readable_format`` reward.

Run: ``python -m pytest tests/data/test_readable_template.py -q``
"""

from __future__ import annotations

import pytest

from r1.data.sample import Sample
from r1.data.templates import READABLE_TOKEN, TEMPLATES, render_prompt, render_r1_readable, split_readable
from r1.errors import R1Error
from r1.rewards import REWARDS
from r1.rewards.rules import format_reward, readable_format_reward

T = READABLE_TOKEN
SAMPLE = Sample("x", "4721+3689", "8410")


def test_template_instructs_the_format_and_ends_like_r1_zero():
    text = render_prompt("r1_readable", "4721+3689")
    assert "r1_readable" in TEMPLATES
    assert text.endswith("User: 4721+3689. Assistant:")
    assert f"{T} reasoning process here {T} summary here" in text
    assert "<|sep|> reasoning process here <|sep|>" in render_r1_readable("q", token="<|sep|>")


@pytest.mark.parametrize(
    "completion, expected",
    [
        (f"{T}2+2=4{T}It is 4.", ("2+2=4", "It is 4.")),
        (f" \n{T} 2+2=4 {T} It is 4. ", ("2+2=4", "It is 4.")),
        (f"{T}{T}", ("", "")),
        (f"so {T}2+2=4{T}It is 4.", None),  # text before the reasoning
        (f"{T}2+2=4{T}It is 4.{T}", None),  # three tokens
        (f"{T}2+2=4 It is 4.", None),  # one token
        ("<think>2+2=4</think><answer>4</answer>", None),
    ],
)
def test_split_readable(completion, expected):
    assert split_readable(completion) == expected


def test_split_readable_rejects_an_empty_token():
    with pytest.raises(R1Error, match="token"):
        split_readable("x", token="")


@pytest.mark.parametrize(
    "completion, expected",
    [
        (f"{T}1+9+0=10 then 2+8+1=11{T}The answer is 8410.", 1.0),
        (f" {T}r{T}8410<|endoftext|>", 1.0),  # one EOS text stripped, the summary is the bare answer
        (f"{T}r{T}The answer is 8411.", 0.0),  # the summary lacks the gold answer
        (f"{T}r{T}The answer is 84100.", 0.0),  # the gold must stand alone, not inside a longer number
        (f"{T}r{T}The answer is 18410.", 0.0),
        (f"{T}  {T}The answer is 8410.", 0.0),  # empty reasoning
        (f"{T}r{T}  ", 0.0),  # empty summary
        (f"{T}r{T}8410{T}", 0.0),  # three tokens
        (f"{T}r The answer is 8410.", 0.0),
        ("<think>r</think><answer>8410</answer>", 0.0),  # the R1-Zero format is not this one
        ("", 0.0),
    ],
)
def test_readable_format_reward(completion, expected):
    assert readable_format_reward(completion, SAMPLE) == expected


def test_readable_format_params():
    assert readable_format_reward(f"{T}r{T}The answer is 9.", SAMPLE, require_answer=False) == 1.0
    assert readable_format_reward("<|sep|>r<|sep|>8410", SAMPLE, token="<|sep|>") == 1.0
    assert REWARDS.get("readable_format") is readable_format_reward
    with pytest.raises(R1Error, match="readable_format"):
        readable_format_reward("x", SAMPLE, tokn="<|sep|>")
    with pytest.raises(R1Error, match="token"):
        readable_format_reward("x", SAMPLE, token=3)
    with pytest.raises(R1Error, match="require_answer"):
        readable_format_reward("x", SAMPLE, require_answer="no")


def test_format_reward_unchanged():
    assert format_reward(" <think>2+2=4</think> <answer>4</answer>", SAMPLE) == 1.0
    assert format_reward("<think>x</think><answer> </answer>", SAMPLE) == 0.0
    assert format_reward("<think>x</think><answer>4</answer><|im_end|>", SAMPLE) == 1.0
    assert format_reward("<think>x</think><answer>4</answer> ok", SAMPLE) == 0.0
