"""``r1 generate`` on a local Hugging Face checkpoint directory (a tiny model saved by the test), with both rollout
engines, and ``r1 sft`` training on what it writes.

Run: python -m pytest tests/test_generate_checkpoint.py -q   (tiny random model; a few seconds)
"""

import json
from pathlib import Path

import pytest

from r1.config import GenerateConfig, SFTConfig, load_config
from r1.generate_data import run_generate
from r1.models import build_preset, save

REPO = Path(__file__).resolve().parents[1]
SMOKE = str(REPO / "configs" / "generate" / "smoke.yaml")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    model, tok = build_preset("tiny-llama", seed=3)
    return str(save(model, tok, tmp_path_factory.mktemp("ckpt") / "tiny-hf"))


@pytest.mark.parametrize("engine", ["native", "hf"])
def test_generate_on_a_checkpoint_directory_writes_data_sft_trains_on(tmp_path, checkpoint, engine):
    from r1.train.sft import train_sft

    cfg = load_config(GenerateConfig, SMOKE, [f"model.path={checkpoint}", f"rollout.engine={engine}",
                                              f"run.out_dir={tmp_path}", "run.progress=false",
                                              "generate.num_prompts=4"])
    summary = run_generate(cfg)
    data = tmp_path / "generate_smoke" / "data.jsonl"
    rows = [json.loads(x) for x in data.read_text().splitlines()]
    assert len(rows) == summary["kept"] == 8 and {r["source_model"] for r in rows} == {checkpoint}
    assert all(r["prompt"] and isinstance(r["completion"], str) for r in rows)
    sft = load_config(SFTConfig, REPO / "configs" / "sft" / "generated.yaml", [
        f"model.path={checkpoint}", f"data.path={data}", "run.steps=2", f"run.out_dir={tmp_path}", "run.name=sft",
        "run.progress=false", "data.examples_per_step=4", "optim.warmup_steps=0", "run.save_every=0"])
    train_sft(sft)
    metrics = [json.loads(x) for x in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "loss" in m][-1] == 2
