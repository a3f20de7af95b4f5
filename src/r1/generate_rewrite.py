"""Rewrites of ``r1 generate`` (registry ``REWRITES``): kept samples turned into another output format.

DeepSeek-R1 (arXiv 2501.12948, section 2.3.1) makes part of its cold-start data by "gathering DeepSeek-R1-Zero outputs
in a readable format, and refining the results through post-processing by human annotators", in the readable format
``|special_token|<reasoning_process>|special_token|<summary>``. ``r1 generate`` with ``rewrite: readable`` is that
post-processing done by rule: after the filters, each kept ``<think>R</think><answer>A</answer>`` sample becomes
``<|reasoning|>R<|reasoning|>The answer is A.`` (:data:`r1.data.templates.READABLE_TOKEN`). A rewrite is
``fn(record) -> record | None``; None drops a record it cannot parse (not the strict R1-Zero format of
:func:`r1.rewards.rules.parse_r1_zero`, or an empty reasoning: the readable format has one), and
:func:`rewrite_records` counts the drops as one more entry of ``summary.json``'s ``filters`` (named
``rewrite:<name>``), so ``samples = kept + drops`` still holds.

- ``readable``: summary ``The answer is A.``
- ``readable_boxed``: summary ``The answer is $\\boxed{A}$.`` (for math tasks, whose grader reads the last box).

A record's prompt rendered with the ``r1_zero`` template (it asks for ``<think>`` tags) is rendered again with
``r1_readable``; any other prompt (``plain``, ``chat``, an appended instruction) is kept as it is. ``num_tokens`` and
``finish_reason`` still describe the sampled completion. Left out: a model-written summary (the paper's annotators);
the summary is a template.
"""

from __future__ import annotations

from typing import Callable, Optional

from r1.data.templates import READABLE_TOKEN, render_r1_readable, render_r1_zero
from r1.registry import Registry
from r1.rewards.rules import parse_r1_zero

Rewrite = Callable[[dict], Optional[dict]]
REWRITES: Registry[Rewrite] = Registry("rewrite")

SUMMARY = "The answer is {answer}."
"""The summary the ``readable`` rewrite writes after the reasoning."""

BOXED_SUMMARY = "The answer is $\\boxed{{{answer}}}$."
"""The summary of ``readable_boxed``."""


def to_readable(record: dict, *, token: str = READABLE_TOKEN, summary: str = SUMMARY) -> Optional[dict]:
    """``record`` with its R1-Zero completion in the readable format (module docstring), or None when the completion
    is not in the strict R1-Zero format or its reasoning is blank. Leading whitespace of the completion is kept (a
    completion after ``Assistant:`` starts with a space).

    Example: ``{"completion": " <think>2+2=4</think> <answer>4</answer>"}`` →
    ``{"completion": " <|reasoning|>2+2=4<|reasoning|>The answer is 4."}``.
    """
    completion = record.get("completion")
    parsed = parse_r1_zero(completion) if isinstance(completion, str) else None
    if parsed is None or not parsed[0].strip():
        return None
    think, answer = (part.strip() for part in parsed)
    lead = completion[: len(completion) - len(completion.lstrip())]
    out = {**record, "completion": f"{lead}{token}{think}{token}{summary.format(answer=answer)}"}
    problem = record.get("problem")
    if isinstance(problem, str) and record.get("prompt") == render_r1_zero(problem):
        out["prompt"] = render_r1_readable(problem, token=token)
    return out


@REWRITES.register("readable")
def readable(record: dict) -> Optional[dict]:
    """:func:`to_readable` with the summary :data:`SUMMARY`."""
    return to_readable(record)


@REWRITES.register("readable_boxed")
def readable_boxed(record: dict) -> Optional[dict]:
    """:func:`to_readable` with the summary :data:`BOXED_SUMMARY`."""
    return to_readable(record, summary=BOXED_SUMMARY)


def rewrite_records(records: list[dict], counts: list[dict], name: str) -> tuple[list[dict], list[dict]]:
    """Apply the rewrite ``name`` to ``records`` (the filters' survivors; ``""`` = no rewrite: both returned as they
    are). Returns the rewritten records that parsed and ``counts`` plus ``{"name": "rewrite:<name>", "params": {},
    "in", "kept", "dropped"}``. Each record's ``filters`` verdicts gain ``rewrite:<name>``."""
    if not name:
        return records, counts
    fn = REWRITES.get(name)
    out = []
    for r in records:
        new = fn(r)
        r.setdefault("filters", {})[f"rewrite:{name}"] = new is not None
        if new is not None:
            out.append(new)
    return out, [*counts, {"name": f"rewrite:{name}", "params": {}, "in": len(records), "kept": len(out),
                           "dropped": len(records) - len(out)}]


__all__ = ["BOXED_SUMMARY", "REWRITES", "SUMMARY", "readable", "readable_boxed", "rewrite_records",
           "to_readable"]
