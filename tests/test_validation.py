"""A whole config is validated before anything touches the disk, and an earlier run is never lost.

Every bad value below is given to the CLI in process (``r1.cli.main``) with ``run.overwrite=true`` against a run
directory that holds a finished run with checkpoints: exit 2, one line on stderr naming the key, and the earlier run
byte for byte as it was. ``overwrite`` moves an earlier run aside instead of deleting it; what a failed start leaves
never blocks the corrected rerun.

Run: ``python -m pytest tests/test_validation.py -q``.
"""

import dataclasses
import shutil
import typing
from pathlib import Path

import pytest
import torch

from r1.cli import main
from r1.config import DemoConfig, EvalConfig, GRPOConfig, RewardConfig, SFTConfig, load_config, validate
from r1.errors import R1Error

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "configs" / "grpo" / "smoke.yaml")
EVAL_SMOKE = str(REPO / "configs" / "eval" / "smoke.yaml")
PRETRAIN = str(REPO / "configs" / "pretrain" / "addition.yaml")
# A smoke run as small as it gets (no reference model, 2 prompts x 2 samples of 8 tokens).
TINY = ["run.progress=false", "run.sample_every=0", "grpo.prompts_per_step=2", "grpo.samples_per_prompt=2",
        "rollout.max_new_tokens=8", "grpo.kl_coef=0", "run.threads=1"]


def snapshot(d: Path) -> dict[str, bytes | None]:
    """Every path under ``d`` with its bytes (None for a folder): equal snapshots = the run is untouched."""
    return {str(p.relative_to(d)): (None if p.is_dir() else p.read_bytes()) for p in sorted(d.rglob("*"))}


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("finished")
    assert main(["grpo", "-c", SMOKE, f"run.out_dir={out}", "run.name=x", "run.steps=2", "run.save_every=1",
                 *TINY]) == 0
    return out / "x"


@pytest.fixture
def run(finished_run, tmp_path) -> Path:
    """A copy of the finished run (checkpoints, metrics) at ``<tmp_path>/x``."""
    shutil.copytree(finished_run, tmp_path / "x")
    return tmp_path / "x"


def assert_refused(code: int, err: str, command: str, key: str) -> None:
    err = err.strip()
    assert code == 2, err
    assert err.startswith(f"r1 {command}: error: ") and "\n" not in err, err
    assert key in err, err


# --------------------------------------------------------------------------------------------------- r1 grpo
GRPO_BAD = [
    # registry names: unknown ones list the valid names
    ("task.template=r1zero", "task.template"),
    ("task.name=additon", "task.name"),
    ("rewards.0.name=acc", "rewards.0.name"),
    ("rollout.engine=vllm2", "rollout.engine"),
    ("grpo.adv_norm=group", "grpo.adv_norm"),
    ("grpo.loss_agg=mean", "grpo.loss_agg"),
    ("grpo.is_level=seq", "grpo.is_level"),
    ("grpo.kl_estimator=k2", "grpo.kl_estimator"),
    ("grpo.overlong=truncate", "grpo.overlong"),
    ("optim.schedule=linear", "optim.schedule"),
    ("model.dtype=fp8", "model.dtype"),
    ("model.device=gpu", "model.device"),
    ("model.device=cuda:99", "model.device"),
    # values that crashed later
    ("optim.lr=-1", "optim.lr"),
    ("optim.lr=0", "optim.lr"),
    ("optim.lr=nan", "optim.lr"),
    ("optim.betas=[0.9,1.0]", "optim.betas"),
    ("optim.betas=[-0.1,0.99]", "optim.betas"),
    ("optim.betas=[0.9]", "optim.betas"),
    ("optim.eps=0", "optim.eps"),
    ("grpo.mu=0", "grpo.mu"),
    ("grpo.num_minibatches=0", "grpo.num_minibatches"),
    ("grpo.num_minibatches=3", "grpo.num_minibatches"),  # more than grpo.prompts_per_step
    # values that were accepted silently
    ("rollout.temperature=-0.5", "rollout.temperature"),
    ("rollout.top_p=0", "rollout.top_p"),
    ("rollout.top_p=1.5", "rollout.top_p"),
    ("rollout.top_k=-1", "rollout.top_k"),
    ("rollout.max_new_tokens=0", "rollout.max_new_tokens"),
    ("run.steps=0", "run.steps"),
    ("run.steps=-3", "run.steps"),
    ("run.save_every=-1", "run.save_every"),
    ("run.keep_checkpoints=-1", "run.keep_checkpoints"),
    ("run.seed=-1", "run.seed"),
    ("eval.num_prompts=0", "eval.num_prompts"),
    ("eval.top_p=0", "eval.top_p"),
    ("grpo.samples_per_prompt=0", "grpo.samples_per_prompt"),
    ("grpo.prompts_per_step=0", "grpo.prompts_per_step"),
    ("grpo.clip_low=-0.1", "grpo.clip_low"),
    ("grpo.kl_coef=-1", "grpo.kl_coef"),
    ("grpo.adv_eps=0", "grpo.adv_eps"),
    ("optim.weight_decay=-0.1", "optim.weight_decay"),
    ("optim.warmup_steps=-1", "optim.warmup_steps"),
    ("optim.grad_clip=-1", "optim.grad_clip"),
    ("optim.min_lr_ratio=2", "optim.min_lr_ratio"),
    ("optim.tokens_per_micro_batch=0", "optim.tokens_per_micro_batch"),
    ("rewards.1.weight=nan", "rewards.1.weight"),
    ("rewards=[]", "rewards"),
    ("rewards=[{name: format}, {name: format}]", "rewards.1.name"),
    ("rewards.1.params={eos: x}", "rewards.1.params"),
    # files that must exist
    ("task.data=/no/such/file.jsonl", "task.data"),
    ("model.path=/no/such/model", "model.path"),
]
if not torch.cuda.is_available():
    GRPO_BAD.append(("model.device=cuda", "model.device"))


@pytest.mark.parametrize("bad,key", GRPO_BAD, ids=[b for b, _ in GRPO_BAD])
def test_grpo_bad_value_is_one_line_and_the_run_survives(run, bad, key, capsys):
    before = snapshot(run)
    code = main(["grpo", "-c", SMOKE, f"run.out_dir={run.parent}", "run.name=x", "run.overwrite=true", "run.steps=1",
                 *TINY, bad])
    err = capsys.readouterr().err
    assert snapshot(run) == before
    assert_refused(code, err, "grpo", key)
    assert sorted(p.name for p in run.parent.iterdir()) == ["x"]  # nothing moved aside, nothing half made


def test_model_path_must_be_a_model_directory(run, capsys):
    code = main(["grpo", "-c", SMOKE, f"run.out_dir={run.parent}", "run.name=x", "run.overwrite=true",
                 f"model.path={run / 'tb'}"])
    err = capsys.readouterr().err
    assert_refused(code, err, "grpo", "model.path")
    assert "is not a Hugging Face model directory (no config.json)" in err


@pytest.mark.parametrize("name", ["..", ".", "a/../..", "a//b"])
def test_run_name_cannot_reach_outside_its_folder(run, name, capsys):
    # run.name=.. with overwrite=true made the run directory <out_dir>/.. and removed it whole
    before = snapshot(run)
    out = run.parent / "sub"
    code = main(["grpo", "-c", SMOKE, f"run.out_dir={out}", f"run.name={name}", "run.overwrite=true", *TINY])
    err = capsys.readouterr().err
    assert snapshot(run) == before and not out.exists()
    assert_refused(code, err, "grpo", "run.name")


def test_resume_with_a_bad_override_changes_nothing(run, capsys):
    before = snapshot(run)
    # before: the resumed config (with the typo) was saved over config.yaml, then the first step failed
    for bad, key in [("task.template=r1zero", "task.template"), ("optim.lr=-1", "optim.lr")]:
        code = main(["grpo", "--resume", str(run), bad, "run.steps=3", "run.progress=false"])
        err = capsys.readouterr().err
        assert snapshot(run) == before, bad
        assert_refused(code, err, "grpo", key)


# ---------------------------------------------------------------------------------- overwrite moves aside
def test_overwrite_moves_the_earlier_run_aside_and_the_corrected_rerun_works(run, capsys):
    before = snapshot(run)
    args = ["grpo", "-c", SMOKE, f"run.out_dir={run.parent}", "run.name=x", "run.overwrite=true", "run.steps=1",
            *TINY]
    assert main([*args, "task.template=r1zero"]) == 2
    capsys.readouterr()
    assert main(args) == 0  # the corrected command
    out = capsys.readouterr().out
    aside = [p for p in run.parent.iterdir() if p.name.startswith("x.old-")]
    assert len(aside) == 1 and snapshot(aside[0]) == before
    assert f"aside to {aside[0]}" in out.replace("\n", "")
    assert (run / "metrics.jsonl").read_text().count("\n") == 1  # the new run


def test_a_failed_start_never_blocks_the_rerun(tmp_path):
    # what a start that failed after making its run directory leaves behind (no checkpoint, no metrics line)
    half = tmp_path / "x"
    (half / "samples").mkdir(parents=True)
    (half / "tb").mkdir()
    (half / "tb" / "events.out.tfevents.1.host.1.0").write_bytes(b"\x18\x00")
    (half / "config.yaml").write_text("run: {}\n")
    (half / "git_sha.txt").write_text("0" * 40 + "\n")
    (half / "metrics.jsonl").write_text("")
    assert main(["grpo", "-c", SMOKE, f"run.out_dir={tmp_path}", "run.name=x", "run.overwrite=false", "run.steps=1",
                 *TINY]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x"]  # removed, not moved aside
    assert (half / "metrics.jsonl").read_text().count("\n") == 1


def test_without_overwrite_an_earlier_run_or_a_file_is_refused(run, tmp_path, capsys):
    before = snapshot(run)
    code = main(["grpo", "-c", SMOKE, f"run.out_dir={tmp_path}", "run.name=x", "run.overwrite=false", *TINY])
    err = capsys.readouterr().err
    assert snapshot(run) == before
    assert_refused(code, err, "grpo", "not empty")
    (tmp_path / "f").write_text("keep")
    code = main(["grpo", "-c", SMOKE, f"run.out_dir={tmp_path}", "run.name=f", "run.overwrite=true", *TINY])
    assert_refused(code, capsys.readouterr().err, "grpo", "is a file")
    assert (tmp_path / "f").read_text() == "keep"


def test_clear_run_dir_keeps_anything_it_does_not_know(tmp_path):
    from r1.runs import clear_run_dir

    d = tmp_path / "r"
    d.mkdir()
    (d / "notes.txt").write_text("mine")
    aside = clear_run_dir(d)
    assert not d.exists() and (aside / "notes.txt").read_text() == "mine"
    d.mkdir()
    assert clear_run_dir(d) is None and not d.exists()  # an empty folder is simply removed
    d.mkdir()
    (d / "metrics.jsonl").write_text('{"step": 1}\n')  # a metrics line: a run, kept
    assert clear_run_dir(d) is not None
    assert len(list(tmp_path.glob("r.old-*"))) == 2


# ------------------------------------------------------------------------------------ r1 sft / r1 pretrain
SFT_BAD = [
    ("optim.lr=nan", "optim.lr"),
    ("optim.betas=[1.0,0.99]", "optim.betas"),
    ("optim.schedule=linear", "optim.schedule"),
    ("data.batching=zigzag", "data.batching"),
    ("data.source=parquet", "data.source"),
    ("data.task.template=r1zero", "data.task.template"),
    ("data.max_length=0", "data.max_length"),
    ("data.examples_per_step=0", "data.examples_per_step"),
    ("run.steps=0", "run.steps"),
    ("run.keep_checkpoints=-2", "run.keep_checkpoints"),
    ("data.source=jsonl", "data.path"),
    ("data.path=/no/such.jsonl", "data.path"),
]


@pytest.mark.parametrize("command", ["pretrain", "sft"])
@pytest.mark.parametrize("bad,key", SFT_BAD, ids=[b for b, _ in SFT_BAD])
def test_sft_bad_value_is_one_line_and_the_run_survives(run, command, bad, key, capsys):
    before = snapshot(run)
    code = main([command, "-c", PRETRAIN, f"run.out_dir={run.parent}", "run.name=x", "run.overwrite=true",
                 "run.steps=1", "model.path=tiny-qwen2", "data.num_examples=16", "data.examples_per_step=4",
                 "run.progress=false", bad])
    err = capsys.readouterr().err
    assert snapshot(run) == before
    assert_refused(code, err, command, key)
    assert sorted(p.name for p in run.parent.iterdir()) == ["x"]


# ------------------------------------------------------------------------------------------------- r1 eval
EVAL_BAD = [
    ("rollout.top_p=0", "rollout.top_p"),
    ("rollout.temperature=-1", "rollout.temperature"),
    ("eval.template=r1zero", "eval.template"),
    ("eval.samples_per_problem=0", "eval.samples_per_problem"),
    ("model.path=/no/such/model", "model.path"),
    ("benchmarks.0.task=math5000", "benchmarks.0.task"),
    ("benchmarks.0.data=/no/such.jsonl", "benchmarks.0.data"),
    ("run.seed=nan", "run.seed"),
]


@pytest.mark.parametrize("bad,key", EVAL_BAD, ids=[b for b, _ in EVAL_BAD])
def test_eval_bad_value_is_one_line_and_the_run_survives(run, shared_data, bad, key, capsys):
    before = snapshot(run)
    code = main(["eval", "-c", EVAL_SMOKE, f"run.out_dir={run.parent}", "run.name=x", "run.overwrite=true",
                 "run.progress=false", "benchmarks.0.limit=2", "rollout.max_new_tokens=4", bad])
    err = capsys.readouterr().err
    assert snapshot(run) == before
    assert_refused(code, err, "eval", key)
    assert sorted(p.name for p in run.parent.iterdir()) == ["x"]


def test_eval_overwrite_moves_the_earlier_run_aside(run, shared_data):
    before = snapshot(run)
    assert main(["eval", "-c", EVAL_SMOKE, f"run.out_dir={run.parent}", "run.name=x", "run.overwrite=true",
                 "run.progress=false", "benchmarks.0.limit=1", "eval.samples_per_problem=1",
                 "rollout.max_new_tokens=2"]) == 0
    aside = [p for p in run.parent.iterdir() if p.name.startswith("x.old-")]
    assert len(aside) == 1 and snapshot(aside[0]) == before
    assert (run / "results.json").is_file()


# ------------------------------------------------------------------------------------------------- r1 demo
DEMO_BAD = [
    ("grpo.grpo.adv_norm=group", "grpo.grpo.adv_norm"),
    ("grpo.task.template=r1zero", "grpo.task.template"),
    ("pretrain.optim.lr=-1", "pretrain.optim.lr"),
    ("pretrain.data.batching=zigzag", "pretrain.data.batching"),
    ("eval.num_prompts=0", "eval.num_prompts"),
    ("eval.top_p=2", "eval.top_p"),
    ("grpo.rollout.max_new_tokens=0", "grpo.rollout.max_new_tokens"),
]


@pytest.mark.parametrize("bad,key", DEMO_BAD, ids=[b for b, _ in DEMO_BAD])
def test_demo_bad_value_is_one_line_and_the_demo_survives(run, bad, key, capsys):
    from r1.config import save_config

    demo = run.parent / "demo"
    shutil.copytree(run, demo / "grpo")
    save_config(DemoConfig(), demo / "demo_config.yaml")
    (demo / "summary.json").write_text("{}\n")
    before = snapshot(demo)
    code = main(["demo", f"run.out_dir={run.parent}", "run.name=demo", f"run.cache_dir={run.parent}/cache",
                 "pretrain.model.path=tiny-qwen2", "pretrain.run.steps=1", "pretrain.data.num_examples=16",
                 "grpo.run.steps=1", "run.progress=false", bad])
    err = capsys.readouterr().err
    assert snapshot(demo) == before
    assert_refused(code, err, "demo", key)
    assert sorted(p.name for p in run.parent.iterdir()) == ["demo", "x"]


# ------------------------------------------------------------------------------------------- the schemas
def test_every_numeric_field_declares_its_range():
    """A new int/float field gets its allowed range next to it (``checked(default, ge=...)``)."""
    free = {(RewardConfig, "weight")}  # any finite weight: a negative one is a penalty

    def walk(schema, seen):
        hints = typing.get_type_hints(schema)
        for f in dataclasses.fields(schema):
            t = hints[f.name]
            args = typing.get_args(t)
            inner = args[0] if args else t
            if dataclasses.is_dataclass(inner) and inner not in seen:
                seen.add(inner)
                walk(inner, seen)
            elif inner in (int, float) and (schema, f.name) not in free:
                check = f.metadata.get("check")
                assert check is not None and check.bounds(), f"{schema.__name__}.{f.name} has no declared range"

    for schema in (GRPOConfig, SFTConfig, EvalConfig, DemoConfig):
        walk(schema, {schema})


@pytest.mark.parametrize("schema", [GRPOConfig, SFTConfig, EvalConfig, DemoConfig])
def test_defaults_validate_here(schema):
    validate(schema())


def test_parsing_leaves_the_machine_out_but_commands_do_not():
    # a shipped YAML may name a model a previous stage makes: parsing it is fine, running it is not
    cfg = load_config(GRPOConfig, None, ["model.path=runs/not-made-yet"])
    with pytest.raises(R1Error, match=r"model\.path='runs/not-made-yet': neither a preset"):
        validate(cfg)


def test_registry_miss_lists_the_valid_names():
    with pytest.raises(R1Error, match=r"^task\.template: unknown template 'r1zero'; valid: chat, plain, r1_readable, r1_zero$"):
        load_config(GRPOConfig, None, ["task.template=r1zero"])
    with pytest.raises(R1Error, match=r"unknown optim\.schedule 'linear'; valid: cosine, constant"):
        load_config(SFTConfig, None, ["optim.schedule=linear"])


def test_infinities_where_they_mean_something():
    # grad_clip=inf: no clipping; clip_high=inf: no upper ratio bound; lr=inf means nothing
    load_config(GRPOConfig, None, ["optim.grad_clip=inf", "grpo.clip_high=inf"])
    with pytest.raises(R1Error, match="optim.lr must be a finite number"):
        load_config(GRPOConfig, None, ["optim.lr=inf"])
    with pytest.raises(R1Error, match="rollout.temperature must be a finite number"):
        load_config(GRPOConfig, None, ["rollout.temperature=inf"])
