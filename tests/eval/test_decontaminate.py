"""n-gram decontamination (r1.eval.decontaminate). Run: python -m pytest tests/eval/test_decontaminate.py -q"""

import json

import pytest

from r1.errors import R1Error
from r1.eval.decontaminate import decontaminate, ngrams, words


def test_words_and_ngrams():
    assert words("Find $\\frac{1}{2}$ of X=3.") == ["find", "frac", "1", "2", "of", "x", "3"]
    assert ngrams("a b c d", 3) == {("a", "b", "c"), ("b", "c", "d")}
    assert ngrams("Compute $\\dbinom{8}{4}$.", 8) == {("compute", "dbinom", "8", "4")}  # short: one gram
    assert ngrams("  $ $ ", 8) == set()


def test_overlap_short_problems_and_filtered_copy(tmp_path):
    bench = {"b": [("long", "one two three four five six seven eight nine"), ("short", "Compute $\\dbinom{8}{4}$.")]}
    train = tmp_path / "t.jsonl"
    rows = [
        {"problem": "x one two three four five six seven eight y"},  # shares an 8-gram with "long"
        {"problem": "Please compute \\dbinom{8}{4} now"},  # holds the whole short problem
        {"problem": "one two three four five six seven"},  # only 7 words in common
        {"question": "not read", "problem": "compute 8 choose 4"},
    ]
    train.write_text("".join(json.dumps(r) + "\n" for r in rows))
    rep = decontaminate(train, bench, n=8, out_path=tmp_path / "clean.jsonl")
    assert rep["train"]["contaminated_lines"] == [1, 2]
    assert rep["benchmarks"]["b"] == {"problems": 2, "contaminated_problems": 2, "train_records_hit": 2,
                                      "ids": ["long", "short"]}
    kept = [json.loads(x) for x in (tmp_path / "clean.jsonl").read_text().splitlines()]
    assert kept == rows[2:]
    rep13 = decontaminate(train, bench, n=13)
    assert rep13["train"]["contaminated_lines"] == [2]  # the long problem is now shorter than n: one 9-gram


def test_fields_and_errors(tmp_path):
    train = tmp_path / "t.jsonl"
    train.write_text(json.dumps({"question": "one two three four five six seven eight"}) + "\n")
    bench = {"b": [("p", "one two three four five six seven eight")]}
    with pytest.raises(R1Error, match=r"t\.jsonl:1: no string field among 'problem'"):
        decontaminate(train, bench)
    assert decontaminate(train, bench, fields=["question"])["train"]["contaminated"] == 1
    with pytest.raises(R1Error, match="would overwrite"):
        decontaminate(train, bench, fields=["question"], out_path=train)
