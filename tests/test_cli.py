"""The command line: exit codes and one-line errors. Run: ``python -m pytest tests/test_cli.py -q``."""

import subprocess
import sys
from pathlib import Path

import pytest

from r1.cli import main

REPO = Path(__file__).resolve().parents[1]


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "r1", *args], capture_output=True, text=True, cwd=REPO, timeout=300)


def test_unknown_key_is_one_line_exit_2():
    p = run_cli("grpo", "-c", "configs/grpo/smoke.yaml", "optim.lrr=1e-5")
    assert p.returncode == 2
    assert p.stderr.strip().count("\n") == 0, p.stderr
    assert "optim.lrr" in p.stderr and "Traceback" not in p.stderr


def test_debug_shows_traceback():
    p = run_cli("grpo", "--debug", "-c", "configs/grpo/smoke.yaml", "optim.lrr=1e-5")
    assert p.returncode != 0 and "Traceback" in p.stderr


def test_bad_model_path_and_missing_config(tmp_path, capsys):
    assert main(["grpo", "-c", "configs/grpo/smoke.yaml", f"model.path={tmp_path}"]) == 2
    assert "not a Hugging Face model directory" in capsys.readouterr().err
    assert main(["grpo"]) == 2
    assert "missing -c CONFIG" in capsys.readouterr().err
    assert main(["grpo", "--resume", str(tmp_path)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_grpo_cli_two_steps(tmp_path):
    code = main(["grpo", "-c", str(REPO / "configs/grpo/smoke.yaml"), f"run.out_dir={tmp_path}", "run.steps=2",
                 "run.progress=false"])
    assert code == 0
    assert (tmp_path / "smoke" / "metrics.jsonl").read_text().count("\n") == 2


def test_a_typo_after_a_finished_run_leaves_it_as_it_was(tmp_path):
    # this command (smoke.yaml has run.overwrite=true) once deleted the finished run x before the typo failed
    run = tmp_path / "x"
    (run / "checkpoints" / "step_000004").mkdir(parents=True)
    (run / "checkpoints" / "step_000004" / "model.safetensors").write_bytes(b"weights")
    (run / "checkpoints" / "latest").write_text("step_000004\n")
    (run / "metrics.jsonl").write_text('{"step": 4}\n')
    files = lambda: {str(f): f.read_bytes() for f in sorted(run.rglob("*")) if f.is_file()}  # noqa: E731
    before = files()
    p = run_cli("grpo", "-c", "configs/grpo/smoke.yaml", f"run.out_dir={tmp_path}", "run.name=x", "task.template=r1zero")
    assert files() == before and sorted(f.name for f in tmp_path.iterdir()) == ["x"]
    assert p.returncode == 2 and p.stderr.strip().count("\n") == 0, p.stderr
    assert "task.template: unknown template 'r1zero'; valid: chat, plain, " in p.stderr and "r1_zero" in p.stderr


def test_help_lists_config_fields_and_the_hint_names_the_commands_example(capsys):
    with pytest.raises(SystemExit):
        main(["sft", "--help"])
    assert "optim.lr: float = 0.001" in capsys.readouterr().out
    assert main(["sft"]) == 2 and "-c configs/sft/smoke.yaml" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["pipeline", "--help"])
    assert "${stages.NAME.output}" in capsys.readouterr().out
