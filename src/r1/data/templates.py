"""Prompt templates.

- ``r1_zero``: the R1-Zero template, verbatim from the paper's Table 1 (arXiv 2501.12948), ``prompt`` replaced by the
  question. The completion starts right after ``Assistant:``.
- ``chat``: the tokenizer's own chat template with one user turn and the generation prompt.
- ``plain``: the question as is (procedural tasks with their own format).
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


def render_prompt(template: str, question: str, tokenizer=None) -> str:
    """Render ``question`` with the named template."""
    return TEMPLATES.get(template)(question, tokenizer)
