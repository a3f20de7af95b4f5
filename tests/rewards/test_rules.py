"""Rule-based rewards: format (strict R1-Zero) and accuracy (the task's grader); the composite reward's time budget.

Run: pytest tests/rewards/test_rules.py -q
"""

import time

import pytest

from r1.data.sample import Sample
from r1.errors import R1Error
from r1.rewards import REWARDS, CompositeReward
from r1.rewards.rules import accuracy_reward, format_reward
from r1.tasks.math import MathTask

SAMPLE = Sample(id="s", problem="What is 2+2?", answer="4")

# (completion, expected format reward)
FORMAT_CASES = [
    (" <think>2+2=4</think> <answer>4</answer>", 1.0),  # the usual shape after "Assistant:"
    ("<think>2+2=4</think><answer>4</answer>", 1.0),
    ("<think>\nadd\n</think>\n\n<answer>\n4\n</answer>\n", 1.0),
    ("<think></think> <answer>4</answer>", 1.0),  # empty reasoning is allowed; the answer is not
    (" <think>x</think> <answer>4</answer><|endoftext|>", 1.0),  # trailing EOS text
    (" <think>x</think> <answer>4</answer> <|im_end|>", 1.0),
    # bad
    ("<think>x</think> <answer></answer>", 0.0),  # empty answer
    ("<think>x</think> <answer>  \n </answer>", 0.0),  # blank answer
    ("<answer>4</answer>", 0.0),  # missing think
    ("<think>x</think>", 0.0),  # missing answer
    ("<think>x <answer>4</answer>", 0.0),  # missing </think>
    ("<think>x</think> <answer>4", 0.0),  # missing </answer>
    ("<think>x</think> <answer>4</answer> so 4", 0.0),  # text after </answer>
    ("Sure! <think>x</think> <answer>4</answer>", 0.0),  # text before <think>
    ("<think>x</think> and so <answer>4</answer>", 0.0),  # text between the blocks
    ("<think>x</think> <answer>3</answer><answer>4</answer>", 0.0),  # two answer blocks
    ("<think>a</think><think>b</think><answer>4</answer>", 0.0),  # two think blocks
    ("<think>a<think>b</think></think><answer>4</answer>", 0.0),  # nested think
    ("<think>x</think><answer><answer>4</answer></answer>", 0.0),  # nested answer
    ("<think>x <answer>4</answer></think> <answer>4</answer>", 0.0),  # answer tags inside think
    ("<answer>4</answer> <think>x</think>", 0.0),  # wrong order
    ("<think>x</think> <answer>4</answer><|endoftext|><|endoftext|>", 0.0),  # only one EOS is stripped
    ("", 0.0),
]


@pytest.mark.parametrize("completion, expected", FORMAT_CASES)
def test_format_reward(completion, expected):
    assert format_reward(completion, SAMPLE) == expected


def test_format_reward_custom_eos():
    c = "<think>x</think> <answer>4</answer>[EOS]"
    assert format_reward(c, SAMPLE) == 0.0
    assert format_reward(c, SAMPLE, eos_texts=["[EOS]"]) == 1.0


def test_unknown_params_are_errors():
    with pytest.raises(R1Error, match="format"):
        format_reward("", SAMPLE, eos="x")
    with pytest.raises(R1Error, match="accuracy"):
        accuracy_reward("", SAMPLE, task=None, strict=True)


class RecordingTask:
    def __init__(self):
        self.calls = []

    def grade(self, completion, sample):
        self.calls.append((completion, sample.id))
        return 0.25


def test_accuracy_reward_is_task_grade():
    task = RecordingTask()
    assert accuracy_reward("c", SAMPLE, task=task) == 0.25
    assert task.calls == [("c", "s")]


def test_registered_rewards_in_a_composite(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"id": "s", "problem": "What is 2+2?", "answer": "4"}\n', encoding="utf-8")
    task = MathTask(data=str(data))
    sample = task.load("train")[0]
    assert REWARDS.get("accuracy") is accuracy_reward and REWARDS.get("format") is format_reward
    reward = CompositeReward([("accuracy", 1.0, {}), ("format", 0.5, {})], task=task)
    assert reward(" <think>2+2</think> <answer>4</answer>", sample) == (1.5, {"accuracy": 1.0, "format": 1.0})
    assert reward(" <think>2+2</think> <answer>5</answer>", sample) == (0.5, {"accuracy": 0.0, "format": 1.0})
    assert reward("it is \\boxed{4}", sample) == (1.0, {"accuracy": 1.0, "format": 0.0})


def test_accuracy_reward_skips_sandbox_failures():
    from r1.data.sample import Sample
    from r1.rewards.rules import accuracy_reward
    from r1.sandbox.core import SandboxError

    class Broken:
        def grade(self, completion, sample):
            raise SandboxError("bwrap failed")

    assert accuracy_reward("x", Sample("1", "p", "a"), task=Broken()) is None


class SlowTask:
    """Grades in 0.2 s; a batch of its rewards may take 0.1 s per completion on average."""

    grading_budget_s = 0.1

    def grade(self, completion, sample):
        time.sleep(0.2)
        return 1.0


def test_a_batch_of_rewards_keeps_to_its_budget(monkeypatch, caplog):
    from r1.rewards import base

    monkeypatch.setattr(base, "MIN_BATCH_BUDGET_S", 0.5)
    reward = CompositeReward([("accuracy", 1.0, {}), ("format", 0.5, {})], task=SlowTask())
    t0 = time.monotonic()
    with caplog.at_level("WARNING", logger="r1.rewards.base"), reward.budget(10):  # max(0.5, 10 x 0.1) = 1 s
        out = [reward("no format", SAMPLE) for _ in range(20)]
    assert time.monotonic() - t0 < 2.5  # ~1.2 s, not 20 x 0.2 s (room for a loaded machine)
    graded = [o for o in out if o[1]["accuracy"] is not None]
    assert 3 <= len(graded) <= 6 and out[: len(graded)] == graded  # the first ones, until the budget ran out
    assert all(o == (0.0, {"accuracy": None, "format": None}) for o in out[len(graded) :])
    skipped = 20 - len(graded)
    assert reward.num_over_budget == skipped
    assert f"ran out; {skipped} of them scored 0 without grading" in caplog.text
    assert base.time_left() is None and reward("x", SAMPLE)[1]["accuracy"] == 1.0  # no budget outside the block


def test_no_budget_without_a_per_completion_budget(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text('{"id": "s", "problem": "What is 2+2?", "answer": "4"}\n', encoding="utf-8")
    assert MathTask(data=str(data)).grading_budget_s == 1.0
    assert MathTask(data=str(data), grading_budget_s=0).grading_budget_s is None  # 0 = unbounded
    reward = CompositeReward([("accuracy", 1.0, {})], task=RecordingTask())
    with reward.budget(3):
        from r1.rewards.base import time_left

        assert time_left() is None
    with pytest.raises(R1Error, match="grading_budget_s"):
        MathTask(data=str(data), grading_budget_s=-1)


@pytest.mark.parametrize(
    "completion, expected",
    [
        (" <think>2+2=4</think> <answer>4</answer>", 1.0),
        ("<answer>4</answer> <think>x</think> trailing", 1.0),  # order is format's business, not this reward's
        ("x</think> 4", 0.25),
        ("<think><think> </answer>", 0.25),  # a repeated tag earns nothing
        ("<answer><answer></answer></answer>", 0.0),
        ("no tags at all", 0.0),
    ],
)
def test_format_tags_reward(completion, expected):
    from r1.rewards.rules import format_tags_reward

    assert REWARDS.get("format_tags") is format_tags_reward
    assert format_tags_reward(completion, SAMPLE) == expected
    with pytest.raises(R1Error, match="format_tags"):
        format_tags_reward(completion, SAMPLE, weight=2)
