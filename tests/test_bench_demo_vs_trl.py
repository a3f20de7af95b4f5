"""``benchmarks/demo_vs_trl.py``'s pure helpers: the demo's GRPO settings in TRL's names, and the mean ± sd table.

The benchmark itself (training both sides) is not a test: ``python benchmarks/demo_vs_trl.py --seeds 0 --steps 4``.

Run: ``python -m pytest tests/test_bench_demo_vs_trl.py -q``.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import demo_vs_trl  # noqa: E402


def test_the_demo_settings_in_trl_names(tmp_path):
    demo = demo_vs_trl.demo_config(seed=3, threads=1, steps=7)
    cfg = demo_vs_trl.stage_config(demo_vs_trl.demo_pipeline(demo, tmp_path, "x"), "grpo")  # the demo's RL stage
    g = cfg.grpo
    kw = demo_vs_trl.trl_settings(cfg)
    assert cfg.run.seed == 3 and kw["max_steps"] == 7  # the seed and --steps reach the GRPO stage
    assert not any(tmp_path.iterdir())  # loading the pipeline wrote nothing
    assert kw["per_device_train_batch_size"] == g.prompts_per_step * g.samples_per_prompt  # one update per rollout
    assert kw["num_generations"] == g.samples_per_prompt and kw["max_completion_length"] == cfg.rollout.max_new_tokens
    assert (kw["epsilon"], kw["epsilon_high"], kw["beta"]) == (g.clip_low, g.clip_high, g.kl_coef)
    assert kw["reward_weights"] == [r.weight for r in cfg.rewards]
    assert (kw["adam_beta1"], kw["adam_beta2"], kw["learning_rate"]) == (*cfg.optim.betas, cfg.optim.lr)
    assert kw["loss_type"] == {"token_mean": "dapo", "seq_mean_token_mean": "grpo", "constant": "dr_grpo"}[g.loss_agg]

    other = copy.deepcopy(cfg)
    other.grpo.loss_agg, other.grpo.adv_norm, other.grpo.num_minibatches, other.grpo.mu = "constant", "none", 2, 2
    kw = demo_vs_trl.trl_settings(other)
    assert (kw["loss_type"], kw["scale_rewards"]) == ("dr_grpo", "none")
    # 2 minibatches x mu 2: four optimizer steps per rollout, each on half of it
    assert kw["steps_per_generation"] == 2 and kw["num_iterations"] == 2 and kw["max_steps"] == 7 * 4
    assert kw["per_device_train_batch_size"] * 2 == g.prompts_per_step * g.samples_per_prompt

    other.grpo.dynamic_sampling = True
    with pytest.raises(SystemExit, match="dynamic_sampling has no TRL counterpart"):
        demo_vs_trl.trl_settings(other)


def test_table_rows_mean_sd_over_seeds_then_each_seed():
    def run(acc, length, refl, seconds):
        return {"rl_seconds": seconds, "eval": {"accuracy": acc, "response_length/mean": length,
                                                "task/reflection": refl}}

    results = {"r1": {0: run(0.8, 45.0, 0.3, 30.0), 1: run(0.9, 50.0, 0.1, 34.0)},
               "trl": {0: run(0.85, 47.5, 0.25, 70.0)}}
    rows = demo_vs_trl.table_rows(results)
    # r1: accuracy 0.8, 0.9 -> 0.850 ± 0.071 (sd with n - 1); length 45, 50 -> 47.5 ± 3.5;
    # seconds 30, 34 -> 32.0 ± 2.8
    assert rows[0] == ["r1", "mean ± sd", "0.850 ± 0.071", "47.5 ± 3.5", "0.200 ± 0.141", "32.0 ± 2.8"]
    assert rows[1] == ["trl", "mean ± sd", "0.850", "47.5", "0.250", "70.0"]  # one seed: no sd
    assert rows[2:] == [["r1", "0", "0.800", "45.0", "0.300", "30.0"], ["r1", "1", "0.900", "50.0", "0.100", "34.0"],
                        ["trl", "0", "0.850", "47.5", "0.250", "70.0"]]
