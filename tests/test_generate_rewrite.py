"""``r1 generate``'s rewrites (``r1.generate_rewrite``): R1-Zero samples in R1's readable format.

Run: python -m pytest tests/test_generate_rewrite.py -q   (one tiny random-model generate run; a few seconds)
"""

import json
from pathlib import Path

import pytest

import r1.generate_data as generate_data
from r1.cli import main
from r1.config import GenerateConfig, load_config
from r1.data.sample import Sample
from r1.data.templates import READABLE_TOKEN as T
from r1.data.templates import render_r1_readable, render_r1_zero
from r1.generate_rewrite import REWRITES, rewrite_records
from r1.rewards.rules import readable_format_reward
from r1.tasks.addition import AdditionTask

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "configs" / "generate" / "smoke.yaml")


def rec(completion, prompt="4721+3689", problem="4721+3689", id_="a", index=0):
    return {"id": id_, "index": index, "problem": problem, "prompt": prompt, "completion": completion,
            "score": 1.0, "num_tokens": 9, "filters": {"correct": True}}


@pytest.mark.parametrize(
    "completion, expected",
    [
        ("<think>1+9+0=10 then 2+8+1=11</think><answer>8410</answer>", f"{T}1+9+0=10 then 2+8+1=11{T}The answer is 8410."),
        (" <think> a\nb </think> <answer> 8410 </answer>", f" {T}a\nb{T}The answer is 8410."),  # lead kept, parts stripped
        ("<think>x</think><answer>8410</answer><|im_end|>", f"{T}x{T}The answer is 8410."),  # EOS text dropped
        ("<think></think><answer>8410</answer>", None),  # no reasoning to keep
        ("<think>x</think><answer> </answer>", None),  # blank answer
        ("<think>x</think><answer>1</answer><answer>2</answer>", None),  # two answers: not the strict format
        ("<think>x</think><answer>8410</answer> and more", None),
        ("8410", None),
        (f"{T}x{T}The answer is 8410.", None),  # already readable: not R1-Zero
    ],
)
def test_readable_rewrite_hand_cases(completion, expected):
    out = REWRITES.get("readable")(rec(completion))
    assert (out and out["completion"]) == expected
    if out:
        assert readable_format_reward(out["completion"], Sample("a", "4721+3689", "8410")) == 1.0


def test_rewritten_addition_samples_still_grade():
    t = AdditionTask(num_train=10, num_test=5)
    s = Sample("a", "4721+3689", "8410")
    out = REWRITES.get("readable")(rec("<think>1+9+0=10</think><answer>8410</answer>"))
    assert t.grade(out["completion"], s) == 1.0


def test_boxed_summary():
    out = REWRITES.get("readable_boxed")(rec("<think>x</think><answer>\\frac{1}{2}</answer>"))
    assert out["completion"] == f"{T}x{T}The answer is $\\boxed{{\\frac{{1}}{{2}}}}$."
    from r1.rewards.math_grader import grade_math

    assert grade_math(out["completion"], "0.5") == 1.0


def test_an_r1_zero_prompt_becomes_the_readable_prompt_and_others_stay():
    q = "What is 2+2?"
    out = REWRITES.get("readable")(rec("<think>x</think><answer>4</answer>", prompt=render_r1_zero(q), problem=q))
    assert out["prompt"] == render_r1_readable(q)
    plain = REWRITES.get("readable")(rec("<think>x</think><answer>4</answer>", prompt=q, problem=q))
    assert plain["prompt"] == q
    other = REWRITES.get("readable")(rec("<think>x</think><answer>4</answer>", prompt=render_r1_zero(q) + " Hint.",
                                         problem=q))
    assert other["prompt"] == render_r1_zero(q) + " Hint."


def test_rewrite_records_counts_and_verdicts():
    recs = [rec("<think>x</think><answer>1</answer>", index=0), rec("nope", index=1),
            rec("<think></think><answer>1</answer>", index=2)]
    before = [{"name": "correct", "params": {}, "in": 5, "kept": 3, "dropped": 2}]
    kept, counts = rewrite_records(recs, before, "readable")
    assert [r["index"] for r in kept] == [0]
    assert counts[-1] == {"name": "rewrite:readable", "params": {}, "in": 3, "kept": 1, "dropped": 2}
    assert [r["filters"]["rewrite:readable"] for r in recs] == [True, False, False]
    assert kept[0]["filters"] == {"correct": True, "rewrite:readable": True}
    assert rewrite_records(recs, before, "") == (recs, before)


def test_generate_with_rewrite_writes_readable_data_and_counts_it(tmp_path, monkeypatch):
    # the sampler is replaced by fixed completions (a random-init model writes no R1-Zero format): index 0 parses,
    # index 1 does not
    def fake_generate(engine, tok, task, samples, params, k, **kw):
        return [[{"completion": f"<think>{s.problem}</think><answer>{s.answer}</answer>" if j == 0 else "junk",
                  "num_tokens": 5, "finish_reason": "stop", "score": 1.0} for j in range(k)] for s in samples]

    monkeypatch.setattr(generate_data, "generate", fake_generate)
    cfg = load_config(GenerateConfig, SMOKE, [f"run.out_dir={tmp_path}", "run.progress=false", "rewrite=readable",
                                              "filters=[{name: correct}]"])
    summary = generate_data.run_generate(cfg)
    run = tmp_path / "generate_smoke"
    assert summary["filters"][-1] == {"name": "rewrite:readable", "params": {}, "in": 16, "kept": 8, "dropped": 8}
    assert summary["kept"] == 8 and summary["samples"] == summary["kept"] + sum(c["dropped"] for c in summary["filters"])
    assert json.loads((run / "summary.json").read_text()) == summary
    data = [json.loads(x) for x in (run / "data.jsonl").read_text().splitlines()]
    assert len(data) == 8
    for d in data:
        a, b = d["prompt"].split("+")
        assert d["completion"] == f"{T}{d['prompt']}{T}The answer is {int(a) + int(b)}."


def test_an_unknown_rewrite_is_one_line_and_writes_nothing(tmp_path, capsys):
    assert main(["generate", "-c", SMOKE, f"run.out_dir={tmp_path / 'runs'}", "rewrite=readble"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "rewrite='readble': unknown rewrite; valid: readable" in err, err
    assert not (tmp_path / "runs").exists()
