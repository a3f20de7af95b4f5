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
    rows = map(json.loads, (run / "grpo" / "metrics.jsonl").read_text().splitlines())
    evals = [r for r in rows if "eval/accuracy" in r]
    assert [r["step"] for r in evals] == [0, 1, 2]  # eval.every=1: the held-out curve the peaks come from
    assert s["peak_accuracy"] == max(r["eval/accuracy"] for r in evals) and s["peak_accuracy_step"] in (0, 1, 2)
    assert s["peak_mean_length"] == max(r["eval/response_length/mean"] for r in evals)
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


def test_r1_demo_is_the_shipped_pipeline_file():
    """`r1 demo` (its settings over r1_zero_demo.yaml) and `r1 pipeline -c configs/pipeline/r1_zero_demo.yaml` build
    the same stages with the same config hashes: one definition, two commands."""
    from pathlib import Path

    from r1.pipeline.demo import R1_ZERO_DEMO, pipeline_settings
    from r1.pipeline.runner import load_pipeline

    shipped = Path(__file__).resolve().parents[2] / "configs" / "pipeline" / "r1_zero_demo.yaml"
    assert shipped.resolve() == R1_ZERO_DEMO.resolve()
    plain = load_pipeline(shipped)
    demo = load_pipeline(R1_ZERO_DEMO, merge=pipeline_settings(load_demo_config()))
    assert [(s.name, s.hash, s.dir) for s in plain.stages] == [(s.name, s.hash, s.dir) for s in demo.stages]
    changed = load_pipeline(R1_ZERO_DEMO, merge=pipeline_settings(load_demo_config(None, ["grpo.optim.lr=3e-4"])))
    assert [s.hash == t.hash for s, t in zip(plain.stages, changed.stages)] == [True, True, False, False]
    # the base model lands in the folder the demo always cached it in
    cfg = load_demo_config()
    cfg.pretrain.run.seed, cfg.pretrain.run.threads, cfg.pretrain.run.progress = 0, 0, True
    assert plain.stages[0].dir.name == f"base-{pretrain_key(cfg.pretrain)}"


def test_a_rerun_skips_the_finished_demo_and_an_old_layout_is_moved_aside(demo_run, capsys):
    tmp_path, run = demo_run
    capsys.readouterr()
    before = json.loads((run / "summary.json").read_text())
    again = run_demo(micro_cfg(tmp_path))
    out = capsys.readouterr().out
    assert again == run and out.count("skipped") == 4
    after = json.loads((run / "summary.json").read_text())
    assert after["final_accuracy"] == before["final_accuracy"] and after["rl_seconds"] == before["rl_seconds"]
    old = tmp_path / "old_demo"
    old.mkdir()
    (old / "demo_config.yaml").write_text("{}\n")
    (old / "eval_base.jsonl").write_text("{}\n")
    run_demo(micro_cfg(tmp_path, "run.name=old_demo"))
    assert any(p.name.startswith("old_demo.old-") for p in tmp_path.iterdir())


def test_logging_switches_do_not_change_the_cached_base_models_hash():
    """Settings that change only how a run logs (wandb, threads, progress) keep a cached base model valid."""
    from r1.config import load_demo_config
    from r1.pipeline.demo import pretrain_key

    plain = pretrain_key(load_demo_config(None, []).pretrain)
    logged = load_demo_config(None, ["pretrain.run.wandb_project=other", "pretrain.run.threads=1",
                                     "pretrain.run.progress=false"]).pretrain
    assert pretrain_key(logged) == plain
    assert pretrain_key(load_demo_config(None, ["pretrain.run.steps=999"]).pretrain) != plain


def test_a_replaced_mapping_in_the_demo_settings_is_not_merged_with_the_shipped_one():
    """`r1 demo pretrain.data.corpus={mix: {...}}` trains on exactly that mix (the stage does not merge it with
    demo.yaml's own mix), while the default settings keep their stage hashes."""
    from r1.config import load_demo_config
    from r1.pipeline.demo import R1_ZERO_DEMO, pipeline_settings
    from r1.pipeline.runner import load_pipeline

    def base_stage(overrides):
        pipe = load_pipeline(R1_ZERO_DEMO, merge=pipeline_settings(load_demo_config(None, overrides)))
        return {s.name: s for s in pipe.stages}["base"]

    shipped = base_stage([])
    assert shipped.cfg.data.corpus == load_demo_config(None, []).pretrain.data.corpus
    mine = base_stage(["pretrain.data.corpus={mix: {direct: 0.5, reflect: 0.5}}"])
    assert mine.cfg.data.corpus == {"mix": {"direct": 0.5, "reflect": 0.5}}
    assert mine.hash != shipped.hash
