"""The ``reward_model`` reward: span selection on hand strings, scores equal to the RM's own, scale/shift, one load
per RM directory, bad paths and parameters.

Run: ``python -m pytest tests/rewards/test_reward_model.py -q``.
"""

import pytest
import torch

from r1.config import GRPOConfig, load_config
from r1.data.sample import Sample
from r1.errors import R1Error
from r1.rewards import REWARDS, CompositeReward
from r1.rewards import reward_model as rm
from r1.rewards.reward_model import reward_model_reward, select_span


@pytest.mark.parametrize(
    "completion, span, expected",
    [
        ("<think>2+2=4</think> It is 4.", "summary", "It is 4."),
        ("<think>2+2=4</think> It is 4.", "response", "<think>2+2=4</think> It is 4."),
        ("  <think>a</think>\n\nThe answer is 4.<|endoftext|>", "summary", "The answer is 4."),
        ("<think>a</think> It is 4.<|im_end|>", "response", "<think>a</think> It is 4."),
        ("<think>unfinished reasoning", "summary", ""),  # no summary: never the reasoning
        ("<think>unfinished reasoning", "response", "<think>unfinished reasoning"),
        ("<think>x</think> y </think> z", "summary", "z"),  # after the LAST separator
        ("<think>x</think>", "summary", ""),
        ("", "summary", ""),
        ("", "response", ""),
    ],
)
def test_select_span_hand_cases(completion, span, expected):
    assert select_span(completion, span) == expected


def test_select_span_with_a_configured_separator():
    # the readable format |special_token|<reasoning>|special_token|<summary>: the summary follows the 2nd token
    text = "|special_token|first I add|special_token|The sum is 9."
    assert select_span(text, "summary", "|special_token|") == "The sum is 9."
    assert select_span(text, "summary") == ""  # the default </think> is not in it
    with pytest.raises(R1Error, match="unknown span 'summry'; valid: summary, response"):
        select_span(text, "summry")
    with pytest.raises(R1Error, match="non-empty separator"):
        select_span(text, "summary", "")


@pytest.fixture(scope="module")
def rm_dir(tmp_path_factory):
    """A tiny RM (random-init head on the tiny preset) saved as r1 rm saves it."""
    from r1.models import save

    model, tok = rm.load_sequence_classifier("tiny-qwen2", seed=1)
    torch.nn.init.normal_(model.score.weight, std=1.0)  # scores that differ between texts
    model.config.r1_reward_model = {"separator": "\n", "max_length": 64}
    return save(model, tok, tmp_path_factory.mktemp("rm") / "model")


def _direct_score(path, text):
    """The score from transformers alone: the text as one unpadded row (left-truncated to the RM's 64 tokens)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    ids = tok(text, add_special_tokens=False).input_ids[-64:]
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0, 0].item()


def test_reward_is_the_rm_score_of_the_chosen_span(rm_dir):
    sample = Sample(id="0", problem="What is 2 + 2?", answer="4")
    completion = "<think>2 plus 2 makes 4</think> The answer is 4."
    summary = reward_model_reward(completion, sample, path=str(rm_dir), span="summary")
    response = reward_model_reward(completion, sample, path=str(rm_dir), span="response")
    assert summary == pytest.approx(_direct_score(rm_dir, "What is 2 + 2?\nThe answer is 4."), abs=1e-5)
    assert response == pytest.approx(_direct_score(rm_dir, f"What is 2 + 2?\n{completion}"), abs=1e-5)
    assert summary != pytest.approx(response)
    scaled = reward_model_reward(completion, sample, path=str(rm_dir), span="summary", scale=2.0, shift=-1.0)
    assert scaled == pytest.approx(2.0 * summary - 1.0, abs=1e-5)
    # a text over max_length keeps its end: the score is read at the last token
    long = "x" * 200 + " The answer is 4."
    assert reward_model_reward(long, sample, path=str(rm_dir), span="response") == pytest.approx(
        _direct_score(rm_dir, f"What is 2 + 2?\n{long}"), abs=1e-5)


def test_batched_scores_match_one_by_one(rm_dir):
    prompts = ["a", "What is 12 + 30?", "q"]
    responses = ["short", "42. The answer is 42 and that is a longer response.", ""]
    batch = rm.score_texts(rm_dir, prompts, responses)
    single = [rm.score_texts(rm_dir, [p], [r])[0] for p, r in zip(prompts, responses)]
    assert batch == pytest.approx(single, abs=1e-5)


def test_rm_is_loaded_once_per_directory(rm_dir, monkeypatch):
    calls = []
    real = rm.load_sequence_classifier
    monkeypatch.setattr(rm, "load_sequence_classifier", lambda *a, **k: calls.append(a) or real(*a, **k))
    rm._load_cached.cache_clear()
    sample = Sample(id="0", problem="p", answer="")
    for c in ["<think>a</think> one", "<think>b</think> two", "three"]:
        reward_model_reward(c, sample, path=str(rm_dir), span="response")
    assert len(calls) == 1


def test_registered_and_used_by_the_composite(rm_dir):
    assert REWARDS.get("reward_model") is reward_model_reward
    reward = CompositeReward([("reward_model", 0.5, {"path": str(rm_dir), "span": "response"})], task=None)
    sample = Sample(id="0", problem="p", answer="")
    total, parts = reward("some answer", sample)
    assert total == pytest.approx(0.5 * parts["reward_model"])


def test_bad_params_and_paths(tmp_path, rm_dir):
    sample = Sample(id="0", problem="p", answer="")
    with pytest.raises(R1Error, match="needs params.path"):
        reward_model_reward("x", sample)
    with pytest.raises(R1Error, match="is not a reward-model directory"):
        reward_model_reward("x", sample, path=str(tmp_path))
    with pytest.raises(R1Error, match="unknown span"):
        reward_model_reward("x", sample, path=str(rm_dir), span="all")
    from r1.models import build_preset, save

    lm_dir = save(*build_preset("tiny-qwen2"), tmp_path / "lm")
    with pytest.raises(R1Error, match=r"holds a Qwen2ForCausalLM, not a reward model .*r1 rm"):
        reward_model_reward("x", sample, path=str(lm_dir))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(R1Error, match="cannot load .*broken as a sequence-classification model"):
        reward_model_reward("x", sample, path=str(broken))
    # a misspelled parameter is caught when the GRPO config is validated, naming the valid ones
    with pytest.raises(R1Error, match="reward 'reward_model' has no parameter spam; valid: path, span, separator"):
        load_config(GRPOConfig, None, ["rewards=[{name: reward_model, params: {path: x, spam: summary}}]"])


def test_check_params_for_config_validation(tmp_path, rm_dir):
    check = reward_model_reward.check_params

    def found(params, environment):
        return [(k, why) for k, _, why in check(params, environment)]

    assert found({"path": str(rm_dir), "span": "response"}, False) == []
    assert found({"path": str(rm_dir), "span": "response"}, True) == []
    assert found({"path": str(rm_dir), "span": "all"}, False) == [("span", "unknown span; valid: summary, response")]
    assert found({"path": str(rm_dir), "separator": " "}, False)[0][0] == "separator"
    assert found({}, False) == []  # a shipped config may leave the path to its user ...
    assert "needs the reward-model directory" in found({}, True)[0][1]  # ... a run may not
    assert "not a reward-model directory" in found({"path": str(tmp_path)}, True)[0][1]


def test_a_bad_reward_model_fails_validation_before_a_run_directory_is_made(tmp_path, rm_dir):
    from r1.config import validate
    from r1.train.grpo import train_grpo as train

    out = tmp_path / "runs"
    bad = load_config(GRPOConfig, None, [
        f"run.out_dir={out}", "run.steps=1", "model.path=tiny-qwen2",
        f"rewards=[{{name: accuracy}}, {{name: reward_model, params: {{path: {tmp_path / 'nowhere'}}}}}]",
    ])
    with pytest.raises(R1Error, match=r"rewards\.1\.params\.path=.*nowhere.*not a reward-model directory"):
        train(bad)
    assert not out.exists()
    with pytest.raises(R1Error, match=r"rewards\.1\.params\.span='whole': unknown span"):
        load_config(GRPOConfig, None, [f"rewards=[{{name: accuracy}}, {{name: reward_model, params: {{path: {rm_dir}, span: whole}}}}]"])
    good = load_config(GRPOConfig, None, [f"rewards=[{{name: reward_model, params: {{path: {rm_dir}}}}}]"])
    validate(good)  # a trained RM passes


def test_readable_format_params_are_checked_with_the_config():
    with pytest.raises(R1Error, match=r"rewards\.0\.params\.token='  ': must be a non-blank string"):
        load_config(GRPOConfig, None, ["rewards=[{name: readable_format, params: {token: '  '}}]"])
    with pytest.raises(R1Error, match=r"rewards\.0\.params\.require_answer='yes': must be true or false"):
        load_config(GRPOConfig, None, ["rewards=[{name: readable_format, params: {require_answer: 'yes'}}]"])
    load_config(GRPOConfig, None, ["rewards=[{name: readable_format, params: {token: '<|sep|>'}}]"])
