"""The shipped cold-start set ``data/cold_start/addition_readable.jsonl``: r1 sft reads it, every record is in R1's
readable format and correct, and ``scripts/make_cold_start.py`` makes exactly it.

Run: ``python -m pytest tests/data/test_cold_start_set.py -q``
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from r1.config import SFTConfig, load_config
from r1.data.sample import Sample
from r1.rewards.rules import readable_format_reward
from r1.tasks.addition import AdditionTask, is_mixed_language
from r1.train.sft import load_records

REPO = Path(__file__).resolve().parents[2]
COLD_START = REPO / "data" / "cold_start" / "addition_readable.jsonl"


def _script():
    spec = importlib.util.spec_from_file_location("make_cold_start", REPO / "scripts" / "make_cold_start.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_r1_sft_reads_the_set_and_every_record_is_readable_and_correct():
    cfg = load_config(SFTConfig, None, ["data.source=jsonl", f"data.path={COLD_START}"])
    records = load_records(cfg, tokenizer=None)
    assert 200 <= len(records) <= 500 and COLD_START.stat().st_size < 200_000
    task = AdditionTask(num_train=10, num_test=5)
    for r in records:
        a, b = r["prompt"].split("+")
        sample = Sample("x", r["prompt"], str(int(a) + int(b)))
        assert readable_format_reward(r["completion"], sample) == 1.0, r
        assert task.grade(r["completion"], sample) == 1.0, r
        assert not is_mixed_language(r["completion"]), r
    assert sum(" wait " in r["completion"] for r in records) > 0  # some reflections, as the paper's long CoTs


def test_the_script_makes_exactly_the_shipped_file(tmp_path, capsys):
    out = tmp_path / "cold.jsonl"
    _script().main(["--out", str(out)])
    assert out.read_bytes() == COLD_START.read_bytes()
    assert "500 records" in capsys.readouterr().out


def test_wrong_and_mixed_traces_are_dropped():
    records, counts = _script().make_records({"digits": 3, "lang_mix": 0.5, "cot_error_rate": 0.3}, 50, 0,
                                             {"cot": 1.0}, "plain", "train")
    assert counts["kept"] == len(records) == 50
    assert counts["dropped_wrong"] > 0 and counts["dropped_mixed"] > 0
    assert counts["drawn"] == 50 + counts["dropped_wrong"] + counts["dropped_mixed"]
