"""``r1 decontaminate``: n-gram overlap between a training JSONL and the benchmarks, and a filtered copy.

Variant: word n-grams (default n = 8, as open-r1's ``decontaminate.py`` and the GPT-3 / Llama reports use 8-13)
over lower-cased alphanumeric words, so LaTeX, punctuation and spacing differences do not hide a copy
(``$\\frac{1}{2}$`` and ``\\frac 1 2`` are both ``frac 1 2``). A benchmark problem shorter than n words counts as one
n-gram of all its words. A training record is *contaminated* if it shares at least one n-gram with a benchmark
problem (by default only the training record's ``problem`` text is read; ``fields`` adds others).

Reported per benchmark: its problems, how many share an n-gram with the training file, and how many training records
hit it. Nothing from a benchmark's text is printed or written (GPQA's authors ask that its questions stay out of
plain text), only ids and counts.

Left out: fuzzy (embedding or edit-distance) matching, and decontaminating answers or solutions on the benchmark
side (only problem texts are indexed).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable

from r1.data.jsonl import check_data_file, iter_jsonl, iter_lines
from r1.errors import R1Error

_WORDS = re.compile(r"[a-z0-9]+")


def words(text: str) -> list[str]:
    """Lower-cased alphanumeric words: ``"Find $x^2$, if x=3."`` → ``["find", "x", "2", "if", "x", "3"]``."""
    return _WORDS.findall(text.lower())


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """The word n-grams of ``text``; a text of fewer than n (but at least one) words is one n-gram of all of them."""
    w = words(text)
    if not w:
        return set()
    if len(w) < n:
        return {tuple(w)}
    return {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}


def _record_grams(text: str, n: int, short: dict[int, set[tuple[str, ...]]]) -> set[tuple[str, ...]]:
    """The n-grams of a training text, plus the short benchmark problems (``short``: length → problems) it contains
    as consecutive words."""
    w = words(text)
    grams = {tuple(w[i : i + n]) for i in range(len(w) - n + 1)}
    for k, problems in short.items():
        grams |= {tuple(w[i : i + k]) for i in range(len(w) - k + 1)} & problems
    return grams


class NgramIndex:
    """The word n-grams of benchmark problems (``name -> [(id, text)]``), for looking up a training text's hits."""

    def __init__(self, benchmarks: dict[str, list[tuple[str, str]]], n: int):
        self.n = n
        self.index: dict[tuple[str, ...], set[tuple[str, str]]] = {}
        self.short: dict[int, set[tuple[str, ...]]] = {}
        for name, problems in benchmarks.items():
            for pid, text in problems:
                for g in ngrams(text, n):
                    self.index.setdefault(g, set()).add((name, pid))
                    if len(g) < n:
                        self.short.setdefault(len(g), set()).add(g)

    def hits(self, text: str) -> set[tuple[str, str]]:
        """``(benchmark, problem id)`` of every problem that shares an n-gram with ``text``."""
        out: set[tuple[str, str]] = set()
        for g in _record_grams(text, self.n, self.short):
            out |= self.index.get(g, set())
        return out


def load_benchmarks(names: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """``name -> [(problem id, problem text)]`` of registered benchmark tasks (their evaluation split)."""
    from r1.tasks import build_task
    from r1.tasks.benchmarks import BENCHMARKS

    out = {}
    for name in names:
        samples = build_task(name).load(BENCHMARKS.get(name, "test"))
        out[name] = [(s.id, s.problem) for s in samples]
    return out


def decontaminate(
    train_path: str | Path,
    benchmarks: dict[str, list[tuple[str, str]]],
    *,
    n: int = 8,
    fields: list[str] | tuple[str, ...] = ("problem",),
    out_path: str | Path | None = None,
) -> dict[str, Any]:
    """Find training records that share a word n-gram with a benchmark problem; optionally write the others.

    Args:
        train_path: training JSONL (``.gz`` allowed).
        benchmarks: ``name -> [(id, problem text)]`` (see :func:`load_benchmarks`).
        n: n-gram length in words.
        fields: string fields of a training record to read; a record with none of them is an error.
        out_path: if given, write the training lines without a hit there (each line as it was).
    Returns:
        A report: ``{"n", "fields", "train": {"path", "records", "contaminated", "contaminated_lines"},
        "benchmarks": {name: {"problems", "contaminated_problems", "train_records_hit", "ids"}}}``.
    """
    if n < 1:
        raise R1Error(f"n-gram length must be >= 1, got {n}")
    index = NgramIndex(benchmarks, n)
    hit_problems: dict[str, set[str]] = {name: set() for name in benchmarks}
    hit_records: dict[str, int] = {name: 0 for name in benchmarks}
    bad_lines: list[int] = []
    keep: list[int] = []
    num = 0
    for line, rec in iter_jsonl(train_path):
        num += 1
        texts = [rec[f] for f in fields if isinstance(rec.get(f), str)]
        if not texts:
            raise R1Error(f"{train_path}:{line}: no string field among {', '.join(map(repr, fields))} (see --field)")
        hits: set[tuple[str, str]] = set()
        for text in texts:
            hits |= index.hits(text)
        if hits:
            bad_lines.append(line)
            for name in {h[0] for h in hits}:
                hit_records[name] += 1
            for name, pid in hits:
                hit_problems[name].add(pid)
        else:
            keep.append(line)
    if num == 0:
        raise R1Error(f"{train_path}: no records (empty dataset)")
    if out_path is not None:
        _write_lines(Path(train_path), Path(out_path), set(keep))
    return {
        "n": n,
        "fields": list(fields),
        "train": {
            "path": str(Path(train_path).resolve()),
            "records": num,
            "contaminated": len(bad_lines),
            "contaminated_lines": bad_lines,
        },
        "benchmarks": {
            name: {
                "problems": len(benchmarks[name]),
                "contaminated_problems": len(hit_problems[name]),
                "train_records_hit": hit_records[name],
                "ids": sorted(hit_problems[name]),
            }
            for name in benchmarks
        },
    }


def _write_lines(src: Path, dst: Path, keep: set[int]) -> None:
    """Copy the lines numbered in ``keep`` (1-based, as ``iter_jsonl`` counts) from ``src`` to ``dst``, byte for
    byte."""
    import gzip

    if dst.resolve() == src.resolve():
        raise R1Error(f"--out {dst} would overwrite the training file; pick another path")
    dst.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(dst, "wb") if dst.suffix == ".gz" else open(dst, "wb") as g:
        for i, line in iter_lines(src):
            if i in keep:
                g.write(line if line.endswith(b"\n") else line + b"\n")


def report_table(report: dict[str, Any]) -> str:
    """Markdown table of a :func:`decontaminate` report."""
    t = report["train"]
    lines = [
        f"{t['contaminated']} of {t['records']} training records share a {report['n']}-gram with a benchmark problem.",
        "",
        "| benchmark | problems | contaminated problems | training records hitting it |",
        "|---|---:|---:|---:|",
    ]
    for name, b in report["benchmarks"].items():
        lines.append(f"| {name} | {b['problems']} | {b['contaminated_problems']} | {b['train_records_hit']} |")
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report, indent=2) + "\n")


__all__ = ["NgramIndex", "decontaminate", "decontaminate_file", "load_benchmarks", "ngrams", "report_table", "words", "write_report"]


def decontaminate_file(
    train_path: str | Path,
    benchmark_names: list[str] | None = None,
    *,
    n: int = 8,
    fields: list[str] | None = None,
    out_path: str | Path | None = None,
    report_path: str | Path | None = None,
) -> dict[str, Any]:
    """``r1 decontaminate``: load the benchmarks (default: all of ``r1.tasks.benchmarks.BENCHMARKS``), run
    :func:`decontaminate`, print the table, write the JSON report and the filtered copy if asked."""
    from r1.tasks.benchmarks import BENCHMARKS
    from r1.runs import console

    check_data_file(train_path)  # before the benchmarks load: a typo fails at once
    report = decontaminate(
        train_path,
        load_benchmarks(benchmark_names or list(BENCHMARKS)),
        n=n,
        fields=fields or ["problem"],
        out_path=out_path,
    )
    console.print(report_table(report), soft_wrap=True)
    if report_path is not None:
        write_report(report, report_path)
        console.print(f"wrote {report_path}")
    if out_path is not None:
        kept = report["train"]["records"] - report["train"]["contaminated"]
        console.print(f"wrote {out_path} ({kept} records kept)")
    return report
