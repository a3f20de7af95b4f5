"""Data files in three formats (JSONL, Parquet, a datasets directory) with renamed columns, read through a field
mapping into the same records by every reader; and the hostile ones: one line naming the file, nothing written.

Run: python -m pytest tests/data/test_readers.py -q   (a few seconds; datasets and pyarrow from the [data] extra)
"""

import json
import sys
from pathlib import Path

import pytest

from r1.cli import main
from r1.data.readers import data_format, iter_records
from r1.errors import R1Error

REPO = Path(__file__).resolve().parents[2]
SMOKE = str(REPO / "configs" / "grpo" / "smoke.yaml")

# the file's own column names: r1 calls them id, problem, answer
ROWS = [
    {"uid": "p1", "question": "What is 2+3?", "solution": "5", "level": 1},
    {"uid": "p2", "question": "What is 7*6?", "solution": "42", "level": 2},
    {"uid": "p3", "question": "Half of 9?", "solution": "4.5", "level": 3},
]
FIELDS = {"id": "uid", "problem": "question", "answer": "solution"}


def _write(tmp_path: Path, kind: str, rows=ROWS, name: str = "q") -> Path:
    """``rows`` as a JSONL file, a Parquet file, a Dataset directory or one split of a DatasetDict directory."""
    if kind == "jsonl":
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path
    if kind == "parquet":
        path = tmp_path / f"{name}.parquet"
        _parquet(rows, path)
        return path
    datasets = pytest.importorskip("datasets")  # the [data] extra; JSONL cases run without it
    ds = datasets.Dataset.from_list(rows)
    if kind == "datasets":
        path = tmp_path / f"{name}_ds"
        ds.save_to_disk(str(path))
        return path
    path = tmp_path / f"{name}_dd"  # a DatasetDict: the split is named as the sub-folder
    datasets.DatasetDict(train=ds.select([0]), test=ds).save_to_disk(str(path))
    return path / "test"


def _parquet(rows, path: Path) -> None:
    pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.Table.from_pylist(rows), path)


KINDS = ["jsonl", "parquet", "datasets", "datasetdict_split"]


@pytest.mark.parametrize("kind", KINDS)
def test_math_task_reads_every_format_through_the_mapping(tmp_path, kind):
    from r1.tasks import build_task

    path = _write(tmp_path, kind)
    assert data_format(path) == ("jsonl" if kind == "jsonl" else "parquet" if kind == "parquet" else "datasets")
    samples = build_task("math", str(path), fields=FIELDS).load("test")
    assert [(s.id, s.problem, s.answer) for s in samples] == [(r["uid"], r["question"], r["solution"]) for r in ROWS]
    # unmapped columns go to meta under their own names; the mapped ones are renamed, not copied
    assert [s.meta for s in samples] == [{"level": r["level"]} for r in ROWS]


@pytest.mark.parametrize("kind", KINDS)
def test_records_are_the_same_in_every_format(tmp_path, kind):
    rows = [{"q": "a", "c": ["x", "y"], "n": 3}, {"q": "b", "c": ["z", "w"], "n": 4}]
    got = [(str(w), rec) for w, rec in iter_records(_write(tmp_path, kind, rows), {"problem": "q"})]
    assert [rec for _, rec in got] == [{"c": ["x", "y"], "n": 3, "problem": "a"},
                                       {"c": ["z", "w"], "n": 4, "problem": "b"}]
    unit = ":" if kind == "jsonl" else ": row "
    assert [w.endswith(f"{unit}{i}") for i, (w, _) in enumerate(got, 1)] == [True, True]


def test_parquet_detected_by_magic_and_mapping_two_fields_to_one_column(tmp_path):
    path = tmp_path / "noext"
    _parquet([{"text": "hi"}], path)
    assert data_format(path) == "parquet"
    assert [r for _, r in iter_records(path, {"prompt": "text", "completion": "text"})] == [
        {"prompt": "hi", "completion": "hi"}
    ]


def test_gpqa_and_stdio_and_rm_pairs_through_a_mapping(tmp_path):
    from r1.tasks import build_task
    from r1.train.rm import read_pairs

    mc = _write(tmp_path, "parquet", [{"id": "m1", "q": "Pick", "options": ["no", "yes"], "gold": "B"}], "mc")
    (s,) = build_task("gpqa", str(mc), fields={"problem": "q", "choices": "options", "answer": "gold"}).load("test")
    assert (s.id, s.problem, s.answer, s.meta["choices"]) == ("m1", "Pick", "B", ["no", "yes"])

    code = _write(tmp_path, "datasets", [{"id": "c1", "statement": "Echo", "cases": [{"input": "1", "output": "1"}]}])
    (s,) = build_task("stdio", str(code), fields={"problem": "statement", "tests": "cases"}).load("test")
    assert (s.problem, s.meta["tests"]) == ("Echo", [{"input": "1", "output": "1"}])

    pairs = _write(tmp_path, "parquet", [{"x": "hi", "good": "hello", "bad": "go away", "kind": "rude"}], "pairs")
    assert read_pairs(pairs, {"prompt": "x", "chosen": "good", "rejected": "bad"}) == [
        {"prompt": "hi", "chosen": "hello", "rejected": "go away", "kind": "rude"}
    ]


def test_sft_records_from_parquet_with_its_field_names(tmp_path):
    from r1.config import SFTConfig
    from r1.train.sft import _source_records

    path = _write(tmp_path, "parquet", [{"ask": "1+1=", "reply": "2"}, {"ask": "2+2=", "reply": "4"}])
    cfg = SFTConfig()
    cfg.data.source, cfg.data.path = "jsonl", str(path)
    cfg.data.prompt_field, cfg.data.completion_field = "ask", "reply"
    assert _source_records(cfg, None) == [{"prompt": "1+1=", "completion": "2"}, {"prompt": "2+2=", "completion": "4"}]
    cfg.data.completion_field = "answer"
    with pytest.raises(R1Error, match=r"q\.parquet: no column for field 'answer' or 'text'; columns: ask, reply"):
        _source_records(cfg, None)


# ------------------------------------------------------------------------------------------------ hostile files
def _not_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    path = tmp_path / "fake.parquet"
    path.write_text('{"id": "a", "problem": "p", "answer": "1"}\n')
    return path, "fake.parquet: not a readable Parquet file"


def _cut_parquet(tmp_path):
    path = _write(tmp_path, "parquet", name="cut")
    path.write_bytes(path.read_bytes()[:-20])
    return path, "cut.parquet: not a readable Parquet file"


def _dataset_without_shards(tmp_path):
    path = _write(tmp_path, "datasets", name="gone")
    for f in path.glob("*.arrow"):
        f.unlink()
    return path, "gone_ds: not a readable datasets directory"


def _dataset_broken_state(tmp_path):
    path = _write(tmp_path, "datasets", name="broken")
    (path / "state.json").write_text("{")
    return path, "broken_ds: not a readable datasets directory"


def _dataset_dict_root(tmp_path):
    path = _write(tmp_path, "datasetdict_split", name="two").parent
    return path, "two_dd is a DatasetDict with splits train, test; name one: "


def _plain_directory(tmp_path):
    path = tmp_path / "folder"
    path.mkdir()
    (path / "data.jsonl").write_text("{}\n")
    return path, "folder is a directory, not a JSONL file, a Parquet file or a datasets directory"


HOSTILE = {
    "not_parquet": _not_parquet,
    "cut_parquet": _cut_parquet,
    "dataset_without_shards": _dataset_without_shards,
    "dataset_broken_state": _dataset_broken_state,
    "dataset_dict_root": _dataset_dict_root,
    "plain_directory": _plain_directory,
}


@pytest.mark.parametrize("kind", list(HOSTILE))
def test_hostile_data_is_one_line_and_nothing_written(tmp_path, capsys, monkeypatch, kind):
    monkeypatch.chdir(tmp_path)
    bad, expect = HOSTILE[kind](tmp_path)
    runs = tmp_path / "runs"
    capsys.readouterr()  # the progress bars of save_to_disk
    assert main(["grpo", "-c", SMOKE, "task.name=math", f"task.data={bad}", f"run.out_dir={runs}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and expect in err, err
    assert not runs.exists() or not any(runs.iterdir())


@pytest.mark.parametrize("kind", ["parquet", "datasets", "jsonl"])
def test_mapping_to_a_missing_column_is_one_line_and_nothing_written(tmp_path, capsys, monkeypatch, kind):
    monkeypatch.chdir(tmp_path)
    path, runs = _write(tmp_path, kind), tmp_path / "runs"
    capsys.readouterr()
    argv = ["grpo", "-c", SMOKE, "task.name=math", f"task.data={path}", f"run.out_dir={runs}",
            "task.params={fields: {id: uid, problem: questoin, answer: solution}}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and path.name in err, err
    if kind == "jsonl":
        assert "q.jsonl:1: missing field 'questoin' (fields maps 'problem' to it)" in err
    else:
        assert "fields maps 'problem' to column 'questoin', which the file does not have; " \
               "columns: uid, question, solution, level" in err
    assert not runs.exists() or not any(runs.iterdir())


def test_unmapped_required_column_names_the_columns(tmp_path):
    from r1.tasks import build_task

    path = _write(tmp_path, "datasets")
    with pytest.raises(R1Error, match=r"q_ds: no column for field 'id'; columns: uid, question, solution, level; "
                                      r"map a column to it with fields: \{id: COLUMN\} \(a task's params.fields\)"):
        build_task("math", str(path)).load("test")


@pytest.mark.parametrize("kind", ["parquet", "datasets"])
def test_a_bad_row_is_named(tmp_path, kind):
    from r1.tasks import build_task

    rows = [dict(ROWS[0]), dict(ROWS[1], question=None), dict(ROWS[2])]
    path = _write(tmp_path, kind, rows)
    with pytest.raises(R1Error, match=rf"{path.name}: row 2: field 'problem' must be a string, got NoneType"):
        build_task("math", str(path), fields=FIELDS).load("test")
    dup = [dict(ROWS[0]), dict(ROWS[1], uid="p1")]
    with pytest.raises(R1Error, match=r": row 2: duplicate id 'p1' \(first on row 1\)"):
        build_task("math", str(_write(tmp_path, kind, dup, "dup")), fields=FIELDS).load("test")


@pytest.mark.parametrize("fields", [["problem"], {"problem": 3}, {"": "q"}])
def test_a_malformed_mapping_is_refused(fields):
    from r1.tasks import build_task

    with pytest.raises(R1Error, match="task 'math': fields must map r1 field names to the file's column names"):
        build_task("math", "x.jsonl", fields=fields)


@pytest.mark.parametrize("module, kind", [("pyarrow", "parquet"), ("datasets", "datasets")])
def test_missing_package_says_what_to_install(tmp_path, monkeypatch, module, kind):
    path = tmp_path / "q.parquet"  # the import fails before the file is opened, so any such file will do
    if kind == "parquet":
        path.write_bytes(b"PAR1")
    else:
        path = tmp_path / "q_ds"
        path.mkdir()
        (path / "state.json").write_text("{}")
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # `import module` raises ImportError
    with pytest.raises(R1Error, match=r"needs .*pip install 'r1\[data\]'") as e:
        list(iter_records(path))
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_config_accepts_a_datasets_directory_and_names_a_plain_one(tmp_path):
    from r1.config import GRPOConfig, validate

    cfg = GRPOConfig()
    cfg.task.name, cfg.task.data = "math", str(_write(tmp_path, "datasets"))
    validate(cfg)
    cfg.task.data = str(_plain_directory(tmp_path)[0])
    with pytest.raises(R1Error, match=r"task\.data=.*folder is a directory, not a JSONL file"):
        validate(cfg)
