"""The mixture task (all-scenario RL's prompt sources, each with its own rewards) and general preference prompts."""

import json
from collections import Counter

import pytest

from r1.config import GRPOConfig, load_config
from r1.errors import R1Error
from r1.rewards import CompositeReward
from r1.tasks import build_task

SOURCES = [
    {"name": "reasoning", "task": "addition", "weight": 3, "params": {"digits": 2, "num_train": 60, "num_test": 10}},
    {"name": "helpful", "task": "preference_prompts", "weight": 1, "params": {"kind": "helpful", "num_train": 20,
                                                                             "num_test": 5}},
]


def test_load_draws_sources_by_weight_and_dispatches_grading():
    task = build_task("mixture", sources=SOURCES)
    train = task.load("train")
    counts = Counter(s.meta["source"] for s in train)
    assert counts == {"reasoning": 60, "helpful": 20}  # 3:1 of the 80 samples
    assert len({s.id for s in train}) == len(train)
    add = next(s for s in train if s.meta["source"] == "reasoning")
    assert task.grade(f"<think>x</think> <answer>{add.answer}</answer>", add) == 1.0
    assert task.grade("<think>x</think> <answer>-1</answer>", add) == 0.0
    general = next(s for s in train if s.meta["source"] == "helpful")
    assert task.question(general) == general.problem and task.grade(general.answer, general) == 0.0
    # weights that ask for more than a source holds cycle through its (shuffled) samples
    heavy = build_task("mixture", sources=[{**SOURCES[0], "weight": 1}, {**SOURCES[1], "weight": 3}])
    c2 = Counter(s.meta["source"] for s in heavy.load("train"))
    assert c2 == {"reasoning": 20, "helpful": 60}


@pytest.mark.parametrize("sources, match", [
    ([], "must list at least one"),
    ([{"name": "a"}], "needs a name and a task"),
    ([{"name": "a", "task": "addition", "wieght": 1}], "unknown key"),
    ([{"name": "a", "task": "addition"}, {"name": "a", "task": "addition"}], "used twice"),
    ([{"name": "a", "task": "addition", "weight": 0}], "weight must be a number > 0"),
    ([{"name": "a", "task": "nope"}], "unknown task 'nope'"),
])
def test_bad_mixtures_are_one_line(sources, match):
    with pytest.raises(R1Error, match=match):
        build_task("mixture", sources=sources)


def test_a_reward_part_scores_only_its_source():
    task = build_task("mixture", sources=SOURCES)
    train = task.load("train")
    reward = CompositeReward([("accuracy", 1.0, {}, "", "reasoning"), ("format", 0.5, {}, "fmt_helpful", "helpful")],
                             task)
    assert reward.names == ["accuracy", "fmt_helpful"]
    add = next(s for s in train if s.meta["source"] == "reasoning")
    total, parts = reward(f"<think>a</think> <answer>{add.answer}</answer>", add)
    assert parts == {"accuracy": 1.0, "fmt_helpful": None} and total == 1.0
    gen = next(s for s in train if s.meta["source"] == "helpful")
    total, parts = reward("<think>a</think> <answer>b</answer>", gen)
    assert parts["accuracy"] is None and parts["fmt_helpful"] == 1.0 and total == 0.5


def test_config_checks_sources_and_labels():
    base = ["task.name=mixture", f"task.params={{sources: {json.dumps(SOURCES)}}}"]
    ok = load_config(GRPOConfig, None, base + [
        "rewards=[{name: accuracy, source: reasoning}, {name: format, source: helpful},"
        " {name: format, label: fmt2, source: reasoning}]"])
    assert [r.label or r.name for r in ok.rewards] == ["accuracy", "format", "fmt2"]
    with pytest.raises(R1Error, match="not a source of the mixture; valid: reasoning, helpful"):
        load_config(GRPOConfig, None, base + ["rewards=[{name: accuracy, source: general}]"])
    with pytest.raises(R1Error, match="a reward's source needs task.name=mixture"):
        load_config(GRPOConfig, None, ["rewards=[{name: accuracy, source: reasoning}]"])
    with pytest.raises(R1Error, match="give a second use its own label"):
        load_config(GRPOConfig, None, ["rewards=[{name: format}, {name: format}]"])


def test_grpo_on_a_mixture_logs_each_source(tmp_path):
    from r1.train.grpo import train_grpo

    cfg = load_config(GRPOConfig, None, [
        "model.path=tiny-qwen2", "task.name=mixture", "task.template=plain",
        f"task.params={{sources: {json.dumps(SOURCES)}}}",
        "rewards=[{name: accuracy, source: reasoning}, {name: format, label: fmt_helpful, source: helpful}]",
        "grpo.prompts_per_step=8", "grpo.samples_per_prompt=2", "rollout.max_new_tokens=8", "run.steps=2",
        f"run.out_dir={tmp_path}", "run.name=mix", "run.progress=false", "run.log_every=0", "run.sample_every=0",
    ])
    run = train_grpo(cfg)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    step = [r for r in rows if r.get("step", 0) > 0][-1]
    assert "reward/accuracy" in step and "reward/fmt_helpful" in step
    shares = {k: v for k, v in step.items() if k.startswith("source/") and k.endswith("/share")}
    assert shares and sum(shares.values()) == pytest.approx(1.0)


def test_sft_mixes_non_reasoning_data_in_a_ratio(tmp_path):
    from r1.train.sft import load_records

    main = tmp_path / "reasoning.jsonl"
    main.write_text("".join(json.dumps({"prompt": f"q{i}", "completion": f"<think>t{i}</think>"}) + "\n"
                            for i in range(30)))
    other = tmp_path / "chat.jsonl"
    other.write_text("".join(json.dumps({"prompt": f"hi {i}", "completion": "hello"}) + "\n" for i in range(4)))
    from r1.config import SFTConfig

    cfg = load_config(SFTConfig, None, [
        "data.source=jsonl", f"data.path={main}",
        f"data.mix=[{{path: {other}, ratio: 0.5}}, {{task: preference_prompts, params: {{kind: harmless, "
        "num_train: 8, num_test: 2}, ratio: 0.2}]"])
    recs = load_records(cfg, tokenizer=None)
    assert len(recs) == 30 + 15 + 6
    assert sum(r["completion"] == "hello" for r in recs) == 15  # 4 records drawn again after the first 4
    assert sum(r["prompt"].startswith("q") for r in recs) == 30
    assert recs != sorted(recs, key=lambda r: r["prompt"])  # shuffled together
    with pytest.raises(R1Error, match=r"give either path \(a JSONL file, a Parquet file or a datasets directory\) or "
                                      r"task"):
        load_records(load_config(SFTConfig, None, ["data.source=jsonl", f"data.path={main}", "data.mix=[{ratio: 1}]"]),
                     tokenizer=None)
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = tmp_path / "chat.parquet"  # as the message says: a Parquet file mixes in too
    pq.write_table(pa.table({"prompt": ["hi"], "completion": ["hello"]}), parquet)
    cfg = load_config(SFTConfig, None, ["data.source=jsonl", f"data.path={main}",
                                        f"data.mix=[{{path: {parquet}, ratio: 0.1}}]"])
    assert sum(r["completion"] == "hello" for r in load_records(cfg, tokenizer=None)) == 3
    with pytest.raises(R1Error, match="data.mix.0.task='nope'"):
        load_config(SFTConfig, None, ["data.mix=[{task: nope}]"])


def test_completion_metrics_are_the_mixtures_own_not_a_sources():
    # completion_metrics sees only the text, so a mixture cannot use addition's markers or its mode/* metrics
    # (documented in r1.tasks.mixture); it counts reflection with its own reflection_words
    from r1.tasks.base import REFLECTION_WORDS

    task = build_task("mixture", sources=[{"name": "a", "task": "addition", "params": {"digits": 3}}])
    text = "<think>3+4=8, wrong</think><answer>7</answer>"  # "wrong": a default word, not an addition marker
    assert task.completion_metrics(text) == {"reflection": 1.0}
    assert task.sources["a"].completion_metrics(text)["reflection"] == 0.0
    assert "wrong" in REFLECTION_WORDS
    import r1.tasks.mixture

    assert "cannot tell which source" in " ".join(r1.tasks.mixture.__doc__.split())
