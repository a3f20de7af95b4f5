"""``r1 demo`` on a micro config (2 steps each), its base-model cache, and ``r1 report``.

Run: ``python -m pytest tests/pipeline -q``. The real demo is not a unit test: ``r1 demo`` (see README).
"""

import json

import pytest

from r1.cli import main
from r1.config import DEMO_YAML, DemoConfig, load_config, load_demo_config
from r1.errors import R1Error
from r1.pipeline.demo import pretrain_key, run_demo
from r1.report import make_report

MICRO = [
    "pretrain.model.path=tiny-qwen2",
    "pretrain.run.steps=2",
    "pretrain.data.num_examples=64",
    "pretrain.data.examples_per_step=8",
    "pretrain.data.task.params={digits: 2, num_train: 64, num_test: 16}",
    "grpo.task.params={digits: 2, num_train: 64, num_test: 16}",
    "grpo.run.steps=2",
    "grpo.grpo.prompts_per_step=2",
    "grpo.grpo.samples_per_prompt=2",
    "grpo.rollout.max_new_tokens=8",
    "grpo.eval.every=1",
    "grpo.eval.num_prompts=4",
    "eval.num_prompts=6",
    "eval.samples_per_prompt=2",
    "run.progress=false",
    "run.threads=1",
]


def micro_cfg(tmp_path, *extra):
    return load_demo_config(None, MICRO + [f"run.out_dir={tmp_path}", f"run.cache_dir={tmp_path}/cache", *extra])


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("demo")
    return tmp_path, run_demo(micro_cfg(tmp_path))


def test_demo_micro_end_to_end_and_cache(demo_run):
    tmp_path, run = demo_run
    s = json.loads((run / "summary.json").read_text())
    for key in ("base_accuracy", "final_accuracy", "base_mean_length", "final_mean_length", "base_reflection_rate",
                "final_reflection_rate", "eval_prompts", "wall_seconds", "pretrain_seconds", "rl_seconds"):
        assert key in s, key
    assert s["eval_prompts"] == 6 and s["pretrain_cached"] is False and s["pretrain_seconds"] > 0
    assert len((run / "eval_base.jsonl").read_text().splitlines()) == 12
    assert (run / "grpo" / "metrics.jsonl").is_file()
    report = (run / "report.html").read_text()
    assert report.count("data:image/png;base64,") == 2 and "Before and after RL" in report
    assert (run / "curves.png").stat().st_size > 1000

    # a second demo reuses the cached base model and skips pretraining
    again = run_demo(micro_cfg(tmp_path, "run.name=demo2"))
    s2 = json.loads((again / "summary.json").read_text())
    assert s2["pretrain_cached"] is True and s2["pretrain_seconds"] == 0.0
    assert s2["base_accuracy"] == s["base_accuracy"]  # the same base model, the same evaluation seed


def test_cache_key_ignores_cosmetics_but_not_the_recipe(tmp_path):
    a = micro_cfg(tmp_path).pretrain
    b = micro_cfg(tmp_path, "pretrain.run.log_every=7", "pretrain.run.name=other").pretrain
    c = micro_cfg(tmp_path, "pretrain.optim.lr=0.5").pretrain
    assert pretrain_key(a) == pretrain_key(b) != pretrain_key(c)


def test_report_cli_on_a_grpo_run_and_errors(demo_run, tmp_path, capsys):
    _, run = demo_run
    assert main(["report", str(run / "grpo")]) == 0
    html = (run / "grpo" / "report.html").read_text()
    assert "held-out evaluation at step 0 and step 2" in html
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    with pytest.raises(R1Error, match="not an r1 run directory"):
        make_report(tmp_path / "empty")


def test_the_demo_settings_come_from_its_yaml(tmp_path):
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[2] / "configs" / "demo" / "default.yaml"
    assert shipped.resolve() == DEMO_YAML.resolve()  # one file: configs/ links to the packaged one
    cfg = load_demo_config()
    assert cfg == load_config(DemoConfig, DEMO_YAML) != DemoConfig()
    assert cfg.pretrain.model.path == "qwen2-1m" and cfg.grpo.rewards[1].weight == 0.2
    # a -c file goes over the demo's settings, not over the schema's defaults
    (tmp_path / "short.yaml").write_text("grpo: {run: {steps: 5}}\n")
    short = load_demo_config(tmp_path / "short.yaml")
    assert short.grpo.run.steps == 5 and short.grpo.optim.lr == cfg.grpo.optim.lr == 1e-4
