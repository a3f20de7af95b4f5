"""Filters of ``r1 generate`` (registry ``FILTERS``): which sampled completions become SFT data.

DeepSeek-R1 (arXiv 2501.12948, section 2.3.3) builds its reasoning SFT data by rejection sampling: sample several
completions per prompt, keep the correct ones, drop mixed-language, over-long-paragraph and code-block ones. Each
filter here is a function ``fn(records, **params) -> list[bool]`` over the records that passed the filters before it
(True = keep). A record is ``{"id", "index", "problem", "prompt", "completion", "num_tokens", "score", ...}``; the
parameters are the function's keyword arguments (a config's ``filters: [{name, params}]``, checked by
``r1.config``). :func:`apply_filters` runs a list of them in order and counts what each kept and dropped.

- ``correct``: the task grader's score >= ``threshold`` (the paper's rejection sampling).
- ``max_per_prompt``: at most ``n`` completions per prompt (the first ones, by sample index).
- ``max_length``: at most ``tokens`` tokens and/or ``chars`` characters.
- ``dedupe``: drop exact, normalised-text or n-gram-Jaccard near duplicates of an earlier kept completion, within a
  prompt (``scope="prompt"``) or across the whole set (``scope="all"``).
- ``readable``: the expected format present, no paragraph over ``max_paragraph_chars``, no code fence in prose,
  and a language-consistency score >= ``min_language_score`` (:func:`language_consistency`: the share of the
  completion's words in its dominant language).
- ``decontaminate``: drop records whose problem (or other fields) shares a word n-gram with a benchmark problem
  (``r1.eval.decontaminate``'s index).
"""

from __future__ import annotations

import re
from typing import Any, Callable

from r1.errors import R1Error
from r1.registry import Registry

Filter = Callable[..., list[bool]]
FILTERS: Registry[Filter] = Registry("filter")


@FILTERS.register("correct")
def correct(records: list[dict], *, threshold: float = 1.0) -> list[bool]:
    """Keep records whose grader ``score`` is at least ``threshold``."""
    return [r.get("score", 0.0) >= threshold for r in records]


@FILTERS.register("max_per_prompt")
def max_per_prompt(records: list[dict], *, n: int = 1) -> list[bool]:
    """Keep the first ``n`` records (lowest sample index) of each prompt."""
    if n < 1:
        raise R1Error(f"filter max_per_prompt: n must be >= 1, got {n}")
    order = sorted(range(len(records)), key=lambda i: (records[i]["id"], records[i].get("index", 0)))
    seen: dict[str, int] = {}
    keep = [False] * len(records)
    for i in order:
        sid = records[i]["id"]
        if seen.get(sid, 0) < n:
            keep[i] = True
            seen[sid] = seen.get(sid, 0) + 1
    return keep


@FILTERS.register("max_length")
def max_length(records: list[dict], *, tokens: int | None = None, chars: int | None = None) -> list[bool]:
    """Keep completions of at most ``tokens`` tokens (``num_tokens``) and at most ``chars`` characters (None = no
    bound)."""
    return [
        (tokens is None or r.get("num_tokens", 0) <= tokens) and (chars is None or len(r["completion"]) <= chars)
        for r in records
    ]


def normalise(text: str) -> str:
    """Lower-cased words joined by single spaces: spacing, case and punctuation differences vanish."""
    return " ".join(re.findall(r"\w+", text.lower()))


def _shingles(text: str, n: int) -> set[tuple[str, ...]]:
    w = normalise(text).split()
    if len(w) < n:
        return {tuple(w)} if w else set()
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def jaccard(a: set, b: set) -> float:
    """|a ∩ b| / |a ∪ b| (1.0 for two empty sets)."""
    return len(a & b) / len(a | b) if a or b else 1.0


@FILTERS.register("dedupe")
def dedupe(
    records: list[dict], *, mode: str = "normalised", threshold: float = 0.9, ngram: int = 3, scope: str = "prompt"
) -> list[bool]:
    """Drop a completion that duplicates one kept before it (records in order).

    ``mode``: ``exact`` (the same text), ``normalised`` (the same :func:`normalise` text) or ``jaccard`` (word
    ``ngram`` shingles with Jaccard similarity >= ``threshold``). ``scope``: ``prompt`` compares completions of the
    same prompt only, ``all`` the whole set.
    """
    if mode not in ("exact", "normalised", "jaccard"):
        raise R1Error(f"filter dedupe: unknown mode {mode!r}; valid: exact, normalised, jaccard")
    if scope not in ("prompt", "all"):
        raise R1Error(f"filter dedupe: unknown scope {scope!r}; valid: prompt, all")
    kept: dict[str, list[Any]] = {}
    keep = []
    for r in records:
        group = kept.setdefault(r["id"] if scope == "prompt" else "", [])
        text = r["completion"]
        if mode == "jaccard":
            key: Any = _shingles(text, ngram)
            dup = any(jaccard(key, k) >= threshold for k in group)
        else:
            key = text if mode == "exact" else normalise(text)
            dup = key in group
        if not dup:
            group.append(key)
        keep.append(not dup)
    return keep


def language_consistency(text: str) -> float:
    """The share of a completion's words in its dominant language, in [0, 1] (1.0 for a text without words): the
    hook the ``readable`` filter calls (its ``language`` parameter names another callable as ``"module:function"``).

    It is :func:`r1.rewards.language.language_share` with no target, method ``auto`` (script, and the language
    identifier where the script cannot decide), over the whole completion (tags ignored), so a CoT that drifts into a
    second language or a summary in another language than the reasoning both count (the paper drops such samples,
    arXiv 2501.12948 section 2.3.3). Example: ``" <think>所以答案是 twelve</think> <answer>12</answer>"`` → 5/6."""
    from r1.rewards.language import language_share

    return language_share(text)


_FORMATS = ("r1_zero", "think", "none")
_FENCE = re.compile(r"^\s*(```|~~~)", re.MULTILINE)


def _format_ok(text: str, fmt: str) -> bool:
    if fmt == "r1_zero":
        from r1.rewards.rules import format_reward

        return format_reward(text, None) == 1.0
    if fmt == "think":
        return "</think>" in text
    return True


def _resolve(spec: str) -> Callable[[str], float]:
    import importlib

    module, _, attr = spec.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError, ValueError):
        raise R1Error(f"filter readable: language={spec!r} is not an importable 'module:function'") from None


@FILTERS.register("readable")
def readable(
    records: list[dict],
    *,
    format: str = "r1_zero",
    max_paragraph_chars: int = 2000,
    code_fences: bool = False,
    min_language_score: float = 1.0,
    language: str = "r1.generate_filters:language_consistency",
) -> list[bool]:
    """Keep readable completions: the expected ``format`` present (``r1_zero``: the strict R1-Zero tags, as the
    ``format`` reward; ``think``: a ``</think>``; ``none``), no paragraph (text between blank lines) longer than
    ``max_paragraph_chars``, no code fence (````` or ``~~~`` at a line start) unless ``code_fences``, and a language
    score (``language``: a ``"module:function"`` text → [0, 1]) of at least ``min_language_score``."""
    if format not in _FORMATS:
        raise R1Error(f"filter readable: unknown format {format!r}; valid: {', '.join(_FORMATS)}")
    score = _resolve(language)
    keep = []
    for r in records:
        text = r["completion"]
        ok = _format_ok(text, format)
        ok = ok and all(len(p) <= max_paragraph_chars for p in re.split(r"\n\s*\n", text))
        ok = ok and (code_fences or not _FENCE.search(text))
        ok = ok and score(text) >= min_language_score
        keep.append(ok)
    return keep


@FILTERS.register("decontaminate")
def decontaminate(
    records: list[dict], *, benchmarks: list[str] | None = None, n: int = 8, fields: list[str] | None = None
) -> list[bool]:
    """Drop records that share a word ``n``-gram with a problem of ``benchmarks`` (default: all registered
    benchmarks), reading the record's ``fields`` (default: ``problem``), as ``r1 decontaminate`` does."""
    from r1.eval.decontaminate import NgramIndex, load_benchmarks
    from r1.tasks.benchmarks import BENCHMARKS

    index = NgramIndex(load_benchmarks(benchmarks or list(BENCHMARKS)), n)
    fields = fields or ["problem"]
    return [not any(index.hits(r[f]) for f in fields if isinstance(r.get(f), str)) for r in records]


def apply_filters(records: list[dict], filters: list[tuple[str, dict]]) -> tuple[list[dict], list[dict]]:
    """Run ``filters`` (``[(name, params)]``) in order over ``records``; each sees what the ones before kept.

    Every record gets ``"filters": {name: bool}`` for the filters it reached. Returns the kept records and one count
    per filter: ``{"name", "params", "in", "kept", "dropped"}`` (``in`` = ``kept`` + ``dropped``, and each filter's
    ``in`` is the previous one's ``kept``).
    """
    alive = list(records)
    for r in alive:
        r["filters"] = {}
    counts = []
    for name, params in filters:
        verdicts = FILTERS.get(name)(alive, **params)
        for r, v in zip(alive, verdicts):
            r["filters"][name] = bool(v)
        kept = [r for r, v in zip(alive, verdicts) if v]
        counts.append({"name": name, "params": dict(params), "in": len(alive), "kept": len(kept),
                       "dropped": len(alive) - len(kept)})
        alive = kept
    return alive, counts


__all__ = ["FILTERS", "apply_filters", "jaccard", "language_consistency", "normalise"]
