"""Rule-based rewards of DeepSeek-R1-Zero (arXiv 2501.12948, section 2.2.2): accuracy and format; and a shaping
reward for format.

- ``accuracy``: the task's own grader (``task.grade``), so the RL reward and evaluation agree by construction.
- ``format``: 1 if the completion is exactly ``<think>…</think> <answer>…</answer>`` (the R1-Zero template's format),
  else 0. Strict on purpose: nothing before or after, one tag of each kind, a non-empty answer.
- ``format_tags``: partial credit, 0.25 for each of the four tags that appears exactly once (open-r1's
  ``tag_count_reward``). Not the paper's reward: a shaping reward that varies even for a model that has never seen
  the format (a random-init smoke model writes a tag now and then), so a group's rewards differ and GRPO has a
  gradient (``configs/grpo/smoke.yaml``). It is gameable by tags alone, so it belongs at a small weight next to
  ``accuracy``, never alone.

Deliberately left out: neural reward models and the language-consistency reward (separate modules).
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


def format_tags_reward(completion: str, sample: Sample, *, task=None, **params) -> float:
    """0.25 for each of ``<think>``, ``</think>``, ``<answer>``, ``</answer>`` that appears exactly once in
    ``completion`` (order and surrounding text are not checked; see :func:`format_reward` for that).

    Examples: ``"<think>x</think> <answer>4</answer>"`` → 1.0; ``"x</think> 4"`` → 0.25; ``"<answer><answer>"`` → 0.0.
    """
    if params:
        raise R1Error(f"reward 'format_tags' takes no parameters, got {', '.join(sorted(params))}")
    return sum(0.25 for tag in _TAGS if completion.count(tag) == 1)


__all__ = ["DEFAULT_EOS_TEXTS", "accuracy_reward", "format_reward", "format_tags_reward"]
