"""Config schema, YAML loading, overrides and their one-line errors. Run: ``python -m pytest tests/test_config.py -q``."""

from pathlib import Path

import pytest

from r1.config import GRPOConfig, load_config, to_yaml
from r1.errors import R1Error
from r1.registry import Registry

REPO = Path(__file__).resolve().parents[1]


def test_defaults_yaml_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("optim:\n  lr: 3.0e-4\ngrpo:\n  samples_per_prompt: 4\n")
    cfg = load_config(GRPOConfig, p, ["optim.lr=1e-5", "run.steps=7", "rewards.0.weight=0.25"])
    assert cfg.optim.lr == pytest.approx(1e-5)
    assert cfg.grpo.samples_per_prompt == 4
    assert cfg.run.steps == 7
    assert cfg.rewards[0].weight == 0.25
    assert isinstance(cfg, GRPOConfig)


def test_unknown_key_names_key_and_valid_ones():
    with pytest.raises(R1Error) as e:
        load_config(GRPOConfig, None, ["optim.lrr=1e-5"])
    msg = str(e.value)
    assert "optim.lrr" in msg and "lr" in msg and "warmup_steps" in msg and "\n" not in msg


def test_unknown_key_in_yaml(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("grpo:\n  klcoef: 0.1\n")
    with pytest.raises(R1Error, match=r"grpo\.klcoef.*c\.yaml.*kl_coef"):
        load_config(GRPOConfig, p)


def test_unknown_top_level_key():
    with pytest.raises(R1Error, match="unknown config key 'modle'.*model"):
        load_config(GRPOConfig, None, ["modle.path=x"])


def test_mistyped_value():
    with pytest.raises(R1Error, match="run.steps"):
        load_config(GRPOConfig, None, ["run.steps=many"])


def test_malformed_yaml_and_missing_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("optim: [1, 2\n")
    with pytest.raises(R1Error, match="malformed YAML"):
        load_config(GRPOConfig, p)
    with pytest.raises(R1Error, match="not found"):
        load_config(GRPOConfig, tmp_path / "nope.yaml")
    with pytest.raises(R1Error, match="key=value"):
        load_config(GRPOConfig, None, ["optim.lr"])


def test_resolved_yaml_roundtrip(tmp_path):
    cfg = load_config(GRPOConfig, None, ["optim.lr=2e-5"])
    p = tmp_path / "resolved.yaml"
    p.write_text(to_yaml(cfg))
    assert load_config(GRPOConfig, p) == cfg


def _schema_for(path):
    """The schema of the command a shipped YAML's first line launches (``# r1 <command> -c ...``)."""
    from r1.config import DemoConfig, EvalConfig, GenerateConfig, RMConfig, SFTConfig

    command = path.read_text().split()[2]
    return {"grpo": GRPOConfig, "pretrain": SFTConfig, "sft": SFTConfig, "demo": DemoConfig, "eval": EvalConfig,
            "generate": GenerateConfig, "rm": RMConfig, "pipeline": None}[command]


@pytest.mark.parametrize(
    "path", sorted((REPO / "configs").rglob("*.yaml")), ids=lambda p: f"{p.parent.name}/{p.name}"
)
def test_every_shipped_config_validates(path, monkeypatch):
    assert path.read_text().startswith("# r1 "), "each shipped YAML opens with its launch command"
    schema = _schema_for(path)
    if schema is None:  # a pipeline: every stage's config is built and validated (data paths: the checkout's)
        from r1.pipeline.runner import load_pipeline

        monkeypatch.chdir(REPO)
        assert load_pipeline(path).stages
    else:
        load_config(schema, path)


def test_registry_miss_lists_valid_names_and_refuses_duplicates():
    reg = Registry("widget")
    reg.register("a", 1)
    reg.register("b", "json:dumps")  # lazy entry
    assert reg.get("a") == 1
    import json

    assert reg.get("b") is json.dumps
    with pytest.raises(R1Error, match="unknown widget 'c'; valid: a, b"):
        reg.get("c")
    with pytest.raises(ValueError):
        reg.register("a", 2)
