"""The aha tracker for every task: ``task/reflection`` (share of completions with a reflection word) and the response
length, in training metrics and in ``r1 eval`` results, with a configurable word list.

Run: ``python -m pytest tests/tasks/test_reflection.py -q``
"""

from __future__ import annotations

import json

import pytest
import torch

from r1.config import EvalConfig, GRPOConfig, load_config
from r1.data.sample import Sample
from r1.errors import R1Error
from r1.eval.grade import grade_benchmark
from r1.tasks import build_task
from r1.tasks.addition import REFLECTION_MARKERS
from r1.tasks.base import REFLECTION_WORDS, has_reflection_word


@pytest.mark.parametrize("text, expected", [
    ("<think>63 - 35 = 28. Wait, 44 + 19 = 63.</think>", True),
    ("WAIT", True),                                  # any case
    ("let me check: 3 * 4 = 12", True),             # a phrase
    ("Let me  check", False),                        # a phrase is matched as written (one space)
    ("I should re-check the sum", True),             # hyphenated
    ("double-check it, then double check again", True),
    ("I need to verify this", True),
    ("that was a mistake", True),
    ("await the result", False),                     # whole words only: not inside "await"
    ("waiting for the bus", False),                  # nor at the start of "waiting"
    ("verification", False),
    ("checking the checklist", False),               # "check" alone is not a reflection word
    ("however, but, error", False),                  # the Nature list's words left out of the default
    ("", False),
])
def test_default_words_hand_cases(text, expected):
    assert has_reflection_word(text) is expected


def test_a_configured_list_replaces_the_default():
    assert has_reflection_word("but then", ["but"]) and not has_reflection_word("wait", ["but", "hmm"])
    assert has_reflection_word("a.b?", ["a.b"]) and not has_reflection_word("axb", ["a.b"])  # regex characters quoted


COMPLETIONS = [  # 2 of 5 reflect by the default list
    "<think>44 + 19 = 63, 63 - 35 = 28</think> <answer>44 + 19 - 35</answer>",
    "<think>44 + 35 = 79. Wait, that overshoots: 44 + 19 = 63</think> <answer>44 + 19 - 35</answer>",
    "<think>Let me verify: 63 - 35 = 28</think> <answer>(44 + 19) - 35</answer>",
    "<think>hmm, 44 - 19 + 35 is 60</think> <answer>44 - 19 + 35</answer>",
    "<answer>28</answer>",
]


def test_every_task_reports_reflection(tmp_path):
    countdown = build_task("countdown", num_train=0, num_test=0)
    assert [countdown.completion_metrics(c)["reflection"] for c in COMPLETIONS] == [0.0, 1.0, 1.0, 0.0, 0.0]
    data = tmp_path / "m.jsonl"
    data.write_text(json.dumps({"id": "p", "problem": "1+1?", "answer": "2"}) + "\n")
    for task in (build_task("math", data=str(data)), build_task("preference_prompts", num_train=2, num_test=1)):
        assert task.completion_metrics("Wait. 2") == {"reflection": 1.0}
        assert task.completion_metrics("2") == {"reflection": 0.0}
    # build_task's reflection_words replaces the list; "hmm" now counts and "wait" does not
    hmm = build_task("countdown", num_train=0, num_test=0, reflection_words=["hmm"])
    assert [hmm.completion_metrics(c)["reflection"] for c in COMPLETIONS] == [0.0, 0.0, 0.0, 1.0, 0.0]


def test_addition_keeps_its_own_markers_unless_configured():
    task = build_task("addition", digits=2, num_train=4, num_test=2)
    assert task.reflection_words == REFLECTION_MARKERS != REFLECTION_WORDS
    c = "<think>1+2+0=03 verify 1+2+0=03</think><answer>3</answer>"  # "verify" is not an addition marker
    assert task.completion_metrics(c)["reflection"] == 0.0
    assert task.completion_metrics(c.replace("verify", "wait"))["reflection"] == 1.0
    mine = build_task("addition", digits=2, num_train=4, num_test=2, reflection_words=["verify"])
    assert mine.completion_metrics(c)["reflection"] == 1.0
    assert mine.completion_metrics(c)["mode/reflect"] == 0.0  # the corpus modes keep the corpus markers


def test_eval_results_have_reflection_and_length():
    task = build_task("countdown", num_train=0, num_test=0)
    s = Sample("cd/0", "...", "(44 + 19) - 35", {"numbers": [44, 19, 35], "target": 28})
    recs = [{"completion": c, "num_tokens": len(c) // 2} for c in COMPLETIONS]
    _, m = grade_benchmark(task, [s], {"cd/0": recs})
    assert m["task/reflection"] == pytest.approx(2 / 5)
    assert m["pass@1"] == pytest.approx(3 / 5)  # completions 0-2 are right
    assert m["length_chars"] == pytest.approx(sum(len(c) for c in COMPLETIONS) / 5)
    assert m["length_tokens"] == pytest.approx(sum(len(c) // 2 for c in COMPLETIONS) / 5)


def test_eval_config_words_reach_the_benchmark_tasks():
    from r1.eval.runner import _load_benchmark

    cfg = load_config(EvalConfig, None, ["benchmarks=[{task: countdown, params: {num_train: 0, num_test: 3}}]",
                                         "eval.reflection_words=[hmm]"])
    task, samples = _load_benchmark(cfg.benchmarks[0], cfg.eval.reflection_words)
    assert len(samples) == 3 and task.reflection_words == ("hmm",)
    default = load_config(EvalConfig, None, ["benchmarks=[{task: countdown, params: {num_train: 0, num_test: 3}}]"])
    assert _load_benchmark(default.benchmarks[0], default.eval.reflection_words)[0].reflection_words == REFLECTION_WORDS


@pytest.mark.parametrize("value", ["[]", "['wait', '']", "['  ']"])
def test_bad_word_lists_are_one_line_errors(value):
    with pytest.raises(R1Error, match="reflection_words") as e:
        load_config(GRPOConfig, None, [f"task.reflection_words={value}"])
    assert "\n" not in str(e.value)
    with pytest.raises(R1Error, match="reflection_words"):
        load_config(EvalConfig, None, [f"eval.reflection_words={value}"])


def test_training_metrics_have_reflection_and_length_for_any_task(tmp_path):
    from r1.train.grpo import GRPOTrainer, Rollouts

    cfg = load_config(GRPOConfig, None, [
        "model.path=tiny-qwen2", "task.name=countdown", "task.params={num_train: 8, num_test: 2}",
        "task.reflection_words=[wait, hmm]", "rewards=[{name: accuracy}]", "grpo.prompts_per_step=1",
        "grpo.samples_per_prompt=5", f"run.out_dir={tmp_path}", "run.progress=false", "run.threads=1",
    ])
    trainer = GRPOTrainer(cfg)
    lengths = [3, 5, 7, 9, 11]
    r = Rollouts(prompt_ids=[[1]] * 5, completion_ids=[[0] * n for n in lengths], old_logps=[torch.zeros(n) for n in
                 lengths], finish_reasons=["stop"] * 5, texts=COMPLETIONS, sample_idx=[0] * 5,
                 rewards=torch.zeros(5), reward_parts={"accuracy": [0.0] * 5})
    m = trainer.step_metrics(r, torch.zeros(5))
    assert m["task/reflection"] == pytest.approx(2 / 5)  # "Wait, that overshoots" and "hmm, ..."
    assert m["response_length/mean"] == pytest.approx(7.0) and m["response_length/max"] == 11.0
