"""A user's data file in any of three formats, its columns renamed by a field mapping: the one place r1 opens records.

Every reader of a task's or trainer's records (``task.data`` of the math, benchmark, multiple-choice and code tasks,
eval benchmarks' ``data``, ``r1 sft``'s ``data.path`` and ``data.mix``, ``r1 rm``'s preference pairs) calls
:func:`iter_records`. The format is read from the path:

- **JSONL** (any file not below; ``.gz`` decompressed): :func:`r1.data.jsonl.iter_jsonl`, with its one-line errors;
- **Parquet** (``.parquet``/``.pq``, or a file that starts with the magic ``PAR1``): ``pyarrow.parquet``;
- **a Hugging Face datasets directory** written by ``Dataset.save_to_disk``: ``datasets.load_from_disk``. A
  ``DatasetDict`` directory is read through its one split, or a split named as its sub-folder (``dir/test``).

A field mapping ``fields: {problem: question, answer: solution}`` (r1's field name -> the file's column) renames the
file's columns to the names r1 reads, so a file keeps its own schema. ``pyarrow`` and ``datasets`` are imported only
for their formats; without them the error says what to install (``pip install 'r1[data]'``).

Errors are one :class:`~r1.errors.R1Error` line naming the file: for Parquet and datasets directories a missing or
mis-mapped column is caught before the first row, with the file's column list; a bad row is named ``FILE: row N``
(JSONL: ``FILE:LINE``, as before). Row checks (types, duplicate ids) stay with each caller, which knows its schema.

Left out: CSV, Arrow IPC files outside a datasets directory, hub downloads (``load_dataset`` by name), and streaming
(a file is read whole; the tasks here hold thousands of records, not millions).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from r1.data.jsonl import check_data_file, iter_jsonl
from r1.errors import R1Error

PARQUET_SUFFIXES = (".parquet", ".pq")
_PARQUET_MAGIC = b"PAR1"
#: Files ``Dataset.save_to_disk`` writes (both) and ``DatasetDict.save_to_disk`` writes at its top.
_DATASET_FILES = ("dataset_info.json", "state.json")
_DATASET_DICT_FILE = "dataset_dict.json"
_INSTALL = "pip install 'r1[data]' (or pip install datasets pyarrow)"


@dataclass(frozen=True)
class Where:
    """Where a record sits: ``FILE:LINE`` (JSONL) or ``FILE: row N`` (Parquet, datasets); ``number`` counts from 1."""

    path: Path
    number: int
    unit: str = "line"

    @property
    def place(self) -> str:
        """``line 3`` / ``row 3`` (for "first on line 3")."""
        return f"{self.unit} {self.number}"

    def __str__(self) -> str:
        return f"{self.path}:{self.number}" if self.unit == "line" else f"{self.path}: row {self.number}"


def data_format(path: str | Path) -> str:
    """``"jsonl"``, ``"parquet"`` or ``"datasets"`` for an existing path; a one-line R1Error for a directory that is no
    datasets directory, a device or FIFO, or a missing path (the messages of :func:`r1.data.jsonl.check_data_file`)."""
    p = Path(path).expanduser()
    if p.is_dir():
        if any((p / f).is_file() for f in (*_DATASET_FILES, _DATASET_DICT_FILE)):
            return "datasets"
        raise R1Error(
            f"{p} is a directory, not a JSONL file, a Parquet file or a datasets directory "
            f"(no {', '.join(_DATASET_FILES)} or {_DATASET_DICT_FILE} in it)"
        )
    p = check_data_file(p)
    if p.suffix.lower() in PARQUET_SUFFIXES:
        return "parquet"
    try:
        with open(p, "rb") as f:
            head = f.read(len(_PARQUET_MAGIC))
    except OSError as e:
        raise R1Error(f"{p}: cannot read ({e.strerror or e})") from None
    return "parquet" if head == _PARQUET_MAGIC else "jsonl"


def data_path_problem(path: str | None) -> str | None:
    """What is wrong with ``path`` as a data path (config checks), or None: a file or a datasets directory."""
    if path is None:
        return None
    try:
        data_format(path)
    except R1Error as e:
        return "file not found" if not Path(path).expanduser().exists() else str(e)
    return None


def check_fields(fields: Any, owner: str = "fields") -> dict[str, str]:
    """``fields`` as a ``{r1 field: column}`` dict of non-empty strings (None = {}); else a one-line R1Error naming
    ``owner`` (the config key)."""
    if fields is None:
        return {}
    if not isinstance(fields, Mapping) or not all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in fields.items()
    ):
        raise R1Error(
            f"{owner} must map r1 field names to the file's column names, e.g. {{problem: question}}; got {fields!r}"
        )
    return dict(fields)


def iter_records(
    path: str | Path,
    fields: Mapping[str, str] | None = None,
    required: Sequence[str | tuple[str, ...]] = (),
    hint: str = "map a column to it with fields: {{{field}: COLUMN}} (a task's params.fields)",
) -> Iterator[tuple[Where, dict[str, Any]]]:
    """Yield ``(where, record)`` for every record of a JSONL file, a Parquet file or a datasets directory, with the
    file's columns renamed by ``fields`` (``{r1 field: column}``; other columns kept under their own names).

    Args:
        path: the data path; its format is found by :func:`data_format`.
        fields: the mapping (None or {} = the file already uses r1's names). A mapped column missing from the file
            (Parquet/datasets: from its columns; JSONL: from a line) is an error.
        required: r1 field names a columnar file must hold (after mapping), checked before the first row with the
            column list in the message; a tuple means one of them. JSONL lines are checked by the caller, whose
            messages name the line.
        hint: the end of the missing-column message, how the user fixes it (``{field}``: the missing field).

    Example: a Parquet file with columns ``question, solution, id`` and ``fields={"problem": "question",
    "answer": "solution"}`` yields ``{"problem": ..., "answer": ..., "id": ...}`` per row.
    """
    p = Path(path).expanduser()
    fields = check_fields(fields)
    kind = data_format(p)
    if kind == "jsonl":
        for line, rec in iter_jsonl(p):
            where = Where(p, line)
            for name, column in fields.items():
                if column not in rec:
                    raise R1Error(f"{where}: missing field {column!r} (fields maps {name!r} to it)")
            yield where, _renamed(rec, fields)
        return
    columns, rows = _read_parquet(p) if kind == "parquet" else _read_dataset_dir(p)
    _check_columns(p, columns, fields, required, hint)
    for i, rec in enumerate(rows, 1):
        yield Where(p, i, "row"), _renamed(rec, fields)


def _renamed(rec: dict[str, Any], fields: dict[str, str]) -> dict[str, Any]:
    if not fields:
        return rec
    used = set(fields.values())
    out = {k: v for k, v in rec.items() if k not in used}
    out.update((name, rec[column]) for name, column in fields.items())
    return out


def _check_columns(p: Path, columns: list[str], fields: dict[str, str], required, hint: str) -> None:
    listing = f"columns: {', '.join(columns) or '(none)'}"
    for name, column in fields.items():
        if column not in columns:
            raise R1Error(f"{p}: fields maps {name!r} to column {column!r}, which the file does not have; {listing}")
    have = set(fields) | (set(columns) - set(fields.values()))
    for need in required:
        options = (need,) if isinstance(need, str) else tuple(need)
        if not have.intersection(options):
            names = " or ".join(map(repr, options))
            raise R1Error(f"{p}: no column for field {names}; {listing}; {hint.format(field=options[0])}")


def _read_parquet(p: Path) -> tuple[list[str], list[dict[str, Any]]]:
    try:
        import pyarrow
        import pyarrow.parquet as pq
    except ImportError:
        raise R1Error(f"{p}: reading Parquet needs pyarrow: {_INSTALL}") from None
    try:
        table = pq.read_table(p)
    except (pyarrow.ArrowException, OSError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise R1Error(f"{p}: not a readable Parquet file ({first})") from None
    return list(table.column_names), table.to_pylist()


def _read_dataset_dir(p: Path) -> tuple[list[str], list[dict[str, Any]]]:
    try:
        import datasets
    except ImportError:
        raise R1Error(f"{p}: a Hugging Face datasets directory needs the datasets package: {_INSTALL}") from None
    if (p / _DATASET_DICT_FILE).is_file():  # a DatasetDict: take its only split, or make the user name one
        try:
            splits = json.loads((p / _DATASET_DICT_FILE).read_text()).get("splits")
        except (OSError, ValueError, AttributeError):
            splits = None
        if not isinstance(splits, list) or not all(isinstance(s, str) for s in splits) or not splits:
            raise R1Error(f"{p}: {_DATASET_DICT_FILE} does not list the splits (a damaged datasets directory)")
        if len(splits) > 1:
            raise R1Error(f"{p} is a DatasetDict with splits {', '.join(splits)}; name one: {p / splits[0]}")
        p = p / splits[0]
    try:
        ds = datasets.load_from_disk(str(p))
        if not isinstance(ds, datasets.Dataset):
            raise R1Error(f"{p}: not a single dataset ({type(ds).__name__}); name one of its splits")
        return list(ds.column_names), ds.to_list()
    except R1Error:
        raise
    except Exception as e:  # noqa: BLE001 - missing shards, broken JSON, corrupt Arrow: all one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise R1Error(f"{p}: not a readable datasets directory ({type(e).__name__}: {first})") from None


__all__ = ["Where", "check_fields", "data_format", "data_path_problem", "iter_records"]
