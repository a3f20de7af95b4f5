"""Data schema (Sample), prompt templates, and JSONL loading with line-precise errors."""

from r1.data.jsonl import read_jsonl
from r1.data.sample import Sample
from r1.data.templates import TEMPLATES, R1_ZERO_TEMPLATE, render_prompt

__all__ = ["Sample", "read_jsonl", "render_prompt", "TEMPLATES", "R1_ZERO_TEMPLATE"]
