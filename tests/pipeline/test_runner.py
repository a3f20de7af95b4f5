"""r1 pipeline: stages wired by ${stages.X.output}, skipped when finished, rerun when changed, continued when
interrupted, validated before anything is written, and a report that puts the evaluations side by side."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from r1.cli import main
from r1.errors import R1Error
from r1.pipeline.runner import load_pipeline, run_pipeline

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "configs" / "pipeline" / "smoke.yaml"


@pytest.fixture
def in_repo(monkeypatch):
    monkeypatch.chdir(REPO)  # the shipped pipeline names the other shipped configs relative to the checkout


def _run(tmp_path, *overrides, from_stage=None):
    return run_pipeline(SMOKE, [f"out_dir={tmp_path}", "progress=false", *overrides], from_stage=from_stage)


def _state(run_dir: Path) -> dict:
    return json.loads((run_dir / "pipeline.json").read_text())["stages"]


def _mtimes(run_dir: Path) -> dict:
    return {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir() if p.is_dir() and ".old-" not in p.name}


def test_smoke_pipeline_runs_wires_and_reports(tmp_path, in_repo, capsys):
    run_dir = _run(tmp_path)
    st = _state(run_dir)
    assert [st[n]["status"] for n in ("generate", "sft", "eval_base", "eval_sft")] == ["done"] * 4
    # the sft stage trained on the generate stage's data, and eval_sft evaluated the sft stage's model
    sft_cfg = (run_dir / "sft" / "config.yaml").read_text()
    assert str(run_dir / "generate" / "data.jsonl") in sft_cfg
    assert str(run_dir / "sft") in (run_dir / "eval_sft" / "config.yaml").read_text() or \
        str(run_dir / "sft") in (run_dir / "configs" / "eval_sft.yaml").read_text()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert [r["label"] for r in summary["evals"]] == ["base", "after SFT"]
    after = summary["evals"][1]
    assert after["model_stages"] == ["generate", "sft"]
    assert after["model_seconds"] == pytest.approx(st["generate"]["seconds"] + st["sft"]["seconds"], abs=0.2)
    assert 0.0 <= after["pass@1"] <= 1.0 and after["pass@1_stderr"] is not None
    html = (run_dir / "report.html").read_text()
    assert "after SFT" in html and "data:image/png;base64" in html and "results.md" in html
    assert "evaluations" in capsys.readouterr().out


def test_rerun_skips_finished_stages_and_a_change_reruns_it_and_what_reads_it(tmp_path, in_repo, capsys):
    run_dir = _run(tmp_path)
    before = _mtimes(run_dir)
    capsys.readouterr()
    _run(tmp_path)
    out = capsys.readouterr().out
    assert out.count("skipped") == 4
    assert _mtimes(run_dir) == before
    hashes = {n: r["hash"] for n, r in _state(run_dir).items()}

    _run(tmp_path, "stages.sft.set.optim.lr=2e-3")
    out = capsys.readouterr().out
    st = _state(run_dir)
    assert st["generate"]["hash"] == hashes["generate"] and st["eval_base"]["hash"] == hashes["eval_base"]
    assert st["sft"]["hash"] != hashes["sft"] and st["eval_sft"]["hash"] != hashes["eval_sft"]  # downstream too
    assert "the config changed" in out
    after = _mtimes(run_dir)
    assert after["generate"] == before["generate"] and after["eval_base"] == before["eval_base"]
    assert any(p.name.startswith("sft.old-") for p in run_dir.iterdir())  # moved aside, not deleted


def test_from_redoes_that_stage_and_every_stage_reading_from_it(tmp_path, in_repo, capsys):
    run_dir = _run(tmp_path)
    capsys.readouterr()
    _run(tmp_path, from_stage="sft")
    out = capsys.readouterr().out
    assert "generate (r1 generate): done" in out and "eval_base (r1 eval): done" in out  # it reads no sft output
    assert "sft (r1 sft): done" not in out and "eval_sft (r1 eval): done" not in out
    assert out.count("redone (--from)") == 2
    with pytest.raises(R1Error, match="--from: no stage 'nope'; stages: generate, sft, eval_base, eval_sft"):
        _run(tmp_path, from_stage="nope")
    assert run_dir.is_dir()


def test_interrupted_training_stage_continues_from_its_checkpoint(tmp_path, in_repo, monkeypatch, capsys):
    run_dir = _run(tmp_path, "stages.sft.set.run.save_every=2")
    # as if killed after a checkpoint: the state says running
    state = json.loads((run_dir / "pipeline.json").read_text())
    state["stages"]["sft"]["status"] = "running"
    (run_dir / "pipeline.json").write_text(json.dumps(state))
    import r1.train.sft as sft

    seen = []
    real = sft.train_sft
    monkeypatch.setattr(sft, "train_sft", lambda cfg, resume=None: seen.append(resume) or real(cfg, resume=resume))
    capsys.readouterr()
    _run(tmp_path, "stages.sft.set.run.save_every=2")
    assert seen == [run_dir / "sft"]
    assert "continuing the interrupted run" in capsys.readouterr().out
    assert _state(run_dir)["sft"]["status"] == "done"


@pytest.mark.slow
def test_killed_mid_stage_then_rerun_continues(tmp_path):
    """A real kill (SIGKILL) in the middle of a training stage; the rerun continues from the last checkpoint."""
    pipe = tmp_path / "p.yaml"
    pipe.write_text(f"""
name: killed
out_dir: {tmp_path}
progress: false
stages:
  sft:
    command: pretrain
    set:
      model.path: tiny-qwen2
      data: {{source: task, num_examples: 256, max_length: 64, examples_per_step: 4,
             task: {{name: addition, template: plain, params: {{digits: 2, num_train: 1000, num_test: 100}}}}}}
      run: {{steps: 30, save_every: 5, keep_checkpoints: 1, log_every: 0, sample_every: 0}}
""")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "r1", "pipeline", "-c", str(pipe)], cwd=tmp_path, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = tmp_path / "killed" / "sft" / "checkpoints" / "latest"
    deadline = time.time() + 120
    while not latest.is_file() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert latest.is_file(), "no checkpoint before the kill"
    step_at_kill = int(latest.read_text().strip().split("_")[-1])
    assert step_at_kill < 30
    assert json.loads((tmp_path / "killed" / "pipeline.json").read_text())["stages"]["sft"]["status"] == "running"
    out = subprocess.run([sys.executable, "-m", "r1", "pipeline", "-c", str(pipe)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "continuing the interrupted run" in out.stdout
    assert latest.read_text().strip() == "step_000030"
    assert not any(p.name.startswith("sft.old-") for p in (tmp_path / "killed").iterdir())  # continued, not redone
    again = subprocess.run([sys.executable, "-m", "r1", "pipeline", "-c", str(pipe)], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "skipped" in again.stdout


def test_hugging_face_checkpoint_directory_as_the_model(tmp_path, in_repo):
    from r1.models import build_preset, save

    model, tok = build_preset("tiny-qwen2", seed=3)
    hf = save(model, tok, tmp_path / "hf_model")
    assert (hf / "config.json").is_file()
    run_dir = _run(tmp_path / "runs", f"vars.base={hf}")
    st = _state(run_dir)
    assert all(r["status"] == "done" for r in st.values())
    assert f"path: {hf}" in (run_dir / "configs" / "generate.yaml").read_text()


@pytest.mark.parametrize("body, match", [
    ("name: p\nstages: {a: {command: train}}", "stage 'a': unknown command 'train'; valid: "),
    ("name: p\nstages: {a: {command: sft, sett: {}}}", "unknown key 'stages.a.sett'"),
    ("name: p\nstagez: {}", "unknown key 'stagez' in .*; valid: name, "),
    ("name: p\nstages: {a: {command: sft, set: {model.path: '${stages.b.output}'}}, b: {command: sft}}",
     r"stage 'a' reads \$\{stages.b...\}, which is not a stage before it \(stages run in the order"),
    ("name: p\nstages: {a: {command: sft, set: {optim.lr: -1}}}", "optim.lr must be > 0"),
    ("name: p\nstages: {a: {command: sft, set: {optim.lrr: 1}}}", r"unknown config key 'optim.lrr' in stages.a of .*p.yaml"),
    ("name: p\nstages: {a: {command: sft, enabled: false}, b: {command: sft, set: {model.path: '${stages.a.output}'}}}",
     "stage 'a' is disabled but 'b' reads its output"),
    ("name: p\nstages: {a: {command: eval, set: {model.path: /no/such/model}}}", "stage 'a': model.path="),
    ("name: ../p\nstages: {a: {command: sft}}", "'name' must be a folder name of letters"),
    ("name: p\nstages: []", "'stages' must be a mapping"),
])
def test_bad_pipeline_is_one_line_and_writes_nothing(tmp_path, body, match):
    f = tmp_path / "p.yaml"
    f.write_text(body + f"\nout_dir: {tmp_path / 'runs'}\n")
    with pytest.raises(R1Error, match=match):
        run_pipeline(f)
    assert not (tmp_path / "runs").exists()


def test_cli_one_line_errors(tmp_path, capsys):
    assert main(["pipeline"]) == 2
    assert "missing -c PIPELINE" in capsys.readouterr().err
    assert main(["pipeline", "-c", str(tmp_path / "none.yaml")]) == 2
    assert "config file not found" in capsys.readouterr().err
    f = tmp_path / "p.yaml"
    f.write_text(f"name: p\nout_dir: {tmp_path}\nstages: {{a: {{command: sft}}}}\n")
    assert main(["pipeline", "-c", str(f), "seed"]) == 2
    assert "must look like key=value" in capsys.readouterr().err
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "notes.txt").write_text("mine")
    assert main(["pipeline", "-c", str(f), "stages.a.set.data.source=jsonl", "stages.a.set.data.path=" + str(f)]) == 2
    assert "is not a pipeline run directory" in capsys.readouterr().err
    assert (tmp_path / "p" / "notes.txt").read_text() == "mine"


def test_cached_pretrain_stage_shares_the_demos_base_model_folder(tmp_path):
    """A pretrain stage with the demo's pretraining settings and `cache: true` lands in the very folder r1 demo
    caches its base model in (same hash), so the two never train it twice."""
    import copy

    import yaml

    from r1.config import DEMO_YAML, load_demo_config
    from r1.pipeline.demo import pretrain_key

    demo = load_demo_config()
    p = copy.deepcopy(demo.pretrain)
    p.run.seed, p.run.threads, p.run.progress = demo.run.seed, demo.run.threads, demo.run.progress
    section = yaml.safe_load(DEMO_YAML.read_text())["pretrain"]
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump({"name": "p", "cache_dir": str(tmp_path / "cache"), "seed": 0,
                                 "stages": {"base": {"command": "pretrain", "cache": True, "set": section}}}))
    stage = load_pipeline(f).stages[0]
    assert stage.dir == tmp_path / "cache" / f"base-{pretrain_key(p)}"


def test_stage_config_files_are_found_next_to_the_pipeline_and_by_section(tmp_path, monkeypatch):
    home = tmp_path / "shipped"
    home.mkdir()
    (home / "settings.yaml").write_text("sft: {optim: {lr: 0.005}}\nother: {}\n")
    (home / "p.yaml").write_text("name: p\nstages:\n  a: {command: sft, config: settings.yaml#sft}\n"
                                 "  b: {command: sft, config: settings.yaml#nope}\n")
    monkeypatch.chdir(tmp_path)  # not the pipeline's folder
    with pytest.raises(R1Error, match="settings.yaml has no mapping 'nope'"):
        load_pipeline(home / "p.yaml")
    (home / "p.yaml").write_text("name: p\nstages:\n  a: {command: sft, config: settings.yaml#sft}\n")
    assert load_pipeline(home / "p.yaml").stages[0].cfg.optim.lr == 0.005


def test_a_pipeline_run_in_use_by_another_process_is_refused(tmp_path, in_repo):
    import fcntl

    run_dir = tmp_path / "pipeline_smoke"
    run_dir.mkdir()
    with open(run_dir / ".lock", "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write("pid 4242\n")
        f.flush()
        with pytest.raises(R1Error, match=r"pipeline run .*pipeline_smoke is in use by pid 4242; wait for it"):
            _run(tmp_path)
    assert not (run_dir / "pipeline.json").exists()  # nothing run
    assert _run(tmp_path) == run_dir  # the lock's file left behind does not block the next run


def test_a_cached_stage_waits_for_the_process_making_it(tmp_path):
    """Two pipelines that share a cached stage: the second waits for the first, then reuses its output."""
    import fcntl
    import threading

    from r1.pipeline.runner import _locked

    target = tmp_path / "cache" / "base-x"
    lock = target.with_name("base-x.lock")
    lock.parent.mkdir(parents=True)
    order = []
    with open(lock, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        t = threading.Thread(target=lambda: _locked(lock, wait=True, what=str(target)).__enter__()
                             or order.append("second"))
        t.start()
        time.sleep(0.3)
        order.append("first done")
    t.join(5)
    assert order == ["first done", "second"]


def test_reward_model_stage_feeds_an_eval_score(tmp_path):
    """An `rm` stage's output is a reward model path: an eval stage scores completions with it (score/<label>)."""
    pipe = tmp_path / "p.yaml"
    pipe.write_text(f"""
name: rmp
out_dir: {tmp_path}
progress: false
stages:
  rm:
    command: rm
    set: {{model.path: tiny-qwen2, data: {{task: harmless, num_train: 64, num_test: 16, pairs_per_step: 8}},
          run: {{steps: 2, log_every: 0}}}}
  eval:
    command: eval
    set:
      model.path: tiny-qwen2
      benchmarks: [{{task: addition, split: test, limit: 2, params: {{digits: 2, num_train: 16, num_test: 4}}}}]
      rollout: {{max_new_tokens: 4}}
      eval: {{samples_per_problem: 1, template: plain,
             scores: [{{name: reward_model, label: harmless, params: {{path: "${{stages.rm.output}}", span: response}}}}]}}
""")
    run_dir = run_pipeline(pipe)
    m = json.loads((run_dir / "eval" / "results.json").read_text())["benchmarks"]["addition"]["metrics"]
    assert isinstance(m["score/harmless"], float)
    row = json.loads((run_dir / "summary.json").read_text())["evals"][0]
    assert row["score/harmless"] == m["score/harmless"]  # the pipeline's table carries eval scores too
    assert _state(run_dir)["eval"]["hash"] and "rm" in json.loads((run_dir / "summary.json").read_text())[
        "stages"][1]["deps"]


def test_an_interrupted_from_still_redoes_every_stage_after_it(tmp_path, in_repo, monkeypatch, capsys):
    """--from marks the stages it redoes (the stage and those reading from it); killed in the middle, a rerun
    without --from redoes them all, never resuming the finished run they replace."""
    run_dir = _run(tmp_path)
    old_latest = (run_dir / "sft" / "checkpoints" / "latest").read_text()
    import r1.train.sft as sft

    def killed(cfg, resume=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(sft, "train_sft", killed)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, from_stage="sft")
    st = _state(run_dir)
    assert st["sft"]["status"] == "running" and st["eval_sft"]["status"] == "redo"
    assert st["eval_base"]["status"] == "done"  # it does not read from sft
    assert any(p.name.startswith("sft.old-") for p in run_dir.iterdir())  # moved aside before "running"
    monkeypatch.undo()
    capsys.readouterr()
    _run(tmp_path)
    out = capsys.readouterr().out
    assert "continuing the interrupted run" not in out  # nothing of the new attempt to continue: started afresh
    assert "generate (r1 generate): done" in out and out.count("skipped") == 2
    assert all(r["status"] == "done" for r in _state(run_dir).values())
    assert (run_dir / "sft" / "checkpoints" / "latest").read_text() == old_latest  # same steps, a new run


def test_distill_pipeline_takes_hugging_face_checkpoints_unchanged(tmp_path, in_repo):
    """configs/pipeline/distill.yaml with a local HF teacher and student (saved by the test) in place of its own
    stages: every remaining stage reads them, and the whole pipeline validates against this machine."""
    from r1.models import build_preset, save

    teacher = save(*build_preset("qwen2-1m", seed=1), tmp_path / "teacher")
    student = save(*build_preset("tiny-qwen2", seed=2), tmp_path / "student")
    pipe = load_pipeline(REPO / "configs" / "pipeline" / "distill.yaml", [
        f"out_dir={tmp_path}", f"vars.teacher={teacher}", f"vars.student={student}",
        "stages.teacher_base.enabled=false", "stages.teacher_rl.enabled=false", "stages.student_base.enabled=false"])
    by = {s.name: s for s in pipe.stages}
    assert by["generate"].cfg.model.path == str(teacher) and by["generate"].deps == []
    assert by["student_rl"].cfg.model.path == str(student) and by["eval_base"].cfg.model.path == str(student)
    assert by["distilled"].cfg.data.path == str(tmp_path / "distill" / "generate" / "data.jsonl")
    assert [s.name for s in pipe.stages if s.enabled][0] == "generate"
    with pytest.raises(R1Error, match="stage 'teacher_rl' is disabled but 'generate' reads its output"):
        load_pipeline(REPO / "configs" / "pipeline" / "distill.yaml", [f"out_dir={tmp_path}",
                                                                     "stages.teacher_rl.enabled=false"])


def test_r1_pipeline_takes_a_hugging_face_base_unchanged(tmp_path, in_repo):
    """configs/pipeline/r1.yaml with a local HF checkpoint (saved by the test) as the base: every stage that starts
    from the base reads it, SFT round 2 starts from it again (the paper), and the pipeline validates on this machine."""
    from r1.models import build_preset, save

    base = save(*build_preset("tiny-qwen2", seed=4), tmp_path / "hf_base")
    pipe = load_pipeline(REPO / "configs" / "pipeline" / "r1.yaml", [
        f"out_dir={tmp_path}", f"vars.base={base}", "stages.base.enabled=false"])
    by = {s.name: s for s in pipe.stages}
    for name in ("eval_base", "r1_zero", "r1_zero_lang", "cold_start", "sft2"):
        assert by[name].cfg.model.path == str(base), name
    assert by["reasoning_rl"].cfg.model.path == str(by["cold_start"].dir)
    assert by["all_scenario"].cfg.model.path == str(by["sft2"].dir)
    assert "base" not in by["sft2"].deps and "generate" in by["sft2"].deps
    with pytest.raises(R1Error, match="stage 'base' is disabled but 'eval_base' reads its output"):
        load_pipeline(REPO / "configs" / "pipeline" / "r1.yaml", [f"out_dir={tmp_path}", "stages.base.enabled=false"])


@pytest.mark.parametrize("body, match", [
    ("name: p\nstages: {on: {command: sft}}", "a stage name is letters"),
    ("name: p\nstages: {a: {command: sft, config: 5}}", "'config' must be a file path"),
    ("name: p\nreport: [task/reflection]\nstages: {a: {command: sft}}", "'report' must be a mapping"),
    ("name: p\nreport: {metrix: [a]}\nstages: {a: {command: sft}}", "unknown key 'report.metrix'"),
    ("name: p\nreport: {metrics: task/reflection}\nstages: {a: {command: sft}}", "report.metrics must be a list"),
    ("name: p\nvars: [teacher]\nstages: {a: {command: sft}}", "'vars' must be a mapping"),
    ("name: p\nstages: {a: {command: grpo, set: {rewards.1.weight: 0.5}}}", "names a list item; give the whole list"),
    ("name: p\nstages: {a: {command: sft, enabled: 'false'}}", "'enabled' must be true or false"),
    ("name: p\nout_dir: ''\nstages: {a: {command: sft}}", "'out_dir' must be a folder path"),
    ("name: p\nstages: {configs: {command: sft}}", "a stage name is letters"),
    ("name: p\nstages: {a: {command: sft, set: {optim.lr: -1}}, b: {command: sft}}", "stage 'a': optim.lr must be > 0"),
    ("name: p\nstages: {a: {command: sft, set: {data.task.params: {digitz: 2}}}}",
     "task 'addition' has no parameter digitz"),
    ("name: p\nstages: {a: {command: sft, set: {data.mix: [{ratio: 0.5}]}}}", "give either path"),
    # a reward's own params: an RM no earlier stage makes, a blank special token (before the run directory)
    ("name: p\nstages: {a: {command: eval, set: {eval.scores: [{name: reward_model, params: {path: /no/rm}}]}}}",
     r"stage 'a': eval.scores.0.params.path='/no/rm': path '/no/rm' is not a reward-model directory"),
    ("name: p\nstages: {a: {command: grpo, set: {rewards: [{name: readable_format, params: {token: ''}}]}}}",
     r"stage 'a': rewards.0.params.token='': must be a non-blank string"),
])
def test_hostile_pipeline_files_are_one_line(tmp_path, body, match):
    f = tmp_path / "p.yaml"
    f.write_text(body + ("" if "out_dir" in body else f"\nout_dir: {tmp_path / 'runs'}") + "\n")
    with pytest.raises(R1Error, match=match):
        run_pipeline(f)
    assert not (tmp_path / "runs").exists()


def test_shipped_pipelines_run_from_any_folder_and_ignore_a_local_demo_yaml(tmp_path, monkeypatch):
    from r1.config import load_demo_config
    from r1.pipeline.demo import R1_ZERO_DEMO, pipeline_settings

    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo.yaml").write_text("pretrain: {optim: {lr: 0.5}}\n")  # a user's own file of that name
    demo = load_pipeline(R1_ZERO_DEMO, merge=pipeline_settings(load_demo_config()))
    assert demo.stages[0].cfg.optim.lr == 1e-3
    run_dir = run_pipeline(SMOKE, [f"out_dir={tmp_path / 'runs'}", "progress=false"])
    assert all(r["status"] == "done" for r in _state(run_dir).values())


def test_a_stage_rebuilt_with_the_same_hash_makes_its_readers_stale(tmp_path, in_repo, capsys):
    """generate's output deleted: it runs again (same hash) and marks sft and eval_sft to be redone before they start,
    so a kill in between cannot leave them 'done' on the old data."""
    run_dir = _run(tmp_path)
    (run_dir / "generate" / "data.jsonl").unlink()
    import r1.train.sft as sft

    real = sft.train_sft

    def killed(cfg, resume=None):
        raise KeyboardInterrupt

    sft.train_sft = killed
    try:
        with pytest.raises(KeyboardInterrupt):
            _run(tmp_path)
    finally:
        sft.train_sft = real
    st = _state(run_dir)
    assert st["generate"]["status"] == "done" and st["eval_sft"]["status"] == "redo"
    capsys.readouterr()
    _run(tmp_path)
    out = capsys.readouterr().out
    assert "eval_sft (r1 eval): done" not in out and "eval_base (r1 eval): done" in out


def test_editing_a_stage_config_file_reruns_the_stage(tmp_path, in_repo, capsys):
    settings = tmp_path / "eval.yaml"
    settings.write_text((REPO / "configs" / "eval" / "smoke.yaml").read_text())
    pipe = tmp_path / "p.yaml"
    pipe.write_text(f"""name: edit
out_dir: {tmp_path}
progress: false
stages:
  ev:
    command: eval
    config: eval.yaml
    set: {{benchmarks: [{{task: addition, split: test, limit: 2, params: {{digits: 2, num_train: 16, num_test: 4}}}}],
          eval: {{template: plain, samples_per_problem: 1}}, rollout: {{max_new_tokens: 4}}}}
""")
    run_pipeline(pipe)
    capsys.readouterr()
    settings.write_text(settings.read_text().replace("temperature: 0.6", "temperature: 0.7"))
    run_pipeline(pipe)
    assert "the config changed since its last run" in capsys.readouterr().out
