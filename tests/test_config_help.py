"""An example config per command, and ``r1 <command> --help``'s list of config fields with their docs.

Run: ``python -m pytest -q tests/test_config_help.py -p no:cacheprovider`` (``-m slow`` adds the demo's smoke run).
"""

import argparse
import dataclasses
import importlib
import typing
from pathlib import Path

import pytest

import r1.config
from r1.config import EvalConfig, GRPOConfig, SFTConfig, load_config, load_demo_config, validate
from r1.config_help import EXAMPLES, SCHEMAS, CommandParser, command_help, describe, field_docs

REPO = Path(__file__).resolve().parents[1]


def schema_of(command: str):
    module, _, name = SCHEMAS[command].partition(":")
    return getattr(importlib.import_module(module), name)


def load_example(command: str, *overrides: str):
    path = REPO / EXAMPLES[command]
    if command == "demo":  # r1 demo puts its -c file over its own settings
        return load_demo_config(path, list(overrides))
    return load_config(schema_of(command), path, list(overrides))


def test_every_config_command_has_an_example_and_a_schema():
    from r1.cli import _ARGUMENTS, COMMANDS

    config_commands = set(COMMANDS) - set(_ARGUMENTS) - {"report"}  # the rest take flags or a run directory
    assert config_commands == set(EXAMPLES) == set(SCHEMAS)


@pytest.mark.parametrize("command", sorted(EXAMPLES))
def test_each_example_loads_with_its_commands_schema_and_validates(command, monkeypatch):
    monkeypatch.chdir(REPO)  # the examples' paths (data files) are relative to the repository root
    cfg = load_example(command)
    assert isinstance(cfg, schema_of(command))
    validate(cfg)  # with this machine's files and devices too, as the command does before it writes anything
    first = (REPO / EXAMPLES[command]).read_text().splitlines()[0]
    assert first.startswith(f"# r1 {command} -c {EXAMPLES[command]}"), first


def test_describe_lists_sections_fields_types_defaults_and_docs():
    text = describe(GRPOConfig)
    assert "optim:" in text.splitlines()
    lines = text.splitlines()
    i = lines.index("  optim.lr: float = 1e-06")
    assert lines[i + 1].strip().startswith("Peak learning rate (AdamW).")
    assert "  task.data: str | None = None" in lines
    assert "  optim.betas: list[float] = [0.9, 0.99]" in lines
    assert "rewards: a list; default 2 item(s); each item (key rewards.N.<field>):" in lines
    assert "  rewards.N.name: str = 'accuracy'" in lines
    # the defaults are the command's own: SFT's optimizer and run differ from GRPO's
    assert "  optim.lr: float = 0.001" in describe(SFTConfig).splitlines()
    assert "  run.name: str = 'sft'" in describe(SFTConfig).splitlines()
    # a section's own doc is shown under its name
    eval_text = describe(EvalConfig)
    assert "rollout:\n    Sampling; defaults are the R1 report's" in eval_text
    assert all(len(line) <= 100 for line in eval_text.splitlines())


def test_demo_help_shows_the_demos_settings_not_the_schema_defaults():
    text = command_help("demo")
    assert text.startswith("example: r1 demo -c configs/demo/smoke.yaml")
    assert "    pretrain.model.path: str = 'qwen2-1m'" in text.splitlines()  # demo.yaml's, the schema says tiny-qwen2
    assert "    grpo.run.steps: int = 60" in text.splitlines()


def config_dataclasses():
    return [c for c in vars(r1.config).values()
            if isinstance(c, type) and dataclasses.is_dataclass(c) and c.__module__ == "r1.config" and c.__name__ != "Check"]


def is_section(t) -> bool:
    args = typing.get_args(t)
    return dataclasses.is_dataclass(t) or (typing.get_origin(t) is list and bool(args) and dataclasses.is_dataclass(args[0]))


def test_every_field_of_every_schema_has_a_doc_line():
    classes = config_dataclasses()
    assert GRPOConfig in classes and len(classes) > 15
    missing = []
    for cls in classes:
        hints, docs = typing.get_type_hints(cls), field_docs(cls)
        missing += [f"{cls.__name__}.{f.name}" for f in dataclasses.fields(cls)
                    if not is_section(hints[f.name]) and not docs.get(f.name)]
    assert not missing, f"fields without a docstring line below them in r1/config.py: {missing}"


def test_field_docs_reads_the_string_under_each_field_only():
    docs = field_docs(r1.config.GRPOAlgoConfig)
    assert docs["prompts_per_step"] == "P: prompts per step."
    assert "\n" not in docs["replay_rollout"] and "  " not in docs["replay_rollout"]  # multi-line docs on one line
    assert "_cross_check" not in field_docs(GRPOConfig)


def test_command_parser_adds_the_help_only_when_asked(capsys):
    parser = argparse.ArgumentParser(prog="r1")
    sub = parser.add_subparsers(dest="command", parser_class=CommandParser)
    p = sub.add_parser("sft", help="supervised fine-tuning", command="sft")
    p.add_argument("-c", "--config")
    sub.add_parser("grade", help="grade", command="grade")
    parser.parse_args(["sft", "-c", "x.yaml"])
    assert p.epilog is None  # nothing read for a plain invocation
    with pytest.raises(SystemExit):
        parser.parse_args(["sft", "--help"])
    out = capsys.readouterr().out
    assert "example: r1 sft -c configs/sft/smoke.yaml" in out
    assert "  data.completion_only: bool = True\n      Loss on completion tokens only" in out  # not re-wrapped
    with pytest.raises(SystemExit):
        parser.parse_args(["grade", "--help"])
    assert "config fields" not in capsys.readouterr().out


@pytest.mark.parametrize("command", ["pretrain", "sft"])
def test_the_new_examples_run(command, tmp_path, monkeypatch):
    from r1.train.sft import train_sft

    monkeypatch.chdir(REPO)
    run = train_sft(load_example(command, "run.steps=2", f"run.out_dir={tmp_path}", "run.threads=1",
                                 "run.progress=false", "run.log_every=0"))
    assert (run / "metrics.jsonl").read_text().count("\n") == 2


@pytest.mark.slow
def test_the_demo_example_runs(tmp_path, monkeypatch):
    from r1.pipeline.demo import run_demo

    monkeypatch.chdir(REPO)
    run = run_demo(load_example("demo", f"run.out_dir={tmp_path}", f"run.cache_dir={tmp_path}/cache",
                                "run.progress=false", "run.threads=1"))
    assert (run / "summary.json").is_file() and (run / "report.html").is_file()
