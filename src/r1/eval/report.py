"""Evaluation outputs: ``results.json``, ``samples.jsonl`` per benchmark, and a Markdown table (``results.md``).

``results.json``::

    {"r1_version": "0.1.0", "created": "2025-...Z", "git_sha": "...", "source": {...what was graded...},
     "benchmarks": {"math500": {"task": "math500", "version": "1", "data": "/abs/math500.jsonl", "split": "test",
                                "metrics": {"pass@1": 0.42, "pass@1_stderr": 0.02, "pass@4": ..., "cons@4": ...,
                                            "length_tokens": ..., "truncated_share": ..., ...}}}}

``samples.jsonl``: one line per completion: ``id``, ``index`` (its position among the problem's samples),
``answer`` (the extracted answer, null if none), ``score``, ``num_tokens``, ``finish_reason`` and, for ``r1 eval``,
the ``completion`` itself. Fractions are stored as fractions; the table shows percentages, as the R1 report does.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from r1.eval.grade import GradedSample


def write_samples(path: Path, rows: list[GradedSample], include_completion: bool) -> None:
    """Write ``samples.jsonl`` (see the module docstring)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            line: dict[str, Any] = {
                "id": r.id,
                "index": r.index,
                "answer": r.answer,
                "score": r.score,
                "num_tokens": r.num_tokens,
                "finish_reason": r.finish_reason,
            }
            if include_completion:
                line["completion"] = r.completion
            f.write(json.dumps(line, ensure_ascii=False) + "\n")


def results_header(source: dict[str, Any]) -> dict[str, Any]:
    """The common head of ``results.json``: version, time, git SHA and what was graded."""
    from r1 import __version__

    try:
        from r1.runs import git_sha

        sha = git_sha()
    except Exception:  # noqa: BLE001 - the SHA is informative only
        sha = None
    created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return {"r1_version": __version__, "created": created, "git_sha": sha, "source": source, "benchmarks": {}}


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def results_table(results: dict[str, Any]) -> str:
    """The Markdown table of ``results["benchmarks"]``: one row per benchmark, values in percent.

    Columns: problems, k (samples per problem; ``min–max`` when problems have different numbers), pass@1 ± its
    standard error, pass@k for every k any benchmark has, cons@k (majority vote over the k samples), mean response
    length (tokens, else characters), truncated share and share of samples with no answer. Below the table, a line
    per benchmark whose problems lack completions or have unequal samples (:func:`coverage_notes`).
    """
    benches = results["benchmarks"]
    ks = sorted({int(key[5:]) for b in benches.values() for key in b["metrics"] if _is_pass_k(key)})
    head = ["benchmark", "problems", "k", "pass@1", *[f"pass@{k}" for k in ks], "cons@k", "length", "truncated",
            "no answer"]
    rule = "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"
    lines = ["| " + " | ".join(head) + " |", rule]
    for name, b in benches.items():
        m = b["metrics"]
        cons = next((k for k in m if k.startswith("cons@") and not k.endswith("_stderr")), None)
        if m.get("length_tokens") is not None:
            length = f"{m['length_tokens']:.0f} tok"
        else:
            length = f"{m['length_chars']:.0f} chr"
        row = [
            name,
            str(m["num_problems"]),
            _samples_per_problem(m),
            f"{_pct(m['pass@1'])} ± {_pct(m['pass@1_stderr'])}",
            *[_pct(m.get(f"pass@{k}")) for k in ks],
            _pct(m[cons]) if cons else "—",
            length,
            _pct(m.get("truncated_share")),
            _pct(m.get("no_answer_share")),
        ]
        lines.append("| " + " | ".join(row) + " |")
    notes = coverage_notes(results)
    return "\n".join(lines) + "\n" + "".join(f"\n{note}" for note in notes) + ("\n" if notes else "")


def _samples_per_problem(m: dict[str, Any]) -> str:
    lo, hi = m["samples_per_problem"], m.get("samples_per_problem_max", m["samples_per_problem"])
    return str(lo) if lo == hi else f"{lo}–{hi}"


def coverage_notes(results: dict[str, Any]) -> list[str]:
    """One line per benchmark whose numbers need a caveat: problems without completions (counted as wrong, or left
    out with ``--only-given``) and unequal samples per problem (pass@k only for k up to the fewest).

    Example: ``"math500: 499 of 500 problems have no completions (counted as wrong)"``.
    """
    notes = []
    for name, b in results["benchmarks"].items():
        m = b["metrics"]
        missing = m.get("num_problems_missing") or 0
        if missing:
            if m.get("missing_counted_as_wrong", True):
                total = m["num_problems"]
                notes.append(f"{name}: {missing} of {total} problems have no completions (counted as wrong)")
            else:
                total = m["num_problems"] + missing
                notes.append(
                    f"{name}: {missing} of {total} problems have no completions and are left out: the metrics are "
                    f"over the {m['num_problems']} graded problems only (--only-given)"
                )
        lo, hi = m["samples_per_problem"], m.get("samples_per_problem_max", m["samples_per_problem"])
        if lo != hi:
            notes.append(
                f"{name}: {lo} to {hi} samples per problem; pass@1 averages each problem's own samples, pass@k is "
                f"reported for k <= {lo} only, cons@all votes over each problem's samples"
            )
    return notes


def _is_pass_k(key: str) -> bool:
    return key.startswith("pass@") and key[5:].isdigit() and key != "pass@1"


def write_results(out_dir: Path, results: dict[str, Any]) -> str:
    """Write ``results.json`` and ``results.md`` into ``out_dir``; return the table."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    table = results_table(results)
    (out_dir / "results.md").write_text(table)
    return table


__all__ = ["coverage_notes", "results_header", "results_table", "write_results", "write_samples"]
