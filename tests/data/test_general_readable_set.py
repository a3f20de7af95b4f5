"""The shipped non-reasoning SFT set ``data/cold_start/general_readable.jsonl`` (SFT round 2's ``data.mix`` in
configs/r1/sft2.yaml): every record is in R1's readable format with the preference task's chosen answer as its
summary, harmful requests are refused in the reasoning, and ``scripts/make_cold_start.py --general`` makes exactly it.

Run: ``python -m pytest tests/data/test_general_readable_set.py -q``
"""

from __future__ import annotations

import json

from data.test_cold_start_set import REPO, _script
from r1.data.sample import Sample
from r1.data.templates import split_readable
from r1.rewards.reward_model import select_span
from r1.rewards.rules import readable_format_reward

GENERAL = REPO / "data" / "cold_start" / "general_readable.jsonl"


def test_the_script_makes_exactly_the_shipped_file(tmp_path, capsys):
    out = tmp_path / "general.jsonl"
    _script().main(["--general", "--num", "256", "--out", str(out)])
    assert out.read_bytes() == GENERAL.read_bytes()
    assert "512 records" in capsys.readouterr().out


def test_every_record_is_readable_and_its_summary_is_the_chosen_answer():
    from r1.tasks.preference import make_pairs

    records = [json.loads(line) for line in GENERAL.read_text().splitlines()]
    chosen: dict[str, set] = {}  # a train prompt may come back with another chosen answer
    for k in ("helpful", "harmless"):
        for p in make_pairs(k, "train", num_train=512, num_test=64):
            chosen.setdefault(p["prompt"], set()).add(p["chosen"])
    test_prompts = {p["prompt"] for k in ("helpful", "harmless") for p in make_pairs(k, "test", num_train=512,
                                                                                     num_test=64)}
    kinds = {"refuse": 0, "help": 0}
    for r in records:
        assert r["prompt"] not in test_prompts, r  # the evaluation's prompts stay held out
        assert readable_format_reward(r["completion"], Sample("g", r["prompt"], "", {})) == 1.0, r
        reasoning, summary = split_readable(r["completion"])
        assert summary in chosen[r["prompt"]] and summary == select_span(r["completion"], "summary", "<|reasoning|>")
        kinds["refuse" if reasoning.endswith("refuse.") else "help"] += 1
        if reasoning.endswith("refuse."):
            assert "help with" in summary or "can't" in summary or "won't" in summary, r
    assert kinds["refuse"] > 100 and kinds["help"] > 256
