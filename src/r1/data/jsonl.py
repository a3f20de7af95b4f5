"""JSONL reading with errors that name the file and line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any, Iterator

from r1.errors import R1Error


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, record)``; ``.gz`` files are read transparently. Blank lines are skipped."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise R1Error(f"data file not found: {p}")
    opener = gzip.open if p.suffix == ".gz" else open
    with opener(p, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise R1Error(f"{p}:{i}: malformed JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(rec, dict):
                raise R1Error(f"{p}:{i}: expected a JSON object, got {type(rec).__name__}")
            yield i, rec


def read_jsonl(path: str | Path, required: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """All records of a JSONL file; each must hold the ``required`` keys. An empty file is an error."""
    out = []
    for i, rec in iter_jsonl(path):
        missing = [k for k in required if k not in rec]
        if missing:
            raise R1Error(f"{path}:{i}: missing field(s) {', '.join(map(repr, missing))}")
        out.append(rec)
    if not out:
        raise R1Error(f"{path}: no records (empty dataset)")
    return out
