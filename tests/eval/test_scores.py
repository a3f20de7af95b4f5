"""eval.scores: rewards as extra evaluation metrics."""

import pytest


def test_eval_scores_are_rewards_averaged_over_the_completions(tmp_path):
    """eval.scores: any reward as an extra metric (score/<label>), e.g. the format share or a reward model."""
    import json

    from r1.config import EvalConfig, load_config
    from r1.eval import evaluate
    from r1.errors import R1Error

    args = [
        "model.path=tiny-qwen2",
        "benchmarks=[{task: addition, split: test, limit: 4, params: {digits: 2, num_train: 64, num_test: 8}}]",
        "rollout.max_new_tokens=6", "eval.samples_per_problem=2", "eval.template=plain",
        f"run.out_dir={tmp_path}", "run.progress=false",
    ]
    cfg = load_config(EvalConfig, None, args + [
        "eval.scores=[{name: format}, {name: format, label: fmt2, params: {}}, {name: language, "
        "params: {target: en, method: script, span: response}}]"])
    results = evaluate(cfg)
    m = results["benchmarks"]["addition"]["metrics"]
    assert m["score/format"] == 0.0 and m["score/fmt2"] == 0.0  # a random model never writes the tags
    assert 0.0 <= m["score/language"] <= 1.0
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["benchmarks"]["addition"]["metrics"][
        "score/format"] == 0.0
    with pytest.raises(R1Error, match="score names must be unique"):
        load_config(EvalConfig, None, args + ["eval.scores=[{name: format}, {name: format}]"])
    with pytest.raises(R1Error, match="has no parameter nope"):
        load_config(EvalConfig, None, args + ["eval.scores=[{name: format, params: {nope: 1}}]"])
