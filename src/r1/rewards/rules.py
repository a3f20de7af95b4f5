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
- ``readable_format``: 1 if the completion is in DeepSeek-R1's readable cold-start format (section 2.3.1),
  ``|special_token|<reasoning_process>|special_token|<summary>`` (:data:`r1.data.templates.READABLE_TOKEN`), with a
  non-empty reasoning and a summary that states the gold answer; else 0. The R1 counterpart of ``format``.

Deliberately left out: neural reward models and the language-consistency reward (separate modules).
"""

from __future__ import annotations

import re
from typing import Optional

from r1.data.sample import Sample
from r1.data.templates import READABLE_TOKEN, split_readable
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
    return 1.0 if parse_r1_zero(completion, eos_texts) is not None else 0.0


def strip_eos(completion: str, eos_texts: tuple[str, ...] | list[str] = DEFAULT_EOS_TEXTS) -> str:
    """``completion`` stripped of surrounding whitespace and then of one trailing EOS text (the first that matches)."""
    text = completion.strip()
    for eos in eos_texts:
        if eos and text.endswith(eos):
            return text[: -len(eos)].rstrip()
    return text


def parse_r1_zero(
    completion: str, eos_texts: tuple[str, ...] | list[str] = DEFAULT_EOS_TEXTS
) -> tuple[str, str] | None:
    """``(think, answer)`` of a completion in the strict R1-Zero format (:func:`format_reward`), both as written
    (not stripped); None when it is not in that format or the answer is blank.

    Example: ``parse_r1_zero(" <think>2+2=4</think> <answer>4</answer>")`` → ``("2+2=4", "4")``.
    """
    text = strip_eos(completion, eos_texts)
    if any(text.count(tag) != 1 for tag in _TAGS):
        return None
    m = _R1_ZERO_FORMAT.fullmatch(text)
    return (m.group(1), m.group(2)) if m is not None and m.group(2).strip() else None


def format_tags_reward(completion: str, sample: Sample, *, task=None, **params) -> float:
    """0.25 for each of ``<think>``, ``</think>``, ``<answer>``, ``</answer>`` that appears exactly once in
    ``completion`` (order and surrounding text are not checked; see :func:`format_reward` for that).

    Examples: ``"<think>x</think> <answer>4</answer>"`` → 1.0; ``"x</think> 4"`` → 0.25; ``"<answer><answer>"`` → 0.0.
    """
    if params:
        raise R1Error(f"reward 'format_tags' takes no parameters, got {', '.join(sorted(params))}")
    return sum(0.25 for tag in _TAGS if completion.count(tag) == 1)


def readable_format_reward(
    completion: str,
    sample: Sample,
    *,
    task=None,
    token: str = READABLE_TOKEN,
    require_answer: bool = True,
    eos_texts: tuple[str, ...] | list[str] = DEFAULT_EOS_TEXTS,
    **params,
) -> float:
    """1.0 if ``completion`` is in R1's readable format, else 0.0.

    After stripping surrounding whitespace and one trailing EOS text, the completion must be ``token R token S``
    (:func:`r1.data.templates.split_readable`: exactly two tokens, nothing before the first) with ``R`` not blank and
    ``S`` stating the gold answer: ``sample.answer`` standing alone (not inside a longer word or number: ``8410`` is
    not in ``84100``). ``require_answer=False`` asks only for a non-blank ``S`` (an answer stated another way, e.g.
    ``1/2`` for ``\\frac{1}{2}``, is the accuracy reward's business).

    Examples (gold ``8410``): ``"<|reasoning|>1+9+0=10 …<|reasoning|>The answer is 8410."`` → 1.0;
    ``"<|reasoning|> <|reasoning|>8410"`` → 0.0 (no reasoning); ``"<think>…</think><answer>8410</answer>"`` → 0.0.
    """
    if params:
        raise R1Error(f"unknown parameter(s) for reward 'readable_format': {', '.join(sorted(params))}; "
                      "valid: token, require_answer, eos_texts")
    if not isinstance(require_answer, bool):
        raise R1Error(f"reward 'readable_format': require_answer must be true or false, got {require_answer!r}")
    parts = split_readable(strip_eos(completion, eos_texts), token)
    if parts is None or not parts[0] or not parts[1]:
        return 0.0
    if not require_answer or not sample.answer:
        return 1.0
    answer = re.escape(sample.answer.strip())
    return 1.0 if re.search(rf"(?<![\w.]){answer}(?!\w)", parts[1]) else 0.0



def _readable_format_check(params: dict, environment: bool = False):
    """``readable_format``'s params checked when the config is validated (before any run directory is made); none
    depends on the machine."""
    if environment:
        return
    token = params.get("token", READABLE_TOKEN)
    if not isinstance(token, str) or not token.strip():
        yield "token", token, "must be a non-blank string (the readable format's special token)"
    if not isinstance(params.get("require_answer", True), bool):
        yield "require_answer", params["require_answer"], "must be true or false"
    eos = params.get("eos_texts", DEFAULT_EOS_TEXTS)
    if not isinstance(eos, (list, tuple)) or not all(isinstance(e, str) and e for e in eos):
        yield "eos_texts", eos, "must be a list of non-empty strings"


readable_format_reward.check_params = _readable_format_check  # type: ignore[attr-defined]

__all__ = [
    "DEFAULT_EOS_TEXTS", "accuracy_reward", "format_reward", "format_tags_reward", "parse_r1_zero",
    "readable_format_reward", "strip_eos",
]
