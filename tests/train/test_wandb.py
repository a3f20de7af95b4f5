"""Optional Weights & Biases logging (``run.wandb``), tested against a fake ``wandb`` module put in ``sys.modules``:
what ``wandb.init`` gets, one ``log`` per step with ``step=``, ``finish`` at the end; off by default; without the
package a one-line error before anything is written.

Run: python -m pytest tests/train/test_wandb.py -q   (a few seconds; wandb itself is not needed)
"""

import importlib.machinery
import math
import sys
import types
from pathlib import Path

import pytest

from r1.cli import main
from r1.config import GRPOConfig, load_config, validate
from r1.errors import R1Error
from r1.train.metrics import MetricsLogger, read_metrics

REPO = Path(__file__).resolve().parents[2]


class FakeRun:
    def __init__(self, calls: list, **kwargs):
        self.calls, self.kwargs = calls, kwargs

    def log(self, data, step=None):
        self.calls.append(("log", dict(data), step))

    def finish(self):
        self.calls.append(("finish",))


@pytest.fixture
def fake_wandb(monkeypatch):
    """A ``wandb`` module whose ``init`` records its arguments; ``module.calls`` lists init/log/finish in order."""
    module = types.ModuleType("wandb")
    module.__spec__ = importlib.machinery.ModuleSpec("wandb", None)  # libraries that probe for wandb find it
    module.calls = []

    def init(**kwargs):
        module.calls.append(("init", kwargs))
        return FakeRun(module.calls, **kwargs)

    module.init = init
    monkeypatch.setitem(sys.modules, "wandb", module)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    return module


def _cfg(tmp_path, *overrides):
    return load_config(GRPOConfig, None, [f"run.out_dir={tmp_path}", "run.name=w", *overrides])


def test_logger_sends_each_steps_numbers_with_its_step(tmp_path, fake_wandb):
    cfg = _cfg(tmp_path, "run.wandb=true", "run.wandb_project=tiny")
    logger = MetricsLogger(tmp_path, tensorboard=False, config=cfg)
    logger.log(1, {"loss": 0.5, "reward/format": 1, "kl": math.nan, "stopped": True, "note": "x"})
    logger.log(2, {"loss": 0.25})
    logger.close()
    (init, kwargs), *rest = fake_wandb.calls
    assert init == "init"
    assert {k: kwargs[k] for k in ("project", "name", "dir", "mode")} == {
        "project": "tiny", "name": "w", "dir": str(tmp_path), "mode": "offline"
    }
    assert kwargs["config"]["run"]["wandb"] is True and kwargs["config"]["grpo"]["samples_per_prompt"] == 8
    # NaN, bools and text stay in metrics.jsonl only (as for TensorBoard)
    assert rest == [("log", {"loss": 0.5, "reward/format": 1}, 1), ("log", {"loss": 0.25}, 2), ("finish",)]
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2]


def test_the_users_wandb_mode_wins(tmp_path, fake_wandb, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "online")
    MetricsLogger(tmp_path, tensorboard=False, config=_cfg(tmp_path, "run.wandb=true")).close()
    assert fake_wandb.calls[0][1]["mode"] == "online"


def test_off_by_default(tmp_path, fake_wandb):
    cfg = _cfg(tmp_path)
    assert cfg.run.wandb is False
    logger = MetricsLogger(tmp_path, tensorboard=False, config=cfg)
    logger.log(1, {"loss": 1.0})
    logger.close()
    assert fake_wandb.calls == []


def test_a_failing_init_is_one_line(tmp_path, fake_wandb):
    def init(**kwargs):
        raise ValueError("invalid mode 'sideways'\nmore detail")

    fake_wandb.init = init
    with pytest.raises(R1Error, match=r"^wandb\.init failed \(ValueError: invalid mode 'sideways'\)$"):
        MetricsLogger(tmp_path, tensorboard=False, config=_cfg(tmp_path, "run.wandb=true"))


def test_grpo_run_logs_every_step_and_finishes(tmp_path, fake_wandb):
    from tests.train.test_grpo import tiny_cfg

    from r1.train.grpo import train_grpo

    run = train_grpo(tiny_cfg(tmp_path, "wb", "run.wandb=true"))
    init, *logs, finish = fake_wandb.calls
    assert init[0] == "init" and init[1]["dir"] == str(run) and finish == ("finish",)
    steps = [r["step"] for r in read_metrics(run)]
    assert [step for _, _, step in logs] == steps == [1, 2]
    assert all("loss" in data and "reward/total" in data for _, data, _ in logs), logs


def test_sft_run_logs_to_wandb_too(tmp_path, fake_wandb):
    from tests.train.test_sft import cfg_for

    from r1.train.sft import train_sft

    run = train_sft(cfg_for(tmp_path, "sft", "run.steps=2", "run.wandb=true"))
    assert [c[0] for c in fake_wandb.calls] == ["init", "log", "log", "finish"]
    assert [c[2] for c in fake_wandb.calls[1:3]] == [r["step"] for r in read_metrics(run)] == [1, 2]


@pytest.fixture
def no_wandb(monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)  # `import wandb` raises ImportError


def test_missing_package_is_a_config_error(tmp_path, no_wandb):
    validate(_cfg(tmp_path))  # off: the package is not needed
    with pytest.raises(R1Error, match=r"^run\.wandb=True: the wandb package is not installed: pip install 'r1\[wandb\]'"):
        validate(_cfg(tmp_path, "run.wandb=true"))
    with pytest.raises(R1Error, match=r"^run\.wandb=true needs the wandb package: pip install 'r1\[wandb\]'"):
        MetricsLogger(tmp_path, tensorboard=False, config=_cfg(tmp_path, "run.wandb=true"))


@pytest.mark.parametrize("command, config", [("grpo", "grpo/smoke.yaml"), ("sft", "sft/smoke.yaml")])
def test_missing_package_stops_the_command_before_it_writes(tmp_path, capsys, no_wandb, command, config):
    runs = tmp_path / "runs"
    assert main([command, "-c", str(REPO / "configs" / config), "run.wandb=true", f"run.out_dir={runs}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "the wandb package is not installed" in err, err
    assert not runs.exists()


def test_what_a_failed_start_leaves_with_wandb_does_not_block(tmp_path):
    from r1.runs import left_by_a_failed_start

    run = tmp_path / "run"
    (run / "wandb" / "offline-run-1").mkdir(parents=True)
    (run / "config.yaml").write_text("x: 1\n")
    (run / "metrics.jsonl").write_text("")
    assert left_by_a_failed_start(run)
    (run / "metrics.jsonl").write_text('{"step": 1}\n')  # a logged step: a run to keep
    assert not left_by_a_failed_start(run)


def test_a_failing_init_leaves_no_open_file(tmp_path, fake_wandb):
    import os

    def init(**kwargs):
        raise ValueError("no")

    def open_files():  # the paths this process holds open (Linux; elsewhere nothing to check)
        out, fds = set(), Path("/proc/self/fd")
        for f in os.listdir(fds) if fds.is_dir() else []:
            try:
                out.add(os.readlink(fds / f))
            except OSError:  # the descriptor listdir itself used, closed by now
                pass
        return out

    fake_wandb.init = init
    # the error is still held (as the CLI holds it while printing), and with it the failed logger's frame
    with pytest.raises(R1Error, match="wandb.init failed") as excinfo:
        MetricsLogger(tmp_path, tensorboard=True, config=_cfg(tmp_path, "run.wandb=true"))
    assert excinfo.value is not None
    assert str(tmp_path / "metrics.jsonl") not in open_files()
    assert not [f for f in open_files() if f.startswith(str(tmp_path / "tb"))]
