"""JSONL reading with errors that name the file and line.

Every reader of a user's JSONL file (``task.data``, ``r1 sft`` data, ``r1 grade --completions/--data``,
``r1 decontaminate --train``) goes through :func:`iter_jsonl`, so each kind of bad file is one one-line
:class:`~r1.errors.R1Error`: a missing path or a directory, bytes that are not UTF-8 (a binary file, Latin-1 text, a
gzip file without ``.gz``), a truncated or corrupt ``.gz``, malformed JSON, a line that is not a JSON object, and (in
:func:`read_jsonl` and the task loaders) an empty file. Lines are read as bytes and decoded one at a time, so a
decoding error names its line.

Left out: other compressions (``.zst``, ``.bz2``) and encodings other than UTF-8 (a UTF-8 byte-order mark on the first
line is accepted, as Windows tools write one).
"""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path
from typing import Any, Iterator

from r1.errors import R1Error

_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"


def check_data_file(path: str | Path) -> Path:
    """``path`` expanded, if it is a regular file; else a one-line R1Error (missing, a directory, a device or FIFO)."""
    p = Path(path).expanduser()
    if p.is_dir():
        raise R1Error(f"{p} is a directory, not a JSONL file")
    if p.exists() and not p.is_file():  # /dev/zero, a FIFO (reading one would block): never opened
        raise R1Error(f"{p} is not a regular file")
    if not p.is_file():
        raise R1Error(f"data file not found: {p}")
    return p


def iter_lines(path: str | Path) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line_number, raw line bytes)`` of a file, ``.gz`` decompressed; I/O and gzip errors are R1Errors.

    Lines are split at ``\\n`` only (the numbering :func:`iter_jsonl` reports and ``r1 decontaminate --out`` copies by).
    """
    p = check_data_file(path)
    i = 0
    try:
        with (gzip.open(p, "rb") if p.suffix == ".gz" else open(p, "rb")) as f:
            for i, raw in enumerate(f, 1):
                yield i, raw
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        # BadGzipFile: not gzip at all or a bad member header; EOFError: cut off; zlib.error: corrupt deflate data
        where = f"after line {i}" if i else "at the start"
        raise R1Error(f"{p}: corrupt or truncated gzip file ({e or type(e).__name__}) {where}") from None
    except OSError as e:
        raise R1Error(f"{p}: cannot read ({e.strerror or e})") from None


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, record)``; ``.gz`` files are read transparently. Blank lines are skipped.

    Errors (one line, naming the file and, where known, the line): see the module docstring. An empty file yields
    nothing; callers that need records say so (:func:`read_jsonl`).
    """
    p = Path(path).expanduser()
    for i, raw in iter_lines(p):
        if i == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            hint = " (gzip data: name the file *.gz)" if i == 1 and raw.startswith(_GZIP_MAGIC) else ""
            raise R1Error(
                f"{p}:{i}: not UTF-8 text (byte 0x{raw[e.start]:02x} at column {e.start + 1}){hint}; "
                "JSONL files must be UTF-8"
            ) from None
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise R1Error(f"{p}:{i}: malformed JSON ({e.msg} at column {e.colno})") from None
        except RecursionError:  # [[[[...]]]] nested deeper than the interpreter's stack
            raise R1Error(f"{p}:{i}: malformed JSON (nested too deeply)") from None
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


__all__ = ["check_data_file", "iter_jsonl", "iter_lines", "read_jsonl"]
