"""Prompt templates.

- ``r1_zero``: the R1-Zero template, verbatim from the paper's Table 1 (arXiv 2501.12948), ``prompt`` replaced by the
  question. The completion starts right after ``Assistant:``.
- ``chat``: the tokenizer's own chat template with one user turn and the generation prompt.
- ``plain``: the question as is (procedural tasks with their own format).
- ``r1_readable``: the R1-Zero template's wording, asking for DeepSeek-R1's readable cold-start format instead
  (section 2.3.1): ``|special_token|<reasoning_process>|special_token|<summary>``, with :data:`READABLE_TOKEN` as the
  special token. :func:`split_readable` parses that format (the ``readable_format`` reward, the ``readable`` rewrite of
  ``r1 generate``).

The readable token is a module constant: a template is called as ``render(question, tokenizer)``, so a template that
wants another token is one more registered function (``TEMPLATES.register("name")(partial(render_r1_readable,
token=...))``). Left out: few-shot templates.
"""

from __future__ import annotations

from typing import Callable

from r1.registry import Registry

R1_ZERO_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with the answer. "
    "The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. "
    "User: {prompt}. Assistant:"
)

READABLE_TOKEN = "<|reasoning|>"
"""The readable format's special token: it opens and closes the reasoning (the paper names it ``|special_token|``)."""

R1_READABLE_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with a summary "
    "that states the answer. The reasoning process is enclosed within two {token} markers and the summary follows "
    "them, i.e., {token} reasoning process here {token} summary here. "
    "User: {prompt}. Assistant:"
)

TEMPLATES: Registry[Callable[[str, object], str]] = Registry("template")


@TEMPLATES.register("r1_zero")
def render_r1_zero(question: str, tokenizer=None) -> str:
    return R1_ZERO_TEMPLATE.format(prompt=question)


@TEMPLATES.register("chat")
def render_chat(question: str, tokenizer=None) -> str:
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        from r1.errors import R1Error

        raise R1Error("template 'chat' needs a tokenizer with a chat template")
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
    )


@TEMPLATES.register("plain")
def render_plain(question: str, tokenizer=None) -> str:
    return question


@TEMPLATES.register("r1_readable")
def render_r1_readable(question: str, tokenizer=None, token: str = READABLE_TOKEN) -> str:
    return R1_READABLE_TEMPLATE.format(prompt=question, token=token)


def split_readable(completion: str, token: str = READABLE_TOKEN) -> tuple[str, str] | None:
    """``(reasoning, summary)`` of a completion in the readable format, stripped; ``None`` unless the completion is
    ``token R token S`` with exactly two tokens and only whitespace before the first (R and S may be empty: the
    caller decides what an empty part means).

    Example: ``split_readable(" <|reasoning|>2+2=4<|reasoning|> It is 4.")`` → ``("2+2=4", "It is 4.")``.
    """
    if not isinstance(token, str) or not token:
        from r1.errors import R1Error

        raise R1Error(f"the readable format's token must be a non-empty string, got {token!r}")
    parts = completion.split(token)
    if len(parts) != 3 or parts[0].strip():
        return None
    return parts[1].strip(), parts[2].strip()


def render_prompt(template: str, question: str, tokenizer=None) -> str:
    """Render ``question`` with the named template."""
    return TEMPLATES.get(template)(question, tokenizer)
