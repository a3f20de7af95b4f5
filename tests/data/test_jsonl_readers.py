"""Bad JSONL files through every command that reads one: a one-line error naming the file, exit code 2, no traceback.

Run: python -m pytest tests/data/test_jsonl_readers.py -q   (in-process CLI calls; a few seconds)

Readers: ``task.data`` (``r1 grpo``), ``data.path`` (``r1 sft``), ``r1 grade --completions`` and ``--data``,
``r1 decontaminate --train``. Each bad file is written under a name that shows what it is.
"""

import gzip
import json
from pathlib import Path

import pytest

from r1.cli import main

REPO = Path(__file__).resolve().parents[2]
SMOKE = str(REPO / "configs" / "grpo" / "smoke.yaml")



def _lines(n: int) -> bytes:
    """``n`` good lines (distinct ids ``a``, ``a1``, ...) that every reader accepts."""
    recs = [{"id": "a" if i == 0 else f"a{i}", "problem": "1+1?", "answer": "2", "completion": "<answer>2</answer>"}
            for i in range(n)]
    return "".join(json.dumps(r) + "\n" for r in recs).encode()


GOOD = _lines(1)


def _gzip_corrupt() -> bytes:
    data = bytearray(gzip.compress(_lines(50)))
    data[len(data) // 2] ^= 0xFF  # a flipped byte in the deflate stream (or its CRC check fails)
    return bytes(data)


# name -> (file name, bytes, text the error must hold)
BAD_FILES = {
    "latin1": ("latin1.jsonl", GOOD + '{"id": "b", "problem": "café", "answer": "1"}\n'.encode("latin-1"),
               "latin1.jsonl:2: not UTF-8"),
    "binary": ("binary.jsonl", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8, "binary.jsonl:1: not UTF-8"),
    "gzip_truncated": ("cut.jsonl.gz", gzip.compress(_lines(200))[:-30], "cut.jsonl.gz: corrupt or truncated gzip"),
    "gzip_corrupt": ("bad.jsonl.gz", _gzip_corrupt(), "bad.jsonl.gz: corrupt or truncated gzip"),
    "gz_not_gzip": ("plain.jsonl.gz", GOOD, "plain.jsonl.gz: corrupt or truncated gzip"),
    "gzip_without_gz": ("packed.jsonl", gzip.compress(GOOD), "name the file *.gz"),
    "not_an_object": ("list.jsonl", GOOD + b"[1, 2]\n", "list.jsonl:2: expected a JSON object"),
    "nested_too_deep": ("deep.jsonl", b"[" * 100_000 + b"]" * 100_000 + b"\n", "deep.jsonl:1: malformed JSON"),
    "empty": ("empty.jsonl", b"", "empty.jsonl: no"),
    "blank_lines_only": ("blank.jsonl", b"\n  \n", "blank.jsonl: no"),
    "directory": ("adir.jsonl", None, "adir.jsonl is a directory"),
}


def _write(tmp_path: Path, kind: str) -> tuple[Path, str]:
    name, data, expect = BAD_FILES[kind]
    path = tmp_path / name
    if data is None:
        path.mkdir()
    else:
        path.write_bytes(data)
    return path, expect


def _good_problems(tmp_path: Path) -> Path:
    path = tmp_path / "problems.jsonl"
    path.write_bytes(_lines(200))  # every id the bad files use
    return path


READERS = {
    "grpo task.data": lambda bad, tmp: ["grpo", "-c", SMOKE, "task.name=math", f"task.data={bad}",
                                        f"run.out_dir={tmp / 'runs'}"],
    "sft data.path": lambda bad, tmp: ["sft", "-c", str(REPO / "configs" / "pretrain" / "addition.yaml"),
                                       "model.path=tiny-qwen2", "data.source=jsonl", f"data.path={bad}",
                                       f"run.out_dir={tmp / 'runs'}", "run.progress=false"],
    "grade --completions": lambda bad, tmp: ["grade", "--task", "math", "--data", str(_good_problems(tmp)),
                                             "--completions", str(bad), "--out", str(tmp / "out"), "--no-progress"],
    "grade --data": lambda bad, tmp: ["grade", "--task", "math", "--data", str(bad), "--completions",
                                      str(_good_problems(tmp)), "--out", str(tmp / "out"), "--no-progress"],
    "decontaminate --train": lambda bad, tmp: ["decontaminate", "--train", str(bad), "--benchmarks", "math"],
}


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_bad_file_is_one_line_error(tmp_path, capsys, monkeypatch, kind, reader):
    monkeypatch.chdir(tmp_path)
    bad, expect = _write(tmp_path, kind)
    argv = READERS[reader](bad, tmp_path)
    if reader == "decontaminate --train":  # a benchmark file to index: the good problems, as task "math"
        monkeypatch.setattr("r1.eval.decontaminate.load_benchmarks",
                            lambda names: {"math": [("a", "what is one plus one")]})
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    command = argv[0]
    assert err.startswith(f"r1 {command}: error: ") and bad.name in err, err
    # each reader words "no records" its own way; a config's path is checked (exists, is a file) before any reading
    if kind not in ("empty", "blank_lines_only") and not (kind == "directory" and command in ("grpo", "sft")):
        assert expect in err, err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # nothing written


def test_device_and_fifo_are_refused(tmp_path, capsys):
    import os

    fifo = tmp_path / "pipe.jsonl"
    os.mkfifo(fifo)  # opening it for reading would block until a writer comes
    for path in ("/dev/zero", str(fifo)):
        assert main(["decontaminate", "--train", path, "--benchmarks", "math"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is not a regular file" in err and path in err


def test_line_numbers_and_bom():
    import tempfile

    from r1.data.jsonl import iter_jsonl, iter_lines

    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "bom.jsonl"
        # a UTF-8 byte-order mark, a blank line
        path.write_bytes(b"\xef\xbb\xbf" + GOOD + b"\n" + _lines(2)[len(GOOD):])
        assert [i for i, _ in iter_jsonl(path)] == [1, 3]
        gz = Path(d) / "x.jsonl.gz"
        gz.write_bytes(gzip.compress(_lines(3)))
        assert [i for i, _ in iter_lines(gz)] == [1, 2, 3]
