"""Rule-based rewards of DeepSeek-R1-Zero (arXiv 2501.12948, section 2.2.2): accuracy and format.

- ``accuracy``: the task's own grader (``task.grade``), so the RL reward and evaluation agree by construction.
- ``format``: 1 if the completion is exactly ``<think>…</think> <answer>…</answer>`` (the R1-Zero template's format),
  else 0. Strict on purpose: nothing before or after, one tag of each kind, a non-empty answer.

Deliberately left out: partial credit for format (e.g. counting tags, as some open reproductions do), neural reward
models, and the language-consistency reward (separate modules).
"""

from __future__ import annotations

import re
from typing import Optional

from r1.data.sample import Sample
from r1.errors import R1Error

#: End-of-sequence texts stripped from the end of a completion before the format check (when decoded with special
#: tokens kept): GPT-2/Qwen base, Qwen chat, Llama 2, Llama 3, DeepSeek.
DEFAULT_EOS_TEXTS = ("<|endoftext|>", "<|im_end|>", "</s>", "<|eot_id|>", "<|end_of_text|>", "<｜end▁of▁sentence｜>")

_R1_ZERO_FORMAT = re.compile(r"<think>(.*?)</think>\s*<answer>(.*?)</answer>", re.DOTALL)
_TAGS = ("<think>", "</think>", "<answer>", "</answer>")


def accuracy_reward(completion: str, sample: Sample, *, task, **params) -> Optional[float]:
    """``task.grade(completion, sample)``: the same grader evaluation uses. Takes no parameters.

    Example (math task, gold ``"1/2"``): ``" <think>…</think> <answer>0.5</answer>"`` → 1.0.
    """
    if params:
        raise R1Error(f"reward 'accuracy' takes no parameters, got {', '.join(sorted(params))}")
    try:
        return task.grade(completion, sample)
    except RuntimeError as e:  # a grader's infrastructure failure (e.g. the code sandbox) is not a wrong answer
        if type(e).__name__ == "SandboxError":
            return None  # excluded from the statistics, 0 in the total (see r1.rewards)
        raise


def format_reward(
    completion: str, sample: Sample, *, task=None, eos_texts: tuple[str, ...] | list[str] = DEFAULT_EOS_TEXTS, **params
) -> float:
    """1.0 if ``completion`` is in the strict R1-Zero format, else 0.0.

    After stripping surrounding whitespace and one trailing EOS text (``eos_texts``), the completion must be
    ``<think>T</think>`` + optional whitespace + ``<answer>A</answer>`` with nothing around it, each of the four tags
    exactly once, and ``A`` not blank (``T`` may be empty). A completion usually starts with a space, since the
    R1-Zero prompt ends with ``Assistant:``.

    Examples: ``" <think>2+2=4</think> <answer>4</answer>"`` → 1.0; ``"<think>x</think><answer>4</answer> ok"``
    → 0.0 (text after the answer); ``"<think>x</think><answer> </answer>"`` → 0.0 (blank answer).
    """
    if params:
        raise R1Error(f"unknown parameter(s) for reward 'format': {', '.join(sorted(params))}; valid: eos_texts")
    text = completion.strip()
    for eos in eos_texts:
        if eos and text.endswith(eos):
            text = text[: -len(eos)].rstrip()
            break
    if any(text.count(tag) != 1 for tag in _TAGS):
        return 0.0
    m = _R1_ZERO_FORMAT.fullmatch(text)
    return 1.0 if m is not None and m.group(2).strip() else 0.0


__all__ = ["DEFAULT_EOS_TEXTS", "accuracy_reward", "format_reward"]
